//! `Microsoft.AzureStack/registrations/{name}/customerSubscriptions`, api-version 2017-06-01:
//! the CSP tenant mappings of reference facts §3.6 (PUT 201 empty, GET 200 with `nextLink`
//! carrying `$skipToken`, DELETE 204).

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tally_core::parse_guid;
use tally_proto::registration::v1 as pb;

use super::{Context, RestResult, absolute_url, error, json};

pub(crate) const API_VERSION: &str = "2017-06-01";
const PAGE_SIZE: i32 = 100;

/// The path's parts, as the client spelled them.
pub(crate) struct Target<'a> {
    pub(crate) subscription: &'a str,
    pub(crate) resource_group: &'a str,
    pub(crate) registration: &'a str,
    pub(crate) customer_subscription: Option<&'a str>,
}

#[derive(Serialize)]
struct List {
    value: Vec<Item>,
    #[serde(rename = "nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

#[derive(Serialize)]
struct Item {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: ItemProperties,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ItemProperties {
    #[serde(default)]
    tenant_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct PutBody {
    #[serde(default)]
    properties: Option<ItemProperties>,
}

fn item(registration: &pb::RegistrationInfo, mapping: &pb::CustomerSubscription) -> Item {
    Item {
        id: format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.AzureStack/registrations/{}/customerSubscriptions/{}",
            registration.registration_subscription_id,
            registration.resource_group,
            registration.registration_name,
            mapping.customer_subscription_id
        ),
        name: mapping.customer_subscription_id.clone(),
        kind: "Microsoft.AzureStack/registrations/customerSubscriptions",
        properties: ItemProperties {
            tenant_id: Some(mapping.tenant_id.clone()),
        },
    }
}

fn same_guid(a: &str, b: &str) -> bool {
    matches!((parse_guid(a), parse_guid(b)), (Some(a), Some(b)) if a == b)
}

pub(crate) async fn customer_subscriptions(
    context: Context<'_>,
    method: &Method,
    target: Target<'_>,
    body: &[u8],
) -> RestResult {
    context.params.require_api_version(API_VERSION)?;
    let registry = &context.state.registration;
    let registration = registry
        .get_registration(context.request(pb::GetRegistrationRequest {}))
        .await?
        .into_inner();
    let names_this_registration = registration.status == "Registered"
        && same_guid(
            &registration.registration_subscription_id,
            target.subscription,
        )
        && registration
            .resource_group
            .eq_ignore_ascii_case(target.resource_group)
        && registration
            .registration_name
            .eq_ignore_ascii_case(target.registration);
    if !names_this_registration {
        return Err(error(
            StatusCode::NOT_FOUND,
            "RegistrationNotFound",
            format!(
                "no registration {} in resource group {} of subscription {}",
                target.registration, target.resource_group, target.subscription
            ),
        ));
    }
    match (method, target.customer_subscription) {
        (&Method::GET, None) => {
            let request = pb::ListCustomerSubscriptionsRequest {
                page_size: PAGE_SIZE,
                page_token: context
                    .params
                    .get("$skipToken")
                    .unwrap_or_default()
                    .to_string(),
            };
            let page = registry
                .list_customer_subscriptions(context.request(request))
                .await?
                .into_inner();
            let next_link = (!page.next_page_token.is_empty()).then(|| {
                absolute_url(
                    context.headers,
                    context.path,
                    &[
                        ("api-version", API_VERSION),
                        ("$skipToken", &page.next_page_token),
                    ],
                )
            });
            let value = page
                .customer_subscriptions
                .iter()
                .map(|m| item(&registration, m))
                .collect();
            Ok(json(StatusCode::OK, &List { value, next_link }))
        }
        (&Method::GET, Some(customer)) => {
            let request = pb::GetCustomerSubscriptionRequest {
                customer_subscription_id: customer.to_string(),
            };
            let mapping = registry
                .get_customer_subscription(context.request(request))
                .await?
                .into_inner();
            Ok(json(StatusCode::OK, &item(&registration, &mapping)))
        }
        (&Method::PUT, Some(customer)) => {
            let body: PutBody = if body.is_empty() {
                PutBody::default()
            } else {
                serde_json::from_slice(body).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "InvalidProperty",
                        format!("the body is not valid JSON: {e}"),
                    )
                })?
            };
            let Some(tenant_id) = body.properties.and_then(|p| p.tenant_id) else {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidProperty",
                    "properties.tenantId is required",
                ));
            };
            let request = pb::PutCustomerSubscriptionRequest {
                tenant_id,
                customer_subscription_id: customer.to_string(),
            };
            registry
                .put_customer_subscription(context.request(request))
                .await?;
            Ok(StatusCode::CREATED.into_response())
        }
        (&Method::DELETE, Some(customer)) => {
            let request = pb::DeleteCustomerSubscriptionRequest {
                customer_subscription_id: customer.to_string(),
            };
            registry
                .delete_customer_subscription(context.request(request))
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not allowed on {}", context.path),
        )),
    }
}
