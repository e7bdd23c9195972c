//! SQLite: one writer, so batches that arrive together share one durable commit (group commit),
//! records go in as multi-row `VALUES`, and the write-ahead log is checkpointed while ingestion
//! pauses.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait, Value};
use tally_core::UsageRecord;
use tokio::sync::oneshot;

use crate::db::{Backend, Database};
use crate::error::StoreError;
use crate::sql::Sql;
use crate::usage::UsageStore;
use crate::usage::encoding::{RECORD_COLUMNS, StoredRecord};
use crate::usage::ingest::IngestOutcome;

/// Records per multi-row INSERT: 10 columns x 1000 stays under SQLite's parameter limit (32766).
pub const RECORDS_PER_INSERT: usize = 1_000;
/// Records one group commit takes at most; the rest wait for the next.
pub const MAX_GROUP_RECORDS: usize = 32_000;

/// A batch waiting for the writer.
struct Job {
    records: Vec<UsageRecord>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
}

#[derive(Default)]
pub(crate) struct Sqlite {
    /// Batches waiting for the writer.
    queue: Mutex<Vec<Job>>,
    /// The writer's turn: whoever holds it commits every batch queued so far.
    writer_turn: tokio::sync::Mutex<()>,
    /// Group commits so far, and as of the previous idle check.
    group_commits: AtomicU64,
    group_commits_seen: AtomicU64,
    /// Whether anything was written since the last checkpoint.
    unchecked_writes: AtomicBool,
}

impl Sqlite {
    /// Group commit: queues the batch, then either finds it committed by someone else's group or
    /// takes the writer and commits every queued batch itself.
    pub(super) async fn ingest(
        &self,
        store: &UsageStore,
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
                _writer = self.writer_turn.lock() => {
                    let jobs = self.take_group();
                    if jobs.is_empty() {
                        // Ours is in a group being committed right now.
                        return (&mut outcome).await.unwrap_or_else(|_| Err(dropped()));
                    }
                    self.commit_group(store, jobs).await;
                }
            }
        }
    }

    /// The queued batches, oldest first, up to [`MAX_GROUP_RECORDS`] records (at least one).
    fn take_group(&self) -> Vec<Job> {
        let mut queue = self.queue();
        let sizes: Vec<usize> = queue.iter().map(|job| job.records.len()).collect();
        queue.drain(..group_len(&sizes)).collect()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits `jobs` in one transaction, each batch in its own savepoint so a failing batch
    /// rolls back alone, and answers each job once the commit is durable.
    async fn commit_group(&self, store: &UsageStore, jobs: Vec<Job>) {
        tracing::debug!(
            batches = jobs.len(),
            records = jobs.iter().map(|j| j.records.len()).sum::<usize>(),
            "group commit"
        );
        let txn = match store.database().writer().begin().await {
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
        let mut jobs = jobs.into_iter();
        for job in jobs.by_ref() {
            let result = async {
                let savepoint = txn.begin().await?;
                let (outcome, keys) = store
                    .ingest_and_end(savepoint, &job.records, job.now)
                    .await?;
                learned.extend(keys);
                Ok(outcome)
            }
            .await;
            if let Err(e @ (StoreError::StorageFull(_) | StoreError::Unavailable(_))) = &result {
                // SQLite may have rolled the whole transaction back already (it may after
                // SQLITE_FULL), so nothing of the group is kept: every batch gets the error,
                // and the rest are not tried in what could be autocommit mode.
                let e = e.clone();
                let _ = txn.rollback().await;
                for reply in done
                    .into_iter()
                    .map(|(reply, _)| reply)
                    .chain(std::iter::once(job.reply))
                    .chain(jobs.map(|job| job.reply))
                {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
            done.push((job.reply, result));
        }
        self.group_commits.fetch_add(1, Ordering::Relaxed);
        self.wrote();
        match txn.commit().await {
            Ok(()) => {
                for keys in learned {
                    store.learn(keys);
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

    /// Notes a write the next checkpoint should move into the database.
    pub(super) fn wrote(&self) {
        self.unchecked_writes.store(true, Ordering::Relaxed);
    }

    /// Once ingestion pauses (no group commit since the previous call), moves the write-ahead log
    /// into the database, so readers do not search a long log for every page; while batches keep
    /// coming the writer is better spent on them, and the automatic checkpoint bounds the log.
    pub(super) async fn maintain(&self, db: &Database) -> Result<(), StoreError> {
        let commits = self.group_commits.load(Ordering::Relaxed);
        let idle = self.group_commits_seen.swap(commits, Ordering::Relaxed) == commits;
        if idle && self.unchecked_writes.swap(false, Ordering::Relaxed) {
            db.writer()
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await?;
        }
        Ok(())
    }
}

/// How many of the queued batches of `sizes` records one group takes: as many as fit in
/// [`MAX_GROUP_RECORDS`], and at least one.
fn group_len(sizes: &[usize]) -> usize {
    let mut taken = 0;
    let mut count = 0;
    for size in sizes {
        if count > 0 && taken + size > MAX_GROUP_RECORDS {
            break;
        }
        taken += size;
        count += 1;
    }
    count
}

/// RETURNING costs SQLite a temporary table per statement; the rowid is at hand.
pub(super) async fn insert_batch(
    txn: &DatabaseTransaction,
    insert: Sql,
) -> Result<i64, StoreError> {
    Ok(txn.execute_raw(insert.build()).await?.last_insert_id() as i64)
}

/// One multi-row `INSERT .. VALUES` (at most [`RECORDS_PER_INSERT`] rows).
pub(super) fn insert_records(records: &[StoredRecord]) -> Statement {
    let mut insert = Sql::new(
        Backend::Sqlite,
        &format!("INSERT INTO usage_record ({RECORD_COLUMNS}) VALUES "),
    );
    insert
        .bind_tuples(records.iter().map(StoredRecord::values))
        .push(" ON CONFLICT (event_key) DO NOTHING");
    insert.build()
}

pub(super) fn find_stored_events<'k>(
    event_keys: impl IntoIterator<Item = &'k [u8; 16]>,
) -> Statement {
    let mut select = Sql::new(
        Backend::Sqlite,
        "SELECT event_key, id, content_hash FROM usage_record WHERE event_key IN ",
    );
    select.bind_tuple(
        event_keys
            .into_iter()
            .map(|key| Value::Bytes(Some(key.to_vec()))),
    );
    select.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_takes_what_fits_and_at_least_one_batch() {
        assert_eq!(group_len(&[]), 0);
        assert_eq!(group_len(&[1_000; 40]), 32);
        assert_eq!(group_len(&[40_000, 10]), 1);
        assert_eq!(group_len(&[10_000, 10_000, 10_000, 2_000, 1]), 4);
        assert_eq!(group_len(&[10_000, 10_000, 10_000, 2_001]), 3);
    }
}
