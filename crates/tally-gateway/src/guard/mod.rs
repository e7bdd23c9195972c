//! Authorization: every access decision of the gateway, and nowhere else.
//!
//! Each service contract has a guard here (`Guarded<Service>`, one file per contract) that
//! implements the contract's trait in front of the real service: every method decides from the
//! request's [`Principal`] (and, for ownership, [`Ownership`]), then calls the service with the
//! request unchanged or narrowed. gRPC and REST both call the guards, so a decision is written
//! once. Who may do what:
//!
//! - Operator: everything.
//! - ResourceProvider: post usage, nothing else.
//! - DelegatedProvider: the provider usage API, limited to the subscriptions whose delegated
//!   provider is its provider subscription; a subscriber id outside them is
//!   `SubscriberIdIsNotDirectTenant`, and over REST another provider subscription in the path is
//!   `NotSubscriptionOwner`. It may also list those subscriptions.
//! - Everyone with a tenant (`tid`): the tenant usage API and reads of their own tenant and
//!   subscriptions (those the tenant owns); any other subscription is `NotSubscriptionOwner`,
//!   never an empty page. As in Azure, a deleted subscription is gone for its tenant: its
//!   usage, the subscription itself and its billing are `SubscriptionNotFound` (404), and it is
//!   not listed; operators, and delegated providers for their direct tenants, still see it.
//! - Registration and tenancy writes: Operator only.
//! - The clock: anyone authenticated reads it; only operators move it.
//! - Billing: operators create price sheets and adjustments and read every statement; a tenant
//!   reads its own statements, adjustments and charges only (anything else is
//!   `StatementNotVisible`), and the default and its own price sheets.

mod billing;
mod clock;
mod ownership;
mod registration;
mod usage;

use tally_core::{Reason, parse_guid};
use tally_proto::status;
use tonic::{Request, Status};

pub(crate) use billing::GuardedBilling;
pub(crate) use clock::GuardedClock;
pub use ownership::{OWNERSHIP_TTL, OwnershipCache};
pub(crate) use ownership::{Owner, Ownership};
pub(crate) use registration::GuardedRegistration;
pub(crate) use usage::GuardedUsage;

use crate::principal::{Grants, Principal, Role};

/// The principal the authentication layer put on `request`.
fn principal_of<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .copied()
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

/// Lets only an operator through; `what` names the call in the refusal.
fn operator_only<T>(request: &Request<T>, what: &str) -> Result<(), Status> {
    match principal_of(request)? {
        Principal::Operator => Ok(()),
        Principal::Limited(_) => Err(role_required(what, &[Role::Operator])),
    }
}

fn not_owner(subscription: &str) -> Status {
    status::status(
        Reason::NotSubscriptionOwner,
        format!("subscription {subscription} is not owned by the caller's tenant"),
    )
}

/// A tenant asking for its own subscription after it was deleted: gone, as Azure answers.
fn deleted(subscription: &str) -> Status {
    status::status(
        Reason::SubscriptionNotFound,
        format!("subscription {subscription} was deleted; its usage stays available to operators"),
    )
}

/// Whether `tenant` (as the request spells it) is the caller's own tenant.
fn is_own_tenant(grants: &Grants, tenant: &str) -> bool {
    grants.tenant.is_some() && parse_guid(tenant) == grants.tenant
}

/// Lets an operator, or the tenant owning `subscription`, read that subscription's data.
async fn require_owner(
    ownership: &Ownership,
    principal: &Principal,
    subscription: &str,
) -> Result<(), Status> {
    let grants = match principal {
        Principal::Operator => return Ok(()),
        Principal::Limited(grants) => grants,
    };
    let Some(id) = parse_guid(subscription) else {
        // Malformed: the service behind refuses it with the field named, and returns no data.
        return Ok(());
    };
    let Some(tenant) = grants.tenant else {
        return Err(not_owner(subscription));
    };
    match ownership.owner(id).await? {
        Some(Owner {
            tenant: owner,
            deleted: false,
        }) if owner == tenant => Ok(()),
        Some(Owner {
            tenant: owner,
            deleted: true,
        }) if owner == tenant => Err(deleted(subscription)),
        _ => Err(not_owner(subscription)),
    }
}

/// Whether `principal` may read `/metrics` on the gateway's main listener: operators only (the
/// `--metrics-listen` listener needs no token).
pub(crate) fn may_read_metrics(principal: &Principal) -> Result<(), Status> {
    match principal {
        Principal::Operator => Ok(()),
        Principal::Limited(_) => Err(role_required("reading metrics", &[Role::Operator])),
    }
}
