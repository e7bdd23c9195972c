//! The reference commerce receiver's tables: batches received (by id, with a digest of their
//! content) and running totals per billing subscription, meter and usage day. A batch and its
//! totals are stored in one transaction, so a batch counts once or not at all. Receiving is
//! serialized (SQLite's single writer; an advisory lock on PostgreSQL), since the bridge sends
//! several batches at once and totals are read, added to and written back.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, TransactionTrait, Value};
use tally_core::Quantity;
use tally_migrations::ReceiverMigrator;

use crate::db::{Backend, Database};
use crate::error::StoreError;
use crate::sql::Sql;

/// What storing a batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// New: its records were added to the totals.
    Stored,
    /// Known with the same digest: nothing changed.
    Duplicate,
    /// Known with another digest: refused.
    Conflict,
}

/// A total's key: billing subscription, meter, usage day (Unix seconds).
pub type TotalKey = (String, String, i64);

/// A batch's records summed per total key: quantity and record count.
pub type Sums = BTreeMap<TotalKey, (Quantity, u64)>;

/// One total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    pub billing_subscription_id: String,
    pub meter_id: String,
    pub usage_day: i64,
    pub quantity: Quantity,
    pub records: u64,
}

/// PostgreSQL advisory lock held by each receiving transaction.
const RECEIVE_LOCK: i64 = 0x7a11_7900_0000_0004;

#[derive(Debug)]
pub struct ReceiverStore {
    db: Database,
}

impl ReceiverStore {
    pub async fn open(url: &str) -> Result<ReceiverStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<ReceiverMigrator>().await?;
        Ok(ReceiverStore { db })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.db.backend(), text)
    }

    /// Stores batch `batch_id` (content `digest`) and adds `sums` to the totals, unless the id
    /// is known already.
    pub async fn receive(
        &self,
        batch_id: &str,
        digest: &str,
        records: u32,
        reported_day: i64,
        received_at: i64,
        sums: &Sums,
    ) -> Result<Received, StoreError> {
        let txn = self.db.writer().begin().await?;
        if self.db.backend() == Backend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({RECEIVE_LOCK})"))
                .await?;
        }
        let mut select = self.sql("SELECT digest FROM receiver_batch WHERE batch_id = ");
        select.bind(batch_id.to_string());
        if let Some(row) = txn.query_one_raw(select.build()).await? {
            let stored: String = row.try_get_by_index(0)?;
            return Ok(if stored == digest {
                Received::Duplicate
            } else {
                Received::Conflict
            });
        }
        let mut insert = self.sql(
            "INSERT INTO receiver_batch (batch_id, digest, records, reported_day, received_at) VALUES ",
        );
        insert.bind_tuple([
            Value::from(batch_id.to_string()),
            Value::from(digest.to_string()),
            Value::from(records as i32),
            Value::from(reported_day),
            Value::from(received_at),
        ]);
        txn.execute_raw(insert.build()).await?;
        for ((billing, meter, day), (quantity, count)) in sums {
            let mut select = self.sql(
                "SELECT quantity, records FROM receiver_total WHERE billing_subscription_id = ",
            );
            select
                .bind(billing.clone())
                .push(" AND meter_id = ")
                .bind(meter.clone())
                .push(" AND usage_day = ")
                .bind(*day);
            let (mut total, mut total_records) = (*quantity, *count);
            let existing = txn.query_one_raw(select.build()).await?;
            if let Some(row) = &existing {
                let stored: String = row.try_get_by_index(0)?;
                total += stored
                    .parse::<Quantity>()
                    .map_err(|e| StoreError::Corrupt(format!("total {stored:?}: {e}")))?;
                total_records += row.try_get_by_index::<i64>(1)? as u64;
            }
            let mut write = if existing.is_some() {
                let mut update = self.sql("UPDATE receiver_total SET quantity = ");
                update
                    .bind(total.to_string())
                    .push(", records = ")
                    .bind(total_records as i64)
                    .push(" WHERE billing_subscription_id = ")
                    .bind(billing.clone())
                    .push(" AND meter_id = ")
                    .bind(meter.clone())
                    .push(" AND usage_day = ")
                    .bind(*day);
                update
            } else {
                let mut insert = self.sql(
                    "INSERT INTO receiver_total (billing_subscription_id, meter_id, usage_day, \
                     quantity, records) VALUES ",
                );
                insert.bind_tuple([
                    Value::from(billing.clone()),
                    Value::from(meter.clone()),
                    Value::from(*day),
                    Value::from(total.to_string()),
                    Value::from(total_records as i64),
                ]);
                insert
            };
            txn.execute_raw(std::mem::replace(&mut write, self.sql("")).build())
                .await?;
        }
        txn.commit().await?;
        Ok(Received::Stored)
    }

    /// Every total (of one billing subscription, if given), ordered by its key.
    pub async fn totals(&self, billing: Option<&str>) -> Result<Vec<Total>, StoreError> {
        let mut select = self.sql(
            "SELECT billing_subscription_id, meter_id, usage_day, quantity, records \
             FROM receiver_total",
        );
        if let Some(billing) = billing {
            select
                .push(" WHERE billing_subscription_id = ")
                .bind(billing.to_string());
        }
        select.push(" ORDER BY billing_subscription_id, meter_id, usage_day");
        self.db
            .reader()
            .query_all_raw(select.build())
            .await?
            .iter()
            .map(|row| {
                let quantity: String = row.try_get_by_index(3)?;
                Ok(Total {
                    billing_subscription_id: row.try_get_by_index(0)?,
                    meter_id: row.try_get_by_index(1)?,
                    usage_day: row.try_get_by_index(2)?,
                    quantity: quantity
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("total {quantity:?}: {e}")))?,
                    records: row.try_get_by_index::<i64>(4)? as u64,
                })
            })
            .collect()
    }

    /// Batches and records stored.
    pub async fn counts(&self) -> Result<(u64, u64), StoreError> {
        let select = self.sql("SELECT COUNT(*), COALESCE(SUM(records), 0) FROM receiver_batch");
        let row = self
            .db
            .reader()
            .query_one_raw(select.build())
            .await?
            .ok_or_else(|| StoreError::Corrupt("no count".into()))?;
        let batches: i64 = row.try_get_by_index(0)?;
        let records: i64 = row.try_get_by_index(1)?;
        Ok((batches as u64, records as u64))
    }
}
