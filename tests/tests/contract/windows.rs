//! Reported windows: daily and hourly agree, late data lands in the window it was reported in,
//! and a closed window's answer never changes.

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::{Granularity, Quantity};
use tally_proto::usage::v1::AggregationGranularity::{Daily, Hourly};

use crate::{RowId, provider_pages, provider_request, provider_rows, q};

on_both_backends!(
    daily_equals_the_sum_of_hourly,
    daily_equals_the_sum_of_hourly_through_a_remote_aggregator,
    a_late_record_appears_in_the_later_window_only,
    a_closed_window_never_changes,
);

async fn daily_equals_the_sum_of_hourly(backend: Backend) {
    daily_and_hourly_agree(Cluster::start(backend, Topology::InProcess).await).await;
}

async fn daily_equals_the_sum_of_hourly_through_a_remote_aggregator(backend: Backend) {
    daily_and_hourly_agree(Cluster::start(backend, Topology::Remote).await).await;
}

async fn daily_and_hourly_agree(cluster: Cluster) {
    let day = Granularity::Daily.bucket_start(cluster.now());
    let mut ingestion = cluster.ingestion();
    // Two reporting rounds, so rows span several reported hours too.
    for (round, report_at) in [day + Duration::hours(10), day + Duration::hours(15)]
        .into_iter()
        .enumerate()
    {
        cluster.clock.set(report_at + Duration::minutes(7));
        let mut records = Vec::new();
        for hour in 0..report_at.signed_duration_since(day).num_hours() {
            for (sub, meter, resource) in [
                (SUB_A, meters::BASE_VM_SIZE_HOURS, "vm1"),
                (SUB_A, meters::BLOCK_BLOB_CAPACITY, "blob"),
                (SUB_B, meters::BASE_VM_SIZE_HOURS, "vm2"),
            ] {
                let quantity = format!("{}.{:02}3", hour + 1, round * 7 + 1);
                records.push(record(
                    &format!("{round}-{sub}-{meter}-{hour}"),
                    sub,
                    meter,
                    resource,
                    &quantity,
                    day + Duration::hours(hour),
                ));
            }
        }
        ingestion.post_usage(batch(records)).await.unwrap();
    }
    cluster.settle_at(day + Duration::days(1)).await;
    let end = day + Duration::days(1);
    let hourly = provider_rows(&cluster, day, end, Hourly).await;
    let daily = provider_rows(&cluster, day, end, Daily).await;
    assert_eq!(daily.len(), 3, "{daily:?}");
    let mut summed: BTreeMap<RowId, Quantity> = BTreeMap::new();
    for ((sub, meter, resource, start), quantity) in &hourly {
        let day_start = Granularity::Daily.bucket_of(*start);
        *summed
            .entry((sub.clone(), meter.clone(), resource.clone(), day_start))
            .or_default() += *quantity;
    }
    assert_eq!(daily, summed);
    // And each figure is what was posted: hours 0..10 twice plus hours 10..15 once.
    let vm1: Quantity = daily
        .iter()
        .find(|((s, m, _, _), _)| s == SUB_A && m == meters::BASE_VM_SIZE_HOURS)
        .map(|(_, q)| *q)
        .unwrap();
    let expected: Quantity = (0..10)
        .map(|h| q(&format!("{}.013", h + 1)))
        .chain((0..15).map(|h| q(&format!("{}.083", h + 1))))
        .sum();
    assert_eq!(vm1, expected);
    cluster.stop().await;
}

async fn a_late_record_appears_in_the_later_window_only(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let day = Granularity::Daily.bucket_start(cluster.now());
    let nine = day + Duration::hours(9);
    let mut ingestion = cluster.ingestion();
    cluster
        .clock
        .set(day + Duration::hours(10) + Duration::minutes(30));
    ingestion
        .post_usage(batch(vec![record(
            "on-time",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm1",
            "4",
            nine,
        )]))
        .await
        .unwrap();
    cluster
        .clock
        .set(day + Duration::hours(12) + Duration::minutes(10));
    ingestion
        .post_usage(batch(vec![record(
            "late",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm1",
            "0.5",
            nine,
        )]))
        .await
        .unwrap();
    cluster.settle_at(day + Duration::hours(13)).await;

    let window = |from: i64, to: i64| (day + Duration::hours(from), day + Duration::hours(to));
    let only = |rows: BTreeMap<RowId, Quantity>| -> Vec<(i64, String)> {
        rows.into_iter()
            .map(|((_, _, _, start), q)| (start, q.to_string()))
            .collect()
    };
    let nine_s = nine.timestamp();
    let (s, e) = window(10, 11);
    assert_eq!(
        only(provider_rows(&cluster, s, e, Hourly).await),
        [(nine_s, "4".to_string())]
    );
    let (s, e) = window(11, 12);
    assert!(provider_rows(&cluster, s, e, Hourly).await.is_empty());
    let (s, e) = window(12, 13);
    assert_eq!(
        only(provider_rows(&cluster, s, e, Hourly).await),
        [(nine_s, "0.5".to_string())]
    );
    let (s, e) = window(10, 13);
    assert_eq!(
        only(provider_rows(&cluster, s, e, Hourly).await),
        [(nine_s, "4.5".to_string())]
    );
    cluster.stop().await;
}

async fn a_closed_window_never_changes(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let day = Granularity::Daily.bucket_start(cluster.now());
    let mut ingestion = cluster.ingestion();
    let records: Vec<_> = (0..10)
        .map(|h| {
            record(
                &format!("a{h}"),
                SUB_A,
                meters::BASE_VM_SIZE_HOURS,
                "vm1",
                "1.5",
                day + Duration::hours(h),
            )
        })
        .collect();
    ingestion.post_usage(batch(records)).await.unwrap();
    let next_day = day + Duration::days(1);
    cluster.settle_at(next_day).await;

    let hourly_request =
        provider_request(day + Duration::hours(10), day + Duration::hours(11), Hourly);
    let daily_request = provider_request(day, next_day, Daily);
    let before = (
        provider_pages(&cluster, hourly_request.clone()).await,
        provider_pages(&cluster, daily_request.clone()).await,
    );
    assert_eq!(before.1[0].usage_aggregates.len(), 1);
    assert_eq!(before.1[0].usage_aggregates[0].quantity, "15");

    // More usage of the same hours arrives after the window closed.
    cluster.clock.set(next_day + Duration::minutes(20));
    let late: Vec<_> = (0..10)
        .map(|h| {
            record(
                &format!("b{h}"),
                SUB_A,
                meters::BASE_VM_SIZE_HOURS,
                "vm1",
                "2",
                day + Duration::hours(h),
            )
        })
        .collect();
    ingestion.post_usage(batch(late)).await.unwrap();
    cluster.settle_at(next_day + Duration::hours(2)).await;

    let after = (
        provider_pages(&cluster, hourly_request).await,
        provider_pages(&cluster, daily_request).await,
    );
    let strip = |pages: &[tally_proto::usage::v1::ListUsageAggregatesResponse]| -> Vec<_> {
        pages
            .iter()
            .map(|p| (p.usage_aggregates.clone(), p.continuation_token.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before.0), strip(&after.0));
    assert_eq!(strip(&before.1), strip(&after.1));
    // The late usage is in the window it was reported in.
    // That day is still open: only allow_incomplete reads it.
    let mut open = provider_request(next_day, next_day + Duration::days(1), Daily);
    open.allow_incomplete = true;
    let pages = provider_pages(&cluster, open).await;
    let rows = &pages[0].usage_aggregates;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].quantity, "20");
    assert_eq!(
        rows[0].usage_start_time.as_ref().unwrap().seconds,
        day.timestamp()
    );
    assert_eq!(
        Utc.timestamp_opt(pages[0].complete_through.as_ref().unwrap().seconds, 0)
            .unwrap(),
        next_day + Duration::hours(2)
    );
    cluster.stop().await;
}
