//! Authorization: which caller may call what, and see whose usage.
//!
//! - Operator: everything.
//! - ResourceProvider: post usage, nothing else.
//! - DelegatedProvider: the provider usage API, limited to the subscriptions whose delegated
//!   provider is its provider subscription; a subscriber id outside them is
//!   `SubscriberIdIsNotDirectTenant`. It may also list those subscriptions.
//! - Everyone with a tenant (`tid`): the tenant usage API and reads of their own tenant and
//!   subscriptions (those the tenant owns, deleted ones included); any other subscription is
//!   `NotSubscriptionOwner`, never an empty page.
//! - Registration and tenancy writes: Operator only.
//!
//! Ownership is looked up through the registration service and cached for at most
//! [`OWNERSHIP_TTL`]: a change of owner or of delegated provider takes up to that long to apply
//! here. Unknown subscriptions are never cached, so a new subscription is usable at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_core::{Reason, parse_guid};
use tally_proto::Rpc;
use tally_proto::clock::v1 as clock;
use tally_proto::clock_api::ClockApi;
use tally_proto::registration::v1 as reg;
use tally_proto::registration_api::RegistrationApi;
use tally_proto::status;
use tally_proto::usage::v1 as usage;
use tally_proto::usage_api::UsageApi;
use tonic::{Request, Status};
use uuid::Uuid;

use crate::auth::{Caller, Role};

/// How stale the gateway's view of subscription ownership may be.
pub const OWNERSHIP_TTL: Duration = Duration::from_secs(30);
/// Entries kept per cache; beyond this a cache starts over.
const MAX_CACHED: usize = 100_000;

struct Cached<T> {
    value: T,
    at: Instant,
}

/// Looks up and caches who owns what.
pub(crate) struct Ownership {
    registration: Arc<dyn RegistrationApi>,
    owners: Mutex<HashMap<Uuid, Cached<Uuid>>>,
    direct_tenants: Mutex<HashMap<Uuid, Cached<Arc<Vec<Uuid>>>>>,
}

fn fresh<T: Clone>(cache: &Mutex<HashMap<Uuid, Cached<T>>>, key: &Uuid) -> Option<T> {
    let cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .get(key)
        .filter(|c| c.at.elapsed() < OWNERSHIP_TTL)
        .map(|c| c.value.clone())
}

fn remember<T>(cache: &Mutex<HashMap<Uuid, Cached<T>>>, key: Uuid, value: T) {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(
        key,
        Cached {
            value,
            at: Instant::now(),
        },
    );
}

impl Ownership {
    pub(crate) fn new(registration: Arc<dyn RegistrationApi>) -> Self {
        Self {
            registration,
            owners: Mutex::new(HashMap::new()),
            direct_tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant owning `subscription`, or `None` if the subscription is not known.
    async fn owner(&self, subscription: Uuid) -> Result<Option<Uuid>, Status> {
        if let Some(owner) = fresh(&self.owners, &subscription) {
            return Ok(Some(owner));
        }
        let found = self
            .registration
            .get_subscription(Request::new(reg::GetSubscriptionRequest {
                subscription_id: subscription.hyphenated().to_string(),
            }))
            .await;
        match found {
            Ok(s) => {
                let owner = parse_guid(&s.into_inner().owner_tenant_id);
                if let Some(owner) = owner {
                    remember(&self.owners, subscription, owner);
                }
                Ok(owner)
            }
            Err(e) if e.code() == tonic::Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The subscriptions whose delegated provider is `provider` (deleted ones included).
    async fn direct_tenants(&self, provider: Uuid) -> Result<Arc<Vec<Uuid>>, Status> {
        if let Some(ids) = fresh(&self.direct_tenants, &provider) {
            return Ok(ids);
        }
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .registration
                .list_subscriptions(Request::new(reg::ListSubscriptionsRequest {
                    delegated_provider_subscription_id: provider.hyphenated().to_string(),
                    include_deleted: true,
                    page_size: 1_000,
                    page_token,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            ids.extend(
                page.subscriptions
                    .iter()
                    .filter_map(|s| parse_guid(&s.subscription_id)),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let ids = Arc::new(ids);
        remember(&self.direct_tenants, provider, ids.clone());
        Ok(ids)
    }
}

pub(crate) fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            status::status(
                Reason::MissingCredentials,
                "no caller: the request was not authenticated",
            )
        })
}

fn role_required(what: &str, roles: &[Role]) -> Status {
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    status::status(
        Reason::RoleRequired,
        format!("{what} needs the role {}", names.join(" or ")),
    )
}

fn require(caller: &Caller, what: &str, roles: &[Role]) -> Result<(), Status> {
    if roles.iter().any(|r| caller.has(*r)) {
        Ok(())
    } else {
        Err(role_required(what, roles))
    }
}

fn not_owner(subscription: &str) -> Status {
    status::status(
        Reason::NotSubscriptionOwner,
        format!("subscription {subscription} is not owned by the caller's tenant"),
    )
}

/// Allows a tenant (or an operator) to read `subscription`'s data.
async fn check_owner(
    ownership: &Ownership,
    caller: &Caller,
    subscription: &str,
) -> Result<(), Status> {
    if caller.has(Role::Operator) {
        return Ok(());
    }
    let Some(id) = parse_guid(subscription) else {
        // Malformed: the service behind refuses it with the field named, and returns no data.
        return Ok(());
    };
    match (caller.tenant_id, ownership.owner(id).await?) {
        (Some(tenant), Some(owner)) if tenant == owner => Ok(()),
        _ => Err(not_owner(subscription)),
    }
}

/// The usage contract with access control in front.
pub(crate) struct GuardedUsage {
    pub(crate) inner: Arc<dyn UsageApi>,
    pub(crate) ownership: Arc<Ownership>,
}

#[tonic::async_trait]
impl UsageApi for GuardedUsage {
    async fn post_usage(
        &self,
        request: Request<usage::PostUsageRequest>,
    ) -> Rpc<usage::PostUsageResponse> {
        require(
            &caller_of(&request)?,
            "posting usage",
            &[Role::Operator, Role::ResourceProvider],
        )?;
        self.inner.post_usage(request).await
    }

    async fn list_subscriber_usage_aggregates(
        &self,
        mut request: Request<usage::ListSubscriberUsageAggregatesRequest>,
    ) -> Rpc<usage::ListUsageAggregatesResponse> {
        let caller = caller_of(&request)?;
        if caller.has(Role::Operator) {
            return self.inner.list_subscriber_usage_aggregates(request).await;
        }
        require(
            &caller,
            "the provider usage API",
            &[Role::Operator, Role::DelegatedProvider],
        )?;
        let provider = caller
            .provider_subscription_id
            .expect("checked when the token was verified");
        let direct = self.ownership.direct_tenants(provider).await?;
        let message = request.get_mut();
        if !message.subscriber_id.is_empty() {
            let allowed = parse_guid(&message.subscriber_id).is_some_and(|id| direct.contains(&id));
            if !allowed {
                return Err(status::status(
                    Reason::SubscriberIdIsNotDirectTenant,
                    format!(
                        "subscriber {} is not a direct tenant of provider subscription {}",
                        message.subscriber_id,
                        provider.hyphenated()
                    ),
                ));
            }
        }
        message.subscribers = Some(usage::SubscriberFilter {
            subscription_ids: direct
                .iter()
                .map(|id| id.hyphenated().to_string())
                .collect(),
        });
        self.inner.list_subscriber_usage_aggregates(request).await
    }

    async fn list_usage_aggregates(
        &self,
        request: Request<usage::ListUsageAggregatesRequest>,
    ) -> Rpc<usage::ListUsageAggregatesResponse> {
        let caller = caller_of(&request)?;
        check_owner(&self.ownership, &caller, &request.get_ref().subscription_id).await?;
        self.inner.list_usage_aggregates(request).await
    }

    async fn list_meters(
        &self,
        request: Request<usage::ListMetersRequest>,
    ) -> Rpc<usage::ListMetersResponse> {
        require(&caller_of(&request)?, "listing meters", &[Role::Operator])?;
        self.inner.list_meters(request).await
    }

    async fn create_meter(&self, request: Request<usage::CreateMeterRequest>) -> Rpc<usage::Meter> {
        require(&caller_of(&request)?, "creating meters", &[Role::Operator])?;
        self.inner.create_meter(request).await
    }

    async fn get_pipeline_status(
        &self,
        request: Request<usage::GetPipelineStatusRequest>,
    ) -> Rpc<usage::PipelineStatus> {
        require(
            &caller_of(&request)?,
            "the pipeline status",
            &[Role::Operator],
        )?;
        self.inner.get_pipeline_status(request).await
    }
}

/// The registration contract with access control in front.
pub(crate) struct GuardedRegistration {
    pub(crate) inner: Arc<dyn RegistrationApi>,
    pub(crate) ownership: Arc<Ownership>,
}

/// The impl of [`RegistrationApi`] for [`GuardedRegistration`]: the listed methods are for
/// operators only, the rest are written out. (One macro for the whole impl, because
/// `async_trait` must see the methods expanded.)
macro_rules! guarded_registration {
    (operator_only { $( $method:ident ( $req:ty ) -> $resp:ty, $what:literal; )* } $($custom:tt)*) => {
        #[tonic::async_trait]
        impl RegistrationApi for GuardedRegistration {
            $(
                async fn $method(&self, request: Request<$req>) -> Rpc<$resp> {
                    require(&caller_of(&request)?, $what, &[Role::Operator])?;
                    self.inner.$method(request).await
                }
            )*
            $($custom)*
        }
    };
}

guarded_registration! {
    operator_only {
        get_registration(reg::GetRegistrationRequest) -> reg::RegistrationInfo, "reading the registration";
        set_registration(reg::SetRegistrationRequest) -> reg::RegistrationInfo, "changing the registration";
        remove_registration(reg::RemoveRegistrationRequest) -> reg::RemoveRegistrationResponse, "removing the registration";
        put_customer_subscription(reg::PutCustomerSubscriptionRequest) -> reg::CustomerSubscription, "mapping customer subscriptions";
        list_customer_subscriptions(reg::ListCustomerSubscriptionsRequest) -> reg::ListCustomerSubscriptionsResponse, "listing customer subscriptions";
        get_customer_subscription(reg::GetCustomerSubscriptionRequest) -> reg::CustomerSubscription, "reading customer subscriptions";
        delete_customer_subscription(reg::DeleteCustomerSubscriptionRequest) -> reg::DeleteCustomerSubscriptionResponse, "removing customer subscriptions";
        create_tenant(reg::CreateTenantRequest) -> reg::Tenant, "creating tenants";
        list_tenants(reg::ListTenantsRequest) -> reg::ListTenantsResponse, "listing tenants";
        create_subscription(reg::CreateSubscriptionRequest) -> reg::Subscription, "creating subscriptions";
        delete_subscription(reg::DeleteSubscriptionRequest) -> reg::Subscription, "deleting subscriptions";
    }

    async fn resolve_billing_subscription(
        &self,
        request: Request<reg::ResolveBillingSubscriptionRequest>,
    ) -> Rpc<reg::BillingSubscription> {
        use reg::resolve_billing_subscription_request::Target;
        let caller = caller_of(&request)?;
        match &request.get_ref().target {
            _ if caller.has(Role::Operator) => {}
            Some(Target::TenantId(tenant)) if parse_guid(tenant).is_none() || parse_guid(tenant) != caller.tenant_id => {
                return Err(status::status(Reason::RoleRequired, "only operators may resolve another tenant's billing"));
            }
            Some(Target::TenantId(_)) => {}
            Some(Target::SubscriptionId(subscription)) => check_owner(&self.ownership, &caller, subscription).await?,
            None => {}
        }
        self.inner.resolve_billing_subscription(request).await
    }

    async fn get_tenant(&self, request: Request<reg::GetTenantRequest>) -> Rpc<reg::Tenant> {
        let caller = caller_of(&request)?;
        let own = parse_guid(&request.get_ref().tenant_id).is_some_and(|t| Some(t) == caller.tenant_id);
        if !caller.has(Role::Operator) && !own {
            return Err(status::status(Reason::RoleRequired, "only operators may read another tenant"));
        }
        self.inner.get_tenant(request).await
    }

    async fn get_subscription(&self, request: Request<reg::GetSubscriptionRequest>) -> Rpc<reg::Subscription> {
        let caller = caller_of(&request)?;
        check_owner(&self.ownership, &caller, &request.get_ref().subscription_id).await?;
        self.inner.get_subscription(request).await
    }

    async fn list_subscriptions(
        &self,
        mut request: Request<reg::ListSubscriptionsRequest>,
    ) -> Rpc<reg::ListSubscriptionsResponse> {
        let caller = caller_of(&request)?;
        if !caller.has(Role::Operator) {
            let message = request.get_mut();
            // Narrowed to what the caller may see: its direct tenants, or its own subscriptions.
            match (caller.has(Role::DelegatedProvider), caller.provider_subscription_id, caller.tenant_id) {
                (true, Some(provider), _) => {
                    message.delegated_provider_subscription_id = provider.hyphenated().to_string();
                }
                (_, _, Some(tenant)) => message.owner_tenant_id = tenant.hyphenated().to_string(),
                _ => return Err(role_required("listing subscriptions", &[Role::Operator])),
            }
        }
        self.inner.list_subscriptions(request).await
    }
}

/// The clock with access control in front: anyone authenticated reads it, operators move it.
pub(crate) struct GuardedClock {
    pub(crate) inner: Arc<dyn ClockApi>,
}

#[tonic::async_trait]
impl ClockApi for GuardedClock {
    async fn get_time(&self, request: Request<clock::GetTimeRequest>) -> Rpc<clock::ClockTime> {
        caller_of(&request)?;
        self.inner.get_time(request).await
    }

    async fn advance_clock(
        &self,
        request: Request<clock::AdvanceClockRequest>,
    ) -> Rpc<clock::ClockTime> {
        require(&caller_of(&request)?, "moving the clock", &[Role::Operator])?;
        self.inner.advance_clock(request).await
    }
}
