//! The columns of the plain exports (CSV, JSON lines, Parquet) and of FOCUS 1.0, each a name, a
//! type and how a [`ChargeRow`] fills it. The writers only encode these values.
//!
//! The plain exports use FOCUS column names where FOCUS has one, and the FOCUS convention `x_`
//! for Tally's own (the instance data, the adjustment id).

use chrono::{DateTime, Utc};

use crate::decimal::{ExactAmount, ExactQuantity};
use crate::row::{ChargeKind, ChargeRow, ExportHeader, service_category};

/// A column's type, which decides its Parquet type and its text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// decimal128(38, 10).
    Quantity,
    /// decimal128(38, 20).
    Amount,
    /// Timestamp (UTC).
    Time,
}

/// One cell; `None`: null (an empty CSV field, a JSON `null`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(Option<String>),
    Quantity(Option<ExactQuantity>),
    Amount(Option<ExactAmount>),
    Time(DateTime<Utc>),
}

/// FOCUS BillingAccountId of usage whose subscription has no known owner (the column may not be null).
pub const UNOWNED_ACCOUNT: &str = "unowned";
/// FOCUS ServiceName of adjustments (the column may not be null).
pub const ADJUSTMENT_SERVICE: &str = "Billing adjustment";

fn text(value: &str) -> Value {
    Value::Text((!value.is_empty()).then(|| value.to_string()))
}

fn owned(value: Option<String>) -> Value {
    Value::Text(value)
}

/// The plain exports' columns, in order.
pub const PLAIN_COLUMNS: [(&str, ColumnType); 21] = [
    ("BillingAccountId", ColumnType::Text),
    ("SubAccountId", ColumnType::Text),
    ("ChargeCategory", ColumnType::Text),
    ("ChargeDescription", ColumnType::Text),
    ("ChargePeriodStart", ColumnType::Time),
    ("ChargePeriodEnd", ColumnType::Time),
    ("BillingPeriodStart", ColumnType::Time),
    ("BillingPeriodEnd", ColumnType::Time),
    ("ServiceName", ColumnType::Text),
    ("SkuId", ColumnType::Text),
    ("SkuPriceId", ColumnType::Text),
    ("ResourceId", ColumnType::Text),
    ("RegionId", ColumnType::Text),
    ("ConsumedQuantity", ColumnType::Quantity),
    ("ConsumedUnit", ColumnType::Text),
    ("ListUnitPrice", ColumnType::Amount),
    ("BilledCost", ColumnType::Amount),
    ("BillingCurrency", ColumnType::Text),
    ("Tags", ColumnType::Text),
    ("x_InstanceData", ColumnType::Text),
    ("x_AdjustmentId", ColumnType::Text),
];

/// A row's cells for [`PLAIN_COLUMNS`].
pub fn plain_values(header: &ExportHeader, row: &ChargeRow) -> [Value; 21] {
    let usage = row.kind == ChargeKind::Usage;
    [
        text(&row.tenant_id),
        text(&row.subscription_id),
        text(row.charge_category()),
        text(&row.description),
        Value::Time(row.charge_period_start),
        Value::Time(row.charge_period_end),
        Value::Time(header.period_start),
        Value::Time(header.period_end),
        text(&row.service_name),
        text(&row.meter_id),
        owned(row.sku_price_id()),
        text(&row.resource_id),
        text(&row.region),
        Value::Quantity(row.quantity),
        text(if usage { &row.unit } else { "" }),
        Value::Amount(row.unit_price),
        Value::Amount(Some(row.cost)),
        text(&header.currency),
        owned(usage.then(|| row.tags_json())),
        owned(row.additional_info_json()),
        owned(row.adjustment_id.clone()),
    ]
}

/// The FOCUS 1.0 columns (all of them, published names), in order.
pub const FOCUS_COLUMNS: [&str; 43] = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
];

/// A row's cells for [`FOCUS_COLUMNS`]. Prices are list prices and nothing is discounted, so
/// BilledCost = EffectiveCost = ListCost = ContractedCost; there are no commitment discounts,
/// availability zones, account or resource names: those columns are null.
pub fn focus_values(header: &ExportHeader, row: &ChargeRow) -> [Value; 43] {
    let usage = row.kind == ChargeKind::Usage;
    let cost = Value::Amount(Some(row.cost));
    let usage_text = |value: &str| {
        if usage {
            text(value)
        } else {
            Value::Text(None)
        }
    };
    let null = || Value::Text(None);
    let account = if row.tenant_id.is_empty() {
        UNOWNED_ACCOUNT
    } else {
        row.tenant_id.as_str()
    };
    let service = if usage && !row.service_name.is_empty() {
        row.service_name.as_str()
    } else {
        ADJUSTMENT_SERVICE
    };
    [
        null(),                                               // AvailabilityZone
        cost.clone(),                                         // BilledCost
        text(account),                                        // BillingAccountId
        null(),                                               // BillingAccountName
        text(&header.currency),                               // BillingCurrency
        Value::Time(header.period_end),                       // BillingPeriodEnd
        Value::Time(header.period_start),                     // BillingPeriodStart
        text(row.charge_category()),                          // ChargeCategory
        null(),                                               // ChargeClass
        text(&row.description),                               // ChargeDescription
        text(if usage { "Usage-Based" } else { "One-Time" }), // ChargeFrequency
        Value::Time(row.charge_period_end),                   // ChargePeriodEnd
        Value::Time(row.charge_period_start),                 // ChargePeriodStart
        null(),                                               // CommitmentDiscountCategory
        null(),                                               // CommitmentDiscountId
        null(),                                               // CommitmentDiscountName
        null(),                                               // CommitmentDiscountStatus
        null(),                                               // CommitmentDiscountType
        Value::Quantity(row.quantity),                        // ConsumedQuantity
        usage_text(&row.unit),                                // ConsumedUnit
        cost.clone(),                                         // ContractedCost
        Value::Amount(row.unit_price),                        // ContractedUnitPrice
        cost.clone(),                                         // EffectiveCost
        text(&header.provider_name),                          // InvoiceIssuerName
        cost,                                                 // ListCost
        Value::Amount(row.unit_price),                        // ListUnitPrice
        usage_text("Standard"),                               // PricingCategory
        Value::Quantity(row.quantity),                        // PricingQuantity
        usage_text(&row.unit),                                // PricingUnit
        text(&header.provider_name),                          // ProviderName
        text(&header.provider_name),                          // PublisherName
        text(&row.region),                                    // RegionId
        text(&row.region),                                    // RegionName
        text(&row.resource_id),                               // ResourceId
        null(),                                               // ResourceName
        null(),                                               // ResourceType
        text(if usage {
            service_category(service)
        } else {
            "Other"
        }), // ServiceCategory
        text(service),                                        // ServiceName
        text(&row.meter_id),                                  // SkuId
        owned(row.sku_price_id()),                            // SkuPriceId
        text(&row.subscription_id),                           // SubAccountId
        null(),                                               // SubAccountName
        owned(usage.then(|| row.tags_json())),                // Tags
    ]
}
