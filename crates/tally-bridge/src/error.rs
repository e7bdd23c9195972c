//! The bridge's errors, mapped to `tonic::Status` in exactly one place.

use tally_core::Rejection;
use tally_proto::status;
use tally_store::StoreError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A call to the usage or registration service failed.
    #[error("{service}: {status}")]
    Peer {
        service: &'static str,
        status: Status,
    },
}

impl BridgeError {
    pub(crate) fn peer(service: &'static str) -> impl FnOnce(Status) -> BridgeError {
        move |status| BridgeError::Peer { service, status }
    }
}

impl From<BridgeError> for Status {
    fn from(error: BridgeError) -> Status {
        match error {
            BridgeError::Rejected(rejection) => status::from_rejection(&rejection),
            BridgeError::Store(StoreError::StorageFull(e)) => {
                tracing::error!(error = %e, "bridge database disk full");
                status::storage_full("the bridge database")
            }
            BridgeError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "bridge database unavailable");
                status::unavailable("the bridge database")
            }
            BridgeError::Store(e) => status::internal(&e),
            BridgeError::Peer { status, .. } => status,
        }
    }
}
