//! `GET /tally/v1/whoami`: the caller as the gateway sees it (token subject and expiry, roles,
//! directory tenant), so the portal and scripts can say who is signed in.

use axum::http::StatusCode;
use serde::Serialize;
use tally_core::{Reason, format_guid};
use tally_proto::registration::v1 as reg;
use tally_proto::registration_api::RegistrationApi;

use super::{Context, RestError, RestResult, json};
use crate::principal::{Grants, Principal};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WhoAmI {
    /// The token's `sub`.
    subject: String,
    /// Tally's roles the token carries; none for a tenant user.
    roles: Vec<&'static str>,
    /// The directory tenant whose data the caller reads (none for an operator: it reads all).
    tenant_id: Option<String>,
    /// That tenant's display name, when Tally knows the tenant.
    tenant_display_name: Option<String>,
    /// A delegated provider's provider subscription.
    provider_subscription_id: Option<String>,
    /// When the token expires.
    expires_time: Option<String>,
}

pub(crate) async fn whoami(context: Context<'_>) -> RestResult {
    let (Some(principal), Some(subject)) = (context.principal, context.subject) else {
        return Err(RestError::from_reason(
            Reason::MissingCredentials,
            "no caller: the request was not authenticated",
        ));
    };
    let grants = match principal {
        Principal::Operator => Grants::default(),
        Principal::Limited(grants) => *grants,
    };
    let tenant_display_name = match grants.tenant {
        None => None,
        Some(tenant) => {
            let request = context.request(reg::GetTenantRequest {
                tenant_id: format_guid(&tenant),
            });
            match context.state.registration.get_tenant(request).await {
                Ok(found) => Some(found.into_inner().display_name),
                Err(status) if status.code() == tonic::Code::NotFound => None,
                Err(status) => return Err(RestError::from_service(status)),
            }
        }
    };
    let body = WhoAmI {
        subject: subject.subject.clone(),
        roles: principal.roles().into_iter().map(|r| r.name()).collect(),
        tenant_id: grants.tenant.as_ref().map(format_guid),
        tenant_display_name,
        provider_subscription_id: grants.delegated_provider.as_ref().map(format_guid),
        expires_time: subject
            .expires
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    Ok(json(StatusCode::OK, &body))
}
