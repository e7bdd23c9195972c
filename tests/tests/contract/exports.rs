//! Billing exports (Billing/ExportCharges): the exported costs add up exactly to the statement
//! totals (usage summed to days, tiers crossed, adjustments); bad input names its field; a tenant
//! exports only its own.

use chrono::{DateTime, TimeZone, Utc};
use tally_contract_tests::records::{SUB_A, SUB_B, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Identity, Topology, on_both_backends, sign};
use tally_proto::billing::v1 as pb;
use tally_proto::convert::timestamp;
use tally_proto::registration::v1 as reg;
use tally_proto::status::fields;
use tokio_stream::StreamExt as _;

on_both_backends!(exported_costs_add_up_to_the_statements,);

const T1: &str = "11111111-1111-4111-8111-111111111111";
const T2: &str = "22222222-2222-4222-8222-222222222222";

/// An exact decimal as a count of 10^-20, parsed without the service's code.
fn exact(text: &str) -> i128 {
    let (negative, body) = text
        .strip_prefix('-')
        .map_or((false, text), |rest| (true, rest));
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let value: i128 = format!("{whole}{fraction:0<20}")
        .parse()
        .expect("a decimal");
    if negative { -value } else { value }
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn request(period: &str, format: pb::ExportFormat, tenant: &str) -> pb::ExportChargesRequest {
    pb::ExportChargesRequest {
        billing_period: period.into(),
        format: format as i32,
        tenant_id: tenant.into(),
    }
}

/// The whole export as bytes, and the last chunk's (rows_so_far, rows_total).
async fn export(
    mut billing: pb::billing_client::BillingClient<tally_proto::bearer::AuthorizedChannel>,
    request: pb::ExportChargesRequest,
) -> Result<(Vec<u8>, (u64, u64)), tonic::Status> {
    let mut stream = billing.export_charges(request).await?.into_inner();
    let (mut bytes, mut rows) = (Vec::new(), (0, 0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes.extend_from_slice(&chunk.data);
        rows = (chunk.rows_so_far, chunk.rows_total);
    }
    Ok((bytes, rows))
}

async fn exported_costs_add_up_to_the_statements(backend: Backend) {
    // Apart: the gateway reaches billing, and billing reaches usage and tenancy, over gRPC.
    let cluster = Cluster::start(backend, Topology::Remote).await;
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
    for (subscription, tenant) in [(SUB_A, T1), (SUB_B, T2)] {
        tenancy
            .clone()
            .create_subscription(reg::CreateSubscriptionRequest {
                subscription: Some(reg::Subscription {
                    subscription_id: subscription.into(),
                    owner_tenant_id: tenant.into(),
                    display_name: "billed".into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create subscription");
    }
    let billing = cluster.operator().billing();
    let (vm, blob) = (meters::BASE_VM_SIZE_HOURS, meters::BLOCK_BLOB_CAPACITY);
    billing
        .clone()
        .create_price_sheet(pb::CreatePriceSheetRequest {
            price_sheet: Some(pb::PriceSheet {
                name: "default".into(),
                currency: "USD".into(),
                effective_from: Some(timestamp(utc(2026, 11, 1, 0))),
                prices: vec![
                    pb::MeterPrice {
                        meter_id: vm.into(),
                        unit_price: "0.3333333333".into(),
                        tiers: vec![],
                    },
                    pb::MeterPrice {
                        meter_id: blob.into(),
                        unit_price: String::new(),
                        tiers: vec![
                            pb::PriceTier {
                                from_quantity: "0".into(),
                                unit_price: "1".into(),
                            },
                            pb::PriceTier {
                                from_quantity: "10".into(),
                                unit_price: "0.1".into(),
                            },
                        ],
                    },
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("sheet");
    let (h8, h9) = (utc(2026, 11, 20, 8), utc(2026, 11, 20, 9));
    cluster
        .ingestion()
        .post_usage(batch(vec![
            record("a-vm-8", SUB_A, vm, "vm1", "3.1234567891", h8),
            record("a-vm-9", SUB_A, vm, "vm1", "2", h9),
            record("a-blob-8", SUB_A, blob, "disk", "8", h8),
            record("a-blob-9", SUB_A, blob, "disk", "5", h9),
            // A second disk in the same hour: statements rate the hour's sum, exports each
            // disk (in resource URI order) across the tier boundary; the costs must agree.
            record("a-blob2-9", SUB_A, blob, "disk2", "4", h9),
            record("b-vm", SUB_B, vm, "vm2", "1.25", h9),
        ]))
        .await
        .expect("post");
    billing
        .clone()
        .create_adjustment(pb::CreateAdjustmentRequest {
            adjustment: Some(pb::Adjustment {
                tenant_id: T1.into(),
                billing_period: "2026-11".into(),
                amount: "-1.235".into(),
                reason: "goodwill, \"credit\"".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("adjustment");
    cluster.settle_at(utc(2026, 12, 1, 2)).await;

    let mut statement_total = 0;
    for tenant in [T1, T2] {
        let statement = billing
            .clone()
            .get_statement(pb::GetStatementRequest {
                tenant_id: tenant.into(),
                billing_period: "2026-11".into(),
            })
            .await
            .expect("statement")
            .into_inner();
        assert!(statement.r#final);
        statement_total += exact(&statement.total);
    }

    let (bytes, (rows_so_far, rows_total)) = export(
        billing.clone(),
        request("2026-11", pb::ExportFormat::Jsonl, ""),
    )
    .await
    .expect("export");
    let rows: Vec<serde_json::Value> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Daily grain: vm1, disk (both hours summed), disk2 and vm2, plus the adjustment.
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert_eq!((rows_so_far, rows_total), (5, 5));
    let exported: i128 = rows
        .iter()
        .map(|row| exact(row["BilledCost"].as_str().unwrap()))
        .sum();
    assert_eq!(exported, statement_total);
    let vm1 = rows
        .iter()
        .find(|row| row["ResourceId"].as_str().unwrap_or("").contains("vm1"))
        .expect("vm1's day");
    assert_eq!(vm1["ConsumedQuantity"], "5.1234567891");
    assert_eq!(vm1["ChargePeriodStart"], "2026-11-20T00:00:00Z");
    let day_of = |resource: &str| {
        rows.iter()
            .find(|row| row["ResourceId"].as_str().unwrap_or("").ends_with(resource))
            .unwrap_or_else(|| panic!("{resource}'s day"))
    };
    let (disk, disk2) = (day_of("/disk"), day_of("/disk2"));
    assert!(disk["ListUnitPrice"].is_null(), "two tiers rated that day");
    // 8 at 1, then at 09:00 disk 2 at 1 and 3 at 0.1, disk2 4 at 0.1.
    assert_eq!(exact(disk["BilledCost"].as_str().unwrap()), exact("10.3"));
    assert_eq!(exact(disk2["BilledCost"].as_str().unwrap()), exact("0.4"));

    // Every format streams; FOCUS has its published header.
    for format in [
        pb::ExportFormat::Csv,
        pb::ExportFormat::Parquet,
        pb::ExportFormat::Focus,
    ] {
        let (bytes, rows) = export(billing.clone(), request("2026-11", format, ""))
            .await
            .expect("export");
        assert_eq!(rows, (5, 5));
        if format == pb::ExportFormat::Parquet {
            assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
        }
        if format == pb::ExportFormat::Focus {
            assert!(bytes.starts_with(b"AvailabilityZone,BilledCost,BillingAccountId,"));
        }
    }

    // Bad input names its field.
    for (bad, field) in [
        (
            request("2026-11", pb::ExportFormat::Unspecified, ""),
            "format",
        ),
        (
            request("2026-13", pb::ExportFormat::Csv, ""),
            "billing_period",
        ),
        (
            request("2027-03", pb::ExportFormat::Csv, ""),
            "billing_period",
        ),
    ] {
        let refused = export(billing.clone(), bad).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(fields(&refused), [field]);
    }

    // REST streams the same file, with a file name.
    let operator = sign(&Identity::operator().claims(), None);
    let response = reqwest::Client::new()
        .get(format!(
            "{}/billing/v1/periods/2026-11/charges?format=focus",
            cluster.base_url()
        ))
        .header("authorization", format!("Bearer {operator}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"tally-focus-2026-11.csv\""
    );
    let body = response.bytes().await.unwrap();
    assert!(body.starts_with(b"AvailabilityZone,BilledCost,"));

    // A tenant exports its own charges only.
    let tenant = cluster.clients_for(&Identity::tenant(T1)).billing();
    let (own, _) = export(
        tenant.clone(),
        request("2026-11", pb::ExportFormat::Jsonl, T1),
    )
    .await
    .expect("own");
    let own = String::from_utf8(own).unwrap();
    assert_eq!(
        own.lines().count(),
        4,
        "vm1, disk, disk2 and the adjustment"
    );
    assert!(!own.contains(T2));
    let denied = export(tenant, request("2026-11", pb::ExportFormat::Jsonl, T2))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    cluster.stop().await;
}
