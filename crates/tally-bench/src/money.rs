//! The money scenario (`--scenario money`): chargeback and exports at scale, on a manual clock.
//!
//! `tally serve --manual-clock` starts inside a month (the bench month). 1,000 tenants own the
//! workload's 1,000 subscriptions (registration API), one more tenant owns a subscription with
//! [`MoneyScale::big_rows`] hourly rows; a default price sheet prices every meter of the workload
//! (some with graduated tiers, and a second version from the middle of the usage), a few tenants
//! have sheets of their own, and two adjustments are made. The workload's records are ingested
//! through the gateway with the clock in the month, and the clock is advanced an hour so that
//! they are complete. Then: (1) the big tenant's OPEN statement, timed over a few calls; (2) the
//! close: the clock advanced past the month's end, timed until every statement is final; (3)
//! `ListStatements` of the closed month, every page timed over repeated walks; (4)
//! `ExportCharges` of the closed month in every format, rows/s, each file parsed and its costs
//! summed. The server's peak RSS (VmHWM, reset before each phase) is taken for close and each
//! export. Checked as it runs: the statements' quantities add up to what was posted, every
//! format's rows match the export's row count and its costs add up exactly to the statements'
//! totals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration as Span, TimeZone as _, Utc};
use serde::Serialize;
use tally_core::meter::well_known as meters;
use tally_core::{Granularity, Quantity};
use tally_gateway::Principal;
use tally_proto::billing::v1::{
    Adjustment, CreateAdjustmentRequest, CreatePriceSheetRequest, ExportChargesRequest,
    ExportFormat, GetStatementRequest, ListStatementsRequest, MeterPrice, PriceSheet, PriceTier,
    Statement, billing_client::BillingClient,
};
use tally_proto::clock::v1::{
    AdvanceClockRequest, advance_clock_request::Target, clock_client::ClockClient,
};
use tally_proto::convert::{timestamp, utc};
use tally_proto::registration::v1::{
    CreateSubscriptionRequest, CreateTenantRequest, Subscription, Tenant,
    tenancy_client::TenancyClient,
};
use tally_proto::usage::v1::{
    PostUsageRequest, UsageRecord, usage_ingestion_client::UsageIngestionClient,
};
use tally_store::scratch::ScratchPostgres;
use uuid::Uuid;

use crate::server::Server;
use crate::workload::{self, SUBSCRIPTIONS, Workload};
use crate::{SECRET, channel, ingest, millis, percentile, pipeline, wait_folded};

/// The bench month: the manual clock starts on its 20th; usage goes back from there.
const MONTH: &str = "2026-10";
/// Fraction digits of the exact sums: costs are quantities (10 digits) times prices (10 digits).
const SCALE: u32 = 20;
/// Statements per `ListStatements` page.
const STATEMENT_PAGE: i32 = 100;
/// Resources of the big tenant's subscription; each reports every hour.
const BIG_RESOURCES: usize = 250;

/// Where the manual clock starts: the first hour of the month, so that price sheets can take
/// effect from its start (every earlier month is closed); usage is posted at [`clock_start`].
fn month_start_clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 30, 0)
        .single()
        .unwrap_or_default()
}

fn clock_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 20, 0, 30, 0)
        .single()
        .unwrap_or_default()
}

fn month_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

pub struct MoneyScale {
    /// Workload records ingested in the month.
    pub records: usize,
    /// Hourly rows of the big tenant's subscription.
    pub big_rows: usize,
    /// Calls of the big tenant's open statement timed.
    pub open_calls: usize,
    /// `ListStatements` pages timed, at least.
    pub pages: usize,
}

impl MoneyScale {
    pub fn new(quick: bool, records: Option<usize>) -> MoneyScale {
        if quick {
            MoneyScale {
                records: records.unwrap_or(60_000),
                big_rows: 2_000,
                open_calls: 3,
                pages: 20,
            }
        } else {
            MoneyScale {
                records: records.unwrap_or(10_000_000),
                big_rows: 100_000,
                open_calls: 10,
                pages: 200,
            }
        }
    }
}

#[derive(Serialize)]
pub struct ExportFigures {
    pub format: String,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Hourly rows rated per second (the export rates the month's hourly rows).
    pub rated_rows_per_second: f64,
    pub bytes: u64,
    /// The server's RSS when the export starts (what the previous phases left resident).
    pub rss_before_mib: f64,
    pub peak_rss_mib: f64,
    /// The sum of the exported costs, exact.
    pub cost_total: String,
}

#[derive(Serialize)]
pub struct MoneyFigures {
    pub backend: String,
    pub records: usize,
    pub tenants: usize,
    pub hourly_rows: u64,
    pub ingest_seconds: f64,
    pub big_tenant_rows: usize,
    pub open_statement_p50_ms: f64,
    pub open_statement_p99_ms: f64,
    pub open_statement_calls: usize,
    pub close_seconds: f64,
    pub close_rated_rows_per_second: f64,
    pub rss_before_close_mib: f64,
    pub peak_rss_close_mib: f64,
    pub statements: usize,
    pub list_page_p50_ms: f64,
    pub list_page_p99_ms: f64,
    pub list_pages: usize,
    pub exports: Vec<ExportFigures>,
    /// The sum of every statement's total, exact.
    pub statements_total: String,
    pub run_seconds: f64,
    /// uptime's 1-minute load average at the end of the run (the machine may be shared).
    pub load_average: String,
}

fn tenant_id(index: usize) -> Uuid {
    Uuid::from_u128(0x7e4a_0000_0000_4000_8000_0000_0000_0000 | index as u128)
}

fn big_subscription() -> Uuid {
    Uuid::from_u128(0xb16b_0000_0000_4000_8000_0000_0000_0001)
}

/// The big tenant comes after the workload's 1,000.
fn big_tenant() -> Uuid {
    tenant_id(SUBSCRIPTIONS)
}

/// Exact decimal with [`SCALE`] fraction digits, as an integer.
fn scaled(text: &str) -> anyhow::Result<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > SCALE as usize
        || whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        bail!("{text:?} is not a decimal with at most {SCALE} fraction digits");
    }
    let padded = format!("{whole}{fraction:0<width$}", width = SCALE as usize);
    let value: i128 = padded
        .parse()
        .with_context(|| format!("{text:?} too large"))?;
    Ok(if negative { -value } else { value })
}

fn unscaled(value: i128) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let unit = 10u128.pow(SCALE);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = SCALE as usize
    )
}

fn flat(meter: &str, price: &str) -> MeterPrice {
    MeterPrice {
        meter_id: meter.to_string(),
        unit_price: price.to_string(),
        tiers: Vec::new(),
    }
}

fn tiered(meter: &str, tiers: &[(&str, &str)]) -> MeterPrice {
    MeterPrice {
        meter_id: meter.to_string(),
        unit_price: String::new(),
        tiers: tiers
            .iter()
            .map(|(from, price)| PriceTier {
                from_quantity: from.to_string(),
                unit_price: price.to_string(),
            })
            .collect(),
    }
}

/// The price sheets: a default for every meter of the workload (two versions, the second from
/// the middle of the usage), and three tenants' own.
fn price_sheets(workload: &Workload, records: usize) -> Vec<PriceSheet> {
    let default_prices = |scale: &str| {
        vec![
            tiered(
                meters::BASE_VM_SIZE_HOURS,
                &[("0", "0.021"), ("5000", "0.0185"), ("50000", "0.0152")],
            ),
            flat(meters::VM_SIZE_HOURS, scale),
            flat(meters::ACTUAL_STANDARD_DISK_SIZE, "0.0411"),
            tiered(
                meters::BLOCK_BLOB_CAPACITY,
                &[("0", "0.00021"), ("100000", "0.000175")],
            ),
            flat(meters::BLOB_TRANSACTIONS, "0.0036"),
            flat(meters::STATIC_IP_ADDRESS_USAGE, "0.0045"),
        ]
    };
    let sheet = |name: &str, tenant: Option<Uuid>, from: DateTime<Utc>, prices| PriceSheet {
        name: name.to_string(),
        currency: "USD".into(),
        tenant_id: tenant.map(|t| t.to_string()).unwrap_or_default(),
        effective_from: Some(timestamp(from)),
        prices,
        ..Default::default()
    };
    let year = Granularity::Daily.bucket_start(month_start_clock());
    // Halfway through the workload's usage hours: a price change inside the rated hours.
    let hours = records.div_ceil(workload.pairs.len().max(1));
    let middle = workload.last_hour - Span::hours((hours / 2) as i64);
    let mut sheets = vec![
        sheet("default", None, year, default_prices("0.05")),
        sheet("default v2", None, middle, default_prices("0.048")),
    ];
    for (index, price) in [(0, "0.04"), (1, "0.039"), (2, "0.0375")] {
        sheets.push(sheet(
            &format!("tenant {index}"),
            Some(tenant_id(index)),
            year,
            vec![
                flat(meters::VM_SIZE_HOURS, price),
                tiered(
                    meters::BASE_VM_SIZE_HOURS,
                    &[("0", "0.02"), ("1000", "0.017")],
                ),
            ],
        ));
    }
    sheets
}

/// Record `index` of the big tenant's subscription: resource `index % BIG_RESOURCES`, hour
/// `index / BIG_RESOURCES` before the clock's last full hour.
fn big_record(index: usize) -> (UsageRecord, Quantity) {
    let resource = index % BIG_RESOURCES;
    let hour = Granularity::Hourly.bucket_start(clock_start())
        - Span::hours(1 + (index / BIG_RESOURCES) as i64);
    let sub = big_subscription().hyphenated().to_string();
    let (meter, quantity) = if resource.is_multiple_of(2) {
        (meters::BASE_VM_SIZE_HOURS, "4")
    } else {
        (meters::VM_SIZE_HOURS, "1")
    };
    let record = UsageRecord {
        event_id: format!("big-{resource}-{}", hour.timestamp()),
        subscription_id: sub.clone(),
        meter_id: meter.to_string(),
        resource_uri: format!(
            "/subscriptions/{sub}/resourceGroups/big/providers/Microsoft.Compute/virtualMachines/big-{resource:03}"
        ),
        location: "local".into(),
        tags: BTreeMap::from([("owner".to_string(), "big, \"quoted\"\nteam".to_string())]),
        additional_info: BTreeMap::new(),
        quantity: quantity.into(),
        usage_start_time: Some(timestamp(hour)),
        usage_end_time: Some(timestamp(hour + Span::hours(1))),
    };
    let quantity = Quantity::parse(quantity).unwrap_or(Quantity::ZERO);
    (record, quantity)
}

/// Creates the tenants and their subscriptions, 8 calls at a time.
async fn register(addr: &str) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let mut tenancy = TenancyClient::new(channel(addr, Principal::Operator).await?);
        tasks.push(tokio::spawn(async move {
            for index in (worker..=SUBSCRIPTIONS).step_by(8) {
                let tenant = tenant_id(index).to_string();
                tenancy
                    .create_tenant(CreateTenantRequest {
                        tenant: Some(Tenant {
                            tenant_id: tenant.clone(),
                            display_name: format!("Tenant {index}"),
                        }),
                    })
                    .await?;
                let subscription = if index == SUBSCRIPTIONS {
                    big_subscription()
                } else {
                    workload::subscription_id(index)
                };
                tenancy
                    .create_subscription(CreateSubscriptionRequest {
                        subscription: Some(Subscription {
                            subscription_id: subscription.to_string(),
                            display_name: format!("Subscription {index}"),
                            owner_tenant_id: tenant,
                            ..Default::default()
                        }),
                    })
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn advance_to(addr: &str, to: DateTime<Utc>) -> anyhow::Result<()> {
    ClockClient::new(channel(addr, Principal::Operator).await?)
        .advance_clock(AdvanceClockRequest {
            target: Some(Target::To(timestamp(to))),
        })
        .await?;
    Ok(())
}

/// Waits until `complete_through` reaches `time`.
async fn wait_complete(addr: &str, time: DateTime<Utc>) -> anyhow::Result<()> {
    let since = Instant::now();
    loop {
        let status = pipeline(addr).await?;
        if utc(status.complete_through.as_ref()).is_some_and(|c| c >= time) {
            return Ok(());
        }
        if since.elapsed() > Duration::from_secs(1_800) {
            bail!("complete_through never reached {time}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quantity_of(statement: &Statement) -> anyhow::Result<Quantity> {
    let mut total = Quantity::ZERO;
    for line in statement.lines.iter().filter(|l| l.kind == "Usage") {
        total += Quantity::parse(&line.quantity)?;
    }
    Ok(total)
}

/// Every statement of the month, a page at a time; the latency of each page.
async fn walk_statements(
    billing: &mut BillingClient<tally_proto::bearer::AuthorizedChannel>,
) -> anyhow::Result<(Vec<Statement>, Vec<Duration>)> {
    let mut statements = Vec::new();
    let mut latencies = Vec::new();
    let mut token = String::new();
    loop {
        let started = Instant::now();
        let page = billing
            .list_statements(ListStatementsRequest {
                billing_period: MONTH.into(),
                page_size: STATEMENT_PAGE,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        latencies.push(started.elapsed());
        statements.extend(page.statements);
        if page.next_page_token.is_empty() {
            return Ok((statements, latencies));
        }
        token = page.next_page_token;
    }
}

/// Streams one export to `path`; its row count and time.
async fn export(
    addr: &str,
    format: ExportFormat,
    path: &Path,
) -> anyhow::Result<(u64, Duration, u64)> {
    use std::io::Write as _;
    let mut billing = BillingClient::new(channel(addr, Principal::Operator).await?)
        .max_decoding_message_size(64 << 20);
    let started = Instant::now();
    let mut stream = billing
        .export_charges(ExportChargesRequest {
            billing_period: MONTH.into(),
            format: format as i32,
            tenant_id: String::new(),
        })
        .await?
        .into_inner();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut rows = 0;
    let mut bytes = 0;
    while let Some(chunk) = stream.message().await? {
        file.write_all(&chunk.data)?;
        bytes += chunk.data.len() as u64;
        rows = chunk.rows_so_far;
        if chunk.rows_so_far > chunk.rows_total {
            bail!(
                "chunk says {} rows of {}",
                chunk.rows_so_far,
                chunk.rows_total
            );
        }
    }
    file.flush()?;
    Ok((rows, started.elapsed(), bytes))
}

/// Rows and the exact sum of `BilledCost` in an exported file.
fn sum_export(format: ExportFormat, path: &Path) -> anyhow::Result<(u64, i128)> {
    let mut rows = 0u64;
    let mut total = 0i128;
    match format {
        ExportFormat::Csv | ExportFormat::Focus => {
            let mut reader = csv::Reader::from_path(path)?;
            let column = reader
                .headers()?
                .iter()
                .position(|h| h == "BilledCost")
                .context("no BilledCost column")?;
            for record in reader.records() {
                let record = record?;
                total += scaled(record.get(column).context("short row")?)?;
                rows += 1;
            }
        }
        ExportFormat::Jsonl => {
            use std::io::BufRead as _;
            let file = std::io::BufReader::new(std::fs::File::open(path)?);
            for line in file.lines() {
                let line = line?;
                let value: serde_json::Value = serde_json::from_str(&line)?;
                let cost = match &value["BilledCost"] {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Number(number) => number.to_string(),
                    other => bail!("BilledCost is {other}"),
                };
                total += scaled(&cost)?;
                rows += 1;
            }
        }
        ExportFormat::Parquet => {
            use arrow_array::Array as _;
            use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
            let index = builder
                .schema()
                .index_of("BilledCost")
                .context("no BilledCost column")?;
            for batch in builder.build()? {
                let batch = batch?;
                let column = batch.column(index);
                let costs = column
                    .as_any()
                    .downcast_ref::<arrow_array::Decimal128Array>()
                    .context("BilledCost is not decimal128")?;
                if costs.scale() != SCALE as i8 {
                    bail!("BilledCost has scale {}, not {SCALE}", costs.scale());
                }
                for cost in costs.iter() {
                    total += cost.context("a null BilledCost")?;
                }
                rows += batch.num_rows() as u64;
            }
        }
        ExportFormat::Unspecified => bail!("no format"),
    }
    Ok((rows, total))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn run_backend(
    backend: &str,
    postgres_url: &str,
    keep: bool,
    streams: usize,
    scale: &MoneyScale,
) -> anyhow::Result<MoneyFigures> {
    let dir = crate::scratch_dir(&format!("money-{backend}"))?;
    let key_file = dir.join("bench.key");
    std::fs::write(&key_file, SECRET)?;
    let serve_db = match backend {
        "sqlite" => None,
        _ => Some(ScratchPostgres::create(postgres_url, "tally_bench_money").await?),
    };
    let serve_url = serve_db.as_ref().map(ScratchPostgres::url);
    let result = run(
        backend,
        &dir,
        serve_url.as_deref(),
        &key_file,
        streams,
        scale,
    )
    .await;
    if keep {
        eprintln!(
            "[money {backend}] kept {} and the database {:?}",
            dir.display(),
            serve_db.as_ref().map(ScratchPostgres::name)
        );
    } else {
        if let Some(db) = serve_db {
            db.drop().await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run(
    backend: &str,
    dir: &Path,
    serve_url: Option<&str>,
    key_file: &Path,
    streams: usize,
    scale: &MoneyScale,
) -> anyhow::Result<MoneyFigures> {
    let began = Instant::now();
    let workload = Arc::new(Workload::new(clock_start()));
    let clock = month_start_clock().to_rfc3339();
    let server = Server::start_with(dir, serve_url, key_file, &["--manual-clock", &clock])?;
    let addr = server.addr.clone();

    eprintln!(
        "[money {backend}] registration: {} tenants",
        SUBSCRIPTIONS + 1
    );
    register(&addr).await?;
    let mut billing = BillingClient::new(channel(&addr, Principal::Operator).await?)
        .max_decoding_message_size(64 << 20);
    for sheet in price_sheets(&workload, scale.records) {
        billing
            .create_price_sheet(CreatePriceSheetRequest {
                price_sheet: Some(sheet),
            })
            .await?;
    }
    for (index, amount, reason) in [(0, "-125.50", "credit: outage"), (1, "40", "support")] {
        billing
            .create_adjustment(CreateAdjustmentRequest {
                adjustment: Some(Adjustment {
                    tenant_id: tenant_id(index).to_string(),
                    subscription_id: workload::subscription_id(index).to_string(),
                    billing_period: MONTH.into(),
                    amount: amount.into(),
                    reason: reason.into(),
                    ..Default::default()
                }),
            })
            .await?;
    }

    advance_to(&addr, clock_start()).await?;
    eprintln!(
        "[money {backend}] ingest: {} records and {} of the big tenant, clock at {}",
        scale.records,
        scale.big_rows,
        clock_start()
    );
    let ingest_started = Instant::now();
    ingest(&addr, workload.clone(), 0, scale.records, streams).await?;
    let mut ingestion =
        UsageIngestionClient::new(channel(&addr, Principal::resource_provider()).await?)
            .max_encoding_message_size(64 << 20);
    let mut big_total = Quantity::ZERO;
    let mut batch = Vec::new();
    for index in 0..scale.big_rows {
        let (record, quantity) = big_record(index);
        big_total += quantity;
        batch.push(record);
        if batch.len() == workload::BATCH || index + 1 == scale.big_rows {
            ingestion
                .post_usage(PostUsageRequest {
                    records: std::mem::take(&mut batch),
                })
                .await?;
        }
    }
    wait_folded(&addr).await?;
    // The reported hour complete: the clock an hour on, and everything folded through it.
    let reported_hour_end = Granularity::Hourly.bucket_start(clock_start()) + Span::hours(1);
    advance_to(&addr, clock_start() + Span::hours(1)).await?;
    wait_complete(&addr, reported_hour_end).await?;
    let ingest_seconds = ingest_started.elapsed().as_secs_f64();
    let hourly_rows = (scale.records + scale.big_rows) as u64;
    let expected_quantity = {
        let mut total = workload
            .expected(0..scale.records, Granularity::Hourly)
            .total;
        total += big_total;
        total
    };

    eprintln!(
        "[money {backend}] open statement of the big tenant ({} hourly rows), {} calls",
        scale.big_rows, scale.open_calls
    );
    let mut tenant_billing =
        BillingClient::new(channel(&addr, Principal::tenant(big_tenant())).await?)
            .max_decoding_message_size(64 << 20);
    let mut open_latencies = Vec::new();
    for _ in 0..scale.open_calls {
        let started = Instant::now();
        let statement = tenant_billing
            .get_statement(GetStatementRequest {
                tenant_id: big_tenant().to_string(),
                billing_period: MONTH.into(),
            })
            .await?
            .into_inner();
        open_latencies.push(started.elapsed());
        if statement.r#final {
            bail!("the open month's statement is final");
        }
        let quantity = quantity_of(&statement)?;
        if quantity != big_total {
            bail!("the big tenant's open statement rates {quantity}; {big_total} was posted");
        }
    }
    open_latencies.sort();

    eprintln!("[money {backend}] close: the clock past {MONTH}'s end");
    let rss_before_close = server.rss_mib();
    server.reset_peak()?;
    let close_started = Instant::now();
    advance_to(&addr, month_end() + Span::hours(1)).await?;
    wait_complete(&addr, month_end()).await?;
    // The first page waits for the close (the closer's, or its own) to store every statement.
    let (statements, _) = walk_statements(&mut billing).await?;
    let close_time = close_started.elapsed();
    let peak_rss_close = server.peak_rss_mib();
    if statements.len() != SUBSCRIPTIONS + 1 {
        bail!(
            "{} statements; {} tenants have usage",
            statements.len(),
            SUBSCRIPTIONS + 1
        );
    }
    let mut statements_total = 0i128;
    let mut quantity = Quantity::ZERO;
    for statement in &statements {
        if !statement.r#final {
            bail!("tenant {}'s statement is not final", statement.tenant_id);
        }
        statements_total += scaled(&statement.total)?;
        quantity += quantity_of(statement)?;
    }
    if quantity != expected_quantity {
        bail!("the statements rate {quantity}; {expected_quantity} was posted");
    }

    eprintln!("[money {backend}] ListStatements of the closed month");
    let mut list_latencies = Vec::new();
    while list_latencies.len() < scale.pages {
        let (again, latencies) = walk_statements(&mut billing).await?;
        if again != statements {
            bail!("a closed month's statements changed between walks");
        }
        list_latencies.extend(latencies);
    }
    list_latencies.sort();

    let mut exports = Vec::new();
    for (format, name, extension) in [
        (ExportFormat::Csv, "csv", "csv"),
        (ExportFormat::Jsonl, "jsonl", "jsonl"),
        (ExportFormat::Parquet, "parquet", "parquet"),
        (ExportFormat::Focus, "focus", "focus.csv"),
    ] {
        eprintln!("[money {backend}] export: {name}");
        let path: PathBuf = dir.join(format!("charges.{extension}"));
        let rss_before_mib = server.rss_mib();
        eprintln!("[money {backend}] before: {}", server.rss_parts());
        server.reset_peak()?;
        let (rows, time, bytes) = export(&addr, format, &path).await?;
        let peak_rss_mib = server.peak_rss_mib();
        eprintln!(
            "[money {backend}] after: {}; peak {peak_rss_mib:.0} MiB",
            server.rss_parts()
        );
        let (file_rows, cost) = sum_export(format, &path)?;
        let _ = std::fs::remove_file(&path);
        if file_rows != rows {
            bail!("the {name} export holds {file_rows} rows; it said {rows}");
        }
        if cost != statements_total {
            bail!(
                "the {name} export's costs add up to {}; the statements' totals to {}",
                unscaled(cost),
                unscaled(statements_total)
            );
        }
        let seconds = time.as_secs_f64().max(1e-6);
        exports.push(ExportFigures {
            format: name.into(),
            rows,
            seconds,
            rows_per_second: rows as f64 / seconds,
            rated_rows_per_second: hourly_rows as f64 / seconds,
            bytes,
            rss_before_mib,
            peak_rss_mib,
            cost_total: unscaled(cost),
        });
    }
    let load = load_average();
    server.stop()?;
    let close_seconds = close_time.as_secs_f64();
    Ok(MoneyFigures {
        backend: backend.into(),
        records: scale.records,
        tenants: SUBSCRIPTIONS + 1,
        hourly_rows,
        ingest_seconds,
        big_tenant_rows: scale.big_rows,
        open_statement_p50_ms: millis(percentile(&open_latencies, 0.5)),
        open_statement_p99_ms: millis(percentile(&open_latencies, 0.99)),
        open_statement_calls: open_latencies.len(),
        close_seconds,
        close_rated_rows_per_second: hourly_rows as f64 / close_seconds.max(1e-6),
        rss_before_close_mib: rss_before_close,
        peak_rss_close_mib: peak_rss_close,
        statements: statements.len(),
        list_page_p50_ms: millis(percentile(&list_latencies, 0.5)),
        list_page_p99_ms: millis(percentile(&list_latencies, 0.99)),
        list_pages: list_latencies.len(),
        exports,
        statements_total: unscaled(statements_total),
        run_seconds: began.elapsed().as_secs_f64(),
        load_average: load,
    })
}

/// Targets of the chargeback and export issues.
const OPEN_STATEMENT_MS: f64 = 1_000.0;
const CLOSE_SECONDS: f64 = 120.0;
const LIST_PAGE_MS: f64 = 100.0;
const EXPORT_RSS_MIB: f64 = 300.0;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The money figures as a table, each against its target.
pub fn table(figures: &[MoneyFigures]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nMoney scenario (chargeback and exports), month {MONTH}"
    );
    let _ = write!(out, "{:<52}", "");
    for f in figures {
        let _ = write!(out, "{:>30}", f.backend);
    }
    let _ = writeln!(out);
    let row = |out: &mut String, label: &str, value: &dyn Fn(&MoneyFigures) -> String| {
        let _ = write!(out, "{label:<52}");
        for f in figures {
            let _ = write!(out, "{:>30}", value(f));
        }
        let _ = writeln!(out);
    };
    row(
        &mut out,
        "hourly rows in the month (records + big tenant)",
        &|f| f.hourly_rows.to_string(),
    );
    row(&mut out, "tenants / statements", &|f| {
        format!("{} / {}", f.tenants, f.statements)
    });
    row(&mut out, "ingest, fold, complete (s)", &|f| {
        format!("{:.0}", f.ingest_seconds)
    });
    row(&mut out, "open statement p50 / p99 (ms; < 1000)", &|f| {
        format!(
            "{:.0} / {:.0} {}",
            f.open_statement_p50_ms,
            f.open_statement_p99_ms,
            verdict(f.open_statement_p99_ms < OPEN_STATEMENT_MS)
        )
    });
    row(&mut out, "  over big tenant's hourly rows / calls", &|f| {
        format!("{} / {}", f.big_tenant_rows, f.open_statement_calls)
    });
    row(&mut out, "close until all final (s; < 120)", &|f| {
        format!(
            "{:.1} {}",
            f.close_seconds,
            verdict(f.close_seconds < CLOSE_SECONDS)
        )
    });
    row(&mut out, "close: rated rows/s", &|f| {
        format!("{:.0}", f.close_rated_rows_per_second)
    });
    row(&mut out, "RSS before close / peak in close (MiB)", &|f| {
        format!(
            "{:.0} / {:.0}",
            f.rss_before_close_mib, f.peak_rss_close_mib
        )
    });
    row(
        &mut out,
        "ListStatements closed p50 / p99 (ms; < 100)",
        &|f| {
            format!(
                "{:.1} / {:.1} {}",
                f.list_page_p50_ms,
                f.list_page_p99_ms,
                verdict(f.list_page_p99_ms < LIST_PAGE_MS)
            )
        },
    );
    row(&mut out, "  pages timed (100 statements each)", &|f| {
        f.list_pages.to_string()
    });
    for format in ["csv", "jsonl", "parquet", "focus"] {
        let export = |f: &MoneyFigures| {
            f.exports.iter().find(|e| e.format == format).map(|e| {
                (
                    e.rows,
                    e.rows_per_second,
                    e.rated_rows_per_second,
                    e.peak_rss_mib,
                    e.seconds,
                )
            })
        };
        row(&mut out, &format!("export {format}: rows, s"), &|f| {
            export(f).map_or_else(String::new, |(rows, _, _, _, s)| format!("{rows}, {s:.1}"))
        });
        row(
            &mut out,
            &format!("export {format}: rows/s, rated rows/s"),
            &|f| export(f).map_or_else(String::new, |(_, r, h, _, _)| format!("{r:.0}, {h:.0}")),
        );
        row(
            &mut out,
            &format!("export {format}: RSS at start (MiB)"),
            &|f| {
                f.exports
                    .iter()
                    .find(|e| e.format == format)
                    .map_or_else(String::new, |e| format!("{:.0}", e.rss_before_mib))
            },
        );
        row(
            &mut out,
            &format!("export {format}: peak RSS (MiB; < 300)"),
            &|f| {
                export(f).map_or_else(String::new, |(_, _, _, m, _)| {
                    format!("{m:.0} {}", verdict(m < EXPORT_RSS_MIB))
                })
            },
        );
    }
    row(
        &mut out,
        "sum of statement totals = every export's costs",
        &|f| f.statements_total.clone(),
    );
    row(&mut out, "run time (s) / load average at end", &|f| {
        format!(
            "{:.0} / {}",
            f.run_seconds,
            f.load_average.split(' ').next().unwrap_or("")
        )
    });
    out
}

/// What is senseless in `f` (zero, NaN, too few samples); targets missed are reported, not
/// failed.
pub fn check(f: &MoneyFigures, scale: &MoneyScale) -> Vec<String> {
    let mut problems = Vec::new();
    let mut positive = |name: &str, value: f64| {
        if !(value.is_finite() && value > 0.0) {
            problems.push(format!("money {}: {name} is {value}", f.backend));
        }
    };
    positive("the open statement p50", f.open_statement_p50_ms);
    positive("the close time", f.close_seconds);
    positive("the list page p50", f.list_page_p50_ms);
    positive("the peak RSS in close", f.peak_rss_close_mib);
    for export in &f.exports {
        positive(&format!("{} rows/s", export.format), export.rows_per_second);
        positive(&format!("{} peak RSS", export.format), export.peak_rss_mib);
    }
    if f.exports.len() != 4 {
        problems.push(format!(
            "money {}: {} exports of 4",
            f.backend,
            f.exports.len()
        ));
    }
    if f.open_statement_calls < scale.open_calls || f.list_pages < scale.pages {
        problems.push(format!("money {}: too few samples", f.backend));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sums_keep_every_digit() {
        assert_eq!(scaled("1").unwrap(), 10i128.pow(SCALE));
        assert_eq!(scaled("-0.5").unwrap(), -5 * 10i128.pow(SCALE - 1));
        let sum = scaled("0.00000000000000000001").unwrap() + scaled("12.3").unwrap();
        assert_eq!(unscaled(sum), "12.30000000000000000001");
        assert_eq!(
            unscaled(scaled("-125.50").unwrap()),
            "-125.50000000000000000000"
        );
        assert!(scaled("0.000000000000000000001").is_err());
        assert!(scaled("1e5").is_err());
        assert!(scaled("").is_err());
    }

    #[test]
    fn the_big_tenant_reports_every_hour_before_the_clock() {
        let (first, quantity) = big_record(0);
        let (next_hour, _) = big_record(BIG_RESOURCES);
        assert_eq!(quantity, Quantity::parse("4").unwrap());
        assert_eq!(
            first.usage_start_time,
            Some(timestamp(
                Granularity::Hourly.bucket_start(clock_start()) - Span::hours(1)
            ))
        );
        assert_ne!(first.event_id, next_hour.event_id);
        assert!(utc(next_hour.usage_start_time.as_ref()) < utc(first.usage_start_time.as_ref()));
    }
}
