//! The demo installation: its tenants, their subscriptions, and the registration (pay-as-you-use
//! with CSP multi-tenancy, Contoso mapped to its own customer subscription).

use tally_proto::bearer::AuthorizedChannel;
use tally_proto::registration::v1 as reg;
use tally_proto::registration::v1::{
    registration_client::RegistrationClient, tenancy_client::TenancyClient,
};

/// (name, directory tenant) of the demo installation's tenants.
pub(crate) const TENANTS: &[(&str, &str)] = &[
    ("Contoso", "c0a1b2c3-d4e5-4f60-8172-839405162738"),
    ("Fabrikam", "fa0b1c2d-3e4f-4a5b-9c6d-7e8f90a1b2c3"),
    ("Northwind", "a0b1c2d3-e4f5-4607-8819-2a3b4c5d6e7f"),
];

/// (tenant index, subscription, display name) of the demo installation.
pub(crate) const SUBSCRIPTIONS: &[(usize, &str, &str)] = &[
    (0, "6b1f8c2e-3d4a-4e5b-9c6d-7e8f9a0b1c2d", "Contoso Web"),
    (0, "7c2a9d3f-4e5b-4f6c-8d7e-8f9a0b1c2d3e", "Contoso Data"),
    (1, "8d3b0e4a-5f6c-4a7d-9e8f-9a0b1c2d3e4f", "Fabrikam Logs"),
    (
        1,
        "9e4c1f5b-6a7d-4b8e-8f9a-0b1c2d3e4f5a",
        "Fabrikam Desktops",
    ),
    (
        2,
        "af5d2a6c-7b8e-4c9f-9a0b-1c2d3e4f5a6b",
        "Northwind Analytics",
    ),
];

/// The upstream subscription billed by default, and Contoso's own CSP customer subscription.
const REGISTRATION_SUBSCRIPTION: &str = "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6";
pub(crate) const CONTOSO_CUSTOMER_SUBSCRIPTION: &str = "2f3e4d5c-6b7a-4899-8a1b-d2e3f4a5b6c7";
const CLOUD_ID: &str = "3a4b5c6d-7e8f-4a0b-9c1d-e2f3a4b5c6d7";

/// Accepts "already exists": the demo can run again on the same data folder.
fn created<T>(result: Result<tonic::Response<T>, tonic::Status>) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(status) => Err(status.into()),
    }
}

/// Registers the installation (pay-as-you-use, CSP multi-tenancy), the tenants and their
/// subscriptions, and maps Contoso to its own customer subscription.
pub(crate) async fn set_up_tenancy(channel: &AuthorizedChannel) -> anyhow::Result<()> {
    let mut registration = RegistrationClient::new(channel.clone());
    let mut tenancy = TenancyClient::new(channel.clone());
    registration
        .set_registration(reg::SetRegistrationRequest {
            registration: Some(reg::RegistrationInfo {
                cloud_id: CLOUD_ID.into(),
                registration_subscription_id: REGISTRATION_SUBSCRIPTION.into(),
                billing_model: reg::BillingModel::PayAsYouUse as i32,
                usage_reporting_enabled: true,
                multi_tenancy_enabled: true,
                ..Default::default()
            }),
        })
        .await?;
    for (name, id) in TENANTS {
        created(
            tenancy
                .create_tenant(reg::CreateTenantRequest {
                    tenant: Some(reg::Tenant {
                        tenant_id: id.to_string(),
                        display_name: name.to_string(),
                    }),
                })
                .await,
        )?;
    }
    for (tenant, id, name) in SUBSCRIPTIONS {
        created(
            tenancy
                .create_subscription(reg::CreateSubscriptionRequest {
                    subscription: Some(reg::Subscription {
                        subscription_id: id.to_string(),
                        display_name: name.to_string(),
                        owner_tenant_id: TENANTS[*tenant].1.to_string(),
                        ..Default::default()
                    }),
                })
                .await,
        )?;
    }
    registration
        .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
            tenant_id: TENANTS[0].1.into(),
            customer_subscription_id: CONTOSO_CUSTOMER_SUBSCRIPTION.into(),
        })
        .await?;
    Ok(())
}
