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
    Internal,
}

/// Declares [`Reason`] from one table (name => status class), so a new reason is one line.
macro_rules! reasons {
    ($( $(#[$doc:meta])* $name:ident => $class:ident, )*) => {
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

            /// The contract's status for this reason (api-contract.md, "Errors").
            pub fn class(self) -> StatusClass {
                match self {
                    $( Reason::$name => StatusClass::$class, )*
                }
            }
        }
    };
}

reasons! {
    InvalidProperty => InvalidArgument,
    InvalidAggregationGranularity => InvalidArgument,
    InvalidTimeAlignment => InvalidArgument,
    RequestEndTimeIsInFuture => InvalidArgument,
    InvalidContinuationToken => InvalidArgument,
    UnknownMeter => InvalidArgument,
    BatchTooLarge => InvalidArgument,
    EventIdConflict => AlreadyExists,
    ProcessingNotComplete => FailedPrecondition,
    MissingCredentials => Unauthenticated,
    InvalidToken => Unauthenticated,
    SubscriberIdIsNotDirectTenant => PermissionDenied,
    NotSubscriptionOwner => PermissionDenied,
    RoleRequired => PermissionDenied,
    ServiceUnavailable => Unavailable,
    Internal => Internal,
    // Registration and tenancy (reference facts §3.6).
    RegistrationNotFound => NotFound,
    CustomerSubscriptionNotFound => NotFound,
    InvalidCustomerSubscriptionId => InvalidArgument,
    CustomerSubscriptionsNotAllowed => FailedPrecondition,
    UnauthorizedCspRegistration => FailedPrecondition,
    TenantNotFound => NotFound,
    SubscriptionNotFound => NotFound,
    AlreadyExists => AlreadyExists,
    MeterAlreadyExists => AlreadyExists,
    // Simulated time (tally.clock.v1).
    /// AdvanceClock on the real clock.
    ManualClockDisabled => FailedPrecondition,
    ClockCannotMoveBackwards => FailedPrecondition,
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
