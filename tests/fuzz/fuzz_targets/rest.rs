//! Fuzz target: REST routing and query parsing (`tally_gateway::probe_request`): the route table
//! matched case-insensitively with percent-decoded `{params}`, the query's parameters, and the
//! usage routes' window (api-version, granularity, flags, reported times as clients spell them).
//! No server: what the gateway does with a request line before any handler or guard runs.
//! Invariants: a refusal is a 4xx; a matched route matches again when its parameters are
//! percent-encoded back into the template; the parsed query parses again to itself.
#![no_main]

use arbitrary::Arbitrary;
use axum::http::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tally_gateway::{RestProbe, RestRefusal, probe_request};

const TEMPLATES: &[&str] = &[
    "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates",
    "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates",
    "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/locations/{location}/subscriberUsageAggregates",
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.AzureStack/registrations/{registrationName}/customerSubscriptions",
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.AzureStack/registrations/{registrationName}/customerSubscriptions/{customerSubscriptionId}",
    "/tally/v1/whoami",
    "/clock/v1/time",
    "/bridge/v1/status",
    "/bridge/v1/uploads",
    "/usage/v1/pipeline",
    "/tenancy/v1/tenants",
    "/tenancy/v1/subscriptions",
    "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/RateCard",
    "/billing/v1/periods/{period}/statements",
    "/billing/v1/periods/{period}/statements/{tenantId}",
    "/billing/v1/periods/{period}/charges",
];

const KEYS: &[&str] = &[
    "api-version",
    "reportedStartTime",
    "reportedEndTime",
    "aggregationGranularity",
    "showDetails",
    "allowIncomplete",
    "continuationToken",
    "pageSize",
    "$filter",
];

const VALUES: &[&str] = &[
    "2015-06-01-preview",
    "2017-06-01",
    "2026-11-27T00:00:00Z",
    "2026-11-27T00:00:00+00:00",
    "2026-11-27T00%3A00%3A00%2B00%3A00Z",
    "2026-11-27",
    "2300-01-01T00:00:00Z",
    "1677-01-01T00:00:00Z",
    "Daily",
    "hourly",
    "true",
    "FALSE",
];

#[derive(Arbitrary, Debug)]
enum Part {
    Known(u8),
    Any(String),
}

impl Part {
    fn text(&self, known: &[&str]) -> String {
        match self {
            Part::Known(i) => known[usize::from(*i) % known.len()].to_string(),
            Part::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Path {
    /// A route's template with its `{params}` filled in (percent-encoded).
    Template(u8, Vec<String>, bool),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Query {
    Pairs(Vec<(Part, Part)>),
    Raw(String),
    Absent,
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Part,
    path: Path,
    query: Query,
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// `template` with each `{param}` replaced by the next of `values`, percent-encoded.
fn fill(template: &str, values: &[String], shout: bool) -> String {
    let mut values = values.iter();
    let mut path = String::new();
    for part in template.trim_start_matches('/').split('/') {
        path.push('/');
        if part.starts_with('{') {
            path.push_str(&encode(values.next().map_or("x", String::as_str)));
        } else if shout {
            path.push_str(&part.to_ascii_uppercase());
        } else {
            path.push_str(part);
        }
    }
    path
}

fn probe(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<Result<RestProbe, RestRefusal>> {
    let uri = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let uri = Uri::try_from(uri).ok()?;
    Some(probe_request(method, &uri))
}

fuzz_target!(|input: Input| {
    let Ok(method) = Method::from_bytes(
        input
            .method
            .text(&["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD"])
            .as_bytes(),
    ) else {
        return;
    };
    let path = match &input.path {
        Path::Template(i, values, shout) => {
            fill(TEMPLATES[usize::from(*i) % TEMPLATES.len()], values, *shout)
        }
        Path::Raw(raw) => raw.clone(),
    };
    let query = match &input.query {
        Query::Pairs(pairs) => Some(
            pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(&k.text(KEYS)), v.text(VALUES)))
                .collect::<Vec<_>>()
                .join("&"),
        ),
        Query::Raw(raw) => Some(raw.clone()),
        Query::Absent => None,
    };
    let Some(result) = probe(&method, &path, query.as_deref()) else {
        return;
    };
    let found = match result {
        Err(refusal) => {
            assert!(
                (400..500).contains(&refusal.status),
                "{refusal:?} for {path:?}"
            );
            assert!(!refusal.code.is_empty());
            return;
        }
        Ok(found) => found,
    };
    assert!(TEMPLATES.contains(&found.template), "{found:?}");
    assert_eq!(
        found.path_params.len(),
        found.template.matches('{').count(),
        "{found:?}"
    );
    if let Some((start, end)) = found.usage_window {
        for time in [start, end].into_iter().flatten() {
            assert!(time.timestamp_nanos_opt().is_some(), "{time} is kept");
        }
    }
    // The parameters, encoded back into the template, and the query, serialized again, route and
    // parse to the same thing.
    let values: Vec<String> = found.path_params.iter().map(|(_, v)| v.clone()).collect();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(found.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    let again = probe(&method, &fill(found.template, &values, false), Some(&query))
        .expect("a rebuilt request line is a valid URI")
        .expect("a rebuilt request line is accepted");
    assert_eq!(again.template, found.template);
    assert_eq!(again.path_params, found.path_params);
    assert_eq!(again.query, found.query);
    assert_eq!(again.usage_window, found.usage_window);
});
