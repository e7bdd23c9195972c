//! The usage database: raw records, their batches, dictionaries and the hourly and daily
//! aggregates.
//!
//! Shape, and why:
//! - `usage_record` is narrow: a 16-byte event key (hash of the event id) for idempotency, integer
//!   keys for subscription, meter and instance, integer times and an exact quantity split into
//!   whole units and a 10^-10 fraction. Its id is `batch_id << 14 | ordinal`, so a batch's records
//!   are one id range, found without another index (on SQLite the id is the rowid itself).
//! - `usage_batch` carries the server-assigned reported time once per batch and the `folded`
//!   flag; the fold marks batches, not a high-water mark, so transactions that commit out of
//!   order are never skipped.
//! - `usage_hourly` / `usage_daily` are keyed by the contract's row (usage bucket, subscription,
//!   meter, instance) plus the reported bucket, so any aligned reported window is answered from
//!   aggregates. Quantities are `qty_units` + `qty_frac` (< 10^10), added exactly with a carry.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE: &[&str] = &[
    "CREATE TABLE usage_meter (
        key INTEGER PRIMARY KEY,
        meter_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        unit TEXT NOT NULL,
        resource_provider TEXT NOT NULL,
        chargeable BOOLEAN NOT NULL,
        deprecated BOOLEAN NOT NULL,
        built_in BOOLEAN NOT NULL
    )",
    "CREATE TABLE usage_subscription (
        key INTEGER PRIMARY KEY,
        subscription_id TEXT NOT NULL UNIQUE
    )",
    "CREATE TABLE usage_instance (
        key INTEGER PRIMARY KEY,
        fingerprint BLOB NOT NULL UNIQUE,
        resource_uri TEXT NOT NULL,
        location TEXT NOT NULL,
        tags TEXT NOT NULL,
        additional_info TEXT NOT NULL
    )",
    "CREATE TABLE usage_batch (
        id INTEGER PRIMARY KEY,
        reported_at BIGINT NOT NULL,
        record_count INTEGER NOT NULL,
        folded BOOLEAN NOT NULL
    )",
    "CREATE INDEX usage_batch_unfolded ON usage_batch (id) WHERE folded = FALSE",
    "CREATE TABLE usage_record (
        id INTEGER PRIMARY KEY,
        event_key BLOB NOT NULL,
        content_hash BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key INTEGER NOT NULL,
        usage_start BIGINT NOT NULL,
        usage_end BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX usage_record_event_key ON usage_record (event_key)",
    "CREATE TABLE usage_hourly (
        usage_bucket BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key INTEGER NOT NULL,
        reported_bucket BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL,
        PRIMARY KEY (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket)
    ) WITHOUT ROWID",
    "CREATE INDEX usage_hourly_by_subscription ON usage_hourly
        (subscription_key, usage_bucket, meter_key, instance_key, reported_bucket)",
    "CREATE TABLE usage_daily (
        usage_bucket BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key INTEGER NOT NULL,
        reported_bucket BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL,
        PRIMARY KEY (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket)
    ) WITHOUT ROWID",
    "CREATE INDEX usage_daily_by_subscription ON usage_daily
        (subscription_key, usage_bucket, meter_key, instance_key, reported_bucket)",
    "CREATE TABLE usage_pipeline (
        id INTEGER PRIMARY KEY,
        horizon BIGINT NOT NULL,
        complete_through BIGINT NOT NULL,
        records_folded BIGINT NOT NULL,
        max_lateness_hourly BIGINT NOT NULL,
        max_lateness_daily BIGINT NOT NULL,
        token_secret BLOB
    )",
    "INSERT INTO usage_pipeline VALUES (1, 0, 0, 0, 0, 0, NULL)",
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE usage_meter (
        key SERIAL PRIMARY KEY,
        meter_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        unit TEXT NOT NULL,
        resource_provider TEXT NOT NULL,
        chargeable BOOLEAN NOT NULL,
        deprecated BOOLEAN NOT NULL,
        built_in BOOLEAN NOT NULL
    )",
    "CREATE TABLE usage_subscription (
        key SERIAL PRIMARY KEY,
        subscription_id TEXT NOT NULL UNIQUE
    )",
    "CREATE TABLE usage_instance (
        key BIGSERIAL PRIMARY KEY,
        fingerprint BYTEA NOT NULL UNIQUE,
        resource_uri TEXT NOT NULL,
        location TEXT NOT NULL,
        tags TEXT NOT NULL,
        additional_info TEXT NOT NULL
    )",
    "CREATE TABLE usage_batch (
        id BIGSERIAL PRIMARY KEY,
        reported_at BIGINT NOT NULL,
        record_count INTEGER NOT NULL,
        folded BOOLEAN NOT NULL
    )",
    "CREATE INDEX usage_batch_unfolded ON usage_batch (id) WHERE folded = FALSE",
    "CREATE TABLE usage_record (
        id BIGINT PRIMARY KEY,
        event_key BYTEA NOT NULL,
        content_hash BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key BIGINT NOT NULL,
        usage_start BIGINT NOT NULL,
        usage_end BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX usage_record_event_key ON usage_record (event_key)",
    "CREATE TABLE usage_hourly (
        usage_bucket BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key BIGINT NOT NULL,
        reported_bucket BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL,
        PRIMARY KEY (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket)
    )",
    "CREATE INDEX usage_hourly_by_subscription ON usage_hourly
        (subscription_key, usage_bucket, meter_key, instance_key, reported_bucket)",
    "CREATE TABLE usage_daily (
        usage_bucket BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key BIGINT NOT NULL,
        reported_bucket BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL,
        PRIMARY KEY (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket)
    )",
    "CREATE INDEX usage_daily_by_subscription ON usage_daily
        (subscription_key, usage_bucket, meter_key, instance_key, reported_bucket)",
    "CREATE TABLE usage_pipeline (
        id INTEGER PRIMARY KEY,
        horizon BIGINT NOT NULL,
        complete_through BIGINT NOT NULL,
        records_folded BIGINT NOT NULL,
        max_lateness_hourly BIGINT NOT NULL,
        max_lateness_daily BIGINT NOT NULL,
        token_secret BYTEA
    )",
    "INSERT INTO usage_pipeline VALUES (1, 0, 0, 0, 0, 0, NULL)",
];

#[allow(elided_lifetimes_in_paths)] // the trait is declared that way
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, SQLITE, POSTGRES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = &[
            "DROP TABLE usage_pipeline",
            "DROP TABLE usage_daily",
            "DROP TABLE usage_hourly",
            "DROP TABLE usage_record",
            "DROP TABLE usage_batch",
            "DROP TABLE usage_instance",
            "DROP TABLE usage_subscription",
            "DROP TABLE usage_meter",
        ];
        crate::run(manager, drop, drop).await
    }
}
