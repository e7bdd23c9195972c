//! Overload: 2,000 StreamUsage streams opened at once against `tally serve` with its default
//! limits. Every stream either stores all its batches or is refused cleanly
//! (RESOURCE_EXHAUSTED / `TooManyRequests`), nothing queues without bound (the server's peak
//! RSS stays under a fixed ceiling), and the refused streams, sent again, are all stored: the
//! records stored are exactly those acknowledged.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_core::Granularity;
use tally_proto::bearer::{AuthorizedChannel, Bearer};
use tally_proto::status;
use tally_proto::usage::v1::{
    GetPipelineStatusRequest, PostUsageRequest, usage_admin_client::UsageAdminClient,
    usage_ingestion_client::UsageIngestionClient,
};
use tally_spawn::Listening;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

const STREAMS: usize = 2_000;
/// Streams per HTTP/2 connection (the server allows 256).
const STREAMS_PER_CONNECTION: usize = 100;
const BATCHES_PER_STREAM: usize = 2;
const RECORDS_PER_BATCH: usize = 50;
/// The server's peak resident memory must stay below this, whatever the load.
const RSS_CEILING_KIB: u64 = 512 << 10;

/// How one stream ended.
#[derive(Debug)]
enum Outcome {
    /// Every batch acknowledged, with its records newly stored.
    Stored,
    /// Refused for load, cleanly: RESOURCE_EXHAUSTED with the contract's reason.
    Refused,
}

fn batches(stream: usize) -> Vec<PostUsageRequest> {
    let hour = Granularity::Hourly.bucket_start(Utc::now()) - chrono::Duration::hours(1);
    (0..BATCHES_PER_STREAM)
        .map(|b| {
            batch(
                (0..RECORDS_PER_BATCH)
                    .map(|r| {
                        record(
                            &format!("overload-{stream}-{b}-{r}"),
                            SUB_A,
                            meters::BASE_VM_SIZE_HOURS,
                            &format!("vm{r}"),
                            "1",
                            hour,
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Opens stream `stream`, waits at `opened` until every stream is open (so all 2,000 are in
/// flight together), then sends its batches and reads every answer.
async fn one_stream(
    channel: AuthorizedChannel,
    stream: usize,
    opened: Arc<tokio::sync::Barrier>,
) -> Result<Outcome, String> {
    let (send, outbound) = tokio::sync::mpsc::channel(BATCHES_PER_STREAM);
    let mut client = UsageIngestionClient::new(channel);
    let opening = client
        .stream_usage(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await;
    opened.wait().await;
    let mut responses = match opening {
        Ok(responses) => responses.into_inner(),
        Err(refused) => return refusal(refused),
    };
    for request in batches(stream) {
        if send.send(request).await.is_err() {
            break;
        }
    }
    drop(send);
    let mut acknowledged = 0;
    loop {
        match responses.message().await {
            Ok(Some(response)) => {
                if response.accepted as usize != RECORDS_PER_BATCH {
                    return Err(format!("stream {stream}: {response:?}"));
                }
                acknowledged += 1;
            }
            Ok(None) => break,
            Err(refused) if acknowledged == 0 => return refusal(refused),
            Err(error) => return Err(format!("stream {stream} failed midway: {error:?}")),
        }
    }
    if acknowledged == BATCHES_PER_STREAM {
        Ok(Outcome::Stored)
    } else {
        Err(format!(
            "stream {stream}: {acknowledged} batches acknowledged"
        ))
    }
}

fn refusal(status: tonic::Status) -> Result<Outcome, String> {
    if status.code() == tonic::Code::ResourceExhausted
        && status::reason(&status).as_deref() == Some("TooManyRequests")
    {
        Ok(Outcome::Refused)
    } else {
        Err(format!("not a clean refusal: {status:?}"))
    }
}

/// The peak resident set of process `pid` (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_streams_are_served_or_refused_cleanly_within_bounded_memory() {
    let data = tempfile::tempdir().unwrap();
    let tally = env!("CARGO_BIN_EXE_tally");
    let data_dir = data.path().display().to_string();
    let server = Listening::start(
        Command::new(tally)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data_dir])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit()),
    )
    .expect("start tally serve");
    let token = Command::new(tally)
        .args(["token", "--role", "operator", "--data-dir", &data_dir])
        .output()
        .expect("tally token");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let endpoint = Endpoint::from_shared(format!("http://{}", server.addr())).unwrap();

    let mut connections = Vec::new();
    for _ in 0..STREAMS.div_ceil(STREAMS_PER_CONNECTION) {
        let channel: Channel = endpoint.connect().await.expect("connect");
        connections.push(InterceptedService::new(channel, Bearer::new(Some(&token))));
    }
    let opened = Arc::new(tokio::sync::Barrier::new(STREAMS));
    let tasks: Vec<_> = (0..STREAMS)
        .map(|stream| {
            let channel = connections[stream / STREAMS_PER_CONNECTION].clone();
            tokio::spawn(one_stream(channel, stream, opened.clone()))
        })
        .collect();
    let mut stored = 0;
    let mut refused = Vec::new();
    for (stream, task) in tasks.into_iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("every stream ends")
            .expect("the stream task");
        match outcome {
            Ok(Outcome::Stored) => stored += 1,
            Ok(Outcome::Refused) => refused.push(stream),
            Err(error) => panic!("{error}"),
        }
    }
    let peak_kib = peak_rss_kib(server.pid());
    eprintln!(
        "overload: {stored} streams stored, {} refused; peak RSS of tally serve {} MiB",
        refused.len(),
        peak_kib / 1024
    );
    assert!(stored > 0, "no stream was served");
    assert!(
        refused.len() >= STREAMS - 512,
        "at most 512 requests are in flight, yet only {} of {STREAMS} were refused",
        refused.len()
    );
    assert!(
        peak_kib < RSS_CEILING_KIB,
        "peak RSS {peak_kib} KiB over the ceiling"
    );

    // The refused streams, sent again a few at a time, are all stored.
    for chunk in refused.chunks(64) {
        let retried: Vec<_> = chunk
            .iter()
            .map(|&stream| {
                let channel = connections[stream / STREAMS_PER_CONNECTION].clone();
                tokio::spawn(one_stream(
                    channel,
                    stream,
                    Arc::new(tokio::sync::Barrier::new(1)),
                ))
            })
            .collect();
        for task in retried {
            let outcome = task.await.expect("the retry task");
            assert!(matches!(outcome, Ok(Outcome::Stored)), "{outcome:?}");
        }
    }
    let status = UsageAdminClient::new(connections[0].clone())
        .get_pipeline_status(GetPipelineStatusRequest {})
        .await
        .expect("pipeline status")
        .into_inner();
    assert_eq!(
        status.records_stored,
        (STREAMS * BATCHES_PER_STREAM * RECORDS_PER_BATCH) as u64,
        "stored exactly the acknowledged records"
    );
}
