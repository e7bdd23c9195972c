//! `Microsoft.Commerce/UsageAggregates` (tenant) and
//! `Microsoft.Commerce.Admin/subscriberUsageAggregates` (provider), api-version
//! 2015-06-01-preview, shaped as docs/azure-stack.md §2 describe.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use tally_core::{Granularity, parse_guid};
use tally_proto::convert::{Timestamp, timestamp};
use tally_proto::usage::v1 as pb;
use tally_proto::usage_api::UsageApi;
use tonic::Status;
use uuid::Uuid;

use super::{Context, FieldNames, Params, RestError, RestResult, absolute_url, json};
use crate::guard::GuardedUsage;

pub(crate) const API_VERSION: &str = "2015-06-01-preview";

/// The query parameters are the proto JSON names of the request fields.
const FIELD_NAMES: FieldNames = FieldNames::JSON;

fn service_error(status: Status) -> RestError {
    RestError::from_status(&status, &FIELD_NAMES)
}

/// Meter names and units for the rows (Azure's usage API returns them; operators' tools use
/// them), looked up through the usage guard and refreshed when an unknown meter shows up.
#[derive(Default)]
pub(crate) struct MeterNames {
    known: RwLock<HashMap<Uuid, (String, String)>>,
}

impl MeterNames {
    async fn lookup(
        &self,
        usage: &GuardedUsage,
        rows: &[pb::UsageAggregate],
    ) -> HashMap<Uuid, (String, String)> {
        let missing = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            rows.iter()
                .any(|r| parse_guid(&r.meter_id).is_some_and(|id| !known.contains_key(&id)))
        };
        if missing {
            match usage.meter_names().await {
                Ok(meters) => {
                    let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
                    for m in meters {
                        if let Some(id) = parse_guid(&m.meter_id) {
                            known.insert(id, (m.name, m.unit));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list meters; rows go without names"),
            }
        }
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Serialize)]
struct Page {
    value: Vec<Aggregate>,
    #[serde(rename = "nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

#[derive(Serialize)]
struct Aggregate {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: Properties,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    subscription_id: String,
    usage_start_time: String,
    usage_end_time: String,
    /// A string holding JSON, as Azure sends it.
    instance_data: String,
    /// The exact decimal, written as a JSON number.
    quantity: Box<RawValue>,
    meter_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meter_name: Option<String>,
}

#[derive(Serialize)]
struct InstanceData<'a> {
    #[serde(rename = "Microsoft.Resources")]
    resources: Resources<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resources<'a> {
    resource_uri: &'a str,
    location: &'a str,
    tags: Option<&'a BTreeMap<String, String>>,
    additional_info: Option<&'a BTreeMap<String, String>>,
}

/// A reported time as clients send it: percent-escaped or not, `Z`, `+00:00`, `.000Z`, even
/// `+00:00Z` (the doc's own example), a plain date, or a local time meaning UTC.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    // `+` decodes to a space in a query string; some clients also escape twice.
    let mut text = text.trim().replace(' ', "+");
    if text.contains('%') {
        text = form_urlencoded::parse(format!("v={text}").as_bytes())
            .next()
            .map(|(_, v)| v.replace(' ', "+"))?;
    }
    if let Some(stripped) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z'))
        && let Some(t_at) = stripped.find('T')
        && stripped[t_at..].contains(['+', '-'])
    {
        text = stripped.to_string();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// The query parameter `name`'s time, if given. Tally's times are nanoseconds in an `i64`, so
/// a time outside 1677-09-21 to 2262-04-11 is refused here, naming the parameter.
fn query_time(name: &str, text: &str) -> Result<Timestamp, RestError> {
    let Some(time) = parse_time(text) else {
        return Err(RestError::invalid(format!(
            "{name}: {text:?} is not an ISO 8601 UTC time such as 2026-11-27T00:00:00Z"
        )));
    };
    if !tally_core::time::is_kept(time) {
        return Err(RestError::invalid(format!(
            "{name}: {text:?} is outside the times Tally keeps ({})",
            tally_core::time::KEPT_TIMES
        )));
    }
    Ok(timestamp(time))
}

/// The window, granularity and flags every usage request shares.
pub(super) struct Window {
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    granularity: pb::AggregationGranularity,
    allow_incomplete: bool,
    continuation_token: String,
}

impl Window {
    /// The reported start and end the query asks for, as UTC.
    pub(super) fn times(&self) -> super::ReportedTimes {
        (
            tally_proto::convert::utc(self.start.as_ref()),
            tally_proto::convert::utc(self.end.as_ref()),
        )
    }
}

pub(super) fn window(params: &Params) -> Result<Window, RestError> {
    params.require_api_version(API_VERSION)?;
    let time = |name: &str| {
        params
            .get(name)
            .map(|text| query_time(name, text))
            .transpose()
    };
    let granularity = match params.get("aggregationGranularity") {
        None => pb::AggregationGranularity::Daily,
        Some(name) => match Granularity::parse_name(name) {
            Some(Granularity::Daily) => pb::AggregationGranularity::Daily,
            Some(Granularity::Hourly) => pb::AggregationGranularity::Hourly,
            None => {
                return Err(RestError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidAggregationGranularity",
                    format!("aggregationGranularity {name:?} is not daily or hourly"),
                ));
            }
        },
    };
    let allow_incomplete = params.flag("allowIncomplete")?;
    Ok(Window {
        start: time("reportedStartTime")?,
        end: time("reportedEndTime")?,
        granularity,
        allow_incomplete,
        continuation_token: params
            .get("continuationToken")
            .unwrap_or_default()
            .to_string(),
    })
}

/// The subscription of the path, which ARM requires.
fn path_subscription(context: &Context<'_>) -> Result<Uuid, RestError> {
    let text = context.path_param("subscriptionId")?;
    if text.trim().is_empty() {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "SubscriptionIdMissingInRequest",
            "the subscription id is missing from the path",
        ));
    }
    parse_guid(text)
        .ok_or_else(|| RestError::invalid(format!("subscription id {text:?} is not a GUID")))
}

/// `GET /subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates`.
pub(crate) async fn tenant(context: Context<'_>) -> RestResult {
    let subscription = path_subscription(&context)?;
    let window = window(context.params)?;
    let request = pb::ListUsageAggregatesRequest {
        subscription_id: subscription.hyphenated().to_string(),
        reported_start_time: window.start,
        reported_end_time: window.end,
        aggregation_granularity: window.granularity as i32,
        page_size: 0,
        continuation_token: window.continuation_token,
        allow_incomplete: window.allow_incomplete,
    };
    let page = context
        .state
        .usage
        .list_usage_aggregates(context.request(request))
        .await
        .map_err(service_error)?;
    respond(&context, page.into_inner(), "Microsoft.Commerce").await
}

/// `GET /subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates`,
/// the provider subscription in the path.
pub(crate) async fn provider(context: Context<'_>) -> RestResult {
    let provider_subscription = path_subscription(&context)?;
    let window = window(context.params)?;
    let request = pb::ListSubscriberUsageAggregatesRequest {
        reported_start_time: window.start,
        reported_end_time: window.end,
        aggregation_granularity: window.granularity as i32,
        subscriber_id: context
            .params
            .get("subscriberId")
            .unwrap_or_default()
            .to_string(),
        page_size: 0,
        continuation_token: window.continuation_token,
        allow_incomplete: window.allow_incomplete,
        subscribers: None,
        sum_instances: false,
    };
    let page = context
        .state
        .usage
        .list_subscriber_usage_aggregates_under(provider_subscription, context.request(request))
        .await
        .map_err(service_error)?;
    respond(&context, page.into_inner(), "Microsoft.Commerce.Admin").await
}

fn rfc3339(ts: Option<&Timestamp>) -> String {
    tally_proto::convert::utc(ts)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
        .unwrap_or_default()
}

async fn respond(
    context: &Context<'_>,
    page: pb::ListUsageAggregatesResponse,
    namespace: &'static str,
) -> RestResult {
    let meters = context
        .state
        .meters
        .lookup(&context.state.usage, &page.usage_aggregates)
        .await;
    let kind = match namespace {
        "Microsoft.Commerce" => "Microsoft.Commerce/UsageAggregate",
        _ => "Microsoft.Commerce.Admin/UsageAggregate",
    };
    let mut value = Vec::with_capacity(page.usage_aggregates.len());
    for row in &page.usage_aggregates {
        let instance = row.instance_data.clone().unwrap_or_default();
        let instance_data = serde_json::to_string(&InstanceData {
            resources: Resources {
                resource_uri: &instance.resource_uri,
                location: &instance.location,
                tags: (!instance.tags.is_empty()).then_some(&instance.tags),
                additional_info: (!instance.additional_info.is_empty())
                    .then_some(&instance.additional_info),
            },
        })
        .unwrap_or_default();
        let Ok(quantity) = RawValue::from_string(row.quantity.clone()) else {
            tracing::error!(quantity = %row.quantity, "a quantity is not a JSON number");
            return Err(RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal error",
            ));
        };
        let meter = parse_guid(&row.meter_id).and_then(|id| meters.get(&id));
        let name = format!("{}-{}", row.subscription_id, row.meter_id);
        value.push(Aggregate {
            id: format!(
                "/subscriptions/{}/providers/{namespace}/UsageAggregate/{name}",
                row.subscription_id
            ),
            name,
            kind,
            properties: Properties {
                subscription_id: row.subscription_id.clone(),
                usage_start_time: rfc3339(row.usage_start_time.as_ref()),
                usage_end_time: rfc3339(row.usage_end_time.as_ref()),
                instance_data,
                quantity,
                meter_id: row.meter_id.clone(),
                unit: meter.map(|(_, unit)| unit.clone()),
                meter_name: meter.map(|(name, _)| name.clone()),
            },
        });
    }
    // Everything the next page needs travels in nextLink: clients send back only its query.
    let next_link = (!page.continuation_token.is_empty()).then(|| {
        let mut params = context.params.others("continuationToken");
        params.push(("continuationToken", &page.continuation_token));
        absolute_url(context, &params)
    });
    Ok(json(StatusCode::OK, &Page { value, next_link }))
}

#[cfg(test)]
mod tests {
    use super::{parse_time, query_time};

    #[test]
    fn every_time_spelling_clients_send() {
        let midnight = "2026-11-27T00:00:00+00:00";
        for text in [
            "2026-11-27T00:00:00Z",
            "2026-11-27T00:00:00.000Z",
            "2026-11-27T00:00:00+00:00",
            "2026-11-27T00:00:00 00:00",
            "2026-11-27T00:00:00+00:00Z",
            "2026-11-27T00%3a00%3a00%2b00%3a00",
            "2026-11-27T00%3A00%3A00.000Z",
            "2026-11-27T00:00:00",
            "2026-11-27",
            "2026-11-27T01:00:00+01:00",
        ] {
            assert_eq!(
                parse_time(text).map(|t| t.to_rfc3339()),
                Some(midnight.to_string()),
                "{text}"
            );
        }
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn times_tally_cannot_keep_are_refused_naming_the_parameter() {
        assert_eq!(
            query_time("reportedEndTime", "2262-04-11T00:00:00Z")
                .unwrap()
                .seconds,
            9_223_286_400
        );
        for text in ["2300-01-01T00:00:00Z", "1600-01-01", "9999-12-31T23:00:00Z"] {
            let error = query_time("reportedStartTime", text).unwrap_err();
            assert_eq!(
                error.parts(),
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    "InvalidProperty",
                    format!(
                        "reportedStartTime: {text:?} is outside the times Tally keeps (1677-09-21 to 2262-04-11)"
                    )
                    .as_str()
                )
            );
        }
    }
}
