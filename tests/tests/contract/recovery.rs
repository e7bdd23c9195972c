//! Killing the aggregator mid-stream, and restarting it, loses and double-counts nothing.

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::{Granularity, Quantity};
use tally_proto::status;
use tally_proto::usage::v1::AggregationGranularity::Hourly;
use tally_proto::usage::v1::PostUsageRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{provider_rows, q};

on_both_backends!(killing_the_aggregator_mid_stream_loses_and_double_counts_nothing);

const BATCHES: usize = 30;
const PER_BATCH: usize = 500;
const CRASHES: usize = 2;

async fn killing_the_aggregator_mid_stream_loses_and_double_counts_nothing(backend: Backend) {
    let mut cluster = Cluster::start(backend, Topology::Remote).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let batches: Vec<PostUsageRequest> = (0..BATCHES)
        .map(|b| {
            batch(
                (0..PER_BATCH)
                    .map(|i| {
                        let sub = if i % 3 == 0 { SUB_B } else { SUB_A };
                        record(
                            &format!("b{b}-r{i}"),
                            sub,
                            meters::BASE_VM_SIZE_HOURS,
                            &format!("vm{}", i % 40),
                            "0.25",
                            hour,
                        )
                    })
                    .collect(),
            )
        })
        .collect();

    // The client's side of a retry protocol: resend everything not acknowledged (and, to prove
    // retries are idempotent, the last two that were).
    let mut acknowledged = 0;
    let mut crashes = 0;
    // What the crashes did, as the caller saw it: each one failed its stream with UNAVAILABLE,
    // and each resend reported the batches it had already acknowledged as duplicates.
    let mut unavailable = 0;
    let mut duplicates = 0;
    while acknowledged < BATCHES {
        let from = acknowledged.saturating_sub(2);
        let (tx, rx) = mpsc::channel(2);
        let to_send = batches[from..].to_vec();
        let sender = tokio::spawn(async move {
            for b in to_send {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
        let mut responses = match cluster
            .ingestion()
            .stream_usage(ReceiverStream::new(rx))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("stream refused: {e:?}"),
        };
        let mut index = from;
        let mut acked_this_round = 0;
        loop {
            match responses.message().await {
                Ok(Some(r)) => {
                    assert_eq!(r.accepted + r.duplicates, PER_BATCH as u32);
                    duplicates += r.duplicates as usize;
                    index += 1;
                    acknowledged = acknowledged.max(index);
                    acked_this_round += 1;
                    if crashes < CRASHES && acked_this_round == 6 {
                        cluster.crash_aggregator();
                        crashes += 1;
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
                    assert_eq!(status::reason(&e).as_deref(), Some("ServiceUnavailable"));
                    unavailable += 1;
                    break;
                }
            }
        }
        sender.abort();
        if acknowledged < BATCHES {
            cluster.restart_aggregator().await;
        }
    }
    assert_eq!(crashes, CRASHES);
    assert!(
        unavailable >= CRASHES,
        "every crash reached the caller as UNAVAILABLE: {unavailable}"
    );
    assert!(
        duplicates >= CRASHES * 2 * PER_BATCH,
        "each resend after a crash reports its two acknowledged batches as duplicates: {duplicates}"
    );

    let end = hour + Duration::hours(2);
    cluster.settle_at(end).await;
    let status = cluster.pipeline_status().await;
    assert_eq!(status.records_stored, (BATCHES * PER_BATCH) as u64);
    let rows = provider_rows(&cluster, hour, end, Hourly).await;
    assert_eq!(rows.len(), 80);
    let total: Quantity = rows.values().copied().sum();
    assert_eq!(total, q("3750"), "30 x 500 x 0.25");
    cluster.stop().await;
}
