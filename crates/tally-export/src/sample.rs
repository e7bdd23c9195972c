//! A generated billing period for tests, examples and benchmarks: deterministic usage of a few
//! tenants and subscriptions, rated hour by hour and summed to days exactly, plus adjustments.
//! Tags hold commas, quotes and newlines on purpose.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::decimal::{ExactAmount, ExactQuantity};
use crate::row::{ChargeKind, ChargeRow, ExportHeader};

/// The tag value that CSV must quote: a comma, a quote and a newline.
pub const AWKWARD_TAG: &str = "cost center, \"R&D\"\nsecond line";

const METERS: [(&str, &str, &str, &str); 3] = [
    (
        "fab6eb84-500b-4a09-a8ca-7358f8bbaea5",
        "Base VM Size Hours",
        "Microsoft.Compute",
        "Hours",
    ),
    (
        "09f8879e-87e9-4305-a572-4b7bec9b8a2e",
        "Blob Storage",
        "Microsoft.Storage",
        "GB",
    ),
    (
        "9764f92c-e44a-498e-8dc1-aad66587a810",
        "Ingress",
        "Microsoft.Network",
        "GB",
    ),
];

/// A period of `days` days from 2026-11-01 (the header's period is the whole of November).
pub fn header() -> ExportHeader {
    ExportHeader {
        billing_period: "2026-11".to_string(),
        period_start: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        period_end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        currency: "USD".to_string(),
        provider_name: "Tally".to_string(),
    }
}

/// A generated period and the totals a statement would show for it.
pub struct SamplePeriod {
    pub tenants: usize,
    pub subscriptions_per_tenant: usize,
    pub days: u32,
}

fn tenant_id(tenant: usize) -> String {
    format!("{tenant:08x}-0000-4000-8000-000000000000")
}

impl SamplePeriod {
    /// Rows in order: usage rows day by day, then one adjustment per tenant.
    pub fn rows(&self) -> impl Iterator<Item = ChargeRow> + '_ {
        let header = header();
        let usage = (0..self.days).flat_map(move |day| {
            (0..self.tenants).flat_map(move |tenant| {
                (0..self.subscriptions_per_tenant).flat_map(move |subscription| {
                    (0..METERS.len()).map(move |meter| usage_row(tenant, subscription, meter, day))
                })
            })
        });
        let adjustments = (0..self.tenants).map(move |tenant| adjustment_row(&header, tenant));
        usage.chain(adjustments)
    }

    /// Every tenant's statement total, summed from the hourly costs (not from the rows).
    pub fn statement_totals(&self) -> BTreeMap<String, ExactAmount> {
        let mut totals = BTreeMap::new();
        for tenant in 0..self.tenants {
            let mut total = adjustment_amount(tenant);
            for day in 0..self.days {
                for subscription in 0..self.subscriptions_per_tenant {
                    for meter in 0..METERS.len() {
                        for hour in 0..24 {
                            let (quantity, price) = hourly(tenant, subscription, meter, day, hour);
                            total = total
                                .checked_add(cost(quantity, price))
                                .expect("sample totals fit");
                        }
                    }
                }
            }
            totals.insert(tenant_id(tenant), total);
        }
        totals
    }

    pub fn row_count(&self) -> usize {
        self.days as usize * self.tenants * self.subscriptions_per_tenant * METERS.len()
            + self.tenants
    }
}

/// An hour's quantity and unit price: varied, with up to 10 fractional digits each.
fn hourly(
    tenant: usize,
    subscription: usize,
    meter: usize,
    day: u32,
    hour: u32,
) -> (ExactQuantity, ExactAmount) {
    let seed = (tenant as i128 * 7919
        + subscription as i128 * 104_729
        + meter as i128 * 31
        + day as i128 * 24
        + hour as i128)
        .wrapping_mul(2_654_435_761)
        % 1_000_000_007;
    let quantity = ExactQuantity::from_units(seed * 12_345 % 50_000_000_000_000 + 1);
    // Prices change at noon of day 15 (a new price sheet): that day has two prices, so no unit price.
    let price_units = [3_141_592_653_i128, 27_182_818_284, 1_414_213_562][meter]
        + if (day, hour) >= (15, 12) {
            1_000_000_000
        } else {
            0
        };
    (
        quantity,
        ExactAmount::from_units(price_units * 10_000_000_000),
    )
}

/// quantity (scale 10) x price (scale 10 in a scale-20 value): an exact scale-20 cost.
fn cost(quantity: ExactQuantity, price: ExactAmount) -> ExactAmount {
    ExactAmount::from_units(quantity.units() * price.units() / 10_000_000_000)
}

fn usage_row(tenant: usize, subscription: usize, meter: usize, day: u32) -> ChargeRow {
    let (meter_id, meter_name, provider, unit) = METERS[meter];
    let start: DateTime<Utc> = header().period_start + Duration::days(day.into());
    let mut quantity = ExactQuantity::ZERO;
    let mut total = ExactAmount::ZERO;
    let mut prices = Vec::new();
    for hour in 0..24 {
        let (q, price) = hourly(tenant, subscription, meter, day, hour);
        quantity = quantity.checked_add(q).expect("sample quantities fit");
        total = total.checked_add(cost(q, price)).expect("sample costs fit");
        prices.push(price);
    }
    prices.dedup();
    let subscription_id = format!("{subscription:08x}-{tenant:04x}-4000-8000-000000000001");
    let mut tags = BTreeMap::from([(
        "env".to_string(),
        if day.is_multiple_of(2) {
            "prod"
        } else {
            "test"
        }
        .to_string(),
    )]);
    if subscription == 0 && meter == 0 {
        tags.insert("owner".to_string(), AWKWARD_TAG.to_string());
    }
    ChargeRow {
        kind: ChargeKind::Usage,
        tenant_id: tenant_id(tenant),
        resource_id: format!(
            "/subscriptions/{subscription_id}/resourceGroups/rg/providers/{provider}/things/vm{meter}"
        ),
        subscription_id,
        charge_period_start: start,
        charge_period_end: start + Duration::days(1),
        meter_id: meter_id.to_string(),
        description: meter_name.to_string(),
        service_name: provider.to_string(),
        unit: unit.to_string(),
        region: "local".to_string(),
        tags,
        additional_info: BTreeMap::from([("ImageType".to_string(), "Windows".to_string())]),
        quantity: Some(quantity),
        unit_price: (prices.len() == 1).then(|| prices[0]),
        price_sheet_id: Some("default-sheet".to_string()),
        cost: total,
        adjustment_id: None,
    }
}

/// Tenant 0 gets a credit, the others a charge.
fn adjustment_amount(tenant: usize) -> ExactAmount {
    if tenant == 0 {
        "-12.5".parse().expect("a decimal")
    } else {
        ExactAmount::from_units(tenant as i128 * 100_000_000_000_000_000_000 + 1)
    }
}

fn adjustment_row(header: &ExportHeader, tenant: usize) -> ChargeRow {
    ChargeRow {
        kind: ChargeKind::Adjustment,
        tenant_id: tenant_id(tenant),
        subscription_id: String::new(),
        charge_period_start: header.period_start,
        charge_period_end: header.period_end,
        meter_id: String::new(),
        description: format!("Goodwill, \"outage\"\nof tenant {tenant}"),
        service_name: String::new(),
        unit: String::new(),
        resource_id: String::new(),
        region: String::new(),
        tags: BTreeMap::new(),
        additional_info: BTreeMap::new(),
        quantity: None,
        unit_price: None,
        price_sheet_id: None,
        cost: adjustment_amount(tenant),
        adjustment_id: Some(format!("adj-{tenant}")),
    }
}
