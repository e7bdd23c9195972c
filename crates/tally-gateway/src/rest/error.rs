//! Errors as ARM writes them: an HTTP status and `{"error":{"code":..,"message":..}}` with the
//! codes Azure Stack Hub uses (docs/azure-stack.md §2, "Errors").
//!
//! A service's error is rebuilt from its structured parts, never by editing its text: the
//! reason (`google.rpc.ErrorInfo`) gives the status and code, and each bad field of the
//! `google.rpc.BadRequest` detail is named as REST names it ([`FieldNames`]), followed by its
//! description as the service wrote it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tally_core::{Reason, StatusClass};
use tonic::Status;
use tonic_types::StatusExt;

use super::json;

/// An error as ARM writes it.
#[derive(Debug)]
pub(crate) struct RestError {
    http: StatusCode,
    code: &'static str,
    message: String,
}

pub(crate) type RestResult = Result<Response, RestError>;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        json(self.http, &body)
    }
}

impl RestError {
    /// An error found by the REST layer itself, before any service is called.
    pub(crate) fn new(http: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            http,
            code,
            message: message.into(),
        }
    }

    /// `InvalidProperty` (400): a bad value the message names.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidProperty", message)
    }

    /// A refusal for one of the contract's reasons.
    pub(crate) fn from_reason(reason: Reason, message: impl Into<String>) -> Self {
        let (http, code) = http_error(Some(reason), tonic::Code::Unknown);
        Self::new(http, code, message)
    }

    /// A service's error, its fields named by `names`. Internal errors say no more than that.
    pub(crate) fn from_status(status: &Status, names: &FieldNames) -> Self {
        let reason = tally_proto::status::reason(status).and_then(|name| Reason::from_name(&name));
        let (http, code) = http_error(reason, status.code());
        if http == StatusCode::INTERNAL_SERVER_ERROR {
            return Self::new(http, code, "internal error");
        }
        let violations = status
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        let message = if violations.is_empty() {
            status.message().to_string()
        } else {
            violations
                .iter()
                .map(|v| format!("{}: {}", names.rest_name(&v.field), v.description))
                .collect::<Vec<_>>()
                .join("; ")
        };
        Self::new(http, code, message)
    }

    /// A service's error, its fields by their proto JSON names (Tally's own JSON routes).
    pub(crate) fn from_service(status: Status) -> Self {
        Self::from_status(&status, &FieldNames::JSON)
    }

    /// The status, code and message: what the tests and [`super::probe_request`] read.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, &str) {
        (self.http, self.code, &self.message)
    }
}

/// How a REST resource names the request fields a service's error points at: by their proto
/// JSON names (`reported_start_time` is `reportedStartTime`, `meter.meter_id` is
/// `meter.meterId`), except the ones a resource spells its own way.
pub(crate) struct FieldNames {
    renamed: &'static [(&'static str, &'static str)],
}

impl FieldNames {
    /// Every field by its proto JSON name.
    pub(crate) const JSON: FieldNames = FieldNames { renamed: &[] };

    /// The proto JSON names, except `renamed` (gRPC field path, REST name).
    pub(crate) const fn renaming(renamed: &'static [(&'static str, &'static str)]) -> Self {
        FieldNames { renamed }
    }

    fn rest_name(&self, field: &str) -> String {
        match self.renamed.iter().find(|(grpc, _)| *grpc == field) {
            Some((_, rest)) => rest.to_string(),
            None => json_name(field),
        }
    }
}

/// protobuf's JSON name of a field path: each `_x` becomes `X`.
fn json_name(field: &str) -> String {
    let mut name = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                name.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => name.push(c),
        }
    }
    name
}

/// The HTTP status and ARM error code of a service error (Azure's, docs/azure-stack.md §2, where it has
/// one); `code` decides only when there is no reason.
fn http_error(reason: Option<Reason>, code: tonic::Code) -> (StatusCode, &'static str) {
    let Some(reason) = reason else {
        return match code {
            tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        };
    };
    let code = match reason {
        // Azure knows only InvalidProperty for a bad value; the message names the parameter.
        Reason::InvalidTimeAlignment | Reason::InvalidContinuationToken => "InvalidProperty",
        // §5.2: throttling is a retryable 503 ServiceUnavailable.
        Reason::TooManyRequests => "ServiceUnavailable",
        other => other.as_str(),
    };
    let http = match reason {
        // Azure: a provider asking for a subscriber that is not its direct tenant is a 400.
        Reason::SubscriberIdIsNotDirectTenant => StatusCode::BAD_REQUEST,
        other => match other.class() {
            StatusClass::InvalidArgument | StatusClass::FailedPrecondition => {
                StatusCode::BAD_REQUEST
            }
            StatusClass::NotFound => StatusCode::NOT_FOUND,
            StatusClass::AlreadyExists => StatusCode::CONFLICT,
            StatusClass::Unauthenticated => StatusCode::UNAUTHORIZED,
            StatusClass::PermissionDenied => StatusCode::FORBIDDEN,
            StatusClass::Unavailable | StatusClass::ResourceExhausted => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            StatusClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        },
    };
    (http, code)
}

#[cfg(test)]
mod tests {
    use tally_core::Rejection;
    use tally_proto::status::{from_rejection, status};

    use super::*;

    #[test]
    fn errors_follow_section_5_2() {
        let cases = [
            (
                Reason::InvalidAggregationGranularity,
                (StatusCode::BAD_REQUEST, "InvalidAggregationGranularity"),
            ),
            (
                Reason::InvalidTimeAlignment,
                (StatusCode::BAD_REQUEST, "InvalidProperty"),
            ),
            (
                Reason::InvalidContinuationToken,
                (StatusCode::BAD_REQUEST, "InvalidProperty"),
            ),
            (
                Reason::ProcessingNotComplete,
                (StatusCode::BAD_REQUEST, "ProcessingNotComplete"),
            ),
            (
                Reason::SubscriberIdIsNotDirectTenant,
                (StatusCode::BAD_REQUEST, "SubscriberIdIsNotDirectTenant"),
            ),
            (
                Reason::NotSubscriptionOwner,
                (StatusCode::FORBIDDEN, "NotSubscriptionOwner"),
            ),
            (
                Reason::MissingCredentials,
                (StatusCode::UNAUTHORIZED, "MissingCredentials"),
            ),
            (
                Reason::ServiceUnavailable,
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ),
            (
                Reason::TooManyRequests,
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ),
        ];
        for (reason, expected) in cases {
            let error = RestError::from_status(&status(reason, "m"), &FieldNames::JSON);
            assert_eq!((error.http, error.code), expected, "{reason}");
        }
        let unavailable = RestError::from_status(&Status::unavailable("down"), &FieldNames::JSON);
        assert_eq!(
            unavailable.parts(),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "down"
            )
        );
        let internal = RestError::from_status(
            &status(Reason::Internal, "disk on fire at /var/x"),
            &FieldNames::JSON,
        );
        assert_eq!(
            internal.parts(),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal",
                "internal error"
            )
        );
    }

    #[test]
    fn messages_name_fields_as_rest_does_and_keep_the_rest_verbatim() {
        let names = FieldNames::renaming(&[
            ("page_token", "$skipToken"),
            ("tenant_id", "properties.tenantId"),
        ]);
        let cases = [
            (
                Rejection::field(
                    Reason::InvalidProperty,
                    "reported_start_time",
                    "is required",
                ),
                "reportedStartTime: is required",
            ),
            (
                // Not `customer_subscriptionId`, and the echoed input stays as sent.
                Rejection::field(
                    Reason::InvalidCustomerSubscriptionId,
                    "customer_subscription_id",
                    "\"subscription_id\" is not a subscription id",
                ),
                "customerSubscriptionId: \"subscription_id\" is not a subscription id",
            ),
            (
                Rejection::field(Reason::InvalidProperty, "tenant_id", "is required"),
                "properties.tenantId: is required",
            ),
            (
                Rejection::field(Reason::InvalidProperty, "page_token", "is not a token"),
                "$skipToken: is not a token",
            ),
            (
                Rejection::field(Reason::InvalidProperty, "meter.meter_id", "is not a GUID"),
                "meter.meterId: is not a GUID",
            ),
            (
                // No field: the service's text, untouched.
                Rejection::new(
                    Reason::ProcessingNotComplete,
                    "the window ends at 2026-11-20T12:00:00Z; set allow_incomplete",
                ),
                "the window ends at 2026-11-20T12:00:00Z; set allow_incomplete",
            ),
        ];
        for (rejection, expected) in cases {
            let error = RestError::from_status(&from_rejection(&rejection), &names);
            assert_eq!(error.message, expected);
        }
        let two = Rejection {
            reason: Reason::InvalidProperty,
            message: "two fields".into(),
            violations: vec![
                tally_core::FieldViolation::new("records[0].usage_end_time", "is required"),
                tally_core::FieldViolation::new("records[1].quantity", "is not a number"),
            ],
        };
        let error = RestError::from_status(&from_rejection(&two), &FieldNames::JSON);
        assert_eq!(
            error.message,
            "records[0].usageEndTime: is required; records[1].quantity: is not a number"
        );
    }
}
