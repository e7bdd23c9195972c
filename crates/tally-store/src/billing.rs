//! The billing service's tables: price sheet versions and adjustments (written once, never
//! updated), and the final statements of closed periods (stored once per period, in one
//! transaction with the period's closed marker). Values are plain text and integers; the billing
//! service owns their meaning.

use sea_orm::{ConnectionTrait, QueryResult, TransactionTrait, Value};
use tally_migrations::BillingMigrator;

use crate::db::Database;
use crate::error::StoreError;
use crate::sql::Sql;

/// A stored price sheet version. Times are microseconds since the epoch, UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceSheetRow {
    pub price_sheet_id: String,
    pub name: String,
    pub currency: String,
    pub tenant_id: String,
    pub effective_from: i64,
    pub created_time: i64,
    /// The meter prices, as the service encodes them (JSON).
    pub prices: String,
}

/// A stored adjustment. `amount` is an exact decimal as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjustmentRow {
    pub adjustment_id: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub billing_period: String,
    pub amount: String,
    pub reason: String,
    pub created_by: String,
    pub created_time: i64,
}

#[derive(Debug)]
pub struct BillingStore {
    db: Database,
}

fn text(row: &QueryResult, column: &str) -> Result<String, StoreError> {
    row.try_get::<String>("", column)
        .map_err(|e| StoreError::Corrupt(format!("billing column {column}: {e}")))
}

fn number(row: &QueryResult, column: &str) -> Result<i64, StoreError> {
    row.try_get::<i64>("", column)
        .map_err(|e| StoreError::Corrupt(format!("billing column {column}: {e}")))
}

impl BillingStore {
    pub async fn open(url: &str) -> Result<BillingStore, StoreError> {
        let db = Database::open(url).await?;
        db.migrate::<BillingMigrator>().await?;
        Ok(BillingStore { db })
    }

    /// Whether the billing database answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.db.backend(), text)
    }

    pub async fn insert_price_sheet(&self, sheet: &PriceSheetRow) -> Result<(), StoreError> {
        let mut sql = self.sql("INSERT INTO billing_price_sheet (price_sheet_id, name, currency, tenant_id, effective_from, created_time, prices) VALUES ");
        sql.bind_tuple([
            Value::from(sheet.price_sheet_id.clone()),
            Value::from(sheet.name.clone()),
            Value::from(sheet.currency.clone()),
            Value::from(sheet.tenant_id.clone()),
            Value::from(sheet.effective_from),
            Value::from(sheet.created_time),
            Value::from(sheet.prices.clone()),
        ]);
        self.db.writer().execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Every price sheet version, oldest first (by creation, then id).
    pub async fn price_sheets(&self) -> Result<Vec<PriceSheetRow>, StoreError> {
        let sql = self.sql(
            "SELECT price_sheet_id, name, currency, tenant_id, effective_from, created_time, prices \
             FROM billing_price_sheet ORDER BY created_time, price_sheet_id",
        );
        let rows = self.db.reader().query_all_raw(sql.build()).await?;
        rows.iter()
            .map(|row| {
                Ok(PriceSheetRow {
                    price_sheet_id: text(row, "price_sheet_id")?,
                    name: text(row, "name")?,
                    currency: text(row, "currency")?,
                    tenant_id: text(row, "tenant_id")?,
                    effective_from: number(row, "effective_from")?,
                    created_time: number(row, "created_time")?,
                    prices: text(row, "prices")?,
                })
            })
            .collect()
    }

    pub async fn insert_adjustment(&self, adjustment: &AdjustmentRow) -> Result<(), StoreError> {
        let mut sql = self.sql("INSERT INTO billing_adjustment (adjustment_id, tenant_id, subscription_id, billing_period, amount, reason, created_by, created_time) VALUES ");
        sql.bind_tuple([
            Value::from(adjustment.adjustment_id.clone()),
            Value::from(adjustment.tenant_id.clone()),
            Value::from(adjustment.subscription_id.clone()),
            Value::from(adjustment.billing_period.clone()),
            Value::from(adjustment.amount.clone()),
            Value::from(adjustment.reason.clone()),
            Value::from(adjustment.created_by.clone()),
            Value::from(adjustment.created_time),
        ]);
        self.db.writer().execute_raw(sql.build()).await?;
        Ok(())
    }

    /// The adjustments of `billing_period` (of one tenant if given), oldest first.
    pub async fn adjustments(
        &self,
        billing_period: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<AdjustmentRow>, StoreError> {
        let mut sql = self.sql(
            "SELECT adjustment_id, tenant_id, subscription_id, billing_period, amount, reason, \
             created_by, created_time FROM billing_adjustment WHERE billing_period = ",
        );
        sql.bind(billing_period.to_string());
        if let Some(tenant_id) = tenant_id {
            sql.push(" AND tenant_id = ").bind(tenant_id.to_string());
        }
        sql.push(" ORDER BY created_time, adjustment_id");
        let rows = self.db.reader().query_all_raw(sql.build()).await?;
        rows.iter()
            .map(|row| {
                Ok(AdjustmentRow {
                    adjustment_id: text(row, "adjustment_id")?,
                    tenant_id: text(row, "tenant_id")?,
                    subscription_id: text(row, "subscription_id")?,
                    billing_period: text(row, "billing_period")?,
                    amount: text(row, "amount")?,
                    reason: text(row, "reason")?,
                    created_by: text(row, "created_by")?,
                    created_time: number(row, "created_time")?,
                })
            })
            .collect()
    }

    /// Whether the final statements of `billing_period` are stored.
    pub async fn is_closed(&self, billing_period: &str) -> Result<bool, StoreError> {
        let mut sql =
            self.sql("SELECT closed_time FROM billing_closed_period WHERE billing_period = ");
        sql.bind(billing_period.to_string());
        Ok(self.db.reader().query_one_raw(sql.build()).await?.is_some())
    }

    /// Stores the final statements of `billing_period` (tenant id, body) and its closed marker,
    /// in one transaction. Returns false (storing nothing) if they were stored already: final
    /// statements are stored once.
    pub async fn store_final_statements(
        &self,
        billing_period: &str,
        closed_time: i64,
        statements: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let txn = self.db.writer().begin().await?;
        let mut marker =
            self.sql("INSERT INTO billing_closed_period (billing_period, closed_time) VALUES ");
        marker
            .bind_tuple([
                Value::from(billing_period.to_string()),
                Value::from(closed_time),
            ])
            .push(" ON CONFLICT (billing_period) DO NOTHING");
        if txn.execute_raw(marker.build()).await?.rows_affected() == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        for chunk in statements.chunks(200) {
            let mut sql =
                self.sql("INSERT INTO billing_statement (billing_period, tenant_id, body) VALUES ");
            sql.bind_tuples(chunk.iter().map(|(tenant_id, body)| {
                [
                    Value::from(billing_period.to_string()),
                    Value::from(tenant_id.clone()),
                    Value::from(body.clone()),
                ]
            }));
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// The stored final statement of one tenant, if any.
    pub async fn final_statement(
        &self,
        billing_period: &str,
        tenant_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut sql = self.sql("SELECT body FROM billing_statement WHERE billing_period = ");
        sql.bind(billing_period.to_string())
            .push(" AND tenant_id = ")
            .bind(tenant_id.to_string());
        match self.db.reader().query_one_raw(sql.build()).await? {
            Some(row) => Ok(Some(text(&row, "body")?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` stored final statements of `billing_period` after tenant `after`, by
    /// tenant id: (tenant id, body).
    pub async fn final_statements(
        &self,
        billing_period: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut sql =
            self.sql("SELECT tenant_id, body FROM billing_statement WHERE billing_period = ");
        sql.bind(billing_period.to_string());
        if let Some(after) = after {
            sql.push(" AND tenant_id > ").bind(after.to_string());
        }
        sql.push(&format!(" ORDER BY tenant_id LIMIT {limit}"));
        let rows = self.db.reader().query_all_raw(sql.build()).await?;
        rows.iter()
            .map(|row| Ok((text(row, "tenant_id")?, text(row, "body")?)))
            .collect()
    }
}
