//! The Azure-compatible REST surface: the same rows as gRPC, nextLink paging, §5.2 errors,
//! access control, and the CSP customerSubscriptions resource.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tally_contract_tests::records::{batch, meters, record};
use tally_contract_tests::rest::{call, code, get};
use tally_contract_tests::world::{
    self, OTHER_SUBSCRIPTION, OWNED_SUBSCRIPTION, OWNER_TENANT, PROVIDER_SUBSCRIPTION,
    REGISTRATION_SUBSCRIPTION, RESELLER_TENANT,
};
use tally_contract_tests::{Backend, Cluster, Identity, Topology, on_both_backends, sign};
use tally_core::{Granularity, Quantity};
use tally_proto::registration::v1 as reg;
use tally_proto::usage::v1::AggregationGranularity::Hourly;

use crate::{RowId, provider_rows};

on_both_backends!(
    rest_and_grpc_agree_row_for_row,
    rest_errors_follow_section_5_2,
    customer_subscriptions_over_rest,
    every_role_meets_every_rest_route
);

const USAGE_API: &str = "api-version=2015-06-01-preview";

#[derive(Deserialize)]
struct Page {
    value: Vec<Row>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct Row {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    properties: Properties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    subscription_id: String,
    usage_start_time: String,
    usage_end_time: String,
    instance_data: String,
    quantity: Box<RawValue>,
    meter_id: String,
    unit: Option<String>,
    meter_name: Option<String>,
}

fn z(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Every row of a REST listing, following nextLink the way Microsoft's client does: only its
/// query travels, plus api-version again.
async fn rest_rows(
    cluster: &Cluster,
    first: &str,
    token: &str,
    kind: &str,
) -> (BTreeMap<RowId, Quantity>, usize) {
    let mut rows = BTreeMap::new();
    let mut url = first.to_string();
    let mut pages = 0;
    loop {
        let path = url.trim_start_matches(&cluster.base_url()).to_string();
        let client = reqwest::Client::new();
        let response = client
            .get(format!("{}{path}", cluster.base_url()))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Page = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        pages += 1;
        assert!(page.value.len() <= 1_000);
        for row in page.value {
            let p = &row.properties;
            assert_eq!(row.kind, kind);
            assert_eq!(row.name, format!("{}-{}", p.subscription_id, p.meter_id));
            assert!(
                row.id.ends_with(&format!("/UsageAggregate/{}", row.name)),
                "{}",
                row.id
            );
            assert!(p.usage_start_time.ends_with("+00:00") && p.usage_end_time.ends_with("+00:00"));
            assert_eq!(p.unit.as_deref(), Some("virtual core hours"));
            assert_eq!(p.meter_name.as_deref(), Some("Base VM Size Hours"));
            let instance: serde_json::Value = serde_json::from_str(&p.instance_data).unwrap();
            let resource = instance["Microsoft.Resources"]["resourceUri"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(instance["Microsoft.Resources"]["location"], "local");
            let start = DateTime::parse_from_rfc3339(&p.usage_start_time)
                .unwrap()
                .timestamp();
            let quantity = Quantity::parse(p.quantity.get()).expect("an exact decimal JSON number");
            let id = (
                p.subscription_id.clone(),
                p.meter_id.clone(),
                resource,
                start,
            );
            assert!(rows.insert(id, quantity).is_none(), "a row came twice");
        }
        match page.next_link {
            None => return (rows, pages),
            Some(next) => {
                assert!(
                    next.starts_with(&cluster.base_url()),
                    "nextLink is absolute: {next}"
                );
                assert!(next.contains("continuationToken="));
                url = format!("{next}&{USAGE_API}");
            }
        }
    }
}

async fn rest_and_grpc_agree_row_for_row(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now());
    // 2,500 rows of the owned subscription: three REST pages.
    for chunk in 0..5 {
        let records = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                record(
                    &format!("rest-{n}"),
                    OWNED_SUBSCRIPTION,
                    meters::BASE_VM_SIZE_HOURS,
                    &format!("vm{n:05}"),
                    &format!("{n}.{}", n % 7),
                    hour - Duration::hours(1),
                )
            })
            .collect();
        cluster
            .ingestion()
            .post_usage(batch(records))
            .await
            .unwrap();
    }
    let end = hour + Duration::hours(1);
    cluster.settle_at(end).await;
    let grpc = provider_rows(&cluster, hour, end, Hourly).await;
    assert_eq!(grpc.len(), 2_500);

    let operator = sign(&Identity::operator().claims(), None);
    let first = format!(
        "{}/subscriptions/{REGISTRATION_SUBSCRIPTION}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?{USAGE_API}&reportedStartTime={}&reportedEndTime={}&aggregationGranularity=hourly",
        cluster.base_url(),
        z(hour),
        z(end)
    );
    let (rest, pages) = rest_rows(
        &cluster,
        &first,
        &operator,
        "Microsoft.Commerce.Admin/UsageAggregate",
    )
    .await;
    assert_eq!(pages, 3);
    assert_eq!(rest, grpc);

    let tenant = sign(&Identity::tenant(OWNER_TENANT).claims(), None);
    let first = format!(
        "{}/subscriptions/{OWNED_SUBSCRIPTION}/providers/Microsoft.Commerce/UsageAggregates?{USAGE_API}&reportedStartTime={}&reportedEndTime={}&aggregationGranularity=Hourly",
        cluster.base_url(),
        z(hour).replace(':', "%3A"),
        z(end).replace(':', "%3a")
    );
    let (rest, _) = rest_rows(
        &cluster,
        &first,
        &tenant,
        "Microsoft.Commerce/UsageAggregate",
    )
    .await;
    assert_eq!(rest, grpc);
    let total: Quantity = rest.values().copied().sum();
    let expected: Quantity = (0..2_500)
        .map(|n| Quantity::parse(&format!("{n}.{}", n % 7)).unwrap())
        .sum();
    assert_eq!(total, expected);
    cluster.stop().await;
}

async fn rest_errors_follow_section_5_2(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::Remote).await;
    world::populate(&cluster).await;
    let base = cluster.base_url();
    let operator = sign(&Identity::operator().claims(), None);
    let tenant = sign(&Identity::tenant(OWNER_TENANT).claims(), None);
    let reseller = sign(
        &Identity::delegated_provider(RESELLER_TENANT, PROVIDER_SUBSCRIPTION).claims(),
        None,
    );
    let day = Granularity::Daily.bucket_start(cluster.now());
    let (start, end) = (day - Duration::days(1), day);
    let tenant_path = |query: &str| {
        format!(
            "/subscriptions/{OWNED_SUBSCRIPTION}/providers/Microsoft.Commerce/UsageAggregates?{query}"
        )
    };
    let provider_path = |sub: &str, query: &str| {
        format!(
            "/subscriptions/{sub}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?{query}"
        )
    };
    let window = format!("reportedStartTime={}&reportedEndTime={}", z(start), z(end));

    // Accepted spellings of a time: Z, .000Z (Microsoft's client), +00:00 escaped.
    for (s, e) in [
        (z(start), z(end)),
        (
            start.format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
            end.format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
        ),
        (
            start
                .format("%Y-%m-%dT%H%%3A%M%%3A%S%%2B00%%3A00")
                .to_string(),
            end.format("%Y-%m-%dT%H%%3a%M%%3a%S%%2b00%%3a00")
                .to_string(),
        ),
    ] {
        let (status, body) = get(
            &base,
            &tenant_path(&format!(
                "{USAGE_API}&reportedStartTime={s}&reportedEndTime={e}"
            )),
            Some(&tenant),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{s}: {body}");
        assert_eq!(body["value"].as_array().unwrap().len(), 1, "{body}");
    }

    let future = z(day + Duration::days(2));
    let unaligned = (day - Duration::hours(5))
        .format("%Y-%m-%dT%H:30:00Z")
        .to_string();
    let cases: Vec<(String, &str, StatusCode, &str, &str)> = vec![
        (
            tenant_path(&window),
            "tenant",
            StatusCode::BAD_REQUEST,
            "NoApiVersion",
            "api-version",
        ),
        (
            tenant_path(&format!("api-version=2016-01-01&{window}")),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "api-version",
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime=yesterday&reportedEndTime={}",
                z(end)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime",
        ),
        (
            tenant_path(&format!("{USAGE_API}&reportedEndTime={}", z(end))),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime",
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime={unaligned}&reportedEndTime={}&aggregationGranularity=hourly",
                z(end)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime",
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime={}&reportedEndTime={future}",
                z(start)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "RequestEndTimeIsInFuture",
            "reportedEndTime",
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&{window}&aggregationGranularity=weekly"
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidAggregationGranularity",
            "aggregationGranularity",
        ),
        (
            tenant_path(&format!("{USAGE_API}&{window}&continuationToken=forged")),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "continuationToken",
        ),
        (
            format!(
                "/subscriptions/%20/providers/Microsoft.Commerce/UsageAggregates?{USAGE_API}&{window}"
            ),
            "tenant",
            StatusCode::BAD_REQUEST,
            "SubscriptionIdMissingInRequest",
            "subscription",
        ),
        (
            provider_path(
                PROVIDER_SUBSCRIPTION,
                &format!("{USAGE_API}&{window}&subscriberId={OTHER_SUBSCRIPTION}"),
            ),
            "reseller",
            StatusCode::BAD_REQUEST,
            "SubscriberIdIsNotDirectTenant",
            OTHER_SUBSCRIPTION,
        ),
        (
            provider_path(REGISTRATION_SUBSCRIPTION, &format!("{USAGE_API}&{window}")),
            "tenant",
            StatusCode::FORBIDDEN,
            "RoleRequired",
            "Operator",
        ),
        (
            provider_path(REGISTRATION_SUBSCRIPTION, &format!("{USAGE_API}&{window}")),
            "reseller",
            StatusCode::FORBIDDEN,
            "NotSubscriptionOwner",
            REGISTRATION_SUBSCRIPTION,
        ),
        (
            tenant_path(&format!("{USAGE_API}&{window}")),
            "reseller",
            StatusCode::FORBIDDEN,
            "NotSubscriptionOwner",
            OWNED_SUBSCRIPTION,
        ),
        (
            "/subscriptions/x/providers/Microsoft.Nothing/here".into(),
            "tenant",
            StatusCode::NOT_FOUND,
            "NotFound",
            "Microsoft.Nothing",
        ),
    ];
    for (path, who, status, expected_code, mentions) in cases {
        let token = match who {
            "tenant" => &tenant,
            _ => &reseller,
        };
        let (got, body) = get(&base, &path, Some(token)).await;
        assert_eq!(
            (got, code(&body)),
            (status, expected_code),
            "{path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(mentions),
            "{path}: {message:?} should mention {mentions}"
        );
    }
    // The operator path with the reseller's own subscription works, and shows its tenants only.
    let (status, body) = get(
        &base,
        &provider_path(PROVIDER_SUBSCRIPTION, &format!("{USAGE_API}&{window}")),
        Some(&reseller),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let subs: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(subs, [OWNED_SUBSCRIPTION]);
    // ProcessingNotComplete unless allowIncomplete: today is still open.
    let today = format!(
        "reportedStartTime={}&reportedEndTime={}",
        z(day),
        z(day + Duration::days(1))
    );
    let (status, body) = get(
        &base,
        &provider_path(REGISTRATION_SUBSCRIPTION, &format!("{USAGE_API}&{today}")),
        Some(&operator),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "RequestEndTimeIsInFuture"),
        "{body}"
    );
    let (status, body) = get(
        &base,
        &provider_path(
            REGISTRATION_SUBSCRIPTION,
            &format!("{USAGE_API}&{today}&allowIncomplete=true"),
        ),
        Some(&operator),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A dependency down is a retryable 503 ServiceUnavailable.
    let mut cluster = cluster;
    cluster.crash_aggregator();
    let (status, body) = get(
        &base,
        &tenant_path(&format!("{USAGE_API}&{window}")),
        Some(&tenant),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        "{body}"
    );
    cluster.stop().await;
}

async fn customer_subscriptions_over_rest(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let base = cluster.base_url();
    let operator = sign(&Identity::operator().claims(), None);
    let tenant = sign(&Identity::tenant(OWNER_TENANT).claims(), None);
    let info = cluster
        .operator()
        .registration()
        .get_registration(reg::GetRegistrationRequest {})
        .await
        .unwrap()
        .into_inner();
    let collection = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.AzureStack/registrations/{}/customerSubscriptions",
        info.registration_subscription_id.to_uppercase(),
        info.resource_group.to_uppercase(),
        info.registration_name
    );
    let api = "api-version=2017-06-01";
    let customer = |n: usize| format!("c0000000-0000-4000-8000-{n:012}");

    // 150 tenants, each mapped to its own customer subscription: two pages of 100.
    for n in 0..150 {
        let tenant_id = format!("e0000000-0000-4000-8000-{n:012}");
        cluster
            .operator()
            .tenancy()
            .create_tenant(reg::CreateTenantRequest {
                tenant: Some(reg::Tenant {
                    tenant_id: tenant_id.clone(),
                    display_name: format!("t{n}"),
                }),
            })
            .await
            .unwrap();
        let (status, body) = call(
            &base,
            Method::PUT,
            &format!("{collection}/{}?{api}", customer(n)),
            Some(&operator),
            Some(&json!({"properties": {"tenantId": tenant_id}})),
        )
        .await;
        assert_eq!(
            (status, &body),
            (StatusCode::CREATED, &serde_json::Value::Null),
            "PUT answers 201 with an empty body"
        );
    }
    let (status, first) = get(&base, &format!("{collection}?{api}"), Some(&operator)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["value"].as_array().unwrap().len(), 100);
    let item = &first["value"][0];
    assert_eq!(item["name"], customer(0));
    assert_eq!(
        item["type"],
        "Microsoft.AzureStack/registrations/customerSubscriptions"
    );
    assert_eq!(
        item["properties"]["tenantId"],
        "e0000000-0000-4000-8000-000000000000"
    );
    assert!(
        item["id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/customerSubscriptions/{}", customer(0)))
    );
    let next = first["nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&base) && next.contains("%24skipToken=") || next.contains("$skipToken="),
        "{next}"
    );
    let (status, second) = get(&base, next.trim_start_matches(&base), Some(&operator)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["value"].as_array().unwrap().len(), 50);
    assert!(second.get("nextLink").is_none());

    let one = format!("{collection}/{}?{api}", customer(7));
    let (status, body) = get(&base, &one, Some(&operator)).await;
    assert_eq!(
        (status, body["properties"]["tenantId"].as_str()),
        (StatusCode::OK, Some("e0000000-0000-4000-8000-000000000007"))
    );
    let (status, body) = call(&base, Method::DELETE, &one, Some(&operator), None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, serde_json::Value::Null)
    );
    let (status, body) = call(&base, Method::DELETE, &one, Some(&operator), None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "CustomerSubscriptionNotFound")
    );
    let (status, body) = get(&base, &one, Some(&operator)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "CustomerSubscriptionNotFound")
    );

    // Errors of the registration resource.
    let (status, body) = get(&base, &collection, Some(&operator)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "NoApiVersion")
    );
    let wrong = collection.replace(&info.registration_name, "someone-else");
    let (status, body) = get(&base, &format!("{wrong}?{api}"), Some(&operator)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "RegistrationNotFound")
    );
    let (status, body) = call(
        &base,
        Method::PUT,
        &format!("{collection}/not-a-guid?{api}"),
        Some(&operator),
        Some(&json!({"properties": {"tenantId": OWNER_TENANT}})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "InvalidCustomerSubscriptionId")
    );
    let (status, body) = call(
        &base,
        Method::PUT,
        &format!("{collection}/{}?{api}", customer(999)),
        Some(&operator),
        Some(&json!({})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "InvalidProperty")
    );
    // Only operators manage mappings; others get 403 and nothing else.
    for (method, path) in [
        (Method::GET, format!("{collection}?{api}")),
        (Method::GET, format!("{collection}/{}?{api}", customer(1))),
        (Method::PUT, format!("{collection}/{}?{api}", customer(1))),
        (
            Method::DELETE,
            format!("{collection}/{}?{api}", customer(1)),
        ),
    ] {
        let (status, body) = call(
            &base,
            method.clone(),
            &path,
            Some(&tenant),
            Some(&json!({"properties": {"tenantId": OWNER_TENANT}})),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "RoleRequired"),
            "{method} {path}"
        );
        assert!(body.get("value").is_none());
        let (status, body) = call(&base, method.clone(), &path, None, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "MissingCredentials"),
            "{method} {path}"
        );
    }
    // Capacity registrations refuse mappings.
    world::register(cluster.operator(), reg::BillingModel::Capacity, true).await;
    let (status, body) = call(
        &base,
        Method::PUT,
        &format!("{collection}/{}?{api}", customer(500)),
        Some(&operator),
        Some(&json!({"properties": {"tenantId": OWNER_TENANT}})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "CustomerSubscriptionsNotAllowed"),
        "{body}"
    );
    cluster.stop().await;
}

/// Every REST route against every caller: allowed calls succeed, others get the right status and
/// code and no data.
async fn every_role_meets_every_rest_route(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    world::populate(&cluster).await;
    let base = cluster.base_url();
    let info = cluster
        .operator()
        .registration()
        .get_registration(reg::GetRegistrationRequest {})
        .await
        .unwrap()
        .into_inner();
    let day = Granularity::Daily.bucket_start(cluster.now());
    let window = format!(
        "{USAGE_API}&reportedStartTime={}&reportedEndTime={}",
        z(day - Duration::days(1)),
        z(day)
    );
    let mappings = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.AzureStack/registrations/{}/customerSubscriptions",
        info.registration_subscription_id, info.resource_group, info.registration_name
    );
    let mapping = format!("{mappings}/d2d2d2d2-0000-4000-8000-000000000001?api-version=2017-06-01");
    let tenant_usage = format!(
        "/subscriptions/{OWNED_SUBSCRIPTION}/providers/Microsoft.Commerce/UsageAggregates?{window}"
    );
    let operator_usage = format!(
        "/subscriptions/{PROVIDER_SUBSCRIPTION}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?{window}"
    );
    const OK: u16 = 200;
    const DENIED: u16 = 403;
    const NO_TOKEN: u16 = 401;
    // Columns: operator, resource provider, delegated provider, owner tenant, other tenant, anonymous.
    let routes: Vec<(Method, String, [u16; 6])> = vec![
        (
            Method::GET,
            tenant_usage,
            [OK, DENIED, DENIED, OK, DENIED, NO_TOKEN],
        ),
        (
            Method::GET,
            operator_usage,
            [OK, DENIED, OK, DENIED, DENIED, NO_TOKEN],
        ),
        (
            Method::PUT,
            mapping.clone(),
            [201, DENIED, DENIED, DENIED, DENIED, NO_TOKEN],
        ),
        (
            Method::GET,
            format!("{mappings}?api-version=2017-06-01"),
            [OK, DENIED, DENIED, DENIED, DENIED, NO_TOKEN],
        ),
        (
            Method::GET,
            mapping.clone(),
            [OK, DENIED, DENIED, DENIED, DENIED, NO_TOKEN],
        ),
        (
            Method::DELETE,
            mapping,
            [204, DENIED, DENIED, DENIED, DENIED, NO_TOKEN],
        ),
    ];
    let callers: Vec<(&str, Option<String>)> = world::callers()
        .into_iter()
        .map(|(name, identity)| (name, identity.map(|i| sign(&i.claims(), None))))
        .collect();
    let body = json!({"properties": {"tenantId": OWNER_TENANT}});
    let mut failures = Vec::new();
    for (method, path, expected) in routes {
        // Refused callers first: the operator's PUT and DELETE change what the others would see.
        for column in (0..callers.len()).rev() {
            let (name, token) = &callers[column];
            let (status, response) =
                call(&base, method.clone(), &path, token.as_deref(), Some(&body)).await;
            if status.as_u16() != expected[column] {
                failures.push(format!(
                    "{method} {path} as {name}: expected {}, got {status} {response}",
                    expected[column]
                ));
            }
            if !status.is_success()
                && (response.get("value").is_some() || response.get("error").is_none())
            {
                failures.push(format!(
                    "{method} {path} as {name}: a refusal carried data: {response}"
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
