//! The REST surface, on the same listener as gRPC: Azure's, that is the tenant and provider
//! usage aggregates of `Microsoft.Commerce` (api-version 2015-06-01-preview) and the CSP
//! `customerSubscriptions` of `Microsoft.AzureStack` (api-version 2017-06-01); and Tally's own
//! JSON routes for what Azure has no resource for (`/tally/v1`, `/clock/v1`, `/usage/v1`,
//! `/tenancy/v1`: who is calling, the clock, the pipeline, tenants and subscriptions), which
//! the portal and scripts use.
//!
//! Handlers translate HTTP to calls of the guards, the same ones gRPC calls, so the semantics
//! and the access control live in one place; this module only speaks ARM's dialect: paths
//! matched case-insensitively ([`ROUTES`]), query parameters, `nextLink` paging and
//! `{"error":{"code","message"}}` ([`error`]). Tally's own routes answer errors the same way,
//! and name fields, query parameters and JSON members by their proto JSON names.

mod billing;
mod bridge;
mod caller;
mod clock;
mod error;
mod path;
mod pipeline;
mod rate_card;
mod registration;
mod tenancy;
mod usage;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub(crate) use error::{FieldNames, RestError, RestResult};
use path::PathParams;

use crate::auth::TokenSubject;
use crate::guard::{GuardedBridge, GuardedClock, GuardedRegistration, GuardedUsage};
use crate::principal::Principal;

/// What the REST handlers call: the guards, never the services behind them.
pub(crate) struct RestState {
    usage: Arc<GuardedUsage>,
    registration: Arc<GuardedRegistration>,
    clock: Arc<GuardedClock>,
    /// The billing service's guard, when the gateway fronts one.
    billing: Option<Arc<dyn tally_proto::billing_api::BillingApi>>,
    bridge: Arc<GuardedBridge>,
    meters: usage::MeterNames,
}

impl RestState {
    pub(crate) fn new(
        usage: Arc<GuardedUsage>,
        registration: Arc<GuardedRegistration>,
        clock: Arc<GuardedClock>,
        billing: Option<Arc<dyn tally_proto::billing_api::BillingApi>>,
        bridge: Arc<GuardedBridge>,
    ) -> Self {
        Self {
            usage,
            registration,
            clock,
            billing,
            bridge,
            meters: usage::MeterNames::default(),
        }
    }
}

type Handler = for<'a> fn(Context<'a>) -> Pin<Box<dyn Future<Output = RestResult> + Send + 'a>>;

/// One REST route: a method, a path template, and its handler.
struct Route {
    method: Method,
    template: &'static str,
    handler: Handler,
}

/// Every REST route. A template's literal segments match case-insensitively, as ARM's do;
/// `{name}` matches one segment, which the handler reads with [`Context::path_param`]. A path
/// no template matches is 404 `NotFound`; a known path with another method is 405.
const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        template: "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates",
        handler: |c| Box::pin(usage::tenant(c)),
    },
    Route {
        method: Method::GET,
        template: "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates",
        handler: |c| Box::pin(usage::provider(c)),
    },
    Route {
        method: Method::GET,
        template: "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/locations/{location}/subscriberUsageAggregates",
        handler: |c| Box::pin(usage::provider(c)),
    },
    Route {
        method: Method::GET,
        template: registration::COLLECTION,
        handler: |c| Box::pin(registration::list(c)),
    },
    Route {
        method: Method::GET,
        template: registration::ITEM,
        handler: |c| Box::pin(registration::get(c)),
    },
    Route {
        method: Method::PUT,
        template: registration::ITEM,
        handler: |c| Box::pin(registration::put(c)),
    },
    Route {
        method: Method::DELETE,
        template: registration::ITEM,
        handler: |c| Box::pin(registration::delete(c)),
    },
    Route {
        method: Method::GET,
        template: "/tally/v1/whoami",
        handler: |c| Box::pin(caller::whoami(c)),
    },
    Route {
        method: Method::GET,
        template: "/clock/v1/time",
        handler: |c| Box::pin(clock::time(c)),
    },
    Route {
        method: Method::GET,
        template: "/bridge/v1/status",
        handler: |c| Box::pin(bridge::status(c)),
    },
    Route {
        method: Method::GET,
        template: "/bridge/v1/uploads",
        handler: |c| Box::pin(bridge::uploads(c)),
    },
    Route {
        method: Method::GET,
        template: "/usage/v1/pipeline",
        handler: |c| Box::pin(pipeline::status(c)),
    },
    Route {
        method: Method::GET,
        template: "/tenancy/v1/tenants",
        handler: |c| Box::pin(tenancy::tenants(c)),
    },
    Route {
        method: Method::GET,
        template: "/tenancy/v1/subscriptions",
        handler: |c| Box::pin(tenancy::subscriptions(c)),
    },
    Route {
        method: Method::GET,
        template: "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/RateCard",
        handler: |c| Box::pin(rate_card::get(c)),
    },
    Route {
        method: Method::GET,
        template: "/billing/v1/periods/{period}/statements",
        handler: |c| Box::pin(billing::list(c)),
    },
    Route {
        method: Method::GET,
        template: "/billing/v1/periods/{period}/statements/{tenantId}",
        handler: |c| Box::pin(billing::get(c)),
    },
    Route {
        method: Method::GET,
        template: "/billing/v1/periods/{period}/charges",
        handler: |c| Box::pin(billing::charges(c)),
    },
];

/// The largest request body a route reads.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a REST handler gets.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    state: &'a RestState,
    principal: Option<&'a Principal>,
    /// Whom the caller's token names (beside `principal`, from the authentication layer).
    subject: Option<&'a TokenSubject>,
    path_params: &'a PathParams,
    params: &'a Params,
    headers: &'a HeaderMap,
    /// Whether the request came over TLS to this listener.
    over_tls: bool,
    /// The path as the client sent it (for messages and `nextLink`).
    path: &'a str,
    body: &'a [u8],
}

impl Context<'_> {
    /// `message` as a request of the caller, for a guard to decide on.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(principal) = self.principal {
            request.extensions_mut().insert(*principal);
        }
        request
    }

    /// The path segment the route's template calls `{name}`.
    fn path_param(&self, name: &str) -> Result<&str, RestError> {
        self.path_params.get(name).ok_or_else(|| {
            tracing::error!(
                name,
                path = self.path,
                "a handler reads a parameter its route lacks"
            );
            RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal error",
            )
        })
    }
}

/// Answers a REST request.
/// Timed per route template (`unmatched` for a path no route knows).
pub(crate) async fn dispatch(state: &RestState, request: Request) -> Response {
    let started = std::time::Instant::now();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let mut template = "unmatched";
    let response = serve(state, request, &mut template)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    tally_proto::metrics::rest_request(
        template,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn serve(state: &RestState, request: Request, template: &mut &'static str) -> RestResult {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let (route, path_params) = find_route(&parts.method, path)?;
    *template = route.template;
    let params = Params::parse(parts.uri.query())?;
    let body = read_body(body).await?;
    let context = Context {
        state,
        principal: parts.extensions.get::<Principal>(),
        subject: parts.extensions.get::<TokenSubject>(),
        path_params: &path_params,
        params: &params,
        headers: &parts.headers,
        over_tls: parts
            .extensions
            .get::<tally_proto::server::OverTls>()
            .is_some(),
        path,
        body: &body,
    };
    (route.handler)(context).await
}

/// The route for `method` and `path`, with the path's parameters.
fn find_route(method: &Method, path: &str) -> Result<(&'static Route, PathParams), RestError> {
    let segments = path::segments(path);
    let mut path_is_known = false;
    for route in ROUTES {
        if let Some(params) = path::match_template(route.template, &segments) {
            if route.method == *method {
                return Ok((route, params));
            }
            path_is_known = true;
        }
    }
    Err(if path_is_known {
        RestError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not allowed on {path}"),
        )
    } else {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no resource at {path}"),
        )
    })
}

/// What the REST layer makes of a request before any handler or guard runs: the route, its path
/// parameters, the query, and for the usage routes the reported window. Pure (no server, no
/// state, no guard), so the fuzz target in `tests/fuzz` can drive routing and query parsing.
#[derive(Debug)]
pub struct RestProbe {
    /// The matched route's template.
    pub template: &'static str,
    /// The `{name}` segments, percent-decoded.
    pub path_params: Vec<(&'static str, String)>,
    /// The query's parameters, names lower-cased, sorted.
    pub query: Vec<(String, String)>,
    /// For the usage routes: the reported start and end the query asks for.
    pub usage_window: Option<ReportedTimes>,
}

/// A usage query's reported start and end, each if given.
pub type ReportedTimes = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A request the REST layer refuses before any handler runs: the HTTP status and ARM code.
#[derive(Debug, PartialEq, Eq)]
pub struct RestRefusal {
    pub status: u16,
    pub code: &'static str,
}

impl From<RestError> for RestRefusal {
    fn from(error: RestError) -> Self {
        let (http, code, _) = error.parts();
        RestRefusal {
            status: http.as_u16(),
            code,
        }
    }
}

/// Routes `method` and `uri` and parses its query as [`serve`] does, without calling a handler.
pub fn probe_request(method: &Method, uri: &axum::http::Uri) -> Result<RestProbe, RestRefusal> {
    let (route, path_params) = find_route(method, uri.path())?;
    let params = Params::parse(uri.query())?;
    // The three usage routes (tenant, provider, provider by location) share `usage::window`.
    let usage_window = if route.template.ends_with("UsageAggregates") {
        Some(usage::window(&params)?.times())
    } else {
        None
    };
    let mut query: Vec<(String, String)> = params.values.into_iter().collect();
    query.sort();
    Ok(RestProbe {
        template: route.template,
        path_params: path_params.into_values(),
        query,
        usage_window,
    })
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, RestError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            RestError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidProperty",
                "the request body is too large",
            )
        })
}

fn json<T: Serialize>(http: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            http,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Query parameters, names compared case-insensitively. A name given twice must carry the same
/// value both times (clients re-add `api-version` to a `nextLink` that already has it).
pub(crate) struct Params {
    values: HashMap<String, String>,
}

impl Params {
    fn parse(query: Option<&str>) -> Result<Params, RestError> {
        let mut values: HashMap<String, String> = HashMap::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let name = name.to_ascii_lowercase();
            match values.get(&name) {
                Some(existing) if *existing != value => {
                    return Err(RestError::invalid(format!(
                        "query parameter {name} is given twice with different values"
                    )));
                }
                _ => {
                    values.insert(name, value.into_owned());
                }
            }
        }
        Ok(Params { values })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A `true`/`false` parameter (any case); `false` when absent.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, RestError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(RestError::invalid(format!(
                "{name} {v:?} is not true or false"
            ))),
        }
    }

    /// A whole-number parameter; 0 when absent (the service's default).
    pub(crate) fn number(&self, name: &str) -> Result<i32, RestError> {
        self.get(name).map_or(Ok(0), |v| {
            v.parse()
                .map_err(|_| RestError::invalid(format!("{name} {v:?} is not a whole number")))
        })
    }

    /// Every parameter but `except`, to rebuild a `nextLink`.
    fn others(&self, except: &str) -> Vec<(&str, &str)> {
        let mut all: Vec<(&str, &str)> = self
            .values
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(except))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.sort();
        all
    }

    /// Refuses the request unless `api-version` is `expected` (docs/azure-stack.md §2: missing is `NoApiVersion`).
    pub(crate) fn require_api_version(&self, expected: &str) -> Result<(), RestError> {
        match self.get("api-version") {
            None => Err(RestError::new(
                StatusCode::BAD_REQUEST,
                "NoApiVersion",
                format!("the api-version query parameter is required; use {expected}"),
            )),
            Some(v) if v == expected => Ok(()),
            Some(v) => Err(RestError::invalid(format!(
                "api-version {v} is not supported; use {expected}"
            ))),
        }
    }
}

/// A time as Tally's own routes write it: RFC 3339 in UTC with `Z`, as protobuf's JSON does.
fn utc_text(time: Option<&tally_proto::convert::Timestamp>) -> Option<String> {
    tally_proto::convert::utc(time).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// The absolute URL of this request's path with `params` as query: what `nextLink` points at.
/// Behind a proxy, `X-Forwarded-Proto` and `X-Forwarded-Host` say how the client reached us.
fn absolute_url(context: &Context<'_>, params: &[(&str, &str)]) -> String {
    let (headers, path) = (context.headers, context.path);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme =
        header("x-forwarded-proto").unwrap_or(if context.over_tls { "https" } else { "http" });
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or("localhost");
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().copied())
        .finish();
    format!("{scheme}://{host}{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_finds_its_route() {
        let cases = [
            (
                Method::GET,
                "/subscriptions/S/providers/microsoft.commerce/usageaggregates",
                Some(
                    "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates",
                ),
            ),
            (
                Method::GET,
                "/subscriptions/S/providers/Microsoft.Commerce.Admin/locations/local/subscriberUsageAggregates",
                Some(
                    "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce.Admin/locations/{location}/subscriberUsageAggregates",
                ),
            ),
            (
                Method::PUT,
                "/subscriptions/S/resourceGroups/G/providers/Microsoft.AzureStack/registrations/R/customerSubscriptions/C",
                Some(registration::ITEM),
            ),
            (
                Method::GET,
                "/subscriptions/S/resourceGroups/G/providers/Microsoft.AzureStack/registrations/R/customerSubscriptions",
                Some(registration::COLLECTION),
            ),
        ];
        for (method, path, template) in cases {
            let found = find_route(&method, path).map(|(route, _)| route.template);
            assert_eq!(found.ok(), template, "{method} {path}");
        }
        let refused = |method: Method, path: &str| {
            let error = find_route(&method, path).err().unwrap();
            let (http, code, message) = error.parts();
            (http, code.to_string(), message.to_string())
        };
        assert_eq!(
            refused(
                Method::POST,
                "/subscriptions/S/providers/Microsoft.Commerce/UsageAggregates"
            ),
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed".into(),
                "POST is not allowed on /subscriptions/S/providers/Microsoft.Commerce/UsageAggregates"
                    .into()
            )
        );
        assert_eq!(
            refused(
                Method::PUT,
                "/subscriptions/S/resourceGroups/G/providers/Microsoft.AzureStack/registrations/R/customerSubscriptions"
            )
            .0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            refused(Method::GET, "/subscriptions/S/providers/Microsoft.Nothing"),
            (
                StatusCode::NOT_FOUND,
                "NotFound".into(),
                "no resource at /subscriptions/S/providers/Microsoft.Nothing".into()
            )
        );
    }

    /// The pure entry point the fuzz target drives routes and parses as `serve` does, and only
    /// the three usage routes read a window.
    #[test]
    fn probe_request_routes_and_parses_the_query() {
        let probe = |method: Method, uri: &str| probe_request(&method, &uri.parse().unwrap());
        let found = probe(
            Method::GET,
            "/subscriptions/Ab%20C/providers/microsoft.commerce/usageaggregates?API-Version=2015-06-01-preview&reportedStartTime=2026-11-27T00%3A00%3A00Z",
        )
        .unwrap();
        assert_eq!(
            found.template,
            "/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates"
        );
        assert_eq!(
            found.path_params,
            vec![("subscriptionId", "Ab C".to_string())]
        );
        assert_eq!(
            found.query.first().map(|(k, _)| k.as_str()),
            Some("api-version")
        );
        let (start, end) = found.usage_window.unwrap();
        assert_eq!(
            start.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-27T00:00:00+00:00")
        );
        assert_eq!(end, None);

        let refusal = |method: Method, uri: &str| probe(method, uri).unwrap_err();
        let usage = "/subscriptions/S/providers/Microsoft.Commerce/UsageAggregates";
        for (method, uri, status, code) in [
            (
                Method::GET,
                format!(
                    "{usage}?api-version=2015-06-01-preview&reportedStartTime=2300-01-01T00:00:00Z"
                ),
                400,
                "InvalidProperty",
            ),
            (
                Method::GET,
                format!("{usage}?api-version=2015-06-01-preview&aggregationGranularity=weekly"),
                400,
                "InvalidAggregationGranularity",
            ),
            (Method::GET, usage.to_string(), 400, "NoApiVersion"),
            (
                Method::GET,
                format!("{usage}?a=1&A=2"),
                400,
                "InvalidProperty",
            ),
            (Method::POST, usage.to_string(), 405, "MethodNotAllowed"),
            (Method::GET, "/nothing".to_string(), 404, "NotFound"),
        ] {
            assert_eq!(refusal(method, &uri), RestRefusal { status, code }, "{uri}");
        }
        let usage_routes = ROUTES
            .iter()
            .filter(|r| r.template.ends_with("UsageAggregates"))
            .count();
        assert_eq!(usage_routes, 3);
        assert!(
            probe(Method::GET, "/tally/v1/whoami?anything=goes")
                .unwrap()
                .usage_window
                .is_none()
        );
    }
}
