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
//!
//! The statements are written once; what differs between SQLite and PostgreSQL is the
//! [`Dialect`]. Existing databases have applied this migration, so its output must never change:
//! a test pins it.

use sea_orm_migration::prelude::*;

use crate::Engine;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Everything the two engines spell differently in this migration.
struct Dialect {
    /// A 32-bit dictionary key the database assigns.
    key: &'static str,
    /// A 64-bit key the database assigns.
    wide_key: &'static str,
    /// A 64-bit id the service assigns (the record id). On SQLite an `INTEGER PRIMARY KEY` is the
    /// rowid itself, so a batch's records are one range of the table's own b-tree.
    assigned_id: &'static str,
    /// A column holding a 64-bit key (SQLite's INTEGER is 64 bits already).
    wide_integer: &'static str,
    bytes: &'static str,
    /// Options of the aggregate tables: SQLite stores them in their primary key's order
    /// (`WITHOUT ROWID`), as PostgreSQL's index-only scans read them.
    aggregate_options: &'static str,
}

const SQLITE: Dialect = Dialect {
    key: "INTEGER PRIMARY KEY",
    wide_key: "INTEGER PRIMARY KEY",
    assigned_id: "INTEGER PRIMARY KEY",
    wide_integer: "INTEGER",
    bytes: "BLOB",
    aggregate_options: " WITHOUT ROWID",
};

const POSTGRES: Dialect = Dialect {
    key: "SERIAL PRIMARY KEY",
    wide_key: "BIGSERIAL PRIMARY KEY",
    assigned_id: "BIGINT PRIMARY KEY",
    wide_integer: "BIGINT",
    bytes: "BYTEA",
    aggregate_options: "",
};

/// The aggregate tables, one per granularity, alike but for their names.
const AGGREGATES: [&str; 2] = ["usage_hourly", "usage_daily"];

fn statements(d: &Dialect) -> Vec<String> {
    let Dialect {
        key,
        wide_key,
        assigned_id,
        wide_integer,
        bytes,
        aggregate_options,
    } = d;
    let mut statements = vec![
        format!(
            "CREATE TABLE usage_meter (
        key {key},
        meter_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        unit TEXT NOT NULL,
        resource_provider TEXT NOT NULL,
        chargeable BOOLEAN NOT NULL,
        deprecated BOOLEAN NOT NULL,
        built_in BOOLEAN NOT NULL
    )"
        ),
        format!(
            "CREATE TABLE usage_subscription (
        key {key},
        subscription_id TEXT NOT NULL UNIQUE
    )"
        ),
        format!(
            "CREATE TABLE usage_instance (
        key {wide_key},
        fingerprint {bytes} NOT NULL UNIQUE,
        resource_uri TEXT NOT NULL,
        location TEXT NOT NULL,
        tags TEXT NOT NULL,
        additional_info TEXT NOT NULL
    )"
        ),
        format!(
            "CREATE TABLE usage_batch (
        id {wide_key},
        reported_at BIGINT NOT NULL,
        record_count INTEGER NOT NULL,
        folded BOOLEAN NOT NULL
    )"
        ),
        "CREATE INDEX usage_batch_unfolded ON usage_batch (id) WHERE folded = FALSE".to_string(),
        format!(
            "CREATE TABLE usage_record (
        id {assigned_id},
        event_key {bytes} NOT NULL,
        content_hash BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key {wide_integer} NOT NULL,
        usage_start BIGINT NOT NULL,
        usage_end BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL
    )"
        ),
        "CREATE UNIQUE INDEX usage_record_event_key ON usage_record (event_key)".to_string(),
    ];
    for table in AGGREGATES {
        statements.push(format!(
            "CREATE TABLE {table} (
        usage_bucket BIGINT NOT NULL,
        subscription_key INTEGER NOT NULL,
        meter_key INTEGER NOT NULL,
        instance_key {wide_integer} NOT NULL,
        reported_bucket BIGINT NOT NULL,
        qty_units BIGINT NOT NULL,
        qty_frac BIGINT NOT NULL,
        PRIMARY KEY (usage_bucket, subscription_key, meter_key, instance_key, reported_bucket)
    ){aggregate_options}"
        ));
        statements.push(format!(
            "CREATE INDEX {table}_by_subscription ON {table}
        (subscription_key, usage_bucket, meter_key, instance_key, reported_bucket)"
        ));
    }
    statements.push(format!(
        "CREATE TABLE usage_pipeline (
        id INTEGER PRIMARY KEY,
        horizon BIGINT NOT NULL,
        complete_through BIGINT NOT NULL,
        records_folded BIGINT NOT NULL,
        max_lateness_hourly BIGINT NOT NULL,
        max_lateness_daily BIGINT NOT NULL,
        token_secret {bytes}
    )"
    ));
    statements.push("INSERT INTO usage_pipeline VALUES (1, 0, 0, 0, 0, 0, NULL)".to_string());
    statements
}

fn dialect(engine: Engine) -> &'static Dialect {
    match engine {
        Engine::Sqlite => &SQLITE,
        Engine::Postgres => &POSTGRES,
    }
}

#[allow(elided_lifetimes_in_paths)] // the trait is declared that way
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let engine = crate::engine(manager)?;
        crate::execute(manager, statements(dialect(engine))).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute(
            manager,
            [
                "DROP TABLE usage_pipeline",
                "DROP TABLE usage_daily",
                "DROP TABLE usage_hourly",
                "DROP TABLE usage_record",
                "DROP TABLE usage_batch",
                "DROP TABLE usage_instance",
                "DROP TABLE usage_subscription",
                "DROP TABLE usage_meter",
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a over the statements, each followed by a NUL.
    fn fingerprint(statements: &[String]) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in statements.join("\0").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// Databases in the field applied these exact statements (the migration as first released,
    /// when they were written out once per engine); SQLite even keeps their text in
    /// `sqlite_master`. Any change belongs in a new migration.
    #[test]
    fn statements_are_those_already_applied() {
        assert_eq!(fingerprint(&statements(&SQLITE)), 0xd3e1_2dc6_d43a_674e);
        assert_eq!(fingerprint(&statements(&POSTGRES)), 0xfe38_b745_ad04_7a6c);
    }

    #[test]
    fn the_engines_differ_only_where_the_dialect_says() {
        let sqlite = statements(&SQLITE);
        let postgres = statements(&POSTGRES);
        assert_eq!(sqlite.len(), postgres.len());
        let differing = sqlite.iter().zip(&postgres).filter(|(s, p)| s != p).count();
        // Every table differs (keys, bytes, options); the indexes and the pipeline row do not.
        assert_eq!(differing, 8);
        assert!(
            sqlite
                .iter()
                .all(|s| !s.contains("SERIAL") && !s.contains("BYTEA"))
        );
        assert!(
            postgres
                .iter()
                .all(|s| !s.contains("BLOB") && !s.contains("ROWID"))
        );
    }
}
