//! The storage limits: the same rows, keyed and encoded as the server stores them
//! ([`StoredRecord`]), inserted into a freshly migrated database (same schema, same connection
//! settings) without Tally in the way. Two figures:
//!
//! - the ceiling: the fastest bulk load there is, all rows in one transaction (SQLite: multi-row
//!   prepared statements) or one `COPY` (PostgreSQL);
//! - the limit at the server's commit granularity: what the server's own transactions cost the
//!   database, committed durably as often as the server commits. Each batch of 1,000 records
//!   inserts its `usage_batch` row and its records with the event-key conflict check
//!   (`ON CONFLICT (event_key) DO NOTHING`). SQLite: a batch per savepoint, a commit per group of
//!   the largest size the server commits together; PostgreSQL: a transaction per batch, records
//!   as one `INSERT .. SELECT FROM UNNEST`. One connection, one batch after another.
//!
//! Generating the rows is not timed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sea_orm::sqlx::{self, Connection as _};
use tally_store::usage::{
    DictionaryKeys, RECORD_COLUMNS, RecordId, SQLITE_MAX_GROUP_RECORDS, StoredRecord, UnixMicros,
};

use crate::workload::{BATCH, Workload};

/// The rows of batch `number` (records `number * BATCH ..`, cut short at `total`), stored as
/// batch `number + 1` (batch ids start at 1 in a fresh database). Dictionary keys are numbered
/// as a fresh server would number them, roughly; their values do not change the cost.
fn rows(
    workload: &Workload,
    meter_keys: &HashMap<&str, i32>,
    number: usize,
    total: usize,
) -> Vec<StoredRecord> {
    let start = number * BATCH;
    (start..(start + BATCH).min(total))
        .map(|index| {
            let pair = &workload.pairs[index % workload.pairs.len()];
            StoredRecord::new(
                RecordId::new(number as i64 + 1, index - start),
                &workload.usage_record(index),
                DictionaryKeys {
                    subscription: pair.subscription as i32 + 1,
                    meter: meter_keys[pair.meter],
                    instance: pair.resource as i64 + 1,
                },
            )
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

/// A stopwatch that runs only while the database works.
struct Stopwatch {
    elapsed: Duration,
    started: Option<Instant>,
}

impl Stopwatch {
    fn new() -> Self {
        Stopwatch {
            elapsed: Duration::ZERO,
            started: None,
        }
    }

    fn start(&mut self) {
        self.started = Some(Instant::now());
    }

    fn stop(&mut self) {
        if let Some(started) = self.started.take() {
            self.elapsed += started.elapsed();
        }
    }
}

async fn migrate(url: &str) -> anyhow::Result<()> {
    let db = tally_store::Database::open(url).await?;
    db.migrate::<tally_migrations::UsageMigrator>().await?;
    db.close().await;
    Ok(())
}

/// `INSERT INTO usage_record .. VALUES` of `rows` rows, with SQLite placeholders.
fn sqlite_insert(rows: usize, on_conflict: bool) -> String {
    let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
    let conflict = if on_conflict {
        " ON CONFLICT (event_key) DO NOTHING"
    } else {
        ""
    };
    format!("INSERT INTO usage_record ({RECORD_COLUMNS}) VALUES {placeholders}{conflict}")
}

async fn sqlite_execute_values(
    conn: &mut sqlx::SqliteConnection,
    rows: &[StoredRecord],
    on_conflict: bool,
) -> anyhow::Result<u64> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sqlite_insert(rows.len(), on_conflict)));
    for r in rows {
        query = query
            .bind(r.id.stored())
            .bind(r.event_key.to_vec())
            .bind(r.content_hash)
            .bind(r.keys.subscription)
            .bind(r.keys.meter)
            .bind(r.keys.instance)
            .bind(r.usage_start.stored())
            .bind(r.usage_end.stored())
            .bind(r.quantity.units)
            .bind(r.quantity.fraction);
    }
    Ok(query
        .execute(conn)
        .await
        .context("insert records")?
        .rows_affected())
}

/// Rows per statement of the SQLite ceiling.
const CEILING_ROWS_PER_STATEMENT: usize = 100;

/// SQLite ceiling: `total` rows in one transaction.
pub async fn sqlite_ceiling(
    url: &str,
    workload: &Workload,
    total: usize,
) -> anyhow::Result<Duration> {
    migrate(url).await?;
    let mut conn = sqlx::SqliteConnection::connect_with(&tally_store::sqlite_options(url)?).await?;
    let keys = meter_keys(workload);
    let mut clock = Stopwatch::new();
    clock.start();
    let mut tx = conn.begin().await?;
    for number in 0..total.div_ceil(BATCH) {
        clock.stop();
        let rows = rows(workload, &keys, number, total);
        clock.start();
        for chunk in rows.chunks(CEILING_ROWS_PER_STATEMENT) {
            sqlite_execute_values(&mut tx, chunk, false).await?;
        }
    }
    tx.commit().await?;
    clock.stop();
    conn.close().await?;
    Ok(clock.elapsed)
}

/// SQLite at the server's granularity: each batch in a savepoint (its `usage_batch` row, its
/// records with the conflict check), a durable commit per [`SQLITE_MAX_GROUP_RECORDS`] records.
pub async fn sqlite_at_server_commits(
    url: &str,
    workload: &Workload,
    total: usize,
    reported_at: UnixMicros,
) -> anyhow::Result<Duration> {
    migrate(url).await?;
    let mut conn = sqlx::SqliteConnection::connect_with(&tally_store::sqlite_options(url)?).await?;
    let keys = meter_keys(workload);
    let batches_per_group = (SQLITE_MAX_GROUP_RECORDS / BATCH).max(1);
    let batches: Vec<usize> = (0..total.div_ceil(BATCH)).collect();
    let mut clock = Stopwatch::new();
    for group in batches.chunks(batches_per_group) {
        let prepared: Vec<Vec<StoredRecord>> = group
            .iter()
            .map(|number| rows(workload, &keys, *number, total))
            .collect();
        clock.start();
        let mut tx = conn.begin().await?;
        for (number, rows) in group.iter().zip(&prepared) {
            let mut savepoint = tx.begin().await?;
            let batch_id = sqlx::query(
                "INSERT INTO usage_batch (reported_at, record_count, folded, min_usage_start) VALUES (?, ?, FALSE, ?)",
            )
            .bind(reported_at.stored())
            .bind(rows.len() as i32)
            .bind(min_usage_start(rows))
            .execute(&mut *savepoint)
            .await?
            .last_insert_rowid();
            check_batch_id(batch_id, *number)?;
            for chunk in rows.chunks(tally_store::usage::SQLITE_RECORDS_PER_INSERT) {
                sqlite_execute_values(&mut savepoint, chunk, true).await?;
            }
            savepoint.commit().await?;
        }
        tx.commit().await?;
        clock.stop();
    }
    conn.close().await?;
    Ok(clock.elapsed)
}

/// PostgreSQL ceiling: `total` rows in one `COPY`.
pub async fn postgres_ceiling(
    url: &str,
    workload: &Workload,
    total: usize,
) -> anyhow::Result<Duration> {
    migrate(url).await?;
    let mut conn = sqlx::PgConnection::connect_with(&tally_store::postgres_options(url)?).await?;
    let keys = meter_keys(workload);
    let mut clock = Stopwatch::new();
    clock.start();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY usage_record ({RECORD_COLUMNS}) FROM STDIN WITH (FORMAT text)"
        ))
        .await?;
    let mut buffer = String::with_capacity(1 << 20);
    for number in 0..total.div_ceil(BATCH) {
        clock.stop();
        let rows = rows(workload, &keys, number, total);
        clock.start();
        for r in rows {
            let mut hex = String::with_capacity(32);
            for b in r.event_key {
                let _ = write!(hex, "{b:02x}");
            }
            let _ = writeln!(
                buffer,
                "{}\t\\\\x{hex}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                r.id.stored(),
                r.content_hash,
                r.keys.subscription,
                r.keys.meter,
                r.keys.instance,
                r.usage_start.stored(),
                r.usage_end.stored(),
                r.quantity.units,
                r.quantity.fraction
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
    clock.stop();
    conn.close().await?;
    Ok(clock.elapsed)
}

/// PostgreSQL at the server's granularity: a transaction per batch with its `usage_batch` row
/// and its records as one `INSERT .. SELECT FROM UNNEST` with the conflict check.
pub async fn postgres_at_server_commits(
    url: &str,
    workload: &Workload,
    total: usize,
    reported_at: UnixMicros,
) -> anyhow::Result<Duration> {
    migrate(url).await?;
    let mut conn = sqlx::PgConnection::connect_with(&tally_store::postgres_options(url)?).await?;
    let keys = meter_keys(workload);
    let insert = format!(
        "INSERT INTO usage_record ({RECORD_COLUMNS}) SELECT * FROM UNNEST($1::int8[], $2::bytea[], \
         $3::int8[], $4::int4[], $5::int4[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], \
         $10::int8[]) ON CONFLICT (event_key) DO NOTHING"
    );
    let mut clock = Stopwatch::new();
    for number in 0..total.div_ceil(BATCH) {
        let rows = rows(workload, &keys, number, total);
        let column = |f: fn(&StoredRecord) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let ids = column(|r| r.id.stored());
        let event_keys: Vec<Vec<u8>> = rows.iter().map(|r| r.event_key.to_vec()).collect();
        let hashes = column(|r| r.content_hash);
        let subscriptions: Vec<i32> = rows.iter().map(|r| r.keys.subscription).collect();
        let meters: Vec<i32> = rows.iter().map(|r| r.keys.meter).collect();
        let instances = column(|r| r.keys.instance);
        let starts = column(|r| r.usage_start.stored());
        let ends = column(|r| r.usage_end.stored());
        let units = column(|r| r.quantity.units);
        let fractions = column(|r| r.quantity.fraction);
        clock.start();
        let mut tx = conn.begin().await?;
        let (batch_id,): (i64,) = sqlx::query_as(
            "INSERT INTO usage_batch (reported_at, record_count, folded, min_usage_start) VALUES ($1, $2, FALSE, $3) RETURNING id",
        )
        .bind(reported_at.stored())
        .bind(rows.len() as i32)
        .bind(min_usage_start(&rows))
        .fetch_one(&mut *tx)
        .await?;
        check_batch_id(batch_id, number)?;
        sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
            .bind(ids)
            .bind(event_keys)
            .bind(hashes)
            .bind(subscriptions)
            .bind(meters)
            .bind(instances)
            .bind(starts)
            .bind(ends)
            .bind(units)
            .bind(fractions)
            .execute(&mut *tx)
            .await
            .context("insert records")?;
        tx.commit().await?;
        clock.stop();
    }
    conn.close().await?;
    Ok(clock.elapsed)
}

fn min_usage_start(rows: &[StoredRecord]) -> i64 {
    rows.iter()
        .map(|r| r.usage_start.stored())
        .min()
        .unwrap_or(0)
}

/// The rows were built for batch `number + 1`; the database must have agreed.
fn check_batch_id(batch_id: i64, number: usize) -> anyhow::Result<()> {
    if batch_id != number as i64 + 1 {
        bail!(
            "batch {number} was stored as batch {batch_id}, not {}",
            number + 1
        );
    }
    Ok(())
}
