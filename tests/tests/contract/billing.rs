//! Chargeback (tally.billing.v1): statements compared with values computed here, independently
//! (exact fixed point at 10^-20 in an i128): a mid-period price change, a tenant's own sheet
//! over the default, tiers crossed by a row, late usage billed in the month it was reported,
//! usage with no owner, a meter with no price, adjustments; a closed period that never changes
//! and refuses changes; amount_due half to even (USD 2 digits, JPY 0); tenants see only their own.

use chrono::{DateTime, Duration, TimeZone, Utc};
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Identity, Topology, on_both_backends};
use tally_proto::billing::v1 as pb;
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::status::{fields, reason};

on_both_backends!(
    statements_rate_exactly_and_close_for_good,
    amount_due_rounds_half_to_even_to_the_minor_unit,
);

const T1: &str = "11111111-1111-4111-8111-111111111111";
const T2: &str = "22222222-2222-4222-8222-222222222222";
/// A subscription nobody registered: its usage is billed under the empty tenant.
const SUB_C: &str = "33333333-3333-4333-8333-333333333333";

/// An exact decimal as a count of 10^-20, parsed without the service's code.
fn exact(text: &str) -> i128 {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    assert!(fraction.len() <= 20, "{text}");
    let value: i128 = format!("{whole}{fraction:0<20}")
        .parse()
        .expect("a decimal");
    if negative { -value } else { value }
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn flat(meter: &str, price: &str) -> pb::MeterPrice {
    pb::MeterPrice {
        meter_id: meter.into(),
        unit_price: price.into(),
        tiers: vec![],
    }
}

fn tiered(meter: &str, tiers: &[(&str, &str)]) -> pb::MeterPrice {
    pb::MeterPrice {
        meter_id: meter.into(),
        unit_price: String::new(),
        tiers: tiers
            .iter()
            .map(|(from, price)| pb::PriceTier {
                from_quantity: (*from).into(),
                unit_price: (*price).into(),
            })
            .collect(),
    }
}

fn sheet(
    name: &str,
    currency: &str,
    tenant: &str,
    from: DateTime<Utc>,
    prices: Vec<pb::MeterPrice>,
) -> pb::CreatePriceSheetRequest {
    pb::CreatePriceSheetRequest {
        price_sheet: Some(pb::PriceSheet {
            name: name.into(),
            currency: currency.into(),
            tenant_id: tenant.into(),
            effective_from: Some(timestamp(from)),
            prices,
            ..Default::default()
        }),
    }
}

async fn owners(cluster: &Cluster, pairs: &[(&str, &str)]) {
    let tenancy = cluster.operator().tenancy();
    for tenant in [T1, T2] {
        tenancy
            .clone()
            .create_tenant(reg::CreateTenantRequest {
                tenant: Some(reg::Tenant {
                    tenant_id: tenant.into(),
                    display_name: tenant.into(),
                }),
            })
            .await
            .expect("create tenant");
    }
    for (subscription, tenant) in pairs {
        tenancy
            .clone()
            .create_subscription(reg::CreateSubscriptionRequest {
                subscription: Some(reg::Subscription {
                    subscription_id: (*subscription).into(),
                    owner_tenant_id: (*tenant).into(),
                    display_name: "billed".into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create subscription");
    }
}

async fn statement(cluster: &Cluster, tenant: &str, period: &str) -> pb::Statement {
    cluster
        .operator()
        .billing()
        .get_statement(pb::GetStatementRequest {
            tenant_id: tenant.into(),
            billing_period: period.into(),
        })
        .await
        .expect("GetStatement")
        .into_inner()
}

/// (kind, subscription, meter, quantity, cost) of each line, exact values as 10^-20 counts.
fn lines(statement: &pb::Statement) -> Vec<(String, String, String, i128, i128)> {
    let mut lines: Vec<_> = statement
        .lines
        .iter()
        .map(|l| {
            (
                l.kind.clone(),
                l.subscription_id.clone(),
                l.meter_id.clone(),
                if l.quantity.is_empty() {
                    0
                } else {
                    exact(&l.quantity)
                },
                exact(&l.cost),
            )
        })
        .collect();
    lines.sort();
    lines
}

fn usage(
    sub: &str,
    meter: &str,
    quantity: &str,
    cost: &str,
) -> (String, String, String, i128, i128) {
    (
        "Usage".into(),
        sub.into(),
        meter.into(),
        exact(quantity),
        exact(cost),
    )
}

async fn statements_rate_exactly_and_close_for_good(backend: Backend) {
    // Apart: the gateway reaches billing, and billing reaches usage and tenancy, over gRPC.
    let cluster = Cluster::start(backend, Topology::Remote).await;
    owners(&cluster, &[(SUB_A, T1), (SUB_B, T2)]).await;
    let billing = cluster.operator().billing();
    let vm = meters::BASE_VM_SIZE_HOURS;
    let blob = meters::BLOCK_BLOB_CAPACITY;
    let ip = meters::STATIC_IP_ADDRESS_USAGE;

    // Validation names every bad field.
    let refused = billing
        .clone()
        .create_price_sheet(sheet(
            "bad",
            "USD",
            "",
            utc(2026, 11, 1, 0) + Duration::minutes(30),
            vec![
                flat(vm, "-1"),
                flat(ip, "0.00000000001"),
                tiered(blob, &[("1", "1"), ("0.5", "2")]),
            ],
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let mut named = fields(&refused);
    named.sort();
    assert_eq!(
        named,
        [
            "price_sheet.effective_from",
            "price_sheet.prices[0].unit_price",
            "price_sheet.prices[1].unit_price",
            "price_sheet.prices[2].tiers[0].from_quantity",
            "price_sheet.prices[2].tiers[1].from_quantity",
        ]
    );
    let unknown = billing
        .clone()
        .create_price_sheet(sheet(
            "x",
            "USD",
            "",
            utc(2026, 11, 1, 0),
            vec![flat("no-such-meter", "1")],
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&unknown).as_deref(), Some("UnknownMeter"));
    assert_eq!(fields(&unknown), ["price_sheet.prices[0].meter_id"]);

    // The default sheet, a mid-period change, and T2's own sheet. The IP meter has no price.
    let blob_tiers = [("0", "1"), ("10", "0.1")];
    for request in [
        sheet(
            "default v1",
            "USD",
            "",
            utc(2026, 11, 1, 0),
            vec![flat(vm, "0.5"), tiered(blob, &blob_tiers)],
        ),
        sheet(
            "default v2",
            "USD",
            "",
            utc(2026, 11, 20, 12),
            vec![flat(vm, "0.75"), tiered(blob, &blob_tiers)],
        ),
        sheet(
            "T2's own",
            "USD",
            T2,
            utc(2026, 11, 1, 0),
            vec![flat(vm, "2")],
        ),
    ] {
        billing
            .clone()
            .create_price_sheet(request)
            .await
            .expect("a valid sheet");
    }
    let other_currency = billing
        .clone()
        .create_price_sheet(sheet(
            "eur",
            "EUR",
            "",
            utc(2026, 11, 2, 0),
            vec![flat(vm, "1")],
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&other_currency), ["price_sheet.currency"]);

    // Reported on Nov 20 10:30 (the cluster's start): usage hours 08:00 and 09:00.
    let h8 = utc(2026, 11, 20, 8);
    let h9 = utc(2026, 11, 20, 9);
    cluster
        .ingestion()
        .post_usage(batch(vec![
            record("a-vm", SUB_A, vm, "vm1", "3", h9),
            record("a-blob-8", SUB_A, blob, "disk", "8", h8),
            record("a-blob-9", SUB_A, blob, "disk", "5", h9),
            record("a-ip", SUB_A, ip, "ip", "4", h9),
            record("b-vm", SUB_B, vm, "vm2", "1.25", h9),
            record("c-vm", SUB_C, vm, "vm3", "2", h9),
        ]))
        .await
        .expect("post");
    // After the price change: 13:00 at 0.75.
    cluster.settle_at(utc(2026, 11, 20, 14)).await;
    cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "a-vm-13",
            SUB_A,
            vm,
            "vm1",
            "2",
            utc(2026, 11, 20, 13),
        )]))
        .await
        .expect("post");
    billing
        .clone()
        .create_adjustment(pb::CreateAdjustmentRequest {
            adjustment: Some(pb::Adjustment {
                tenant_id: T1.into(),
                billing_period: "2026-11".into(),
                amount: "-1.235".into(),
                reason: "goodwill credit".into(),
                created_by: "forged".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("adjustment");
    let listed = billing
        .clone()
        .list_adjustments(pb::ListAdjustmentsRequest {
            tenant_id: T1.into(),
            billing_period: "2026-11".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.adjustments.len(), 1);
    assert_eq!(
        listed.adjustments[0].created_by, "contract-test",
        "from the token, not the request"
    );

    cluster.settle_at(utc(2026, 11, 20, 15)).await;
    let open = statement(&cluster, T1, "2026-11").await;
    assert!(!open.r#final);

    // Close November, then report late usage of Nov 30 23:00 on Dec 1.
    cluster.settle_at(utc(2026, 12, 1, 1)).await;
    cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "a-late",
            SUB_A,
            vm,
            "vm1",
            "1",
            utc(2026, 11, 30, 23),
        )]))
        .await
        .expect("post late");
    cluster.settle_at(utc(2026, 12, 1, 2)).await;

    let t1 = statement(&cluster, T1, "2026-11").await;
    assert!(t1.r#final);
    assert_eq!(t1.currency, "USD");
    // vm: 3 x 0.5 (old price) + 2 x 0.75 (new); blob: 8 + 2 at tier 1, 3 at 0.1; ip: no price.
    let mut expected = vec![
        usage(SUB_A, vm, "5", "3"),
        usage(SUB_A, blob, "13", "10.3"),
        usage(SUB_A, ip, "4", "0"),
        (
            "Adjustment".into(),
            String::new(),
            String::new(),
            0,
            exact("-1.235"),
        ),
    ];
    expected.sort();
    assert_eq!(lines(&t1), expected);
    let total = exact("1.5") + exact("1.5") + exact("10.3") - exact("1.235");
    assert_eq!(exact(&t1.total), total);
    assert_eq!(total, exact("12.065"));
    assert_eq!(t1.amount_due, "12.06", "half to even: 12.065 -> 12.06");
    let adjustment = t1.lines.iter().find(|l| l.kind == "Adjustment").unwrap();
    assert_eq!(adjustment.description, "goodwill credit");

    let t2 = statement(&cluster, T2, "2026-11").await;
    assert_eq!(
        lines(&t2),
        [usage(SUB_B, vm, "1.25", "2.5")],
        "T2's own sheet wins"
    );
    let nobody = statement(&cluster, "", "2026-11").await;
    assert_eq!(
        lines(&nobody),
        [usage(SUB_C, vm, "2", "1")],
        "no owner: the default sheet"
    );

    let all = billing
        .clone()
        .list_statements(pb::ListStatementsRequest {
            billing_period: "2026-11".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let tenants: Vec<_> = all.statements.iter().map(|s| s.tenant_id.clone()).collect();
    assert_eq!(tenants, ["", T1]);
    let rest = billing
        .clone()
        .list_statements(pb::ListStatementsRequest {
            billing_period: "2026-11".into(),
            page_size: 2,
            page_token: all.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.statements.len(), 1);
    assert_eq!(rest.statements[0], t2);
    assert!(rest.next_page_token.is_empty());

    // The late row is billed in December at the price in force at its usage hour (0.75).
    let december = statement(&cluster, T1, "2026-12").await;
    assert!(!december.r#final);
    assert_eq!(lines(&december), [usage(SUB_A, vm, "1", "0.75")]);

    // November is closed: changes into it are refused, and it never changes.
    let late_sheet = billing
        .clone()
        .create_price_sheet(sheet(
            "retro",
            "USD",
            "",
            utc(2026, 11, 15, 0),
            vec![flat(vm, "9")],
        ))
        .await
        .unwrap_err();
    assert_eq!(late_sheet.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&late_sheet).as_deref(), Some("PeriodClosed"));
    let late_adjustment = billing
        .clone()
        .create_adjustment(pb::CreateAdjustmentRequest {
            adjustment: Some(pb::Adjustment {
                tenant_id: T1.into(),
                billing_period: "2026-11".into(),
                amount: "5".into(),
                reason: "too late".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&late_adjustment).as_deref(), Some("PeriodClosed"));
    billing
        .clone()
        .create_price_sheet(sheet(
            "december",
            "USD",
            "",
            utc(2026, 12, 1, 0),
            vec![flat(vm, "9")],
        ))
        .await
        .expect("a sheet into the open period");
    cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "a-later",
            SUB_A,
            vm,
            "vm1",
            "7",
            utc(2026, 11, 30, 22),
        )]))
        .await
        .expect("post");
    cluster.settle_at(utc(2026, 12, 1, 3)).await;
    assert_eq!(
        statement(&cluster, T1, "2026-11").await,
        t1,
        "same lines, same etag"
    );

    // Tenants read their own statement only.
    let tenant = cluster.clients_for(&Identity::tenant(T1));
    let own = tenant
        .billing()
        .get_statement(pb::GetStatementRequest {
            tenant_id: T1.into(),
            billing_period: "2026-11".into(),
        })
        .await
        .expect("own statement")
        .into_inner();
    assert_eq!(own, t1);
    for other in [T2, ""] {
        let refused = tenant
            .billing()
            .get_statement(pb::GetStatementRequest {
                tenant_id: other.into(),
                billing_period: "2026-11".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(reason(&refused).as_deref(), Some("StatementNotVisible"));
    }
    // The same over REST: the tenant's own statement, exactly; another's is a 403.
    let tenant_token = tally_contract_tests::sign(&Identity::tenant(T1).claims(), None);
    let (status, body) = tally_contract_tests::rest::get(
        &cluster.base_url(),
        &format!("/billing/v1/periods/2026-11/statements/{T1}"),
        Some(&tenant_token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["amountDue"], "12.06");
    assert_eq!(body["etag"], t1.etag.as_str());
    assert_eq!(body["final"], true);
    assert_eq!(body["lines"].as_array().map(Vec::len), Some(t1.lines.len()));
    let (status, body) = tally_contract_tests::rest::get(
        &cluster.base_url(),
        &format!("/billing/v1/periods/2026-11/statements/{T2}"),
        Some(&tenant_token),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        tally_contract_tests::rest::code(&body),
        "StatementNotVisible"
    );
    let (status, body) = tally_contract_tests::rest::get(
        &cluster.base_url(),
        "/billing/v1/periods/2026-11/statements",
        Some(&tally_contract_tests::sign(
            &Identity::operator().claims(),
            None,
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statements"].as_array().map(Vec::len), Some(3));

    let refused = tenant
        .billing()
        .list_statements(pb::ListStatementsRequest {
            billing_period: "2026-11".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    cluster.stop().await;
}

async fn amount_due_rounds_half_to_even_to_the_minor_unit(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    owners(&cluster, &[(SUB_A, T1), (SUB_B, T2)]).await;
    let vm = meters::BASE_VM_SIZE_HOURS;
    cluster
        .operator()
        .billing()
        .create_price_sheet(sheet(
            "yen",
            "JPY",
            "",
            utc(2026, 11, 1, 0),
            vec![flat(vm, "0.5")],
        ))
        .await
        .expect("JPY sheet");
    let h9 = utc(2026, 11, 20, 9);
    cluster
        .ingestion()
        .post_usage(batch(vec![
            record("a", SUB_A, vm, "vm1", "5", h9),
            record("b", SUB_B, vm, "vm2", "7", h9),
        ]))
        .await
        .expect("post");
    cluster.settle_at(utc(2026, 11, 20, 11)).await;
    let t1 = statement(&cluster, T1, "2026-11").await;
    assert_eq!((t1.total.as_str(), t1.amount_due.as_str()), ("2.5", "2"));
    let t2 = statement(&cluster, T2, "2026-11").await;
    assert_eq!((t2.total.as_str(), t2.amount_due.as_str()), ("3.5", "4"));
    assert_eq!(t1.currency, "JPY");
    cluster.stop().await;
}
