//! Fuzz target: record validation, as PostUsage does it: wire records (built field by field, or
//! decoded from arbitrary protobuf bytes) converted to `UsageRecordInput` and checked as a whole
//! batch by `validate_batch` against the built-in meter catalog.
//! A batch is accepted with every record within the contract's rules, or refused naming fields.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use tally_core::meter::built_in_meters;
use tally_core::time::unix_nanos;
use tally_core::{MeterCatalog, Reason, UsageRecordInput, validate_batch};
use tally_proto::convert::Timestamp;
use tally_proto::usage::v1 as pb;

/// A text field: one of a few valid spellings (so records get past the first checks), or anything.
#[derive(Arbitrary, Debug)]
enum Text {
    Valid(u8),
    Any(String),
}

impl Text {
    fn pick(self, valid: &[&str]) -> String {
        match self {
            Text::Valid(i) => valid
                .get(usize::from(i) % valid.len().max(1))
                .map(|s| (*s).to_string())
                .unwrap_or_default(),
            Text::Any(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Time {
    /// Seconds from the fixed "now", within a few days.
    Near(i32, u32),
    Any(i64, i32),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Record {
    event_id: Text,
    subscription_id: Text,
    meter_id: u8,
    any_meter: Option<String>,
    resource_uri: Text,
    location: Text,
    tags: BTreeMap<String, String>,
    additional_info: BTreeMap<String, String>,
    quantity: Text,
    start: Time,
    length_seconds: Option<u16>,
    end: Time,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Records(Vec<Record>),
    /// A PostUsageRequest as it would arrive on the wire.
    Wire(Vec<u8>),
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_250_200, 0).unwrap_or_default()
}

fn meters() -> &'static (MeterCatalog, Vec<String>) {
    static METERS: OnceLock<(MeterCatalog, Vec<String>)> = OnceLock::new();
    METERS.get_or_init(|| {
        let ids = built_in_meters()
            .iter()
            .take(8)
            .map(|m| m.id.hyphenated().to_string())
            .collect();
        (MeterCatalog::with_built_ins(), ids)
    })
}

fn timestamp(time: Time, start: Option<&Timestamp>, length: Option<u16>) -> Option<Timestamp> {
    match (time, start, length) {
        (_, Some(start), Some(length)) => Some(Timestamp {
            seconds: start.seconds.saturating_add(i64::from(length)),
            nanos: start.nanos,
        }),
        (Time::Near(seconds, nanos), _, _) => Some(Timestamp {
            seconds: now().timestamp() + i64::from(seconds) % 400_000,
            nanos: (nanos % 1_000_000_000) as i32,
        }),
        (Time::Any(seconds, nanos), _, _) => Some(Timestamp { seconds, nanos }),
        (Time::Missing, _, _) => None,
    }
}

fn wire(record: Record) -> pb::UsageRecord {
    let (_, meter_ids) = meters();
    let meter_ids: Vec<&str> = meter_ids.iter().map(String::as_str).collect();
    let usage_start_time = timestamp(record.start, None, None);
    let usage_end_time = timestamp(record.end, usage_start_time.as_ref(), record.length_seconds);
    pb::UsageRecord {
        event_id: record.event_id.pick(&["e-1", "e-2", "batch-7/record-0001"]),
        subscription_id: record.subscription_id.pick(&[
            "6f1c7a52-8d0e-4b59-9c3e-2f4a5b6c7d8e",
            "{6F1C7A52-8D0E-4B59-9C3E-2F4A5B6C7D8E}",
            "6f1c7a528d0e4b599c3e2f4a5b6c7d8e",
        ]),
        meter_id: record
            .any_meter
            .unwrap_or_else(|| Text::Valid(record.meter_id).pick(&meter_ids)),
        resource_uri: record
            .resource_uri
            .pick(&["/subscriptions/6f1c7a52-8d0e-4b59-9c3e-2f4a5b6c7d8e/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"]),
        location: record.location.pick(&["local", "westeurope"]),
        tags: record.tags,
        additional_info: record.additional_info,
        quantity: record.quantity.pick(&["1", "2.5", "0.0000000001", "999999999999999999.9999999999"]),
        usage_start_time,
        usage_end_time,
    }
}

fuzz_target!(|input: Input| {
    let records: Vec<pb::UsageRecord> = match input {
        Input::Records(records) => records.into_iter().map(wire).collect(),
        Input::Wire(bytes) => match pb::PostUsageRequest::decode(bytes.as_slice()) {
            Ok(request) => request.records,
            Err(_) => return,
        },
    };
    let count = records.len();
    let inputs: Vec<UsageRecordInput> = records.into_iter().map(Into::into).collect();
    let (catalog, _) = meters();
    let known = |m: &uuid::Uuid| catalog.contains(m);
    match validate_batch(inputs.clone(), known, now()) {
        Ok(batch) => {
            assert_eq!(
                batch.records.len() + batch.repeated_in_batch as usize,
                count
            );
            let mut event_ids = std::collections::HashSet::new();
            for record in &batch.records {
                assert!(
                    event_ids.insert(record.event_id.as_str()),
                    "event ids stay unique"
                );
                assert!(!record.event_id.is_empty() && record.event_id.len() <= 128);
                assert!(catalog.contains(&record.meter_id));
                assert!(record.quantity.units() < 1_000_000_000_000_000_000);
                assert!(record.usage_start < record.usage_end);
                // As stored: i64 nanoseconds keep the order (a leap second once broke it).
                assert!(unix_nanos(record.usage_start) < unix_nanos(record.usage_end));
                assert!(record.usage_start <= now());
                assert!(record.usage_end <= record.usage_start + Duration::hours(1));
                assert!(record.usage_start.timestamp() >= 0);
                assert!(record.usage_end.timestamp_nanos_opt().is_some());
                assert_eq!(record.usage_hour() % 3_600, 0);
                assert_eq!(record.content_hash(), record.content_hash());
            }
            // Validation is a function of its input.
            let again = validate_batch(inputs, known, now()).map(|b| b.records);
            assert_eq!(again.as_ref().ok(), Some(&batch.records));
        }
        Err(rejection) => {
            assert!(!rejection.violations.is_empty(), "{rejection:?}");
            assert!(rejection.violations.len() <= 100);
            for violation in &rejection.violations {
                assert!(violation.field.starts_with("records"), "{violation:?}");
            }
            // A field's error opens with the field; an event id repeated with other content
            // says so first (`event id "x" is already stored ... (records[3].event_id ...)`).
            let field = rejection.violations[0].field.as_str();
            if rejection.reason == Reason::EventIdConflict {
                assert!(rejection.message.contains(field), "{rejection:?}");
            } else {
                assert!(rejection.message.starts_with(field), "{rejection:?}");
            }
        }
    }
});
