//! `tally-chaos` (run through `cargo xtask chaos --kills N`): kills `tally serve` with SIGKILL
//! and restarts it N times, at random moments, while verifying clients post batches with
//! deterministic event ids and resend each until it is acknowledged (a resend reports the
//! records already stored as duplicates). Folding runs all along, so kills land during ingest
//! and during folds. At the end it waits for the fold and checks through the query API that
//! every record is counted exactly once: each subscription's total equals what was posted, in
//! exact decimals. Exits non-zero if anything was lost or doubled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration as Span, Utc};
use clap::{Parser, ValueEnum};
use tally_core::{Granularity, Quantity};
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, ListSubscriberUsageAggregatesRequest, PipelineStatus,
    PostUsageRequest, UsageRecord, provider_usage_client::ProviderUsageClient,
    usage_admin_client::UsageAdminClient, usage_ingestion_client::UsageIngestionClient,
};
use tally_spawn::Listening;
use tally_store::scratch::ScratchPostgres;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backends {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser, Debug)]
#[command(
    name = "tally-chaos",
    about = "Kills and restarts tally serve while clients post; checks nothing is lost or doubled"
)]
struct Args {
    /// How many times to kill (SIGKILL) and restart tally serve, per backend.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
    /// The PostgreSQL server to create a scratch database on.
    #[arg(long, env = "TALLY_TEST_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// The tally binary (default: the one built beside this one).
    #[arg(long)]
    tally: Option<PathBuf>,
    /// Seed of the kill moments (default: from the clock; printed, to replay a run).
    #[arg(long)]
    seed: Option<u64>,
}

/// Clients posting at once.
const POSTERS: usize = 3;
const PER_BATCH: usize = 100;
/// Each record's quantity: the totals are exact sums of it.
const QUANTITY: &str = "0.0001";
const SUBSCRIPTIONS: [&str; 3] = [
    "5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b",
    "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
];
const METER: &str = tally_core::meter::well_known::BASE_VM_SIZE_HOURS;
/// A kill comes this long after the previous restart, at most.
const MAX_KILL_DELAY_MS: u64 = 400;

/// A small xorshift generator: the kill moments need spread, not quality.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// What one backend's run did.
struct Summary {
    backend: &'static str,
    kills: usize,
    kills_while_folding: usize,
    batches: usize,
    acknowledged_records: usize,
    resends: usize,
    duplicates: usize,
    lost: usize,
    doubled: usize,
    elapsed: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tally = match &args.tally {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no parent dir")?
            .join("tally"),
    };
    if !tally.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p tally`",
            tally.display()
        );
    }
    let seed = args.seed.unwrap_or_else(|| {
        u64::try_from(Utc::now().timestamp_nanos_opt().unwrap_or(1)).unwrap_or(1) | 1
    });
    println!("tally-chaos: {} kills per backend, seed {seed}", args.kills);
    let mut summaries = Vec::new();
    if matches!(args.backend, Backends::Sqlite | Backends::Both) {
        summaries.push(run(&tally, None, args.kills, seed).await?);
    }
    if matches!(args.backend, Backends::Postgres | Backends::Both) {
        match &args.postgres_url {
            Some(server) => {
                let scratch = ScratchPostgres::create(server, "tally_chaos").await?;
                let summary = run(&tally, Some(&scratch.url()), args.kills, seed).await;
                scratch.drop().await;
                summaries.push(summary?);
            }
            None if args.backend == Backends::Both => {
                println!("PostgreSQL SKIPPED: TALLY_TEST_POSTGRES_URL is not set");
            }
            None => bail!("--backend postgres needs --postgres-url or TALLY_TEST_POSTGRES_URL"),
        }
    }
    let mut failed = false;
    for s in &summaries {
        println!(
            "{}: {} kills ({} with a fold pending), {} batches, {} records posted and acknowledged, \
             {} resends ({} duplicates reported), lost {}, doubled {}, {:.1} s",
            s.backend,
            s.kills,
            s.kills_while_folding,
            s.batches,
            s.acknowledged_records,
            s.resends,
            s.duplicates,
            s.lost,
            s.doubled,
            s.elapsed.as_secs_f64()
        );
        failed |= s.lost > 0 || s.doubled > 0;
    }
    if failed {
        bail!("records were lost or doubled");
    }
    Ok(())
}

/// Starts `tally serve` on `data_dir` (and `database_url`), folding every 20 ms.
fn start(tally: &Path, data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Listening> {
    let mut command = Command::new(tally);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--fold-interval-ms", "20"])
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    Listening::start(&mut command).context("start tally serve")
}

/// Where the current server listens; clients reconnect when it changes.
type Current = Arc<RwLock<Option<AuthorizedChannel>>>;

fn connect(server: &Listening, token: &str) -> anyhow::Result<AuthorizedChannel> {
    let channel = Endpoint::from_shared(format!("http://{}", server.addr()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect_lazy();
    Ok(InterceptedService::new(channel, Bearer::new(Some(token))))
}

fn current(channel: &Current) -> Option<AuthorizedChannel> {
    channel.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn set_current(channel: &Current, to: Option<AuthorizedChannel>) {
    *channel.write().unwrap_or_else(|e| e.into_inner()) = to;
}

fn the_batch(poster: usize, n: usize, hour: DateTime<Utc>) -> (usize, PostUsageRequest) {
    let subscription = (poster + n) % SUBSCRIPTIONS.len();
    let records = (0..PER_BATCH)
        .map(|i| UsageRecord {
            event_id: format!("chaos-{poster}-{n}-{i}"),
            subscription_id: SUBSCRIPTIONS[subscription].into(),
            meter_id: METER.into(),
            resource_uri: format!(
                "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{}",
                SUBSCRIPTIONS[subscription],
                i % 10
            ),
            location: "local".into(),
            quantity: QUANTITY.into(),
            usage_start_time: Some(timestamp(hour)),
            usage_end_time: Some(timestamp(hour + Span::hours(1))),
            ..Default::default()
        })
        .collect();
    (subscription, PostUsageRequest { records })
}

/// What one poster sent and was told.
#[derive(Default)]
struct Posted {
    batches_per_subscription: [usize; SUBSCRIPTIONS.len()],
    accepted: usize,
    duplicates: usize,
    resends: usize,
}

/// Posts numbered batches until `stop`, each resent until acknowledged.
async fn post(
    poster: usize,
    channel: Current,
    stop: Arc<AtomicBool>,
    hour: DateTime<Utc>,
    acknowledged: Arc<AtomicUsize>,
) -> anyhow::Result<Posted> {
    let mut posted = Posted::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let (subscription, batch) = the_batch(poster, n, hour);
        loop {
            let Some(channel) = current(&channel) else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            match UsageIngestionClient::new(channel)
                .post_usage(batch.clone())
                .await
            {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    if answer.accepted as usize + answer.duplicates as usize != PER_BATCH {
                        bail!("batch {poster}-{n} was answered {answer:?}");
                    }
                    posted.accepted += answer.accepted as usize;
                    posted.duplicates += answer.duplicates as usize;
                    break;
                }
                // The server is gone or going: resend to the next one.
                Err(e)
                    if matches!(
                        e.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                    ) =>
                {
                    posted.resends += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => bail!("batch {poster}-{n} failed: {e:?}"),
            }
        }
        posted.batches_per_subscription[subscription] += 1;
        acknowledged.fetch_add(1, Ordering::SeqCst);
        n += 1;
    }
    Ok(posted)
}

async fn pipeline_status(channel: &AuthorizedChannel) -> Result<PipelineStatus, tonic::Status> {
    UsageAdminClient::new(channel.clone())
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .map(tonic::Response::into_inner)
}

/// Each subscription's total over the last and next day, from the query API.
async fn totals(channel: &AuthorizedChannel) -> anyhow::Result<BTreeMap<String, Quantity>> {
    let today = Granularity::Daily.bucket_start(Utc::now());
    let mut client = ProviderUsageClient::new(channel.clone());
    let mut totals = BTreeMap::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_subscriber_usage_aggregates(ListSubscriberUsageAggregatesRequest {
                reported_start_time: Some(timestamp(today - Span::days(1))),
                reported_end_time: Some(timestamp(today + Span::days(1))),
                aggregation_granularity: 1,
                allow_incomplete: true,
                continuation_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for aggregate in &page.usage_aggregates {
            *totals
                .entry(aggregate.subscription_id.clone())
                .or_insert(Quantity::ZERO) += Quantity::parse(&aggregate.quantity)?;
        }
        if page.continuation_token.is_empty() {
            return Ok(totals);
        }
        token = page.continuation_token;
    }
}

/// `records` records of [`QUANTITY`].
fn total_of(records: usize) -> anyhow::Result<Quantity> {
    let one = Quantity::parse(QUANTITY)?;
    Ok((0..records).map(|_| one).sum())
}

async fn run(
    tally: &Path,
    database_url: Option<&str>,
    kills: usize,
    seed: u64,
) -> anyhow::Result<Summary> {
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("{backend}: {kills} kills");
    let started = Instant::now();
    let data = std::env::temp_dir().join(format!("tally-chaos-{}-{seed}", std::process::id()));
    let data = fresh_dir(data)?;
    let mut server = start(tally, data.path(), database_url)?;
    let minted = Command::new(tally)
        .args(["token", "--role", "operator", "--data-dir"])
        .arg(data.path())
        .output()
        .context("tally token")?;
    if !minted.status.success() {
        bail!("tally token: {}", String::from_utf8_lossy(&minted.stderr));
    }
    let token = String::from_utf8(minted.stdout)?.trim().to_string();
    let channel: Current = Arc::new(RwLock::new(Some(connect(&server, &token)?)));

    let hour = Granularity::Hourly.bucket_start(Utc::now()) - Span::hours(1);
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..POSTERS)
        .map(|poster| {
            tokio::spawn(post(
                poster,
                channel.clone(),
                stop.clone(),
                hour,
                acknowledged.clone(),
            ))
        })
        .collect();

    let mut moments = Moments(seed ^ database_url.map_or(0, |_| 0x9e37_79b9_7f4a_7c15));
    let mut kills_while_folding = 0;
    for kill in 1..=kills {
        tokio::time::sleep(Duration::from_millis(
            20 + moments.next_ms(MAX_KILL_DELAY_MS),
        ))
        .await;
        if let Some(channel) = current(&channel)
            && let Ok(status) = pipeline_status(&channel).await
            && status.records_pending_fold > 0
        {
            kills_while_folding += 1;
        }
        set_current(&channel, None);
        drop(server); // SIGKILL: no shutdown path runs.
        server = tokio::task::block_in_place(|| start(tally, data.path(), database_url))?;
        set_current(&channel, Some(connect(&server, &token)?));
        if kill % 10 == 0 || kill == kills {
            println!(
                "  {kill}/{kills} kills, {} batches acknowledged",
                acknowledged.load(Ordering::SeqCst)
            );
        }
    }
    // A few more batches against the last server, then stop.
    let target = acknowledged.load(Ordering::SeqCst) + POSTERS * 3;
    while acknowledged.load(Ordering::SeqCst) < target {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut per_subscription = [0usize; SUBSCRIPTIONS.len()];
    let (mut accepted, mut duplicates, mut resends) = (0, 0, 0);
    for poster in posters {
        let posted = poster.await??;
        for (sum, n) in per_subscription
            .iter_mut()
            .zip(posted.batches_per_subscription)
        {
            *sum += n;
        }
        accepted += posted.accepted;
        duplicates += posted.duplicates;
        resends += posted.resends;
    }
    let batches: usize = per_subscription.iter().sum();
    let records = batches * PER_BATCH;

    let channel = current(&channel).context("no server")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        match pipeline_status(&channel).await {
            Ok(status) if status.records_pending_fold == 0 => break status,
            _ if Instant::now() > deadline => bail!("the records were never folded"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let stored = usize::try_from(status.records_stored)?;
    let totals = totals(&channel).await?;
    let (mut lost, mut doubled) = (0, 0);
    let one = Quantity::parse(QUANTITY)?;
    for (subscription, n) in SUBSCRIPTIONS.iter().zip(per_subscription) {
        let expected = total_of(n * PER_BATCH)?;
        let got = totals.get(*subscription).copied().unwrap_or(Quantity::ZERO);
        if got != expected {
            println!("  {subscription}: posted {expected}, counted {got}");
            // How many records of QUANTITY the difference is.
            let (mut low, mut high) = (got, expected);
            if got > expected {
                (low, high) = (expected, got);
            }
            let mut difference = 0;
            while low < high {
                low += one;
                difference += 1;
            }
            if got < expected {
                lost += difference;
            } else {
                doubled += difference;
            }
        }
    }
    // Every acknowledged record stored once: no fewer stored than acknowledged, nor than were
    // answered as newly stored (a resend of a batch committed before a kill is answered as
    // duplicates, so `accepted` may be below `records`, never above `stored`).
    lost += records
        .saturating_sub(stored)
        .max(accepted.saturating_sub(stored));
    doubled += stored.saturating_sub(records);
    if totals.len() > SUBSCRIPTIONS.len() {
        bail!("aggregates of unknown subscriptions: {totals:?}");
    }
    drop(server);
    Ok(Summary {
        backend,
        kills,
        kills_while_folding,
        batches,
        acknowledged_records: records,
        resends,
        duplicates,
        lost,
        doubled,
        elapsed: started.elapsed(),
    })
}

/// A fresh folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fresh_dir(path: PathBuf) -> anyhow::Result<TempDir> {
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}
