//! Folding: stored records into hourly and daily aggregates, each exactly once.
//!
//! The database does the grouping and adding (`INSERT .. SELECT .. GROUP BY .. ON CONFLICT DO
//! UPDATE`), so none of the records travels to the service; both backends run the same SQL.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait, Value,
};
use tally_core::Granularity;
use tally_core::quantity::FRACTION_SCALE;
use tally_core::time::{DAY_SECONDS, HOUR_SECONDS};

use super::ingest::ORDINAL_BITS;
use super::{FOLD_LOCK, INGEST_LOCK, UsageStore, micros_to_utc, utc_to_micros};
use crate::db::Backend;
use crate::error::StoreError;
use crate::sql::Sql;

/// Batches examined per fold transaction, at most.
const MAX_BATCHES_PER_FOLD: i64 = 2_000;
/// Batch ids per fold statement.
const BATCHES_PER_STATEMENT: usize = 500;
/// Records folded before PostgreSQL's statistics are worth refreshing, at least.
const ANALYZE_MIN_RECORDS: u64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldOutcome {
    pub batches: usize,
    pub records: u64,
    /// False when another instance held the fold; nothing was done.
    pub ran: bool,
    pub complete_through: Option<DateTime<Utc>>,
    /// Whether unfolded batches remain after this fold.
    pub more: bool,
}

impl UsageStore {
    /// Folds unfolded batches (up to about `max_records` records) and advances
    /// `complete_through` to `now` if nothing reported before it remains unfolded.
    pub async fn fold(
        &self,
        now: DateTime<Utc>,
        max_records: u64,
    ) -> Result<FoldOutcome, StoreError> {
        self.publish_horizon(now).await?;
        let backend = self.db.db_backend();
        let txn = self.db.writer().begin().await?;
        if self.db.backend() == Backend::Postgres {
            let locked: bool = txn
                .query_one_raw(
                    Sql::new(
                        backend,
                        &format!("SELECT pg_try_advisory_xact_lock({FOLD_LOCK})"),
                    )
                    .build(),
                )
                .await?
                .map(|r| r.try_get_by_index(0))
                .transpose()?
                .unwrap_or(false);
            if !locked {
                return Ok(FoldOutcome {
                    batches: 0,
                    records: 0,
                    ran: false,
                    complete_through: None,
                    more: true,
                });
            }
            // Room to group a fold's records in memory rather than spill them to disk.
            txn.execute_unprepared("SET LOCAL work_mem = '64MB'")
                .await?;
        }
        let state = txn
            .query_one_raw(
                Sql::new(
                    backend,
                    "SELECT horizon, complete_through, max_lateness_hourly, max_lateness_daily \
                     FROM usage_pipeline WHERE id = 1",
                )
                .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        let horizon: i64 = state.try_get_by_index(0)?;
        let previous_complete: i64 = state.try_get_by_index(1)?;
        let mut lateness_hourly: i64 = state.try_get_by_index(2)?;
        let mut lateness_daily: i64 = state.try_get_by_index(3)?;

        let mut select = Sql::new(
            backend,
            "SELECT id, reported_at, record_count, min_usage_start FROM usage_batch \
             WHERE folded = FALSE ORDER BY id LIMIT ",
        );
        select.bind(MAX_BATCHES_PER_FOLD);
        let mut batches: Vec<i64> = Vec::new();
        let mut records: u64 = 0;
        let mut more = false;
        for row in txn.query_all_raw(select.build()).await? {
            let count: i32 = row.try_get_by_index(2)?;
            if !batches.is_empty() && records + count as u64 > max_records {
                more = true;
                break;
            }
            let id: i64 = row.try_get_by_index(0)?;
            let reported = row.try_get_by_index::<i64>(1)?.div_euclid(1_000_000);
            // A batch's latest record is its earliest usage: it sets how late records arrive.
            let earliest = match row.try_get_by_index::<Option<i64>>(3)? {
                Some(nanos) => nanos,
                None => earliest_usage(&txn, backend, id).await?,
            };
            let usage = earliest.div_euclid(1_000_000_000);
            for (granularity, lateness) in [
                (Granularity::Hourly, &mut lateness_hourly),
                (Granularity::Daily, &mut lateness_daily),
            ] {
                *lateness =
                    (*lateness).max(granularity.bucket_of(reported) - granularity.bucket_of(usage));
            }
            batches.push(id);
            records += count as u64;
        }

        for ids in batches.chunks(BATCHES_PER_STATEMENT) {
            for (table, bucket) in [("usage_hourly", HOUR_SECONDS), ("usage_daily", DAY_SECONDS)] {
                txn.execute_raw(fold_statement(backend, table, bucket, ids))
                    .await?;
            }
            let mut mark = Sql::new(backend, "UPDATE usage_batch SET folded = TRUE WHERE id IN ");
            mark.bind_tuple(ids.iter().map(|id| Value::BigInt(Some(*id))));
            txn.execute_raw(mark.build()).await?;
        }
        let oldest_unfolded: Option<i64> = txn
            .query_one_raw(
                Sql::new(
                    backend,
                    "SELECT MIN(reported_at) FROM usage_batch WHERE folded = FALSE",
                )
                .build(),
            )
            .await?
            .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten());
        // Everything reported before the horizon has committed (the horizon was published after
        // in-flight ingests finished), so the only records before it not yet folded are in the
        // batches still marked unfolded.
        let complete = oldest_unfolded
            .map_or(horizon, |oldest| oldest.min(horizon))
            .max(previous_complete);
        let mut update = Sql::new(backend, "UPDATE usage_pipeline SET complete_through = ");
        update
            .bind(complete)
            .push(", records_folded = records_folded + ")
            .bind(records as i64)
            .push(", max_lateness_hourly = ")
            .bind(lateness_hourly)
            .push(", max_lateness_daily = ")
            .bind(lateness_daily)
            .push(" WHERE id = 1");
        txn.execute_raw(update.build()).await?;
        txn.commit().await?;
        self.folded_since_analyze
            .fetch_add(records, Ordering::Relaxed);
        self.unchecked_writes.store(true, Ordering::Relaxed);
        Ok(FoldOutcome {
            batches: batches.len(),
            records,
            ran: true,
            complete_through: Some(micros_to_utc(complete)),
            more: more || oldest_unfolded.is_some_and(|oldest| oldest < horizon),
        })
    }

    /// Housekeeping, called whenever the fold has caught up. SQLite: once ingestion pauses (no
    /// group commit since the previous call), moves the write-ahead log into the database, so
    /// readers do not search a long log for every page; while batches keep coming the writer is
    /// better spent on them, and the automatic checkpoint bounds the log. PostgreSQL: refreshes the
    /// planner's statistics (as autoanalyze would; it may be off), because without them a page
    /// query sorts the whole window instead of walking the index: after the first
    /// [`ANALYZE_MIN_RECORDS`] folded, then whenever those folded since the last ANALYZE reach a
    /// tenth of those folded before it (counted from start-up).
    pub async fn maintain(&self) -> Result<(), StoreError> {
        match self.db.backend() {
            Backend::Sqlite => {
                let commits = self.group_commits.load(Ordering::Relaxed);
                let idle = self.group_commits_seen.swap(commits, Ordering::Relaxed) == commits;
                if idle && self.unchecked_writes.swap(false, Ordering::Relaxed) {
                    self.db
                        .writer()
                        .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                        .await?;
                }
            }
            Backend::Postgres => {
                let since = self.folded_since_analyze.load(Ordering::Relaxed);
                let before = self.folded_at_analyze.load(Ordering::Relaxed);
                if since >= ANALYZE_MIN_RECORDS && since >= before / 10 {
                    self.folded_since_analyze
                        .fetch_sub(since, Ordering::Relaxed);
                    self.folded_at_analyze.fetch_add(since, Ordering::Relaxed);
                    self.db
                        .writer()
                        .execute_unprepared(
                            "ANALYZE usage_record, usage_batch, usage_hourly, usage_daily",
                        )
                        .await?;
                    tracing::debug!(records = before + since, "analyzed the usage tables");
                }
            }
        }
        Ok(())
    }

    /// Records `now` as the horizon once no ingest is in flight, so every later ingest gets a
    /// reported time at or after it.
    async fn publish_horizon(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let backend = self.db.db_backend();
        let txn = self.db.writer().begin().await?;
        if self.db.backend() == Backend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({INGEST_LOCK})"))
                .await?;
        }
        let now = utc_to_micros(now);
        let mut update = Sql::new(backend, "UPDATE usage_pipeline SET horizon = ");
        update
            .bind(now)
            .push(" WHERE id = 1 AND horizon < ")
            .bind(now);
        txn.execute_raw(update.build()).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Adds the records of batches `ids` to `table`, grouped by the aggregate's key (usage bucket,
/// subscription, meter, instance, reported bucket), carrying fractions into whole units exactly.
fn fold_statement(backend: DbBackend, table: &str, bucket: i64, ids: &[i64]) -> Statement {
    let usage_nanos = bucket * 1_000_000_000;
    let reported_micros = bucket * 1_000_000;
    let span = 1_i64 << ORDINAL_BITS;
    let usage_bucket = format!("(r.usage_start / {usage_nanos}) * {bucket}");
    let reported_bucket = format!("(b.reported_at / {reported_micros}) * {bucket}");
    let mut sql = Sql::new(
        backend,
        &format!(
            "INSERT INTO {table} (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket, \
             qty_units, qty_frac) \
             SELECT {usage_bucket}, r.subscription_key, r.meter_key, r.instance_key, {reported_bucket}, \
             CAST(SUM(r.qty_units) AS BIGINT) + CAST(SUM(r.qty_frac) AS BIGINT) / {FRACTION_SCALE}, \
             CAST(SUM(r.qty_frac) AS BIGINT) % {FRACTION_SCALE} \
             FROM usage_batch b JOIN usage_record r ON r.id >= b.id * {span} AND r.id < (b.id + 1) * {span} \
             WHERE b.id IN "
        ),
    );
    sql.bind_tuple(ids.iter().map(|id| Value::BigInt(Some(*id))));
    sql.push(&format!(
        " GROUP BY {usage_bucket}, r.subscription_key, r.meter_key, r.instance_key, {reported_bucket} \
         ON CONFLICT (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket) DO UPDATE SET \
         qty_units = {table}.qty_units + excluded.qty_units + ({table}.qty_frac + excluded.qty_frac) / {FRACTION_SCALE}, \
         qty_frac = ({table}.qty_frac + excluded.qty_frac) % {FRACTION_SCALE}"
    ));
    sql.build()
}

/// The earliest usage time of a batch stored before batches kept it (see the migration).
async fn earliest_usage(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    batch: i64,
) -> Result<i64, StoreError> {
    let mut select = Sql::new(
        backend,
        "SELECT MIN(usage_start) FROM usage_record WHERE id >= ",
    );
    select
        .bind(batch << ORDINAL_BITS)
        .push(" AND id < ")
        .bind((batch + 1) << ORDINAL_BITS);
    Ok(txn
        .query_one_raw(select.build())
        .await?
        .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
        .unwrap_or(0))
}
