//! Usage records for tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use tally_proto::convert::timestamp;
use tally_proto::usage::v1::{PostUsageRequest, UsageRecord};

pub use tally_core::meter::well_known as meters;

/// Subscriptions used across tests.
pub const SUB_A: &str = "5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b";
pub const SUB_B: &str = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

/// A record of one hour's usage starting at `hour`.
pub fn record(
    event_id: &str,
    subscription: &str,
    meter: &str,
    resource: &str,
    quantity: &str,
    hour: DateTime<Utc>,
) -> UsageRecord {
    UsageRecord {
        event_id: event_id.into(),
        subscription_id: subscription.into(),
        meter_id: meter.into(),
        resource_uri: format!(
            "/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{resource}"
        ),
        location: "local".into(),
        tags: BTreeMap::from([("env".to_string(), "test".to_string())]),
        additional_info: BTreeMap::new(),
        quantity: quantity.into(),
        usage_start_time: Some(timestamp(hour)),
        usage_end_time: Some(timestamp(hour + Duration::hours(1))),
    }
}

pub fn batch(records: Vec<UsageRecord>) -> PostUsageRequest {
    PostUsageRequest { records }
}
