//! The registration and tenancy operations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tally_core::registration::{
    BillingModel, Registration, RegistrationInput, RegistrationStatus, Subscription,
    SubscriptionState, Tenant,
};
use tally_core::{Reason, Rejection, format_guid, guid_field, optional_guid_field, parse_guid};
use tally_proto::Rpc;
use tally_proto::registration::v1 as pb;
use tally_proto::registration_api::{RegistrationApi, SubscriptionChanges};
use tally_store::RegistrationStore;
use tally_store::registration::SubscriptionFilter;
use tonic::{Request, Response};
use uuid::Uuid;

use crate::error::RegistrationError;

type Result<T> = std::result::Result<T, RegistrationError>;

const DEFAULT_PAGE_SIZE: i32 = 100;
const MAX_PAGE_SIZE: i32 = 1_000;
const MAX_DISPLAY_NAME: usize = 256;

#[derive(Debug)]
pub struct RegistrationService {
    store: RegistrationStore,
    changes: SubscriptionChanges,
}

fn page_size(requested: i32) -> std::result::Result<u64, Rejection> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE as u64),
        n if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n as u64),
        n => Err(Rejection::field(
            Reason::InvalidProperty,
            "page_size",
            format!("{n} is not between 0 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Page tokens carry the last id of the previous page; altering one only moves the cursor.
fn page_after(token: &str) -> std::result::Result<Option<Uuid>, Rejection> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .map(Some)
        .ok_or_else(|| {
            Rejection::field(
                Reason::InvalidProperty,
                "page_token",
                "is not a token this service issued",
            )
        })
}

fn next_token<T>(page: &[T], limit: u64, last_id: impl Fn(&T) -> Uuid) -> String {
    match page.last() {
        Some(last) if page.len() as u64 == limit => {
            URL_SAFE_NO_PAD.encode(last_id(last).as_bytes())
        }
        _ => String::new(),
    }
}

fn customer_subscription_id(text: &str) -> std::result::Result<Uuid, Rejection> {
    parse_guid(text).ok_or_else(|| {
        Rejection::field(
            Reason::InvalidCustomerSubscriptionId,
            "customer_subscription_id",
            format!("{text:?} is not a subscription id"),
        )
    })
}

fn not_mapped(customer: &Uuid) -> Rejection {
    Rejection::field(
        Reason::CustomerSubscriptionNotFound,
        "customer_subscription_id",
        format!("{} is not mapped to any tenant", format_guid(customer)),
    )
}

fn display_name(field: &str, name: &str) -> std::result::Result<String, Rejection> {
    let name = name.trim();
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(Rejection::field(
            Reason::InvalidProperty,
            field,
            "must be at most 256 printable characters",
        ));
    }
    Ok(name.to_string())
}

fn registration_info(registration: Option<&Registration>) -> pb::RegistrationInfo {
    let Some(r) = registration else {
        return pb::RegistrationInfo {
            status: RegistrationStatus::NotRegistered.as_str().into(),
            ..Default::default()
        };
    };
    pb::RegistrationInfo {
        registration_name: r.name.clone(),
        cloud_id: format_guid(&r.cloud_id),
        registration_subscription_id: format_guid(&r.subscription_id),
        billing_model: match r.billing_model {
            BillingModel::PayAsYouUse => pb::BillingModel::PayAsYouUse,
            BillingModel::Capacity => pb::BillingModel::Capacity,
            BillingModel::Development => pb::BillingModel::Development,
        } as i32,
        usage_reporting_enabled: r.usage_reporting_enabled,
        agreement_number: r.agreement_number.clone().unwrap_or_default(),
        multi_tenancy_enabled: r.multi_tenancy_enabled,
        status: RegistrationStatus::Registered.as_str().into(),
        resource_group: r.resource_group.clone(),
    }
}

fn tenant_message(t: &Tenant) -> pb::Tenant {
    pb::Tenant {
        tenant_id: format_guid(&t.id),
        display_name: t.display_name.clone(),
    }
}

fn subscription_message(s: &Subscription) -> pb::Subscription {
    pb::Subscription {
        subscription_id: format_guid(&s.id),
        display_name: s.display_name.clone(),
        owner_tenant_id: format_guid(&s.owner_tenant_id),
        delegated_provider_subscription_id: s
            .delegated_provider_subscription_id
            .as_ref()
            .map(format_guid)
            .unwrap_or_default(),
        state: s.state.as_str().into(),
    }
}

impl RegistrationService {
    pub async fn open(
        url: &str,
    ) -> std::result::Result<RegistrationService, tally_store::StoreError> {
        Ok(RegistrationService {
            store: RegistrationStore::open(url).await?,
            changes: SubscriptionChanges::default(),
        })
    }

    /// The count of subscription changes this service makes, for a gateway in the same process
    /// to drop its cached ownership the moment a subscription is created or deleted.
    pub fn subscription_changes(&self) -> SubscriptionChanges {
        self.changes.clone()
    }

    async fn registered(&self) -> Result<Registration> {
        self.store.registration().await?.ok_or_else(|| {
            Rejection::new(
                Reason::RegistrationNotFound,
                "this installation is not registered",
            )
            .into()
        })
    }

    async fn set(&self, info: Option<pb::RegistrationInfo>) -> Result<pb::RegistrationInfo> {
        let info = info.ok_or_else(|| {
            Rejection::field(Reason::InvalidProperty, "registration", "is required")
        })?;
        let billing_model = match pb::BillingModel::try_from(info.billing_model) {
            Ok(pb::BillingModel::PayAsYouUse) => Some(BillingModel::PayAsYouUse),
            Ok(pb::BillingModel::Capacity) => Some(BillingModel::Capacity),
            Ok(pb::BillingModel::Development) => Some(BillingModel::Development),
            _ => None,
        };
        let registration = RegistrationInput {
            name: info.registration_name,
            cloud_id: info.cloud_id,
            subscription_id: info.registration_subscription_id,
            resource_group: info.resource_group,
            billing_model,
            usage_reporting_enabled: info.usage_reporting_enabled,
            agreement_number: info.agreement_number,
            multi_tenancy_enabled: info.multi_tenancy_enabled,
        }
        .validate("registration")?;
        self.store.set_registration(&registration).await?;
        Ok(registration_info(Some(&registration)))
    }

    async fn put_mapping(
        &self,
        r: pb::PutCustomerSubscriptionRequest,
    ) -> Result<pb::CustomerSubscription> {
        let tenant = guid_field("tenant_id", &r.tenant_id)?;
        let customer = customer_subscription_id(&r.customer_subscription_id)?;
        self.registered().await?.check_customer_mapping_allowed()?;
        if self.store.tenant(tenant).await?.is_none() {
            return Err(Rejection::field(
                Reason::TenantNotFound,
                "tenant_id",
                format!("tenant {} is not known", format_guid(&tenant)),
            )
            .into());
        }
        self.store
            .put_customer_subscription(tenant, customer)
            .await?;
        Ok(pb::CustomerSubscription {
            customer_subscription_id: format_guid(&customer),
            tenant_id: format_guid(&tenant),
        })
    }

    async fn list_mappings(
        &self,
        r: pb::ListCustomerSubscriptionsRequest,
    ) -> Result<pb::ListCustomerSubscriptionsResponse> {
        self.registered().await?;
        let limit = page_size(r.page_size)?;
        let page = self
            .store
            .customer_subscriptions(page_after(&r.page_token)?, limit)
            .await?;
        Ok(pb::ListCustomerSubscriptionsResponse {
            next_page_token: next_token(&page, limit, |(customer, _)| *customer),
            customer_subscriptions: page
                .iter()
                .map(|(customer, tenant)| pb::CustomerSubscription {
                    customer_subscription_id: format_guid(customer),
                    tenant_id: format_guid(tenant),
                })
                .collect(),
        })
    }

    async fn get_mapping(
        &self,
        r: pb::GetCustomerSubscriptionRequest,
    ) -> Result<pb::CustomerSubscription> {
        let customer = customer_subscription_id(&r.customer_subscription_id)?;
        self.registered().await?;
        let tenant = self
            .store
            .customer_subscription(customer)
            .await?
            .ok_or_else(|| not_mapped(&customer))?;
        Ok(pb::CustomerSubscription {
            customer_subscription_id: format_guid(&customer),
            tenant_id: format_guid(&tenant),
        })
    }

    async fn delete_mapping(&self, r: pb::DeleteCustomerSubscriptionRequest) -> Result<()> {
        let customer = customer_subscription_id(&r.customer_subscription_id)?;
        self.registered().await?;
        if !self.store.delete_customer_subscription(customer).await? {
            return Err(not_mapped(&customer).into());
        }
        Ok(())
    }

    async fn resolve(
        &self,
        r: pb::ResolveBillingSubscriptionRequest,
    ) -> Result<pb::BillingSubscription> {
        use pb::resolve_billing_subscription_request::Target;
        let registration = self.registered().await?;
        let tenant = match r.target {
            Some(Target::TenantId(tenant)) => guid_field("tenant_id", &tenant)?,
            Some(Target::SubscriptionId(subscription)) => {
                let subscription = guid_field("subscription_id", &subscription)?;
                self.store
                    .subscription(subscription)
                    .await?
                    .ok_or_else(|| {
                        Rejection::field(
                            Reason::SubscriptionNotFound,
                            "subscription_id",
                            format!("subscription {} is not known", format_guid(&subscription)),
                        )
                    })?
                    .owner_tenant_id
            }
            None => {
                return Err(Rejection::field(
                    Reason::InvalidProperty,
                    "target",
                    "set tenant_id or subscription_id",
                )
                .into());
            }
        };
        let mapping = self.store.mapping_of_tenant(tenant).await?;
        let (billed, via_customer_mapping) = registration.billing_subscription(mapping);
        Ok(pb::BillingSubscription {
            billing_subscription_id: format_guid(&billed),
            via_customer_mapping,
        })
    }

    async fn create_tenant(&self, tenant: Option<pb::Tenant>) -> Result<pb::Tenant> {
        let tenant = tenant
            .ok_or_else(|| Rejection::field(Reason::InvalidProperty, "tenant", "is required"))?;
        let tenant = Tenant {
            id: guid_field("tenant.tenant_id", &tenant.tenant_id)?,
            display_name: display_name("tenant.display_name", &tenant.display_name)?,
        };
        if !self.store.create_tenant(&tenant).await? {
            return Err(Rejection::field(
                Reason::AlreadyExists,
                "tenant.tenant_id",
                format!("tenant {} already exists", format_guid(&tenant.id)),
            )
            .into());
        }
        Ok(tenant_message(&tenant))
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Tenant> {
        let tenant_id = guid_field("tenant_id", tenant_id)?;
        Ok(self.store.tenant(tenant_id).await?.ok_or_else(|| {
            Rejection::field(
                Reason::TenantNotFound,
                "tenant_id",
                format!("tenant {} is not known", format_guid(&tenant_id)),
            )
        })?)
    }

    async fn create_subscription(
        &self,
        subscription: Option<pb::Subscription>,
    ) -> Result<pb::Subscription> {
        let s = subscription.ok_or_else(|| {
            Rejection::field(Reason::InvalidProperty, "subscription", "is required")
        })?;
        let subscription_id =
            optional_guid_field("subscription.subscription_id", &s.subscription_id)?
                .unwrap_or_else(Uuid::new_v4);
        let owner = guid_field("subscription.owner_tenant_id", &s.owner_tenant_id)?;
        let provider = optional_guid_field(
            "subscription.delegated_provider_subscription_id",
            &s.delegated_provider_subscription_id,
        )?;
        let state = match SubscriptionState::parse(&s.state) {
            Some(SubscriptionState::Deleted) | None => {
                return Err(Rejection::field(
                    Reason::InvalidProperty,
                    "subscription.state",
                    "must be Enabled or Disabled",
                )
                .into());
            }
            Some(state) => state,
        };
        if self.store.tenant(owner).await?.is_none() {
            return Err(Rejection::field(
                Reason::TenantNotFound,
                "subscription.owner_tenant_id",
                format!("tenant {} is not known", format_guid(&owner)),
            )
            .into());
        }
        if let Some(provider) = provider
            && self.store.subscription(provider).await?.is_none()
        {
            return Err(Rejection::field(
                Reason::SubscriptionNotFound,
                "subscription.delegated_provider_subscription_id",
                format!(
                    "provider subscription {} is not known",
                    format_guid(&provider)
                ),
            )
            .into());
        }
        let subscription = Subscription {
            id: subscription_id,
            display_name: display_name("subscription.display_name", &s.display_name)?,
            owner_tenant_id: owner,
            delegated_provider_subscription_id: provider,
            state,
        };
        let created = self.store.create_subscription(&subscription).await?;
        self.changes.changed();
        if !created {
            return Err(Rejection::field(
                Reason::AlreadyExists,
                "subscription.subscription_id",
                format!(
                    "subscription {} already exists",
                    format_guid(&subscription.id)
                ),
            )
            .into());
        }
        Ok(subscription_message(&subscription))
    }

    async fn subscription(&self, subscription_id: &str) -> Result<Subscription> {
        let subscription_id = guid_field("subscription_id", subscription_id)?;
        Ok(self
            .store
            .subscription(subscription_id)
            .await?
            .ok_or_else(|| {
                Rejection::field(
                    Reason::SubscriptionNotFound,
                    "subscription_id",
                    format!(
                        "subscription {} is not known",
                        format_guid(&subscription_id)
                    ),
                )
            })?)
    }

    async fn list_subscriptions(
        &self,
        r: pb::ListSubscriptionsRequest,
    ) -> Result<pb::ListSubscriptionsResponse> {
        let filter = SubscriptionFilter {
            owner_tenant_id: optional_guid_field("owner_tenant_id", &r.owner_tenant_id)?,
            delegated_provider_subscription_id: optional_guid_field(
                "delegated_provider_subscription_id",
                &r.delegated_provider_subscription_id,
            )?,
            include_deleted: r.include_deleted,
        };
        let limit = page_size(r.page_size)?;
        let page = self
            .store
            .subscriptions(&filter, page_after(&r.page_token)?, limit)
            .await?;
        Ok(pb::ListSubscriptionsResponse {
            next_page_token: next_token(&page, limit, |s| s.id),
            subscriptions: page.iter().map(subscription_message).collect(),
        })
    }
}

/// Ready while the registration database answers.
#[tonic::async_trait]
impl tally_proto::server::Readiness for RegistrationService {
    async fn check(&self) -> std::result::Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}

#[tonic::async_trait]
impl RegistrationApi for RegistrationService {
    async fn get_registration(
        &self,
        _: Request<pb::GetRegistrationRequest>,
    ) -> Rpc<pb::RegistrationInfo> {
        let registration = self
            .store
            .registration()
            .await
            .map_err(RegistrationError::from)?;
        Ok(Response::new(registration_info(registration.as_ref())))
    }

    async fn set_registration(
        &self,
        request: Request<pb::SetRegistrationRequest>,
    ) -> Rpc<pb::RegistrationInfo> {
        Ok(Response::new(
            self.set(request.into_inner().registration).await?,
        ))
    }

    async fn remove_registration(
        &self,
        _: Request<pb::RemoveRegistrationRequest>,
    ) -> Rpc<pb::RemoveRegistrationResponse> {
        self.store
            .remove_registration()
            .await
            .map_err(RegistrationError::from)?;
        Ok(Response::new(pb::RemoveRegistrationResponse {}))
    }

    async fn put_customer_subscription(
        &self,
        request: Request<pb::PutCustomerSubscriptionRequest>,
    ) -> Rpc<pb::CustomerSubscription> {
        Ok(Response::new(self.put_mapping(request.into_inner()).await?))
    }

    async fn list_customer_subscriptions(
        &self,
        request: Request<pb::ListCustomerSubscriptionsRequest>,
    ) -> Rpc<pb::ListCustomerSubscriptionsResponse> {
        Ok(Response::new(
            self.list_mappings(request.into_inner()).await?,
        ))
    }

    async fn delete_customer_subscription(
        &self,
        request: Request<pb::DeleteCustomerSubscriptionRequest>,
    ) -> Rpc<pb::DeleteCustomerSubscriptionResponse> {
        self.delete_mapping(request.into_inner()).await?;
        Ok(Response::new(pb::DeleteCustomerSubscriptionResponse {}))
    }

    async fn resolve_billing_subscription(
        &self,
        request: Request<pb::ResolveBillingSubscriptionRequest>,
    ) -> Rpc<pb::BillingSubscription> {
        Ok(Response::new(self.resolve(request.into_inner()).await?))
    }

    async fn get_customer_subscription(
        &self,
        request: Request<pb::GetCustomerSubscriptionRequest>,
    ) -> Rpc<pb::CustomerSubscription> {
        Ok(Response::new(self.get_mapping(request.into_inner()).await?))
    }

    async fn create_tenant(&self, request: Request<pb::CreateTenantRequest>) -> Rpc<pb::Tenant> {
        Ok(Response::new(
            self.create_tenant(request.into_inner().tenant).await?,
        ))
    }

    async fn get_tenant(&self, request: Request<pb::GetTenantRequest>) -> Rpc<pb::Tenant> {
        Ok(Response::new(tenant_message(
            &self.tenant(&request.into_inner().tenant_id).await?,
        )))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Rpc<pb::ListTenantsResponse> {
        let r = request.into_inner();
        let limit = page_size(r.page_size).map_err(RegistrationError::from)?;
        let after = page_after(&r.page_token).map_err(RegistrationError::from)?;
        let page = self
            .store
            .tenants(after, limit)
            .await
            .map_err(RegistrationError::from)?;
        Ok(Response::new(pb::ListTenantsResponse {
            next_page_token: next_token(&page, limit, |t| t.id),
            tenants: page.iter().map(tenant_message).collect(),
        }))
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Rpc<pb::Subscription> {
        Ok(Response::new(
            self.create_subscription(request.into_inner().subscription)
                .await?,
        ))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Rpc<pb::Subscription> {
        Ok(Response::new(subscription_message(
            &self
                .subscription(&request.into_inner().subscription_id)
                .await?,
        )))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Rpc<pb::ListSubscriptionsResponse> {
        Ok(Response::new(
            self.list_subscriptions(request.into_inner()).await?,
        ))
    }

    async fn delete_subscription(
        &self,
        request: Request<pb::DeleteSubscriptionRequest>,
    ) -> Rpc<pb::Subscription> {
        let subscription = self
            .subscription(&request.into_inner().subscription_id)
            .await?;
        let deleted = self
            .store
            .delete_subscription(subscription.id)
            .await
            .map_err(RegistrationError::from)?
            .ok_or_else(|| {
                RegistrationError::from(tally_store::StoreError::Corrupt(
                    "a deleted subscription vanished".into(),
                ))
            })?;
        self.changes.changed();
        Ok(Response::new(subscription_message(&deleted)))
    }
}
