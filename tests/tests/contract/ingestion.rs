//! Ingestion: acknowledgements, idempotency, conflicts, streams.

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_proto::status;
use tally_proto::usage::v1::AggregationGranularity;

use crate::{provider_rows, q};

on_both_backends!(
    duplicates_change_nothing,
    a_conflicting_event_id_fails_the_whole_batch,
    stream_usage_acknowledges_each_batch_in_order,
    the_server_assigns_reported_time,
    concurrent_batches_fail_alone,
);

async fn duplicates_change_nothing(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = cluster.now() - Duration::minutes(90);
    let hour = tally_core::Granularity::Hourly.bucket_start(hour);
    let first = vec![
        record("e1", SUB_A, meters::BASE_VM_SIZE_HOURS, "vm1", "2", hour),
        record("e2", SUB_A, meters::BASE_VM_SIZE_HOURS, "vm2", "3.5", hour),
        record(
            "e3",
            SUB_B,
            meters::BLOCK_BLOB_CAPACITY,
            "disk",
            "0.25",
            hour,
        ),
    ];
    let mut ingestion = cluster.ingestion();
    let r = ingestion
        .post_usage(batch(first.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.duplicates), (3, 0));
    let r = ingestion
        .post_usage(batch(first.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.duplicates), (0, 3));
    // Old and new together; the same content spelled differently is still the same content.
    let mut respelled = first[0].clone();
    respelled.quantity = "2.000".into();
    respelled.subscription_id = SUB_A.to_uppercase();
    let mixed = vec![
        respelled,
        first[1].clone(),
        record("e4", SUB_B, meters::BLOCK_BLOB_CAPACITY, "disk", "1", hour),
        record("e4", SUB_B, meters::BLOCK_BLOB_CAPACITY, "disk", "1", hour),
    ];
    let r = ingestion
        .post_usage(batch(mixed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.duplicates), (1, 3));

    let end = hour + Duration::hours(2);
    cluster.settle_at(end).await;
    let rows = provider_rows(&cluster, hour, end, AggregationGranularity::Hourly).await;
    let quantities: Vec<String> = rows.values().map(|q| q.to_string()).collect();
    assert_eq!(quantities, ["1.25", "2", "3.5"], "{rows:?}");
    let status = cluster.pipeline_status().await;
    assert_eq!((status.records_stored, status.records_pending_fold), (4, 0));
    cluster.stop().await;
}

async fn a_conflicting_event_id_fails_the_whole_batch(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = tally_core::Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let mut ingestion = cluster.ingestion();
    let stored = record(
        "vm1-0900",
        SUB_A,
        meters::BASE_VM_SIZE_HOURS,
        "vm1",
        "2",
        hour,
    );
    ingestion
        .post_usage(batch(vec![stored.clone()]))
        .await
        .unwrap();

    let mut changed = stored.clone();
    changed.quantity = "3".into();
    let err = ingestion
        .post_usage(batch(vec![
            record("fresh", SUB_B, meters::BASE_VM_SIZE_HOURS, "vm9", "1", hour),
            changed,
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(status::reason(&err).as_deref(), Some("EventIdConflict"));
    assert_eq!(status::fields(&err), ["records[1].event_id"]);
    assert!(err.message().contains("vm1-0900"), "{}", err.message());

    // Nothing of the failed batch was stored: its new record is new still.
    let r = ingestion
        .post_usage(batch(vec![record(
            "fresh",
            SUB_B,
            meters::BASE_VM_SIZE_HOURS,
            "vm9",
            "1",
            hour,
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.duplicates), (1, 0));
    let end = hour + Duration::hours(2);
    cluster.settle_at(end).await;
    let rows = provider_rows(&cluster, hour, end, AggregationGranularity::Hourly).await;
    let total: tally_core::Quantity = rows.values().copied().sum();
    assert_eq!(total, q("3"));
    cluster.stop().await;
}

async fn stream_usage_acknowledges_each_batch_in_order(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = tally_core::Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let batches: Vec<_> = (1..=5)
        .map(|n| {
            batch(
                (0..n)
                    .map(|i| {
                        record(
                            &format!("s{n}-{i}"),
                            SUB_A,
                            meters::BASE_VM_SIZE_HOURS,
                            &format!("vm{i}"),
                            "1",
                            hour,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let mut responses = cluster
        .ingestion()
        .stream_usage(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut accepted = Vec::new();
    while let Some(r) = responses.message().await.unwrap() {
        accepted.push(r.accepted);
        assert!(r.reported_time.is_some());
    }
    assert_eq!(accepted, [1, 2, 3, 4, 5]);
    cluster.stop().await;
}

async fn the_server_assigns_reported_time(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = tally_core::Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let r = cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "t1",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm1",
            "1",
            hour,
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reported_time.unwrap().seconds, cluster.now().timestamp());
    cluster.stop().await;
}

/// Batches stored together (SQLite commits concurrent batches in one transaction) still succeed
/// or fail alone: a conflicting batch among them stores nothing, the others everything.
async fn concurrent_batches_fail_alone(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = tally_core::Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "taken",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm0",
            "1",
            hour,
        )]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for b in 0..12 {
        let mut ingestion = cluster.ingestion();
        let mut records: Vec<_> = (0..300)
            .map(|i| {
                record(
                    &format!("c{b}-{i}"),
                    SUB_A,
                    meters::BASE_VM_SIZE_HOURS,
                    &format!("vm{}", i % 7),
                    "0.5",
                    hour,
                )
            })
            .collect();
        if b == 5 {
            // Same event id as the stored one, other content.
            records.push(record(
                "taken",
                SUB_B,
                meters::BASE_VM_SIZE_HOURS,
                "vm0",
                "9",
                hour,
            ));
        }
        tasks.push(tokio::spawn(async move {
            ingestion.post_usage(batch(records)).await
        }));
    }
    let mut accepted = 0;
    for (b, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(r) => accepted += r.into_inner().accepted,
            Err(e) => {
                assert_eq!(b, 5, "only the conflicting batch fails: {e:?}");
                assert_eq!(status::reason(&e).as_deref(), Some("EventIdConflict"));
            }
        }
    }
    assert_eq!(accepted, 11 * 300);
    let end = hour + Duration::hours(2);
    cluster.settle_at(end).await;
    let status = cluster.pipeline_status().await;
    assert_eq!(status.records_stored, 1 + 11 * 300);
    let rows = provider_rows(&cluster, hour, end, AggregationGranularity::Hourly).await;
    let total: tally_core::Quantity = rows.values().copied().sum();
    assert_eq!(total, q("1651"), "1 + 11 x 300 x 0.5");
    cluster.stop().await;
}
