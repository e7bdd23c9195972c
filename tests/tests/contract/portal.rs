//! The web portal's serving and Tally's own JSON routes that it (and any script) reads:
//! the portal's files need no token and open no other door; `/tally/v1/whoami`, `/clock/v1/time`,
//! `/usage/v1/pipeline`, `/tenancy/v1/tenants` and `/tenancy/v1/subscriptions` answer as the
//! README documents them. (Who may call which is in `rest.rs`'s route matrix; the page itself
//! is tested in a browser by `tests/portal/`.)

use reqwest::StatusCode;
use serde_json::{Value, json};
use tally_contract_tests::rest::{error, get};
use tally_contract_tests::world::{self, OTHER_SUBSCRIPTION, OWNED_SUBSCRIPTION, OWNER_TENANT};
use tally_contract_tests::{Backend, Cluster, Identity, Topology, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `path` as written (no client normalises it) without a token; the status line and body.
async fn raw_get(cluster: &Cluster, path: &str) -> (String, String) {
    let addr = cluster.base_url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[tokio::test]
async fn the_portal_is_served_without_a_token_and_opens_no_other_door() {
    let cluster = Cluster::start(Backend::Sqlite, Topology::InProcess).await;
    let base = cluster.base_url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let redirect = client.get(format!("{base}/portal")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/portal/");

    for (path, content_type, opening) in [
        ("/portal/", "text/html; charset=utf-8", "<!doctype html>"),
        (
            "/portal/app.js",
            "text/javascript; charset=utf-8",
            "// The portal page",
        ),
        (
            "/portal/portal.css",
            "text/css; charset=utf-8",
            "/* The portal's look",
        ),
        ("/portal/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "connect-src 'self'",
            "script-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        let body = response.text().await.unwrap();
        assert!(body.starts_with(opening), "{path}: {}", &body[..40]);
    }

    // Only the portal's own files: nothing else is reachable through its public prefix.
    for path in [
        "/portal/secrets.txt",
        "/portal/../tally/v1/whoami",
        "/portal/%2e%2e/tally/v1/whoami",
        "/portal/../subscriptions/x/providers/Microsoft.Commerce/UsageAggregates",
    ] {
        let (status, body) = raw_get(&cluster, path).await;
        assert!(status.ends_with("404 Not Found"), "{path}: {status}");
        assert!(
            body.starts_with("the portal has no file named"),
            "{path}: {body}"
        );
    }
    // The data it reads needs a token like everything else.
    for path in [
        "/tally/v1/whoami",
        "/clock/v1/time",
        "/usage/v1/pipeline",
        "/tenancy/v1/tenants",
        "/tenancy/v1/subscriptions",
        "/portals",
    ] {
        let (status, body) = get(&base, path, None).await;
        assert_eq!(
            (status, error(&body).0),
            (StatusCode::UNAUTHORIZED, "MissingCredentials"),
            "{path}"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn whoami_names_the_caller_as_its_token_does() {
    let cluster = Cluster::start(Backend::Sqlite, Topology::InProcess).await;
    world::populate(&cluster).await;
    let base = cluster.base_url();
    let expires = |identity: &Identity| {
        let claims = identity.claims();
        let time = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap();
        (
            sign(&claims, None),
            time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    };
    let unknown_tenant = "0d0d0d0d-9999-4999-8999-999999999999";
    let cases = [
        (
            Identity::operator(),
            ["Operator"].as_slice(),
            Value::Null,
            Value::Null,
            Value::Null,
        ),
        (
            Identity::tenant(OWNER_TENANT),
            [].as_slice(),
            json!(OWNER_TENANT),
            json!("Owner"),
            Value::Null,
        ),
        // A tenant Tally does not know (yet) is still named by its id.
        (
            Identity::tenant(unknown_tenant),
            [].as_slice(),
            json!(unknown_tenant),
            Value::Null,
            Value::Null,
        ),
        (
            Identity::delegated_provider(world::RESELLER_TENANT, world::PROVIDER_SUBSCRIPTION),
            ["DelegatedProvider"].as_slice(),
            json!(world::RESELLER_TENANT),
            json!("Reseller"),
            json!(world::PROVIDER_SUBSCRIPTION),
        ),
    ];
    for (identity, roles, tenant, name, provider) in cases {
        let (token, expires_time) = expires(&identity);
        let (status, body) = get(&base, "/tally/v1/whoami", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({
                "subject": "contract-test",
                "roles": roles,
                "tenantId": tenant,
                "tenantDisplayName": name,
                "providerSubscriptionId": provider,
                "expiresTime": expires_time,
            }),
            "{identity:?}"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn the_pipeline_says_how_far_behind_the_clock_it_is() {
    let (cluster, complete, now) = Cluster::start_with_unfolded_window(Backend::Sqlite).await;
    let operator = sign(&Identity::operator().claims(), None);
    let status = cluster.pipeline_status().await;
    let complete_through = tally_proto::convert::utc(status.complete_through.as_ref()).unwrap();
    assert!(complete_through >= complete && complete_through < now);
    let (http, body) = get(&cluster.base_url(), "/usage/v1/pipeline", Some(&operator)).await;
    assert_eq!(http, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "completeThrough": complete_through.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "recordsStored": status.records_stored,
            "recordsPendingFold": 1,
            "now": now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            "behindSeconds": (now - complete_through).num_seconds(),
        })
    );
    assert!(body["behindSeconds"].as_i64().unwrap() >= 3_600, "{body}");

    let (http, body) = get(&cluster.base_url(), "/clock/v1/time", Some(&operator)).await;
    assert_eq!(http, StatusCode::OK);
    assert_eq!(
        body,
        json!({"now": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "manual": true})
    );
    cluster.stop().await;
}

#[tokio::test]
async fn tenants_and_subscriptions_page_and_refuse_bad_parameters() {
    let cluster = Cluster::start(Backend::Sqlite, Topology::InProcess).await;
    world::populate(&cluster).await;
    let base = cluster.base_url();
    let operator = sign(&Identity::operator().claims(), None);

    // One subscription a page, following nextPageToken (the last page may be empty).
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!("/tenancy/v1/subscriptions?pageSize=1&pageToken={token}");
        let (status, body) = get(&base, &path, Some(&operator)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["subscriptions"].as_array().unwrap().clone();
        assert!(page.len() <= 1, "{body}");
        listed.extend(page);
        token = body["nextPageToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    let owned = listed
        .iter()
        .find(|s| s["subscriptionId"] == OWNED_SUBSCRIPTION)
        .unwrap();
    assert_eq!(
        *owned,
        json!({
            "subscriptionId": OWNED_SUBSCRIPTION,
            "displayName": format!("subscription of {OWNER_TENANT}"),
            "ownerTenantId": OWNER_TENANT,
            "delegatedProviderSubscriptionId": world::PROVIDER_SUBSCRIPTION,
            "state": "Enabled",
        })
    );
    assert_eq!(listed.len(), 3);

    // Filters, and deleted subscriptions only on request.
    cluster
        .operator()
        .tenancy()
        .delete_subscription(tally_proto::registration::v1::DeleteSubscriptionRequest {
            subscription_id: OTHER_SUBSCRIPTION.into(),
        })
        .await
        .unwrap();
    let ids = |body: &Value| -> Vec<String> {
        let mut ids: Vec<String> = body["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{} {}", s["subscriptionId"], s["state"]))
            .collect();
        ids.sort();
        ids
    };
    let other = format!("\"{OTHER_SUBSCRIPTION}\" \"Deleted\"");
    let path = format!(
        "/tenancy/v1/subscriptions?ownerTenantId={}",
        world::OTHER_TENANT
    );
    assert_eq!(
        ids(&get(&base, &path, Some(&operator)).await.1),
        Vec::<String>::new()
    );
    let (_, body) = get(
        &base,
        &format!("{path}&includeDeleted=TRUE"),
        Some(&operator),
    )
    .await;
    assert_eq!(ids(&body), [other]);

    let (status, body) = get(&base, "/tenancy/v1/tenants?pageSize=2", Some(&operator)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenants"].as_array().unwrap().len(), 2);
    assert!(!body["nextPageToken"].as_str().unwrap().is_empty());

    for (path, message) in [
        (
            "/tenancy/v1/subscriptions?includeDeleted=maybe",
            "includeDeleted \"maybe\" is not true or false",
        ),
        (
            "/tenancy/v1/tenants?pageSize=ten",
            "pageSize \"ten\" is not a whole number",
        ),
    ] {
        let (status, body) = get(&base, path, Some(&operator)).await;
        assert_eq!(
            (status, error(&body)),
            (StatusCode::BAD_REQUEST, ("InvalidProperty", message)),
            "{path}"
        );
    }
    // The service's own refusals name the parameter as the route spells it.
    let (status, body) = get(
        &base,
        "/tenancy/v1/subscriptions?pageToken=not-a-token",
        Some(&operator),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error(&body).1.starts_with("pageToken: "), "{body}");
    cluster.stop().await;
}
