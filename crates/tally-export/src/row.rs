//! One exported charge: a usage day of (subscription, meter, instance data), or an adjustment;
//! and what every row of one export shares (the period, the currency, who issues the bill).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::decimal::{ExactAmount, ExactQuantity};

/// What a row charges for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeKind {
    /// Metered usage of one usage day.
    Usage,
    /// An operator's adjustment: a charge (>= 0) or a credit (< 0).
    Adjustment,
}

/// One row of an export. Usage rows: one per (subscription, meter, instance data, usage day),
/// the cost the exact sum of the day's hourly costs. Adjustment rows: one per adjustment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRow {
    pub kind: ChargeKind,
    /// The owner tenant (FOCUS BillingAccountId); empty: a subscription with no known owner.
    pub tenant_id: String,
    /// The consuming subscription (SubAccountId); empty for a tenant-wide adjustment.
    pub subscription_id: String,
    /// Usage day (or, for adjustments, the billing period): [start, end).
    pub charge_period_start: DateTime<Utc>,
    pub charge_period_end: DateTime<Utc>,
    /// Meter id (SkuId); empty for adjustments.
    pub meter_id: String,
    /// Usage: the meter's name; adjustments: the reason (ChargeDescription).
    pub description: String,
    /// The meter's resource provider, such as `Microsoft.Compute` (ServiceName).
    pub service_name: String,
    /// The meter's unit (ConsumedUnit, PricingUnit).
    pub unit: String,
    pub resource_id: String,
    /// Location (RegionId).
    pub region: String,
    pub tags: BTreeMap<String, String>,
    /// The rest of the instance data, as the usage record carried it.
    pub additional_info: BTreeMap<String, String>,
    /// Exact sum of the day's quantity; `None` for adjustments.
    pub quantity: Option<ExactQuantity>,
    /// The unit price, when one price rated the whole day (no tier boundary or new sheet in it).
    pub unit_price: Option<ExactAmount>,
    /// The price sheet whose price that is (SkuPriceId is `sheet/meter`).
    pub price_sheet_id: Option<String>,
    /// Exact cost (usage: sum of hourly costs; adjustment: its amount).
    pub cost: ExactAmount,
    pub adjustment_id: Option<String>,
}

impl ChargeRow {
    /// FOCUS ChargeCategory: `Usage`, `Adjustment`, or `Credit` for a negative adjustment.
    pub fn charge_category(&self) -> &'static str {
        match self.kind {
            ChargeKind::Usage => "Usage",
            ChargeKind::Adjustment if self.cost.is_negative() => "Credit",
            ChargeKind::Adjustment => "Adjustment",
        }
    }

    /// `sheet/meter` when one sheet's price rated the whole row.
    pub fn sku_price_id(&self) -> Option<String> {
        match (&self.price_sheet_id, self.unit_price) {
            (Some(sheet), Some(_)) if !self.meter_id.is_empty() => {
                Some(format!("{sheet}/{}", self.meter_id))
            }
            _ => None,
        }
    }

    /// Tags as a JSON object (FOCUS Tags): `{}` when there are none.
    pub fn tags_json(&self) -> String {
        serde_json::to_string(&self.tags).unwrap_or_else(|_| "{}".to_string())
    }

    /// The additional instance data as a JSON object; `None` when empty.
    pub fn additional_info_json(&self) -> Option<String> {
        (!self.additional_info.is_empty())
            .then(|| serde_json::to_string(&self.additional_info).unwrap_or_default())
    }
}

/// What every row of one export shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHeader {
    /// `2026-11`.
    pub billing_period: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// ISO 4217 (BillingCurrency).
    pub currency: String,
    /// Who bills and provides the service (InvoiceIssuerName, ProviderName, PublisherName).
    pub provider_name: String,
}

/// ISO 8601 in UTC with a `Z`, to the second: `2026-11-01T00:00:00Z`.
pub fn iso_utc(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// FOCUS ServiceCategory of an Azure resource provider (`Other` when none fits).
pub fn service_category(service_name: &str) -> &'static str {
    match service_name.to_ascii_lowercase().as_str() {
        "microsoft.compute" | "microsoft.web" | "microsoft.containerservice" => "Compute",
        "microsoft.storage" => "Storage",
        "microsoft.network" => "Networking",
        "microsoft.sql" | "microsoft.dbformysql" | "microsoft.dbforpostgresql" => "Databases",
        "microsoft.keyvault" => "Security",
        "microsoft.eventhub" | "microsoft.servicebus" => "Integration",
        "microsoft.iotcentral" | "microsoft.devices" => "Internet of Things",
        _ => "Other",
    }
}

/// The export's formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
    Focus,
}

impl Format {
    /// The name used by REST's `format=` and `tally export --format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
            Format::Focus => "focus",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        [Format::Csv, Format::Jsonl, Format::Parquet, Format::Focus]
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(name))
    }

    /// The file name a download gets: `tally-charges-2026-11.csv`, `tally-focus-2026-11.csv`, ...
    pub fn file_name(self, billing_period: &str) -> String {
        match self {
            Format::Csv => format!("tally-charges-{billing_period}.csv"),
            Format::Jsonl => format!("tally-charges-{billing_period}.jsonl"),
            Format::Parquet => format!("tally-charges-{billing_period}.parquet"),
            Format::Focus => format!("tally-focus-{billing_period}.csv"),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv | Format::Focus => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}
