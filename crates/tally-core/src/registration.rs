//! Registration and tenancy: the installation's registration with its upstream commerce system,
//! its billing model, and the rules of CSP multi-tenant billing (docs/azure-stack.md §3).

use uuid::Uuid;

use crate::error::{Reason, Rejection};
use crate::guid::parse_guid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingModel {
    PayAsYouUse,
    Capacity,
    Development,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationStatus {
    Registered,
    NotRegistered,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::Registered => "Registered",
            RegistrationStatus::NotRegistered => "NotRegistered",
        }
    }
}

/// Where the registration resource lives when no resource group is given.
pub const DEFAULT_RESOURCE_GROUP: &str = "azurestack";

/// A valid registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub cloud_id: Uuid,
    pub subscription_id: Uuid,
    pub resource_group: String,
    pub billing_model: BillingModel,
    pub usage_reporting_enabled: bool,
    pub agreement_number: Option<String>,
    pub multi_tenancy_enabled: bool,
}

/// A registration as submitted, before its rules are checked.
#[derive(Clone, Debug, Default)]
pub struct RegistrationInput {
    pub name: String,
    pub cloud_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub billing_model: Option<BillingModel>,
    pub usage_reporting_enabled: bool,
    pub agreement_number: String,
    pub multi_tenancy_enabled: bool,
}

fn is_arm_name(text: &str) -> bool {
    (1..=90).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
        && !text.ends_with('.')
}

impl RegistrationInput {
    /// Checks the registration rules. `field` prefixes the names of bad fields.
    pub fn validate(self, field: &str) -> Result<Registration, Rejection> {
        let bad = |name: &str, description: &str| {
            Rejection::field(
                Reason::InvalidProperty,
                format!("{field}.{name}"),
                description,
            )
        };
        let cloud_id =
            parse_guid(&self.cloud_id).ok_or_else(|| bad("cloud_id", "must be a GUID"))?;
        let subscription_id = parse_guid(&self.subscription_id)
            .ok_or_else(|| bad("registration_subscription_id", "must be a GUID"))?;
        let billing_model = self.billing_model.ok_or_else(|| {
            bad(
                "billing_model",
                "must be PayAsYouUse, Capacity or Development",
            )
        })?;
        let name = if self.name.is_empty() {
            format!("azurestack-{}", cloud_id.hyphenated())
        } else {
            self.name
        };
        if !is_arm_name(&name) {
            return Err(bad(
                "registration_name",
                "must be 1 to 90 letters, digits, '-', '_', '.', '(' or ')'",
            ));
        }
        let resource_group = if self.resource_group.is_empty() {
            DEFAULT_RESOURCE_GROUP.to_string()
        } else {
            self.resource_group
        };
        if !is_arm_name(&resource_group) {
            return Err(bad(
                "resource_group",
                "must be 1 to 90 letters, digits, '-', '_', '.', '(' or ')'",
            ));
        }
        let agreement_number = match (billing_model, self.agreement_number.trim()) {
            (BillingModel::Capacity, "") => {
                return Err(bad(
                    "agreement_number",
                    "is required for the Capacity billing model",
                ));
            }
            (BillingModel::Capacity, number) => Some(number.to_string()),
            (_, "") => None,
            (_, _) => {
                return Err(bad(
                    "agreement_number",
                    "is only used with the Capacity billing model",
                ));
            }
        };
        if billing_model == BillingModel::PayAsYouUse && !self.usage_reporting_enabled {
            return Err(bad(
                "usage_reporting_enabled",
                "pay-as-you-use registrations must report usage",
            ));
        }
        Ok(Registration {
            name,
            cloud_id,
            subscription_id,
            resource_group,
            billing_model,
            usage_reporting_enabled: self.usage_reporting_enabled,
            agreement_number,
            multi_tenancy_enabled: self.multi_tenancy_enabled,
        })
    }
}

impl Registration {
    /// Whether this registration may map tenants to their own customer subscriptions.
    pub fn check_customer_mapping_allowed(&self) -> Result<(), Rejection> {
        if self.billing_model == BillingModel::Capacity {
            return Err(Rejection::new(
                Reason::CustomerSubscriptionsNotAllowed,
                "a Capacity registration cannot map tenants to customer subscriptions; only pay-as-you-use registrations can",
            ));
        }
        if !self.multi_tenancy_enabled {
            return Err(Rejection::new(
                Reason::UnauthorizedCspRegistration,
                "multi-tenancy is not enabled for this registration",
            ));
        }
        Ok(())
    }

    /// The subscription billed for a tenant with `mapping` (its customer subscription, if any):
    /// the mapping while multi-tenant billing applies, otherwise the base registration
    /// subscription.
    pub fn billing_subscription(&self, mapping: Option<Uuid>) -> (Uuid, bool) {
        match mapping {
            Some(customer) if self.check_customer_mapping_allowed().is_ok() => (customer, true),
            _ => (self.subscription_id, false),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    Enabled,
    Disabled,
    Deleted,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Enabled => "Enabled",
            SubscriptionState::Disabled => "Disabled",
            SubscriptionState::Deleted => "Deleted",
        }
    }

    /// Case-insensitive; empty means Enabled.
    pub fn parse(text: &str) -> Option<SubscriptionState> {
        match text.to_ascii_lowercase().as_str() {
            "" | "enabled" => Some(SubscriptionState::Enabled),
            "disabled" => Some(SubscriptionState::Disabled),
            "deleted" => Some(SubscriptionState::Deleted),
            _ => None,
        }
    }
}

/// A directory tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: Uuid,
    pub display_name: String,
}

/// A user subscription of the installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub display_name: String,
    pub owner_tenant_id: Uuid,
    /// The reseller tier (docs/azure-stack.md §2): the provider subscription this is a direct tenant of, if not the
    /// operator's.
    pub delegated_provider_subscription_id: Option<Uuid>,
    pub state: SubscriptionState,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(model: BillingModel) -> RegistrationInput {
        RegistrationInput {
            cloud_id: "{6A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D}".into(),
            subscription_id: "11111111-2222-4333-8444-555555555555".into(),
            billing_model: Some(model),
            usage_reporting_enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_reference_conventions() {
        let r = input(BillingModel::PayAsYouUse)
            .validate("registration")
            .unwrap();
        assert_eq!(r.name, "azurestack-6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
        assert_eq!(r.resource_group, "azurestack");
    }

    #[test]
    fn billing_model_rules() {
        let err = input(BillingModel::Capacity)
            .validate("registration")
            .unwrap_err();
        assert_eq!(err.violations[0].field, "registration.agreement_number");
        let mut capacity = input(BillingModel::Capacity);
        capacity.agreement_number = "EA-1234".into();
        capacity.usage_reporting_enabled = false;
        assert!(capacity.validate("registration").is_ok());
        let mut payg = input(BillingModel::PayAsYouUse);
        payg.usage_reporting_enabled = false;
        assert_eq!(
            payg.validate("registration").unwrap_err().violations[0].field,
            "registration.usage_reporting_enabled"
        );
        let mut none = input(BillingModel::Development);
        none.billing_model = None;
        assert_eq!(
            none.validate("registration").unwrap_err().violations[0].field,
            "registration.billing_model"
        );
    }

    #[test]
    fn csp_mapping_rules() {
        let customer = Uuid::from_u128(7);
        let mut r = input(BillingModel::PayAsYouUse).validate("r").unwrap();
        assert_eq!(
            r.check_customer_mapping_allowed().unwrap_err().reason,
            Reason::UnauthorizedCspRegistration
        );
        assert_eq!(
            r.billing_subscription(Some(customer)),
            (r.subscription_id, false)
        );
        r.multi_tenancy_enabled = true;
        assert_eq!(r.billing_subscription(Some(customer)), (customer, true));
        assert_eq!(r.billing_subscription(None), (r.subscription_id, false));
        r.billing_model = BillingModel::Capacity;
        assert_eq!(
            r.check_customer_mapping_allowed().unwrap_err().reason,
            Reason::CustomerSubscriptionsNotAllowed
        );
        assert_eq!(
            r.billing_subscription(Some(customer)),
            (r.subscription_id, false)
        );
    }
}
