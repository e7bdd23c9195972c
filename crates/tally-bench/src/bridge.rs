//! The bridge scenario (`--scenario bridge`): one reported day of 1,000,000 DAILY rows of
//! chargeable meters sealed by the usage bridge and uploaded to the reference receiver, in a
//! split deployment of real processes on this machine: `tally aggregator --manual-clock` (which
//! serves the clock too), `tally registration`, `tally bridge --clock-url` (following the
//! aggregator's clock) and `tally commerce-receiver`. The records are posted and folded first
//! (not timed); then the clock moves past the day and the clock runs until the receiver has
//! acknowledged every batch, read through `UsageBridge/GetBridgeStatus`. The receiver must hold
//! every row exactly once: its record count and its exact sums per billing subscription.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use tally_core::Quantity;
use tally_proto::bearer::Bearer;
use tally_proto::bridge::v1::{GetBridgeStatusRequest, usage_bridge_client::UsageBridgeClient};
use tally_proto::clock::v1::{
    AdvanceClockRequest, advance_clock_request::Target, clock_client::ClockClient,
};
use tally_proto::commerce::v1::{
    GetReceiverStateRequest, ListTotalsRequest, commerce_receiver_client::CommerceReceiverClient,
};
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::registration::v1::{
    registration_client::RegistrationClient, tenancy_client::TenancyClient,
};
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, ListMetersRequest, PostUsageRequest, UsageRecord,
    usage_admin_client::UsageAdminClient,
};
use tally_spawn::Listening;
use tally_store::scratch::ScratchPostgres;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::feeder::stream_batches;
use crate::server::tally_binary;

/// The bridge scenario's own flags.
#[derive(clap::Args, Debug)]
pub struct BridgeArgs {
    /// DAILY rows of the reported day the bridge seals and uploads (default 1,000,000; 20,000
    /// with --quick).
    #[arg(long)]
    pub bridge_rows: Option<usize>,
}

/// The target: sealing and uploading the day, on 2 cores, in under this.
const TARGET: Duration = Duration::from_secs(60);
const SUBSCRIPTIONS: usize = 1_000;
/// Tenants own the subscriptions, 10 each; every other tenant is mapped to a CSP customer
/// subscription of its own, so billing resolves both ways.
const TENANTS: usize = 100;
const BATCH: usize = 1_000;
const STREAMS: usize = 4;
const CLOUD_ID: &str = "b1d9e000-0000-4000-8000-00000000c10d";
const REGISTRATION_SUBSCRIPTION: &str = "b1d9e000-0000-4000-8000-0000000005ab";
/// The reported day (UTC midnight); the clock starts two hours into it.
fn day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .unwrap_or_default()
}
const DAY: i64 = 86_400;
/// How often the bridge's status is read while the clock runs.
const POLL: Duration = Duration::from_millis(50);

fn guid(kind: u128, index: usize) -> String {
    Uuid::from_u128(0xb1d9_e000_0000_4000_8000_0000_0000_0000 | (kind << 32) | index as u128)
        .hyphenated()
        .to_string()
}
fn subscription(index: usize) -> String {
    guid(1, index)
}
fn tenant(index: usize) -> String {
    guid(2, index)
}
fn customer(index: usize) -> String {
    guid(3, index)
}
/// The billing subscription of `subscription(index)`.
fn billing(index: usize) -> String {
    let owner = index % TENANTS;
    if owner.is_multiple_of(2) {
        customer(owner)
    } else {
        REGISTRATION_SUBSCRIPTION.to_string()
    }
}

#[derive(Serialize)]
pub struct BridgeFigures {
    pub backend: String,
    pub rows: usize,
    pub batches: u64,
    /// From the clock's move past the day to the day sealed (every batch stored).
    pub seal_seconds: f64,
    pub sealed_rows_per_second: f64,
    /// From the day sealed to every batch acknowledged by the receiver.
    pub upload_seconds: f64,
    pub uploaded_rows_per_second: f64,
    /// From the clock's move to every batch acknowledged.
    pub total_seconds: f64,
    pub target_met: bool,
    pub bridge_peak_rss_mib: f64,
    pub receiver_peak_rss_mib: f64,
    pub aggregator_peak_rss_mib: f64,
    /// Posting and folding the day before the clock moves (not part of the target).
    pub setup_seconds: f64,
}

#[derive(Serialize)]
struct BridgeReport {
    quick: bool,
    machine: crate::report::Machine,
    profile: &'static str,
    backends: Vec<BridgeFigures>,
}

/// A `tally` subcommand as a child process, listening on a free port.
struct Process {
    process: Listening,
    url: String,
}

impl Process {
    fn start(what: &str, args: &[&str]) -> anyhow::Result<Process> {
        let mut command = Command::new(tally_binary()?);
        command
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env(
                "RUST_LOG",
                std::env::var("TALLY_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stderr(Stdio::inherit());
        let process = Listening::start(&mut command).with_context(|| format!("start {what}"))?;
        let url = format!("http://{}", process.addr());
        Ok(Process { process, url })
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Endpoint::from_shared(self.url.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?)
    }

    /// Peak resident set size so far, in MiB (VmHWM).
    fn peak_rss_mib(&self) -> f64 {
        crate::server::status_mib(self.process.pid(), "VmHWM:")
    }

    fn stop(self) -> anyhow::Result<()> {
        self.process.terminate()?;
        Ok(())
    }
}

/// What the receiver must hold: per billing subscription, rows and their exact sum.
type Expected = BTreeMap<String, (u64, Quantity)>;

/// Record `i` of the day: its own resource, so every record is a DAILY row of its own.
fn record(i: usize, meters: &[String], hour: DateTime<Utc>) -> (UsageRecord, usize) {
    let sub = i % SUBSCRIPTIONS;
    let subscription_id = subscription(sub);
    let meter = &meters[(i / SUBSCRIPTIONS) % meters.len()];
    let quantity = format!("{}.{:04}", 1 + i % 7, i % 10_000);
    let record = UsageRecord {
        event_id: format!("bridge-{i}"),
        resource_uri: format!(
            "/subscriptions/{subscription_id}/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/vm-{i:07}",
            i % 20
        ),
        subscription_id,
        meter_id: meter.clone(),
        location: "local".into(),
        tags: BTreeMap::from([("environment".to_string(), ["prod", "dev"][i % 2].into())]),
        additional_info: BTreeMap::new(),
        quantity,
        usage_start_time: Some(timestamp(hour)),
        usage_end_time: Some(timestamp(hour + chrono::Duration::hours(1))),
    };
    (record, sub)
}

fn expected(rows: usize, meters: &[String], hour: DateTime<Utc>) -> anyhow::Result<Expected> {
    let mut expected = Expected::new();
    for i in 0..rows {
        let (record, sub) = record(i, meters, hour);
        let entry = expected.entry(billing(sub)).or_default();
        entry.0 += 1;
        entry.1 += Quantity::parse_record(&record.quantity)?;
    }
    Ok(expected)
}

/// Registers the installation (pay-as-you-use, reporting on, multi-tenancy on), creates the
/// tenants and their subscriptions, and maps every other tenant to a customer subscription.
async fn registration(registration: &Process) -> anyhow::Result<()> {
    let channel = registration.channel().await?;
    let mut client = RegistrationClient::new(channel.clone());
    let mut tenancy = TenancyClient::new(channel);
    client
        .set_registration(reg::SetRegistrationRequest {
            registration: Some(reg::RegistrationInfo {
                cloud_id: CLOUD_ID.into(),
                registration_subscription_id: REGISTRATION_SUBSCRIPTION.into(),
                billing_model: reg::BillingModel::PayAsYouUse as i32,
                usage_reporting_enabled: true,
                multi_tenancy_enabled: true,
                ..Default::default()
            }),
        })
        .await?;
    for t in 0..TENANTS {
        tenancy
            .create_tenant(reg::CreateTenantRequest {
                tenant: Some(reg::Tenant {
                    tenant_id: tenant(t),
                    display_name: format!("tenant {t}"),
                }),
            })
            .await?;
        if t.is_multiple_of(2) {
            client
                .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
                    tenant_id: tenant(t),
                    customer_subscription_id: customer(t),
                })
                .await?;
        }
    }
    for s in 0..SUBSCRIPTIONS {
        tenancy
            .create_subscription(reg::CreateSubscriptionRequest {
                subscription: Some(reg::Subscription {
                    subscription_id: subscription(s),
                    display_name: format!("subscription {s}"),
                    owner_tenant_id: tenant(s % TENANTS),
                    ..Default::default()
                }),
            })
            .await?;
    }
    Ok(())
}

/// The chargeable meters the aggregator knows (not deprecated), in a stable order.
async fn chargeable_meters(aggregator: &Process) -> anyhow::Result<Vec<String>> {
    let mut meters: Vec<String> = UsageAdminClient::new(aggregator.channel().await?)
        .list_meters(ListMetersRequest {
            include_deprecated: false,
        })
        .await?
        .into_inner()
        .meters
        .into_iter()
        .filter(|m| m.chargeable)
        .map(|m| m.meter_id)
        .collect();
    meters.sort();
    meters.truncate(8);
    if meters.is_empty() {
        bail!("the aggregator knows no chargeable meter");
    }
    Ok(meters)
}

/// Posts the day's `rows` records over [`STREAMS`] StreamUsage streams, then waits until they
/// are folded.
async fn post_day(
    aggregator: &Process,
    rows: usize,
    meters: Arc<Vec<String>>,
    hour: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut channels = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        // The aggregator alone trusts its callers (the gateway authenticates them).
        channels.push(InterceptedService::new(
            aggregator.channel().await?,
            Bearer::new(None),
        ));
    }
    let answered = stream_batches(channels, 0..rows.div_ceil(BATCH), move |number| {
        PostUsageRequest {
            records: (number * BATCH..((number + 1) * BATCH).min(rows))
                .map(|i| record(i, &meters, hour).0)
                .collect(),
        }
    })
    .await?;
    if answered.accepted as usize != rows {
        bail!("{} records accepted of {rows}", answered.accepted);
    }
    let mut admin = UsageAdminClient::new(aggregator.channel().await?);
    loop {
        let status = admin
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await?
            .into_inner();
        if status.records_pending_fold == 0 && status.records_stored as usize == rows {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the services keep their tables: SQLite files in the scratch folder, or one scratch
/// PostgreSQL database shared by the three (as `tally serve --database-url` shares it).
struct Databases {
    scratch: Option<ScratchPostgres>,
    dir: PathBuf,
}

impl Databases {
    fn url(&self, service: &str) -> String {
        match &self.scratch {
            Some(scratch) => scratch.url(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.dir.join(format!("{service}.db")).display()
            ),
        }
    }
}

async fn run_backend(
    backend: &str,
    rows: usize,
    postgres_url: &str,
    keep: bool,
) -> anyhow::Result<BridgeFigures> {
    let dir = std::env::temp_dir().join(format!(
        "tally-bench-bridge-{backend}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let scratch = match backend {
        "sqlite" => None,
        _ => Some(ScratchPostgres::create(postgres_url, "tally_bench_bridge").await?),
    };
    let databases = Databases { scratch, dir };
    let result = measure(backend, rows, &databases).await;
    if keep {
        eprintln!(
            "[{backend}] bridge: kept {} and the database {:?}",
            databases.dir.display(),
            databases.scratch.as_ref().map(ScratchPostgres::name)
        );
    } else {
        if let Some(scratch) = databases.scratch {
            scratch.drop().await;
        }
        let _ = std::fs::remove_dir_all(&databases.dir);
    }
    result
}

async fn measure(
    backend: &str,
    rows: usize,
    databases: &Databases,
) -> anyhow::Result<BridgeFigures> {
    let day = day();
    let start = day + chrono::Duration::hours(2);
    let receiver_dir = databases.dir.join("receiver");
    let receiver = Process::start(
        "tally commerce-receiver",
        &[
            "commerce-receiver",
            "--data-dir",
            &receiver_dir.to_string_lossy(),
        ],
    )?;
    let aggregator = Process::start(
        "tally aggregator",
        &[
            "aggregator",
            "--database-url",
            &databases.url("usage"),
            "--manual-clock",
            &start.to_rfc3339(),
        ],
    )?;
    let registry = Process::start(
        "tally registration",
        &[
            "registration",
            "--database-url",
            &databases.url("registration"),
        ],
    )?;
    let bridge = Process::start(
        "tally bridge",
        &[
            "bridge",
            "--database-url",
            &databases.url("bridge"),
            "--aggregator-url",
            &aggregator.url,
            "--registration-url",
            &registry.url,
            "--commerce-endpoint",
            &receiver.url,
            "--clock-url",
            &aggregator.url,
        ],
    )?;

    eprintln!("[{backend}] bridge: registering, posting and folding {rows} records");
    let setup = Instant::now();
    registration(&registry).await?;
    let meters = Arc::new(chargeable_meters(&aggregator).await?);
    let hour = day;
    post_day(&aggregator, rows, meters.clone(), hour).await?;
    let expected = expected(rows, &meters, hour)?;
    let mut status = UsageBridgeClient::new(bridge.channel().await?);
    // The bridge has made its first pass once its cursor stands at the day.
    loop {
        let now = status
            .get_bridge_status(GetBridgeStatusRequest {})
            .await?
            .into_inner();
        if now
            .sealed_through
            .is_some_and(|t| t.seconds == day.timestamp())
        {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let setup_seconds = setup.elapsed().as_secs_f64();

    eprintln!("[{backend}] bridge: the clock moves past the day; sealing and uploading");
    let closed = day + chrono::Duration::days(1) + chrono::Duration::minutes(1);
    let moved = Instant::now();
    ClockClient::new(aggregator.channel().await?)
        .advance_clock(AdvanceClockRequest {
            target: Some(Target::To(timestamp(closed))),
        })
        .await?;
    let end = day.timestamp() + DAY;
    let mut sealed = None;
    let acknowledged = loop {
        let now = status
            .get_bridge_status(GetBridgeStatusRequest {})
            .await?
            .into_inner();
        if now.parked_batches > 0 {
            bail!("the bridge parked batches: {}", now.last_error);
        }
        if sealed.is_none() && now.sealed_through.is_some_and(|t| t.seconds >= end) {
            sealed = Some(moved.elapsed());
        }
        if now.acknowledged_through.is_some_and(|t| t.seconds >= end) && now.pending_batches == 0 {
            break moved.elapsed();
        }
        if moved.elapsed() > Duration::from_secs(600) {
            bail!("the day was not uploaded within 10 minutes: {now:?}");
        }
        tokio::time::sleep(POLL).await;
    };
    let sealed = sealed.unwrap_or(acknowledged);
    let bridge_rss = bridge.peak_rss_mib();
    let receiver_rss = receiver.peak_rss_mib();
    let aggregator_rss = aggregator.peak_rss_mib();

    let batches = check_receiver(&receiver, rows, &expected).await?;
    for process in [bridge, receiver, registry, aggregator] {
        process.stop()?;
    }
    let upload = acknowledged.saturating_sub(sealed);
    let rate = |time: Duration| rows as f64 / time.as_secs_f64().max(1e-3);
    Ok(BridgeFigures {
        backend: backend.to_string(),
        rows,
        batches,
        seal_seconds: sealed.as_secs_f64(),
        sealed_rows_per_second: rate(sealed),
        upload_seconds: upload.as_secs_f64(),
        uploaded_rows_per_second: rate(upload),
        total_seconds: acknowledged.as_secs_f64(),
        target_met: acknowledged < TARGET,
        bridge_peak_rss_mib: bridge_rss,
        receiver_peak_rss_mib: receiver_rss,
        aggregator_peak_rss_mib: aggregator_rss,
        setup_seconds,
    })
}

/// The receiver holds every row exactly once: `rows` records in the expected number of batches,
/// no duplicate applied, and the exact sums per billing subscription. Returns the batches.
async fn check_receiver(
    receiver: &Process,
    rows: usize,
    expected: &Expected,
) -> anyhow::Result<u64> {
    let mut client = CommerceReceiverClient::new(receiver.channel().await?);
    let state = client
        .get_receiver_state(GetReceiverStateRequest {})
        .await?
        .into_inner();
    let batches = rows.div_ceil(BATCH) as u64;
    if state.records != rows as u64 || state.batches != batches {
        bail!(
            "the receiver holds {} records in {} batches; the day has {rows} rows in {batches}",
            state.records,
            state.batches
        );
    }
    let mut received = Expected::new();
    for total in client
        .list_totals(ListTotalsRequest::default())
        .await?
        .into_inner()
        .totals
    {
        let entry = received.entry(total.billing_subscription_id).or_default();
        entry.0 += total.records;
        entry.1 += Quantity::parse(&total.quantity)?;
    }
    if &received != expected {
        bail!("the receiver's totals per billing subscription differ from the day's rows");
    }
    Ok(batches)
}

/// Problems that make a figure meaningless: a broken run fails rather than reports.
fn problems(figures: &BridgeFigures) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, value) in [
        ("sealed rows/s", figures.sealed_rows_per_second),
        ("uploaded rows/s", figures.uploaded_rows_per_second),
        ("total seconds", figures.total_seconds),
        ("bridge peak RSS", figures.bridge_peak_rss_mib),
    ] {
        if !value.is_finite() || value <= 0.0 {
            problems.push(format!("{}: {name} is {value}", figures.backend));
        }
    }
    problems
}

fn table(report: &BridgeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nUsage bridge: one reported day sealed and uploaded{}",
        if report.quick {
            " (--quick: harness check, not figures)"
        } else {
            ""
        }
    );
    let _ = write!(out, "{:<44}", "");
    for b in &report.backends {
        let _ = write!(out, "{:>14}", b.backend);
    }
    let _ = writeln!(out);
    let row = |out: &mut String, label: &str, value: &dyn Fn(&BridgeFigures) -> String| {
        let _ = write!(out, "{label:<44}");
        for b in &report.backends {
            let _ = write!(out, "{:>14}", value(b));
        }
        let _ = writeln!(out);
    };
    row(&mut out, "DAILY rows (chargeable) / batches", &|b| {
        format!("{} / {}", b.rows, b.batches)
    });
    row(&mut out, "sealed (s)", &|b| {
        format!("{:.2}", b.seal_seconds)
    });
    row(&mut out, "sealed (rows/s)", &|b| {
        format!("{:.0}", b.sealed_rows_per_second)
    });
    row(&mut out, "uploaded, all acknowledged (s)", &|b| {
        format!("{:.2}", b.upload_seconds)
    });
    row(&mut out, "uploaded (rows/s)", &|b| {
        format!("{:.0}", b.uploaded_rows_per_second)
    });
    row(&mut out, "clock moved to all acknowledged (s)", &|b| {
        format!("{:.2}", b.total_seconds)
    });
    row(&mut out, "target < 60 s", &|b| {
        (if b.target_met { "met" } else { "missed" }).to_string()
    });
    row(&mut out, "peak RSS bridge / receiver (MiB)", &|b| {
        format!(
            "{:.0} / {:.0}",
            b.bridge_peak_rss_mib, b.receiver_peak_rss_mib
        )
    });
    row(&mut out, "peak RSS aggregator (MiB)", &|b| {
        format!("{:.0}", b.aggregator_peak_rss_mib)
    });
    row(&mut out, "setup: post + fold (s, not timed)", &|b| {
        format!("{:.0}", b.setup_seconds)
    });
    out
}

/// Runs the bridge scenario on `backends`; prints its table and writes `bridge.json` beside
/// `out`.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    args: &BridgeArgs,
    quick: bool,
    backends: &[&str],
    postgres_url: &str,
    keep: bool,
    out: &Path,
) -> anyhow::Result<()> {
    let rows = args
        .bridge_rows
        .unwrap_or(if quick { 20_000 } else { 1_000_000 });
    let mut figures = Vec::new();
    for backend in backends {
        figures.push(runtime.block_on(run_backend(backend, rows, postgres_url, keep))?);
    }
    let report = BridgeReport {
        quick,
        machine: crate::report::machine(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        backends: figures,
    };
    print!("{}", table(&report));
    let path = out.with_file_name("bridge.json");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    eprintln!("bridge results written to {}", path.display());
    let problems: Vec<String> = report.backends.iter().flat_map(problems).collect();
    if !problems.is_empty() {
        bail!("figures that make no sense:\n  {}", problems.join("\n  "));
    }
    Ok(())
}
