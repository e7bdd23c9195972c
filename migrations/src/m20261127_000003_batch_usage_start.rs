//! The earliest usage time of each batch, so the fold learns how late records arrive from the
//! batch rows alone, without scanning the records again. Batches stored before this migration
//! have none, and the fold scans their records instead.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[allow(elided_lifetimes_in_paths)] // the trait is declared that way
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            ["ALTER TABLE usage_batch ADD COLUMN min_usage_start BIGINT"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            ["ALTER TABLE usage_batch DROP COLUMN min_usage_start"],
        )
        .await
    }
}
