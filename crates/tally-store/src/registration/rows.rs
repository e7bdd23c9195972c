//! Each registration table's row and its domain value: one mapping each way, in one place.

use sea_orm::ActiveValue::Set;
use tally_core::registration::{
    BillingModel, Registration, Subscription, SubscriptionState, Tenant,
};

use super::entity::{registration_info, subscription, tenant};
use crate::error::StoreError;
use crate::guid;

/// The only row of `registration_info`: one registration per installation.
pub(super) const REGISTRATION_ROW: i32 = 1;

/// Every billing model, for reading them back.
const BILLING_MODELS: [BillingModel; 3] = [
    BillingModel::PayAsYouUse,
    BillingModel::Capacity,
    BillingModel::Development,
];

/// How a billing model is stored.
fn billing_model_name(model: BillingModel) -> &'static str {
    match model {
        BillingModel::PayAsYouUse => "PayAsYouUse",
        BillingModel::Capacity => "Capacity",
        BillingModel::Development => "Development",
    }
}

fn billing_model_named(name: &str) -> Result<BillingModel, StoreError> {
    BILLING_MODELS
        .into_iter()
        .find(|model| billing_model_name(*model) == name)
        .ok_or_else(|| StoreError::Corrupt(format!("billing model {name:?}")))
}

pub(super) fn registration_row(r: &Registration) -> registration_info::ActiveModel {
    registration_info::ActiveModel {
        id: Set(REGISTRATION_ROW),
        registration_name: Set(r.name.clone()),
        cloud_id: Set(guid::to_text(&r.cloud_id)),
        registration_subscription_id: Set(guid::to_text(&r.subscription_id)),
        resource_group: Set(r.resource_group.clone()),
        billing_model: Set(billing_model_name(r.billing_model).to_string()),
        usage_reporting_enabled: Set(r.usage_reporting_enabled),
        agreement_number: Set(r.agreement_number.clone()),
        multi_tenancy_enabled: Set(r.multi_tenancy_enabled),
    }
}

pub(super) fn registration(row: registration_info::Model) -> Result<Registration, StoreError> {
    Ok(Registration {
        name: row.registration_name,
        cloud_id: guid::from_text(&row.cloud_id)?,
        subscription_id: guid::from_text(&row.registration_subscription_id)?,
        resource_group: row.resource_group,
        billing_model: billing_model_named(&row.billing_model)?,
        usage_reporting_enabled: row.usage_reporting_enabled,
        agreement_number: row.agreement_number,
        multi_tenancy_enabled: row.multi_tenancy_enabled,
    })
}

pub(super) fn tenant_row(t: &Tenant) -> tenant::ActiveModel {
    tenant::ActiveModel {
        tenant_id: Set(guid::to_text(&t.id)),
        display_name: Set(t.display_name.clone()),
    }
}

pub(super) fn tenant(row: tenant::Model) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: guid::from_text(&row.tenant_id)?,
        display_name: row.display_name,
    })
}

pub(super) fn subscription_row(s: &Subscription) -> subscription::ActiveModel {
    subscription::ActiveModel {
        subscription_id: Set(guid::to_text(&s.id)),
        display_name: Set(s.display_name.clone()),
        owner_tenant_id: Set(guid::to_text(&s.owner_tenant_id)),
        delegated_provider_subscription_id: Set(s
            .delegated_provider_subscription_id
            .as_ref()
            .map(guid::to_text)),
        state: Set(s.state.as_str().to_string()),
    }
}

pub(super) fn subscription(row: subscription::Model) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: guid::from_text(&row.subscription_id)?,
        display_name: row.display_name,
        owner_tenant_id: guid::from_text(&row.owner_tenant_id)?,
        delegated_provider_subscription_id: row
            .delegated_provider_subscription_id
            .as_deref()
            .map(guid::from_text)
            .transpose()?,
        state: SubscriptionState::parse(&row.state)
            .ok_or_else(|| StoreError::Corrupt(format!("subscription state {:?}", row.state)))?,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::TryIntoModel;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn every_billing_model_has_one_stored_name() {
        for model in BILLING_MODELS {
            assert_eq!(
                billing_model_named(billing_model_name(model)).unwrap(),
                model
            );
        }
        assert_eq!(billing_model_name(BillingModel::PayAsYouUse), "PayAsYouUse");
        assert!(billing_model_named("payasyouuse").is_err());
    }

    #[test]
    fn a_registration_round_trips_through_its_row() {
        let registration = Registration {
            name: "azurestack-cloud".into(),
            cloud_id: Uuid::from_u128(1),
            subscription_id: Uuid::from_u128(2),
            resource_group: "azurestack".into(),
            billing_model: BillingModel::Capacity,
            usage_reporting_enabled: true,
            agreement_number: Some("EA-1".into()),
            multi_tenancy_enabled: false,
        };
        let row = registration_row(&registration).try_into_model().unwrap();
        assert_eq!(row.id, REGISTRATION_ROW);
        assert_eq!(row.billing_model, "Capacity");
        assert_eq!(super::registration(row).unwrap(), registration);
    }

    #[test]
    fn tenants_and_subscriptions_round_trip_through_their_rows() {
        let t = Tenant {
            id: Uuid::from_u128(3),
            display_name: "Contoso".into(),
        };
        assert_eq!(tenant(tenant_row(&t).try_into_model().unwrap()).unwrap(), t);
        let s = Subscription {
            id: Uuid::from_u128(4),
            display_name: "dev".into(),
            owner_tenant_id: t.id,
            delegated_provider_subscription_id: Some(Uuid::from_u128(5)),
            state: SubscriptionState::Disabled,
        };
        let row = subscription_row(&s).try_into_model().unwrap();
        assert_eq!(row.state, "Disabled");
        assert_eq!(subscription(row).unwrap(), s);
    }

    #[test]
    fn a_row_that_is_not_a_domain_value_is_corrupt() {
        let row = tenant::Model {
            tenant_id: "not-a-guid".into(),
            display_name: String::new(),
        };
        assert!(matches!(tenant(row), Err(StoreError::Corrupt(_))));
    }
}
