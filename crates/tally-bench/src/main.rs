//! `tally-bench`: how fast Tally ingests, folds, answers and how much memory it needs, against the
//! limits of its own storage, on SQLite and PostgreSQL. Run it through `cargo xtask bench`.
//!
//! For each backend: (1) the storage limits: the same rows bulk-loaded (the ceiling) and
//! committed as the server commits them (the limit); (2) ingest, a load generator (this process)
//! streaming batches of 1000 to `tally serve` over several streams, with folding held back;
//! (3) fold, the server restarted to fold the backlog; (4) freshness, from a batch's
//! acknowledgement to its visibility in an `allow_incomplete` query while load goes on; (5) fill:
//! more records streamed with folding on, until `--stored` records are held (measured too: ingest
//! and fold sharing the machine); (6) query latency of full 1000-row provider pages, walking the
//! whole key range, whose rows and total are checked against the workload; (7) the server's peak
//! RSS. Every figure is checked for sense ([`check`]), so a broken run fails rather than reports.
//!
//! `--scenario` picks what runs: `usage` (the above, the default), `money` (chargeback and
//! exports, [`money`]), `bridge` (a reported day sealed and uploaded to commerce, [`bridge`]) or
//! `all`.

mod bridge;
mod check;
mod feeder;
mod limit;
mod money;
mod report;
mod server;
mod workload;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Duration as Span, TimeDelta, Utc};
use clap::Parser;
use tally_core::{Granularity, Quantity};
use tally_gateway::Principal;
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    AggregationGranularity, GetPipelineStatusRequest, ListSubscriberUsageAggregatesRequest,
    ListUsageAggregatesRequest, PostUsageRequest, provider_usage_client::ProviderUsageClient,
    tenant_usage_client::TenantUsageClient, usage_admin_client::UsageAdminClient,
    usage_ingestion_client::UsageIngestionClient,
};
use tally_store::scratch::ScratchPostgres;
use tally_store::usage::UnixMicros;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use feeder::stream_batches;
use report::{BackendFigures, Report};
use server::Server;
use workload::{BATCH, Expected, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "tally-bench",
    about = "Benchmarks tally serve on SQLite and PostgreSQL"
)]
struct Args {
    /// A small scale that runs in seconds: checks the harness, not the figures.
    #[arg(long)]
    quick: bool,
    /// Records to ingest with folding held back (and to insert for the storage limits).
    #[arg(long)]
    records: Option<usize>,
    /// Records stored before the query figures are taken (the rest are streamed with folding on).
    #[arg(long)]
    stored: Option<usize>,
    /// Concurrent StreamUsage streams.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// sqlite, postgres or both.
    #[arg(long, default_value = "both")]
    backend: String,
    /// PostgreSQL server to create scratch databases on.
    #[arg(
        long,
        env = "TALLY_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// Fold interval while filling up to --stored: longer than a live deployment's, so the
    /// fold takes the writer for large steps rather than interleaving small ones with ingest.
    #[arg(long, default_value_t = 2_000)]
    fill_fold_interval_ms: u64,
    /// Keep the scratch data folder (and PostgreSQL databases) for inspection.
    #[arg(long)]
    keep: bool,
    /// Records of the money scenario's month (default 10,000,000; 60,000 with --quick).
    #[arg(long)]
    money_records: Option<usize>,
    /// Where to write the JSON results (the bridge scenario writes bridge.json beside it).
    #[arg(long, default_value = "bench-results/bench.json")]
    out: PathBuf,
    /// usage (ingest, fold, freshness, queries), money (chargeback and exports), bridge (a
    /// reported day sealed and uploaded) or all. Default: usage, or all with --quick (so the
    /// harness check covers every scenario).
    #[arg(long)]
    scenario: Option<String>,
    #[command(flatten)]
    bridge: bridge::BridgeArgs,
}

const SECRET: &str = "tally-bench-signing-secret-0123456789abcdef";
/// Rows of a full page: the contract's maximum page size.
const PAGE_ROWS: usize = 1_000;
/// Background load during the freshness probes: a batch of this many records every
/// [`BACKGROUND_PAUSE`], posted by one client.
const BACKGROUND_RECORDS: usize = 200;
const BACKGROUND_PAUSE: Duration = Duration::from_millis(20);
/// Probe chains measured at once: a probe waits for a fold, so one chain would spend most of the
/// run waiting.
const PROBE_CHAINS: usize = 4;
/// How often a probe looks for its record.
const PROBE_POLL: Duration = Duration::from_millis(2);

fn token(principal: Principal) -> String {
    let claims =
        tally_gateway::Claims::development(&principal, "tally-bench", TimeDelta::hours(24));
    tally_gateway::auth::mint(SECRET.as_bytes(), &claims).expect("mint")
}

async fn channel(addr: &str, principal: Principal) -> anyhow::Result<AuthorizedChannel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(InterceptedService::new(
        channel,
        Bearer::new(Some(&token(principal))),
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Streams records `[from, total)` over `streams` concurrent StreamUsage streams; returns the
/// wall time until the last acknowledgement.
async fn ingest(
    addr: &str,
    workload: Arc<Workload>,
    from: usize,
    total: usize,
    streams: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut channels = Vec::with_capacity(streams);
    for _ in 0..streams {
        channels.push(channel(addr, Principal::resource_provider()).await?);
    }
    let answered = stream_batches(channels, from / BATCH..total.div_ceil(BATCH), move |n| {
        workload.batch(n, total)
    })
    .await?;
    if answered.acknowledged() as usize != total - from {
        bail!(
            "{} records acknowledged of {}",
            answered.acknowledged(),
            total - from
        );
    }
    Ok(started.elapsed())
}

async fn pipeline(addr: &str) -> anyhow::Result<tally_proto::usage::v1::PipelineStatus> {
    Ok(
        UsageAdminClient::new(channel(addr, Principal::Operator).await?)
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await?
            .into_inner(),
    )
}

/// Waits until nothing is left to fold; the moment the pipeline status first said so.
async fn wait_folded(addr: &str) -> anyhow::Result<Instant> {
    let mut admin = UsageAdminClient::new(channel(addr, Principal::Operator).await?);
    loop {
        let status = admin
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await?
            .into_inner();
        if status.records_pending_fold == 0 {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The freshness probes' latencies, sorted, and which workload batches the background load
/// posted meanwhile.
struct Freshness {
    latencies: Vec<Duration>,
    background_batches: Range<usize>,
}

/// Acknowledgement-to-visibility latencies of `samples` probe records, while one client keeps
/// posting batches of [`BACKGROUND_RECORDS`] records (workload batches from `offset` on) every
/// [`BACKGROUND_PAUSE`].
async fn freshness(
    addr: &str,
    workload: Arc<Workload>,
    offset: usize,
    samples: usize,
) -> anyhow::Result<Freshness> {
    let running = Arc::new(AtomicBool::new(true));
    let first_batch = offset / BATCH;
    let background = {
        let addr = addr.to_string();
        let running = running.clone();
        let workload = workload.clone();
        tokio::spawn(async move {
            let mut client =
                UsageIngestionClient::new(channel(&addr, Principal::resource_provider()).await?);
            let mut number = first_batch;
            while running.load(Ordering::Relaxed) {
                // Slightly behind real time: a few hundred records per batch, like live providers.
                let batch = workload.batch(number, number * BATCH + BACKGROUND_RECORDS);
                client.post_usage(batch).await?;
                number += 1;
                tokio::time::sleep(BACKGROUND_PAUSE).await;
            }
            anyhow::Ok(number)
        })
    };
    // Probe chains run side by side, each with a subscription of its own; each probe is a
    // resource of its own, so a chain's probe k is visible once its subscription has k rows.
    let mut chains = Vec::new();
    for chain in 0..PROBE_CHAINS {
        let addr = addr.to_string();
        let workload = workload.clone();
        let probes = samples.div_ceil(PROBE_CHAINS);
        chains.push(tokio::spawn(async move {
            probe_chain(&addr, &workload, chain, probes).await
        }));
    }
    let mut latencies = Vec::with_capacity(samples);
    for chain in chains {
        latencies.extend(chain.await??);
    }
    running.store(false, Ordering::Relaxed);
    let end_batch = background.await??;
    latencies.sort();
    Ok(Freshness {
        latencies,
        background_batches: first_batch..end_batch,
    })
}

/// `probes` probes one after another on probe subscription `chain`; their latencies.
async fn probe_chain(
    addr: &str,
    workload: &Workload,
    chain: usize,
    probes: usize,
) -> anyhow::Result<Vec<Duration>> {
    let probe = uuid::Uuid::from_u128(0x9b0b_e000_0000_4000_8000_0000_0000_0001 + chain as u128)
        .hyphenated()
        .to_string();
    let mut ingestion =
        UsageIngestionClient::new(channel(addr, Principal::resource_provider()).await?);
    let mut tenant = TenantUsageClient::new(channel(addr, Principal::Operator).await?);
    let mut latencies = Vec::with_capacity(probes);
    for k in 1..=probes {
        let hour = Granularity::Hourly.bucket_start(Utc::now()) - Span::hours(1);
        let mut record = workload.record(0);
        record.event_id = format!("probe-{chain}-{k}");
        record.subscription_id = probe.clone();
        record.resource_uri = format!(
            "/subscriptions/{probe}/resourceGroups/probe/providers/Microsoft.Compute/virtualMachines/probe-{k}"
        );
        record.usage_start_time = Some(timestamp(hour));
        record.usage_end_time = Some(timestamp(hour + Span::hours(1)));
        ingestion
            .post_usage(PostUsageRequest {
                records: vec![record],
            })
            .await?;
        let since = Instant::now();
        let day = Granularity::Daily.bucket_start(Utc::now());
        loop {
            let page = tenant
                .list_usage_aggregates(ListUsageAggregatesRequest {
                    subscription_id: probe.clone(),
                    reported_start_time: Some(timestamp(day - Span::days(1))),
                    reported_end_time: Some(timestamp(day + Span::days(1))),
                    aggregation_granularity: AggregationGranularity::Daily as i32,
                    allow_incomplete: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            if page.usage_aggregates.len() >= k {
                break;
            }
            if since.elapsed() > Duration::from_secs(30) {
                bail!("probe {chain}-{k} never became visible");
            }
            tokio::time::sleep(PROBE_POLL).await;
        }
        latencies.push(since.elapsed());
    }
    Ok(latencies)
}

/// Full-page latencies of walks over a whole reported window, and what each walk found.
struct Walks {
    /// Sorted.
    latencies: Vec<Duration>,
    walks: usize,
    rows: u64,
    total: Quantity,
}

/// Walks every page of `granularity` rows reported from `started` on (the whole key range, from
/// the first usage bucket to the last), timing each full page, and walks again until at least
/// `min_pages` full pages are timed. Every walk must find `expected`.
async fn walk_pages(
    addr: &str,
    granularity: Granularity,
    started: DateTime<Utc>,
    min_pages: usize,
    expected: Expected,
) -> anyhow::Result<Walks> {
    let mut provider = ProviderUsageClient::new(channel(addr, Principal::Operator).await?)
        .max_decoding_message_size(64 << 20);
    let wire_granularity = match granularity {
        Granularity::Hourly => AggregationGranularity::Hourly,
        Granularity::Daily => AggregationGranularity::Daily,
    };
    let first = ListSubscriberUsageAggregatesRequest {
        reported_start_time: Some(timestamp(granularity.bucket_start(started))),
        reported_end_time: Some(timestamp(
            granularity.bucket_start(Utc::now()) + Span::seconds(granularity.seconds()),
        )),
        aggregation_granularity: wire_granularity as i32,
        page_size: PAGE_ROWS as i32,
        allow_incomplete: true,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut walks = 0;
    while latencies.len() < min_pages || walks == 0 {
        let mut request = first.clone();
        let mut rows = 0u64;
        let mut total = Quantity::ZERO;
        let mut timed = Vec::new();
        loop {
            let t = Instant::now();
            let page = provider
                .list_subscriber_usage_aggregates(request.clone())
                .await?
                .into_inner();
            let elapsed = t.elapsed();
            if page.usage_aggregates.len() == PAGE_ROWS {
                timed.push(elapsed);
            }
            rows += page.usage_aggregates.len() as u64;
            for row in &page.usage_aggregates {
                total += Quantity::parse(&row.quantity)?;
            }
            if page.continuation_token.is_empty() {
                break;
            }
            request.continuation_token = page.continuation_token;
        }
        walks += 1;
        if (Expected { rows, total }) != expected {
            bail!(
                "{granularity:?} walk {walks} found {rows} rows totalling {total}; the workload makes {} rows totalling {}",
                expected.rows,
                expected.total
            );
        }
        if timed.is_empty() {
            bail!("{granularity:?}: no full page in {rows} rows");
        }
        if walks == 1 && std::env::var("TALLY_BENCH_DEBUG").is_ok() {
            let mut slow: Vec<_> = timed.iter().enumerate().map(|(i, l)| (*l, i)).collect();
            slow.sort_unstable_by(|a, b| b.cmp(a));
            let slow: Vec<_> = slow
                .iter()
                .take(10)
                .map(|(latency, i)| format!("#{i}: {:.1} ms", millis(*latency)))
                .collect();
            eprintln!(
                "{granularity:?} slowest of {} pages: {}",
                timed.len(),
                slow.join(", ")
            );
        }
        latencies.extend(timed);
    }
    latencies.sort();
    Ok(Walks {
        latencies,
        walks,
        rows: expected.rows,
        total: expected.total,
    })
}

struct Scale {
    records: usize,
    stored: usize,
    /// Freshness probes.
    samples: usize,
    /// Full pages timed per granularity, at least.
    pages: usize,
}

/// Where a storage limit is measured: a fresh SQLite file or PostgreSQL database.
enum LimitDatabase {
    Sqlite(PathBuf),
    Postgres(ScratchPostgres),
}

impl LimitDatabase {
    async fn create(
        backend: &str,
        dir: &std::path::Path,
        name: &str,
        server: &str,
    ) -> anyhow::Result<Self> {
        Ok(match backend {
            "sqlite" => LimitDatabase::Sqlite(dir.join(format!("{name}.db"))),
            _ => LimitDatabase::Postgres(
                ScratchPostgres::create(server, &format!("tally_bench_{name}")).await?,
            ),
        })
    }

    fn url(&self) -> String {
        match self {
            LimitDatabase::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            LimitDatabase::Postgres(scratch) => scratch.url(),
        }
    }

    async fn remove(self, keep: bool) {
        match self {
            LimitDatabase::Sqlite(path) if !keep => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            LimitDatabase::Postgres(scratch) if !keep => scratch.drop().await,
            kept => eprintln!("kept the limit database {}", kept.url()),
        }
    }
}

/// Rows per second of the storage ceiling and of the limit at the server's commits.
async fn storage_limits(
    backend: &str,
    args: &Args,
    dir: &std::path::Path,
    workload: &Workload,
    records: usize,
) -> anyhow::Result<(f64, f64)> {
    let reported_at = UnixMicros::of(Utc::now());
    let rate = |time: Duration| records as f64 / time.as_secs_f64().max(1e-6);

    eprintln!("[{backend}] storage ceiling: bulk load of {records} rows");
    let db = LimitDatabase::create(backend, dir, "ceiling", &args.postgres_url).await?;
    let time = match backend {
        "sqlite" => limit::sqlite_ceiling(&db.url(), workload, records).await,
        _ => limit::postgres_ceiling(&db.url(), workload, records).await,
    };
    db.remove(args.keep).await;
    let ceiling = rate(time?);

    eprintln!("[{backend}] storage limit: {records} rows committed as the server commits");
    let db = LimitDatabase::create(backend, dir, "limit", &args.postgres_url).await?;
    let time = match backend {
        "sqlite" => {
            limit::sqlite_at_server_commits(&db.url(), workload, records, reported_at).await
        }
        _ => limit::postgres_at_server_commits(&db.url(), workload, records, reported_at).await,
    };
    db.remove(args.keep).await;
    Ok((ceiling, rate(time?)))
}

async fn run_backend(
    backend: &str,
    args: &Args,
    scale: &Scale,
    workload: Arc<Workload>,
) -> anyhow::Result<BackendFigures> {
    let dir = scratch_dir(backend)?;
    let key_file = dir.join("bench.key");
    std::fs::write(&key_file, SECRET)?;
    let serve_db = match backend {
        "sqlite" => None,
        _ => Some(ScratchPostgres::create(&args.postgres_url, "tally_bench_serve").await?),
    };
    let serve_url = serve_db.as_ref().map(ScratchPostgres::url);
    let began = Instant::now();
    let result = async {
        let (storage_ceiling, storage_limit) =
            storage_limits(backend, args, &dir, &workload, scale.records).await?;

        eprintln!(
            "[{backend}] ingest: {} records, {} streams, folding held back",
            scale.records, args.streams
        );
        let started = Utc::now();
        let server = Server::start(&dir, serve_url.as_deref(), &key_file, 24 * 3_600 * 1_000)?;
        let ingest_time = ingest(
            &server.addr,
            workload.clone(),
            0,
            scale.records,
            args.streams,
        )
        .await?;
        let backlog = pipeline(&server.addr).await?.records_pending_fold;
        let ingest_rss = server.peak_rss_mib();
        server.stop()?;

        eprintln!("[{backend}] fold: {backlog} records, restart with folding on");
        // The clock starts before the server does: it folds as soon as its database is open.
        let fold_started = Instant::now();
        let server = Server::start(&dir, serve_url.as_deref(), &key_file, 250)?;
        let fold_done = wait_folded(&server.addr).await?;
        let fold_rate = backlog as f64 / (fold_done - fold_started).as_secs_f64().max(1e-3);
        let fold_rss = server.peak_rss_mib();

        eprintln!(
            "[{backend}] freshness: {} probes under background load",
            scale.samples
        );
        // Probes and their background load use records past everything else.
        let fresh = freshness(&server.addr, workload.clone(), scale.stored, scale.samples).await?;
        let fresh_rss = server.peak_rss_mib();
        server.stop()?;

        let fill = scale.stored.saturating_sub(scale.records);
        eprintln!(
            "[{backend}] fill: {fill} more records, {} streams, folding every {}s",
            args.streams,
            args.fill_fold_interval_ms as f64 / 1e3
        );
        let server = Server::start(
            &dir,
            serve_url.as_deref(),
            &key_file,
            args.fill_fold_interval_ms,
        )?;
        let fill_time = ingest(
            &server.addr,
            workload.clone(),
            scale.records,
            scale.stored.max(scale.records),
            args.streams,
        )
        .await?;
        wait_folded(&server.addr).await?;
        let fill_rate = fill as f64 / fill_time.as_secs_f64().max(1e-3);

        // Everything posted: the workload's records, the background load, the probes.
        let stored_indices = || {
            let background = fresh
                .background_batches
                .clone()
                .flat_map(|number| number * BATCH..number * BATCH + BACKGROUND_RECORDS);
            (0..scale.stored.max(scale.records)).chain(background)
        };
        let probes = fresh.latencies.len() as u64;
        let probe_quantity = workload.pairs[0].quantity;
        let expected = |granularity| {
            workload
                .expected(stored_indices(), granularity)
                .plus_rows(probes, probe_quantity)
        };
        let records_posted = stored_indices().count() as u64 + probes;
        let stored = pipeline(&server.addr).await?.records_stored;
        if stored != records_posted {
            bail!("{stored} records stored; {records_posted} were posted");
        }

        eprintln!("[{backend}] query: every page of both windows over {stored} stored records");
        let daily = walk_pages(
            &server.addr,
            Granularity::Daily,
            started,
            scale.pages,
            expected(Granularity::Daily),
        )
        .await?;
        let hourly = walk_pages(
            &server.addr,
            Granularity::Hourly,
            started,
            scale.pages,
            expected(Granularity::Hourly),
        )
        .await?;
        let rss = server.peak_rss_mib();
        server.stop()?;
        anyhow::Ok(BackendFigures {
            backend: backend.to_string(),
            records: scale.records,
            streams: args.streams,
            ingest_records_per_second: scale.records as f64 / ingest_time.as_secs_f64(),
            storage_ceiling_rows_per_second: storage_ceiling,
            storage_limit_rows_per_second: storage_limit,
            fold_records_per_second: fold_rate,
            fill_records: fill,
            fill_records_per_second: fill_rate,
            freshness_p50_ms: millis(percentile(&fresh.latencies, 0.5)),
            freshness_p99_ms: millis(percentile(&fresh.latencies, 0.99)),
            freshness_samples: fresh.latencies.len(),
            query_daily_p50_ms: millis(percentile(&daily.latencies, 0.5)),
            query_daily_p99_ms: millis(percentile(&daily.latencies, 0.99)),
            query_daily_pages: daily.latencies.len(),
            query_daily_walks: daily.walks,
            query_daily_rows: daily.rows,
            query_hourly_p50_ms: millis(percentile(&hourly.latencies, 0.5)),
            query_hourly_p99_ms: millis(percentile(&hourly.latencies, 0.99)),
            query_hourly_pages: hourly.latencies.len(),
            query_hourly_walks: hourly.walks,
            query_hourly_rows: hourly.rows,
            query_total_quantity: hourly.total.to_string(),
            records_stored: stored,
            peak_rss_ingest_mib: ingest_rss,
            peak_rss_fold_mib: fold_rss.max(fresh_rss).max(rss),
            run_seconds: began.elapsed().as_secs_f64(),
        })
    }
    .await;
    match (args.keep, serve_db) {
        (true, serve_db) => eprintln!(
            "[{backend}] kept {} and the database {:?}",
            dir.display(),
            serve_db.as_ref().map(ScratchPostgres::name)
        ),
        (false, serve_db) => {
            if let Some(db) = serve_db {
                db.drop().await;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    result
}

fn scratch_dir(backend: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tally-bench-{backend}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scale = if args.quick {
        Scale {
            records: args.records.unwrap_or(60_000),
            stored: args.stored.unwrap_or(100_000),
            samples: 40,
            pages: 50,
        }
    } else {
        Scale {
            records: args.records.unwrap_or(2_000_000),
            stored: args.stored.unwrap_or(10_000_000),
            samples: 1_000,
            pages: 1_000,
        }
    };
    let backends: Vec<&str> = match args.backend.as_str() {
        "both" => vec!["sqlite", "postgres"],
        "sqlite" => vec!["sqlite"],
        "postgres" => vec!["postgres"],
        other => bail!("unknown backend {other:?}: sqlite, postgres or both"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scenario = args
        .scenario
        .as_deref()
        .unwrap_or(if args.quick { "all" } else { "usage" });
    let (usage, money, bridged) = match scenario {
        "usage" => (true, false, false),
        "money" => (false, true, false),
        "bridge" => (false, false, true),
        "all" => (true, true, true),
        other => bail!("unknown scenario {other:?}: usage, money, bridge or all"),
    };
    if bridged {
        bridge::run(
            &runtime,
            &args.bridge,
            args.quick,
            &backends,
            &args.postgres_url,
            args.keep,
            &args.out,
        )?;
    }
    let workload = Arc::new(Workload::new(Utc::now()));
    let mut figures = Vec::new();
    for backend in backends.iter().filter(|_| usage) {
        figures.push(runtime.block_on(run_backend(backend, &args, &scale, workload.clone()))?);
    }
    let money_scale = money::MoneyScale::new(args.quick, args.money_records);
    let mut money_figures = Vec::new();
    for backend in backends.iter().filter(|_| money) {
        money_figures.push(runtime.block_on(money::run_backend(
            backend,
            &args.postgres_url,
            args.keep,
            args.streams,
            &money_scale,
        ))?);
    }
    let report = Report::new(args.quick, figures);
    if usage {
        print!("{}", report.table());
    }
    if money {
        print!("{}", money::table(&money_figures));
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The bridge scenario writes its own file; a bridge-only run leaves this one alone.
    if usage || money {
        let mut json = serde_json::to_value(&report)?;
        if money {
            json["money"] = serde_json::to_value(&money_figures)?;
        }
        std::fs::write(&args.out, serde_json::to_string_pretty(&json)?)?;
        eprintln!("results written to {}", args.out.display());
    }
    let problems: Vec<String> = report
        .backends
        .iter()
        .flat_map(|figures| check::figures(figures, &scale))
        .chain(
            money_figures
                .iter()
                .flat_map(|f| money::check(f, &money_scale)),
        )
        .collect();
    if !problems.is_empty() {
        bail!("figures that make no sense:\n  {}", problems.join("\n  "));
    }
    Ok(())
}
