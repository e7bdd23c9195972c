//! The usage service's tables: raw records and their batches, the dictionaries that keep records
//! narrow (meters, subscriptions, instances), the hourly and daily aggregates and the pipeline
//! state.
//!
//! The three transactions that touch them, and the invariants they keep:
//! - ingest ([`UsageStore::ingest`]): one batch, all or nothing. Its reported time is at least the
//!   published horizon, so it can never land behind `complete_through`.
//! - fold ([`UsageStore::fold`]): folds whole unfolded batches into the aggregates and marks them
//!   folded in the same transaction, so each record is folded exactly once, whatever order
//!   batches committed in.
//! - publish horizon: waits for in-flight ingests (advisory lock on PostgreSQL, the single writer
//!   on SQLite), then records the time before which no ingest can still commit.

mod dictionary;
mod encoding;
mod engine;
mod fold;
mod ingest;
mod query;

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use tally_core::Meter;
use tally_migrations::UsageMigrator;
use uuid::Uuid;

use crate::db::Database;
use crate::error::StoreError;
use crate::guid;
use crate::sql::Sql;
use dictionary::Dictionary;
use engine::Engine;

pub use encoding::{
    DictionaryKeys, MICROS_PER_SECOND, NANOS_PER_SECOND, RECORD_COLUMNS, RecordId, StoredQuantity,
    StoredRecord, UnixMicros, UnixNanos, UnixSeconds, UnixTime,
};
pub use engine::{
    MAX_GROUP_RECORDS as SQLITE_MAX_GROUP_RECORDS, RECORDS_PER_INSERT as SQLITE_RECORDS_PER_INSERT,
};
pub use fold::FoldOutcome;
pub use ingest::IngestOutcome;
pub use query::{AggregateRow, Page, PageRequest, Progress, RowKey};

/// The pipeline's counters, as GetPipelineStatus reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineCounts {
    pub complete_through: DateTime<Utc>,
    pub records_stored: u64,
    pub records_pending_fold: u64,
}

pub struct UsageStore {
    db: Database,
    /// What this database's engine does its own way, with that engine's state.
    engine: Engine,
    dictionary: RwLock<Dictionary>,
}

impl std::fmt::Debug for UsageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageStore").field("db", &self.db).finish()
    }
}

impl UsageStore {
    /// Opens the usage database at `url`, applies migrations and loads the meter catalog.
    pub async fn open(url: &str) -> Result<UsageStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<UsageMigrator>().await?;
        let store = UsageStore {
            engine: Engine::new(db.backend()),
            db,
            dictionary: RwLock::new(Dictionary::default()),
        };
        store.seed_built_in_meters().await?;
        store.reload_meters().await?;
        Ok(store)
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The secret that signs continuation tokens, created once per database so every instance
    /// sharing it accepts the others' tokens.
    pub async fn token_secret(&self) -> Result<Vec<u8>, StoreError> {
        let mut secret = Vec::with_capacity(32);
        secret.extend_from_slice(Uuid::new_v4().as_bytes());
        secret.extend_from_slice(Uuid::new_v4().as_bytes());
        let mut set = self.sql("UPDATE usage_pipeline SET token_secret = ");
        set.bind(secret)
            .push(" WHERE id = 1 AND token_secret IS NULL");
        self.db.writer().execute_raw(set.build()).await?;
        let row = self
            .db
            .writer()
            .query_one_raw(
                self.sql("SELECT token_secret FROM usage_pipeline WHERE id = 1")
                    .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        Ok(row.try_get_by_index::<Vec<u8>>(0)?)
    }

    /// Pipeline counters for GetPipelineStatus, read in one statement so that they come from one
    /// snapshot (a fold commits between two separate reads).
    pub async fn pipeline_counts(&self) -> Result<PipelineCounts, StoreError> {
        let row = self
            .db
            .reader()
            .query_one_raw(
                self.sql(
                    "SELECT complete_through, records_folded, \
                     (SELECT CAST(COALESCE(SUM(record_count), 0) AS BIGINT) FROM usage_batch WHERE folded = FALSE) \
                     FROM usage_pipeline WHERE id = 1",
                )
                .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        let complete_through = UnixMicros::from_stored(row.try_get_by_index(0)?);
        let count = |index: usize| -> Result<u64, StoreError> {
            let count: i64 = row.try_get_by_index(index)?;
            u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("record count {count}")))
        };
        let folded = count(1)?;
        let pending = count(2)?;
        Ok(PipelineCounts {
            complete_through: complete_through.to_utc(),
            records_stored: folded + pending,
            records_pending_fold: pending,
        })
    }

    /// A meter of the catalog (built-in or custom).
    pub fn meter(&self, id: &Uuid) -> Option<Meter> {
        self.read_dictionary().meter(id).map(|(_, m)| m.clone())
    }

    /// Every meter, ordered by provider, then name, then id, so listings are stable.
    pub fn meters(&self) -> Vec<Meter> {
        self.read_dictionary().all_meters()
    }

    /// Whether `id` is a known meter; reloads the catalog once on a miss, since another instance
    /// may have created it.
    pub async fn is_known_meter(&self, id: &Uuid) -> Result<bool, StoreError> {
        if self.read_dictionary().meter(id).is_some() {
            return Ok(true);
        }
        self.reload_meters().await?;
        Ok(self.read_dictionary().meter(id).is_some())
    }

    /// Creates a custom meter; `Ok(None)` if its id is already taken.
    pub async fn create_meter(&self, meter: &Meter) -> Result<Option<Meter>, StoreError> {
        let mut insert = self.sql(INSERT_METERS);
        insert
            .bind_tuple(meter_values(meter, false))
            .push(" ON CONFLICT (meter_id) DO NOTHING");
        let inserted = self
            .db
            .writer()
            .execute_raw(insert.build())
            .await?
            .rows_affected();
        self.reload_meters().await?;
        Ok((inserted == 1).then(|| meter.clone()))
    }

    async fn seed_built_in_meters(&self) -> Result<(), StoreError> {
        let mut insert = self.sql(INSERT_METERS);
        insert.bind_tuples(
            tally_core::meter::built_in_meters()
                .iter()
                .map(|meter| meter_values(meter, true)),
        );
        // A new release may correct a built-in meter; custom meters are never overwritten.
        insert.push(
            " ON CONFLICT (meter_id) DO UPDATE SET name = excluded.name, unit = excluded.unit, \
             resource_provider = excluded.resource_provider, chargeable = excluded.chargeable, \
             deprecated = excluded.deprecated WHERE usage_meter.built_in = TRUE",
        );
        self.db.writer().execute_raw(insert.build()).await?;
        Ok(())
    }

    async fn reload_meters(&self) -> Result<(), StoreError> {
        let rows = self
            .db
            .reader()
            .query_all_raw(
                self.sql(
                    "SELECT key, meter_id, name, unit, resource_provider, chargeable, deprecated FROM usage_meter",
                )
                .build(),
            )
            .await?;
        let mut meters = Vec::with_capacity(rows.len());
        for row in rows {
            let id = guid::from_text(&row.try_get_by_index::<String>(1)?)?;
            meters.push((
                row.try_get_by_index::<i32>(0)?,
                Meter {
                    id,
                    name: row.try_get_by_index(2)?,
                    unit: row.try_get_by_index(3)?,
                    resource_provider: row.try_get_by_index(4)?,
                    chargeable: row.try_get_by_index(5)?,
                    deprecated: row.try_get_by_index(6)?,
                },
            ));
        }
        self.write_dictionary().set_meters(meters);
        Ok(())
    }

    /// A statement in this database's dialect.
    fn sql(&self, text: &str) -> Sql {
        self.engine.sql(text)
    }

    fn read_dictionary(&self) -> std::sync::RwLockReadGuard<'_, Dictionary> {
        self.dictionary.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_dictionary(&self) -> std::sync::RwLockWriteGuard<'_, Dictionary> {
        self.dictionary.write().unwrap_or_else(|e| e.into_inner())
    }
}

const INSERT_METERS: &str = "INSERT INTO usage_meter \
     (meter_id, name, unit, resource_provider, chargeable, deprecated, built_in) VALUES ";

/// A meter's row in `usage_meter`.
fn meter_values(meter: &Meter, built_in: bool) -> [sea_orm::Value; 7] {
    [
        guid::to_text(&meter.id).into(),
        meter.name.clone().into(),
        meter.unit.clone().into(),
        meter.resource_provider.clone().into(),
        meter.chargeable.into(),
        meter.deprecated.into(),
        built_in.into(),
    ]
}
