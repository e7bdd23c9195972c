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
/// What the operator creates in the matrix (only the operator may).
const CREATED_TENANT: &str = "e2e2e2e2-1010-4010-8010-101010101010";
const CREATED_SUBSCRIPTION: &str = "f3f3f3f3-2020-4020-8020-202020202020";

/// A short name for the world's GUIDs, so outcomes read as words.
fn label(id: &str) -> String {
    let names = [
        (OWNED_SUBSCRIPTION, "owned"),
        (OTHER_SUBSCRIPTION, "other"),
        (PROVIDER_SUBSCRIPTION, "provider"),
        (world::REGISTRATION_SUBSCRIPTION, "registration"),
        (CUSTOMER_SUBSCRIPTION, "customer"),
        (CREATED_SUBSCRIPTION, "created"),
        (OWNER_TENANT, "owner-tenant"),
        (world::OTHER_TENANT, "other-tenant"),
        (world::RESELLER_TENANT, "reseller-tenant"),
        (CREATED_TENANT, "created-tenant"),
    ];
    names
        .iter()
        .find(|(guid, _)| guid.eq_ignore_ascii_case(id))
        .map_or_else(|| id.to_string(), |(_, name)| name.to_string())
}

/// A page's rows as `subscription:quantity`, sorted.
fn usage_rows(page: &usage::ListUsageAggregatesResponse) -> String {
    let mut rows: Vec<String> = page
        .usage_aggregates
        .iter()
        .map(|r| format!("{}:{}", label(&r.subscription_id), r.quantity))
        .collect();
    rows.sort();
    rows.join(" ")
}

fn subscription_list(subscriptions: &[reg::Subscription]) -> String {
    let mut ids: Vec<String> = subscriptions
        .iter()
        .map(|s| label(&s.subscription_id))
        .collect();
    ids.sort();
    ids.join(" ")
}

/// Calls `rpc` as `clients`; on success, what it returned, in words.
async fn call(rpc: Rpc, clients: &Clients, cluster: &Cluster, n: usize) -> Result<String, Status> {
    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let day = Granularity::Daily.bucket_start(cluster.now());
    let tenant_request = |subscription: &str| usage::ListUsageAggregatesRequest {
        subscription_id: subscription.into(),
        reported_start_time: Some(timestamp(day - Duration::days(1))),
        reported_end_time: Some(timestamp(day)),
        ..Default::default()
    };
    let posted = |r: usage::PostUsageResponse| {
        format!("accepted {} duplicates {}", r.accepted, r.duplicates)
    };
    let mapping = |m: reg::CustomerSubscription| {
        format!(
            "{} of {}",
            label(&m.customer_subscription_id),
            label(&m.tenant_id)
        )
    };
    let subscription = |s: reg::Subscription| {
        format!(
            "{} of {} {}",
            label(&s.subscription_id),
            label(&s.owner_tenant_id),
            s.state
        )
    };
    let registration = |r: reg::RegistrationInfo| {
        format!(
            "{} billed to {}",
            r.status,
            label(&r.registration_subscription_id)
        )
    };
    Ok(match rpc {
        Rpc::PostUsage => {
            let r = record(
                &format!("matrix-post-{n}"),
                OWNED_SUBSCRIPTION,
                meters::BASE_VM_SIZE_HOURS,
                "vm",
                "1",
                hour,
            );
            posted(
                clients
                    .ingestion()
                    .post_usage(batch(vec![r]))
                    .await?
                    .into_inner(),
            )
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
            posted(
                responses
                    .message()
                    .await?
                    .ok_or_else(|| Status::internal("no response"))?,
            )
        }
        Rpc::ListSubscriberUsageAggregates => usage_rows(
            &clients
                .provider()
                .list_subscriber_usage_aggregates(provider_request(
                    day - Duration::days(1),
                    day,
                    usage::AggregationGranularity::Daily,
                ))
                .await?
                .into_inner(),
        ),
        Rpc::ListSubscriberUsageAggregatesOfAnotherProvider => {
            let mut request = provider_request(
                day - Duration::days(1),
                day,
                usage::AggregationGranularity::Daily,
            );
            request.subscriber_id = OTHER_SUBSCRIPTION.into();
            usage_rows(
                &clients
                    .provider()
                    .list_subscriber_usage_aggregates(request)
                    .await?
                    .into_inner(),
            )
        }
        Rpc::ListUsageAggregates => usage_rows(
            &clients
                .tenant()
                .list_usage_aggregates(tenant_request(OWNED_SUBSCRIPTION))
                .await?
                .into_inner(),
        ),
        Rpc::ListMeters => {
            let meters = clients
                .admin()
                .list_meters(usage::ListMetersRequest::default())
                .await?
                .into_inner()
                .meters;
            let vm = meters
                .iter()
                .find(|m| m.meter_id == meters::BASE_VM_SIZE_HOURS)
                .map(|m| m.name.as_str());
            format!("{} meters, {vm:?}", meters.len())
        }
        Rpc::CreateMeter => {
            let meter = clients
                .admin()
                .create_meter(usage::CreateMeterRequest {
                    meter: Some(usage::Meter {
                        name: "Matrix Meter".into(),
                        unit: "hours".into(),
                        resource_provider: "Test".into(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            format!(
                "{} in {} of {}",
                meter.name, meter.unit, meter.resource_provider
            )
        }
        Rpc::GetPipelineStatus => {
            let status = clients
                .admin()
                .get_pipeline_status(usage::GetPipelineStatusRequest {})
                .await?
                .into_inner();
            format!("{} records stored", status.records_stored)
        }
        Rpc::GetRegistration => registration(
            clients
                .registration()
                .get_registration(reg::GetRegistrationRequest {})
                .await?
                .into_inner(),
        ),
        Rpc::SetRegistration => registration(
            clients
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
                .await?
                .into_inner(),
        ),
        Rpc::PutCustomerSubscription => mapping(
            clients
                .registration()
                .put_customer_subscription(reg::PutCustomerSubscriptionRequest {
                    tenant_id: OWNER_TENANT.into(),
                    customer_subscription_id: CUSTOMER_SUBSCRIPTION.into(),
                })
                .await?
                .into_inner(),
        ),
        Rpc::ListCustomerSubscriptions => {
            let page = clients
                .registration()
                .list_customer_subscriptions(reg::ListCustomerSubscriptionsRequest::default())
                .await?
                .into_inner();
            let all: Vec<String> = page
                .customer_subscriptions
                .into_iter()
                .map(mapping)
                .collect();
            all.join(", ")
        }
        Rpc::GetCustomerSubscription => mapping(
            clients
                .registration()
                .get_customer_subscription(reg::GetCustomerSubscriptionRequest {
                    customer_subscription_id: CUSTOMER_SUBSCRIPTION.into(),
                })
                .await?
                .into_inner(),
        ),
        Rpc::DeleteCustomerSubscription => {
            clients
                .registration()
                .delete_customer_subscription(reg::DeleteCustomerSubscriptionRequest {
                    customer_subscription_id: CUSTOMER_SUBSCRIPTION.into(),
                })
                .await?;
            "deleted".into()
        }
        Rpc::ResolveBillingSubscription => {
            let billing = clients
                .registration()
                .resolve_billing_subscription(reg::ResolveBillingSubscriptionRequest {
                    target: Some(reg::resolve_billing_subscription_request::Target::TenantId(
                        OWNER_TENANT.into(),
                    )),
                })
                .await?
                .into_inner();
            format!(
                "{} via mapping {}",
                label(&billing.billing_subscription_id),
                billing.via_customer_mapping
            )
        }
        Rpc::CreateTenant => {
            let tenant = clients
                .tenancy()
                .create_tenant(reg::CreateTenantRequest {
                    tenant: Some(reg::Tenant {
                        tenant_id: CREATED_TENANT.into(),
                        display_name: "Created".into(),
                    }),
                })
                .await?
                .into_inner();
            format!("{} {}", label(&tenant.tenant_id), tenant.display_name)
        }
        Rpc::GetTenant => {
            let tenant = clients
                .tenancy()
                .get_tenant(reg::GetTenantRequest {
                    tenant_id: OWNER_TENANT.into(),
                })
                .await?
                .into_inner();
            format!("{} {}", label(&tenant.tenant_id), tenant.display_name)
        }
        Rpc::ListTenants => {
            let page = clients
                .tenancy()
                .list_tenants(reg::ListTenantsRequest::default())
                .await?
                .into_inner();
            let mut names: Vec<String> = page.tenants.into_iter().map(|t| t.display_name).collect();
            names.sort();
            names.join(" ")
        }
        Rpc::CreateSubscription => subscription(
            clients
                .tenancy()
                .create_subscription(reg::CreateSubscriptionRequest {
                    subscription: Some(reg::Subscription {
                        subscription_id: CREATED_SUBSCRIPTION.into(),
                        owner_tenant_id: OWNER_TENANT.into(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner(),
        ),
        Rpc::GetSubscription => subscription(
            clients
                .tenancy()
                .get_subscription(reg::GetSubscriptionRequest {
                    subscription_id: OWNED_SUBSCRIPTION.into(),
                })
                .await?
                .into_inner(),
        ),
        Rpc::ListSubscriptions => subscription_list(
            &clients
                .tenancy()
                .list_subscriptions(reg::ListSubscriptionsRequest::default())
                .await?
                .into_inner()
                .subscriptions,
        ),
        Rpc::DeleteSubscription => subscription(
            clients
                .tenancy()
                .delete_subscription(reg::DeleteSubscriptionRequest {
                    subscription_id: OTHER_SUBSCRIPTION.into(),
                })
                .await?
                .into_inner(),
        ),
        Rpc::RemoveRegistration => {
            clients
                .registration()
                .remove_registration(reg::RemoveRegistrationRequest {})
                .await?;
            "removed".into()
        }
    })
}

/// What a caller gets: what the call returns, in words, or the refusal's code and reason.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Returns(String),
    Refused(Code, String),
}

fn ok(what: &str) -> Outcome {
    Outcome::Returns(what.into())
}

fn refused(code: Code, reason: &str) -> Outcome {
    Outcome::Refused(code, reason.into())
}

/// Columns: operator, resource provider, delegated provider, owner tenant, other tenant, anonymous.
fn matrix() -> Vec<(Rpc, [Outcome; 6])> {
    use Rpc::*;
    let role = || refused(Code::PermissionDenied, "RoleRequired");
    let not_owner = || refused(Code::PermissionDenied, "NotSubscriptionOwner");
    let not_direct = || refused(Code::PermissionDenied, "SubscriberIdIsNotDirectTenant");
    let no_token = || refused(Code::Unauthenticated, "MissingCredentials");
    let operator_only = |returns: &str| [ok(returns), role(), role(), role(), role(), no_token()];
    let posted = "accepted 1 duplicates 0";
    let current_meters = tally_core::meter::built_in_meters()
        .iter()
        .filter(|m| !m.deprecated)
        .count();
    vec![
        (
            PostUsage,
            [ok(posted), ok(posted), role(), role(), role(), no_token()],
        ),
        (
            StreamUsage,
            [ok(posted), ok(posted), role(), role(), role(), no_token()],
        ),
        (
            ListSubscriberUsageAggregates,
            [
                ok("other:3 owned:2"),
                role(),
                ok("owned:2"),
                role(),
                role(),
                no_token(),
            ],
        ),
        (
            ListSubscriberUsageAggregatesOfAnotherProvider,
            [
                ok("other:3"),
                role(),
                not_direct(),
                role(),
                role(),
                no_token(),
            ],
        ),
        (
            ListUsageAggregates,
            [
                ok("owned:2"),
                not_owner(),
                not_owner(),
                ok("owned:2"),
                not_owner(),
                no_token(),
            ],
        ),
        (
            ListMeters,
            operator_only(&format!(
                "{current_meters} meters, Some(\"Base VM Size Hours\")"
            )),
        ),
        (CreateMeter, operator_only("Matrix Meter in hours of Test")),
        // Two posts and two streamed batches above, beside the world's two records.
        (GetPipelineStatus, operator_only("6 records stored")),
        (
            GetRegistration,
            operator_only("Registered billed to registration"),
        ),
        (
            SetRegistration,
            operator_only("Registered billed to registration"),
        ),
        (
            PutCustomerSubscription,
            operator_only("customer of owner-tenant"),
        ),
        (
            ListCustomerSubscriptions,
            operator_only("customer of owner-tenant"),
        ),
        (
            GetCustomerSubscription,
            operator_only("customer of owner-tenant"),
        ),
        (DeleteCustomerSubscription, operator_only("deleted")),
        (
            // The mapping is gone: the registration's subscription pays.
            ResolveBillingSubscription,
            [
                ok("registration via mapping false"),
                role(),
                role(),
                ok("registration via mapping false"),
                role(),
                no_token(),
            ],
        ),
        (CreateTenant, operator_only("created-tenant Created")),
        (
            GetTenant,
            [
                ok("owner-tenant Owner"),
                role(),
                role(),
                ok("owner-tenant Owner"),
                role(),
                no_token(),
            ],
        ),
        (ListTenants, operator_only("Created Other Owner Reseller")),
        (
            CreateSubscription,
            operator_only("created of owner-tenant Enabled"),
        ),
        (
            GetSubscription,
            [
                ok("owned of owner-tenant Enabled"),
                not_owner(),
                not_owner(),
                ok("owned of owner-tenant Enabled"),
                not_owner(),
                no_token(),
            ],
        ),
        (
            // Each caller sees what is theirs: all, direct tenants', own.
            ListSubscriptions,
            [
                ok("created other owned provider"),
                role(),
                ok("owned"),
                ok("created owned"),
                ok("other"),
                no_token(),
            ],
        ),
        (
            DeleteSubscription,
            operator_only("other of other-tenant Deleted"),
        ),
        // Last: it takes the registration away.
        (RemoveRegistration, operator_only("removed")),
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
            let got = match call(rpc, clients, &cluster, n * 10 + column).await {
                Ok(returned) => Outcome::Returns(returned),
                Err(status) => Outcome::Refused(
                    status.code(),
                    status::reason(&status).unwrap_or_else(|| format!("no reason: {status:?}")),
                ),
            };
            if got != expected[column] {
                failures.push(format!(
                    "{rpc:?} as {name}: expected {:?}, got {got:?}",
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
/// The ids of the subscriptions `clients` may list.
async fn listed_subscriptions(clients: &Clients) -> Vec<String> {
    let listed = clients
        .tenancy()
        .list_subscriptions(reg::ListSubscriptionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    listed
        .subscriptions
        .into_iter()
        .map(|s| s.subscription_id)
        .collect()
}

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
    assert_eq!(listed_subscriptions(&reseller).await, [OWNED_SUBSCRIPTION]);

    // A tenant lists its own subscriptions only, and reads its own usage.
    let owner = cluster.clients_for(&Identity::tenant(OWNER_TENANT));
    assert_eq!(listed_subscriptions(&owner).await, [OWNED_SUBSCRIPTION]);
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
