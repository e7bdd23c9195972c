//! `tally-bench`: how fast Tally ingests, folds, answers and how much memory it needs, against the
//! limits of its own storage, on SQLite and PostgreSQL. Run it through `cargo xtask bench`.
//!
//! For each backend: (1) the storage limit, a plain bulk insert of the same rows; (2) ingest, a
//! load generator (this process) streaming batches of 1000 to `tally serve` over several streams,
//! with folding held back; (3) fold, the server restarted to fold the backlog; (4) freshness, from
//! a batch's acknowledgement to its visibility in an `allow_incomplete` query while load goes on;
//! (5) fill: more records streamed with folding on, until `--stored` records are held (measured
//! too: ingest and fold sharing the machine); (6) query latency of full 1000-row provider pages;
//! (7) the server's peak RSS.

mod limit;
mod report;
mod server;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{Duration as Span, Utc};
use clap::Parser;
use sea_orm::ConnectionTrait as _;
use tally_core::Granularity;
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    AggregationGranularity, GetPipelineStatusRequest, ListSubscriberUsageAggregatesRequest,
    ListUsageAggregatesRequest, PostUsageRequest, provider_usage_client::ProviderUsageClient,
    tenant_usage_client::TenantUsageClient, usage_admin_client::UsageAdminClient,
    usage_ingestion_client::UsageIngestionClient,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

use report::{BackendFigures, Report};
use server::Server;
use workload::{BATCH, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "tally-bench",
    about = "Benchmarks tally serve on SQLite and PostgreSQL"
)]
struct Args {
    /// A small scale that runs in seconds: checks the harness, not the figures.
    #[arg(long)]
    quick: bool,
    /// Records to ingest with folding held back (and to bulk-insert for the storage limit).
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
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results/bench.json")]
    out: PathBuf,
}

const SECRET: &str = "tally-bench-signing-secret-0123456789abcdef";

fn token(role: &str) -> String {
    let now = Utc::now().timestamp();
    let claims = tally_gateway::Claims {
        iss: "tally".into(),
        aud: "tally".into(),
        sub: "tally-bench".into(),
        exp: now + 24 * 3_600,
        nbf: Some(now - 60),
        iat: Some(now),
        tid: None,
        roles: vec![role.into()],
        provider_subscription_id: None,
    };
    tally_gateway::auth::mint(SECRET.as_bytes(), &claims).expect("mint")
}

async fn channel(addr: &str, role: &str) -> anyhow::Result<AuthorizedChannel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(InterceptedService::new(
        channel,
        Bearer::new(Some(&token(role))),
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
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
    let batches = total.div_ceil(BATCH);
    let next = Arc::new(AtomicUsize::new(from / BATCH));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let channel = channel(addr, "ResourceProvider").await?;
        let workload = workload.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<PostUsageRequest>(4);
            let producer = tokio::spawn(async move {
                loop {
                    let number = next.fetch_add(1, Ordering::Relaxed);
                    if number >= batches {
                        break;
                    }
                    if tx.send(workload.batch(number, total)).await.is_err() {
                        break;
                    }
                }
            });
            let mut client = UsageIngestionClient::new(channel).max_encoding_message_size(64 << 20);
            let mut responses = client
                .stream_usage(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            let mut acknowledged = 0u64;
            while let Some(response) = responses.message().await? {
                acknowledged += u64::from(response.accepted + response.duplicates);
            }
            producer.await?;
            anyhow::Ok(acknowledged)
        }));
    }
    let mut acknowledged = 0;
    for task in tasks {
        acknowledged += task.await??;
    }
    if acknowledged as usize != total - from {
        bail!("{acknowledged} records acknowledged of {}", total - from);
    }
    Ok(started.elapsed())
}

async fn pipeline(addr: &str) -> anyhow::Result<tally_proto::usage::v1::PipelineStatus> {
    Ok(UsageAdminClient::new(channel(addr, "Operator").await?)
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await?
        .into_inner())
}

/// Waits for the backlog to be folded; returns records folded per second, measured from the
/// first status that shows a backlog.
async fn fold(addr: &str) -> anyhow::Result<(f64, u64)> {
    let mut admin = UsageAdminClient::new(channel(addr, "Operator").await?);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let status = admin
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await?
            .into_inner();
        let now = Instant::now();
        if first.is_none() {
            first = Some((now, status.records_pending_fold));
        }
        if status.records_pending_fold == 0 {
            let (t0, pending) = first.expect("set above");
            let seconds = now.duration_since(t0).as_secs_f64().max(1e-3);
            return Ok((pending as f64 / seconds, status.records_stored));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Acknowledgement-to-visibility latencies of `samples` probe records, while two streams keep
/// ingesting in the background.
async fn freshness(
    addr: &str,
    workload: Arc<Workload>,
    offset: usize,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let running = Arc::new(AtomicBool::new(true));
    let background = {
        let addr = addr.to_string();
        let running = running.clone();
        let workload = workload.clone();
        tokio::spawn(async move {
            let mut client = UsageIngestionClient::new(channel(&addr, "ResourceProvider").await?);
            let mut number = offset / BATCH;
            while running.load(Ordering::Relaxed) {
                // Slightly behind real time: a few hundred records per batch, like live providers.
                let batch = workload.batch(number, number * BATCH + 200);
                client.post_usage(batch).await?;
                number += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
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
    background.await??;
    latencies.sort();
    Ok(latencies)
}

/// Probe chains measured at once: a probe waits for a fold, so one chain would spend most of the
/// run waiting.
const PROBE_CHAINS: usize = 4;

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
    let mut ingestion = UsageIngestionClient::new(channel(addr, "ResourceProvider").await?);
    let mut tenant = TenantUsageClient::new(channel(addr, "Operator").await?);
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
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(since.elapsed());
    }
    Ok(latencies)
}

/// Latencies of up to `pages` full provider pages of `granularity`, paging from the start.
async fn query(
    addr: &str,
    granularity: AggregationGranularity,
    started: chrono::DateTime<Utc>,
    pages: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut provider = ProviderUsageClient::new(channel(addr, "Operator").await?)
        .max_decoding_message_size(64 << 20);
    let g = match granularity {
        AggregationGranularity::Hourly => Granularity::Hourly,
        _ => Granularity::Daily,
    };
    let now = Utc::now();
    let mut request = ListSubscriberUsageAggregatesRequest {
        reported_start_time: Some(timestamp(g.bucket_start(started))),
        reported_end_time: Some(timestamp(g.bucket_start(now) + Span::seconds(g.seconds()))),
        aggregation_granularity: granularity as i32,
        allow_incomplete: true,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    while latencies.len() < pages {
        let t = Instant::now();
        let page = provider
            .list_subscriber_usage_aggregates(request.clone())
            .await?
            .into_inner();
        let elapsed = t.elapsed();
        if page.usage_aggregates.len() == 1_000 {
            latencies.push(elapsed);
        }
        if page.continuation_token.is_empty() {
            break;
        }
        request.continuation_token = page.continuation_token;
    }
    if std::env::var("TALLY_BENCH_DEBUG").is_ok() {
        let mut slow: Vec<_> = latencies
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_micros() / 100, i))
            .collect();
        slow.sort_unstable_by(|a, b| b.cmp(a));
        let slow: Vec<_> = slow
            .iter()
            .take(10)
            .map(|(tenths, i)| format!("#{i}: {:.1} ms", *tenths as f64 / 10.0))
            .collect();
        eprintln!("{granularity:?} slowest pages: {}", slow.join(", "));
    }
    latencies.sort();
    Ok(latencies)
}

struct Scale {
    records: usize,
    stored: usize,
    samples: usize,
    pages: usize,
}

async fn scratch_postgres(admin: &str, tag: &str) -> anyhow::Result<(String, String)> {
    let name = format!("tally_bench_{tag}_{}", Utc::now().timestamp_micros());
    let conn = sea_orm::Database::connect(admin)
        .await
        .context("connect to PostgreSQL")?;
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let _ = conn.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_postgres(admin: &str, name: &str) {
    if let Ok(conn) = sea_orm::Database::connect(admin).await {
        let _ = conn
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        let _ = conn.close().await;
    }
}

async fn run_backend(
    backend: &str,
    args: &Args,
    scale: &Scale,
    workload: Arc<Workload>,
) -> anyhow::Result<BackendFigures> {
    let dir = tempfile_dir(backend)?;
    let key_file = dir.join("bench.key");
    std::fs::write(&key_file, SECRET)?;
    let mut scratch = Vec::new();
    let (limit_url, serve_url) = match backend {
        "sqlite" => (
            format!("sqlite://{}?mode=rwc", dir.join("limit.db").display()),
            None,
        ),
        _ => {
            let (limit, limit_name) = scratch_postgres(&args.postgres_url, "limit").await?;
            let (serve, serve_name) = scratch_postgres(&args.postgres_url, "serve").await?;
            scratch.push(limit_name);
            scratch.push(serve_name);
            (limit, Some(serve))
        }
    };
    let began = Instant::now();
    let result = async {
        eprintln!(
            "[{backend}] storage limit: bulk insert of {} rows",
            scale.records
        );
        let limit_time = match backend {
            "sqlite" => limit::sqlite(&limit_url, &workload, scale.records).await?,
            _ => limit::postgres(&limit_url, &workload, scale.records).await?,
        };
        if backend == "sqlite" {
            let _ = std::fs::remove_file(dir.join("limit.db"));
        }
        let storage_limit = scale.records as f64 / limit_time.as_secs_f64();

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
        let ingest_rss = server.peak_rss_mib();
        server.stop()?;

        eprintln!("[{backend}] fold: restart with folding on");
        let server = Server::start(&dir, serve_url.as_deref(), &key_file, 250)?;
        let (fold_rate, _) = fold(&server.addr).await?;
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
        fold(&server.addr).await?;
        let fill_rate = fill as f64 / fill_time.as_secs_f64().max(1e-3);
        let stored = pipeline(&server.addr).await?.records_stored;

        eprintln!("[{backend}] query: full pages over {stored} stored records");
        let daily = query(
            &server.addr,
            AggregationGranularity::Daily,
            started,
            scale.pages,
        )
        .await?;
        let hourly = query(
            &server.addr,
            AggregationGranularity::Hourly,
            started,
            scale.pages,
        )
        .await?;
        let status = pipeline(&server.addr).await?;
        let rss = server.peak_rss_mib();
        server.stop()?;
        anyhow::Ok(BackendFigures {
            backend: backend.to_string(),
            records: scale.records,
            streams: args.streams,
            ingest_records_per_second: scale.records as f64 / ingest_time.as_secs_f64(),
            storage_limit_rows_per_second: storage_limit,
            fold_records_per_second: fold_rate,
            fill_records_per_second: fill_rate,
            freshness_p50_ms: percentile(&fresh, 0.5).as_secs_f64() * 1e3,
            freshness_p99_ms: percentile(&fresh, 0.99).as_secs_f64() * 1e3,
            freshness_samples: fresh.len(),
            query_daily_p50_ms: percentile(&daily, 0.5).as_secs_f64() * 1e3,
            query_daily_p99_ms: percentile(&daily, 0.99).as_secs_f64() * 1e3,
            query_hourly_p50_ms: percentile(&hourly, 0.5).as_secs_f64() * 1e3,
            query_hourly_p99_ms: percentile(&hourly, 0.99).as_secs_f64() * 1e3,
            query_pages: daily.len() + hourly.len(),
            records_stored: status.records_stored,
            peak_rss_ingest_mib: ingest_rss,
            peak_rss_fold_mib: fold_rss.max(fresh_rss).max(rss),
            run_seconds: began.elapsed().as_secs_f64(),
        })
    }
    .await;
    if args.keep {
        eprintln!(
            "[{backend}] kept {} and databases {scratch:?}",
            dir.display()
        );
    } else {
        for name in scratch {
            drop_postgres(&args.postgres_url, &name).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn tempfile_dir(backend: &str) -> anyhow::Result<PathBuf> {
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
            samples: 20,
            pages: 20,
        }
    } else {
        Scale {
            records: args.records.unwrap_or(2_000_000),
            stored: args.stored.unwrap_or(10_000_000),
            samples: 200,
            pages: 300,
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
    let workload = Arc::new(Workload::new(Utc::now()));
    let mut figures = Vec::new();
    for backend in backends {
        figures.push(runtime.block_on(run_backend(backend, &args, &scale, workload.clone()))?);
    }
    let report = Report::new(args.quick, figures);
    print!("{}", report.table());
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("results written to {}", args.out.display());
    Ok(())
}
