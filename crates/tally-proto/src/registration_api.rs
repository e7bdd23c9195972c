//! The registration service (Registration and Tenancy) as a Rust trait ([`RegistrationApi`]),
//! implemented in-process by the registration service and over gRPC by [`RegistrationClient`];
//! [`RegistrationGrpc`] serves any implementation as the two tonic services.

use crate::registration::v1::{
    registration_client::RegistrationClient as RegistrationStub,
    registration_server::{self, Registration, RegistrationServer},
    tenancy_client::TenancyClient as TenancyStub,
    tenancy_server::{self, Tenancy, TenancyServer},
    *,
};
use crate::service_api::service_api;

service_api! {
    /// Registration and Tenancy as one object-safe trait. Requests keep their metadata and
    /// extensions, so the caller's identity travels with them.
    trait RegistrationApi;
    /// The registration service over gRPC.
    client RegistrationClient("the registration service");
    /// Serves any [`RegistrationApi`] as the Registration and Tenancy tonic services.
    server RegistrationGrpc, RegistrationServices;

    Registration / registration (
        RegistrationStub<tonic::transport::Channel>,
        RegistrationServer,
        registration_server::SERVICE_NAME
    ) {
        get_registration(GetRegistrationRequest) -> RegistrationInfo;
        set_registration(SetRegistrationRequest) -> RegistrationInfo;
        remove_registration(RemoveRegistrationRequest) -> RemoveRegistrationResponse;
        put_customer_subscription(PutCustomerSubscriptionRequest) -> CustomerSubscription;
        list_customer_subscriptions(ListCustomerSubscriptionsRequest) -> ListCustomerSubscriptionsResponse;
        delete_customer_subscription(DeleteCustomerSubscriptionRequest) -> DeleteCustomerSubscriptionResponse;
        resolve_billing_subscription(ResolveBillingSubscriptionRequest) -> BillingSubscription;
        get_customer_subscription(GetCustomerSubscriptionRequest) -> CustomerSubscription;
    }
    Tenancy / tenancy (
        TenancyStub<tonic::transport::Channel>,
        TenancyServer,
        tenancy_server::SERVICE_NAME
    ) {
        create_tenant(CreateTenantRequest) -> Tenant;
        get_tenant(GetTenantRequest) -> Tenant;
        list_tenants(ListTenantsRequest) -> ListTenantsResponse;
        create_subscription(CreateSubscriptionRequest) -> Subscription;
        get_subscription(GetSubscriptionRequest) -> Subscription;
        list_subscriptions(ListSubscriptionsRequest) -> ListSubscriptionsResponse;
        delete_subscription(DeleteSubscriptionRequest) -> Subscription;
    }
}

/// Counts the changes to who owns or provides a subscription (created, deleted), so that a
/// gateway in the same process can forget at once what it learned before a change. The
/// registration service counts after each change commits; a reader takes the count before it
/// asks, and trusts its answer only while the count stays the same.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionChanges(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl SubscriptionChanges {
    /// Changes so far.
    pub fn current(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Notes a change that has just committed.
    pub fn changed(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Every subscription's owner tenant, deleted subscriptions included, keyed by the subscription
/// id in lower case: one `ListSubscriptions` call per 1000 subscriptions. What billing and the
/// bridge need to know who pays for a page of usage rows.
pub async fn subscription_owners(
    registration: &dyn RegistrationApi,
) -> Result<std::collections::HashMap<String, String>, tonic::Status> {
    let mut owners = std::collections::HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = registration
            .list_subscriptions(tonic::Request::new(ListSubscriptionsRequest {
                include_deleted: true,
                page_size: 1000,
                page_token,
                ..Default::default()
            }))
            .await?
            .into_inner();
        for subscription in page.subscriptions {
            owners.insert(
                subscription.subscription_id.to_ascii_lowercase(),
                subscription.owner_tenant_id,
            );
        }
        if page.next_page_token.is_empty() {
            return Ok(owners);
        }
        page_token = page.next_page_token;
    }
}
