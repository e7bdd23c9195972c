//! Conversions between wire types and domain types.

use chrono::{DateTime, Utc};
pub use prost_types::Timestamp;
use tally_core::{InstanceData, Meter, RawTimestamp, UsageRecordInput};

use crate::usage::v1 as pb;

pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn raw_timestamp(ts: &Timestamp) -> RawTimestamp {
    RawTimestamp {
        seconds: ts.seconds,
        nanos: ts.nanos,
    }
}

/// A wire timestamp as UTC; `None` when absent or out of range.
pub fn utc(ts: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    ts.and_then(|ts| raw_timestamp(ts).to_utc())
}

impl From<pb::UsageRecord> for UsageRecordInput {
    fn from(r: pb::UsageRecord) -> Self {
        UsageRecordInput {
            usage_start_time: r.usage_start_time.as_ref().map(raw_timestamp),
            usage_end_time: r.usage_end_time.as_ref().map(raw_timestamp),
            event_id: r.event_id,
            subscription_id: r.subscription_id,
            meter_id: r.meter_id,
            resource_uri: r.resource_uri,
            location: r.location,
            tags: r.tags,
            additional_info: r.additional_info,
            quantity: r.quantity,
        }
    }
}

impl From<InstanceData> for pb::InstanceData {
    fn from(i: InstanceData) -> Self {
        pb::InstanceData {
            resource_uri: i.resource_uri,
            location: i.location,
            tags: i.tags,
            additional_info: i.additional_info,
        }
    }
}

impl From<&Meter> for pb::Meter {
    fn from(m: &Meter) -> Self {
        pb::Meter {
            meter_id: m.id.hyphenated().to_string(),
            name: m.name.clone(),
            unit: m.unit.clone(),
            resource_provider: m.resource_provider.clone(),
            chargeable: m.chargeable,
            deprecated: m.deprecated,
        }
    }
}
