//! The demo's chargeback: a default price sheet and Contoso's own sheet with graduated tiers,
//! then Contoso's statement. On a manual clock (`tally demo --manual-clock ...`) the demo closes
//! the month by moving the clock past its end and prints the final statement, stored once; on the
//! real clock it prints the open statement, current as of `complete_through`.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use tally_core::meter::well_known as meters;
use tally_proto::bearer::AuthorizedChannel;
use tally_proto::billing::v1 as pb;
use tally_proto::billing::v1::billing_client::BillingClient;
use tally_proto::clock::v1::clock_client::ClockClient;
use tally_proto::clock::v1::{AdvanceClockRequest, GetTimeRequest, advance_clock_request::Target};
use tally_proto::convert::{timestamp, utc};
use tally_proto::usage::v1::GetPipelineStatusRequest;
use tally_proto::usage::v1::usage_admin_client::UsageAdminClient;

use super::installation::TENANTS;

fn month_start(time: DateTime<Utc>) -> DateTime<Utc> {
    let day = time.date_naive();
    day.checked_sub_days(chrono::Days::new(u64::from(day.day0())))
        .unwrap_or(day)
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

fn next_month(time: DateTime<Utc>) -> DateTime<Utc> {
    month_start(month_start(time) + chrono::Duration::days(32))
}

fn price(meter: &str, unit_price: &str) -> pb::MeterPrice {
    pb::MeterPrice {
        meter_id: meter.into(),
        unit_price: unit_price.into(),
        tiers: Vec::new(),
    }
}

/// Creates the sheets (ignoring a rerun's refusals), closes the month on a manual clock, and
/// prints Contoso's statement.
pub(crate) async fn show(operator: &AuthorizedChannel) -> anyhow::Result<()> {
    let mut billing = BillingClient::new(operator.clone());
    let mut clock = ClockClient::new(operator.clone());
    let time = clock.get_time(GetTimeRequest {}).await?.into_inner();
    let now = utc(time.now.as_ref()).unwrap_or_else(Utc::now);
    let month = month_start(now);
    let contoso = TENANTS[0].1;
    let list_prices = vec![
        price(meters::BASE_VM_SIZE_HOURS, "0.042"),
        price(meters::WINDOWS_VM_SIZE_HOURS, "0.046"),
        price(meters::VM_SIZE_HOURS, "0.001"),
        price(meters::ACTUAL_STANDARD_DISK_SIZE, "0.0000547945"),
        price(meters::BLOCK_BLOB_CAPACITY, "0.0000328767"),
        price(meters::BLOB_TRANSACTIONS, "0.0000004"),
        price(meters::STATIC_IP_ADDRESS_USAGE, "0.005"),
    ];
    // Contoso's own sheet replaces the default for Contoso: list prices, but graduated tiers
    // on base VM hours.
    let mut contoso_prices = list_prices.clone();
    contoso_prices[0] = pb::MeterPrice {
        meter_id: meters::BASE_VM_SIZE_HOURS.into(),
        unit_price: String::new(),
        tiers: vec![
            pb::PriceTier {
                from_quantity: "0".into(),
                unit_price: "0.042".into(),
            },
            pb::PriceTier {
                from_quantity: "20".into(),
                unit_price: "0.03".into(),
            },
        ],
    };
    let sheets = [
        pb::PriceSheet {
            name: "List prices".into(),
            currency: "USD".into(),
            effective_from: Some(timestamp(month)),
            prices: list_prices,
            ..Default::default()
        },
        pb::PriceSheet {
            name: "Contoso volume agreement".into(),
            currency: "USD".into(),
            tenant_id: contoso.into(),
            effective_from: Some(timestamp(month)),
            prices: contoso_prices,
            ..Default::default()
        },
    ];
    for sheet in sheets {
        let name = sheet.name.clone();
        if let Err(status) = billing
            .create_price_sheet(pb::CreatePriceSheetRequest {
                price_sheet: Some(sheet),
            })
            .await
        {
            println!("  price sheet {name:?} not created: {}", status.message());
        }
    }
    let period = format!("{:04}-{:02}", month.year(), month.month());
    if time.manual {
        // Close the month: move the clock past its end and wait until usage is complete.
        let end = next_month(month);
        let to = end + chrono::Duration::hours(1);
        clock
            .advance_clock(AdvanceClockRequest {
                target: Some(Target::To(timestamp(to))),
            })
            .await?;
        let mut admin = UsageAdminClient::new(operator.clone());
        for _ in 0..600 {
            let status = admin
                .get_pipeline_status(GetPipelineStatusRequest {})
                .await?
                .into_inner();
            if utc(status.complete_through.as_ref()).is_some_and(|t| t >= end) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let statement = billing
        .get_statement(pb::GetStatementRequest {
            tenant_id: contoso.into(),
            billing_period: period.clone(),
        })
        .await?
        .into_inner();
    println!();
    println!(
        "Chargeback: {}'s statement for {period} ({}; default sheet plus Contoso's own tiers on base VM hours: 0.042 up to 20 h, then 0.03)",
        TENANTS[0].0,
        if statement.r#final {
            "final: the month is closed, this statement never changes"
        } else {
            "open: current as of complete_through; run `tally demo --manual-clock ...` to see a month close"
        }
    );
    for line in &statement.lines {
        println!(
            "  {:<10} {:<36} {:<24} {:>14} {:>24}",
            line.kind, line.subscription_id, line.meter_name, line.quantity, line.cost
        );
    }
    println!(
        "  total {} {} -> amount due {} {}  (etag {})",
        statement.total,
        statement.currency,
        statement.amount_due,
        statement.currency,
        statement.etag
    );
    Ok(())
}
