//! `Microsoft.AzureStack/registrations/{name}/customerSubscriptions`, api-version 2017-06-01:
//! the CSP tenant mappings of docs/azure-stack.md §3.3 (PUT 201 empty, GET 200 with `nextLink`
//! carrying `$skipToken`, DELETE 204).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tally_core::parse_guid;
use tally_proto::registration::v1 as pb;
use tally_proto::registration_api::RegistrationApi;
use tonic::Status;

use super::{Context, FieldNames, RestError, RestResult, absolute_url, json};

pub(crate) const API_VERSION: &str = "2017-06-01";
const PAGE_SIZE: i32 = 100;

/// The route templates: the collection of mappings, and one mapping.
pub(crate) const COLLECTION: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.AzureStack/registrations/{registrationName}/customerSubscriptions";
pub(crate) const ITEM: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.AzureStack/registrations/{registrationName}/customerSubscriptions/{customerSubscriptionId}";

/// The tenant travels in the body, the page token as ARM's `$skipToken`.
const FIELD_NAMES: FieldNames = FieldNames::renaming(&[
    ("tenant_id", "properties.tenantId"),
    ("page_token", "$skipToken"),
]);

fn service_error(status: Status) -> RestError {
    RestError::from_status(&status, &FIELD_NAMES)
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

/// The registration the path names, which must be this installation's: checked first by every
/// method (the guard lets only operators read it).
async fn this_registration(context: &Context<'_>) -> Result<pb::RegistrationInfo, RestError> {
    context.params.require_api_version(API_VERSION)?;
    let registration = context
        .state
        .registration
        .get_registration(context.request(pb::GetRegistrationRequest {}))
        .await
        .map_err(service_error)?
        .into_inner();
    let subscription = context.path_param("subscriptionId")?;
    let resource_group = context.path_param("resourceGroup")?;
    let name = context.path_param("registrationName")?;
    let names_this_registration = registration.status == "Registered"
        && same_guid(&registration.registration_subscription_id, subscription)
        && registration
            .resource_group
            .eq_ignore_ascii_case(resource_group)
        && registration.registration_name.eq_ignore_ascii_case(name);
    if !names_this_registration {
        return Err(RestError::new(
            StatusCode::NOT_FOUND,
            "RegistrationNotFound",
            format!(
                "no registration {name} in resource group {resource_group} of subscription {subscription}"
            ),
        ));
    }
    Ok(registration)
}

/// `GET .../customerSubscriptions`: a page of mappings.
pub(crate) async fn list(context: Context<'_>) -> RestResult {
    let registration = this_registration(&context).await?;
    let request = pb::ListCustomerSubscriptionsRequest {
        page_size: PAGE_SIZE,
        page_token: context
            .params
            .get("$skipToken")
            .unwrap_or_default()
            .to_string(),
    };
    let page = context
        .state
        .registration
        .list_customer_subscriptions(context.request(request))
        .await
        .map_err(service_error)?
        .into_inner();
    let next_link = (!page.next_page_token.is_empty()).then(|| {
        absolute_url(
            &context,
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

/// `GET .../customerSubscriptions/{customerSubscriptionId}`.
pub(crate) async fn get(context: Context<'_>) -> RestResult {
    let registration = this_registration(&context).await?;
    let request = pb::GetCustomerSubscriptionRequest {
        customer_subscription_id: context.path_param("customerSubscriptionId")?.to_string(),
    };
    let mapping = context
        .state
        .registration
        .get_customer_subscription(context.request(request))
        .await
        .map_err(service_error)?
        .into_inner();
    Ok(json(StatusCode::OK, &item(&registration, &mapping)))
}

/// `PUT .../customerSubscriptions/{customerSubscriptionId}` with
/// `{"properties":{"tenantId":..}}`: 201, empty.
pub(crate) async fn put(context: Context<'_>) -> RestResult {
    this_registration(&context).await?;
    let body: PutBody = if context.body.is_empty() {
        PutBody::default()
    } else {
        serde_json::from_slice(context.body)
            .map_err(|e| RestError::invalid(format!("the body is not valid JSON: {e}")))?
    };
    let Some(tenant_id) = body.properties.and_then(|p| p.tenant_id) else {
        return Err(RestError::invalid("properties.tenantId is required"));
    };
    let request = pb::PutCustomerSubscriptionRequest {
        tenant_id,
        customer_subscription_id: context.path_param("customerSubscriptionId")?.to_string(),
    };
    context
        .state
        .registration
        .put_customer_subscription(context.request(request))
        .await
        .map_err(service_error)?;
    Ok(StatusCode::CREATED.into_response())
}

/// `DELETE .../customerSubscriptions/{customerSubscriptionId}`: 204.
pub(crate) async fn delete(context: Context<'_>) -> RestResult {
    this_registration(&context).await?;
    let request = pb::DeleteCustomerSubscriptionRequest {
        customer_subscription_id: context.path_param("customerSubscriptionId")?.to_string(),
    };
    context
        .state
        .registration
        .delete_customer_subscription(context.request(request))
        .await
        .map_err(service_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
