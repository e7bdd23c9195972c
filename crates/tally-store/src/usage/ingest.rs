//! Ingestion: one batch in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait, Value,
};
use tally_core::UsageRecord;
use tally_core::record::unix_nanos;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{INGEST_LOCK, UsageStore, micros_to_utc, utc_to_micros};
use crate::db::Backend;
use crate::error::StoreError;
use crate::sql::Sql;

/// Rows per multi-row INSERT on SQLite: 10 columns x 1000 stays under its parameter limit
/// (32766).
const RECORD_ROWS_PER_STATEMENT: usize = 1_000;
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

/// Dictionary keys a batch used, learned once its transaction commits.
#[derive(Default)]
pub(crate) struct Learned {
    subscriptions: HashMap<Uuid, i32>,
    instances: HashMap<[u8; 16], i64>,
}

/// A batch waiting for the SQLite writer.
pub(crate) struct Job {
    records: Vec<UsageRecord>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
}

/// Records one group commit takes at most; the rest wait for the next.
const MAX_GROUP_RECORDS: usize = 32_000;

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
        match self.db.backend() {
            Backend::Sqlite => self.ingest_grouped(records, now).await,
            Backend::Postgres => {
                let txn = self.db.writer().begin().await?;
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock_shared({INGEST_LOCK})"
                ))
                .await?;
                let (outcome, learned) = self.ingest_in(&txn, &records, now).await?;
                if outcome.accepted == 0 {
                    // Nothing new: leave no empty batch (and no new dictionary entry) behind.
                    txn.rollback().await?;
                } else {
                    txn.commit().await?;
                    self.learn(learned);
                }
                Ok(outcome)
            }
        }
    }

    /// Group commit: whoever holds the writer commits every batch queued so far.
    async fn ingest_grouped(
        &self,
        records: Vec<UsageRecord>,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let (reply, mut outcome) = oneshot::channel();
        self.queue().push(Job {
            records,
            now,
            reply,
        });
        let dropped = || StoreError::Corrupt("a grouped batch was dropped".into());
        loop {
            // Whoever takes the writer commits every queued batch; a batch committed by
            // someone else's group returns at once, without queueing for the writer itself.
            tokio::select! {
                biased;
                result = &mut outcome => return result.unwrap_or_else(|_| Err(dropped())),
                _writer = self.group_lock.lock() => {
                    let jobs = self.take_group();
                    if jobs.is_empty() {
                        // Ours is in a group being committed right now.
                        return (&mut outcome).await.unwrap_or_else(|_| Err(dropped()));
                    }
                    self.commit_group(jobs).await;
                }
            }
        }
    }

    /// The queued batches, oldest first, up to [`MAX_GROUP_RECORDS`] records (at least one).
    fn take_group(&self) -> Vec<Job> {
        let mut queue = self.queue();
        let mut taken = 0;
        let mut count = 0;
        for job in queue.iter() {
            if count > 0 && taken + job.records.len() > MAX_GROUP_RECORDS {
                break;
            }
            taken += job.records.len();
            count += 1;
        }
        queue.drain(..count).collect()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn commit_group(&self, jobs: Vec<Job>) {
        tracing::debug!(
            batches = jobs.len(),
            records = jobs.iter().map(|j| j.records.len()).sum::<usize>(),
            "group commit"
        );
        let txn = match self.db.writer().begin().await {
            Ok(txn) => txn,
            Err(e) => {
                let e = StoreError::from(e);
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut done = Vec::with_capacity(jobs.len());
        let mut learned = Vec::with_capacity(jobs.len());
        for job in jobs {
            let result = async {
                let savepoint = txn.begin().await?;
                match self.ingest_in(&savepoint, &job.records, job.now).await {
                    Ok((outcome, keys)) => {
                        if outcome.accepted == 0 {
                            savepoint.rollback().await?;
                        } else {
                            savepoint.commit().await?;
                            learned.push(keys);
                        }
                        Ok(outcome)
                    }
                    Err(e) => {
                        savepoint.rollback().await?;
                        Err(e)
                    }
                }
            }
            .await;
            done.push((job.reply, result));
        }
        self.group_commits.fetch_add(1, Ordering::Relaxed);
        self.unchecked_writes.store(true, Ordering::Relaxed);
        match txn.commit().await {
            Ok(()) => {
                for keys in learned {
                    self.learn(keys);
                }
                for (reply, result) in done {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let e = StoreError::from(e);
                for (reply, _) in done {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn learn(&self, learned: Learned) {
        let mut dictionary = self.write_dictionary();
        for (id, key) in learned.subscriptions {
            dictionary.learn_subscription(id, key);
        }
        for (fingerprint, key) in learned.instances {
            dictionary.learn_instance(fingerprint, key);
        }
    }

    /// One batch inside `txn` (a transaction or a savepoint): the dictionary keys it needs, its
    /// `usage_batch` row and its records.
    async fn ingest_in(
        &self,
        txn: &DatabaseTransaction,
        records: &[UsageRecord],
        now: DateTime<Utc>,
    ) -> Result<(IngestOutcome, Learned), StoreError> {
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
        let horizon: i64 = txn
            .query_one_raw(
                Sql::new(backend, "SELECT horizon FROM usage_pipeline WHERE id = 1").build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?
            .try_get_by_index(0)?;
        // Never behind the horizon: a window already declared complete stays complete.
        let reported_at = utc_to_micros(now).max(horizon);
        let min_usage_start = records
            .iter()
            .map(|r| unix_nanos(r.usage_start))
            .min()
            .unwrap_or(0);

        let subscriptions = self.intern_subscriptions(txn, &rows).await?;
        let instances = self.intern_instances(txn, &rows).await?;

        let batch_id: i64 = {
            let mut insert = Sql::new(
                backend,
                "INSERT INTO usage_batch (reported_at, record_count, folded, min_usage_start) VALUES (",
            );
            insert
                .bind(reported_at)
                .push(", ")
                .bind(rows.len() as i32)
                .push(", FALSE, ")
                .bind(min_usage_start)
                .push(")");
            match self.db.backend() {
                // RETURNING costs SQLite a temporary table per statement; the rowid is at hand.
                Backend::Sqlite => txn.execute_raw(insert.build()).await?.last_insert_id() as i64,
                Backend::Postgres => {
                    insert.push(" RETURNING id");
                    txn.query_one_raw(insert.build())
                        .await?
                        .ok_or_else(|| StoreError::Corrupt("batch insert returned no id".into()))?
                        .try_get_by_index(0)?
                }
            }
        };

        let mut inserted = 0usize;
        let mut skipped: Vec<(&RecordRow<'_>, i64)> = Vec::new();
        let keys = RecordKeys {
            subscriptions: &subscriptions,
            meters: &meter_keys,
            instances: &instances,
        };
        let rows_per_statement = match self.db.backend() {
            Backend::Sqlite => RECORD_ROWS_PER_STATEMENT,
            // Arrays: one statement of ten parameters however long the batch.
            Backend::Postgres => rows.len().max(1),
        };
        for (chunk_no, chunk) in rows.chunks(rows_per_statement).enumerate() {
            let first_id = batch_id << ORDINAL_BITS | (chunk_no * rows_per_statement) as i64;
            let insert = match self.db.backend() {
                Backend::Sqlite => insert_values(backend, first_id, chunk, &keys),
                Backend::Postgres => insert_unnest(backend, first_id, chunk, &keys),
            };
            let affected = txn.execute_raw(insert).await?.rows_affected() as usize;
            inserted += affected;
            if affected < chunk.len() {
                // Some event ids were stored already: find which, and what they hold.
                let stored = stored_events(txn, backend, chunk).await?;
                for (i, row) in chunk.iter().enumerate() {
                    match stored.get(&row.event_key) {
                        Some((id, _)) if *id == first_id + i as i64 => {}
                        Some((_, hash)) => skipped.push((row, *hash)),
                        None => {
                            return Err(StoreError::Corrupt(
                                "a skipped event id is not stored".into(),
                            ));
                        }
                    }
                }
            }
        }
        if let Some((row, _)) = skipped
            .iter()
            .filter(|(row, stored_hash)| *stored_hash != row.content_hash)
            .min_by_key(|(row, _)| row.index)
        {
            return Err(StoreError::EventIdConflict {
                index: row.index,
                event_id: row.record.event_id.clone(),
            });
        }
        let accepted = inserted as u32;
        let duplicates = skipped.len() as u32;
        let outcome = IngestOutcome {
            accepted,
            duplicates,
            reported_at: micros_to_utc(reported_at),
        };
        if duplicates > 0 && accepted > 0 {
            let mut update = Sql::new(backend, "UPDATE usage_batch SET record_count = ");
            update
                .bind(accepted as i32)
                .push(" WHERE id = ")
                .bind(batch_id);
            txn.execute_raw(update.build()).await?;
        }
        Ok((
            outcome,
            Learned {
                subscriptions,
                instances,
            },
        ))
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

/// Dictionary keys of a batch's records.
struct RecordKeys<'a> {
    subscriptions: &'a HashMap<Uuid, i32>,
    meters: &'a HashMap<Uuid, i32>,
    instances: &'a HashMap<[u8; 16], i64>,
}

const RECORD_COLUMNS: &str = "id, event_key, content_hash, subscription_key, meter_key, \
     instance_key, usage_start, usage_end, qty_units, qty_frac";

/// Each column of [`RECORD_COLUMNS`] as a PostgreSQL array: its element type and cast.
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

/// The stored row of a record with id `id`, in [`RECORD_COLUMNS`] order.
fn record_values(id: i64, row: &RecordRow<'_>, keys: &RecordKeys<'_>) -> [Value; 10] {
    let quantity = row.record.quantity;
    [
        Value::BigInt(Some(id)),
        Value::Bytes(Some(row.event_key.to_vec())),
        Value::BigInt(Some(row.content_hash)),
        Value::Int(Some(keys.subscriptions[&row.record.subscription_id])),
        Value::Int(Some(keys.meters[&row.record.meter_id])),
        Value::BigInt(Some(keys.instances[&row.instance])),
        Value::BigInt(Some(unix_nanos(row.record.usage_start))),
        Value::BigInt(Some(unix_nanos(row.record.usage_end))),
        Value::BigInt(Some(quantity.units() as i64)),
        Value::BigInt(Some(quantity.fraction() as i64)),
    ]
}

/// SQLite: one multi-row `INSERT .. VALUES` of `chunk`, ids from `first_id`.
fn insert_values(
    backend: DbBackend,
    first_id: i64,
    chunk: &[RecordRow<'_>],
    keys: &RecordKeys<'_>,
) -> Statement {
    let mut insert = Sql::new(
        backend,
        &format!("INSERT INTO usage_record ({RECORD_COLUMNS}) VALUES "),
    );
    for (i, row) in chunk.iter().enumerate() {
        if i > 0 {
            insert.push(", ");
        }
        insert.bind_tuple(record_values(first_id + i as i64, row, keys));
    }
    insert.push(" ON CONFLICT (event_key) DO NOTHING");
    insert.build()
}

/// PostgreSQL: `INSERT .. SELECT FROM UNNEST(arrays)` of `chunk`, ids from `first_id`: ten
/// parameters however long the batch, so a batch is one statement (PostgreSQL allows 65,535).
fn insert_unnest(
    backend: DbBackend,
    first_id: i64,
    chunk: &[RecordRow<'_>],
    keys: &RecordKeys<'_>,
) -> Statement {
    let mut columns: [Vec<Value>; 10] = std::array::from_fn(|_| Vec::with_capacity(chunk.len()));
    for (i, row) in chunk.iter().enumerate() {
        for (column, value) in columns
            .iter_mut()
            .zip(record_values(first_id + i as i64, row, keys))
        {
            column.push(value);
        }
    }
    let mut insert = Sql::new(
        backend,
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

/// The stored id and content hash of each of `chunk`'s event ids that is stored.
async fn stored_events(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    chunk: &[RecordRow<'_>],
) -> Result<HashMap<[u8; 16], (i64, i64)>, StoreError> {
    let mut select = Sql::new(
        backend,
        "SELECT event_key, id, content_hash FROM usage_record WHERE event_key ",
    );
    match backend {
        DbBackend::Postgres => {
            select.push("= ANY(").bind(
                chunk
                    .iter()
                    .map(|r| r.event_key.to_vec())
                    .collect::<Vec<_>>(),
            );
            select.push("::bytea[])");
        }
        _ => {
            select.push("IN ").bind_tuple(
                chunk
                    .iter()
                    .map(|r| Value::Bytes(Some(r.event_key.to_vec()))),
            );
        }
    }
    let mut stored = HashMap::with_capacity(chunk.len());
    for row in txn.query_all_raw(select.build()).await? {
        let key: Vec<u8> = row.try_get_by_index(0)?;
        let key: [u8; 16] = key
            .try_into()
            .map_err(|_| StoreError::Corrupt("event key is not 16 bytes".into()))?;
        stored.insert(key, (row.try_get_by_index(1)?, row.try_get_by_index(2)?));
    }
    Ok(stored)
}

fn to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}
