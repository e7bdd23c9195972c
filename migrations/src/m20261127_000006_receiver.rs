//! The reference commerce receiver's tables: each batch received, by id, with a digest of its
//! content for deduplication (`receiver_batch`), and the running totals per billing subscription,
//! meter and usage day (`receiver_total`, quantities as exact decimal text).

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
                "CREATE TABLE receiver_batch (batch_id TEXT PRIMARY KEY, digest TEXT NOT NULL, \
                 records INTEGER NOT NULL, reported_day BIGINT NOT NULL, received_at BIGINT NOT NULL)",
                "CREATE TABLE receiver_total (billing_subscription_id TEXT NOT NULL, \
                 meter_id TEXT NOT NULL, usage_day BIGINT NOT NULL, quantity TEXT NOT NULL, \
                 records BIGINT NOT NULL, \
                 PRIMARY KEY (billing_subscription_id, meter_id, usage_day))",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            ["DROP TABLE receiver_total", "DROP TABLE receiver_batch"],
        )
        .await
    }
}
