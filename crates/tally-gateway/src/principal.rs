//! Who is calling, as access control sees it: the [`Principal`] a verified token establishes,
//! and the token role names it is read from.
//!
//! A token may carry several roles and a directory tenant at once; an operator may do
//! everything, so its other claims add nothing, while every other token is the sum of what its
//! claims grant ([`Grants`]). A delegated provider always carries the provider subscription it
//! acts for: a token naming the role without one is refused when it is verified.

use uuid::Uuid;

/// The role names of the token's `roles` claim that Tally reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Operator,
    ResourceProvider,
    DelegatedProvider,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "Operator",
            Role::ResourceProvider => "ResourceProvider",
            Role::DelegatedProvider => "DelegatedProvider",
        }
    }

    /// Case-insensitive, with or without dashes (`resource-provider`).
    pub fn parse(text: &str) -> Option<Role> {
        let key: String = text
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "operator" => Some(Role::Operator),
            "resourceprovider" => Some(Role::ResourceProvider),
            "delegatedprovider" => Some(Role::DelegatedProvider),
            _ => None,
        }
    }
}

/// Who is calling. The authentication layer puts one into every request's extensions; the
/// guards decide from it alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// `roles` holds `Operator`: may call everything.
    Operator,
    /// Any other token: what each of its claims grants (possibly nothing).
    Limited(Grants),
}

/// What a token short of an operator's grants; each part stands on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// `tid`: the directory tenant, whose tenant record, subscriptions and their usage it reads.
    pub tenant: Option<Uuid>,
    /// `ResourceProvider`: may post usage.
    pub resource_provider: bool,
    /// `DelegatedProvider` with the provider subscription it acts for (the
    /// `provider_subscription_id` claim): the provider usage API and the subscription list,
    /// narrowed to that subscription's direct tenants.
    pub delegated_provider: Option<Uuid>,
}

impl Principal {
    /// A tenant user: `tid` and no role.
    pub fn tenant(tenant: Uuid) -> Principal {
        Principal::Limited(Grants {
            tenant: Some(tenant),
            ..Grants::default()
        })
    }

    /// A resource provider without a tenant.
    pub fn resource_provider() -> Principal {
        Principal::Limited(Grants {
            resource_provider: true,
            ..Grants::default()
        })
    }

    /// A delegated provider (reseller) acting for `provider_subscription`, from its `tenant`.
    pub fn delegated_provider(tenant: Option<Uuid>, provider_subscription: Uuid) -> Principal {
        Principal::Limited(Grants {
            tenant,
            delegated_provider: Some(provider_subscription),
            ..Grants::default()
        })
    }

    /// The roles a token for this principal names.
    pub fn roles(&self) -> Vec<Role> {
        match self {
            Principal::Operator => vec![Role::Operator],
            Principal::Limited(grants) => {
                let mut roles = Vec::new();
                if grants.resource_provider {
                    roles.push(Role::ResourceProvider);
                }
                if grants.delegated_provider.is_some() {
                    roles.push(Role::DelegatedProvider);
                }
                roles
            }
        }
    }
}
