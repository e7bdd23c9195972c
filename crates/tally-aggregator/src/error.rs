//! The aggregator's errors, mapped to `tonic::Status` in exactly one place.

use chrono::{DateTime, Utc};
use tally_core::{Reason, Rejection};
use tally_proto::metrics::BatchOutcome;
use tally_proto::status;
use tally_store::StoreError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("the window ends at {end}, but processing is complete only through {complete_through}")]
    ProcessingNotComplete {
        end: DateTime<Utc>,
        complete_through: DateTime<Utc>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{in_use} bytes of batches are being stored; at most {budget} at once")]
    Overloaded { in_use: usize, budget: usize },
}

impl UsageError {
    /// How a posted batch that failed with this error ended, for the metrics.
    pub(crate) fn batch_outcome(&self) -> BatchOutcome {
        match self {
            UsageError::Rejected(_) => BatchOutcome::Invalid,
            UsageError::Store(StoreError::EventIdConflict { .. }) => BatchOutcome::Conflict,
            UsageError::Store(StoreError::Unavailable(_) | StoreError::StorageFull(_)) => {
                BatchOutcome::Unavailable
            }
            UsageError::Overloaded { .. } => BatchOutcome::Overloaded,
            UsageError::ProcessingNotComplete { .. } | UsageError::Store(_) => BatchOutcome::Failed,
        }
    }
}

impl From<UsageError> for Status {
    fn from(error: UsageError) -> Status {
        match error {
            UsageError::Rejected(rejection) => status::from_rejection(&rejection),
            e @ UsageError::ProcessingNotComplete { .. } => status::status(
                Reason::ProcessingNotComplete,
                format!("{e}; retry later or set allow_incomplete"),
            ),
            UsageError::Store(StoreError::EventIdConflict { index, event_id }) => {
                status::from_rejection(&tally_core::record::event_id_conflict(
                    index,
                    &event_id,
                    "is already stored with different content".into(),
                ))
            }
            UsageError::Store(StoreError::StorageFull(e)) => {
                tracing::error!(error = %e, "usage database disk full");
                status::storage_full("the usage database")
            }
            UsageError::Store(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "usage database unavailable");
                status::unavailable("the usage database")
            }
            e @ UsageError::Overloaded { .. } => {
                status::too_many_requests(format!("{e}; retry shortly"))
            }
            UsageError::Store(e) => status::internal(&e),
        }
    }
}
