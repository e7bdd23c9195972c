//! Storage errors: the database being unreachable is kept apart from everything else, because
//! callers may retry the one and must not retry the other.

use sea_orm::DbErr;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(DbErr),
    #[error("database error: {0}")]
    Database(DbErr),
    /// An event id already stored with different content. `index` is the record's position in the
    /// batch as posted.
    #[error("event id {event_id:?} is already stored with different content")]
    EventIdConflict { index: usize, event_id: String },
    #[error("invalid database url {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        match &e {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => StoreError::Unavailable(e),
            _ => StoreError::Database(e),
        }
    }
}
