//! Paging over more than 3000 rows returns every row exactly once while ingestion goes on:
//! between pages, new usage of the paged instances is stored and folded.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::{Granularity, Quantity};
use tally_proto::usage::v1::AggregationGranularity::Hourly;

use crate::{RowId, provider_request, q, row_id};

on_both_backends!(
    paging_returns_every_row_exactly_once_while_ingestion_goes_on,
    summed_rows_are_one_per_hour_subscription_and_meter_and_page_exactly
);

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

    // Ingestion goes on between pages: each gap posts usage of the very instances being paged
    // (their usage hour, and the hour before, whose rows sort before every paged key), reported
    // after the window, and folds it. The window's rows must not change.
    let mut request = provider_request(hour, window_end, Hourly);
    let mut seen: BTreeMap<RowId, Quantity> = BTreeMap::new();
    let mut pages = 0;
    let mut stored = Vec::new();
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

        let records = (0..ROWS)
            .step_by(7)
            .map(|i| {
                let sub = if i % 2 == 0 { SUB_A } else { SUB_B };
                let usage = hour - Duration::hours(1 + (i % 2) as i64);
                record(
                    &format!("more-{pages}-{i}"),
                    sub,
                    meters::BASE_VM_SIZE_HOURS,
                    &format!("vm{i:05}"),
                    "1",
                    usage,
                )
            })
            .collect();
        let posted = cluster
            .ingestion()
            .post_usage(batch(records))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(posted.accepted as usize, ROWS.div_ceil(7));
        cluster
            .settle_at(cluster.now() + Duration::minutes(1))
            .await;
        let status = cluster.pipeline_status().await;
        assert_eq!(status.records_pending_fold, 0, "folded between pages");
        stored.push(status.records_stored);
    }
    // Storage changed, and was folded, between every two pages.
    assert_eq!(pages, 4);
    let base = ROWS as u64;
    let per_gap = ROWS.div_ceil(7) as u64;
    assert_eq!(
        stored,
        (1..pages as u64)
            .map(|gap| base + gap * per_gap)
            .collect::<Vec<_>>()
    );
    assert_eq!(seen.len(), ROWS);
    assert_eq!(seen, expected);
    Arc::try_unwrap(cluster)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

/// `sum_instances` (how billing reads usage for statements): one row per (usage hour,
/// subscription, meter) with the exact sum over its instances and no instance data, paged one
/// row at a time without loss or repetition; its tokens do not serve a query without it.
async fn summed_rows_are_one_per_hour_subscription_and_meter_and_page_exactly(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now());
    let (vm, blob) = (meters::BASE_VM_SIZE_HOURS, meters::BLOCK_BLOB_CAPACITY);
    let mut expected: BTreeMap<(String, String, i64), Quantity> = BTreeMap::new();
    let mut records = Vec::new();
    for (i, (sub, meter, back)) in [SUB_A, SUB_B]
        .into_iter()
        .flat_map(|sub| [vm, blob].map(|meter| (sub, meter)))
        .flat_map(|(sub, meter)| [1, 2].map(|back| (sub, meter, back)))
        .enumerate()
    {
        let usage_hour = hour - Duration::hours(back);
        for instance in 0..3 {
            let quantity = format!("{i}.{instance}000000001");
            records.push(record(
                &format!("sum-{i}-{instance}"),
                sub,
                meter,
                &format!("res{instance}"),
                &quantity,
                usage_hour,
            ));
            *expected
                .entry((sub.to_string(), meter.to_string(), usage_hour.timestamp()))
                .or_insert(Quantity::ZERO) += q(&quantity);
        }
    }
    cluster
        .ingestion()
        .post_usage(batch(records))
        .await
        .unwrap();
    let window_end = hour + Duration::hours(1);
    cluster.settle_at(window_end + Duration::minutes(5)).await;

    let mut request = provider_request(hour, window_end, Hourly);
    request.sum_instances = true;
    request.page_size = 1;
    let mut seen: BTreeMap<(String, String, i64), Quantity> = BTreeMap::new();
    let mut first_token = None;
    loop {
        let page = cluster
            .provider()
            .list_subscriber_usage_aggregates(request.clone())
            .await
            .unwrap()
            .into_inner();
        for row in page.usage_aggregates {
            assert!(row.instance_data.is_none(), "summed: {row:?}");
            let (sub, meter, _, start) = row_id(&row);
            assert!(
                seen.insert((sub, meter, start), q(&row.quantity)).is_none(),
                "row returned twice: {row:?}"
            );
        }
        if page.continuation_token.is_empty() {
            break;
        }
        first_token.get_or_insert(page.continuation_token.clone());
        request.continuation_token = page.continuation_token;
    }
    assert_eq!(seen, expected);

    let mut detailed = provider_request(hour, window_end, Hourly);
    detailed.continuation_token = first_token.expect("several pages");
    let refused = cluster
        .provider()
        .list_subscriber_usage_aggregates(detailed)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}
