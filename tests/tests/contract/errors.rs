//! Every error reason of the contract that the usage API can return, with the field it names.

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::Granularity;
use tally_proto::convert::timestamp;
use tally_proto::status;
use tally_proto::usage::v1::AggregationGranularity::{Daily, Hourly};
use tally_proto::usage::v1::{
    ListUsageAggregatesRequest, ListUsageAggregatesResponse, PostUsageRequest,
};

use crate::provider_request;

on_both_backends!(
    ingestion_errors_name_the_field,
    query_errors_name_the_field,
    continuation_tokens_are_tamper_proof,
    processing_not_complete_unless_allowed,
);

fn assert_error(err: &tonic::Status, code: tonic::Code, reason: &str, field: &str) {
    assert_eq!(err.code(), code, "{err:?}");
    assert_eq!(status::reason(err).as_deref(), Some(reason), "{err:?}");
    if !field.is_empty() {
        assert!(
            status::fields(err).iter().any(|f| f == field),
            "{field} not in {err:?}"
        );
        assert!(
            err.message().contains(field),
            "message does not name {field}: {}",
            err.message()
        );
    }
}

async fn ingestion_errors_name_the_field(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let good = || record("ok", SUB_A, meters::BASE_VM_SIZE_HOURS, "vm1", "1", hour);
    let mut ingestion = cluster.ingestion();
    let invalid = tonic::Code::InvalidArgument;

    let mut bad = good();
    bad.event_id = "x".into();
    bad.quantity = "1.5e3".into();
    let err = ingestion
        .post_usage(batch(vec![good(), bad]))
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidProperty", "records[1].quantity");

    let mut bad = good();
    bad.meter_id = "00000000-0000-0000-0000-0000000000aa".into();
    let err = ingestion.post_usage(batch(vec![bad])).await.unwrap_err();
    assert_error(&err, invalid, "UnknownMeter", "records[0].meter_id");

    let mut bad = good();
    bad.subscription_id = "not-a-guid".into();
    let err = ingestion.post_usage(batch(vec![bad])).await.unwrap_err();
    assert_error(
        &err,
        invalid,
        "InvalidProperty",
        "records[0].subscription_id",
    );

    let mut bad = good();
    bad.usage_end_time = Some(timestamp(hour + Duration::minutes(61)));
    let err = ingestion.post_usage(batch(vec![bad])).await.unwrap_err();
    assert_error(
        &err,
        invalid,
        "InvalidProperty",
        "records[0].usage_end_time",
    );

    let err = ingestion
        .post_usage(PostUsageRequest { records: vec![] })
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidProperty", "records");

    let too_many = (0..10_001)
        .map(|i| {
            record(
                &format!("r{i}"),
                SUB_A,
                meters::BASE_VM_SIZE_HOURS,
                "vm1",
                "1",
                hour,
            )
        })
        .collect();
    let err = ingestion.post_usage(batch(too_many)).await.unwrap_err();
    assert_error(&err, invalid, "BatchTooLarge", "records");

    // None of it was stored.
    let r = ingestion
        .post_usage(batch(vec![good()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    cluster.stop().await;
}

async fn query_errors_name_the_field(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now());
    let invalid = tonic::Code::InvalidArgument;
    let mut provider = cluster.provider();

    let mut request = provider_request(hour - Duration::hours(2), hour, Hourly);
    request.aggregation_granularity = 7;
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(
        &err,
        invalid,
        "InvalidAggregationGranularity",
        "aggregation_granularity",
    );

    let request = provider_request(hour - Duration::minutes(90), hour, Hourly);
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidTimeAlignment", "reported_start_time");

    let request = provider_request(hour, hour, Hourly);
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidTimeAlignment", "reported_end_time");

    let day = Granularity::Daily.bucket_start(cluster.now());
    let request = provider_request(day - Duration::days(1), day - Duration::hours(1), Daily);
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidTimeAlignment", "reported_end_time");

    let request = provider_request(hour - Duration::hours(1), hour + Duration::hours(1), Hourly);
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(
        &err,
        invalid,
        "RequestEndTimeIsInFuture",
        "reported_end_time",
    );

    // Issue 10's defect: windows far in the past or future reset the stream (a panic in
    // bucketing) instead of naming the field.
    let year = |y: i32| {
        chrono::NaiveDate::from_ymd_opt(y, 1, 1)
            .unwrap()
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    };
    for (start, end, field) in [
        (year(1), hour, "reported_start_time"),
        (year(1677), hour, "reported_start_time"),
        (year(2300), hour, "reported_start_time"),
        (hour - Duration::hours(1), year(2300), "reported_end_time"),
    ] {
        for granularity in [Hourly, Daily] {
            let err = provider
                .list_subscriber_usage_aggregates(provider_request(start, end, granularity))
                .await
                .unwrap_err();
            assert_error(&err, invalid, "InvalidProperty", field);
            assert!(
                err.message().contains("outside the times Tally keeps"),
                "{err:?}"
            );
        }
    }

    let mut request = provider_request(hour - Duration::hours(1), hour, Hourly);
    request.subscriber_id = "nope".into();
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidProperty", "subscriber_id");

    let mut request = provider_request(hour - Duration::hours(1), hour, Hourly);
    request.page_size = 1001;
    let err = provider
        .list_subscriber_usage_aggregates(request)
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidProperty", "page_size");

    let err = cluster
        .tenant()
        .list_usage_aggregates(ListUsageAggregatesRequest {
            reported_start_time: Some(timestamp(hour - Duration::hours(1))),
            reported_end_time: Some(timestamp(hour)),
            aggregation_granularity: Hourly as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error(&err, invalid, "InvalidProperty", "subscription_id");
    cluster.stop().await;
}

async fn continuation_tokens_are_tamper_proof(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let records = (0..5)
        .map(|i| {
            record(
                &format!("p{i}"),
                SUB_A,
                meters::BASE_VM_SIZE_HOURS,
                &format!("vm{i}"),
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
    let end = hour + Duration::hours(2);
    cluster.settle_at(end).await;
    let mut request = provider_request(hour, end, Hourly);
    request.page_size = 2;
    let mut provider = cluster.provider();
    let first = provider
        .list_subscriber_usage_aggregates(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.usage_aggregates.len(), 2);
    let token = first.continuation_token.clone();
    assert!(!token.is_empty());

    let mut next = request.clone();
    next.continuation_token = token.clone();
    let second = provider
        .list_subscriber_usage_aggregates(next.clone())
        .await
        .unwrap()
        .into_inner();
    let mut last = request.clone();
    last.continuation_token = second.continuation_token.clone();
    let third = provider
        .list_subscriber_usage_aggregates(last)
        .await
        .unwrap()
        .into_inner();
    // The genuine token resumes where the first page ended: every row once, in three pages.
    let resources = |page: &ListUsageAggregatesResponse| -> Vec<String> {
        page.usage_aggregates
            .iter()
            .map(|r| {
                let uri = &r.instance_data.as_ref().unwrap().resource_uri;
                uri.rsplit('/').next().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(
        [&first, &second, &third].map(|page| resources(page).len()),
        [2, 2, 1]
    );
    assert!(third.continuation_token.is_empty());
    let mut seen: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|page| resources(page))
        .collect();
    seen.sort();
    assert_eq!(seen, ["vm0", "vm1", "vm2", "vm3", "vm4"]);

    let mut tampered = next.clone();
    let mut chars: Vec<char> = token.chars().collect();
    chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
    tampered.continuation_token = chars.into_iter().collect();
    let err = provider
        .list_subscriber_usage_aggregates(tampered)
        .await
        .unwrap_err();
    assert_error(
        &err,
        tonic::Code::InvalidArgument,
        "InvalidContinuationToken",
        "continuation_token",
    );

    let mut other_query = provider_request(hour - Duration::hours(1), end, Hourly);
    other_query.continuation_token = token.clone();
    let err = provider
        .list_subscriber_usage_aggregates(other_query)
        .await
        .unwrap_err();
    assert_error(
        &err,
        tonic::Code::InvalidArgument,
        "InvalidContinuationToken",
        "continuation_token",
    );

    let mut garbage = request.clone();
    garbage.continuation_token = "%%%".into();
    let err = provider
        .list_subscriber_usage_aggregates(garbage)
        .await
        .unwrap_err();
    assert_error(
        &err,
        tonic::Code::InvalidArgument,
        "InvalidContinuationToken",
        "continuation_token",
    );
    cluster.stop().await;
}

async fn processing_not_complete_unless_allowed(backend: Backend) {
    let (cluster, start, end) = Cluster::start_with_unfolded_window(backend).await;
    let mut provider = cluster.provider();
    let request = provider_request(start, end, Hourly);
    let err = provider
        .list_subscriber_usage_aggregates(request.clone())
        .await
        .unwrap_err();
    assert_error(
        &err,
        tonic::Code::FailedPrecondition,
        "ProcessingNotComplete",
        "",
    );

    let mut allowed = request;
    allowed.allow_incomplete = true;
    let page = provider
        .list_subscriber_usage_aggregates(allowed)
        .await
        .unwrap()
        .into_inner();
    assert!(page.usage_aggregates.is_empty(), "nothing is folded yet");
    assert!(page.complete_through.unwrap().seconds < end.timestamp());
    cluster.stop().await;
}
