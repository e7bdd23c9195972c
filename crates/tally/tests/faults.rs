//! Database faults under a running `tally serve`: PostgreSQL dropping its connections mid-ingest
//! (`pg_terminate_backend`, repeatedly, and outages with new connections refused), and the
//! SQLite data folder filling up (a small tmpfs). Callers get retryable errors, never INTERNAL
//! or a hang; retries succeed; nothing acknowledged is lost or doubled; and the same server
//! process recovers, with `/readyz` going false, then true.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_contract_tests::{Backend, TestDatabase};
use tally_core::{Granularity, Quantity};
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::convert::timestamp;
use tally_proto::status;
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, ListSubscriberUsageAggregatesRequest, PipelineStatus,
    PostUsageRequest, PostUsageResponse, provider_usage_client::ProviderUsageClient,
    usage_admin_client::UsageAdminClient, usage_ingestion_client::UsageIngestionClient,
};
use tally_spawn::Listening;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;

/// No call may take longer than this: a dropped connection must fail a call, not hang it.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// `tally serve` on `data_dir` (and `database_url` if given), with an operator token.
fn serve(data_dir: &Path, database_url: Option<&str>) -> (Listening, String) {
    let tally = env!("CARGO_BIN_EXE_tally");
    let data = data_dir.display().to_string();
    let mut command = Command::new(tally);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .args(["--fold-interval-ms", "50"])
        .env("RUST_LOG", "error")
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let server = Listening::start(&mut command).expect("start tally serve");
    let token = Command::new(tally)
        .args(["token", "--role", "operator", "--data-dir", &data])
        .output()
        .expect("tally token");
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    (server, token)
}

async fn channel(server: &Listening, token: &str) -> AuthorizedChannel {
    let channel = Endpoint::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect()
        .await
        .expect("connect to tally serve");
    InterceptedService::new(channel, Bearer::new(Some(token)))
}

/// `GET path` over HTTP/1.1: the status and the body.
async fn http_get(server: &Listening, path: &str, token: Option<&str>) -> (u16, String) {
    let mut io = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let authorization = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\n{authorization}connection: close\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(CALL_DEADLINE, io.read_to_end(&mut response))
        .await
        .expect("an HTTP answer")
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls `/readyz` until it answers `want` (200 or 503); panics after a minute.
async fn wait_readyz(server: &Listening, want: u16) {
    for _ in 0..600 {
        if http_get(server, "/readyz", None).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {want}");
}

const PER_BATCH: usize = 100;
/// Each record's quantity: totals are exact decimals.
const QUANTITY: &str = "0.1";

fn the_hour() -> DateTime<Utc> {
    Granularity::Hourly.bucket_start(Utc::now()) - Span::hours(1)
}

/// Batch `id`: deterministic event ids, so a resend is recognised as the same records.
fn numbered_batch(id: &str, hour: DateTime<Utc>) -> PostUsageRequest {
    batch(
        (0..PER_BATCH)
            .map(|i| {
                record(
                    &format!("{id}-{i}"),
                    SUB_A,
                    meters::BASE_VM_SIZE_HOURS,
                    &format!("vm{}", i % 10),
                    QUANTITY,
                    hour,
                )
            })
            .collect(),
    )
}

/// Posts `batch` until it is acknowledged, retrying after UNAVAILABLE (the only error a dropped
/// connection may cause); the answer and how many tries failed.
async fn post_until_acknowledged(
    client: &mut UsageIngestionClient<AuthorizedChannel>,
    batch: &PostUsageRequest,
) -> (PostUsageResponse, usize) {
    let mut unavailable = 0;
    loop {
        let answer = tokio::time::timeout(CALL_DEADLINE, client.post_usage(batch.clone()))
            .await
            .expect("PostUsage hung");
        match answer {
            Ok(response) => return (response.into_inner(), unavailable),
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                assert_eq!(
                    status::reason(&e).as_deref(),
                    Some("ServiceUnavailable"),
                    "{e:?}"
                );
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn pipeline_status(channel: &AuthorizedChannel) -> Result<PipelineStatus, tonic::Status> {
    tokio::time::timeout(
        CALL_DEADLINE,
        UsageAdminClient::new(channel.clone()).get_pipeline_status(GetPipelineStatusRequest {}),
    )
    .await
    .expect("GetPipelineStatus hung")
    .map(tonic::Response::into_inner)
}

/// Waits until everything stored is folded; the pipeline's status then.
async fn folded(channel: &AuthorizedChannel) -> PipelineStatus {
    for _ in 0..1_200 {
        if let Ok(status) = pipeline_status(channel).await
            && status.records_pending_fold == 0
        {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the records were never folded");
}

/// The sum of every hourly aggregate of the last and next day, exact.
async fn aggregated_total(channel: &AuthorizedChannel) -> Quantity {
    let today = Granularity::Daily.bucket_start(Utc::now());
    let mut client = ProviderUsageClient::new(channel.clone());
    let mut total = Quantity::ZERO;
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
            .await
            .unwrap()
            .into_inner();
        for aggregate in &page.usage_aggregates {
            total += Quantity::parse(&aggregate.quantity).unwrap();
        }
        if page.continuation_token.is_empty() {
            return total;
        }
        token = page.continuation_token;
    }
}

/// `n` records of [`QUANTITY`], exactly.
fn expected_total(n: usize) -> Quantity {
    (0..n).map(|_| Quantity::parse(QUANTITY).unwrap()).sum()
}

/// A REST usage query over the last day (goes to the usage database).
fn usage_path() -> String {
    let today = Granularity::Daily.bucket_start(Utc::now());
    format!(
        "/subscriptions/1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?api-version=2015-06-01-preview&reportedStartTime={}&reportedEndTime={}",
        (today - Span::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        today.format("%Y-%m-%dT%H:%M:%SZ"),
    )
}

/// Terminates every backend serving database `name`; how many there were.
async fn terminate_backends(admin: &DatabaseConnection, name: &str) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            [name.into()],
        ))
        .await
        .expect("terminate backends")
        .expect("a count");
    row.try_get_by_index(0).unwrap()
}

async fn allow_connections(admin: &DatabaseConnection, name: &str, allow: bool) {
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
        .await
        .expect("ALTER DATABASE .. ALLOW_CONNECTIONS");
}

/// Rounds of `pg_terminate_backend` on Tally's backends while it ingests.
const DROP_ROUNDS: usize = 60;
/// Every this many rounds, an outage: new connections are refused for a while.
const OUTAGE_EVERY: usize = 20;
/// Clients posting at once.
const POSTERS: usize = 3;

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "TALLY_TEST_POSTGRES_URL is not set")]
async fn postgres_dropping_connections_mid_ingest_loses_and_doubles_nothing() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let url = db.usage_url();
    let name = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap()
        .to_string();
    let server_url = std::env::var(tally_contract_tests::database::POSTGRES_URL_VAR).unwrap();
    let admin = sea_orm::Database::connect(&server_url).await.unwrap();
    let (server, token) = serve(db.dir(), Some(&url));
    let pid = server.pid();
    let channel = channel(&server, &token).await;
    wait_readyz(&server, 200).await;

    let hour = the_hour();
    let stop = Arc::new(AtomicBool::new(false));
    let mut posters = Vec::new();
    for poster in 0..POSTERS {
        let (stop, channel) = (stop.clone(), channel.clone());
        posters.push(tokio::spawn(async move {
            let mut client = UsageIngestionClient::new(channel);
            let (mut accepted, mut duplicates, mut unavailable) = (0usize, 0usize, 0usize);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let batch = numbered_batch(&format!("drop-{poster}-{n}"), hour);
                let (answer, failed) = post_until_acknowledged(&mut client, &batch).await;
                assert_eq!(
                    answer.accepted as usize + answer.duplicates as usize,
                    PER_BATCH,
                    "{answer:?}"
                );
                accepted += answer.accepted as usize;
                duplicates += answer.duplicates as usize;
                unavailable += failed;
                n += 1;
            }
            (n, accepted, duplicates, unavailable)
        }));
    }

    // Drops while the posters run, with an outage every OUTAGE_EVERY rounds.
    let (mut terminated, mut outages) = (0, 0);
    for round in 1..=DROP_ROUNDS {
        terminated += terminate_backends(&admin, &name).await;
        if round % OUTAGE_EVERY == 0 {
            allow_connections(&admin, &name, false).await;
            terminated += terminate_backends(&admin, &name).await;
            wait_readyz(&server, 503).await;
            // Queries fail as retryable too, on gRPC and REST.
            let e = pipeline_status(&channel).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
            let (code, body) = http_get(&server, &usage_path(), Some(&token)).await;
            assert_eq!(code, 503, "{body}");
            assert!(body.contains("ServiceUnavailable"), "{body}");
            allow_connections(&admin, &name, true).await;
            wait_readyz(&server, 200).await;
            outages += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (mut batches, mut accepted, mut duplicates, mut unavailable) = (0, 0, 0, 0);
    for poster in posters {
        let (n, a, d, u) = poster.await.unwrap();
        batches += n;
        accepted += a;
        duplicates += d;
        unavailable += u;
    }
    eprintln!(
        "PostgreSQL drops: {DROP_ROUNDS} rounds of pg_terminate_backend ({terminated} backends \
         terminated, {outages} outages with connections refused); {batches} batches of \
         {PER_BATCH} acknowledged, {unavailable} UNAVAILABLE retried, {duplicates} duplicates \
         on resend"
    );
    assert!(
        unavailable > 0,
        "the drops reached the callers as UNAVAILABLE"
    );
    assert!(terminated as usize >= DROP_ROUNDS, "{terminated}");

    // Exactly once: the records stored and folded are those posted, and each was accepted once.
    let status = folded(&channel).await;
    assert_eq!(status.records_stored as usize, batches * PER_BATCH);
    assert_eq!(accepted, batches * PER_BATCH, "duplicates: {duplicates}");
    assert_eq!(
        aggregated_total(&channel).await,
        expected_total(batches * PER_BATCH)
    );
    // The same process served it all.
    assert_eq!(server.pid(), pid);
    wait_readyz(&server, 200).await;
    drop(server);
    let _ = admin.close().await;
    db.cleanup().await;
}

/// A tmpfs of `size` mounted on a new folder, unmounted when dropped.
struct SmallFilesystem {
    dir: tempfile::TempDir,
}

impl SmallFilesystem {
    /// `None` (and why) when this process may not mount one: it needs root.
    fn mount(size: &str) -> Result<SmallFilesystem, String> {
        use std::os::unix::fs::MetadataExt as _;
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .map_err(|e| format!("cannot tell the user id: {e}"))?;
        if uid != 0 {
            return Err(format!("mounting a tmpfs needs root; running as uid {uid}"));
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tally-full"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !mounted.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
        }
        Ok(SmallFilesystem { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem of `dir` with a file at `path`, to the last byte it takes.
fn fill(path: &Path) -> u64 {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0;
    for chunk in [1 << 20, 4 << 10, 512, 1] {
        let bytes = vec![0u8; chunk];
        while file
            .write_all(&bytes)
            .and_then(|()| file.sync_all())
            .is_ok()
        {
            written += chunk as u64;
        }
    }
    written
}

/// At most this many batches are posted into a full disk before one must fail.
const FULL_DISK_ATTEMPTS: usize = 400;

#[tokio::test]
async fn a_full_sqlite_data_folder_refuses_batches_whole_and_recovers_once_space_is_freed() {
    let filesystem = match SmallFilesystem::mount("24m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED: a full SQLite data folder is not tested here: {why}");
            return;
        }
    };
    let data = filesystem.path().join("data");
    let (server, token) = serve(&data, None);
    let channel = channel(&server, &token).await;
    let mut client = UsageIngestionClient::new(channel.clone());
    let hour = the_hour();
    let mut acknowledged = 0;
    for b in 0..3 {
        let (answer, _) =
            post_until_acknowledged(&mut client, &numbered_batch(&format!("full-{b}"), hour)).await;
        assert_eq!(answer.accepted as usize, PER_BATCH);
        acknowledged += 1;
    }

    let filler = filesystem.path().join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    // Post until the disk refuses a few batches.
    let mut refused = Vec::new();
    for b in 3..3 + FULL_DISK_ATTEMPTS {
        let batch = numbered_batch(&format!("full-{b}"), hour);
        let answer = tokio::time::timeout(CALL_DEADLINE, client.post_usage(batch.clone()))
            .await
            .expect("PostUsage hung on a full disk");
        match answer {
            Ok(answer) => {
                assert_eq!(answer.into_inner().accepted as usize, PER_BATCH);
                acknowledged += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                assert_eq!(status::reason(&e).as_deref(), Some("StorageFull"), "{e:?}");
                assert!(e.message().contains("disk"), "{e:?}");
                refused.push(batch);
                if refused.len() == 3 {
                    break;
                }
            }
        }
    }
    assert!(
        !refused.is_empty(),
        "{FULL_DISK_ATTEMPTS} batches were all stored on a full disk"
    );
    // Nothing of a refused batch is stored: the store holds exactly the acknowledged ones.
    let stored = pipeline_status(&channel).await.unwrap().records_stored as usize;
    assert_eq!(stored, acknowledged * PER_BATCH);

    // Space freed: the same process takes the refused batches whole (none of their records
    // was stored before), and new ones.
    std::fs::remove_file(&filler).unwrap();
    for batch in &refused {
        let (answer, _) = post_until_acknowledged(&mut client, batch).await;
        assert_eq!(
            (answer.accepted as usize, answer.duplicates),
            (PER_BATCH, 0),
            "a refused batch was partly stored"
        );
        acknowledged += 1;
    }
    let (answer, _) =
        post_until_acknowledged(&mut client, &numbered_batch("full-after", hour)).await;
    assert_eq!(answer.accepted as usize, PER_BATCH);
    acknowledged += 1;
    let status = folded(&channel).await;
    assert_eq!(status.records_stored as usize, acknowledged * PER_BATCH);
    assert_eq!(
        aggregated_total(&channel).await,
        expected_total(acknowledged * PER_BATCH)
    );
    eprintln!(
        "full disk: {} batches refused with StorageFull, none partly stored; {acknowledged} \
         batches stored once space was freed",
        refused.len()
    );
    drop(server);
    drop(filesystem);
}
