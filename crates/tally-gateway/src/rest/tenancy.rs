//! `GET /tenancy/v1/tenants` and `GET /tenancy/v1/subscriptions`: `Tenancy` ListTenants and
//! ListSubscriptions as JSON, paged with `pageSize` / `pageToken` and `nextPageToken` (empty on
//! the last page). The guard decides what each caller sees: operators everything, tenants their
//! own subscriptions, delegated providers their direct tenants'.

use axum::http::StatusCode;
use serde::Serialize;
use tally_proto::registration::v1 as pb;
use tally_proto::registration_api::RegistrationApi;

use super::{Context, RestError, RestResult, json};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tenants {
    tenants: Vec<Tenant>,
    next_page_token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tenant {
    tenant_id: String,
    display_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Subscriptions {
    subscriptions: Vec<Subscription>,
    next_page_token: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    subscription_id: String,
    display_name: String,
    owner_tenant_id: String,
    delegated_provider_subscription_id: String,
    state: String,
}

/// `GET /tenancy/v1/tenants[?pageSize=&pageToken=]`: operators only.
pub(crate) async fn tenants(context: Context<'_>) -> RestResult {
    let params = context.params;
    let request = pb::ListTenantsRequest {
        page_size: params.number("pageSize")?,
        page_token: params.get("pageToken").unwrap_or_default().to_string(),
    };
    let page = context
        .state
        .registration
        .list_tenants(context.request(request))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    let tenants = page
        .tenants
        .into_iter()
        .map(|t| Tenant {
            tenant_id: t.tenant_id,
            display_name: t.display_name,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &Tenants {
            tenants,
            next_page_token: page.next_page_token,
        },
    ))
}

/// `GET /tenancy/v1/subscriptions[?ownerTenantId=&delegatedProviderSubscriptionId=&includeDeleted=&pageSize=&pageToken=]`.
pub(crate) async fn subscriptions(context: Context<'_>) -> RestResult {
    let params = context.params;
    let text = |name: &str| params.get(name).unwrap_or_default().to_string();
    let request = pb::ListSubscriptionsRequest {
        owner_tenant_id: text("ownerTenantId"),
        delegated_provider_subscription_id: text("delegatedProviderSubscriptionId"),
        include_deleted: params.flag("includeDeleted")?,
        page_size: params.number("pageSize")?,
        page_token: text("pageToken"),
    };
    let page = context
        .state
        .registration
        .list_subscriptions(context.request(request))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    let subscriptions = page
        .subscriptions
        .into_iter()
        .map(|s| Subscription {
            subscription_id: s.subscription_id,
            display_name: s.display_name,
            owner_tenant_id: s.owner_tenant_id,
            delegated_provider_subscription_id: s.delegated_provider_subscription_id,
            state: s.state,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &Subscriptions {
            subscriptions,
            next_page_token: page.next_page_token,
        },
    ))
}
