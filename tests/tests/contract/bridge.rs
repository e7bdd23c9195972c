//! The usage bridge and the reference commerce receiver (`tally.bridge.v1`,
//! `tally.commerce.v1`): each closed reported day is uploaded exactly once, billed to the right
//! subscription, through outages, crashes, permanent errors and mapping changes; days closed
//! while usage may not be reported are skipped; only operators watch the bridge, and the
//! receiver checks its token and its input.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tally_contract_tests::cluster::RECEIVER_TOKEN;
use tally_contract_tests::records::{batch, meters, record};
use tally_contract_tests::rest;
use tally_contract_tests::world::{
    self, CLOUD_ID, OTHER_SUBSCRIPTION, OTHER_TENANT, OWNED_SUBSCRIPTION, OWNER_TENANT,
    REGISTRATION_SUBSCRIPTION,
};
use tally_contract_tests::{Backend, Cluster, Identity, on_both_backends};
use tally_core::{Granularity, Quantity};
use tally_proto::bridge::v1 as bridge;
use tally_proto::commerce::v1 as commerce;
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::status;
use tally_proto::usage::v1::AggregationGranularity;
use tonic::Code;

use crate::{provider_pages, provider_request};

on_both_backends!(
    uploads_equal_the_chargeable_daily_sums,
    an_outage_of_three_days_drains_in_order,
    a_crash_after_the_acknowledgement_is_a_duplicate_upstream,
    a_mapping_change_affects_only_days_sealed_later,
    a_permanent_error_parks_one_batch_and_retry_delivers_it,
    days_closed_without_reporting_are_skipped,
    only_operators_watch_the_bridge_and_the_receiver_checks_its_callers,
    the_bridge_over_rest,
    a_split_bridge_delivers_each_closed_day_once,
);

const CUSTOMER_A: &str = "aa000000-0000-4000-8000-00000000000a";
const CUSTOMER_B: &str = "bb000000-0000-4000-8000-00000000000b";
/// Known to no tenant: its usage is billed to the registration subscription, with no tenant.
const UNKNOWN_SUBSCRIPTION: &str = "5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b";

/// (billing subscription, meter, usage day in Unix seconds) -> quantity.
type Totals = BTreeMap<(String, String, i64), Quantity>;

fn midnight(time: DateTime<Utc>) -> DateTime<Utc> {
    Granularity::Daily.bucket_start(time)
}

/// A bridged cluster with the installation registered (pay-as-you-use, multi-tenancy on), the
/// owner and other tenants with a subscription each, and the owner mapped to CUSTOMER_A.
async fn installation(backend: Backend, registered: bool) -> Cluster {
    set_up(Cluster::start_with_bridge(backend).await, registered).await
}

/// [`installation`] on any bridged cluster.
async fn set_up(cluster: Cluster, registered: bool) -> Cluster {
    let operator = cluster.operator();
    if registered {
        world::register(operator, reg::BillingModel::PayAsYouUse, true).await;
    }
    for (tenant, subscription) in [
        (OWNER_TENANT, OWNED_SUBSCRIPTION),
        (OTHER_TENANT, OTHER_SUBSCRIPTION),
    ] {
        operator
            .tenancy()
            .create_tenant(reg::CreateTenantRequest {
                tenant: Some(reg::Tenant {
                    tenant_id: tenant.into(),
                    display_name: tenant.into(),
                }),
            })
            .await
            .unwrap();
        operator
            .tenancy()
            .create_subscription(reg::CreateSubscriptionRequest {
                subscription: Some(reg::Subscription {
                    subscription_id: subscription.into(),
                    display_name: "s".into(),
                    owner_tenant_id: tenant.into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    if registered {
        map(&cluster, OWNER_TENANT, CUSTOMER_A).await;
    }
    cluster
}

async fn map(cluster: &Cluster, tenant: &str, customer: &str) {
    cluster
        .operator()
        .registration()
        .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
            tenant_id: tenant.into(),
            customer_subscription_id: customer.into(),
        })
        .await
        .unwrap();
}

/// Posts one reported day's usage (`tag` keeps event ids apart): chargeable and non-chargeable
/// meters, mapped, unmapped and unknown subscriptions, and late records of the day before.
async fn post_day(cluster: &Cluster, tag: &str, scale: u32) {
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - TimeDelta::hours(1);
    let late = hour - TimeDelta::days(1);
    let mut records = Vec::new();
    for (i, subscription) in [OWNED_SUBSCRIPTION, OTHER_SUBSCRIPTION, UNKNOWN_SUBSCRIPTION]
        .into_iter()
        .enumerate()
    {
        for (j, meter) in [
            meters::BASE_VM_SIZE_HOURS,
            meters::VM_SIZE_HOURS,
            meters::BLOCK_BLOB_CAPACITY,
            meters::STATIC_IP_ADDRESS_USAGE,
        ]
        .into_iter()
        .enumerate()
        {
            let quantity = format!("{}.{:03}", scale * (i as u32 + 1) + j as u32, 7 * j + i);
            records.push(record(
                &format!("{tag}-{i}-{j}"),
                subscription,
                meter,
                &format!("vm{j}"),
                &quantity,
                hour,
            ));
            records.push(record(
                &format!("{tag}-{i}-{j}-late"),
                subscription,
                meter,
                &format!("vm{j}"),
                "0.5",
                late,
            ));
        }
    }
    cluster
        .ingestion()
        .post_usage(batch(records))
        .await
        .expect("post the day's usage");
}

/// Closes the reported day the clock is in: moves to the next midnight plus a minute.
async fn close_day(cluster: &Cluster) -> DateTime<Utc> {
    let day = midnight(cluster.now());
    cluster
        .settle_at(day + TimeDelta::days(1) + TimeDelta::minutes(1))
        .await;
    day
}

async fn chargeable_meters(cluster: &Cluster) -> HashSet<String> {
    cluster
        .admin()
        .list_meters(tally_proto::usage::v1::ListMetersRequest {
            include_deprecated: true,
        })
        .await
        .unwrap()
        .into_inner()
        .meters
        .into_iter()
        .filter(|m| m.chargeable)
        .map(|m| m.meter_id)
        .collect()
}

/// What the receiver should hold for reported `day`: its chargeable DAILY rows, as the usage
/// API answers them, billed as `billing` says.
async fn expected_for_day(
    cluster: &Cluster,
    day: DateTime<Utc>,
    billing: &dyn Fn(&str) -> String,
    into: &mut Totals,
) {
    let chargeable = chargeable_meters(cluster).await;
    let rows = provider_pages(
        cluster,
        provider_request(day, day + TimeDelta::days(1), AggregationGranularity::Daily),
    )
    .await
    .into_iter()
    .flat_map(|page| page.usage_aggregates);
    let mut non_chargeable = 0;
    for row in rows {
        if !chargeable.contains(&row.meter_id) {
            non_chargeable += 1;
            continue;
        }
        let key = (
            billing(&row.subscription_id),
            row.meter_id.clone(),
            row.usage_start_time.unwrap().seconds,
        );
        *into.entry(key).or_default() += row.quantity.parse::<Quantity>().unwrap();
    }
    assert!(non_chargeable > 0, "the day holds non-chargeable usage too");
}

fn billing_with(owner_customer: &'static str) -> impl Fn(&str) -> String {
    move |subscription: &str| match subscription {
        OWNED_SUBSCRIPTION => owner_customer.to_string(),
        _ => REGISTRATION_SUBSCRIPTION.to_string(),
    }
}

async fn receiver_totals(cluster: &Cluster) -> Totals {
    let totals = cluster
        .receiver(Some(RECEIVER_TOKEN))
        .await
        .list_totals(commerce::ListTotalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .totals;
    totals
        .into_iter()
        .map(|t| {
            (
                (
                    t.billing_subscription_id,
                    t.meter_id,
                    t.usage_day.unwrap().seconds,
                ),
                t.quantity.parse().unwrap(),
            )
        })
        .collect()
}

async fn receiver_state(cluster: &Cluster) -> commerce::ReceiverState {
    cluster
        .receiver(Some(RECEIVER_TOKEN))
        .await
        .get_receiver_state(commerce::GetReceiverStateRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn set_failure(cluster: &Cluster, mode: commerce::FailureMode, only: Option<DateTime<Utc>>) {
    cluster
        .receiver(Some(RECEIVER_TOKEN))
        .await
        .set_failure(commerce::SetFailureRequest {
            mode: mode as i32,
            only_reported_day: only.map(timestamp),
            fail_rate: 0.0,
        })
        .await
        .unwrap();
}

async fn status(cluster: &Cluster) -> bridge::BridgeStatus {
    cluster
        .operator()
        .bridge()
        .get_bridge_status(bridge::GetBridgeStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Polls the status until `done` holds (at most a minute).
async fn wait_for(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&bridge::BridgeStatus) -> bool,
) -> bridge::BridgeStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = status(cluster).await;
        if done(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge never got to {what}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn seconds(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref().map_or(i64::MIN, |t| t.seconds)
}

/// Waits until every day before `through` is sealed and acknowledged.
async fn wait_acknowledged(cluster: &Cluster, through: DateTime<Utc>) -> bridge::BridgeStatus {
    wait_for(cluster, &format!("acknowledged through {through}"), |s| {
        seconds(&s.acknowledged_through) >= through.timestamp() && s.pending_batches == 0
    })
    .await
}

async fn wait_sealed(cluster: &Cluster, through: DateTime<Utc>) -> bridge::BridgeStatus {
    wait_for(cluster, &format!("sealed through {through}"), |s| {
        seconds(&s.sealed_through) >= through.timestamp()
    })
    .await
}

async fn uploads(cluster: &Cluster) -> Vec<bridge::Upload> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = cluster
            .operator()
            .bridge()
            .list_uploads(bridge::ListUploadsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.uploads);
        token = page.next_page_token;
        if token.is_empty() {
            return all;
        }
    }
}

async fn uploads_equal_the_chargeable_daily_sums(backend: Backend) {
    let cluster = installation(backend, true).await;
    let mut expected = Totals::new();
    let mut last = cluster.now();
    for (n, scale) in [(0, 3), (1, 11), (2, 5)] {
        post_day(&cluster, &format!("d{n}"), scale).await;
        let day = close_day(&cluster).await;
        expected_for_day(&cluster, day, &billing_with(CUSTOMER_A), &mut expected).await;
        last = day + TimeDelta::days(1);
    }
    let status = wait_acknowledged(&cluster, last).await;
    assert_eq!(status.state, "UpToDate");
    assert_eq!(status.parked_batches, 0);
    assert_eq!(receiver_totals(&cluster).await, expected);
    // Mapped tenants are billed to their own subscription, the rest to the registration's.
    assert!(expected.keys().any(|k| k.0 == CUSTOMER_A));
    assert!(expected.keys().any(|k| k.0 == REGISTRATION_SUBSCRIPTION));
    let listed = uploads(&cluster).await;
    assert_eq!(listed.len(), 3, "one batch a day: {listed:?}");
    for upload in &listed {
        assert_eq!(upload.state, "Acknowledged");
        assert_eq!((upload.batch_index, upload.batch_count), (0, 1));
        assert!(upload.batch_id.contains(CLOUD_ID));
    }
    let state = receiver_state(&cluster).await;
    assert_eq!((state.batches, state.duplicates), (3, 0));
    cluster.stop().await;
}

async fn an_outage_of_three_days_drains_in_order(backend: Backend) {
    let cluster = installation(backend, true).await;
    set_failure(&cluster, commerce::FailureMode::Unavailable, None).await;
    let first = midnight(cluster.now());
    let mut expected = Totals::new();
    let mut last = first;
    for n in 0..3 {
        post_day(&cluster, &format!("o{n}"), n + 2).await;
        let day = close_day(&cluster).await;
        expected_for_day(&cluster, day, &billing_with(CUSTOMER_A), &mut expected).await;
        last = day + TimeDelta::days(1);
    }
    // The backlog grows in the bridge's tables; nothing is lost or skipped.
    let backlog = wait_for(&cluster, "a backlog of three days", |s| {
        seconds(&s.sealed_through) >= last.timestamp() && s.pending_batches == 3
    })
    .await;
    assert_eq!(backlog.state, "Failing");
    assert_eq!(seconds(&backlog.acknowledged_through), first.timestamp());
    assert!(backlog.last_error.contains("Unavailable"), "{backlog:?}");
    assert!(backlog.next_attempt_time.is_some());
    assert!(receiver_totals(&cluster).await.is_empty());

    set_failure(&cluster, commerce::FailureMode::None, None).await;
    let caught_up = wait_acknowledged(&cluster, last).await;
    assert_eq!(caught_up.state, "UpToDate");
    assert_eq!(receiver_totals(&cluster).await, expected);
    let listed = uploads(&cluster).await;
    let days: Vec<i64> = listed
        .iter()
        .map(|u| seconds(&u.reported_start_time))
        .collect();
    assert!(
        days.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {days:?}"
    );
    assert!(
        listed.iter().all(|u| u.state == "Acknowledged"),
        "{listed:?}"
    );
    assert!(
        listed[0].attempts >= 2,
        "the oldest batch was retried: {listed:?}"
    );
    // Up to 4 uploads are in flight: when the outage ends during a pass, the batches after a
    // refused one may already be applied, and the next pass sends them again as duplicates.
    let state = receiver_state(&cluster).await;
    assert_eq!(state.batches, 3, "each batch applied once: {state:?}");
    assert!(state.duplicates <= 2, "only resent batches: {state:?}");
    cluster.stop().await;
}

async fn a_crash_after_the_acknowledgement_is_a_duplicate_upstream(backend: Backend) {
    let cluster = installation(backend, true).await;
    cluster.bridge_service().crash_after_next_uploads(1);
    post_day(&cluster, "c", 7).await;
    let day = close_day(&cluster).await;
    let mut expected = Totals::new();
    expected_for_day(&cluster, day, &billing_with(CUSTOMER_A), &mut expected).await;
    wait_acknowledged(&cluster, day + TimeDelta::days(1)).await;
    let state = receiver_state(&cluster).await;
    assert_eq!(state.batches, 1);
    assert_eq!(
        state.duplicates, 1,
        "the retry after the crash was a duplicate"
    );
    assert_eq!(
        receiver_totals(&cluster).await,
        expected,
        "no total changed"
    );
    cluster.stop().await;
}

async fn a_mapping_change_affects_only_days_sealed_later(backend: Backend) {
    let cluster = installation(backend, true).await;
    // Day one is sealed under the first mapping, and stays pending until after the change.
    set_failure(&cluster, commerce::FailureMode::Unavailable, None).await;
    post_day(&cluster, "m1", 2).await;
    let first = close_day(&cluster).await;
    let mut expected = Totals::new();
    expected_for_day(&cluster, first, &billing_with(CUSTOMER_A), &mut expected).await;
    wait_sealed(&cluster, first + TimeDelta::days(1)).await;
    map(&cluster, OWNER_TENANT, CUSTOMER_B).await;
    set_failure(&cluster, commerce::FailureMode::None, None).await;
    post_day(&cluster, "m2", 3).await;
    let second = close_day(&cluster).await;
    expected_for_day(&cluster, second, &billing_with(CUSTOMER_B), &mut expected).await;
    wait_acknowledged(&cluster, second + TimeDelta::days(1)).await;
    // The expectation bills the first reported day to A and the second to B (the second's late
    // records of the first usage day included).
    let totals = receiver_totals(&cluster).await;
    assert_eq!(totals, expected);
    assert!(totals.keys().any(|k| k.0 == CUSTOMER_A));
    assert!(totals.keys().any(|k| k.0 == CUSTOMER_B));
    assert!(
        !totals
            .keys()
            .any(|k| k.0 == CUSTOMER_A && k.2 == second.timestamp()),
        "the second day's own usage is not billed to the old mapping"
    );
    cluster.stop().await;
}

async fn a_permanent_error_parks_one_batch_and_retry_delivers_it(backend: Backend) {
    let cluster = installation(backend, true).await;
    let first = midnight(cluster.now());
    set_failure(&cluster, commerce::FailureMode::Permanent, Some(first)).await;
    let mut expected = Totals::new();
    post_day(&cluster, "p1", 4).await;
    close_day(&cluster).await;
    expected_for_day(&cluster, first, &billing_with(CUSTOMER_A), &mut expected).await;
    post_day(&cluster, "p2", 6).await;
    let second = close_day(&cluster).await;
    expected_for_day(&cluster, second, &billing_with(CUSTOMER_A), &mut expected).await;
    // The later day flows past the parked one.
    let parked = wait_for(
        &cluster,
        "one parked batch and the next day delivered",
        |s| {
            s.parked_batches == 1
                && s.pending_batches == 0
                && seconds(&s.sealed_through) >= (second + TimeDelta::days(1)).timestamp()
        },
    )
    .await;
    assert_eq!(parked.state, "Failing");
    assert_eq!(seconds(&parked.acknowledged_through), first.timestamp());
    assert!(
        parked.last_error.contains("FailedPrecondition"),
        "{parked:?}"
    );
    let listed = uploads(&cluster).await;
    assert_eq!(
        listed.iter().map(|u| u.state.as_str()).collect::<Vec<_>>(),
        ["Parked", "Acknowledged"]
    );
    // Retrying an acknowledged batch, or an unknown one, is refused.
    let refused = cluster
        .operator()
        .bridge()
        .retry_upload(bridge::RetryUploadRequest {
            batch_id: listed[1].batch_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status::reason(&refused).as_deref(), Some("UploadNotParked"));
    let unknown = cluster
        .operator()
        .bridge()
        .retry_upload(bridge::RetryUploadRequest {
            batch_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    set_failure(&cluster, commerce::FailureMode::None, None).await;
    let retried = cluster
        .operator()
        .bridge()
        .retry_upload(bridge::RetryUploadRequest {
            batch_id: listed[0].batch_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.state, "Pending");
    let done = wait_acknowledged(&cluster, second + TimeDelta::days(1)).await;
    assert_eq!((done.state.as_str(), done.parked_batches), ("UpToDate", 0));
    assert_eq!(receiver_totals(&cluster).await, expected);
    cluster.stop().await;
}

async fn days_closed_without_reporting_are_skipped(backend: Backend) {
    let cluster = installation(backend, false).await;
    post_day(&cluster, "s1", 2).await;
    let first = close_day(&cluster).await;
    let not_registered = wait_sealed(&cluster, first + TimeDelta::days(1)).await;
    assert_eq!(not_registered.state, "NotRegistered");
    // Capacity without usage reporting.
    world::register(cluster.operator(), reg::BillingModel::Capacity, false).await;
    post_day(&cluster, "s2", 3).await;
    let second = close_day(&cluster).await;
    let disabled = wait_sealed(&cluster, second + TimeDelta::days(1)).await;
    assert_eq!(disabled.state, "ReportingDisabled");
    assert_eq!(disabled.pending_batches, 0);
    let listed = uploads(&cluster).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|u| u.state == "Skipped" && u.records == 0)
    );
    assert!(
        listed[0].last_error.starts_with("NotRegistered"),
        "{listed:?}"
    );
    assert!(
        listed[1].last_error.starts_with("ReportingDisabled"),
        "{listed:?}"
    );
    // Nothing left: not even later, once reporting is on.
    world::register(cluster.operator(), reg::BillingModel::PayAsYouUse, true).await;
    let third = close_day(&cluster).await;
    wait_acknowledged(&cluster, third + TimeDelta::days(1)).await;
    assert!(receiver_totals(&cluster).await.is_empty());
    assert_eq!(receiver_state(&cluster).await.batches, 0);
    cluster.stop().await;
}

async fn only_operators_watch_the_bridge_and_the_receiver_checks_its_callers(backend: Backend) {
    let cluster = installation(backend, true).await;
    for identity in [
        Identity::tenant(OWNER_TENANT),
        Identity::resource_provider(),
    ] {
        let clients = cluster.clients_for(&identity);
        let refused = clients
            .bridge()
            .get_bridge_status(bridge::GetBridgeStatusRequest {})
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(status::reason(&refused).as_deref(), Some("RoleRequired"));
        let refused = clients
            .bridge()
            .list_uploads(bridge::ListUploadsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        let refused = clients
            .bridge()
            .retry_upload(bridge::RetryUploadRequest {
                batch_id: "x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
    }
    let anonymous = cluster.clients_with_token(None);
    let refused = anonymous
        .bridge()
        .get_bridge_status(bridge::GetBridgeStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The receiver refuses a wrong or missing token.
    let upload = commerce::UploadUsageRequest {
        batch_id: "b-1".into(),
        cloud_id: CLOUD_ID.into(),
        billing_model: reg::BillingModel::PayAsYouUse as i32,
        reported_start_time: Some(timestamp(midnight(cluster.now()))),
        reported_end_time: Some(timestamp(midnight(cluster.now()) + TimeDelta::days(1))),
        batch_index: 0,
        batch_count: 1,
        records: vec![commerce::CommerceUsageRecord {
            billing_subscription_id: REGISTRATION_SUBSCRIPTION.into(),
            subscription_id: OTHER_SUBSCRIPTION.into(),
            tenant_id: OTHER_TENANT.into(),
            meter_id: meters::BASE_VM_SIZE_HOURS.into(),
            quantity: "1.5".into(),
            usage_start_time: Some(timestamp(midnight(cluster.now()))),
            usage_end_time: Some(timestamp(midnight(cluster.now()) + TimeDelta::days(1))),
            ..Default::default()
        }],
        ..Default::default()
    };
    for token in [Some("wrong"), None] {
        let refused = cluster
            .commerce(token)
            .await
            .upload_usage(upload.clone())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{token:?}");
    }
    let mut client = cluster.commerce(Some(RECEIVER_TOKEN)).await;
    let first = client
        .upload_usage(upload.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.accepted, first.duplicate), (1, false));
    let again = client
        .upload_usage(upload.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicate), (0, true));
    let mut other = upload.clone();
    other.records[0].quantity = "2".into();
    let conflict = client.upload_usage(other).await.unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert_eq!(
        status::reason(&conflict).as_deref(),
        Some("BatchIdConflict")
    );
    // Batches sent at once (the bridge keeps several in flight), each also sent twice at once:
    // every batch counts, and exactly once.
    let mut sending = tokio::task::JoinSet::new();
    for i in 0..16 {
        let mut concurrent = upload.clone();
        concurrent.batch_id = format!("b-c{i}");
        concurrent.records[0].quantity = "1".into();
        for _ in 0..2 {
            let (mut client, concurrent) = (client.clone(), concurrent.clone());
            sending.spawn(async move { client.upload_usage(concurrent).await });
        }
    }
    while let Some(answer) = sending.join_next().await {
        answer.expect("joined").expect("a concurrent upload");
    }
    let key = (
        REGISTRATION_SUBSCRIPTION.to_string(),
        meters::BASE_VM_SIZE_HOURS.to_string(),
        midnight(cluster.now()).timestamp(),
    );
    assert_eq!(
        receiver_totals(&cluster).await.get(&key),
        Some(&Quantity::parse("17.5").unwrap())
    );
    // Garbage is INVALID_ARGUMENT, naming each bad field.
    let mut garbage = upload.clone();
    garbage.batch_id = "b-2".into();
    garbage.cloud_id = "not a guid".into();
    garbage.records[0].quantity = "-1".into();
    garbage.records[0].meter_id = String::new();
    let invalid = client.upload_usage(garbage).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let fields = status::fields(&invalid);
    for field in ["cloud_id", "records[0].quantity", "records[0].meter_id"] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    cluster.stop().await;
}

async fn the_bridge_over_rest(backend: Backend) {
    let cluster = installation(backend, true).await;
    post_day(&cluster, "r", 2).await;
    let day = close_day(&cluster).await;
    wait_acknowledged(&cluster, day + TimeDelta::days(1)).await;
    let base = cluster.base_url();
    let operator = tally_contract_tests::sign(&Identity::operator().claims(), None);
    let (code, body) = rest::get(&base, "/bridge/v1/status", Some(&operator)).await;
    assert_eq!(code, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["state"], "UpToDate");
    assert_eq!(body["pendingBatches"], 0);
    let (code, body) = rest::get(&base, "/bridge/v1/uploads?pageSize=10", Some(&operator)).await;
    assert_eq!(code, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["uploads"][0]["state"], "Acknowledged");
    assert_eq!(body["nextPageToken"], "");
    let (code, _) = rest::get(&base, "/bridge/v1/uploads?pageSize=x", Some(&operator)).await;
    assert_eq!(code, reqwest::StatusCode::BAD_REQUEST);
    let tenant = tally_contract_tests::sign(&Identity::tenant(OWNER_TENANT).claims(), None);
    let (code, _) = rest::get(&base, "/bridge/v1/status", Some(&tenant)).await;
    assert_eq!(code, reqwest::StatusCode::FORBIDDEN);
    let (code, _) = rest::get(&base, "/bridge/v1/uploads", None).await;
    assert_eq!(code, reqwest::StatusCode::UNAUTHORIZED);
    cluster.stop().await;
}

/// Split, as `tally bridge` runs: the bridge reads usage and registration over gRPC and the
/// gateway reaches the bridge over gRPC. Each closed day arrives upstream once, billed right.
async fn a_split_bridge_delivers_each_closed_day_once(backend: Backend) {
    let cluster = set_up(Cluster::start_split_with_bridge(backend).await, true).await;
    let mut expected = Totals::new();
    post_day(&cluster, "split-1", 7).await;
    let first = close_day(&cluster).await;
    expected_for_day(&cluster, first, &billing_with(CUSTOMER_A), &mut expected).await;
    let status = wait_acknowledged(&cluster, first + TimeDelta::days(1)).await;
    assert_eq!(status.state, "UpToDate");
    assert_eq!(receiver_totals(&cluster).await, expected);
    // The next day closes too: the first is not sent again, the second is added once.
    post_day(&cluster, "split-2", 2).await;
    let second = close_day(&cluster).await;
    expected_for_day(&cluster, second, &billing_with(CUSTOMER_A), &mut expected).await;
    wait_acknowledged(&cluster, second + TimeDelta::days(1)).await;
    assert_eq!(receiver_totals(&cluster).await, expected);
    assert!(expected.keys().any(|k| k.0 == CUSTOMER_A));
    assert!(expected.keys().any(|k| k.0 == REGISTRATION_SUBSCRIPTION));
    let state = receiver_state(&cluster).await;
    assert_eq!((state.batches, state.duplicates), (2, 0));
    let listed = uploads(&cluster).await;
    assert_eq!(listed.len(), 2, "one batch a day: {listed:?}");
    assert!(listed.iter().all(|u| u.state == "Acknowledged"));
    cluster.stop().await;
}
