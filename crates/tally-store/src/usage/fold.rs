//! Folding: stored records into hourly and daily aggregates, each exactly once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, TransactionTrait, Value};
use tally_core::quantity::FRACTION_SCALE;
use tally_core::time::{DAY_SECONDS, HOUR_SECONDS};
use tally_core::{Granularity, Quantity};

use super::ingest::ORDINAL_BITS;
use super::{FOLD_LOCK, INGEST_LOCK, UsageStore, micros_to_utc, utc_to_micros};
use crate::db::Backend;
use crate::error::StoreError;
use crate::sql::Sql;

/// Batches examined per fold transaction, at most.
const MAX_BATCHES_PER_FOLD: i64 = 2_000;
/// Aggregate rows per upsert statement (7 parameters each).
const UPSERT_ROWS_PER_STATEMENT: usize = 500;

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

/// An aggregate cell: usage bucket, subscription, meter, instance, reported bucket.
type Cell = (i64, i32, i32, i64, i64);

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
            "SELECT id, reported_at, record_count FROM usage_batch WHERE folded = FALSE ORDER BY id LIMIT ",
        );
        select.bind(MAX_BATCHES_PER_FOLD);
        let mut batches: Vec<(i64, i64)> = Vec::new();
        let mut records_in_batches: u64 = 0;
        let mut more = false;
        for row in txn.query_all_raw(select.build()).await? {
            let count: i32 = row.try_get_by_index(2)?;
            if !batches.is_empty() && records_in_batches + count as u64 > max_records {
                more = true;
                break;
            }
            batches.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
            records_in_batches += count as u64;
        }

        let mut hourly: HashMap<Cell, Quantity> = HashMap::new();
        let mut daily: HashMap<Cell, Quantity> = HashMap::new();
        let mut records: u64 = 0;
        let reported_of: HashMap<i64, i64> = batches.iter().copied().collect();
        for (first, last) in runs(batches.iter().map(|(id, _)| *id)) {
            let mut select = Sql::new(
                backend,
                "SELECT id, subscription_key, meter_key, instance_key, usage_start, qty_units, qty_frac \
                 FROM usage_record WHERE id >= ",
            );
            select
                .bind(first << ORDINAL_BITS)
                .push(" AND id < ")
                .bind((last + 1) << ORDINAL_BITS);
            for row in txn.query_all_raw(select.build()).await? {
                let id: i64 = row.try_get_by_index(0)?;
                let reported_micros = reported_of[&(id >> ORDINAL_BITS)];
                let reported_seconds = reported_micros.div_euclid(1_000_000);
                let subscription: i32 = row.try_get_by_index(1)?;
                let meter: i32 = row.try_get_by_index(2)?;
                let instance: i64 = row.try_get_by_index(3)?;
                let usage_seconds = row.try_get_by_index::<i64>(4)?.div_euclid(1_000_000_000);
                let units: i64 = row.try_get_by_index(5)?;
                let fraction: i64 = row.try_get_by_index(6)?;
                let quantity = Quantity::from_parts(units as u128, fraction as u128);
                let usage_hour = Granularity::Hourly.bucket_of(usage_seconds);
                let reported_hour = Granularity::Hourly.bucket_of(reported_seconds);
                let usage_day = Granularity::Daily.bucket_of(usage_seconds);
                let reported_day = Granularity::Daily.bucket_of(reported_seconds);
                *hourly
                    .entry((usage_hour, subscription, meter, instance, reported_hour))
                    .or_default() += quantity;
                *daily
                    .entry((usage_day, subscription, meter, instance, reported_day))
                    .or_default() += quantity;
                lateness_hourly = lateness_hourly.max(reported_hour - usage_hour);
                lateness_daily = lateness_daily.max(reported_day - usage_day);
                records += 1;
            }
        }
        upsert(&txn, backend, "usage_hourly", &hourly).await?;
        upsert(&txn, backend, "usage_daily", &daily).await?;

        for chunk in batches.chunks(1_000) {
            let mut mark = Sql::new(backend, "UPDATE usage_batch SET folded = TRUE WHERE id IN ");
            mark.bind_tuple(chunk.iter().map(|(id, _)| Value::BigInt(Some(*id))));
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
        debug_assert!(lateness_hourly % HOUR_SECONDS == 0 && lateness_daily % DAY_SECONDS == 0);
        Ok(FoldOutcome {
            batches: batches.len(),
            records,
            ran: true,
            complete_through: Some(micros_to_utc(complete)),
            more: more || oldest_unfolded.is_some_and(|oldest| oldest < horizon),
        })
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

/// Consecutive ids as inclusive ranges: `[1, 2, 3, 7]` gives `(1, 3), (7, 7)`.
fn runs(ids: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in ids {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// Adds `cells` to `table`, carrying fractions into units, exactly, in SQL both backends share.
async fn upsert(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    table: &str,
    cells: &HashMap<Cell, Quantity>,
) -> Result<(), StoreError> {
    let mut cells: Vec<(&Cell, &Quantity)> = cells.iter().collect();
    // Key order: fewer page splits, and one lock order across folders.
    cells.sort_unstable_by_key(|(cell, _)| **cell);
    for chunk in cells.chunks(UPSERT_ROWS_PER_STATEMENT) {
        let mut insert = Sql::new(
            backend,
            &format!(
                "INSERT INTO {table} (usage_bucket, subscription_key, meter_key, instance_key, \
                 reported_bucket, qty_units, qty_frac) VALUES "
            ),
        );
        for (i, (cell, quantity)) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            let units = i64::try_from(quantity.units())
                .map_err(|_| StoreError::Corrupt("an aggregate exceeds 9.2e18 units".into()))?;
            insert.bind_tuple([
                Value::BigInt(Some(cell.0)),
                Value::Int(Some(cell.1)),
                Value::Int(Some(cell.2)),
                Value::BigInt(Some(cell.3)),
                Value::BigInt(Some(cell.4)),
                Value::BigInt(Some(units)),
                Value::BigInt(Some(quantity.fraction() as i64)),
            ]);
        }
        insert.push(&format!(
            " ON CONFLICT (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket) \
             DO UPDATE SET \
             qty_units = {table}.qty_units + excluded.qty_units + ({table}.qty_frac + excluded.qty_frac) / {FRACTION_SCALE}, \
             qty_frac = ({table}.qty_frac + excluded.qty_frac) % {FRACTION_SCALE}"
        ));
        txn.execute_raw(insert.build()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_of_consecutive_ids() {
        assert_eq!(
            runs([1, 2, 3, 7, 9, 10].into_iter()),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        assert!(runs(std::iter::empty()).is_empty());
    }
}
