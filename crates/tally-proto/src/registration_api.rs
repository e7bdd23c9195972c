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
