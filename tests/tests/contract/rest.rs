//! The Azure-compatible REST surface: the same rows as gRPC, nextLink paging, Azure's error codes,
//! access control, and the CSP customerSubscriptions resource.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tally_contract_tests::records::{batch, meters, record};
use tally_contract_tests::rest::{call, code, error, get};
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
    rest_reports_processing_not_complete,
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

    let future = day + Duration::days(2);
    let unaligned = day - Duration::hours(5) + Duration::minutes(30);
    // Path, caller, status, code, and the whole message: fields named as REST names them.
    let cases: Vec<(String, &str, StatusCode, &str, String)> = vec![
        (
            tenant_path(&window),
            "tenant",
            StatusCode::BAD_REQUEST,
            "NoApiVersion",
            "the api-version query parameter is required; use 2015-06-01-preview".into(),
        ),
        (
            tenant_path(&format!("api-version=2016-01-01&{window}")),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "api-version 2016-01-01 is not supported; use 2015-06-01-preview".into(),
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime=yesterday&reportedEndTime={}",
                z(end)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime: \"yesterday\" is not an ISO 8601 UTC time such as 2026-11-27T00:00:00Z"
                .into(),
        ),
        (
            // Beyond the nanosecond range of Tally's times: refused before any service is asked.
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime=2300-01-01T00:00:00Z&reportedEndTime={}",
                z(end)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime: \"2300-01-01T00:00:00Z\" is outside the times Tally keeps (1677-09-21 to 2262-04-11)"
                .into(),
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime=0001-01-01T00:00:00Z&reportedEndTime={}",
                z(end)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime: \"0001-01-01T00:00:00Z\" is outside the times Tally keeps (1677-09-21 to 2262-04-11)"
                .into(),
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime={}&reportedEndTime=2300-01-01T00:00:00Z",
                z(start)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedEndTime: \"2300-01-01T00:00:00Z\" is outside the times Tally keeps (1677-09-21 to 2262-04-11)"
                .into(),
        ),
        (
            tenant_path(&format!("{USAGE_API}&reportedEndTime={}", z(end))),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedStartTime: is required".into(),
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime={}&reportedEndTime={}&aggregationGranularity=hourly",
                z(unaligned),
                z(end)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            format!(
                "reportedStartTime: {} is not on an hour boundary (UTC)",
                unaligned.to_rfc3339()
            ),
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&reportedStartTime={}&reportedEndTime={}",
                z(start),
                z(future)
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "RequestEndTimeIsInFuture",
            format!(
                "reportedEndTime: {} is later than {}",
                future.to_rfc3339(),
                cluster.now().to_rfc3339()
            ),
        ),
        (
            tenant_path(&format!(
                "{USAGE_API}&{window}&aggregationGranularity=weekly"
            )),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidAggregationGranularity",
            "aggregationGranularity \"weekly\" is not daily or hourly".into(),
        ),
        (
            tenant_path(&format!("{USAGE_API}&{window}&continuationToken=forged")),
            "tenant",
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "continuationToken: is malformed, altered, or from another query".into(),
        ),
        (
            format!(
                "/subscriptions/%20/providers/Microsoft.Commerce/UsageAggregates?{USAGE_API}&{window}"
            ),
            "tenant",
            StatusCode::BAD_REQUEST,
            "SubscriptionIdMissingInRequest",
            "the subscription id is missing from the path".into(),
        ),
        (
            provider_path(
                PROVIDER_SUBSCRIPTION,
                &format!("{USAGE_API}&{window}&subscriberId={OTHER_SUBSCRIPTION}"),
            ),
            "reseller",
            StatusCode::BAD_REQUEST,
            "SubscriberIdIsNotDirectTenant",
            format!(
                "subscriber {OTHER_SUBSCRIPTION} is not a direct tenant of provider subscription {PROVIDER_SUBSCRIPTION}"
            ),
        ),
        (
            provider_path(REGISTRATION_SUBSCRIPTION, &format!("{USAGE_API}&{window}")),
            "tenant",
            StatusCode::FORBIDDEN,
            "RoleRequired",
            "the provider usage API needs the role Operator or DelegatedProvider".into(),
        ),
        (
            provider_path(REGISTRATION_SUBSCRIPTION, &format!("{USAGE_API}&{window}")),
            "reseller",
            StatusCode::FORBIDDEN,
            "NotSubscriptionOwner",
            format!("provider subscription {REGISTRATION_SUBSCRIPTION} is not the caller's"),
        ),
        (
            tenant_path(&format!("{USAGE_API}&{window}")),
            "reseller",
            StatusCode::FORBIDDEN,
            "NotSubscriptionOwner",
            format!("subscription {OWNED_SUBSCRIPTION} is not owned by the caller's tenant"),
        ),
        (
            "/subscriptions/x/providers/Microsoft.Nothing/here".into(),
            "tenant",
            StatusCode::NOT_FOUND,
            "NotFound",
            "no resource at /subscriptions/x/providers/Microsoft.Nothing/here".into(),
        ),
        (
            tenant_path(&format!("{USAGE_API}&{window}")).replacen(
                "/subscriptions",
                "/SUBSCRIPTIONS",
                1,
            ),
            "anonymous",
            StatusCode::UNAUTHORIZED,
            "MissingCredentials",
            "no bearer token: send an 'authorization: Bearer <token>' header".into(),
        ),
    ];
    for (path, who, status, expected_code, expected_message) in cases {
        let token = match who {
            "tenant" => Some(&tenant),
            "reseller" => Some(&reseller),
            _ => None,
        };
        let (got, body) = get(&base, &path, token.map(String::as_str)).await;
        assert_eq!(
            (got, code(&body), body["error"]["message"].as_str()),
            (status, expected_code, Some(expected_message.as_str())),
            "{path}: {body}"
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
    // Today's window ends in the future: refused unless allowIncomplete, which lets it end at
    // the boundary that closes the current day.
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
    assert_eq!(body["value"], json!([]), "nothing was reported today");
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
    assert_eq!(
        body["error"]["message"],
        "the usage service is unavailable; retry later"
    );
    cluster.stop().await;
}

/// A past window that is not folded yet is `ProcessingNotComplete` (400), unless
/// allowIncomplete.
async fn rest_reports_processing_not_complete(backend: Backend) {
    let (cluster, start, end) = Cluster::start_with_unfolded_window(backend).await;
    let complete_through = cluster.pipeline_status().await.complete_through.unwrap();
    let complete_through = DateTime::from_timestamp(complete_through.seconds, 0).unwrap();
    let path = format!(
        "/subscriptions/{REGISTRATION_SUBSCRIPTION}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?{USAGE_API}&reportedStartTime={}&reportedEndTime={}&aggregationGranularity=Hourly",
        z(start),
        z(end)
    );
    let operator = sign(&Identity::operator().claims(), None);
    let (status, body) = get(&cluster.base_url(), &path, Some(&operator)).await;
    assert_eq!(
        (status, code(&body), body["error"]["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            "ProcessingNotComplete",
            Some(
                format!(
                    "the window ends at {end}, but processing is complete only through {complete_through}; retry later or set allow_incomplete"
                )
                .as_str()
            )
        ),
        "{body}"
    );
    let (status, body) = get(
        &cluster.base_url(),
        &format!("{path}&allowIncomplete=true"),
        Some(&operator),
    )
    .await;
    assert_eq!(
        (status, &body["value"]),
        (StatusCode::OK, &json!([])),
        "nothing is folded yet: {body}"
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
    // nextLink: this path as the client spelled it, api-version, and the page token.
    let next = first["nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{base}{collection}?{api}&%24skipToken=")),
        "{next}"
    );
    let (status, second) = get(&base, next.trim_start_matches(&base), Some(&operator)).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = second["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (100..150).map(customer).collect();
    assert_eq!(names, expected);
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
    let gone = format!(
        "customerSubscriptionId: {} is not mapped to any tenant",
        customer(7)
    );
    let (status, body) = call(&base, Method::DELETE, &one, Some(&operator), None).await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::NOT_FOUND,
            ("CustomerSubscriptionNotFound", gone.as_str())
        )
    );
    let (status, body) = get(&base, &one, Some(&operator)).await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::NOT_FOUND,
            ("CustomerSubscriptionNotFound", gone.as_str())
        )
    );

    // Errors of the registration resource.
    let (status, body) = get(&base, &collection, Some(&operator)).await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::BAD_REQUEST,
            (
                "NoApiVersion",
                "the api-version query parameter is required; use 2017-06-01"
            )
        )
    );
    let wrong = collection.replace(&info.registration_name, "someone-else");
    let (status, body) = get(&base, &format!("{wrong}?{api}"), Some(&operator)).await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::NOT_FOUND,
            (
                "RegistrationNotFound",
                format!(
                    "no registration someone-else in resource group {} of subscription {}",
                    info.resource_group.to_uppercase(),
                    info.registration_subscription_id.to_uppercase()
                )
                .as_str()
            )
        )
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
        (status, error(&body)),
        (
            StatusCode::BAD_REQUEST,
            (
                "InvalidCustomerSubscriptionId",
                "customerSubscriptionId: \"not-a-guid\" is not a subscription id"
            )
        )
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
        (status, error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("InvalidProperty", "properties.tenantId is required")
        )
    );
    let (status, body) = call(
        &base,
        Method::PUT,
        &format!("{collection}/{}?{api}", customer(999)),
        Some(&operator),
        Some(&json!({"properties": {"tenantId": "not-a-tenant"}})),
    )
    .await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::BAD_REQUEST,
            (
                "InvalidProperty",
                "properties.tenantId: \"not-a-tenant\" is not a GUID"
            )
        )
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
            (status, error(&body)),
            (
                StatusCode::FORBIDDEN,
                (
                    "RoleRequired",
                    "reading the registration needs the role Operator"
                )
            ),
            "{method} {path}"
        );
        assert!(body.get("value").is_none());
        let (status, body) = call(&base, method.clone(), &path, None, None).await;
        assert_eq!(
            (status, error(&body)),
            (
                StatusCode::UNAUTHORIZED,
                (
                    "MissingCredentials",
                    "no bearer token: send an 'authorization: Bearer <token>' header"
                )
            ),
            "{method} {path}"
        );
    }
    // Another method on a known path is 405.
    let (status, body) = call(
        &base,
        Method::POST,
        &format!("{collection}/{}?{api}", customer(1)),
        Some(&operator),
        None,
    )
    .await;
    assert_eq!(
        (status, error(&body)),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            (
                "MethodNotAllowed",
                format!("POST is not allowed on {collection}/{}", customer(1)).as_str()
            )
        )
    );
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
        (status, error(&body)),
        (
            StatusCode::BAD_REQUEST,
            (
                "CustomerSubscriptionsNotAllowed",
                "a Capacity registration cannot map tenants to customer subscriptions; only pay-as-you-use registrations can"
            )
        ),
        "{body}"
    );
    cluster.stop().await;
}

/// What a caller gets from a route: the HTTP status and [`summary`] of the body.
type Answer = (u16, String);

/// What a REST answer carries, in words: the error code of a refusal; otherwise each item as
/// `subscription:quantity` (usage) or `customer of tenant` (mappings), sorted; empty for none.
/// Tally's own routes: subscription ids, tenant names, `roles tenant` of whoami, the records
/// stored, or `manual` for the clock.
fn summary(body: &serde_json::Value) -> String {
    if body.get("error").is_some() {
        return code(body).to_string();
    }
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("-").to_string();
    let mut own: Option<Vec<String>> = None;
    if let Some(subscriptions) = body.get("subscriptions").and_then(|s| s.as_array()) {
        own = Some(
            subscriptions
                .iter()
                .map(|s| text(&s["subscriptionId"]))
                .collect(),
        );
    } else if let Some(tenants) = body.get("tenants").and_then(|t| t.as_array()) {
        own = Some(tenants.iter().map(|t| text(&t["displayName"])).collect());
    } else if body.get("subject").is_some() {
        let roles: Vec<String> = body["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let roles = if roles.is_empty() {
            "-".into()
        } else {
            roles.join(",")
        };
        return format!("{roles} {}", text(&body["tenantDisplayName"]));
    } else if let Some(stored) = body.get("recordsStored") {
        return format!("{stored} records stored");
    } else if body.get("manual").is_some_and(|m| m == true) {
        return "manual".into();
    }
    if let Some(mut items) = own {
        items.sort();
        return items.join(" ");
    }
    let item = |item: &serde_json::Value| {
        let p = &item["properties"];
        match p.get("quantity") {
            Some(quantity) => format!("{}:{quantity}", p["subscriptionId"].as_str().unwrap_or("?")),
            None => format!(
                "{} of {}",
                item["name"].as_str().unwrap_or("?"),
                p["tenantId"].as_str().unwrap_or("?")
            ),
        }
    };
    let mut items: Vec<String> = match body.get("value") {
        Some(value) => value.as_array().into_iter().flatten().map(item).collect(),
        None if body.is_null() => Vec::new(),
        None => vec![item(body)],
    };
    items.sort();
    items.join(" ")
}

/// Every REST route against every caller: allowed calls return what is theirs, others get the
/// right status and code and no data.
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
    let customer = "d2d2d2d2-0000-4000-8000-000000000001";
    let mapping = format!("{mappings}/{customer}?api-version=2017-06-01");
    let tenant_usage = format!(
        "/subscriptions/{OWNED_SUBSCRIPTION}/providers/Microsoft.Commerce/UsageAggregates?{window}"
    );
    let operator_usage = format!(
        "/subscriptions/{PROVIDER_SUBSCRIPTION}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?{window}"
    );
    let owned = format!("{OWNED_SUBSCRIPTION}:2");
    let everyone = format!("{OWNED_SUBSCRIPTION}:2 {OTHER_SUBSCRIPTION}:3");
    let mapped = format!("{customer} of {OWNER_TENANT}");
    let ok = |what: &str| (200, what.to_string());
    let role = || (403, "RoleRequired".to_string());
    let not_owner = || (403, "NotSubscriptionOwner".to_string());
    let no_token = || (401, "MissingCredentials".to_string());
    let operator_only = |status: u16, what: &str| {
        [
            (status, what.to_string()),
            role(),
            role(),
            role(),
            role(),
            no_token(),
        ]
    };
    // Columns: operator, resource provider, delegated provider, owner tenant, other tenant, anonymous.
    let routes: Vec<(Method, String, [Answer; 6])> = vec![
        (
            Method::GET,
            tenant_usage,
            [
                ok(&owned),
                not_owner(),
                not_owner(),
                ok(&owned),
                not_owner(),
                no_token(),
            ],
        ),
        (
            // The operator sees every subscriber; the reseller its direct tenants.
            Method::GET,
            operator_usage,
            [
                ok(&everyone),
                role(),
                ok(&owned),
                role(),
                role(),
                no_token(),
            ],
        ),
        (Method::PUT, mapping.clone(), operator_only(201, "")),
        (
            Method::GET,
            format!("{mappings}?api-version=2017-06-01"),
            operator_only(200, &mapped),
        ),
        (Method::GET, mapping.clone(), operator_only(200, &mapped)),
        (Method::DELETE, mapping, operator_only(204, "")),
        (
            // Tally's own routes, which the portal reads.
            Method::GET,
            "/tally/v1/whoami".into(),
            [
                ok("Operator -"),
                ok("ResourceProvider -"),
                ok("DelegatedProvider Reseller"),
                ok("- Owner"),
                ok("- Other"),
                no_token(),
            ],
        ),
        (
            Method::GET,
            "/clock/v1/time".into(),
            [
                ok("manual"),
                ok("manual"),
                ok("manual"),
                ok("manual"),
                ok("manual"),
                no_token(),
            ],
        ),
        (
            Method::GET,
            "/usage/v1/pipeline".into(),
            operator_only(200, "2 records stored"),
        ),
        (
            Method::GET,
            "/tenancy/v1/tenants".into(),
            operator_only(200, "Other Owner Reseller"),
        ),
        (
            // Each caller sees what is theirs, whatever it asks for: a tenant its own, a reseller
            // its direct tenants' (none of them owned by the tenant asked for).
            Method::GET,
            format!(
                "/tenancy/v1/subscriptions?includeDeleted=true&ownerTenantId={}",
                world::OTHER_TENANT
            ),
            [
                ok(OTHER_SUBSCRIPTION),
                role(),
                ok(""),
                ok(OWNED_SUBSCRIPTION),
                ok(OTHER_SUBSCRIPTION),
                no_token(),
            ],
        ),
        (
            Method::GET,
            "/tenancy/v1/subscriptions".into(),
            [
                ok(&format!(
                    "{PROVIDER_SUBSCRIPTION} {OWNED_SUBSCRIPTION} {OTHER_SUBSCRIPTION}"
                )),
                role(),
                ok(OWNED_SUBSCRIPTION),
                ok(OWNED_SUBSCRIPTION),
                ok(OTHER_SUBSCRIPTION),
                no_token(),
            ],
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
            let got = (status.as_u16(), summary(&response));
            if got != expected[column] {
                failures.push(format!(
                    "{method} {path} as {name}: expected {:?}, got {got:?}: {response}",
                    expected[column]
                ));
            }
            if !status.is_success() && response.get("value").is_some() {
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
