//! Usage records: what a resource provider posts, the rules it must meet, and the fingerprints
//! that make retries idempotent.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::error::{FieldViolation, Reason, Rejection};
use crate::guid::parse_guid;
use crate::quantity::Quantity;
use crate::time::{Granularity, RawTimestamp, unix_nanos};

/// Records per batch, at most.
pub const MAX_BATCH_RECORDS: usize = 10_000;
pub const MAX_EVENT_ID_LEN: usize = 128;
pub const MAX_RESOURCE_URI_LEN: usize = 2_048;
pub const MAX_LOCATION_LEN: usize = 128;
/// Azure's own tag limits: 50 tags, names up to 512 characters, values up to 256.
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_NAME_LEN: usize = 512;
pub const MAX_TAG_VALUE_LEN: usize = 256;
pub const MAX_ADDITIONAL_INFO: usize = 50;
pub const MAX_ADDITIONAL_INFO_VALUE_LEN: usize = 4_096;
/// Violations reported per batch; a batch of garbage should not produce a megabyte of errors.
const MAX_VIOLATIONS: usize = 100;

/// A record as posted, before any rule is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRecordInput {
    pub event_id: String,
    pub subscription_id: String,
    pub meter_id: String,
    pub resource_uri: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub additional_info: BTreeMap<String, String>,
    pub quantity: String,
    pub usage_start_time: Option<RawTimestamp>,
    pub usage_end_time: Option<RawTimestamp>,
}

/// What makes two records of the same subscription and meter different rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InstanceData {
    pub resource_uri: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub additional_info: BTreeMap<String, String>,
}

impl InstanceData {
    /// A 128-bit fingerprint of the canonical form (maps are ordered, lengths prefixed).
    pub fn fingerprint(&self) -> [u8; 16] {
        let mut buf = Vec::with_capacity(128);
        put_str(&mut buf, &self.resource_uri);
        put_str(&mut buf, &self.location);
        for map in [&self.tags, &self.additional_info] {
            buf.extend_from_slice(&(map.len() as u64).to_le_bytes());
            for (k, v) in map {
                put_str(&mut buf, k);
                put_str(&mut buf, v);
            }
        }
        xxh3_128(&buf).to_be_bytes()
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A record that met every rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    pub event_id: String,
    pub subscription_id: Uuid,
    pub meter_id: Uuid,
    pub instance: InstanceData,
    pub quantity: Quantity,
    pub usage_start: DateTime<Utc>,
    pub usage_end: DateTime<Utc>,
}

impl UsageRecord {
    /// The key under which the event id is remembered for idempotency.
    pub fn event_key(&self) -> [u8; 16] {
        event_key(&self.event_id)
    }

    /// A 64-bit hash of everything but the event id: equal hashes under one event id mean a
    /// retry, different ones a conflict.
    pub fn content_hash(&self) -> i64 {
        self.content_hash_with(&self.instance.fingerprint())
    }

    /// [`UsageRecord::content_hash`] for a caller that already has the instance fingerprint.
    pub fn content_hash_with(&self, instance_fingerprint: &[u8; 16]) -> i64 {
        let mut h = Xxh3::new();
        h.update(self.subscription_id.as_bytes());
        h.update(self.meter_id.as_bytes());
        h.update(instance_fingerprint);
        h.update(&self.quantity.steps().to_le_bytes());
        h.update(&unix_nanos(self.usage_start).to_le_bytes());
        h.update(&unix_nanos(self.usage_end).to_le_bytes());
        h.digest() as i64
    }

    /// Start of the usage hour, in Unix seconds.
    pub fn usage_hour(&self) -> i64 {
        Granularity::Hourly.bucket_of(self.usage_start.timestamp())
    }
}

pub fn event_key(event_id: &str) -> [u8; 16] {
    xxh3_128(event_id.as_bytes()).to_be_bytes()
}

/// A batch after validation: the records to store, in order, and how many in-batch repeats of
/// an identical record were dropped.
#[derive(Debug)]
pub struct ValidBatch {
    pub records: Vec<UsageRecord>,
    pub repeated_in_batch: u32,
}

/// Checks a whole batch. On any violation nothing of the batch may be stored: the error lists the
/// bad fields (`records[12].quantity`), and its reason is that of the first one.
pub fn validate_batch(
    inputs: Vec<UsageRecordInput>,
    is_known_meter: impl Fn(&Uuid) -> bool,
    now: DateTime<Utc>,
) -> Result<ValidBatch, Rejection> {
    if inputs.is_empty() {
        return Err(Rejection::field(
            Reason::InvalidProperty,
            "records",
            "a batch needs 1 to 10000 records",
        ));
    }
    if inputs.len() > MAX_BATCH_RECORDS {
        return Err(Rejection::field(
            Reason::BatchTooLarge,
            "records",
            format!(
                "{} records; a batch holds at most {MAX_BATCH_RECORDS}",
                inputs.len()
            ),
        ));
    }
    let mut violations: Vec<(Reason, FieldViolation)> = Vec::new();
    let mut records = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        match validate_record(input, &is_known_meter, now) {
            Ok(record) => records.push(record),
            Err(found) => {
                for (reason, field, description) in found {
                    if violations.len() < MAX_VIOLATIONS {
                        violations.push((
                            reason,
                            FieldViolation::new(format!("records[{index}].{field}"), description),
                        ));
                    }
                }
            }
        }
    }
    if let Some((reason, first)) = violations.first() {
        let message = if violations.len() == 1 {
            format!("{}: {}", first.field, first.description)
        } else {
            format!(
                "{}: {} (and {} more invalid fields)",
                first.field,
                first.description,
                violations.len() - 1
            )
        };
        return Err(Rejection {
            reason: *reason,
            message,
            violations: violations.into_iter().map(|(_, v)| v).collect(),
        });
    }
    dedupe_within_batch(records)
}

/// Repeats of an event id inside one batch: identical content counts as a retry, anything else
/// is a conflict that fails the batch.
fn dedupe_within_batch(records: Vec<UsageRecord>) -> Result<ValidBatch, Rejection> {
    let mut seen: HashMap<&str, (usize, i64)> = HashMap::with_capacity(records.len());
    let mut repeats = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let hash = record.content_hash();
        match seen.get(record.event_id.as_str()) {
            None => {
                seen.insert(&record.event_id, (index, hash));
            }
            Some(&(_, first_hash)) if first_hash == hash => repeats.push(index),
            Some(&(first, _)) => {
                return Err(event_id_conflict(
                    index,
                    &record.event_id,
                    format!("repeats records[{first}].event_id with different content"),
                ));
            }
        }
    }
    drop(seen);
    let repeated_in_batch = repeats.len() as u32;
    let records = if repeats.is_empty() {
        records
    } else {
        records
            .into_iter()
            .enumerate()
            .filter(|(i, _)| repeats.binary_search(i).is_err())
            .map(|(_, r)| r)
            .collect()
    };
    Ok(ValidBatch {
        records,
        repeated_in_batch,
    })
}

/// The contract's EventIdConflict, naming the event id and the field.
pub fn event_id_conflict(index: usize, event_id: &str, description: String) -> Rejection {
    let field = format!("records[{index}].event_id");
    Rejection {
        reason: Reason::EventIdConflict,
        message: format!(
            "event id {event_id:?} is already stored with different content ({field} {description})"
        ),
        violations: vec![FieldViolation::new(field, description)],
    }
}

type Found = Vec<(Reason, &'static str, String)>;

fn validate_record(
    input: UsageRecordInput,
    is_known_meter: &impl Fn(&Uuid) -> bool,
    now: DateTime<Utc>,
) -> Result<UsageRecord, Found> {
    let mut found: Found = Vec::new();
    let mut bad = |field: &'static str, description: String| {
        found.push((Reason::InvalidProperty, field, description));
    };

    let event_id_ok = !input.event_id.is_empty()
        && input.event_id.len() <= MAX_EVENT_ID_LEN
        && input.event_id.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if !event_id_ok {
        bad(
            "event_id",
            "must be 1 to 128 printable ASCII characters".into(),
        );
    }
    let subscription_id = parse_guid(&input.subscription_id);
    if subscription_id.is_none() {
        bad(
            "subscription_id",
            crate::guid::bad_guid(&input.subscription_id),
        );
    }
    let meter_guid = parse_guid(&input.meter_id);
    if meter_guid.is_none() {
        bad("meter_id", crate::guid::bad_guid(&input.meter_id));
    }
    check_text(
        &mut bad,
        "resource_uri",
        &input.resource_uri,
        MAX_RESOURCE_URI_LEN,
    );
    check_text(&mut bad, "location", &input.location, MAX_LOCATION_LEN);
    check_map(&mut bad, "tags", &input.tags, MAX_TAGS, MAX_TAG_VALUE_LEN);
    check_map(
        &mut bad,
        "additional_info",
        &input.additional_info,
        MAX_ADDITIONAL_INFO,
        MAX_ADDITIONAL_INFO_VALUE_LEN,
    );
    let quantity = match Quantity::parse_record(&input.quantity) {
        Ok(q) => Some(q),
        Err(e) => {
            bad(
                "quantity",
                format!("{e} (got {:?})", crate::error::shorten(&input.quantity)),
            );
            None
        }
    };
    let start = check_time(&mut bad, "usage_start_time", input.usage_start_time);
    let end = check_time(&mut bad, "usage_end_time", input.usage_end_time);
    if let (Some(start), Some(end)) = (start, end) {
        let hour = Granularity::Hourly.bucket_start(start);
        if start >= end {
            bad(
                "usage_end_time",
                "must be later than usage_start_time".into(),
            );
        } else if end > hour + Duration::hours(1) {
            bad(
                "usage_end_time",
                "usage_start_time and usage_end_time must lie inside one UTC hour".into(),
            );
        }
        if start > now {
            bad(
                "usage_start_time",
                format!("{} is in the future", start.to_rfc3339()),
            );
        }
    }
    // An unknown meter is its own reason; only report it for a well-formed meter id.
    if let Some(meter) = meter_guid
        && !is_known_meter(&meter)
    {
        found.push((
            Reason::UnknownMeter,
            "meter_id",
            format!("{} is not in the meter catalog", meter.hyphenated()),
        ));
    }
    match (subscription_id, meter_guid, quantity, start, end) {
        (
            Some(subscription_id),
            Some(meter_id),
            Some(quantity),
            Some(usage_start),
            Some(usage_end),
        ) if found.is_empty() => Ok(UsageRecord {
            event_id: input.event_id,
            subscription_id,
            meter_id,
            instance: InstanceData {
                resource_uri: input.resource_uri,
                location: input.location,
                tags: input.tags,
                additional_info: input.additional_info,
            },
            quantity,
            usage_start,
            usage_end,
        }),
        _ => Err(found),
    }
}

fn check_text(
    bad: &mut impl FnMut(&'static str, String),
    field: &'static str,
    text: &str,
    max: usize,
) {
    if text.trim().is_empty() {
        bad(field, "is required".into());
    } else if text.chars().count() > max {
        bad(field, format!("is longer than {max} characters"));
    } else if text.chars().any(char::is_control) {
        bad(field, "contains control characters".into());
    }
}

fn check_map(
    bad: &mut impl FnMut(&'static str, String),
    field: &'static str,
    map: &BTreeMap<String, String>,
    max_entries: usize,
    max_value: usize,
) {
    if map.len() > max_entries {
        bad(
            field,
            format!("has {} entries; at most {max_entries}", map.len()),
        );
        return;
    }
    for (key, value) in map {
        if key.is_empty() || key.chars().count() > MAX_TAG_NAME_LEN {
            bad(
                field,
                format!(
                    "key {:?} must be 1 to {MAX_TAG_NAME_LEN} characters",
                    crate::error::shorten(key)
                ),
            );
        } else if value.chars().count() > max_value {
            bad(
                field,
                format!(
                    "value of {:?} is longer than {max_value} characters",
                    crate::error::shorten(key)
                ),
            );
        }
    }
}

fn check_time(
    bad: &mut impl FnMut(&'static str, String),
    field: &'static str,
    time: Option<RawTimestamp>,
) -> Option<DateTime<Utc>> {
    let Some(raw) = time else {
        bad(field, "is required".into());
        return None;
    };
    match raw.to_utc() {
        Some(t) if t.timestamp() >= 0 && t.timestamp_nanos_opt().is_some() => Some(t),
        _ => {
            bad(field, "is not a valid time between 1970 and 2262".into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::{MeterCatalog, well_known};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T13:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ts(s: &str) -> Option<RawTimestamp> {
        let t = DateTime::parse_from_rfc3339(s).unwrap();
        Some(RawTimestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        })
    }

    fn input(event_id: &str) -> UsageRecordInput {
        UsageRecordInput {
            event_id: event_id.into(),
            subscription_id: "{5F3A9C1E-0B4D-4E8F-9A2B-1C3D5E7F9A0B}".into(),
            meter_id: well_known::BASE_VM_SIZE_HOURS.to_uppercase(),
            resource_uri: "/subscriptions/5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1".into(),
            location: "local".into(),
            quantity: "2.5".into(),
            usage_start_time: ts("2026-11-27T12:00:00Z"),
            usage_end_time: ts("2026-11-27T13:00:00Z"),
            ..Default::default()
        }
    }

    fn check(inputs: Vec<UsageRecordInput>) -> Result<ValidBatch, Rejection> {
        let catalog = MeterCatalog::with_built_ins();
        validate_batch(inputs, |m| catalog.contains(m), now())
    }

    #[test]
    fn a_good_record_is_canonicalised() {
        let batch = check(vec![input("e1")]).unwrap();
        let record = &batch.records[0];
        assert_eq!(
            record.subscription_id.hyphenated().to_string(),
            "5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b"
        );
        assert_eq!(
            record.meter_id.hyphenated().to_string(),
            well_known::BASE_VM_SIZE_HOURS
        );
        assert_eq!(
            record.usage_hour(),
            ts("2026-11-27T12:00:00Z").unwrap().seconds
        );
    }

    #[test]
    fn every_rule_names_its_field() {
        type Case = (fn(&mut UsageRecordInput), Reason, &'static str);
        let cases: Vec<Case> = vec![
            (
                |r| r.event_id.clear(),
                Reason::InvalidProperty,
                "records[0].event_id",
            ),
            (
                |r| r.event_id = "x".repeat(129),
                Reason::InvalidProperty,
                "records[0].event_id",
            ),
            (
                |r| r.event_id = "tab\there".into(),
                Reason::InvalidProperty,
                "records[0].event_id",
            ),
            (
                |r| r.subscription_id = "nope".into(),
                Reason::InvalidProperty,
                "records[0].subscription_id",
            ),
            (
                |r| r.meter_id = "nope".into(),
                Reason::InvalidProperty,
                "records[0].meter_id",
            ),
            (
                |r| r.meter_id = "00000000-0000-0000-0000-000000000001".into(),
                Reason::UnknownMeter,
                "records[0].meter_id",
            ),
            (
                |r| r.resource_uri.clear(),
                Reason::InvalidProperty,
                "records[0].resource_uri",
            ),
            (
                |r| r.location.clear(),
                Reason::InvalidProperty,
                "records[0].location",
            ),
            (
                |r| r.quantity = "-1".into(),
                Reason::InvalidProperty,
                "records[0].quantity",
            ),
            (
                |r| r.quantity = "1.00000000001".into(),
                Reason::InvalidProperty,
                "records[0].quantity",
            ),
            (
                |r| r.usage_start_time = None,
                Reason::InvalidProperty,
                "records[0].usage_start_time",
            ),
            (
                |r| r.usage_end_time = ts("2026-11-27T11:00:00Z"),
                Reason::InvalidProperty,
                "records[0].usage_end_time",
            ),
            (
                |r| r.usage_end_time = ts("2026-11-27T13:00:01Z"),
                Reason::InvalidProperty,
                "records[0].usage_end_time",
            ),
            (
                |r| {
                    r.usage_start_time = ts("2026-11-27T14:00:00Z");
                    r.usage_end_time = ts("2026-11-27T14:30:00Z");
                },
                Reason::InvalidProperty,
                "records[0].usage_start_time",
            ),
            (
                |r| {
                    r.tags.insert(String::new(), "v".into());
                },
                Reason::InvalidProperty,
                "records[0].tags",
            ),
        ];
        for (mutate, reason, field) in cases {
            let mut record = input("e1");
            mutate(&mut record);
            let err = check(vec![record]).unwrap_err();
            assert_eq!(err.reason, reason, "{field}: {err:?}");
            assert_eq!(err.violations[0].field, field, "{err:?}");
        }
    }

    #[test]
    fn batch_bounds() {
        assert_eq!(check(vec![]).unwrap_err().reason, Reason::InvalidProperty);
        let many = (0..10_001).map(|i| input(&format!("e{i}"))).collect();
        assert_eq!(check(many).unwrap_err().reason, Reason::BatchTooLarge);
    }

    #[test]
    fn later_records_are_named_by_index() {
        let mut bad = input("e2");
        bad.quantity = "abc".into();
        let err = check(vec![input("e1"), bad]).unwrap_err();
        assert_eq!(err.violations[0].field, "records[1].quantity");
    }

    #[test]
    fn repeats_inside_a_batch() {
        let batch = check(vec![input("e1"), input("e1"), input("e2")]).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.repeated_in_batch, 1);
        // Same value written differently is the same content.
        let mut same = input("e1");
        same.quantity = "2.5000".into();
        assert_eq!(check(vec![input("e1"), same]).unwrap().repeated_in_batch, 1);
        let mut other = input("e1");
        other.quantity = "3".into();
        let err = check(vec![input("e1"), other]).unwrap_err();
        assert_eq!(err.reason, Reason::EventIdConflict);
        assert_eq!(err.violations[0].field, "records[1].event_id");
        assert!(err.message.contains("\"e1\""));
    }

    #[test]
    fn instance_fingerprints_tell_instances_apart() {
        let a = check(vec![input("e1")]).unwrap().records.remove(0).instance;
        let mut b = a.clone();
        b.tags.insert("env".into(), "prod".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.location = "loc".into();
        c.resource_uri.push_str("al");
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
