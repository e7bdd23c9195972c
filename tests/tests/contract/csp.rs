//! Registration and CSP multi-tenant billing (docs/azure-stack.md §3).

use tally_contract_tests::world::{
    self, OTHER_SUBSCRIPTION, OTHER_TENANT, OWNED_SUBSCRIPTION, OWNER_TENANT,
    REGISTRATION_SUBSCRIPTION,
};
use tally_contract_tests::{Backend, Clients, Cluster, Topology, on_both_backends};
use tally_proto::registration::v1 as reg;
use tally_proto::status;
use tonic::Code;

on_both_backends!(
    csp_mappings_route_each_tenant_to_its_billing_subscription,
    registration_rules
);

const CUSTOMER_A: &str = "aa000000-0000-4000-8000-00000000000a";
const CUSTOMER_B: &str = "bb000000-0000-4000-8000-00000000000b";

async fn billed(
    operator: &Clients,
    target: reg::resolve_billing_subscription_request::Target,
) -> (String, bool) {
    let b = operator
        .registration()
        .resolve_billing_subscription(reg::ResolveBillingSubscriptionRequest {
            target: Some(target),
        })
        .await
        .unwrap()
        .into_inner();
    (b.billing_subscription_id, b.via_customer_mapping)
}

async fn put(
    operator: &Clients,
    tenant: &str,
    customer: &str,
) -> Result<reg::CustomerSubscription, tonic::Status> {
    operator
        .registration()
        .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
            tenant_id: tenant.into(),
            customer_subscription_id: customer.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn csp_mappings_route_each_tenant_to_its_billing_subscription(backend: Backend) {
    use reg::resolve_billing_subscription_request::Target::{SubscriptionId, TenantId};
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let operator = cluster.operator();
    let base = (REGISTRATION_SUBSCRIPTION.to_string(), false);

    // Unmapped: the base registration subscription.
    assert_eq!(billed(operator, TenantId(OWNER_TENANT.into())).await, base);
    // Mapped: its own subscription, for the tenant and for the subscriptions it owns. Ids are
    // accepted in any spelling and returned canonical.
    let mapped = put(
        operator,
        &OWNER_TENANT.to_uppercase(),
        &format!("{{{}}}", CUSTOMER_A.to_uppercase()),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            mapped.tenant_id.as_str(),
            mapped.customer_subscription_id.as_str()
        ),
        (OWNER_TENANT, CUSTOMER_A)
    );
    assert_eq!(
        billed(operator, TenantId(OWNER_TENANT.into())).await,
        (CUSTOMER_A.to_string(), true)
    );
    assert_eq!(
        billed(operator, SubscriptionId(OWNED_SUBSCRIPTION.into())).await,
        (CUSTOMER_A.to_string(), true)
    );
    assert_eq!(
        billed(operator, SubscriptionId(OTHER_SUBSCRIPTION.into())).await,
        base,
        "other tenants stay on the base"
    );
    // Re-mapped: a second PUT for the tenant replaces the first (one subscription per tenant).
    put(operator, OWNER_TENANT, CUSTOMER_B).await.unwrap();
    assert_eq!(
        billed(operator, TenantId(OWNER_TENANT.into())).await,
        (CUSTOMER_B.to_string(), true)
    );
    let listed = operator
        .registration()
        .list_customer_subscriptions(reg::ListCustomerSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .customer_subscriptions;
    assert_eq!(
        listed,
        [reg::CustomerSubscription {
            customer_subscription_id: CUSTOMER_B.into(),
            tenant_id: OWNER_TENANT.into()
        }]
    );
    let err = operator
        .registration()
        .get_customer_subscription(reg::GetCustomerSubscriptionRequest {
            customer_subscription_id: CUSTOMER_A.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status::reason(&err).as_deref(),
        Some("CustomerSubscriptionNotFound")
    );
    // Unmapped after delete: back to the base subscription.
    operator
        .registration()
        .delete_customer_subscription(reg::DeleteCustomerSubscriptionRequest {
            customer_subscription_id: CUSTOMER_B.into(),
        })
        .await
        .unwrap();
    assert_eq!(billed(operator, TenantId(OWNER_TENANT.into())).await, base);
    let err = operator
        .registration()
        .delete_customer_subscription(reg::DeleteCustomerSubscriptionRequest {
            customer_subscription_id: CUSTOMER_B.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), status::reason(&err).as_deref()),
        (Code::NotFound, Some("CustomerSubscriptionNotFound"))
    );

    // Malformed and unknown ids.
    let err = put(operator, OWNER_TENANT, "not-a-subscription")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), status::reason(&err).as_deref()),
        (Code::InvalidArgument, Some("InvalidCustomerSubscriptionId"))
    );
    let err = put(operator, "not-a-tenant", CUSTOMER_A).await.unwrap_err();
    assert_eq!(
        (status::reason(&err).as_deref(), status::fields(&err)),
        (Some("InvalidProperty"), vec!["tenant_id".to_string()])
    );
    let err = put(operator, "0e0e0e0e-0000-4000-8000-000000000000", CUSTOMER_A)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), status::reason(&err).as_deref()),
        (Code::NotFound, Some("TenantNotFound"))
    );

    // Multi-tenancy switched off: no mapping, and none applies.
    put(operator, OTHER_TENANT, CUSTOMER_A).await.unwrap();
    world::register(operator, reg::BillingModel::PayAsYouUse, false).await;
    let err = put(operator, OWNER_TENANT, CUSTOMER_B).await.unwrap_err();
    assert_eq!(
        (err.code(), status::reason(&err).as_deref()),
        (
            Code::FailedPrecondition,
            Some("UnauthorizedCspRegistration")
        )
    );
    assert_eq!(billed(operator, TenantId(OTHER_TENANT.into())).await, base);
    // Capacity (changing the billing model is SetRegistration again) refuses mappings.
    let info = world::register(operator, reg::BillingModel::Capacity, true).await;
    assert_eq!(
        (info.billing_model, info.agreement_number.as_str()),
        (reg::BillingModel::Capacity as i32, "EA-42")
    );
    let err = put(operator, OWNER_TENANT, CUSTOMER_B).await.unwrap_err();
    assert_eq!(
        (err.code(), status::reason(&err).as_deref()),
        (
            Code::FailedPrecondition,
            Some("CustomerSubscriptionsNotAllowed")
        )
    );
    assert_eq!(billed(operator, TenantId(OTHER_TENANT.into())).await, base);
    cluster.stop().await;
}

async fn registration_rules(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let operator = cluster.operator();
    let info = operator
        .registration()
        .get_registration(reg::GetRegistrationRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.status, "NotRegistered");
    let err = put(operator, OWNER_TENANT, CUSTOMER_A).await.unwrap_err();
    assert_eq!(
        (err.code(), status::reason(&err).as_deref()),
        (Code::NotFound, Some("RegistrationNotFound"))
    );

    let info = world::register(operator, reg::BillingModel::PayAsYouUse, true).await;
    assert_eq!(info.status, "Registered");
    assert_eq!(
        info.registration_name,
        format!("azurestack-{}", world::CLOUD_ID)
    );
    assert_eq!(info.resource_group, "azurestack");
    assert!(info.usage_reporting_enabled);

    let set = |registration: reg::RegistrationInfo| {
        let mut client = operator.registration();
        async move {
            client
                .set_registration(reg::SetRegistrationRequest {
                    registration: Some(registration),
                })
                .await
        }
    };
    let base = reg::RegistrationInfo {
        cloud_id: world::CLOUD_ID.into(),
        registration_subscription_id: REGISTRATION_SUBSCRIPTION.into(),
        billing_model: reg::BillingModel::Capacity as i32,
        ..Default::default()
    };
    let err = set(base.clone()).await.unwrap_err();
    assert_eq!(status::fields(&err), ["registration.agreement_number"]);
    let err = set(reg::RegistrationInfo {
        billing_model: reg::BillingModel::PayAsYouUse as i32,
        ..base.clone()
    })
    .await
    .unwrap_err();
    assert_eq!(
        status::fields(&err),
        ["registration.usage_reporting_enabled"],
        "pay-as-you-use must report usage"
    );
    let err = set(reg::RegistrationInfo {
        billing_model: 0,
        ..base.clone()
    })
    .await
    .unwrap_err();
    assert_eq!(status::fields(&err), ["registration.billing_model"]);
    let err = set(reg::RegistrationInfo {
        cloud_id: "x".into(),
        ..base.clone()
    })
    .await
    .unwrap_err();
    assert_eq!(status::fields(&err), ["registration.cloud_id"]);
    // Development: reporting may be on or off, and nothing else is needed.
    let dev = set(reg::RegistrationInfo {
        billing_model: reg::BillingModel::Development as i32,
        ..base.clone()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(dev.billing_model, reg::BillingModel::Development as i32);

    operator
        .registration()
        .remove_registration(reg::RemoveRegistrationRequest {})
        .await
        .unwrap();
    let info = operator
        .registration()
        .get_registration(reg::GetRegistrationRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.status, "NotRegistered");
    cluster.stop().await;
}
