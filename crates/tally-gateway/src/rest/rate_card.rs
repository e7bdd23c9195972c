//! `GET /subscriptions/{subscriptionId}/providers/Microsoft.Commerce/RateCard?$filter=OfferDurableId
//! eq '..' and Currency eq '..' and Locale eq '..' and RegionInfo eq '..'&api-version=2015-06-01-preview`:
//! Azure's `ResourceRateCardInfo` built from the price sheet in force now for the subscription's
//! owner tenant (its own, else the default). Prices keep their exact decimal text as JSON numbers.
//! Access is the guards': reading the subscription (operators, or its owner tenant) and the
//! tenant's price sheets.

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::value::RawValue;
use tally_proto::billing::v1 as pb;
use tally_proto::clock::v1::GetTimeRequest;
use tally_proto::clock_api::ClockApi;
use tally_proto::convert::utc;
use tally_proto::registration::v1::GetSubscriptionRequest;
use tally_proto::registration_api::RegistrationApi;

use super::{Context, RestError, RestResult, json, utc_text};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RateCard {
    offer_terms: Vec<()>,
    meters: Vec<MeterInfo>,
    currency: String,
    locale: String,
    is_tax_included: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MeterInfo {
    meter_id: String,
    meter_name: String,
    meter_category: String,
    meter_sub_category: String,
    unit: String,
    meter_tags: Vec<String>,
    meter_region: String,
    /// From quantity -> price, each price its exact decimal text as a JSON number.
    meter_rates: std::collections::BTreeMap<String, Box<RawValue>>,
    effective_date: Option<String>,
    included_quantity: u32,
}

/// The `Key eq 'value'` terms of the `$filter`, keys lower-cased.
fn filter_terms(filter: &str) -> Result<Vec<(String, String)>, RestError> {
    let mut terms = Vec::new();
    let lower = filter.to_ascii_lowercase();
    let mut rest = filter;
    let mut rest_lower = lower.as_str();
    loop {
        let end = rest_lower.find(" and ").unwrap_or(rest.len());
        let term = rest[..end].trim();
        let (key, value) = term
            .split_once(" eq ")
            .or_else(|| term.split_once(" EQ "))
            .ok_or_else(|| {
                RestError::invalid(format!("$filter term {term:?} is not `Name eq 'value'`"))
            })?;
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(|| RestError::invalid(format!("$filter value {value:?} must be quoted")))?;
        terms.push((key.trim().to_ascii_lowercase(), value.to_string()));
        if end == rest.len() {
            return Ok(terms);
        }
        rest = &rest[end + 5..];
        rest_lower = &rest_lower[end + 5..];
    }
}

/// The exact decimal text as a JSON number, never through a float (prices are validated
/// decimals when stored; anything else becomes `null`).
fn number(text: &str) -> Box<RawValue> {
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    RawValue::from_string(if valid {
        text.to_string()
    } else {
        "null".into()
    })
    .unwrap_or_else(|_| RawValue::NULL.to_owned())
}

pub(crate) async fn get(context: Context<'_>) -> RestResult {
    context.params.require_api_version("2015-06-01-preview")?;
    let subscription = context
        .path_params
        .get("subscriptionId")
        .unwrap_or_default()
        .to_string();
    let filter = context
        .params
        .get("$filter")
        .ok_or_else(|| RestError::invalid("the $filter query parameter is required"))?;
    let terms = filter_terms(filter)?;
    let term = |name: &str| {
        terms
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let currency =
        term("currency").ok_or_else(|| RestError::invalid("$filter needs Currency eq '...'"))?;
    let locale = term("locale").unwrap_or_else(|| "en-US".into());
    let billing = context.state.billing.as_deref().ok_or_else(|| {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "this gateway fronts no billing service",
        )
    })?;
    // The guard lets operators and the owner tenant read the subscription.
    let owner = context
        .state
        .registration
        .get_subscription(context.request(GetSubscriptionRequest {
            subscription_id: subscription.clone(),
        }))
        .await
        .map_err(RestError::from_service)?
        .into_inner()
        .owner_tenant_id;
    let mut sheets: Vec<pb::PriceSheet> = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = billing
            .list_price_sheets(context.request(pb::ListPriceSheetsRequest {
                tenant_id: String::new(),
                page_size: 1000,
                page_token: page_token.clone(),
            }))
            .await
            .map_err(RestError::from_service)?
            .into_inner();
        sheets.extend(page.price_sheets);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if let Some(first) = sheets.first()
        && first.currency != currency
    {
        return Err(RestError::invalid(format!(
            "Currency {currency} is not this installation's currency {}",
            first.currency
        )));
    }
    let now = context
        .state
        .clock
        .get_time(context.request(GetTimeRequest {}))
        .await
        .map_err(RestError::from_service)?
        .into_inner();
    let now = utc(now.now.as_ref());
    // In force: the latest effective_from <= now (ties: the later created) among the owner's
    // own sheets, else among the default sheets. The list is in creation order.
    let in_force = |tenant: &str| {
        // max_by_key keeps the last of equal maxima: the later created correction.
        sheets
            .iter()
            .filter(|s| s.tenant_id == tenant && utc(s.effective_from.as_ref()) <= now)
            .max_by_key(|s| utc(s.effective_from.as_ref()))
    };
    let sheet = (!owner.is_empty())
        .then(|| in_force(&owner))
        .flatten()
        .or_else(|| in_force(""));
    let catalog = context
        .state
        .usage
        .meter_names()
        .await
        .map_err(RestError::from_service)?;
    let meters = sheet
        .map(|sheet| {
            sheet
                .prices
                .iter()
                .map(|price| {
                    let meter = catalog.iter().find(|m| m.meter_id == price.meter_id);
                    let mut rates = std::collections::BTreeMap::new();
                    if price.tiers.is_empty() {
                        rates.insert("0".into(), number(&price.unit_price));
                    } else {
                        for tier in &price.tiers {
                            rates.insert(tier.from_quantity.clone(), number(&tier.unit_price));
                        }
                    }
                    MeterInfo {
                        meter_id: price.meter_id.clone(),
                        meter_name: meter.map(|m| m.name.clone()).unwrap_or_default(),
                        meter_category: meter
                            .map(|m| m.resource_provider.clone())
                            .unwrap_or_default(),
                        meter_sub_category: String::new(),
                        unit: meter.map(|m| m.unit.clone()).unwrap_or_default(),
                        meter_tags: Vec::new(),
                        meter_region: term("regioninfo").unwrap_or_default(),
                        meter_rates: rates,
                        effective_date: utc_text(sheet.effective_from.as_ref()),
                        included_quantity: 0,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &RateCard {
            offer_terms: Vec::new(),
            meters,
            currency,
            locale,
            is_tax_included: false,
        },
    ))
}
