//! Ingestion: one batch in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, TransactionTrait, Value};
use tally_core::UsageRecord;
use tally_core::record::unix_nanos;
use uuid::Uuid;

use super::{INGEST_LOCK, UsageStore, micros_to_utc, utc_to_micros};
use crate::db::Backend;
use crate::error::StoreError;
use crate::sql::Sql;

/// Rows per multi-row INSERT: 10 columns x 500 stays under SQLite's and PostgreSQL's
/// parameter limits and keeps statements cacheable.
const RECORD_ROWS_PER_STATEMENT: usize = 500;
const DICTIONARY_ROWS_PER_STATEMENT: usize = 200;
/// Records of a batch occupy ids `batch_id << 14 | ordinal`; 2^14 > 10,000 records.
pub(crate) const ORDINAL_BITS: u32 = 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records newly stored.
    pub accepted: u32,
    /// Records whose event id was already stored with identical content.
    pub duplicates: u32,
    /// The reported time of the accepted records.
    pub reported_at: DateTime<Utc>,
}

struct RecordRow<'a> {
    index: usize,
    event_key: [u8; 16],
    content_hash: i64,
    record: &'a UsageRecord,
    instance: [u8; 16],
}

impl UsageStore {
    /// Stores `records` (already validated and free of in-batch repeats) atomically. Records whose
    /// event id is stored with identical content count as duplicates; one stored with different
    /// content fails the whole batch with [`StoreError::EventIdConflict`] and stores nothing.
    pub async fn ingest(
        &self,
        records: &[UsageRecord],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let mut rows: Vec<RecordRow<'_>> = records
            .iter()
            .enumerate()
            .map(|(index, record)| RecordRow {
                index,
                event_key: record.event_key(),
                content_hash: record.content_hash(),
                record,
                instance: record.instance.fingerprint(),
            })
            .collect();
        // One lock order for every transaction: no deadlocks between concurrent batches.
        rows.sort_unstable_by_key(|r| r.event_key);

        let meter_keys: HashMap<Uuid, i32> = {
            let dictionary = self.read_dictionary();
            let mut keys = HashMap::new();
            for row in &rows {
                let id = row.record.meter_id;
                let (key, _) = dictionary.meter(&id).ok_or_else(|| {
                    StoreError::Corrupt(format!("meter {id} is not in the catalog"))
                })?;
                keys.insert(id, *key);
            }
            keys
        };

        let backend = self.db.db_backend();
        let txn = self.db.writer().begin().await?;
        if self.db.backend() == Backend::Postgres {
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock_shared({INGEST_LOCK})"
            ))
            .await?;
        }
        let horizon: i64 = txn
            .query_one_raw(
                Sql::new(backend, "SELECT horizon FROM usage_pipeline WHERE id = 1").build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?
            .try_get_by_index(0)?;
        // Never behind the horizon: a window already declared complete stays complete.
        let reported_at = utc_to_micros(now).max(horizon);

        let subscriptions = self.intern_subscriptions(&txn, &rows).await?;
        let instances = self.intern_instances(&txn, &rows).await?;

        let batch_id: i64 = {
            let mut insert = Sql::new(
                backend,
                "INSERT INTO usage_batch (reported_at, record_count, folded) VALUES (",
            );
            insert
                .bind(reported_at)
                .push(", ")
                .bind(rows.len() as i32)
                .push(", FALSE) RETURNING id");
            txn.query_one_raw(insert.build())
                .await?
                .ok_or_else(|| StoreError::Corrupt("batch insert returned no id".into()))?
                .try_get_by_index(0)?
        };

        let mut inserted: HashSet<i64> = HashSet::with_capacity(rows.len());
        for (chunk_no, chunk) in rows.chunks(RECORD_ROWS_PER_STATEMENT).enumerate() {
            let mut insert = Sql::new(
                backend,
                "INSERT INTO usage_record (id, event_key, content_hash, subscription_key, meter_key, \
                 instance_key, usage_start, usage_end, qty_units, qty_frac) VALUES ",
            );
            for (i, row) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                let ordinal = (chunk_no * RECORD_ROWS_PER_STATEMENT + i) as i64;
                let quantity = row.record.quantity;
                insert.bind_tuple([
                    Value::BigInt(Some(batch_id << ORDINAL_BITS | ordinal)),
                    Value::Bytes(Some(row.event_key.to_vec())),
                    Value::BigInt(Some(row.content_hash)),
                    Value::Int(Some(subscriptions[&row.record.subscription_id])),
                    Value::Int(Some(meter_keys[&row.record.meter_id])),
                    Value::BigInt(Some(instances[&row.instance])),
                    Value::BigInt(Some(unix_nanos(row.record.usage_start))),
                    Value::BigInt(Some(unix_nanos(row.record.usage_end))),
                    Value::BigInt(Some(quantity.units() as i64)),
                    Value::BigInt(Some(quantity.fraction() as i64)),
                ]);
            }
            insert.push(" ON CONFLICT (event_key) DO NOTHING RETURNING id");
            for row in txn.query_all_raw(insert.build()).await? {
                inserted.insert(row.try_get_by_index::<i64>(0)?);
            }
        }

        let skipped: Vec<&RecordRow<'_>> = rows
            .iter()
            .enumerate()
            .filter(|(ordinal, _)| {
                !inserted.contains(&(batch_id << ORDINAL_BITS | *ordinal as i64))
            })
            .map(|(_, row)| row)
            .collect();
        if !skipped.is_empty() {
            check_duplicates(&txn, backend, &skipped).await?;
        }
        let accepted = inserted.len() as u32;
        let duplicates = skipped.len() as u32;
        let outcome = IngestOutcome {
            accepted,
            duplicates,
            reported_at: micros_to_utc(reported_at),
        };
        if accepted == 0 {
            // Nothing new: leave no empty batch (and no new dictionary entry) behind.
            txn.rollback().await?;
            return Ok(outcome);
        }
        if duplicates > 0 {
            let mut update = Sql::new(backend, "UPDATE usage_batch SET record_count = ");
            update
                .bind(accepted as i32)
                .push(" WHERE id = ")
                .bind(batch_id);
            txn.execute_raw(update.build()).await?;
        }
        txn.commit().await?;
        // Only committed keys are learned.
        let mut dictionary = self.write_dictionary();
        for (id, key) in subscriptions {
            dictionary.learn_subscription(id, key);
        }
        for (fingerprint, key) in instances {
            dictionary.learn_instance(fingerprint, key);
        }
        Ok(outcome)
    }

    /// Keys for every subscription of the batch, inserting the new ones.
    async fn intern_subscriptions(
        &self,
        txn: &DatabaseTransaction,
        rows: &[RecordRow<'_>],
    ) -> Result<HashMap<Uuid, i32>, StoreError> {
        let mut keys = HashMap::new();
        let mut missing = Vec::new();
        {
            let dictionary = self.read_dictionary();
            for row in rows {
                let id = row.record.subscription_id;
                if keys.contains_key(&id) {
                    continue;
                }
                match dictionary.subscription_key(&id) {
                    Some(key) => {
                        keys.insert(id, key);
                    }
                    None => {
                        keys.insert(id, -1);
                        missing.push(id);
                    }
                }
            }
        }
        missing.sort_unstable();
        let backend = txn.get_database_backend();
        for chunk in missing.chunks(DICTIONARY_ROWS_PER_STATEMENT) {
            let mut insert = Sql::new(
                backend,
                "INSERT INTO usage_subscription (subscription_id) VALUES ",
            );
            let mut select = Sql::new(
                backend,
                "SELECT key, subscription_id FROM usage_subscription WHERE subscription_id IN ",
            );
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert.bind_tuple([Value::from(id.hyphenated().to_string())]);
            }
            select.bind_tuple(
                chunk
                    .iter()
                    .map(|id| Value::from(id.hyphenated().to_string())),
            );
            insert.push(" ON CONFLICT (subscription_id) DO NOTHING");
            txn.execute_raw(insert.build()).await?;
            for row in txn.query_all_raw(select.build()).await? {
                let id: String = row.try_get_by_index(1)?;
                let id = Uuid::parse_str(&id)
                    .map_err(|_| StoreError::Corrupt(format!("subscription id {id:?}")))?;
                keys.insert(id, row.try_get_by_index(0)?);
            }
        }
        if keys.values().any(|k| *k < 0) {
            return Err(StoreError::Corrupt(
                "a subscription was not interned".into(),
            ));
        }
        Ok(keys)
    }

    /// Keys for every instance of the batch, inserting the new ones.
    async fn intern_instances(
        &self,
        txn: &DatabaseTransaction,
        rows: &[RecordRow<'_>],
    ) -> Result<HashMap<[u8; 16], i64>, StoreError> {
        let mut keys = HashMap::new();
        let mut missing: BTreeMap<[u8; 16], &RecordRow<'_>> = BTreeMap::new();
        {
            let dictionary = self.read_dictionary();
            for row in rows {
                if keys.contains_key(&row.instance) || missing.contains_key(&row.instance) {
                    continue;
                }
                match dictionary.instance_key(&row.instance) {
                    Some(key) => {
                        keys.insert(row.instance, key);
                    }
                    None => {
                        missing.insert(row.instance, row);
                    }
                }
            }
        }
        let backend = txn.get_database_backend();
        let missing: Vec<_> = missing.into_iter().collect();
        for chunk in missing.chunks(DICTIONARY_ROWS_PER_STATEMENT) {
            let mut insert = Sql::new(
                backend,
                "INSERT INTO usage_instance (fingerprint, resource_uri, location, tags, additional_info) VALUES ",
            );
            let mut select = Sql::new(
                backend,
                "SELECT key, fingerprint FROM usage_instance WHERE fingerprint IN ",
            );
            for (i, (fingerprint, row)) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                let instance = &row.record.instance;
                insert.bind_tuple([
                    Value::Bytes(Some(fingerprint.to_vec())),
                    Value::from(instance.resource_uri.clone()),
                    Value::from(instance.location.clone()),
                    Value::from(to_json(&instance.tags)),
                    Value::from(to_json(&instance.additional_info)),
                ]);
            }
            select.bind_tuple(chunk.iter().map(|(f, _)| Value::Bytes(Some(f.to_vec()))));
            insert.push(" ON CONFLICT (fingerprint) DO NOTHING");
            txn.execute_raw(insert.build()).await?;
            for row in txn.query_all_raw(select.build()).await? {
                let fingerprint: Vec<u8> = row.try_get_by_index(1)?;
                let fingerprint: [u8; 16] = fingerprint.try_into().map_err(|_| {
                    StoreError::Corrupt("instance fingerprint is not 16 bytes".into())
                })?;
                keys.insert(fingerprint, row.try_get_by_index(0)?);
            }
        }
        Ok(keys)
    }
}

/// The records the insert skipped have a stored event id: the same content is a duplicate,
/// anything else a conflict that fails the batch.
async fn check_duplicates(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    skipped: &[&RecordRow<'_>],
) -> Result<(), StoreError> {
    let mut stored: HashMap<[u8; 16], i64> = HashMap::with_capacity(skipped.len());
    for chunk in skipped.chunks(RECORD_ROWS_PER_STATEMENT) {
        let mut select = Sql::new(
            backend,
            "SELECT event_key, content_hash FROM usage_record WHERE event_key IN ",
        );
        select.bind_tuple(
            chunk
                .iter()
                .map(|r| Value::Bytes(Some(r.event_key.to_vec()))),
        );
        for row in txn.query_all_raw(select.build()).await? {
            let key: Vec<u8> = row.try_get_by_index(0)?;
            let key: [u8; 16] = key
                .try_into()
                .map_err(|_| StoreError::Corrupt("event key is not 16 bytes".into()))?;
            stored.insert(key, row.try_get_by_index(1)?);
        }
    }
    let first_conflict = skipped
        .iter()
        .filter(|row| stored.get(&row.event_key) != Some(&row.content_hash))
        .min_by_key(|row| row.index);
    match first_conflict {
        Some(row) => Err(StoreError::EventIdConflict {
            index: row.index,
            event_id: row.record.event_id.clone(),
        }),
        None => Ok(()),
    }
}

fn to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}
