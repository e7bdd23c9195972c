//! The billing service's errors, mapped to `tonic::Status` in exactly one place.

use tally_core::Rejection;
use tally_proto::status;
use tally_store::StoreError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A peer (usage or registration) answered with an error; passed on as it came.
    #[error("{}", .0.message())]
    Peer(Status),
    #[error("stored statement is unreadable: {0}")]
    Corrupt(String),
    /// A task feeding a stream panicked: the stream ends with this error, never short but clean.
    #[error("{0} stopped on an internal error")]
    Panicked(&'static str),
}

impl From<Status> for BillingError {
    fn from(status: Status) -> Self {
        BillingError::Peer(status)
    }
}

impl From<BillingError> for Status {
    fn from(error: BillingError) -> Status {
        match error {
            BillingError::Rejected(rejection) => status::from_rejection(&rejection),
            BillingError::Store(StoreError::StorageFull(e)) => {
                tracing::error!(error = %e, "billing database disk full");
                status::storage_full("the billing database")
            }
            BillingError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "billing database unavailable");
                status::unavailable("the billing database")
            }
            BillingError::Store(e) => status::internal(&e),
            BillingError::Peer(status) => status,
            BillingError::Corrupt(message) => status::internal(&std::io::Error::other(message)),
            BillingError::Panicked(what) => status::internal(&std::io::Error::other(format!(
                "{what} stopped on an internal error"
            ))),
        }
    }
}
