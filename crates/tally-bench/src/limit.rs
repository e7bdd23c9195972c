//! The storage limit: the fastest plain bulk insert of the same rows into the same table with the
//! same indexes, without Tally in the way. SQLite: one prepared (multi-row) statement inside one
//! transaction. PostgreSQL: COPY.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sea_orm::sqlx::{self, Connection as _};
use tally_core::{MeterCatalog, UsageRecordInput, validate_batch};

use crate::workload::{BATCH, Workload};

/// A stored record as the usage service writes it.
struct Row {
    id: i64,
    event_key: [u8; 16],
    content_hash: i64,
    subscription_key: i32,
    meter_key: i32,
    instance_key: i64,
    usage_start: i64,
    usage_end: i64,
    units: i64,
    fraction: i64,
}

/// The rows of batch `number`, keyed as the server keys them.
fn rows(
    workload: &Workload,
    catalog: &MeterCatalog,
    meter_keys: &[(uuid::Uuid, i32)],
    number: usize,
    total: usize,
) -> Vec<Row> {
    let batch = workload.batch(number, total);
    let inputs: Vec<UsageRecordInput> = batch.records.into_iter().map(Into::into).collect();
    let now = chrono::Utc::now();
    let valid =
        validate_batch(inputs, |m| catalog.contains(m), now).expect("the workload is valid");
    valid
        .records
        .iter()
        .enumerate()
        .map(|(ordinal, r)| {
            let resource = number * BATCH + ordinal;
            let pair = &workload.pairs[resource % workload.pairs.len()];
            Row {
                id: ((number as i64) + 1) << 14 | ordinal as i64,
                event_key: r.event_key(),
                content_hash: r.content_hash(),
                subscription_key: pair.subscription as i32 + 1,
                meter_key: meter_keys
                    .iter()
                    .find(|(id, _)| *id == r.meter_id)
                    .map(|(_, k)| *k)
                    .unwrap_or(0),
                instance_key: pair.resource as i64 + 1,
                usage_start: tally_core::record::unix_nanos(r.usage_start),
                usage_end: tally_core::record::unix_nanos(r.usage_end),
                units: r.quantity.units() as i64,
                fraction: r.quantity.fraction() as i64,
            }
        })
        .collect()
}

fn meter_keys(catalog: &MeterCatalog) -> Vec<(uuid::Uuid, i32)> {
    catalog
        .sorted()
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i as i32 + 1))
        .collect()
}

const COLUMNS: &str = "id, event_key, content_hash, subscription_key, meter_key, instance_key, usage_start, usage_end, qty_units, qty_frac";
const ROWS_PER_STATEMENT: usize = 100;

/// Bulk-inserts `total` rows into a freshly migrated SQLite database at `url`.
pub async fn sqlite(url: &str, workload: &Workload, total: usize) -> anyhow::Result<Duration> {
    let db = tally_store::Database::open(url).await?;
    db.migrate::<tally_migrations::UsageMigrator>().await?;
    db.close().await;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .pragma("cache_size", "-65536");
    let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options).await?;
    let catalog = MeterCatalog::with_built_ins();
    let keys = meter_keys(&catalog);
    let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; ROWS_PER_STATEMENT].join(", ");
    let full = format!("INSERT INTO usage_record ({COLUMNS}) VALUES {placeholders}");
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    for number in 0..total.div_ceil(BATCH) {
        let rows = rows(workload, &catalog, &keys, number, total);
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = if chunk.len() == ROWS_PER_STATEMENT {
                full.clone()
            } else {
                format!(
                    "INSERT INTO usage_record ({COLUMNS}) VALUES {}",
                    vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
                )
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                query = query
                    .bind(r.id)
                    .bind(r.event_key.to_vec())
                    .bind(r.content_hash)
                    .bind(r.subscription_key)
                    .bind(r.meter_key)
                    .bind(r.instance_key)
                    .bind(r.usage_start)
                    .bind(r.usage_end)
                    .bind(r.units)
                    .bind(r.fraction);
            }
            query.execute(&mut *tx).await.context("bulk insert")?;
        }
    }
    tx.commit().await?;
    Ok(started.elapsed())
}

/// COPYs `total` rows into a freshly migrated PostgreSQL database at `url`.
pub async fn postgres(url: &str, workload: &Workload, total: usize) -> anyhow::Result<Duration> {
    let db = tally_store::Database::open(url).await?;
    db.migrate::<tally_migrations::UsageMigrator>().await?;
    db.close().await;
    let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
    let catalog = MeterCatalog::with_built_ins();
    let keys = meter_keys(&catalog);
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY usage_record ({COLUMNS}) FROM STDIN WITH (FORMAT text)"
        ))
        .await?;
    let mut buffer = String::with_capacity(1 << 20);
    for number in 0..total.div_ceil(BATCH) {
        for r in rows(workload, &catalog, &keys, number, total) {
            let mut hex = String::with_capacity(32);
            for b in r.event_key {
                let _ = write!(hex, "{b:02x}");
            }
            let _ = writeln!(
                buffer,
                "{}\t\\\\x{hex}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                r.id,
                r.content_hash,
                r.subscription_key,
                r.meter_key,
                r.instance_key,
                r.usage_start,
                r.usage_end,
                r.units,
                r.fraction
            );
        }
        if buffer.len() > (1 << 20) {
            copy.send(buffer.as_bytes()).await?;
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_bytes()).await?;
    }
    copy.finish().await?;
    Ok(started.elapsed())
}
