//! Everything the usage store does differently on SQLite and on PostgreSQL, and nothing else.
//!
//! Each engine is one type holding its own state ([`Sqlite`]: the group commit and checkpoint
//! bookkeeping; [`Postgres`]: planner-statistics counters), and [`Engine`] names the operations
//! that differ. The transactions themselves (ingest, fold, query) are written once, in the
//! modules beside this one, and call these operations where the engines part ways.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, Statement};
use tally_core::UsageRecord;

use super::UsageStore;
use super::encoding::StoredRecord;
use super::ingest::IngestOutcome;
use crate::db::{Backend, Database};
use crate::error::StoreError;
use crate::sql::Sql;
use postgres::Postgres;
use sqlite::Sqlite;

pub use sqlite::{MAX_GROUP_RECORDS, RECORDS_PER_INSERT};

pub(crate) enum Engine {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

impl Engine {
    pub(crate) fn new(backend: Backend) -> Engine {
        match backend {
            Backend::Sqlite => Engine::Sqlite(Sqlite::default()),
            Backend::Postgres => Engine::Postgres(Postgres::default()),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// A statement in this engine's dialect.
    pub(crate) fn sql(&self, text: &str) -> Sql {
        Sql::new(self.backend(), text)
    }

    /// Stores one batch durably (see [`UsageStore::ingest`]). SQLite commits the batches that
    /// arrive together as one group, each in its own savepoint; PostgreSQL commits each batch in
    /// its own transaction, in parallel, holding the ingest lock shared.
    pub(crate) async fn ingest(
        &self,
        store: &UsageStore,
        records: Vec<UsageRecord>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        match self {
            Engine::Sqlite(sqlite) => sqlite.ingest(store, records, now).await,
            Engine::Postgres(postgres) => postgres.ingest(store, records, now).await,
        }
    }

    /// Waits until no ingest is in flight and keeps new ones out until `txn` ends. SQLite has
    /// one writer, which `txn` already is.
    pub(crate) async fn lock_ingest_out(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<(), StoreError> {
        match self {
            Engine::Sqlite(_) => Ok(()),
            Engine::Postgres(postgres) => postgres.lock_ingest_out(txn).await,
        }
    }

    /// Takes the fold for `txn`; `false` if another instance is folding. SQLite has one writer,
    /// which `txn` already is.
    pub(crate) async fn try_lock_fold(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<bool, StoreError> {
        match self {
            Engine::Sqlite(_) => Ok(true),
            Engine::Postgres(postgres) => postgres.try_lock_fold(txn).await,
        }
    }

    /// Runs `insert` (of one `usage_batch` row) and returns the new row's id.
    pub(crate) async fn insert_batch(
        &self,
        txn: &DatabaseTransaction,
        insert: Sql,
    ) -> Result<i64, StoreError> {
        match self {
            Engine::Sqlite(_) => sqlite::insert_batch(txn, insert).await,
            Engine::Postgres(_) => postgres::insert_batch(txn, insert).await,
        }
    }

    /// Records per INSERT statement for a batch of `batch_len` records.
    pub(crate) fn records_per_insert(&self, batch_len: usize) -> usize {
        match self {
            Engine::Sqlite(_) => sqlite::RECORDS_PER_INSERT,
            // Arrays: one statement of ten parameters however long the batch.
            Engine::Postgres(_) => batch_len.max(1),
        }
    }

    /// One INSERT of `records` that skips any whose event key is stored already.
    pub(crate) fn insert_records(&self, records: &[StoredRecord]) -> Statement {
        match self {
            Engine::Sqlite(_) => sqlite::insert_records(records),
            Engine::Postgres(_) => postgres::insert_records(records),
        }
    }

    /// `SELECT event_key, id, content_hash` of the records stored under `event_keys`.
    pub(crate) fn find_stored_events<'k>(
        &self,
        event_keys: impl IntoIterator<Item = &'k [u8; 16]>,
    ) -> Statement {
        match self {
            Engine::Sqlite(_) => sqlite::find_stored_events(event_keys),
            Engine::Postgres(_) => postgres::find_stored_events(event_keys),
        }
    }

    /// Notes a committed fold of `records` records, for [`Engine::maintain`].
    pub(crate) fn folded(&self, records: u64) {
        match self {
            Engine::Sqlite(sqlite) => sqlite.wrote(),
            Engine::Postgres(postgres) => postgres.folded(records),
        }
    }

    /// Housekeeping once the fold has caught up: SQLite checkpoints its write-ahead log while
    /// ingestion pauses; PostgreSQL refreshes planner statistics after large folds.
    pub(crate) async fn maintain(&self, db: &Database) -> Result<(), StoreError> {
        match self {
            Engine::Sqlite(sqlite) => sqlite.maintain(db).await,
            Engine::Postgres(postgres) => postgres.maintain(db).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tests::values;
    use crate::usage::encoding::{DictionaryKeys, RecordId, tests::record};

    fn rows(n: usize) -> Vec<StoredRecord> {
        (0..n)
            .map(|i| {
                StoredRecord::new(
                    RecordId::new(1, i),
                    &record(&format!("e-{i}"), "1"),
                    DictionaryKeys {
                        subscription: 1,
                        meter: 2,
                        instance: 3,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn sqlite_inserts_rows_of_values_and_postgres_ten_arrays() {
        let records = rows(3);
        let sqlite = Engine::new(Backend::Sqlite).insert_records(&records);
        assert!(
            sqlite
                .sql
                .starts_with("INSERT INTO usage_record (id, event_key,")
        );
        assert!(sqlite.sql.ends_with(" ON CONFLICT (event_key) DO NOTHING"));
        assert_eq!(sqlite.sql.matches('(').count(), 2 + 3);
        assert_eq!(values(&sqlite), 30);

        let postgres = Engine::new(Backend::Postgres).insert_records(&records);
        assert!(
            postgres
                .sql
                .contains("SELECT * FROM UNNEST($1::int8[], $2::bytea[]")
        );
        assert!(
            postgres
                .sql
                .ends_with("$10::int8[]) ON CONFLICT (event_key) DO NOTHING")
        );
        assert_eq!(values(&postgres), 10);
    }

    #[test]
    fn sqlite_stays_under_its_parameter_limit() {
        let engine = Engine::new(Backend::Sqlite);
        assert!(engine.records_per_insert(10_000) * 10 <= 32_766);
        assert_eq!(
            Engine::new(Backend::Postgres).records_per_insert(10_000),
            10_000
        );
    }

    #[test]
    fn stored_events_are_found_by_list_or_array() {
        let keys = [[1u8; 16], [2u8; 16]];
        let sqlite = Engine::new(Backend::Sqlite).find_stored_events(&keys);
        assert_eq!(
            sqlite.sql,
            "SELECT event_key, id, content_hash FROM usage_record WHERE event_key IN (?, ?)"
        );
        assert_eq!(values(&sqlite), 2);
        let postgres = Engine::new(Backend::Postgres).find_stored_events(&keys);
        assert_eq!(
            postgres.sql,
            "SELECT event_key, id, content_hash FROM usage_record WHERE event_key = ANY($1::bytea[])"
        );
        assert_eq!(values(&postgres), 1);
    }
}
