//! How Tally errors travel as `tonic::Status`: a code, a message, a `google.rpc.ErrorInfo` whose
//! reason is one of the contract's names (domain `tally`), and a `google.rpc.BadRequest` naming
//! each bad field.

use std::collections::HashMap;

use tally_core::{Reason, Rejection, StatusClass};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo` domain of every Tally error.
pub const ERROR_DOMAIN: &str = "tally";

/// A batch message larger than this is refused with `BatchTooLarge`.
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

pub fn code(class: StatusClass) -> Code {
    match class {
        StatusClass::InvalidArgument => Code::InvalidArgument,
        StatusClass::NotFound => Code::NotFound,
        StatusClass::AlreadyExists => Code::AlreadyExists,
        StatusClass::FailedPrecondition => Code::FailedPrecondition,
        StatusClass::Unauthenticated => Code::Unauthenticated,
        StatusClass::PermissionDenied => Code::PermissionDenied,
        StatusClass::Unavailable => Code::Unavailable,
        StatusClass::ResourceExhausted => Code::ResourceExhausted,
        StatusClass::Internal => Code::Internal,
    }
}

/// A status for `reason`, with the contract's code for it.
pub fn status(reason: Reason, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code(reason.class()), message, details)
}

pub fn from_rejection(rejection: &Rejection) -> Status {
    let mut details =
        ErrorDetails::with_error_info(rejection.reason.as_str(), ERROR_DOMAIN, HashMap::new());
    for v in &rejection.violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(
        code(rejection.reason.class()),
        rejection.message.clone(),
        details,
    )
}

/// A failure of ours, not the caller's: logged with its cause, reported without it.
pub fn internal(error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %error, "internal error");
    status(Reason::Internal, "internal error")
}

/// A dependency is down or busy; the caller may retry.
pub fn unavailable(what: impl std::fmt::Display) -> Status {
    status(
        Reason::ServiceUnavailable,
        format!("{what} is unavailable; retry later"),
    )
}

/// The disk of a database is full: the write stored nothing, and the caller may retry once
/// space is freed.
pub fn storage_full(what: impl std::fmt::Display) -> Status {
    status(
        Reason::StorageFull,
        format!("the disk of {what} is full; nothing was stored; retry once space is freed"),
    )
}

/// Refused for load, before any work: the caller may retry after a pause.
pub fn too_many_requests(message: impl Into<String>) -> Status {
    status(Reason::TooManyRequests, message)
}

/// The contract reason carried by a status, if any.
pub fn reason(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
        .map(|info| info.reason)
}

/// The fields a status names in its `BadRequest` detail.
pub fn fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}
