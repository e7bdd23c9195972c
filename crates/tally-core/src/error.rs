//! The contract's error reasons, and the typed input error every validation returns.

use std::fmt;

/// How an error is reported, independent of the wire: each edge maps this to a gRPC code or an
/// HTTP status in exactly one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    Unavailable,
    /// Too much load right now: refused before any work, safe to retry after a pause.
    ResourceExhausted,
    Internal,
}

/// Declares [`Reason`] from one table (`Name => StatusClass: "when it happens",`), so a new
/// reason is one line; docs/errors.md is generated from it.
macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => $class:ident $(: $when:literal)?, )*) => {
        /// The `reason` of the contract's `google.rpc.ErrorInfo` (domain `tally`). Names are fixed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $name, )*
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[ $( Reason::$name, )* ];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$name => stringify!($name), )*
                }
            }

            /// The contract's status for this reason.
            pub fn class(self) -> StatusClass {
                match self {
                    $( Reason::$name => StatusClass::$class, )*
                }
            }

            /// When this reason is returned, in a sentence (empty if not written yet: the
            /// docs test refuses that).
            pub fn description(self) -> &'static str {
                match self {
                    $( Reason::$name => concat!("" $(, $when)?), )*
                }
            }
        }
    };
}

reasons! {
    // Usage ingestion and queries (tally.usage.v1).
    InvalidProperty => InvalidArgument: "A field is missing or malformed; the BadRequest detail names it.",
    InvalidAggregationGranularity => InvalidArgument: "The granularity is neither DAILY nor HOURLY.",
    InvalidTimeAlignment => InvalidArgument: "A window's start or end is not on an hour (HOURLY) or midnight (DAILY), or start is not before end.",
    RequestEndTimeIsInFuture => InvalidArgument: "The window ends after now (with allow_incomplete: after the boundary that ends the current bucket).",
    InvalidContinuationToken => InvalidArgument: "The continuation token is malformed, was altered, or belongs to another query.",
    UnknownMeter => InvalidArgument: "The meter id is not in the catalog.",
    BatchTooLarge => InvalidArgument: "A batch holds more than 10,000 records or exceeds the message size limit.",
    EventIdConflict => AlreadyExists: "An event id is already stored with different content; nothing of the batch is stored.",
    ProcessingNotComplete => FailedPrecondition: "The window reaches past complete_through; retry later or set allow_incomplete.",
    // Access.
    MissingCredentials => Unauthenticated: "The call carries no bearer token.",
    InvalidToken => Unauthenticated: "The bearer token is expired, not yet valid, badly signed, or for another issuer or audience.",
    SubscriberIdIsNotDirectTenant => PermissionDenied: "A delegated provider asked for a subscription that is not one of its direct tenants.",
    NotSubscriptionOwner => PermissionDenied: "The caller's tenant does not own the subscription.",
    RoleRequired => PermissionDenied: "The call needs a role the caller does not have (the message names it).",
    // Failures of ours or of a dependency.
    ServiceUnavailable => Unavailable: "A database or peer service is down or busy; the call is safe to retry.",
    TooManyRequests => ResourceExhausted: "The server is at its limit of requests in flight, or of batch bytes being stored; nothing was done, retry after a pause.",
    StorageFull => ResourceExhausted: "The database's disk is full: the write stored nothing; retry once space is freed.",
    Internal => Internal: "A failure of Tally's own; it is logged with its cause.",
    // Registration and tenancy (tally.registration.v1).
    RegistrationNotFound => NotFound: "The installation is not registered, or the registration named in the path is not this one.",
    CustomerSubscriptionNotFound => NotFound: "No CSP mapping has this customer subscription.",
    InvalidCustomerSubscriptionId => InvalidArgument: "The customer subscription id is not a GUID.",
    CustomerSubscriptionsNotAllowed => FailedPrecondition: "CSP mappings need a pay-as-you-use registration; this one is capacity or development.",
    UnauthorizedCspRegistration => FailedPrecondition: "CSP mappings need multi-tenancy enabled on the registration.",
    TenantNotFound => NotFound: "The directory tenant is not known.",
    SubscriptionNotFound => NotFound: "The subscription is not known.",
    AlreadyExists => AlreadyExists: "A tenant or subscription with this id exists already.",
    MeterAlreadyExists => AlreadyExists: "A meter with this id exists already.",
    // Simulated time (tally.clock.v1).
    ManualClockDisabled => FailedPrecondition: "AdvanceClock on the real clock; start tally serve with --manual-clock.",
    ClockCannotMoveBackwards => FailedPrecondition: "AdvanceClock to an earlier time, or by a negative duration.",
    // Chargeback (tally.billing.v1).
    PeriodClosed => FailedPrecondition: "A price sheet or adjustment reaches into a billing period that is closed (complete_through >= its end); its statements are final.",
    StatementNotVisible => PermissionDenied: "A tenant asked for another tenant's statement, charges or adjustments.",
    // The usage bridge (tally.bridge.v1) and the commerce endpoint (tally.commerce.v1).
    BatchIdConflict => AlreadyExists: "The receiver holds a batch with this id and different content.",
    BridgeNotConfigured => FailedPrecondition: "The usage bridge has no commerce endpoint; start it with --commerce-endpoint.",
    UploadNotFound => NotFound: "The bridge holds no sealed batch with this id.",
    UploadNotParked => FailedPrecondition: "RetryUpload of a batch that is not parked (pending, acknowledged or a skipped day).",
    UploadRefused => FailedPrecondition: "The reference receiver refused the upload on purpose (its failure switch is on).",
}

impl Reason {
    /// The reason named `name`, as it travels in `ErrorInfo.reason`.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::{Reason, StatusClass};

    #[test]
    fn every_reason_round_trips_by_name() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_name(reason.as_str()), Some(*reason));
        }
        assert_eq!(Reason::from_name("NoSuchReason"), None);
    }

    #[test]
    fn reasons_keep_the_contract_status() {
        assert_eq!(Reason::EventIdConflict.as_str(), "EventIdConflict");
        assert_eq!(Reason::EventIdConflict.class(), StatusClass::AlreadyExists);
        assert_eq!(
            Reason::ProcessingNotComplete.class(),
            StatusClass::FailedPrecondition
        );
        assert_eq!(
            Reason::SubscriberIdIsNotDirectTenant.class(),
            StatusClass::PermissionDenied
        );
        assert_eq!(
            Reason::ManualClockDisabled.class(),
            StatusClass::FailedPrecondition
        );
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bad field, named as the contract names it (`records[12].quantity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// A request refused because of what the caller sent: one reason, a message, and every bad field
/// found. The edges turn it into a status with `ErrorInfo` and `BadRequest` details.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
    pub violations: Vec<FieldViolation>,
}

impl Rejection {
    /// An error about one field; the message names it.
    pub fn field(reason: Reason, field: impl Into<String>, description: impl Into<String>) -> Self {
        let violation = FieldViolation::new(field, description);
        Self {
            reason,
            message: format!("{}: {}", violation.field, violation.description),
            violations: vec![violation],
        }
    }

    /// An error that is not about one field.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            violations: Vec::new(),
        }
    }
}

/// User input as an error message echoes it: at most 64 characters.
pub(crate) fn shorten(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
