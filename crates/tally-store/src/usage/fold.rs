//! Folding: stored records into hourly and daily aggregates, each exactly once.
//!
//! The database does the grouping and adding (`INSERT .. SELECT .. GROUP BY .. ON CONFLICT DO
//! UPDATE`), so none of the records travels to the service; both engines run the same SQL.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait, Value};
use tally_core::Granularity;

use super::UsageStore;
use super::encoding::{RecordId, UnixMicros, UnixNanos, carry_sql};
use crate::db::Backend;
use crate::error::StoreError;
use crate::sql::Sql;

/// Batches examined per fold transaction, at most.
const MAX_BATCHES_PER_FOLD: i64 = 2_000;
/// Batch ids per fold statement.
const BATCHES_PER_STATEMENT: usize = 500;

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

/// How late records have arrived so far, per granularity: the largest distance, in seconds,
/// between a record's usage bucket and its reported bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lateness {
    hourly_seconds: i64,
    daily_seconds: i64,
}

impl Lateness {
    /// Widened to cover a batch reported at `reported` whose earliest usage is `earliest`.
    fn with_batch(self, reported: UnixMicros, earliest: UnixNanos) -> Lateness {
        let late = |granularity: Granularity| {
            granularity.bucket_of(reported.whole_seconds())
                - granularity.bucket_of(earliest.whole_seconds())
        };
        Lateness {
            hourly_seconds: self.hourly_seconds.max(late(Granularity::Hourly)),
            daily_seconds: self.daily_seconds.max(late(Granularity::Daily)),
        }
    }
}

/// The pipeline row as a fold finds it.
struct PipelineState {
    horizon: UnixMicros,
    complete_through: UnixMicros,
    lateness: Lateness,
}

/// The unfolded batches one fold takes.
struct Selection {
    batches: Vec<i64>,
    records: u64,
    lateness: Lateness,
    /// Whether unfolded batches were left for the next fold.
    more: bool,
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
        let txn = self.db.writer().begin().await?;
        if !self.engine.try_lock_fold(&txn).await? {
            return Ok(FoldOutcome {
                batches: 0,
                records: 0,
                ran: false,
                complete_through: None,
                more: true,
            });
        }
        let state = self.pipeline_state(&txn).await?;
        let selection = self
            .select_batches(&txn, max_records, state.lateness)
            .await?;
        self.fold_batches(&txn, &selection.batches).await?;
        let oldest_unfolded = self.oldest_unfolded(&txn).await?;
        let complete = complete_through(&state, oldest_unfolded);
        self.advance_pipeline(&txn, complete, &selection).await?;
        txn.commit().await?;
        self.engine.folded(selection.records);
        Ok(FoldOutcome {
            batches: selection.batches.len(),
            records: selection.records,
            ran: true,
            complete_through: Some(complete.to_utc()),
            more: selection.more || oldest_unfolded.is_some_and(|oldest| oldest < state.horizon),
        })
    }

    /// Housekeeping, called whenever the fold has caught up (see [`Engine::maintain`]).
    ///
    /// [`Engine::maintain`]: super::engine::Engine::maintain
    pub async fn maintain(&self) -> Result<(), StoreError> {
        self.engine.maintain(&self.db).await
    }

    /// Records `now` as the horizon once no ingest is in flight, so every later ingest gets a
    /// reported time at or after it.
    async fn publish_horizon(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let txn = self.db.writer().begin().await?;
        self.engine.lock_ingest_out(&txn).await?;
        let now = UnixMicros::of(now).stored();
        let mut update = self.sql("UPDATE usage_pipeline SET horizon = ");
        update
            .bind(now)
            .push(" WHERE id = 1 AND horizon < ")
            .bind(now);
        txn.execute_raw(update.build()).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn pipeline_state(&self, txn: &DatabaseTransaction) -> Result<PipelineState, StoreError> {
        let row = txn
            .query_one_raw(
                self.sql(
                    "SELECT horizon, complete_through, max_lateness_hourly, max_lateness_daily \
                     FROM usage_pipeline WHERE id = 1",
                )
                .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        Ok(PipelineState {
            horizon: UnixMicros::from_stored(row.try_get_by_index(0)?),
            complete_through: UnixMicros::from_stored(row.try_get_by_index(1)?),
            lateness: Lateness {
                hourly_seconds: row.try_get_by_index(2)?,
                daily_seconds: row.try_get_by_index(3)?,
            },
        })
    }

    /// Unfolded batches in id order, whole, up to about `max_records` records (at least one
    /// batch), and how late their records arrived.
    async fn select_batches(
        &self,
        txn: &DatabaseTransaction,
        max_records: u64,
        mut lateness: Lateness,
    ) -> Result<Selection, StoreError> {
        let mut select = self.sql(
            "SELECT id, reported_at, record_count, min_usage_start FROM usage_batch \
             WHERE folded = FALSE ORDER BY id LIMIT ",
        );
        select.bind(MAX_BATCHES_PER_FOLD);
        let mut batches: Vec<i64> = Vec::new();
        let mut records: u64 = 0;
        let mut more = false;
        for row in txn.query_all_raw(select.build()).await? {
            let count = u64::try_from(row.try_get_by_index::<i32>(2)?)
                .map_err(|_| StoreError::Corrupt("negative record count".into()))?;
            if !batches.is_empty() && records + count > max_records {
                more = true;
                break;
            }
            let id: i64 = row.try_get_by_index(0)?;
            let reported = UnixMicros::from_stored(row.try_get_by_index(1)?);
            // A batch's latest record is its earliest usage: it sets how late records arrive.
            let earliest = match row.try_get_by_index::<Option<i64>>(3)? {
                Some(nanos) => UnixNanos::from_stored(nanos),
                None => self.earliest_usage(txn, id).await?,
            };
            lateness = lateness.with_batch(reported, earliest);
            batches.push(id);
            records += count;
        }
        Ok(Selection {
            batches,
            records,
            lateness,
            more,
        })
    }

    /// Adds the records of `batches` to both aggregates and marks the batches folded.
    async fn fold_batches(
        &self,
        txn: &DatabaseTransaction,
        batches: &[i64],
    ) -> Result<(), StoreError> {
        let backend = self.engine.backend();
        for ids in batches.chunks(BATCHES_PER_STATEMENT) {
            for granularity in [Granularity::Hourly, Granularity::Daily] {
                txn.execute_raw(fold_statement(backend, granularity, ids))
                    .await?;
            }
            let mut mark = self.sql("UPDATE usage_batch SET folded = TRUE WHERE id IN ");
            mark.bind_tuple(ids.iter().map(|id| Value::BigInt(Some(*id))));
            txn.execute_raw(mark.build()).await?;
        }
        Ok(())
    }

    async fn oldest_unfolded(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<Option<UnixMicros>, StoreError> {
        Ok(txn
            .query_one_raw(
                self.sql("SELECT MIN(reported_at) FROM usage_batch WHERE folded = FALSE")
                    .build(),
            )
            .await?
            .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
            .map(UnixMicros::from_stored))
    }

    async fn advance_pipeline(
        &self,
        txn: &DatabaseTransaction,
        complete: UnixMicros,
        selection: &Selection,
    ) -> Result<(), StoreError> {
        let mut update = self.sql("UPDATE usage_pipeline SET complete_through = ");
        update
            .bind(complete.stored())
            .push(", records_folded = records_folded + ")
            .bind(selection.records as i64)
            .push(", max_lateness_hourly = ")
            .bind(selection.lateness.hourly_seconds)
            .push(", max_lateness_daily = ")
            .bind(selection.lateness.daily_seconds)
            .push(" WHERE id = 1");
        txn.execute_raw(update.build()).await?;
        Ok(())
    }

    /// The earliest usage time of a batch stored before batches kept it (see the migration).
    async fn earliest_usage(
        &self,
        txn: &DatabaseTransaction,
        batch: i64,
    ) -> Result<UnixNanos, StoreError> {
        let ids = RecordId::range_of_batch(batch);
        let mut select = self.sql("SELECT MIN(usage_start) FROM usage_record WHERE id >= ");
        select.bind(ids.start).push(" AND id < ").bind(ids.end);
        Ok(UnixNanos::from_stored(
            txn.query_one_raw(select.build())
                .await?
                .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
                .unwrap_or(0),
        ))
    }
}

/// How far the aggregates are final after a fold. Everything reported before the horizon has
/// committed (the horizon was published after in-flight ingests finished), so the only records
/// before it not yet folded are in the batches still marked unfolded. Never moves back.
fn complete_through(state: &PipelineState, oldest_unfolded: Option<UnixMicros>) -> UnixMicros {
    oldest_unfolded
        .map_or(state.horizon, |oldest| oldest.min(state.horizon))
        .max(state.complete_through)
}

/// Adds the records of batches `ids` to the `granularity` aggregate, grouped by its key (usage
/// bucket, subscription, meter, instance, reported bucket), carrying fractions into whole units
/// exactly.
fn fold_statement(backend: Backend, granularity: Granularity, ids: &[i64]) -> Statement {
    let table = match granularity {
        Granularity::Hourly => "usage_hourly",
        Granularity::Daily => "usage_daily",
    };
    let usage_bucket = UnixNanos::bucket_sql("r.usage_start", granularity);
    let reported_bucket = UnixMicros::bucket_sql("b.reported_at", granularity);
    let in_batch = RecordId::in_batch_sql("r.id", "b.id");
    let (sum_units, sum_fraction) = carry_sql(
        "CAST(SUM(r.qty_units) AS BIGINT)",
        "CAST(SUM(r.qty_frac) AS BIGINT)",
    );
    let (added_units, added_fraction) = carry_sql(
        &format!("{table}.qty_units + excluded.qty_units"),
        &format!("({table}.qty_frac + excluded.qty_frac)"),
    );
    let mut sql = Sql::new(
        backend,
        &format!(
            "INSERT INTO {table} (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket, \
             qty_units, qty_frac) \
             SELECT {usage_bucket}, r.subscription_key, r.meter_key, r.instance_key, {reported_bucket}, \
             {sum_units}, {sum_fraction} \
             FROM usage_batch b JOIN usage_record r ON {in_batch} \
             WHERE b.id IN "
        ),
    );
    sql.bind_tuple(ids.iter().map(|id| Value::BigInt(Some(*id))));
    sql.push(&format!(
        " GROUP BY {usage_bucket}, r.subscription_key, r.meter_key, r.instance_key, {reported_bucket} \
         ON CONFLICT (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket) DO UPDATE SET \
         qty_units = {added_units}, qty_frac = {added_fraction}"
    ));
    sql.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tests::values;
    use crate::usage::encoding::tests::utc;

    /// The statement as it was before it was built from the encodings, for the hourly table.
    const HOURLY_FOLD: &str = "INSERT INTO usage_hourly (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket, \
         qty_units, qty_frac) \
         SELECT (r.usage_start / 3600000000000) * 3600, r.subscription_key, r.meter_key, r.instance_key, (b.reported_at / 3600000000) * 3600, \
         CAST(SUM(r.qty_units) AS BIGINT) + CAST(SUM(r.qty_frac) AS BIGINT) / 10000000000, \
         CAST(SUM(r.qty_frac) AS BIGINT) % 10000000000 \
         FROM usage_batch b JOIN usage_record r ON r.id >= b.id * 16384 AND r.id < (b.id + 1) * 16384 \
         WHERE b.id IN (?, ?) \
         GROUP BY (r.usage_start / 3600000000000) * 3600, r.subscription_key, r.meter_key, r.instance_key, (b.reported_at / 3600000000) * 3600 \
         ON CONFLICT (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket) DO UPDATE SET \
         qty_units = usage_hourly.qty_units + excluded.qty_units + (usage_hourly.qty_frac + excluded.qty_frac) / 10000000000, \
         qty_frac = (usage_hourly.qty_frac + excluded.qty_frac) % 10000000000";

    #[test]
    fn the_fold_groups_by_the_aggregate_key_and_carries() {
        let hourly = fold_statement(Backend::Sqlite, Granularity::Hourly, &[4, 5]);
        assert_eq!(hourly.sql, HOURLY_FOLD);
        assert_eq!(values(&hourly), 2);
        let daily = fold_statement(Backend::Postgres, Granularity::Daily, &[4, 5, 6]);
        assert!(daily.sql.starts_with("INSERT INTO usage_daily "));
        assert!(
            daily
                .sql
                .contains("(r.usage_start / 86400000000000) * 86400")
        );
        assert!(daily.sql.contains("WHERE b.id IN ($1, $2, $3) GROUP BY"));
        assert!(
            daily
                .sql
                .contains("qty_frac = (usage_daily.qty_frac + excluded.qty_frac) % ")
        );
    }

    #[test]
    fn lateness_is_the_distance_between_buckets() {
        let none = Lateness {
            hourly_seconds: 0,
            daily_seconds: 0,
        };
        let reported = UnixMicros::of(utc("2026-11-27T01:10:00Z"));
        let lateness = none.with_batch(reported, UnixNanos::of(utc("2026-11-26T23:59:00Z")));
        assert_eq!(
            lateness,
            Lateness {
                hourly_seconds: 2 * 3_600,
                daily_seconds: 86_400
            }
        );
        // It only grows.
        let on_time = lateness.with_batch(reported, UnixNanos::of(utc("2026-11-27T01:00:00Z")));
        assert_eq!(on_time, lateness);
    }

    #[test]
    fn completeness_stops_at_the_oldest_unfolded_batch_and_never_moves_back() {
        let at = |hour: i64| UnixMicros::from_stored(hour * 3_600_000_000);
        let state = PipelineState {
            horizon: at(10),
            complete_through: at(5),
            lateness: Lateness {
                hourly_seconds: 0,
                daily_seconds: 0,
            },
        };
        assert_eq!(complete_through(&state, None), at(10));
        assert_eq!(complete_through(&state, Some(at(7))), at(7));
        assert_eq!(complete_through(&state, Some(at(12))), at(10));
        assert_eq!(complete_through(&state, Some(at(3))), at(5));
    }
}
