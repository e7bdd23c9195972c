//! A small installation for access-control tests: a registration, three tenants (an owner, an
//! unrelated tenant, a reseller), their subscriptions, and some usage.

use chrono::Duration;
use tally_core::Granularity;
use tally_proto::registration::v1 as reg;

use crate::cluster::{Clients, Cluster, Identity};
use crate::records::{batch, meters, record};

pub const OWNER_TENANT: &str = "0a0a0a0a-1111-4111-8111-111111111111";
pub const OTHER_TENANT: &str = "0b0b0b0b-2222-4222-8222-222222222222";
pub const RESELLER_TENANT: &str = "0c0c0c0c-3333-4333-8333-333333333333";
/// The reseller's provider subscription.
pub const PROVIDER_SUBSCRIPTION: &str = "5e5e5e5e-4444-4444-8444-444444444444";
/// Owned by OWNER_TENANT, a direct tenant of the reseller.
pub const OWNED_SUBSCRIPTION: &str = "6f6f6f6f-5555-4555-8555-555555555555";
/// Owned by OTHER_TENANT, a direct tenant of the operator.
pub const OTHER_SUBSCRIPTION: &str = "7a7a7a7a-6666-4666-8666-666666666666";
pub const REGISTRATION_SUBSCRIPTION: &str = "8b8b8b8b-7777-4777-8777-777777777777";
pub const CLOUD_ID: &str = "9c9c9c9c-8888-4888-8888-888888888888";

/// Registers the installation (pay-as-you-use, multi-tenancy on), creates the tenants and
/// subscriptions, posts usage for both user subscriptions and waits until it is folded.
pub async fn populate(cluster: &Cluster) {
    let operator = cluster.operator();
    register(operator, reg::BillingModel::PayAsYouUse, true).await;
    for (tenant, name) in [
        (OWNER_TENANT, "Owner"),
        (OTHER_TENANT, "Other"),
        (RESELLER_TENANT, "Reseller"),
    ] {
        operator
            .tenancy()
            .create_tenant(reg::CreateTenantRequest {
                tenant: Some(reg::Tenant {
                    tenant_id: tenant.into(),
                    display_name: name.into(),
                }),
            })
            .await
            .unwrap();
    }
    for (subscription, owner, provider) in [
        (PROVIDER_SUBSCRIPTION, RESELLER_TENANT, ""),
        (OWNED_SUBSCRIPTION, OWNER_TENANT, PROVIDER_SUBSCRIPTION),
        (OTHER_SUBSCRIPTION, OTHER_TENANT, ""),
    ] {
        operator
            .tenancy()
            .create_subscription(reg::CreateSubscriptionRequest {
                subscription: Some(reg::Subscription {
                    subscription_id: subscription.into(),
                    display_name: format!("subscription of {owner}"),
                    owner_tenant_id: owner.into(),
                    delegated_provider_subscription_id: provider.into(),
                    state: String::new(),
                }),
            })
            .await
            .unwrap();
    }
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let records = vec![
        record(
            "w-owned-1",
            OWNED_SUBSCRIPTION,
            meters::BASE_VM_SIZE_HOURS,
            "vm-owned",
            "2",
            hour,
        ),
        record(
            "w-other-1",
            OTHER_SUBSCRIPTION,
            meters::BASE_VM_SIZE_HOURS,
            "vm-other",
            "3",
            hour,
        ),
    ];
    operator
        .ingestion()
        .post_usage(batch(records))
        .await
        .unwrap();
    let day = Granularity::Daily.bucket_start(cluster.now());
    cluster.settle_at(day + Duration::days(1)).await;
}

pub async fn register(
    operator: &Clients,
    model: reg::BillingModel,
    multi_tenancy: bool,
) -> reg::RegistrationInfo {
    operator
        .registration()
        .set_registration(reg::SetRegistrationRequest {
            registration: Some(reg::RegistrationInfo {
                cloud_id: CLOUD_ID.into(),
                registration_subscription_id: REGISTRATION_SUBSCRIPTION.into(),
                billing_model: model as i32,
                usage_reporting_enabled: model != reg::BillingModel::Capacity,
                agreement_number: if model == reg::BillingModel::Capacity {
                    "EA-42".into()
                } else {
                    String::new()
                },
                multi_tenancy_enabled: multi_tenancy,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The callers of the access matrix.
pub fn callers() -> Vec<(&'static str, Option<Identity>)> {
    vec![
        ("operator", Some(Identity::operator())),
        ("resource provider", Some(Identity::resource_provider())),
        (
            "delegated provider",
            Some(Identity::delegated_provider(
                RESELLER_TENANT,
                PROVIDER_SUBSCRIPTION,
            )),
        ),
        ("owner tenant", Some(Identity::tenant(OWNER_TENANT))),
        ("other tenant", Some(Identity::tenant(OTHER_TENANT))),
        ("anonymous", None),
    ]
}
