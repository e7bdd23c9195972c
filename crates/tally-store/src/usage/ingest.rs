//! Ingestion: one batch, all or nothing, inside the transaction or savepoint its engine gives it
//! (see [`super::engine::Engine::ingest`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Value};
use tally_core::UsageRecord;
use uuid::Uuid;

use super::UsageStore;
use super::encoding::{DictionaryKeys, RecordId, StoredRecord, UnixMicros, UnixNanos};
use crate::error::StoreError;
use crate::guid;

/// Dictionary rows per INSERT.
const DICTIONARY_ROWS_PER_STATEMENT: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records newly stored.
    pub accepted: u32,
    /// Records whose event id was already stored with identical content.
    pub duplicates: u32,
    /// The reported time of the accepted records.
    pub reported_at: DateTime<Utc>,
}

/// A record of the batch, with what storing it needs computed once.
struct RecordRow<'a> {
    /// Its position in the batch as posted.
    index: usize,
    event_key: [u8; 16],
    content_hash: i64,
    record: &'a UsageRecord,
    instance: [u8; 16],
}

/// Dictionary keys a batch used, learned once its transaction commits.
#[derive(Default)]
pub(crate) struct Learned {
    subscriptions: HashMap<Uuid, i32>,
    instances: HashMap<[u8; 16], i64>,
}

/// Dictionary keys of a batch's records.
struct RecordKeys {
    subscriptions: HashMap<Uuid, i32>,
    meters: HashMap<Uuid, i32>,
    instances: HashMap<[u8; 16], i64>,
}

impl RecordKeys {
    fn of(&self, row: &RecordRow<'_>) -> Result<DictionaryKeys, StoreError> {
        let missing = |what: &str| StoreError::Corrupt(format!("no {what} key for a record"));
        Ok(DictionaryKeys {
            subscription: *self
                .subscriptions
                .get(&row.record.subscription_id)
                .ok_or_else(|| missing("subscription"))?,
            meter: *self
                .meters
                .get(&row.record.meter_id)
                .ok_or_else(|| missing("meter"))?,
            instance: *self
                .instances
                .get(&row.instance)
                .ok_or_else(|| missing("instance"))?,
        })
    }
}

/// A record whose event id was stored already, with the stored content's hash.
struct Skipped<'r, 'a> {
    row: &'r RecordRow<'a>,
    stored_hash: i64,
}

impl UsageStore {
    /// Stores `records` (already validated and free of in-batch repeats) atomically. Records whose
    /// event id is stored with identical content count as duplicates; one stored with different
    /// content fails the whole batch with [`StoreError::EventIdConflict`] and stores nothing.
    ///
    /// On SQLite, batches arriving together share one transaction (group commit), each inside
    /// its own savepoint, so a failed batch leaves the others intact and every acknowledged batch
    /// is durable. On PostgreSQL each batch is a transaction; they run in parallel.
    pub async fn ingest(
        &self,
        records: Vec<UsageRecord>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        self.engine.ingest(self, records, now).await
    }

    /// Stores one batch in `txn` (a transaction or a savepoint) and ends it: committed if it
    /// stored anything; rolled back if every record was a duplicate (so no empty batch and no new
    /// dictionary entry stays behind) or on error. Returns the keys to learn once everything
    /// around `txn` has committed too.
    pub(super) async fn ingest_and_end(
        &self,
        txn: DatabaseTransaction,
        records: &[UsageRecord],
        now: DateTime<Utc>,
    ) -> Result<(IngestOutcome, Option<Learned>), StoreError> {
        match self.ingest_in(&txn, records, now).await {
            Ok((outcome, _)) if outcome.accepted == 0 => {
                txn.rollback().await?;
                Ok((outcome, None))
            }
            Ok((outcome, learned)) => {
                txn.commit().await?;
                Ok((outcome, Some(learned)))
            }
            Err(e) => {
                txn.rollback().await?;
                Err(e)
            }
        }
    }

    pub(super) fn learn(&self, learned: Learned) {
        let mut dictionary = self.write_dictionary();
        for (id, key) in learned.subscriptions {
            dictionary.learn_subscription(id, key);
        }
        for (fingerprint, key) in learned.instances {
            dictionary.learn_instance(fingerprint, key);
        }
    }

    /// One batch inside `txn`: the dictionary keys it needs, its `usage_batch` row and its
    /// records.
    async fn ingest_in(
        &self,
        txn: &DatabaseTransaction,
        records: &[UsageRecord],
        now: DateTime<Utc>,
    ) -> Result<(IngestOutcome, Learned), StoreError> {
        let rows = record_rows(records);
        let meters = self.meter_keys(&rows)?;
        let reported_at = self.reported_time(txn, now).await?;
        let subscriptions = self.intern_subscriptions(txn, &rows).await?;
        let instances = self.intern_instances(txn, &rows).await?;
        let batch_id = self.insert_batch(txn, reported_at, &rows).await?;
        let keys = RecordKeys {
            subscriptions,
            meters,
            instances,
        };
        let (inserted, skipped) = self.insert_records(txn, batch_id, &rows, &keys).await?;
        check_conflicts(&skipped)?;
        let accepted = inserted as u32;
        let duplicates = skipped.len() as u32;
        if duplicates > 0 && accepted > 0 {
            self.set_record_count(txn, batch_id, accepted).await?;
        }
        Ok((
            IngestOutcome {
                accepted,
                duplicates,
                reported_at: reported_at.to_utc(),
            },
            Learned {
                subscriptions: keys.subscriptions,
                instances: keys.instances,
            },
        ))
    }

    /// Keys for every meter of the batch: all are in the catalog (validation checked).
    fn meter_keys(&self, rows: &[RecordRow<'_>]) -> Result<HashMap<Uuid, i32>, StoreError> {
        let dictionary = self.read_dictionary();
        let mut keys = HashMap::new();
        for row in rows {
            let id = row.record.meter_id;
            let (key, _) = dictionary
                .meter(&id)
                .ok_or_else(|| StoreError::Corrupt(format!("meter {id} is not in the catalog")))?;
            keys.insert(id, *key);
        }
        Ok(keys)
    }

    /// The batch's reported time: `now`, but never behind the horizon, so a window already
    /// declared complete stays complete.
    async fn reported_time(
        &self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
    ) -> Result<UnixMicros, StoreError> {
        let horizon: i64 = txn
            .query_one_raw(
                self.sql("SELECT horizon FROM usage_pipeline WHERE id = 1")
                    .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?
            .try_get_by_index(0)?;
        Ok(UnixMicros::of(now).max(UnixMicros::from_stored(horizon)))
    }

    /// The batch's `usage_batch` row; its id.
    async fn insert_batch(
        &self,
        txn: &DatabaseTransaction,
        reported_at: UnixMicros,
        rows: &[RecordRow<'_>],
    ) -> Result<i64, StoreError> {
        let earliest_usage = rows
            .iter()
            .map(|row| UnixNanos::of(row.record.usage_start))
            .min()
            .unwrap_or(UnixNanos::from_stored(0));
        let mut insert = self.sql(
            "INSERT INTO usage_batch (reported_at, record_count, folded, min_usage_start) VALUES (",
        );
        insert
            .bind(reported_at.stored())
            .push(", ")
            .bind(rows.len() as i32)
            .push(", FALSE, ")
            .bind(earliest_usage.stored())
            .push(")");
        self.engine.insert_batch(txn, insert).await
    }

    /// Inserts the records of batch `batch_id` as the engine prefers, skipping event ids stored
    /// already. How many were inserted, and which were skipped with their stored content hash.
    async fn insert_records<'r, 'a>(
        &self,
        txn: &DatabaseTransaction,
        batch_id: i64,
        rows: &'r [RecordRow<'a>],
        keys: &RecordKeys,
    ) -> Result<(usize, Vec<Skipped<'r, 'a>>), StoreError> {
        let mut inserted = 0;
        let mut skipped = Vec::new();
        let per_statement = self.engine.records_per_insert(rows.len());
        for (chunk_no, chunk) in rows.chunks(per_statement).enumerate() {
            let first = chunk_no * per_statement;
            let stored = chunk
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    Ok(StoredRecord::with_hashes(
                        RecordId::new(batch_id, first + i),
                        row.record,
                        row.event_key,
                        row.content_hash,
                        keys.of(row)?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let affected = txn
                .execute_raw(self.engine.insert_records(&stored))
                .await?
                .rows_affected() as usize;
            inserted += affected;
            if affected < chunk.len() {
                // Some event ids were stored already: find which, and what they hold.
                let found = self.stored_events(txn, chunk).await?;
                for (row, record) in chunk.iter().zip(&stored) {
                    match found.get(&row.event_key) {
                        Some((id, _)) if *id == record.id => {}
                        Some((_, stored_hash)) => skipped.push(Skipped {
                            row,
                            stored_hash: *stored_hash,
                        }),
                        None => {
                            return Err(StoreError::Corrupt(
                                "a skipped event id is not stored".into(),
                            ));
                        }
                    }
                }
            }
        }
        Ok((inserted, skipped))
    }

    /// The stored id and content hash of each of `rows`' event ids that is stored.
    async fn stored_events(
        &self,
        txn: &DatabaseTransaction,
        rows: &[RecordRow<'_>],
    ) -> Result<HashMap<[u8; 16], (RecordId, i64)>, StoreError> {
        let select = self
            .engine
            .find_stored_events(rows.iter().map(|row| &row.event_key));
        let mut stored = HashMap::with_capacity(rows.len());
        for row in txn.query_all_raw(select).await? {
            let key: Vec<u8> = row.try_get_by_index(0)?;
            let key: [u8; 16] = key
                .try_into()
                .map_err(|_| StoreError::Corrupt("event key is not 16 bytes".into()))?;
            let id = RecordId::from_stored(row.try_get_by_index(1)?);
            stored.insert(key, (id, row.try_get_by_index(2)?));
        }
        Ok(stored)
    }

    /// Corrects the batch's record count when some of its records were duplicates.
    async fn set_record_count(
        &self,
        txn: &DatabaseTransaction,
        batch_id: i64,
        records: u32,
    ) -> Result<(), StoreError> {
        let mut update = self.sql("UPDATE usage_batch SET record_count = ");
        update
            .bind(records as i32)
            .push(" WHERE id = ")
            .bind(batch_id);
        txn.execute_raw(update.build()).await?;
        Ok(())
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
        for chunk in missing.chunks(DICTIONARY_ROWS_PER_STATEMENT) {
            let text = |id: &Uuid| Value::from(guid::to_text(id));
            let mut insert = self.sql("INSERT INTO usage_subscription (subscription_id) VALUES ");
            insert
                .bind_tuples(chunk.iter().map(|id| [text(id)]))
                .push(" ON CONFLICT (subscription_id) DO NOTHING");
            txn.execute_raw(insert.build()).await?;
            let mut select = self.sql(
                "SELECT key, subscription_id FROM usage_subscription WHERE subscription_id IN ",
            );
            select.bind_tuple(chunk.iter().map(text));
            for row in txn.query_all_raw(select.build()).await? {
                let id = guid::from_text(&row.try_get_by_index::<String>(1)?)?;
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
        let missing: Vec<_> = missing.into_iter().collect();
        for chunk in missing.chunks(DICTIONARY_ROWS_PER_STATEMENT) {
            let mut insert = self.sql(
                "INSERT INTO usage_instance (fingerprint, resource_uri, location, tags, additional_info) VALUES ",
            );
            insert
                .bind_tuples(chunk.iter().map(|(fingerprint, row)| {
                    let instance = &row.record.instance;
                    [
                        Value::Bytes(Some(fingerprint.to_vec())),
                        Value::from(instance.resource_uri.clone()),
                        Value::from(instance.location.clone()),
                        Value::from(to_json(&instance.tags)),
                        Value::from(to_json(&instance.additional_info)),
                    ]
                }))
                .push(" ON CONFLICT (fingerprint) DO NOTHING");
            txn.execute_raw(insert.build()).await?;
            let mut select =
                self.sql("SELECT key, fingerprint FROM usage_instance WHERE fingerprint IN ");
            select.bind_tuple(chunk.iter().map(|(f, _)| Value::Bytes(Some(f.to_vec()))));
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

/// The batch's records hashed once, in event-key order: every transaction inserts in one order,
/// so concurrent batches cannot deadlock.
fn record_rows(records: &[UsageRecord]) -> Vec<RecordRow<'_>> {
    let mut rows: Vec<RecordRow<'_>> = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let instance = record.instance.fingerprint();
            RecordRow {
                index,
                event_key: record.event_key(),
                content_hash: record.content_hash_with(&instance),
                record,
                instance,
            }
        })
        .collect();
    rows.sort_unstable_by_key(|r| r.event_key);
    rows
}

/// Fails the batch on the first record (as posted) whose event id is stored with other content;
/// skipped records with the same content are duplicates.
fn check_conflicts(skipped: &[Skipped<'_, '_>]) -> Result<(), StoreError> {
    match skipped
        .iter()
        .filter(|s| s.stored_hash != s.row.content_hash)
        .min_by_key(|s| s.row.index)
    {
        Some(conflict) => Err(StoreError::EventIdConflict {
            index: conflict.row.index,
            event_id: conflict.row.record.event_id.clone(),
        }),
        None => Ok(()),
    }
}

fn to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::encoding::tests::record;

    #[test]
    fn rows_come_in_event_key_order_and_remember_their_position() {
        let records: Vec<_> = (0..50).map(|i| record(&format!("e-{i}"), "1")).collect();
        let rows = record_rows(&records);
        assert!(rows.windows(2).all(|w| w[0].event_key < w[1].event_key));
        for row in &rows {
            assert_eq!(row.record, &records[row.index]);
            assert_eq!(row.content_hash, records[row.index].content_hash());
        }
    }

    #[test]
    fn the_first_conflict_as_posted_fails_the_batch() {
        let records = [record("a", "1"), record("b", "2"), record("c", "3")];
        let rows = record_rows(&records);
        let row = |event_id: &str| rows.iter().find(|r| r.record.event_id == event_id).unwrap();
        let same = |event_id| Skipped {
            row: row(event_id),
            stored_hash: row(event_id).content_hash,
        };
        let other = |event_id| Skipped {
            row: row(event_id),
            stored_hash: row(event_id).content_hash ^ 1,
        };
        assert!(check_conflicts(&[same("a"), same("c")]).is_ok());
        match check_conflicts(&[other("c"), same("a"), other("b")]) {
            Err(StoreError::EventIdConflict { index, event_id }) => {
                assert_eq!((index, event_id.as_str()), (1, "b"));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
}
