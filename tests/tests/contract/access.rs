//! Access control: every role against every RPC, token checks, and what each caller may see.

use chrono::Duration;
use tally_contract_tests::records::{batch, meters, record};
use tally_contract_tests::world::{
    self, OTHER_SUBSCRIPTION, OWNED_SUBSCRIPTION, OWNER_TENANT, PROVIDER_SUBSCRIPTION,
};
use tally_contract_tests::{
    Backend, Clients, Cluster, Identity, Topology, on_both_backends, sign, sign_rs256,
};
use tally_core::Granularity;
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::status;
use tally_proto::usage::v1 as usage;
use tonic::{Code, Status};

use crate::provider_request;

on_both_backends!(every_role_meets_every_rpc, callers_see_only_what_is_theirs);

#[derive(Clone, Copy, Debug)]
enum Rpc {
    PostUsage,
    StreamUsage,
    ListSubscriberUsageAggregates,
    ListSubscriberUsageAggregatesOfAnotherProvider,
    ListUsageAggregates,
    ListMeters,
    CreateMeter,
    GetPipelineStatus,
    GetRegistration,
    SetRegistration,
    PutCustomerSubscription,
    ListCustomerSubscriptions,
    GetCustomerSubscription,
    DeleteCustomerSubscription,
    ResolveBillingSubscription,
    CreateTenant,
    GetTenant,
    ListTenants,
    CreateSubscription,
    GetSubscription,
    ListSubscriptions,
    DeleteSubscription,
    RemoveRegistration,
}

const CUSTOMER_SUBSCRIPTION: &str = "d1d1d1d1-9999-4999-8999-999999999999";

async fn call(rpc: Rpc, clients: &Clients, cluster: &Cluster, n: usize) -> Result<(), Status> {
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let day = Granularity::Daily.bucket_start(cluster.now());
    let unique = uuid::Uuid::new_v4().hyphenated().to_string();
    let tenant_request = |subscription: &str| usage::ListUsageAggregatesRequest {
        subscription_id: subscription.into(),
        reported_start_time: Some(timestamp(day - Duration::days(1))),
        reported_end_time: Some(timestamp(day)),
        ..Default::default()
    };
    match rpc {
        Rpc::PostUsage => {
            let r = record(
                &format!("matrix-post-{n}"),
                OWNED_SUBSCRIPTION,
                meters::BASE_VM_SIZE_HOURS,
                "vm",
                "1",
                hour,
            );
            clients
                .ingestion()
                .post_usage(batch(vec![r]))
                .await
                .map(drop)
        }
        Rpc::StreamUsage => {
            let r = record(
                &format!("matrix-stream-{n}"),
                OWNED_SUBSCRIPTION,
                meters::BASE_VM_SIZE_HOURS,
                "vm",
                "1",
                hour,
            );
            let mut responses = clients
                .ingestion()
                .stream_usage(tokio_stream::iter([batch(vec![r])]))
                .await?
                .into_inner();
            responses
                .message()
                .await?
                .map(drop)
                .ok_or_else(|| Status::internal("no response"))
        }
        Rpc::ListSubscriberUsageAggregates => clients
            .provider()
            .list_subscriber_usage_aggregates(provider_request(
                day - Duration::days(1),
                day,
                usage::AggregationGranularity::Daily,
            ))
            .await
            .map(drop),
        Rpc::ListSubscriberUsageAggregatesOfAnotherProvider => {
            let mut request = provider_request(
                day - Duration::days(1),
                day,
                usage::AggregationGranularity::Daily,
            );
            request.subscriber_id = OTHER_SUBSCRIPTION.into();
            clients
                .provider()
                .list_subscriber_usage_aggregates(request)
                .await
                .map(drop)
        }
        Rpc::ListUsageAggregates => clients
            .tenant()
            .list_usage_aggregates(tenant_request(OWNED_SUBSCRIPTION))
            .await
            .map(drop),
        Rpc::ListMeters => clients
            .admin()
            .list_meters(usage::ListMetersRequest::default())
            .await
            .map(drop),
        Rpc::CreateMeter => clients
            .admin()
            .create_meter(usage::CreateMeterRequest {
                meter: Some(usage::Meter {
                    name: format!("matrix meter {unique}"),
                    unit: "hours".into(),
                    resource_provider: "Test".into(),
                    ..Default::default()
                }),
            })
            .await
            .map(drop),
        Rpc::GetPipelineStatus => clients
            .admin()
            .get_pipeline_status(usage::GetPipelineStatusRequest {})
            .await
            .map(drop),
        Rpc::GetRegistration => clients
            .registration()
            .get_registration(reg::GetRegistrationRequest {})
            .await
            .map(drop),
        Rpc::SetRegistration => clients
            .registration()
            .set_registration(reg::SetRegistrationRequest {
                registration: Some(reg::RegistrationInfo {
                    cloud_id: world::CLOUD_ID.into(),
                    registration_subscription_id: world::REGISTRATION_SUBSCRIPTION.into(),
                    billing_model: reg::BillingModel::PayAsYouUse as i32,
                    usage_reporting_enabled: true,
                    multi_tenancy_enabled: true,
                    ..Default::default()
                }),
            })
            .await
            .map(drop),
        Rpc::PutCustomerSubscription => clients
            .registration()
            .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
                tenant_id: OWNER_TENANT.into(),
                customer_subscription_id: CUSTOMER_SUBSCRIPTION.into(),
            })
            .await
            .map(drop),
        Rpc::ListCustomerSubscriptions => clients
            .registration()
            .list_customer_subscriptions(reg::ListCustomerSubscriptionsRequest::default())
            .await
            .map(drop),
        Rpc::GetCustomerSubscription => clients
            .registration()
            .get_customer_subscription(reg::GetCustomerSubscriptionRequest {
                customer_subscription_id: CUSTOMER_SUBSCRIPTION.into(),
            })
            .await
            .map(drop),
        Rpc::DeleteCustomerSubscription => clients
            .registration()
            .delete_customer_subscription(reg::DeleteCustomerSubscriptionRequest {
                customer_subscription_id: CUSTOMER_SUBSCRIPTION.into(),
            })
            .await
            .map(drop),
        Rpc::ResolveBillingSubscription => clients
            .registration()
            .resolve_billing_subscription(reg::ResolveBillingSubscriptionRequest {
                target: Some(reg::resolve_billing_subscription_request::Target::TenantId(
                    OWNER_TENANT.into(),
                )),
            })
            .await
            .map(drop),
        Rpc::CreateTenant => clients
            .tenancy()
            .create_tenant(reg::CreateTenantRequest {
                tenant: Some(reg::Tenant {
                    tenant_id: unique,
                    display_name: "matrix".into(),
                }),
            })
            .await
            .map(drop),
        Rpc::GetTenant => clients
            .tenancy()
            .get_tenant(reg::GetTenantRequest {
                tenant_id: OWNER_TENANT.into(),
            })
            .await
            .map(drop),
        Rpc::ListTenants => clients
            .tenancy()
            .list_tenants(reg::ListTenantsRequest::default())
            .await
            .map(drop),
        Rpc::CreateSubscription => clients
            .tenancy()
            .create_subscription(reg::CreateSubscriptionRequest {
                subscription: Some(reg::Subscription {
                    subscription_id: unique,
                    owner_tenant_id: OWNER_TENANT.into(),
                    ..Default::default()
                }),
            })
            .await
            .map(drop),
        Rpc::GetSubscription => clients
            .tenancy()
            .get_subscription(reg::GetSubscriptionRequest {
                subscription_id: OWNED_SUBSCRIPTION.into(),
            })
            .await
            .map(drop),
        Rpc::ListSubscriptions => clients
            .tenancy()
            .list_subscriptions(reg::ListSubscriptionsRequest::default())
            .await
            .map(drop),
        Rpc::DeleteSubscription => clients
            .tenancy()
            .delete_subscription(reg::DeleteSubscriptionRequest {
                subscription_id: OTHER_SUBSCRIPTION.into(),
            })
            .await
            .map(drop),
        Rpc::RemoveRegistration => clients
            .registration()
            .remove_registration(reg::RemoveRegistrationRequest {})
            .await
            .map(drop),
    }
}

/// What each caller gets: `None` is success, otherwise the status code and reason.
type Outcome = Option<(Code, &'static str)>;
const OK: Outcome = None;
const ROLE: Outcome = Some((Code::PermissionDenied, "RoleRequired"));
const NOT_OWNER: Outcome = Some((Code::PermissionDenied, "NotSubscriptionOwner"));
const NOT_DIRECT: Outcome = Some((Code::PermissionDenied, "SubscriberIdIsNotDirectTenant"));
const NO_TOKEN: Outcome = Some((Code::Unauthenticated, "MissingCredentials"));

/// Columns: operator, resource provider, delegated provider, owner tenant, other tenant, anonymous.
fn matrix() -> Vec<(Rpc, [Outcome; 6])> {
    use Rpc::*;
    vec![
        (PostUsage, [OK, OK, ROLE, ROLE, ROLE, NO_TOKEN]),
        (StreamUsage, [OK, OK, ROLE, ROLE, ROLE, NO_TOKEN]),
        (
            ListSubscriberUsageAggregates,
            [OK, ROLE, OK, ROLE, ROLE, NO_TOKEN],
        ),
        (
            ListSubscriberUsageAggregatesOfAnotherProvider,
            [OK, ROLE, NOT_DIRECT, ROLE, ROLE, NO_TOKEN],
        ),
        (
            ListUsageAggregates,
            [OK, NOT_OWNER, NOT_OWNER, OK, NOT_OWNER, NO_TOKEN],
        ),
        (ListMeters, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (CreateMeter, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (GetPipelineStatus, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (GetRegistration, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (SetRegistration, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (
            PutCustomerSubscription,
            [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN],
        ),
        (
            ListCustomerSubscriptions,
            [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN],
        ),
        (
            GetCustomerSubscription,
            [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN],
        ),
        (
            DeleteCustomerSubscription,
            [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN],
        ),
        (
            ResolveBillingSubscription,
            [OK, ROLE, ROLE, OK, ROLE, NO_TOKEN],
        ),
        (CreateTenant, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (GetTenant, [OK, ROLE, ROLE, OK, ROLE, NO_TOKEN]),
        (ListTenants, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (CreateSubscription, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        (
            GetSubscription,
            [OK, NOT_OWNER, NOT_OWNER, OK, NOT_OWNER, NO_TOKEN],
        ),
        (ListSubscriptions, [OK, ROLE, OK, OK, OK, NO_TOKEN]),
        (DeleteSubscription, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
        // Last: it takes the registration away.
        (RemoveRegistration, [OK, ROLE, ROLE, ROLE, ROLE, NO_TOKEN]),
    ]
}

async fn every_role_meets_every_rpc(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let callers: Vec<(&str, Clients)> = world::callers()
        .into_iter()
        .map(|(name, identity)| {
            let clients = match identity {
                Some(identity) => cluster.clients_for(&identity),
                None => cluster.clients_with_token(None),
            };
            (name, clients)
        })
        .collect();
    let mut failures = Vec::new();
    for (n, (rpc, expected)) in matrix().into_iter().enumerate() {
        // Callers who should be refused go first, so the operator's success cannot mask them.
        for column in (0..callers.len()).rev() {
            let (name, clients) = &callers[column];
            let got = call(rpc, clients, &cluster, n * 10 + column).await;
            let got_outcome = got.as_ref().err().map(|s| (s.code(), status::reason(s)));
            let matches = match (expected[column], &got_outcome) {
                (None, None) => true,
                (Some((code, reason)), Some((got_code, got_reason))) => {
                    code == *got_code && Some(reason) == got_reason.as_deref()
                }
                _ => false,
            };
            if !matches {
                failures.push(format!(
                    "{rpc:?} as {name}: expected {:?}, got {got_outcome:?} ({got:?})",
                    expected[column]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cluster.stop().await;
}

/// The subscriptions of the rows of a page.
fn subscriptions(page: &usage::ListUsageAggregatesResponse) -> Vec<String> {
    let mut subs: Vec<String> = page
        .usage_aggregates
        .iter()
        .map(|r| r.subscription_id.clone())
        .collect();
    subs.sort();
    subs.dedup();
    subs
}

async fn callers_see_only_what_is_theirs(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let day = Granularity::Daily.bucket_start(cluster.now());
    let request = provider_request(
        day - Duration::days(1),
        day,
        usage::AggregationGranularity::Daily,
    );

    let everything = cluster
        .provider()
        .list_subscriber_usage_aggregates(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        subscriptions(&everything),
        [OWNED_SUBSCRIPTION, OTHER_SUBSCRIPTION]
    );
    // A delegated provider sees its direct tenants only, whatever it asks.
    let reseller = cluster.clients_for(&Identity::delegated_provider(
        world::RESELLER_TENANT,
        PROVIDER_SUBSCRIPTION,
    ));
    let mut sneaky = request.clone();
    sneaky.subscribers = Some(usage::SubscriberFilter {
        subscription_ids: vec![OTHER_SUBSCRIPTION.into()],
    });
    for asked in [request.clone(), sneaky] {
        let page = reseller
            .provider()
            .list_subscriber_usage_aggregates(asked)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(subscriptions(&page), [OWNED_SUBSCRIPTION]);
    }
    let mut direct = request.clone();
    direct.subscriber_id = OWNED_SUBSCRIPTION.into();
    let page = reseller
        .provider()
        .list_subscriber_usage_aggregates(direct)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(subscriptions(&page), [OWNED_SUBSCRIPTION]);
    let listed = reseller
        .tenancy()
        .list_subscriptions(reg::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed
        .subscriptions
        .iter()
        .map(|s| s.subscription_id.as_str())
        .collect();
    assert_eq!(ids, [OWNED_SUBSCRIPTION]);

    // A tenant lists its own subscriptions only, and reads its own usage.
    let owner = cluster.clients_for(&Identity::tenant(OWNER_TENANT));
    let listed = owner
        .tenancy()
        .list_subscriptions(reg::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed
        .subscriptions
        .iter()
        .map(|s| s.subscription_id.as_str())
        .collect();
    assert_eq!(ids, [OWNED_SUBSCRIPTION]);
    let own = owner
        .tenant()
        .list_usage_aggregates(usage::ListUsageAggregatesRequest {
            subscription_id: OWNED_SUBSCRIPTION.to_uppercase(),
            reported_start_time: Some(timestamp(day - Duration::days(1))),
            reported_end_time: Some(timestamp(day)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.usage_aggregates.len(), 1);
    assert_eq!(own.usage_aggregates[0].quantity, "2");
    // A subscription nobody registered is refused, never an empty page.
    let err = owner
        .tenant()
        .list_usage_aggregates(usage::ListUsageAggregatesRequest {
            subscription_id: "00000000-0000-4000-8000-0000000000ff".into(),
            reported_start_time: Some(timestamp(day - Duration::days(1))),
            reported_end_time: Some(timestamp(day)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        status::reason(&err).as_deref(),
        Some("NotSubscriptionOwner")
    );

    // Deleted subscriptions stay queryable: by operators, and by their owner.
    cluster
        .operator()
        .tenancy()
        .delete_subscription(reg::DeleteSubscriptionRequest {
            subscription_id: OWNED_SUBSCRIPTION.into(),
        })
        .await
        .unwrap();
    let after = cluster
        .provider()
        .list_subscriber_usage_aggregates(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        subscriptions(&after),
        [OWNED_SUBSCRIPTION, OTHER_SUBSCRIPTION]
    );
    let mut one = request.clone();
    one.subscriber_id = OWNED_SUBSCRIPTION.into();
    let deleted = cluster
        .provider()
        .list_subscriber_usage_aggregates(one)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.usage_aggregates[0].quantity, "2");
    let state = cluster
        .operator()
        .tenancy()
        .get_subscription(reg::GetSubscriptionRequest {
            subscription_id: OWNED_SUBSCRIPTION.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .state;
    assert_eq!(state, "Deleted");
    let listed = cluster
        .operator()
        .tenancy()
        .list_subscriptions(reg::ListSubscriptionsRequest {
            owner_tenant_id: OWNER_TENANT.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.subscriptions.is_empty(),
        "deleted subscriptions are listed only on request"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let cluster = Cluster::start(Backend::Sqlite, Topology::InProcess).await;
    let now = chrono::Utc::now().timestamp();
    let valid = Identity::operator().claims();
    let mut expired = valid.clone();
    expired.exp = now - 3_600;
    let mut not_yet = valid.clone();
    not_yet.nbf = Some(now + 3_600);
    let mut issuer = valid.clone();
    issuer.iss = "someone-else".into();
    let mut audience = valid.clone();
    audience.aud = "someone-else".into();
    let header_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let payload = sign(&valid, None).split('.').nth(1).unwrap().to_string();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "MissingCredentials"),
        ("expired", Some(sign(&expired, None)), "InvalidToken"),
        ("not yet valid", Some(sign(&not_yet, None)), "InvalidToken"),
        ("wrong issuer", Some(sign(&issuer, None)), "InvalidToken"),
        (
            "wrong audience",
            Some(sign(&audience, None)),
            "InvalidToken",
        ),
        (
            "wrong key",
            Some(sign(&valid, Some(b"not-the-gateway-secret-0123456789"))),
            "InvalidToken",
        ),
        (
            "wrong RSA key",
            Some(sign_rs256(
                &valid,
                tally_contract_tests::cluster::RS256_OTHER_PRIVATE_KEY,
            )),
            "InvalidToken",
        ),
        (
            "alg none",
            Some(format!("{header_none}.{payload}.")),
            "InvalidToken",
        ),
        ("malformed", Some("not-a-jwt".into()), "InvalidToken"),
    ];
    for (what, token, reason) in cases {
        let clients = cluster.clients_with_token(token.as_deref());
        let err = clients
            .admin()
            .get_pipeline_status(usage::GetPipelineStatusRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert_eq!(status::reason(&err).as_deref(), Some(reason), "{what}");
        let (http, body) = tally_contract_tests::rest::get(
            &cluster.base_url(),
            &format!("/subscriptions/{OWNED_SUBSCRIPTION}/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview"),
            token.as_deref(),
        )
        .await;
        assert_eq!(http.as_u16(), 401, "{what}: {body}");
        assert_eq!(tally_contract_tests::rest::code(&body), reason, "{what}");
    }
    // RS256 with the configured public key is accepted, like HS256.
    for token in [
        sign(&valid, None),
        sign_rs256(&valid, tally_contract_tests::cluster::RS256_PRIVATE_KEY),
    ] {
        let clients = cluster.clients_with_token(Some(&token));
        clients
            .admin()
            .get_pipeline_status(usage::GetPipelineStatusRequest {})
            .await
            .unwrap();
    }
    // Health and reflection need no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(cluster.channel());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    cluster.stop().await;
}
