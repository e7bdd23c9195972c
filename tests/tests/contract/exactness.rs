//! Quantities are exact decimals end to end, on both backends.

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::Granularity;
use tally_proto::usage::v1::AggregationGranularity::{Daily, Hourly};

use crate::provider_rows;

on_both_backends!(
    a_hundred_thousand_tenths_make_exactly_ten_thousand,
    tiny_and_huge_quantities_sum_exactly
);

async fn a_hundred_thousand_tenths_make_exactly_ten_thousand(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let day = Granularity::Daily.bucket_start(cluster.now());
    let hour = day + Duration::hours(8);
    let mut ingestion = cluster.ingestion();
    for b in 0..10 {
        let records = (0..10_000)
            .map(|i| {
                record(
                    &format!("tenth-{b}-{i}"),
                    SUB_A,
                    meters::BASE_VM_SIZE_HOURS,
                    "vm1",
                    "0.1",
                    hour,
                )
            })
            .collect();
        let r = ingestion
            .post_usage(batch(records))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted, 10_000);
    }
    let next_day = day + Duration::days(1);
    cluster.settle_at(next_day).await;
    for granularity in [Hourly, Daily] {
        let rows = provider_rows(&cluster, day, next_day, granularity).await;
        let quantities: Vec<String> = rows.values().map(|q| q.to_string()).collect();
        assert_eq!(quantities, ["10000"], "{granularity:?}");
    }
    cluster.stop().await;
}

async fn tiny_and_huge_quantities_sum_exactly(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let day = Granularity::Daily.bucket_start(cluster.now());
    let hour = day + Duration::hours(8);
    let mut ingestion = cluster.ingestion();
    let tiny = (0..1_234)
        .map(|i| {
            record(
                &format!("tiny-{i}"),
                SUB_A,
                meters::BLOB_TRANSACTIONS,
                "blob",
                "0.0000000001",
                hour,
            )
        })
        .collect();
    ingestion.post_usage(batch(tiny)).await.unwrap();
    // Three records just under 10^18 each: the total passes 10^18 with all ten fractional digits.
    for round in 0..3 {
        ingestion
            .post_usage(batch(vec![record(
                &format!("huge-{round}"),
                SUB_A,
                meters::BLOCK_BLOB_CAPACITY,
                "blob",
                "999999999999999999.9999999999",
                hour,
            )]))
            .await
            .unwrap();
        // Fold between rounds, so the carry also happens inside the database's upsert.
        let at = cluster.now() + Duration::seconds(1);
        cluster.settle_at(at).await;
    }
    let next_day = day + Duration::days(1);
    cluster.settle_at(next_day).await;
    for granularity in [Hourly, Daily] {
        let rows = provider_rows(&cluster, day, next_day, granularity).await;
        let mut quantities: Vec<String> = rows.values().map(|q| q.to_string()).collect();
        quantities.sort();
        assert_eq!(
            quantities,
            ["0.0000001234", "2999999999999999999.9999999997"],
            "{granularity:?}"
        );
    }
    cluster.stop().await;
}
