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

/// The `reason` of the contract's `google.rpc.ErrorInfo` (domain `tally`). Names are fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidProperty,
    InvalidAggregationGranularity,
    InvalidTimeAlignment,
    RequestEndTimeIsInFuture,
    InvalidContinuationToken,
    UnknownMeter,
    BatchTooLarge,
    EventIdConflict,
    ProcessingNotComplete,
    MissingCredentials,
    InvalidToken,
    SubscriberIdIsNotDirectTenant,
    NotSubscriptionOwner,
    RoleRequired,
    ServiceUnavailable,
    Internal,
    // Registration and tenancy (reference facts §3.6).
    RegistrationNotFound,
    CustomerSubscriptionNotFound,
    InvalidCustomerSubscriptionId,
    CustomerSubscriptionsNotAllowed,
    UnauthorizedCspRegistration,
    TenantNotFound,
    SubscriptionNotFound,
    AlreadyExists,
    MeterAlreadyExists,
}

impl Reason {
    pub const ALL: &'static [Reason] = &[
        Reason::InvalidProperty,
        Reason::InvalidAggregationGranularity,
        Reason::InvalidTimeAlignment,
        Reason::RequestEndTimeIsInFuture,
        Reason::InvalidContinuationToken,
        Reason::UnknownMeter,
        Reason::BatchTooLarge,
        Reason::EventIdConflict,
        Reason::ProcessingNotComplete,
        Reason::MissingCredentials,
        Reason::InvalidToken,
        Reason::SubscriberIdIsNotDirectTenant,
        Reason::NotSubscriptionOwner,
        Reason::RoleRequired,
        Reason::ServiceUnavailable,
        Reason::Internal,
        Reason::RegistrationNotFound,
        Reason::CustomerSubscriptionNotFound,
        Reason::InvalidCustomerSubscriptionId,
        Reason::CustomerSubscriptionsNotAllowed,
        Reason::UnauthorizedCspRegistration,
        Reason::TenantNotFound,
        Reason::SubscriptionNotFound,
        Reason::AlreadyExists,
        Reason::MeterAlreadyExists,
    ];

    /// The reason named `name`, as it travels in `ErrorInfo.reason`.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidProperty => "InvalidProperty",
            Reason::InvalidAggregationGranularity => "InvalidAggregationGranularity",
            Reason::InvalidTimeAlignment => "InvalidTimeAlignment",
            Reason::RequestEndTimeIsInFuture => "RequestEndTimeIsInFuture",
            Reason::InvalidContinuationToken => "InvalidContinuationToken",
            Reason::UnknownMeter => "UnknownMeter",
            Reason::BatchTooLarge => "BatchTooLarge",
            Reason::EventIdConflict => "EventIdConflict",
            Reason::ProcessingNotComplete => "ProcessingNotComplete",
            Reason::MissingCredentials => "MissingCredentials",
            Reason::InvalidToken => "InvalidToken",
            Reason::SubscriberIdIsNotDirectTenant => "SubscriberIdIsNotDirectTenant",
            Reason::NotSubscriptionOwner => "NotSubscriptionOwner",
            Reason::RoleRequired => "RoleRequired",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Internal => "Internal",
            Reason::RegistrationNotFound => "RegistrationNotFound",
            Reason::CustomerSubscriptionNotFound => "CustomerSubscriptionNotFound",
            Reason::InvalidCustomerSubscriptionId => "InvalidCustomerSubscriptionId",
            Reason::CustomerSubscriptionsNotAllowed => "CustomerSubscriptionsNotAllowed",
            Reason::UnauthorizedCspRegistration => "UnauthorizedCspRegistration",
            Reason::TenantNotFound => "TenantNotFound",
            Reason::SubscriptionNotFound => "SubscriptionNotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::MeterAlreadyExists => "MeterAlreadyExists",
        }
    }

    /// The contract's status for this reason (api-contract.md, "Errors").
    pub fn class(self) -> StatusClass {
        match self {
            Reason::InvalidProperty
            | Reason::InvalidAggregationGranularity
            | Reason::InvalidTimeAlignment
            | Reason::RequestEndTimeIsInFuture
            | Reason::InvalidContinuationToken
            | Reason::UnknownMeter
            | Reason::BatchTooLarge
            | Reason::InvalidCustomerSubscriptionId => StatusClass::InvalidArgument,
            Reason::EventIdConflict | Reason::AlreadyExists | Reason::MeterAlreadyExists => {
                StatusClass::AlreadyExists
            }
            Reason::ProcessingNotComplete
            | Reason::CustomerSubscriptionsNotAllowed
            | Reason::UnauthorizedCspRegistration => StatusClass::FailedPrecondition,
            Reason::MissingCredentials | Reason::InvalidToken => StatusClass::Unauthenticated,
            Reason::SubscriberIdIsNotDirectTenant
            | Reason::NotSubscriptionOwner
            | Reason::RoleRequired => StatusClass::PermissionDenied,
            Reason::ServiceUnavailable => StatusClass::Unavailable,
            Reason::Internal => StatusClass::Internal,
            Reason::RegistrationNotFound
            | Reason::CustomerSubscriptionNotFound
            | Reason::TenantNotFound
            | Reason::SubscriptionNotFound => StatusClass::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_reason_round_trips_by_name() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_name(reason.as_str()), Some(*reason));
        }
        assert_eq!(
            Reason::ALL.len(),
            25,
            "a new reason must be added to Reason::ALL"
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
