//! The billing service's tables: immutable price sheet versions, immutable adjustments, and the
//! final statements of closed periods, stored once (with a marker row saying the period's
//! statements are all there). Rows are written once and never updated.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[allow(elided_lifetimes_in_paths)] // the trait is declared that way
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            [
                // Times are microseconds since the Unix epoch, UTC. `prices` is the sheet's
                // meter prices as JSON (exact decimals as strings).
                "CREATE TABLE billing_price_sheet (
                    price_sheet_id TEXT NOT NULL PRIMARY KEY,
                    name TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    tenant_id TEXT NOT NULL,
                    effective_from BIGINT NOT NULL,
                    created_time BIGINT NOT NULL,
                    prices TEXT NOT NULL
                )",
                "CREATE TABLE billing_adjustment (
                    adjustment_id TEXT NOT NULL PRIMARY KEY,
                    tenant_id TEXT NOT NULL,
                    subscription_id TEXT NOT NULL,
                    billing_period TEXT NOT NULL,
                    amount TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    created_time BIGINT NOT NULL
                )",
                "CREATE INDEX billing_adjustment_period ON billing_adjustment (billing_period, tenant_id)",
                // `body` is the encoded final statement, exactly as answered forever.
                "CREATE TABLE billing_statement (
                    billing_period TEXT NOT NULL,
                    tenant_id TEXT NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (billing_period, tenant_id)
                )",
                "CREATE TABLE billing_closed_period (
                    billing_period TEXT NOT NULL PRIMARY KEY,
                    closed_time BIGINT NOT NULL
                )",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            [
                "DROP TABLE billing_closed_period",
                "DROP TABLE billing_statement",
                "DROP TABLE billing_adjustment",
                "DROP TABLE billing_price_sheet",
            ],
        )
        .await
    }
}
