//! The Azure-compatible REST surface, on the same listener as gRPC: the tenant and provider
//! usage aggregates of `Microsoft.Commerce` (api-version 2015-06-01-preview) and the CSP
//! `customerSubscriptions` of `Microsoft.AzureStack` (api-version 2017-06-01).
//!
//! Handlers translate HTTP to the same guarded trait calls gRPC uses, so the semantics (and the
//! access control) live in one place; this module only speaks ARM's dialect: paths matched
//! case-insensitively, query parameters, `nextLink` paging and `{"error":{"code","message"}}`.

mod registration;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tally_core::{Reason, StatusClass};
use tally_proto::registration_api::RegistrationApi;
use tally_proto::usage_api::UsageApi;
use tonic::Status;

use crate::auth::Caller;
pub(crate) use usage::MeterNames;

/// What the REST handlers call: the guarded services, and meter names for the rows.
pub(crate) struct RestState {
    pub(crate) usage: Arc<dyn UsageApi>,
    pub(crate) registration: Arc<dyn RegistrationApi>,
    pub(crate) meters: MeterNames,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

/// The gRPC field names a message may mention, and their REST spelling.
const FIELD_NAMES: &[(&str, &str)] = &[
    ("reported_start_time", "reportedStartTime"),
    ("reported_end_time", "reportedEndTime"),
    ("aggregation_granularity", "aggregationGranularity"),
    ("continuation_token", "continuationToken"),
    ("subscriber_id", "subscriberId"),
    ("subscription_id", "subscriptionId"),
    ("customer_subscription_id", "customerSubscriptionId"),
    ("tenant_id", "tenantId"),
    ("page_token", "$skipToken"),
];

fn rest_spelling(message: &str) -> String {
    let mut message = message.to_string();
    for (grpc, rest) in FIELD_NAMES {
        message = message.replace(grpc, rest);
    }
    message
}

/// The HTTP status and ARM error code of a service error (reference facts §5.2 where it has one).
fn http_error(reason: Option<Reason>, code: tonic::Code) -> (StatusCode, &'static str) {
    let Some(reason) = reason else {
        return match code {
            tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        };
    };
    let code = match reason {
        // §5.2 knows only InvalidProperty for a bad value; the message names the parameter.
        Reason::InvalidTimeAlignment | Reason::InvalidContinuationToken => "InvalidProperty",
        other => other.as_str(),
    };
    let http = match reason {
        // §5.2: a provider asking for a subscriber that is not its direct tenant is a 400.
        Reason::SubscriberIdIsNotDirectTenant => StatusCode::BAD_REQUEST,
        other => match other.class() {
            StatusClass::InvalidArgument | StatusClass::FailedPrecondition => {
                StatusCode::BAD_REQUEST
            }
            StatusClass::NotFound => StatusCode::NOT_FOUND,
            StatusClass::AlreadyExists => StatusCode::CONFLICT,
            StatusClass::Unauthenticated => StatusCode::UNAUTHORIZED,
            StatusClass::PermissionDenied => StatusCode::FORBIDDEN,
            StatusClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            StatusClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        },
    };
    (http, code)
}

fn reason_of(status: &Status) -> Option<Reason> {
    tally_proto::status::reason(status).and_then(|name| Reason::from_name(&name))
}

/// An error as ARM writes it: an HTTP status and `{"error":{"code":..,"message":..}}`.
#[derive(Debug)]
pub(crate) struct RestError {
    http: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        json(self.http, &body)
    }
}

impl From<Status> for RestError {
    fn from(status: Status) -> RestError {
        from_status(&status)
    }
}

/// A service error in ARM's terms.
pub(crate) fn from_status(status: &Status) -> RestError {
    let (http, code) = http_error(reason_of(status), status.code());
    let message = if http == StatusCode::INTERNAL_SERVER_ERROR {
        "internal error".to_string()
    } else {
        rest_spelling(status.message())
    };
    RestError {
        http,
        code,
        message,
    }
}

/// An error found by the REST layer itself, before any service is called.
pub(crate) fn error(http: StatusCode, code: &'static str, message: impl Into<String>) -> RestError {
    RestError {
        http,
        code,
        message: message.into(),
    }
}

pub(crate) type RestResult = Result<Response, RestError>;

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
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "InvalidProperty",
                        format!("query parameter {name} is given twice with different values"),
                    ));
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

    /// Refuses the request unless `api-version` is `expected` (§5.2: missing is `NoApiVersion`).
    pub(crate) fn require_api_version(&self, expected: &str) -> Result<(), RestError> {
        match self.get("api-version") {
            None => Err(error(
                StatusCode::BAD_REQUEST,
                "NoApiVersion",
                format!("the api-version query parameter is required; use {expected}"),
            )),
            Some(v) if v == expected => Ok(()),
            Some(v) => Err(error(
                StatusCode::BAD_REQUEST,
                "InvalidProperty",
                format!("api-version {v} is not supported; use {expected}"),
            )),
        }
    }
}

/// The absolute URL of this request's path with `params` as query: what `nextLink` points at.
fn absolute_url(headers: &HeaderMap, path: &str, params: &[(&str, &str)]) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = header("x-forwarded-proto").unwrap_or("http");
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or("localhost");
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().copied())
        .finish();
    format!("{scheme}://{host}{path}?{query}")
}

fn tonic_request<T>(message: T, caller: Option<&Caller>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller.clone());
    }
    request
}

/// Routes every request that no gRPC service claimed.
pub(crate) async fn dispatch(State(state): State<Arc<RestState>>, request: Request) -> Response {
    route(&state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn route(state: &RestState, request: Request) -> RestResult {
    if crate::auth::is_grpc(&request) {
        return Ok(
            Status::unimplemented(format!("{} is not a Tally RPC", request.uri().path()))
                .into_http::<Body>()
                .into_response(),
        );
    }
    let caller = request.extensions().get::<Caller>().cloned();
    let (parts, body) = request.into_parts();
    let params = Params::parse(parts.uri.query())?;
    let path = parts.uri.path().to_string();
    let decoded: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let context = Context {
        state,
        caller: caller.as_ref(),
        params: &params,
        headers: &parts.headers,
        path: &path,
    };
    match (&parts.method, lower.as_slice()) {
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.commerce",
                "usageaggregates",
            ],
        ) => usage::tenant(context, segments[1]).await,
        (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.commerce.admin",
                "subscriberusageaggregates",
            ],
        )
        | (
            &Method::GET,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.commerce.admin",
                "locations",
                _,
                "subscriberusageaggregates",
            ],
        ) => usage::provider(context, segments[1]).await,
        (
            method,
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.azurestack",
                "registrations",
                _,
                "customersubscriptions",
                rest @ ..,
            ],
        ) if rest.len() <= 1 => {
            let target = registration::Target {
                subscription: segments[1],
                resource_group: segments[3],
                registration: segments[7],
                customer_subscription: segments.get(9).copied(),
            };
            let body = match axum::body::to_bytes(body, 64 * 1024).await {
                Ok(body) => body,
                Err(_) => {
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "InvalidProperty",
                        "the request body is too large",
                    ));
                }
            };
            registration::customer_subscriptions(context, method, target, &body).await
        }
        (
            _,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.commerce",
                "usageaggregates",
            ],
        )
        | (
            _,
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.commerce.admin",
                "subscriberusageaggregates",
            ],
        ) => Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{} is not allowed on {path}", parts.method),
        )),
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no resource at {path}"),
        )),
    }
}

/// What every REST handler gets.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    state: &'a RestState,
    caller: Option<&'a Caller>,
    params: &'a Params,
    headers: &'a HeaderMap,
    path: &'a str,
}

impl Context<'_> {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        tonic_request(message, self.caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_follow_section_5_2() {
        assert_eq!(
            http_error(
                Some(Reason::InvalidAggregationGranularity),
                tonic::Code::InvalidArgument
            ),
            (StatusCode::BAD_REQUEST, "InvalidAggregationGranularity")
        );
        assert_eq!(
            http_error(
                Some(Reason::InvalidTimeAlignment),
                tonic::Code::InvalidArgument
            ),
            (StatusCode::BAD_REQUEST, "InvalidProperty")
        );
        assert_eq!(
            http_error(
                Some(Reason::SubscriberIdIsNotDirectTenant),
                tonic::Code::PermissionDenied
            ),
            (StatusCode::BAD_REQUEST, "SubscriberIdIsNotDirectTenant")
        );
        assert_eq!(
            http_error(Some(Reason::ServiceUnavailable), tonic::Code::Unavailable),
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        );
        assert_eq!(
            http_error(None, tonic::Code::Unavailable),
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        );
        assert_eq!(
            http_error(
                Some(Reason::NotSubscriptionOwner),
                tonic::Code::PermissionDenied
            ),
            (StatusCode::FORBIDDEN, "NotSubscriptionOwner")
        );
    }

    #[test]
    fn messages_use_rest_names() {
        assert_eq!(
            rest_spelling("reported_start_time: is required"),
            "reportedStartTime: is required"
        );
    }
}
