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
mod fold;
mod ingest;
mod query;

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::ConnectionTrait;
use tally_core::Meter;
use tally_migrations::UsageMigrator;
use uuid::Uuid;

use crate::db::Database;
use crate::error::StoreError;
use crate::sql::Sql;
use dictionary::Dictionary;

pub use fold::FoldOutcome;
pub use ingest::IngestOutcome;
pub use query::{AggregateRow, Page, PageRequest, Progress, RowKey};

/// Advisory lock: ingests hold it shared, the horizon publisher exclusively (PostgreSQL only).
const INGEST_LOCK: i64 = 0x7a11_7900_0000_0002;
/// Advisory lock held by the one folder at work across all instances (PostgreSQL only).
const FOLD_LOCK: i64 = 0x7a11_7900_0000_0003;

/// The pipeline's counters, as GetPipelineStatus reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineCounts {
    pub complete_through: DateTime<Utc>,
    pub records_stored: u64,
    pub records_pending_fold: u64,
}

pub struct UsageStore {
    db: Database,
    dictionary: RwLock<Dictionary>,
    /// SQLite group commit: batches waiting for the writer, and the writer's turn.
    queue: std::sync::Mutex<Vec<ingest::Job>>,
    group_lock: tokio::sync::Mutex<()>,
    /// PostgreSQL planner statistics: records folded since the last ANALYZE, and then in all.
    folded_since_analyze: AtomicU64,
    folded_at_analyze: AtomicU64,
    /// SQLite: group commits so far, and as of the previous idle check; whether anything was
    /// written since the last checkpoint.
    group_commits: AtomicU64,
    group_commits_seen: AtomicU64,
    unchecked_writes: AtomicBool,
}

impl std::fmt::Debug for UsageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageStore").field("db", &self.db).finish()
    }
}

pub(crate) fn micros_to_utc(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

pub(crate) fn utc_to_micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

impl UsageStore {
    /// Opens the usage database at `url`, applies migrations and loads the meter catalog.
    pub async fn open(url: &str) -> Result<UsageStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<UsageMigrator>().await?;
        let store = UsageStore {
            db,
            dictionary: RwLock::new(Dictionary::default()),
            queue: std::sync::Mutex::new(Vec::new()),
            group_lock: tokio::sync::Mutex::new(()),
            folded_since_analyze: AtomicU64::new(0),
            folded_at_analyze: AtomicU64::new(0),
            group_commits: AtomicU64::new(0),
            group_commits_seen: AtomicU64::new(0),
            unchecked_writes: AtomicBool::new(false),
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
        let backend = self.db.db_backend();
        let mut set = Sql::new(backend, "UPDATE usage_pipeline SET token_secret = ");
        set.bind(secret)
            .push(" WHERE id = 1 AND token_secret IS NULL");
        self.db.writer().execute_raw(set.build()).await?;
        let row = self
            .db
            .writer()
            .query_one_raw(
                Sql::new(
                    backend,
                    "SELECT token_secret FROM usage_pipeline WHERE id = 1",
                )
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
                Sql::new(
                    self.db.db_backend(),
                    "SELECT complete_through, records_folded, \
                     (SELECT CAST(COALESCE(SUM(record_count), 0) AS BIGINT) FROM usage_batch WHERE folded = FALSE) \
                     FROM usage_pipeline WHERE id = 1",
                )
                .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        let folded: i64 = row.try_get_by_index(1)?;
        let pending: i64 = row.try_get_by_index(2)?;
        Ok(PipelineCounts {
            complete_through: micros_to_utc(row.try_get_by_index(0)?),
            records_stored: (folded + pending) as u64,
            records_pending_fold: pending as u64,
        })
    }

    /// A meter of the catalog (built-in or custom).
    pub fn meter(&self, id: &Uuid) -> Option<Meter> {
        self.read_dictionary().meter(id).map(|(_, m)| m.clone())
    }

    /// Every meter, ordered by provider, then name.
    pub fn meters(&self) -> Vec<Meter> {
        let mut meters = self.read_dictionary().all_meters();
        meters.sort_by(|a, b| {
            (&a.resource_provider, &a.name, a.id).cmp(&(&b.resource_provider, &b.name, b.id))
        });
        meters
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
        let mut insert = Sql::new(
            self.db.db_backend(),
            "INSERT INTO usage_meter (meter_id, name, unit, resource_provider, chargeable, deprecated, built_in) VALUES ",
        );
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
        let mut insert = Sql::new(
            self.db.db_backend(),
            "INSERT INTO usage_meter (meter_id, name, unit, resource_provider, chargeable, deprecated, built_in) VALUES ",
        );
        for (i, meter) in tally_core::meter::built_in_meters().iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert.bind_tuple(meter_values(meter, true));
        }
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
                Sql::new(
                    self.db.db_backend(),
                    "SELECT key, meter_id, name, unit, resource_provider, chargeable, deprecated FROM usage_meter",
                )
                .build(),
            )
            .await?;
        let mut meters = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get_by_index(1)?;
            let id = Uuid::parse_str(&id)
                .map_err(|_| StoreError::Corrupt(format!("meter id {id:?} is not a GUID")))?;
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

    fn read_dictionary(&self) -> std::sync::RwLockReadGuard<'_, Dictionary> {
        self.dictionary.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_dictionary(&self) -> std::sync::RwLockWriteGuard<'_, Dictionary> {
        self.dictionary.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn meter_values(meter: &Meter, built_in: bool) -> [sea_orm::Value; 7] {
    [
        meter.id.hyphenated().to_string().into(),
        meter.name.clone().into(),
        meter.unit.clone().into(),
        meter.resource_provider.clone().into(),
        meter.chargeable.into(),
        meter.deprecated.into(),
        built_in.into(),
    ]
}
