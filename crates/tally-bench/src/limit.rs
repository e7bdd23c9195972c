//! The storage limit: the fastest plain bulk insert of the same rows into the same table with the
//! same indexes, without Tally in the way. SQLite: one prepared (multi-row) statement inside one
//! transaction. PostgreSQL: COPY.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sea_orm::sqlx::{self, Connection as _};
use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

use crate::workload::{BATCH, Workload};

/// A stored record, shaped as the usage service writes it.
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

/// The rows of batch `number`: the workload's records keyed as the server keys them, made
/// directly (no validation, no protobuf) so the measurement is the database's work.
fn rows(
    workload: &Workload,
    meter_keys: &HashMap<&'static str, i32>,
    number: usize,
    total: usize,
) -> Vec<Row> {
    let start = number * BATCH;
    (start..(start + BATCH).min(total))
        .map(|index| {
            let pair = &workload.pairs[index % workload.pairs.len()];
            let hour = workload.hour(index);
            let event_id = format!(
                "res-{:05}/{}/{}",
                pair.resource,
                &pair.meter[..8],
                hour.timestamp()
            );
            let start_nanos = tally_store::usage::UnixNanos::of(hour).stored();
            Row {
                id: tally_store::usage::RecordId::new(number as i64 + 1, index - start).stored(),
                event_key: tally_core::record::event_key(&event_id),
                content_hash: xxh3_64(event_id.as_bytes()) as i64,
                subscription_key: pair.subscription as i32 + 1,
                meter_key: meter_keys[pair.meter],
                instance_key: pair.resource as i64 + 1,
                usage_start: start_nanos,
                usage_end: start_nanos + 3_600_000_000_000,
                units: (index % 17) as i64,
                fraction: (index % 9_999) as i64 * 1_000_000,
            }
        })
        .collect()
}

fn meter_keys(workload: &Workload) -> HashMap<&'static str, i32> {
    let mut keys = HashMap::new();
    for pair in &workload.pairs {
        let next = keys.len() as i32 + 1;
        keys.entry(pair.meter).or_insert(next);
    }
    keys
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
    let keys = meter_keys(workload);
    let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; ROWS_PER_STATEMENT].join(", ");
    let full = format!("INSERT INTO usage_record ({COLUMNS}) VALUES {placeholders}");
    let mut elapsed = Duration::ZERO;
    let mut started = Instant::now();
    let mut tx = conn.begin().await?;
    for number in 0..total.div_ceil(BATCH) {
        elapsed += started.elapsed();
        let rows = rows(workload, &keys, number, total);
        started = Instant::now();
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
    Ok(elapsed + started.elapsed())
}

/// COPYs `total` rows into a freshly migrated PostgreSQL database at `url`.
pub async fn postgres(url: &str, workload: &Workload, total: usize) -> anyhow::Result<Duration> {
    let db = tally_store::Database::open(url).await?;
    db.migrate::<tally_migrations::UsageMigrator>().await?;
    db.close().await;
    let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
    let keys = meter_keys(workload);
    let mut elapsed = Duration::ZERO;
    let mut started = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY usage_record ({COLUMNS}) FROM STDIN WITH (FORMAT text)"
        ))
        .await?;
    let mut buffer = String::with_capacity(1 << 20);
    for number in 0..total.div_ceil(BATCH) {
        elapsed += started.elapsed();
        let rows = rows(workload, &keys, number, total);
        started = Instant::now();
        for r in rows {
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
    Ok(elapsed + started.elapsed())
}
