//! PostgreSQL: batches commit in parallel, each in its own transaction, ordered against the
//! horizon and the fold by advisory locks; records go in as one `INSERT .. SELECT FROM UNNEST`
//! per batch; planner statistics are refreshed after large folds.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait, Value};
use tally_core::UsageRecord;

use crate::db::{Backend, Database};
use crate::error::StoreError;
use crate::sql::Sql;
use crate::usage::UsageStore;
use crate::usage::encoding::{RECORD_COLUMNS, StoredRecord};
use crate::usage::ingest::IngestOutcome;

/// Advisory lock: ingests hold it shared, the horizon publisher exclusively.
const INGEST_LOCK: i64 = 0x7a11_7900_0000_0002;
/// Advisory lock held by the one folder at work across all instances.
const FOLD_LOCK: i64 = 0x7a11_7900_0000_0003;
/// Records folded before the statistics are worth refreshing, at least.
const ANALYZE_MIN_RECORDS: u64 = 10_000;

/// Each column of [`RECORD_COLUMNS`] as an array: its element type and cast.
const RECORD_ARRAYS: [(ArrayType, &str); 10] = [
    (ArrayType::BigInt, "int8[]"),
    (ArrayType::Bytes, "bytea[]"),
    (ArrayType::BigInt, "int8[]"),
    (ArrayType::Int, "int4[]"),
    (ArrayType::Int, "int4[]"),
    (ArrayType::BigInt, "int8[]"),
    (ArrayType::BigInt, "int8[]"),
    (ArrayType::BigInt, "int8[]"),
    (ArrayType::BigInt, "int8[]"),
    (ArrayType::BigInt, "int8[]"),
];

#[derive(Default)]
pub(crate) struct Postgres {
    /// Records folded since the last ANALYZE, and before it (counted from start-up).
    folded_since_analyze: AtomicU64,
    folded_at_analyze: AtomicU64,
}

impl Postgres {
    /// One transaction per batch, holding the ingest lock shared, so batches run in parallel
    /// and the horizon publisher waits for all of them.
    pub(super) async fn ingest(
        &self,
        store: &UsageStore,
        records: Vec<UsageRecord>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let txn = store.database().writer().begin().await?;
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock_shared({INGEST_LOCK})"
        ))
        .await?;
        let (outcome, learned) = store.ingest_and_end(txn, &records, now).await?;
        if let Some(learned) = learned {
            store.learn(learned);
        }
        Ok(outcome)
    }

    pub(super) async fn lock_ingest_out(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<(), StoreError> {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({INGEST_LOCK})"))
            .await?;
        Ok(())
    }

    /// One folder at a time across all instances; the one that gets the lock may group a fold's
    /// records in memory rather than spill them to disk.
    pub(super) async fn try_lock_fold(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<bool, StoreError> {
        let locked: bool = txn
            .query_one_raw(
                Sql::new(
                    Backend::Postgres,
                    &format!("SELECT pg_try_advisory_xact_lock({FOLD_LOCK})"),
                )
                .build(),
            )
            .await?
            .map(|r| r.try_get_by_index(0))
            .transpose()?
            .unwrap_or(false);
        if locked {
            txn.execute_unprepared("SET LOCAL work_mem = '64MB'")
                .await?;
        }
        Ok(locked)
    }

    pub(super) fn folded(&self, records: u64) {
        self.folded_since_analyze
            .fetch_add(records, Ordering::Relaxed);
    }

    /// Refreshes the planner's statistics (as autoanalyze would; it may be off), because without
    /// them a page query sorts the whole window instead of walking the index: after the first
    /// [`ANALYZE_MIN_RECORDS`] folded, then whenever those folded since the last ANALYZE reach a
    /// tenth of those folded before it.
    pub(super) async fn maintain(&self, db: &Database) -> Result<(), StoreError> {
        let since = self.folded_since_analyze.load(Ordering::Relaxed);
        let before = self.folded_at_analyze.load(Ordering::Relaxed);
        if analyze_is_due(since, before) {
            self.folded_since_analyze
                .fetch_sub(since, Ordering::Relaxed);
            self.folded_at_analyze.fetch_add(since, Ordering::Relaxed);
            db.writer()
                .execute_unprepared("ANALYZE usage_record, usage_batch, usage_hourly, usage_daily")
                .await?;
            tracing::debug!(records = before + since, "analyzed the usage tables");
        }
        Ok(())
    }
}

fn analyze_is_due(folded_since: u64, folded_before: u64) -> bool {
    folded_since >= ANALYZE_MIN_RECORDS && folded_since >= folded_before / 10
}

pub(super) async fn insert_batch(
    txn: &DatabaseTransaction,
    mut insert: Sql,
) -> Result<i64, StoreError> {
    insert.push(" RETURNING id");
    Ok(txn
        .query_one_raw(insert.build())
        .await?
        .ok_or_else(|| StoreError::Corrupt("batch insert returned no id".into()))?
        .try_get_by_index(0)?)
}

/// `INSERT .. SELECT FROM UNNEST(arrays)`: ten parameters however long the batch, so a batch is
/// one statement (PostgreSQL allows 65,535 parameters).
pub(super) fn insert_records(records: &[StoredRecord]) -> Statement {
    let mut columns: [Vec<Value>; 10] = std::array::from_fn(|_| Vec::with_capacity(records.len()));
    for record in records {
        for (column, value) in columns.iter_mut().zip(record.values()) {
            column.push(value);
        }
    }
    let mut insert = Sql::new(
        Backend::Postgres,
        &format!("INSERT INTO usage_record ({RECORD_COLUMNS}) SELECT * FROM UNNEST("),
    );
    for (i, (column, (element, cast))) in columns.into_iter().zip(RECORD_ARRAYS).enumerate() {
        if i > 0 {
            insert.push(", ");
        }
        insert
            .bind(Value::Array(element, Some(Box::new(column))))
            .push("::")
            .push(cast);
    }
    insert.push(") ON CONFLICT (event_key) DO NOTHING");
    insert.build()
}

pub(super) fn find_stored_events<'k>(
    event_keys: impl IntoIterator<Item = &'k [u8; 16]>,
) -> Statement {
    let mut select = Sql::new(
        Backend::Postgres,
        "SELECT event_key, id, content_hash FROM usage_record WHERE event_key = ANY(",
    );
    select
        .bind(
            event_keys
                .into_iter()
                .map(|key| key.to_vec())
                .collect::<Vec<_>>(),
        )
        .push("::bytea[])");
    select.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::encoding::{DictionaryKeys, RecordId, tests::record};

    #[test]
    fn each_array_matches_its_column() {
        let stored = StoredRecord::new(
            RecordId::new(1, 0),
            &record("e", "1"),
            DictionaryKeys {
                subscription: 1,
                meter: 2,
                instance: 3,
            },
        );
        assert_eq!(RECORD_COLUMNS.split(',').count(), RECORD_ARRAYS.len());
        for (value, (element, cast)) in stored.values().iter().zip(RECORD_ARRAYS) {
            let (expected, expected_cast) = match value {
                Value::BigInt(_) => (ArrayType::BigInt, "int8[]"),
                Value::Int(_) => (ArrayType::Int, "int4[]"),
                Value::Bytes(_) => (ArrayType::Bytes, "bytea[]"),
                other => panic!("unexpected column value {other:?}"),
            };
            assert_eq!((element, cast), (expected, expected_cast));
        }
    }

    #[test]
    fn statistics_are_refreshed_after_a_tenth_more() {
        assert!(!analyze_is_due(9_999, 0));
        assert!(analyze_is_due(10_000, 0));
        assert!(!analyze_is_due(10_000, 100_010));
        assert!(analyze_is_due(10_001, 100_010));
    }
}
