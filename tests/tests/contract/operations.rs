//! The operations surface: /healthz, /readyz and /metrics on the gateway, gRPC health that
//! follows the database and the peers, and access to a deleted subscription ending at once in
//! one process (within the ownership TTL when apart).

use std::net::ToSocketAddrs as _;
use std::time::Duration;

use reqwest::StatusCode;
use tally_contract_tests::proxy::TcpProxy;
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_contract_tests::rest;
use tally_contract_tests::world::{self, OTHER_TENANT, OWNED_SUBSCRIPTION, OWNER_TENANT};
use tally_contract_tests::{
    Backend, Cluster, Identity, TestDatabase, Topology, on_both_backends, sign,
};
use tally_core::Granularity;
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::server::Background;
use tally_proto::status;
use tally_proto::usage::v1 as usage;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

fn token(identity: &Identity) -> String {
    sign(&identity.claims(), None)
}

/// The text of a successful GET.
/// The `tally_ready` gauges are process-wide, so the tests that take a gateway out of service
/// and the one that reads its gauge take turns.
static READY_GAUGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn text(base: &str, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let (code, body) = rest::get(base, path, token).await;
    let text = match body {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    };
    (code, text)
}

async fn health_status(channel: Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

/// Waits (at most 30 s) until `service`'s health on `channel` is `wanted`.
async fn wait_health(channel: &Channel, service: &str, wanted: ServingStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = health_status(channel.clone(), service).await;
        if status == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health of {service:?} stayed {status:?}, never {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_gateway_serves_healthz_readyz_and_metrics_for_operators() {
    let _gauge = READY_GAUGE.lock().await;
    let cluster = Cluster::start(Backend::Sqlite, Topology::InProcess).await;
    let base = cluster.base_url();
    assert_eq!(
        text(&base, "/healthz", None).await,
        (StatusCode::OK, "ok\n".into())
    );
    assert_eq!(
        text(&base, "/readyz", None).await,
        (StatusCode::OK, "ready\n".into())
    );

    // Something to count: a stored batch, a refused caller, a REST call.
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - chrono::Duration::hours(1);
    cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "ops-1",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm1",
            "1",
            hour,
        )]))
        .await
        .unwrap();
    let anonymous = cluster.clients_with_token(None);
    assert!(
        anonymous
            .admin()
            .get_pipeline_status(usage::GetPipelineStatusRequest {})
            .await
            .is_err()
    );
    let operator = token(&Identity::operator());
    rest::get(
        &base,
        &format!("/subscriptions/{SUB_A}/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview"),
        Some(&operator),
    )
    .await;

    let (code, body) = rest::get(&base, "/metrics", None).await;
    assert_eq!(
        (code, rest::code(&body)),
        (StatusCode::UNAUTHORIZED, "MissingCredentials")
    );
    let (code, body) = rest::get(
        &base,
        "/metrics",
        Some(&token(&Identity::tenant(OTHER_TENANT))),
    )
    .await;
    assert_eq!(
        (code, rest::code(&body)),
        (StatusCode::FORBIDDEN, "RoleRequired")
    );
    let (code, metrics) = text(&base, "/metrics", Some(&operator)).await;
    assert_eq!(code, StatusCode::OK);
    for expected in [
        "tally_usage_batches_total{outcome=\"stored\"}",
        "tally_usage_records_total{outcome=\"accepted\"}",
        "tally_grpc_request_duration_seconds_bucket{rpc=\"/tally.usage.v1.UsageIngestion/PostUsage\",code=\"OK\"",
        "tally_grpc_request_duration_seconds_count{rpc=\"/tally.usage.v1.UsageAdmin/GetPipelineStatus\",code=\"UNAUTHENTICATED\"}",
        "tally_auth_failures_total{reason=\"MissingCredentials\"}",
        "tally_rest_request_duration_seconds_bucket{route=\"/subscriptions/{subscriptionId}/providers/Microsoft.Commerce/UsageAggregates\",method=\"GET\",status=\"400\"",
        "tally_fold_duration_seconds_bucket",
        "tally_fold_lag_seconds ",
        "tally_ready{service=\"tally-gateway\"} 1",
        "tally_requests_in_flight{listener=\"tally-gateway\"}",
    ] {
        assert!(metrics.contains(expected), "no {expected} in\n{metrics}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn the_gateway_is_not_ready_while_a_peer_is_down() {
    let _gauge = READY_GAUGE.lock().await;
    let mut cluster = Cluster::start(Backend::Sqlite, Topology::Remote).await;
    let channel = cluster.channel();
    let base = cluster.base_url();
    for service in [
        "",
        "tally.usage.v1.UsageIngestion",
        "tally.registration.v1.Tenancy",
    ] {
        assert_eq!(
            health_status(channel.clone(), service).await,
            ServingStatus::Serving
        );
    }
    cluster.crash_aggregator();
    wait_health(&channel, "", ServingStatus::NotServing).await;
    assert_eq!(
        health_status(channel.clone(), "tally.usage.v1.UsageIngestion").await,
        ServingStatus::NotServing
    );
    let (code, body) = text(&base, "/readyz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("not ready: aggregator: "), "{body}");
    // Up, but not ready: the process still answers.
    assert_eq!(text(&base, "/healthz", None).await.0, StatusCode::OK);

    cluster.restart_aggregator().await;
    wait_health(&channel, "", ServingStatus::Serving).await;
    assert_eq!(
        text(&base, "/readyz", None).await,
        (StatusCode::OK, "ready\n".into())
    );
    cluster.stop().await;
}

/// `url` with its host and port replaced by `proxy`'s, and the address it named.
fn through_proxy(url: &str, proxy: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a database path");
    let (user, _) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("{scheme}://{user}{proxy}/{path}")
}

fn postgres_address(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    host_port
        .to_socket_addrs()
        .expect("resolvable")
        .next()
        .expect("an address")
}

/// The aggregator alone, its PostgreSQL behind a proxy: cutting the proxy makes the database
/// unreachable, and health says so until it is back.
#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "TALLY_TEST_POSTGRES_URL is not set")]
async fn health_follows_the_database() {
    let _gauge = READY_GAUGE.lock().await;
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = TcpProxy::start(postgres_address(&db.usage_url())).await;
    let mut config = tally_aggregator::Config::new(through_proxy(&db.usage_url(), proxy.addr()));
    config.fold_interval = Duration::from_millis(50);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Background::spawn(|stop| async move {
        tally_aggregator::serve(config, listener, stop)
            .await
            .expect("the aggregator serves");
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let base = format!("http://{addr}");
    wait_health(&channel, "", ServingStatus::Serving).await;
    assert_eq!(text(&base, "/readyz", None).await.0, StatusCode::OK);

    proxy.cut();
    wait_health(
        &channel,
        "tally.usage.v1.UsageIngestion",
        ServingStatus::NotServing,
    )
    .await;
    let (code, body) = text(&base, "/readyz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(text(&base, "/healthz", None).await.0, StatusCode::OK);

    proxy.restore();
    wait_health(
        &channel,
        "tally.usage.v1.UsageIngestion",
        ServingStatus::Serving,
    )
    .await;
    assert_eq!(text(&base, "/readyz", None).await.0, StatusCode::OK);
    server.stop().await;
    drop(proxy);
    db.cleanup().await;
}

fn own_usage_request() -> usage::ListUsageAggregatesRequest {
    let day = Granularity::Daily.bucket_start(tally_contract_tests::cluster::start_time());
    usage::ListUsageAggregatesRequest {
        subscription_id: OWNED_SUBSCRIPTION.into(),
        reported_start_time: Some(timestamp(day)),
        reported_end_time: Some(timestamp(day + chrono::Duration::days(1))),
        ..Default::default()
    }
}

async fn delete_owned_subscription(cluster: &Cluster) {
    cluster
        .operator()
        .tenancy()
        .delete_subscription(reg::DeleteSubscriptionRequest {
            subscription_id: OWNED_SUBSCRIPTION.into(),
        })
        .await
        .unwrap();
}

on_both_backends!(a_deleted_subscription_is_gone_for_its_tenant_at_once);

/// As in Azure, a deleted subscription is gone for its tenant (usage, the subscription, its
/// billing: `SubscriptionNotFound`), the very next call after the deletion, although the
/// gateway had the ownership cached; operators and the delegated provider still see its usage.
async fn a_deleted_subscription_is_gone_for_its_tenant_at_once(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let owner = cluster.clients_for(&Identity::tenant(OWNER_TENANT));
    let before = owner
        .tenant()
        .list_usage_aggregates(own_usage_request())
        .await
        .expect("the owner reads its usage")
        .into_inner();
    assert_eq!(before.usage_aggregates.len(), 1);

    delete_owned_subscription(&cluster).await;

    let gone = |result: Result<(), tonic::Status>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(
            (error.code(), status::reason(&error).as_deref()),
            (tonic::Code::NotFound, Some("SubscriptionNotFound")),
            "{what}: {error:?}"
        );
    };
    gone(
        owner
            .tenant()
            .list_usage_aggregates(own_usage_request())
            .await
            .map(drop),
        "usage of a deleted subscription",
    );
    gone(
        owner
            .tenancy()
            .get_subscription(reg::GetSubscriptionRequest {
                subscription_id: OWNED_SUBSCRIPTION.into(),
            })
            .await
            .map(drop),
        "a deleted subscription",
    );
    gone(
        owner
            .registration()
            .resolve_billing_subscription(reg::ResolveBillingSubscriptionRequest {
                target: Some(
                    reg::resolve_billing_subscription_request::Target::SubscriptionId(
                        OWNED_SUBSCRIPTION.into(),
                    ),
                ),
            })
            .await
            .map(drop),
        "billing of a deleted subscription",
    );
    let listed = owner
        .tenancy()
        .list_subscriptions(reg::ListSubscriptionsRequest {
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.subscriptions.is_empty(), "{listed:?}");
    let (code, body) = rest::get(
        &cluster.base_url(),
        &format!(
            "/subscriptions/{OWNED_SUBSCRIPTION}/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview&reportedStartTime=2026-11-20T00:00:00Z&reportedEndTime=2026-11-21T00:00:00Z"
        ),
        Some(&token(&Identity::tenant(OWNER_TENANT))),
    )
    .await;
    assert_eq!(
        (code, rest::code(&body)),
        (StatusCode::NOT_FOUND, "SubscriptionNotFound")
    );
    // Another tenant learns nothing new: the same refusal as before.
    let other = cluster.clients_for(&Identity::tenant(OTHER_TENANT));
    let error = other
        .tenant()
        .list_usage_aggregates(own_usage_request())
        .await
        .unwrap_err();
    assert_eq!(
        status::reason(&error).as_deref(),
        Some("NotSubscriptionOwner")
    );

    // Operators and the subscription's delegated provider still see its usage.
    let request = usage::ListSubscriberUsageAggregatesRequest {
        reported_start_time: own_usage_request().reported_start_time,
        reported_end_time: own_usage_request().reported_end_time,
        subscriber_id: OWNED_SUBSCRIPTION.into(),
        ..Default::default()
    };
    for caller in [
        Identity::operator(),
        Identity::delegated_provider(
            tally_contract_tests::world::RESELLER_TENANT,
            tally_contract_tests::world::PROVIDER_SUBSCRIPTION,
        ),
    ] {
        let page = cluster
            .clients_for(&caller)
            .provider()
            .list_subscriber_usage_aggregates(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.usage_aggregates.len(), 1, "{caller:?}");
        assert_eq!(page.usage_aggregates[0].quantity, "2");
    }
    cluster.stop().await;
}

/// With the services apart, the gateway trusts what it learned for its ownership TTL: a
/// deletion applies at the latest once the TTL has passed.
#[tokio::test]
async fn apart_a_deletion_applies_within_the_ownership_ttl() {
    let ttl = Duration::from_millis(500);
    let cluster = Cluster::start_remote_with_ownership_ttl(Backend::Sqlite, ttl).await;
    world::populate(&cluster).await;
    let owner = cluster.clients_for(&Identity::tenant(OWNER_TENANT));
    owner
        .tenant()
        .list_usage_aggregates(own_usage_request())
        .await
        .expect("the owner reads its usage");
    delete_owned_subscription(&cluster).await;
    tokio::time::sleep(ttl).await;
    let error = owner
        .tenant()
        .list_usage_aggregates(own_usage_request())
        .await
        .expect_err("refused once the TTL has passed");
    assert_eq!(
        status::reason(&error).as_deref(),
        Some("SubscriptionNotFound")
    );
    cluster.stop().await;
}
