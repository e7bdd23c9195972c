//! The usage bridge's tables: where sealing has got to (`bridge_cursor`, one row), each reported
//! day it sealed or skipped with the registration it was sealed under (`bridge_day`), and each
//! sealed batch with its records as uploaded and its delivery state (`bridge_batch`).

use sea_orm_migration::prelude::*;

use crate::Engine;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[allow(elided_lifetimes_in_paths)] // the trait is declared that way
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bytes = match crate::engine(manager)? {
            Engine::Sqlite => "BLOB",
            Engine::Postgres => "BYTEA",
        };
        crate::execute(
            manager,
            [
                "CREATE TABLE bridge_cursor (id INTEGER PRIMARY KEY, next_day BIGINT NOT NULL)"
                    .to_string(),
                "CREATE TABLE bridge_day (reported_day BIGINT PRIMARY KEY, state TEXT NOT NULL, \
                 reason TEXT NOT NULL, batch_count INTEGER NOT NULL, cloud_id TEXT NOT NULL, \
                 registration_name TEXT NOT NULL, billing_model INTEGER NOT NULL, \
                 sealed_at BIGINT NOT NULL)"
                    .to_string(),
                format!(
                    "CREATE TABLE bridge_batch (batch_id TEXT PRIMARY KEY, \
                     reported_day BIGINT NOT NULL, batch_index INTEGER NOT NULL, \
                     records INTEGER NOT NULL, payload {bytes} NOT NULL, state TEXT NOT NULL, \
                     attempts INTEGER NOT NULL, last_error TEXT NOT NULL, acknowledged_at BIGINT)"
                ),
                "CREATE UNIQUE INDEX bridge_batch_order ON bridge_batch (reported_day, batch_index)"
                    .to_string(),
                "CREATE INDEX bridge_batch_state ON bridge_batch (state, reported_day, batch_index)"
                    .to_string(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            [
                "DROP TABLE bridge_batch",
                "DROP TABLE bridge_day",
                "DROP TABLE bridge_cursor",
            ],
        )
        .await
    }
}
