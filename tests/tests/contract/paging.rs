//! Paging over more than 3000 rows returns every row exactly once while ingestion goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::{Granularity, Quantity};
use tally_proto::usage::v1::AggregationGranularity::Hourly;

use crate::{RowId, provider_request, q, row_id};

on_both_backends!(paging_returns_every_row_exactly_once_while_ingestion_goes_on);

const ROWS: usize = 3_500;

async fn paging_returns_every_row_exactly_once_while_ingestion_goes_on(backend: Backend) {
    let cluster = Arc::new(Cluster::start(backend, Topology::InProcess).await);
    let hour = Granularity::Hourly.bucket_start(cluster.now());
    let mut expected: BTreeMap<RowId, Quantity> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..ROWS {
        let sub = if i % 2 == 0 { SUB_A } else { SUB_B };
        let quantity = format!("{}.{}", i, i % 10);
        let r = record(
            &format!("row-{i}"),
            sub,
            meters::BASE_VM_SIZE_HOURS,
            &format!("vm{i:05}"),
            &quantity,
            hour - Duration::hours(1),
        );
        expected.insert(
            (
                sub.to_string(),
                meters::BASE_VM_SIZE_HOURS.to_string(),
                r.resource_uri.clone(),
                (hour - Duration::hours(1)).timestamp(),
            ),
            q(&quantity),
        );
        records.push(r);
    }
    for chunk in records.chunks(1_000) {
        cluster
            .ingestion()
            .post_usage(batch(chunk.to_vec()))
            .await
            .unwrap();
    }
    let window_end = hour + Duration::hours(1);
    cluster.settle_at(window_end + Duration::minutes(5)).await;

    // Ingestion goes on: more usage of the same and new resources, reported after the window.
    let running = Arc::new(AtomicBool::new(true));
    let feeder = {
        let cluster = cluster.clone();
        let running = running.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                let records = (0..200)
                    .map(|i| {
                        let k = n * 200 + i;
                        record(
                            &format!("more-{k}"),
                            SUB_A,
                            meters::BASE_VM_SIZE_HOURS,
                            &format!("vm{:05}", k % 5_000),
                            "1",
                            hour,
                        )
                    })
                    .collect();
                cluster
                    .ingestion()
                    .post_usage(batch(records))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };

    let mut request = provider_request(hour, window_end, Hourly);
    let mut seen: BTreeMap<RowId, Quantity> = BTreeMap::new();
    let mut pages = 0;
    loop {
        let page = cluster
            .provider()
            .list_subscriber_usage_aggregates(request.clone())
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.usage_aggregates.len() <= 1_000);
        for row in &page.usage_aggregates {
            assert!(
                seen.insert(row_id(row), q(&row.quantity)).is_none(),
                "row returned twice: {row:?}"
            );
        }
        if page.continuation_token.is_empty() {
            break;
        }
        request.continuation_token = page.continuation_token;
        tokio::task::yield_now().await;
    }
    running.store(false, Ordering::Relaxed);
    let fed_batches = feeder.await.unwrap();
    assert!(fed_batches > 0, "ingestion did not overlap the paging");
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), ROWS);
    assert_eq!(seen, expected);
    Arc::try_unwrap(cluster)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}
