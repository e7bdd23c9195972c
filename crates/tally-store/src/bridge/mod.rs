//! The usage bridge's tables: the sealing cursor, sealed and skipped days, and sealed batches
//! with their delivery state. A day's batches are written while the day is `Sealing` and become
//! visible to the uploader only when the day turns `Sealed` in one transaction with the cursor;
//! a crash in between leaves a `Sealing` day whose batches the next attempt replaces. Batches
//! are opaque bytes here: the bridge encodes them.

use sea_orm::{ConnectionTrait, QueryResult, TransactionTrait, Value};
use tally_migrations::BridgeMigrator;

use crate::db::{Backend, Database};
use crate::error::StoreError;
use crate::sql::Sql;

/// A batch waiting for delivery, with the header of its day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingBatch {
    pub batch_id: String,
    /// Unix seconds of the reported day's midnight.
    pub reported_day: i64,
    pub batch_index: u32,
    pub batch_count: u32,
    pub cloud_id: String,
    pub registration_name: String,
    pub billing_model: i32,
    pub payload: Vec<u8>,
}

/// One row of ListUploads: a sealed batch, or a skipped day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRow {
    pub batch_id: String,
    pub reported_day: i64,
    pub batch_index: u32,
    pub batch_count: u32,
    pub records: u32,
    /// `Pending`, `Acknowledged`, `Parked` or `Skipped`.
    pub state: String,
    pub attempts: u32,
    pub last_error: String,
    /// Unix seconds.
    pub acknowledged_at: Option<i64>,
}

/// The header every batch of a sealed day carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayHeader {
    pub cloud_id: String,
    pub registration_name: String,
    pub billing_model: i32,
}

/// Counts behind the bridge's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeSummary {
    /// The next day to seal (Unix seconds), if sealing has started.
    pub next_day: Option<i64>,
    pub pending: u64,
    pub parked: u64,
    /// The earliest day with a batch not acknowledged yet.
    pub oldest_unacknowledged_day: Option<i64>,
    /// The last error of the oldest batch not acknowledged that has one (pending or parked).
    pub oldest_error: String,
}

pub const PENDING: &str = "Pending";
pub const ACKNOWLEDGED: &str = "Acknowledged";
pub const PARKED: &str = "Parked";
pub const SKIPPED: &str = "Skipped";

#[derive(Debug)]
pub struct BridgeStore {
    db: Database,
}

const UPLOAD_COLUMNS: &str = "b.batch_id, b.reported_day, b.batch_index, COALESCE(d.batch_count, 0), \
     b.records, b.state, b.attempts, b.last_error, b.acknowledged_at";

fn upload_row(row: &QueryResult) -> Result<UploadRow, StoreError> {
    Ok(UploadRow {
        batch_id: row.try_get_by_index(0)?,
        reported_day: row.try_get_by_index(1)?,
        batch_index: count(row.try_get_by_index::<i32>(2)?)?,
        batch_count: count(row.try_get_by_index::<i32>(3)?)?,
        records: count(row.try_get_by_index::<i32>(4)?)?,
        state: row.try_get_by_index(5)?,
        attempts: count(row.try_get_by_index::<i32>(6)?)?,
        last_error: row.try_get_by_index(7)?,
        acknowledged_at: row.try_get_by_index(8)?,
    })
}

fn count(value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

impl BridgeStore {
    pub async fn open(url: &str) -> Result<BridgeStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<BridgeMigrator>().await?;
        Ok(BridgeStore { db })
    }

    /// Whether the bridge database answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.db.backend(), text)
    }

    /// The next reported day to seal; the first call fixes it at `first_day`.
    pub async fn next_day(&self, first_day: i64) -> Result<i64, StoreError> {
        let mut insert = self.sql("INSERT INTO bridge_cursor (id, next_day) VALUES (1, ");
        insert.bind(first_day).push(") ON CONFLICT (id) DO NOTHING");
        self.db.writer().execute_raw(insert.build()).await?;
        let select = self.sql("SELECT next_day FROM bridge_cursor WHERE id = 1");
        let row = self
            .db
            .writer()
            .query_one_raw(select.build())
            .await?
            .ok_or_else(|| StoreError::Corrupt("the bridge cursor is missing".into()))?;
        Ok(row.try_get_by_index(0)?)
    }

    /// Starts sealing `day`: forgets batches a crashed attempt left, and records the header.
    pub async fn begin_day(
        &self,
        day: i64,
        header: &DayHeader,
        sealed_at: i64,
    ) -> Result<(), StoreError> {
        let txn = self.db.writer().begin().await?;
        let mut delete = self.sql("DELETE FROM bridge_batch WHERE reported_day = ");
        delete.bind(day);
        txn.execute_raw(delete.build()).await?;
        let mut delete = self.sql("DELETE FROM bridge_day WHERE reported_day = ");
        delete.bind(day).push(" AND state = 'Sealing'");
        txn.execute_raw(delete.build()).await?;
        let mut insert = self.sql(
            "INSERT INTO bridge_day (reported_day, state, reason, batch_count, cloud_id, \
             registration_name, billing_model, sealed_at) VALUES ",
        );
        insert.bind_tuple([
            Value::from(day),
            Value::from("Sealing"),
            Value::from(""),
            Value::from(0i32),
            Value::from(header.cloud_id.clone()),
            Value::from(header.registration_name.clone()),
            Value::from(header.billing_model),
            Value::from(sealed_at),
        ]);
        txn.execute_raw(insert.build()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Stores one batch of a day being sealed.
    pub async fn put_batch(
        &self,
        batch_id: &str,
        day: i64,
        batch_index: u32,
        records: u32,
        payload: Vec<u8>,
    ) -> Result<(), StoreError> {
        let mut insert = self.sql(
            "INSERT INTO bridge_batch (batch_id, reported_day, batch_index, records, payload, \
             state, attempts, last_error, acknowledged_at) VALUES ",
        );
        insert.bind_tuple([
            Value::from(batch_id.to_string()),
            Value::from(day),
            Value::from(batch_index as i32),
            Value::from(records as i32),
            Value::from(payload),
            Value::from(PENDING),
            Value::from(0i32),
            Value::from(""),
            Value::BigInt(None),
        ]);
        self.db.writer().execute_raw(insert.build()).await?;
        Ok(())
    }

    /// Seals `day` with `batch_count` batches and moves the cursor past it, at once.
    pub async fn finish_day(&self, day: i64, batch_count: u32) -> Result<(), StoreError> {
        let txn = self.db.writer().begin().await?;
        let mut update = self.sql("UPDATE bridge_day SET state = 'Sealed', batch_count = ");
        update
            .bind(batch_count as i32)
            .push(" WHERE reported_day = ")
            .bind(day);
        txn.execute_raw(update.build()).await?;
        self.advance_cursor(&txn, day).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Records `day` as skipped for `reason` and moves the cursor past it.
    pub async fn skip_day(
        &self,
        day: i64,
        batch_id: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let txn = self.db.writer().begin().await?;
        for table in ["bridge_batch", "bridge_day"] {
            let mut delete = self.sql(&format!("DELETE FROM {table} WHERE reported_day = "));
            delete.bind(day);
            txn.execute_raw(delete.build()).await?;
        }
        let mut insert = self.sql(
            "INSERT INTO bridge_day (reported_day, state, reason, batch_count, cloud_id, \
             registration_name, billing_model, sealed_at) VALUES ",
        );
        insert.bind_tuple([
            Value::from(day),
            Value::from(SKIPPED),
            Value::from(reason.to_string()),
            Value::from(0i32),
            Value::from(""),
            Value::from(""),
            Value::from(0i32),
            Value::from(at),
        ]);
        txn.execute_raw(insert.build()).await?;
        let mut insert = self.sql(
            "INSERT INTO bridge_batch (batch_id, reported_day, batch_index, records, payload, \
             state, attempts, last_error, acknowledged_at) VALUES ",
        );
        insert.bind_tuple([
            Value::from(batch_id.to_string()),
            Value::from(day),
            Value::from(0i32),
            Value::from(0i32),
            Value::from(Vec::<u8>::new()),
            Value::from(SKIPPED),
            Value::from(0i32),
            Value::from(reason.to_string()),
            Value::BigInt(None),
        ]);
        txn.execute_raw(insert.build()).await?;
        self.advance_cursor(&txn, day).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn advance_cursor(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        day: i64,
    ) -> Result<(), StoreError> {
        let mut update = self.sql("UPDATE bridge_cursor SET next_day = ");
        update
            .bind(day + 86_400)
            .push(" WHERE id = 1 AND next_day <= ")
            .bind(day);
        txn.execute_raw(update.build()).await?;
        Ok(())
    }

    /// The oldest pending batch of a sealed day, after `after` (day, index) if given.
    pub async fn next_pending(
        &self,
        after: Option<(i64, u32)>,
    ) -> Result<Option<PendingBatch>, StoreError> {
        let mut select = self.sql(
            "SELECT b.batch_id, b.reported_day, b.batch_index, d.batch_count, d.cloud_id, \
             d.registration_name, d.billing_model, b.payload FROM bridge_batch b \
             JOIN bridge_day d ON d.reported_day = b.reported_day \
             WHERE b.state = 'Pending' AND d.state = 'Sealed'",
        );
        if let Some((day, index)) = after {
            select
                .push(" AND (b.reported_day > ")
                .bind(day)
                .push(" OR (b.reported_day = ")
                .bind(day)
                .push(" AND b.batch_index > ")
                .bind(index as i32)
                .push("))");
        }
        select.push(" ORDER BY b.reported_day, b.batch_index LIMIT 1");
        let Some(row) = self.db.writer().query_one_raw(select.build()).await? else {
            return Ok(None);
        };
        Ok(Some(PendingBatch {
            batch_id: row.try_get_by_index(0)?,
            reported_day: row.try_get_by_index(1)?,
            batch_index: count(row.try_get_by_index::<i32>(2)?)?,
            batch_count: count(row.try_get_by_index::<i32>(3)?)?,
            cloud_id: row.try_get_by_index(4)?,
            registration_name: row.try_get_by_index(5)?,
            billing_model: row.try_get_by_index(6)?,
            payload: row.try_get_by_index(7)?,
        }))
    }

    /// Marks a batch acknowledged upstream.
    pub async fn acknowledge(&self, batch_id: &str, at: i64) -> Result<(), StoreError> {
        let mut update = self.sql(
            "UPDATE bridge_batch SET state = 'Acknowledged', attempts = attempts + 1, \
             last_error = '', acknowledged_at = ",
        );
        update
            .bind(at)
            .push(" WHERE batch_id = ")
            .bind(batch_id.to_string());
        self.db.writer().execute_raw(update.build()).await?;
        Ok(())
    }

    /// Records a failed attempt; `park` takes the batch out of the queue.
    pub async fn fail(&self, batch_id: &str, error: &str, park: bool) -> Result<(), StoreError> {
        let mut update = self.sql("UPDATE bridge_batch SET attempts = attempts + 1, state = ");
        update
            .bind(if park { PARKED } else { PENDING })
            .push(", last_error = ")
            .bind(error.to_string())
            .push(" WHERE batch_id = ")
            .bind(batch_id.to_string());
        self.db.writer().execute_raw(update.build()).await?;
        Ok(())
    }

    /// Puts a parked batch back in the queue. `None` if no batch has this id; the row as it
    /// stands otherwise (still not pending if it was not parked).
    pub async fn requeue(&self, batch_id: &str) -> Result<Option<(UploadRow, bool)>, StoreError> {
        let mut update = self.sql("UPDATE bridge_batch SET state = 'Pending' WHERE batch_id = ");
        update
            .bind(batch_id.to_string())
            .push(" AND state = 'Parked'");
        // One transaction, so the row answered is the one requeued, not one the uploader has
        // already sent again in between.
        let txn = self.db.writer().begin().await?;
        let requeued = txn.execute_raw(update.build()).await?.rows_affected() > 0;
        let mut select = self.sql(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM bridge_batch b \
             LEFT JOIN bridge_day d ON d.reported_day = b.reported_day WHERE b.batch_id = "
        ));
        select.bind(batch_id.to_string());
        let row = txn.query_one_raw(select.build()).await?;
        txn.commit().await?;
        row.map(|row| Ok((upload_row(&row)?, requeued))).transpose()
    }

    /// Batches and skipped days of reported days in `[start, end)`, after `after`, in order.
    pub async fn uploads(
        &self,
        start: Option<i64>,
        end: Option<i64>,
        after: Option<(i64, u32)>,
        limit: u64,
    ) -> Result<Vec<UploadRow>, StoreError> {
        let mut select = self.sql(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM bridge_batch b \
             JOIN bridge_day d ON d.reported_day = b.reported_day \
             WHERE d.state <> 'Sealing'"
        ));
        if let Some(start) = start {
            select.push(" AND b.reported_day >= ").bind(start);
        }
        if let Some(end) = end {
            select.push(" AND b.reported_day < ").bind(end);
        }
        if let Some((day, index)) = after {
            select
                .push(" AND (b.reported_day > ")
                .bind(day)
                .push(" OR (b.reported_day = ")
                .bind(day)
                .push(" AND b.batch_index > ")
                .bind(index as i32)
                .push("))");
        }
        select
            .push(" ORDER BY b.reported_day, b.batch_index LIMIT ")
            .bind(limit as i64);
        self.db
            .reader()
            .query_all_raw(select.build())
            .await?
            .iter()
            .map(upload_row)
            .collect()
    }

    /// What the status reports.
    pub async fn summary(&self) -> Result<BridgeSummary, StoreError> {
        let conn = self.db.reader();
        let cursor = self.sql("SELECT next_day FROM bridge_cursor WHERE id = 1");
        let next_day = match conn.query_one_raw(cursor.build()).await? {
            Some(row) => Some(row.try_get_by_index::<i64>(0)?),
            None => None,
        };
        let counts = self.sql(
            "SELECT b.state, COUNT(*), MIN(b.reported_day) FROM bridge_batch b \
             JOIN bridge_day d ON d.reported_day = b.reported_day \
             WHERE d.state = 'Sealed' AND b.state IN ('Pending', 'Parked') GROUP BY b.state",
        );
        let mut summary = BridgeSummary {
            next_day,
            ..Default::default()
        };
        for row in conn.query_all_raw(counts.build()).await? {
            let state: String = row.try_get_by_index(0)?;
            let n = row.try_get_by_index::<i64>(1)? as u64;
            let oldest: i64 = row.try_get_by_index(2)?;
            match state.as_str() {
                PENDING => summary.pending = n,
                _ => summary.parked = n,
            }
            summary.oldest_unacknowledged_day = Some(
                summary
                    .oldest_unacknowledged_day
                    .map_or(oldest, |o| o.min(oldest)),
            );
        }
        let error = self.sql(
            "SELECT b.last_error FROM bridge_batch b \
             JOIN bridge_day d ON d.reported_day = b.reported_day \
             WHERE d.state = 'Sealed' AND b.state IN ('Pending', 'Parked') \
             AND b.last_error <> '' ORDER BY b.reported_day, b.batch_index LIMIT 1",
        );
        if let Some(row) = conn.query_one_raw(error.build()).await? {
            summary.oldest_error = row.try_get_by_index(0)?;
        }
        Ok(summary)
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }
}
