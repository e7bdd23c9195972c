//! Opening a database: connection pools tuned per backend, and migrations run once even when
//! several instances start together.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::Connection as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector,
    TransactionTrait,
};
use tally_migrations::MigratorTrait;

use crate::error::StoreError;

/// The database engines Tally runs on. The one enum for them: statements are built for it
/// ([`crate::sql::Sql`]) and turned into sea-orm's dialect only when they are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The engine a database URL names, if any.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// A service's database: a writer and a reader. On SQLite the writer is one connection (SQLite
/// has one writer; queuing in the pool is cheaper than lock retries) and readers run beside it
/// under WAL. On PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Database {
    backend: Backend,
    writer: DatabaseConnection,
    reader: DatabaseConnection,
}

fn unreachable_database(e: sea_orm::sqlx::Error) -> StoreError {
    StoreError::Unavailable(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
        e.to_string(),
    )))
}

/// Advisory lock that serializes migrations across instances sharing one PostgreSQL database.
const MIGRATION_LOCK: i64 = 0x7a11_7900_0000_0001;

/// SQLite reader connections per database.
const READERS: u32 = 4;
/// Page cache of each SQLite reader, in KiB. Readers walk index ranges once (pages, exports, the
/// bridge's seal) and the operating system caches the file. 4 readers of 16 MiB in each database
/// grew a 10,000,000-record export past 500 MiB of RSS; 2 MiB keeps it under 300 MiB, for about
/// 1 ms more per usage page at p50 (BENCHMARKS.md, exports and the code-shape comparison).
const READER_CACHE_KIB: u32 = 2048;

/// The settings of every SQLite connection Tally opens (the benchmark's storage limit connects
/// with them too, so it measures the same database).
pub fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| invalid_url(url, e.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the batch is acknowledged.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .page_size(1024)
        .pragma("cache_size", "-65536")
        .pragma("wal_autocheckpoint", "65536")
        .pragma("temp_store", "memory")
        .disable_statement_logging())
}

/// The settings of every PostgreSQL connection Tally opens.
pub fn postgres_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| invalid_url(url, e.to_string()))?
        .application_name("tally")
        // Paging queries bind cursor values that change the best plan; a cached generic
        // plan was seen to take 10x longer on some pages.
        // JIT compiling pays off for long analytical queries, not for these: it added a
        // quarter of a second to each fold statement. Pages join instance data by key;
        // at the default random_page_cost (spinning disks) the planner hashes the whole
        // instance table instead, several times slower.
        .options([
            ("plan_cache_mode", "force_custom_plan"),
            ("jit", "off"),
            ("random_page_cost", "1.1"),
        ])
        .disable_statement_logging())
}

fn invalid_url(url: &str, reason: String) -> StoreError {
    StoreError::InvalidUrl {
        url: url.to_string(),
        reason,
    }
}

impl Database {
    /// Opens `url`: `sqlite://path?mode=rwc` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Database, StoreError> {
        match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let options = sqlite_options(url)?;
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    // After SQLITE_FULL SQLite may roll a transaction back by itself; the driver's
                    // own ROLLBACK then fails and it still counts a transaction open, so its next
                    // BEGIN would be a SAVEPOINT and its COMMIT a RELEASE that is never durable.
                    // A connection handed out still counting one is replaced by a fresh one.
                    .before_acquire(|conn, _| {
                        Box::pin(async move {
                            let lost_track = conn.is_in_transaction();
                            if lost_track {
                                tracing::warn!(
                                    "replacing the SQLite writer connection: it lost track of its transaction"
                                );
                            }
                            Ok(!lost_track)
                        })
                    })
                    .connect_with(options.clone())
                    .await
                    .map_err(unreachable_database)?;
                let reader = SqlitePoolOptions::new()
                    .max_connections(READERS)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_lazy_with(
                        options
                            .read_only(true)
                            .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
                    );
                Ok(Database {
                    backend: Backend::Sqlite,
                    writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
                    reader: SqlxSqliteConnector::from_sqlx_sqlite_pool(reader),
                })
            }
            Some(Backend::Postgres) => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(postgres_options(url)?)
                    .await
                    .map_err(unreachable_database)?;
                let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
                Ok(Database {
                    backend: Backend::Postgres,
                    writer: conn.clone(),
                    reader: conn,
                })
            }
            None => Err(invalid_url(
                url,
                "expected a sqlite: or postgres: url".into(),
            )),
        }
    }

    /// Applies `M`'s pending migrations. On PostgreSQL they run in one transaction under an
    /// advisory lock, so instances starting together neither race nor half-apply.
    pub async fn migrate<M: MigratorTrait>(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => M::up(&self.writer, None).await?,
            Backend::Postgres => {
                let txn = self.writer.begin().await?;
                txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                    .await?;
                M::up(&txn, None).await?;
                txn.commit().await?;
            }
        }
        Ok(())
    }

    /// Whether the database answers a trivial query now (readiness). On SQLite it asks a reader,
    /// so a long group commit on the one writer does not look like an outage.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let conn = match self.backend {
            Backend::Sqlite => &self.reader,
            Backend::Postgres => &self.writer,
        };
        conn.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    pub(crate) fn reader(&self) -> &DatabaseConnection {
        &self.reader
    }

    pub async fn close(self) {
        let _ = self.writer.close().await;
        if self.backend == Backend::Sqlite {
            let _ = self.reader.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_engine() {
        assert_eq!(
            Backend::of_url("sqlite://x.db?mode=rwc"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::of_url("postgres://h/db"), Some(Backend::Postgres));
        assert_eq!(
            Backend::of_url("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("mysql://h/db"), None);
    }
}
