//! Storage errors: the database being unreachable (or its disk full) is kept apart from
//! everything else, because callers may retry those and must not retry the rest.

use sea_orm::sqlx::Error as SqlxError;
use sea_orm::{DbErr, RuntimeErr};

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(DbErr),
    /// The database's disk (or file size limit) is full: the statement failed and its
    /// transaction stored nothing. Retrying helps once space is freed.
    #[error("database storage is full: {0}")]
    StorageFull(DbErr),
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
        match classify(&e) {
            Failure::Unavailable => StoreError::Unavailable(e),
            Failure::StorageFull => StoreError::StorageFull(e),
            Failure::Other => StoreError::Database(e),
        }
    }
}

/// What a database error means to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The connection is gone or cannot be had: retry.
    Unavailable,
    /// No space left for the write: retry once space is freed.
    StorageFull,
    Other,
}

fn classify(e: &DbErr) -> Failure {
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => Failure::Unavailable,
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            classify_sqlx(sqlx)
        }
        _ => Failure::Other,
    }
}

/// PostgreSQL SQLSTATEs of a connection lost or refused: class 08 (connection exception),
/// 57P01..57P03 (the backend was terminated or the server is shutting down or starting),
/// 53300 (too many connections).
fn is_connection_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// SQLite's primary result code of a full disk (`SQLITE_FULL`); extended codes carry it in
/// their low byte.
const SQLITE_FULL: i64 = 13;

fn classify_sqlx(e: &SqlxError) -> Failure {
    match e {
        // A terminated backend shows as an error from the server, then as a broken socket.
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::Protocol(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => Failure::Unavailable,
        SqlxError::Database(db) => {
            let Some(code) = db.code() else {
                return Failure::Other;
            };
            if is_connection_sqlstate(&code) {
                Failure::Unavailable
            } else if code.parse::<i64>().is_ok_and(|c| c & 0xff == SQLITE_FULL) {
                Failure::StorageFull
            } else {
                Failure::Other
            }
        }
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn exec(e: SqlxError) -> DbErr {
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
    }

    #[test]
    fn lost_connections_are_unavailable() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            StoreError::from(exec(SqlxError::Io(reset))),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(DbErr::Query(RuntimeErr::SqlxError(Arc::new(
                SqlxError::PoolTimedOut
            )))),
            StoreError::Unavailable(_)
        ));
        for code in ["08006", "08003", "57P01", "57P02", "57P03", "53300"] {
            assert!(is_connection_sqlstate(code), "{code}");
        }
        for code in ["23505", "40001", "13", "42P01"] {
            assert!(!is_connection_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn other_errors_are_not_retryable() {
        assert!(matches!(
            StoreError::from(exec(SqlxError::RowNotFound)),
            StoreError::Database(_)
        ));
        assert!(matches!(
            StoreError::from(DbErr::Custom("x".into())),
            StoreError::Database(_)
        ));
    }
}
