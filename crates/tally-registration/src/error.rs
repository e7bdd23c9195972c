//! The registration service's errors, mapped to `tonic::Status` in exactly one place.

use tally_core::Rejection;
use tally_proto::status;
use tally_store::StoreError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RegistrationError> for Status {
    fn from(error: RegistrationError) -> Status {
        match error {
            RegistrationError::Rejected(rejection) => status::from_rejection(&rejection),
            RegistrationError::Store(StoreError::StorageFull(e)) => {
                tracing::error!(error = %e, "registration database disk full");
                status::storage_full("the registration database")
            }
            RegistrationError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "registration database unavailable");
                status::unavailable("the registration database")
            }
            RegistrationError::Store(e) => status::internal(&e),
        }
    }
}
