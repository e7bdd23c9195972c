//! How the usage tables store times, record ids and quantities: one type or function per
//! encoding, so nothing outside the store re-derives them (the benchmark's storage limit builds
//! its rows with [`StoredRecord`] too).
//!
//! - Reported times, the horizon and `complete_through`: [`UnixMicros`].
//! - Usage times (`usage_start`, `usage_end`, a batch's `min_usage_start`): [`UnixNanos`].
//! - Usage and reported buckets: [`UnixSeconds`] of the bucket's start
//!   ([`tally_core::Granularity::bucket_of`]); lateness: seconds, in fields named `*_seconds`.
//! - Record ids: [`RecordId`], `batch_id << 14 | ordinal`.
//! - Quantities: [`StoredQuantity`], whole units and a fraction in 10^-10 steps.

use chrono::{DateTime, Utc};
use sea_orm::Value;
use tally_core::quantity::FRACTION_SCALE;
use tally_core::record::MAX_BATCH_RECORDS;
use tally_core::time::unix_nanos;
use tally_core::{Granularity, Quantity, UsageRecord};

use crate::error::StoreError;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// A time stored as an integer count of `1 / PER_SECOND` seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime<const PER_SECOND: i64>(i64);

/// Seconds since the Unix epoch: the start of a usage or reported bucket.
pub type UnixSeconds = UnixTime<1>;
/// Microseconds since the Unix epoch: reported times, the horizon, `complete_through`.
pub type UnixMicros = UnixTime<MICROS_PER_SECOND>;
/// Nanoseconds since the Unix epoch: usage times, as records are hashed
/// ([`tally_core::time::unix_nanos`]).
pub type UnixNanos = UnixTime<NANOS_PER_SECOND>;

impl<const PER_SECOND: i64> UnixTime<PER_SECOND> {
    /// The time a column holds.
    pub const fn from_stored(value: i64) -> Self {
        Self(value)
    }

    /// The value a column holds.
    pub const fn stored(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub fn whole_seconds(self) -> i64 {
        self.0.div_euclid(PER_SECOND)
    }

    pub fn to_utc(self) -> DateTime<Utc> {
        let nanos = self.0.rem_euclid(PER_SECOND) * (NANOS_PER_SECOND / PER_SECOND);
        DateTime::from_timestamp(self.whole_seconds(), nanos as u32).unwrap_or_default()
    }

    /// SQL for the start, in Unix seconds, of the `granularity` bucket holding `column`, a time
    /// stored in this unit. (Integer division: times before 1970 never occur.)
    pub(crate) fn bucket_sql(column: &str, granularity: Granularity) -> String {
        let seconds = granularity.seconds();
        format!("({column} / {}) * {seconds}", seconds * PER_SECOND)
    }
}

impl UnixSeconds {
    /// The start of the `granularity` bucket holding `time`.
    pub fn bucket_of(granularity: Granularity, time: DateTime<Utc>) -> Self {
        Self(granularity.bucket_of(time.timestamp()))
    }

    /// The start of the next `granularity` bucket, if this is the start of one.
    pub fn next_bucket(self, granularity: Granularity) -> Self {
        Self(self.0 + granularity.seconds())
    }
}

impl UnixMicros {
    pub fn of(time: DateTime<Utc>) -> Self {
        Self(time.timestamp_micros())
    }
}

impl UnixNanos {
    pub fn of(time: DateTime<Utc>) -> Self {
        Self(unix_nanos(time))
    }
}

/// A record's id: its batch's id in the high bits, its ordinal in the batch in the low
/// [`RecordId::ORDINAL_BITS`], so a batch's records are one id range, found without an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(i64);

// Every ordinal of the largest batch fits below the batch's bits.
const _: () = assert!(MAX_BATCH_RECORDS <= 1 << RecordId::ORDINAL_BITS);

impl RecordId {
    pub const ORDINAL_BITS: u32 = 14;
    /// Ids per batch.
    const SPAN: i64 = 1 << Self::ORDINAL_BITS;

    /// Record `ordinal` (from 0, below [`MAX_BATCH_RECORDS`]) of batch `batch_id`.
    pub fn new(batch_id: i64, ordinal: usize) -> RecordId {
        RecordId(batch_id << Self::ORDINAL_BITS | ordinal as i64)
    }

    pub(crate) fn from_stored(value: i64) -> RecordId {
        RecordId(value)
    }

    /// The value the `id` column holds.
    pub fn stored(self) -> i64 {
        self.0
    }

    /// The stored ids batch `batch_id`'s records may take: `start..end`.
    pub fn range_of_batch(batch_id: i64) -> std::ops::Range<i64> {
        batch_id * Self::SPAN..(batch_id + 1) * Self::SPAN
    }

    /// SQL joining `record`'s id column to the range of `batch`'s id column.
    pub(crate) fn in_batch_sql(record_id: &str, batch_id: &str) -> String {
        let span = Self::SPAN;
        format!("{record_id} >= {batch_id} * {span} AND {record_id} < ({batch_id} + 1) * {span}")
    }
}

/// A quantity as stored: whole units and a fraction in 10^-10 steps. Stored rows keep the
/// fraction below one unit; a sum's fraction may exceed it until carried ([`carry_sql`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredQuantity {
    pub units: i64,
    pub fraction: i64,
}

impl StoredQuantity {
    /// A record's quantity: below 10^18 units (validation), so the units fit.
    pub fn of(quantity: Quantity) -> StoredQuantity {
        StoredQuantity {
            units: quantity.units() as i64,
            fraction: quantity.fraction() as i64,
        }
    }

    /// The quantity read back, carrying any whole units out of the fraction.
    pub fn to_quantity(self) -> Result<Quantity, StoreError> {
        match (u128::try_from(self.units), u128::try_from(self.fraction)) {
            (Ok(units), Ok(fraction)) => Ok(Quantity::from_parts(units, fraction)),
            _ => Err(StoreError::Corrupt(format!("negative quantity {self:?}"))),
        }
    }
}

/// SQL for the carried units and fraction of a sum whose units are `units` and fraction
/// `fraction` (both SQL expressions): the fraction's whole units move into the units. SQLite and
/// PostgreSQL evaluate it alike, in 64-bit integers.
pub(crate) fn carry_sql(units: &str, fraction: &str) -> (String, String) {
    (
        format!("{units} + {fraction} / {FRACTION_SCALE}"),
        format!("{fraction} % {FRACTION_SCALE}"),
    )
}

/// The dictionary keys a stored record refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DictionaryKeys {
    pub subscription: i32,
    pub meter: i32,
    pub instance: i64,
}

/// The columns of `usage_record`, in the order of [`StoredRecord`]'s values.
pub const RECORD_COLUMNS: &str = "id, event_key, content_hash, subscription_key, meter_key, \
     instance_key, usage_start, usage_end, qty_units, qty_frac";

/// A record as `usage_record` stores it: the one mapping from a record to its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub id: RecordId,
    /// The hash of the event id, unique: retries find their earlier copy by it.
    pub event_key: [u8; 16],
    /// The hash of everything else: equal under one event key means a retry, different a
    /// conflict.
    pub content_hash: i64,
    pub keys: DictionaryKeys,
    pub usage_start: UnixNanos,
    pub usage_end: UnixNanos,
    pub quantity: StoredQuantity,
}

impl StoredRecord {
    /// `record` stored as record `id` with dictionary keys `keys`.
    pub fn new(id: RecordId, record: &UsageRecord, keys: DictionaryKeys) -> StoredRecord {
        let content_hash = record.content_hash_with(&record.instance.fingerprint());
        StoredRecord::with_hashes(id, record, record.event_key(), content_hash, keys)
    }

    /// [`StoredRecord::new`] for a caller that has hashed the record already.
    pub(crate) fn with_hashes(
        id: RecordId,
        record: &UsageRecord,
        event_key: [u8; 16],
        content_hash: i64,
        keys: DictionaryKeys,
    ) -> StoredRecord {
        StoredRecord {
            id,
            event_key,
            content_hash,
            keys,
            usage_start: UnixNanos::of(record.usage_start),
            usage_end: UnixNanos::of(record.usage_end),
            quantity: StoredQuantity::of(record.quantity),
        }
    }

    /// The row's values, in [`RECORD_COLUMNS`] order.
    pub(crate) fn values(&self) -> [Value; 10] {
        [
            Value::BigInt(Some(self.id.stored())),
            Value::Bytes(Some(self.event_key.to_vec())),
            Value::BigInt(Some(self.content_hash)),
            Value::Int(Some(self.keys.subscription)),
            Value::Int(Some(self.keys.meter)),
            Value::BigInt(Some(self.keys.instance)),
            Value::BigInt(Some(self.usage_start.stored())),
            Value::BigInt(Some(self.usage_end.stored())),
            Value::BigInt(Some(self.quantity.units)),
            Value::BigInt(Some(self.quantity.fraction)),
        ]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use tally_core::InstanceData;
    use uuid::Uuid;

    use super::*;

    pub(crate) fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(crate) fn record(event_id: &str, quantity: &str) -> UsageRecord {
        UsageRecord {
            event_id: event_id.into(),
            subscription_id: Uuid::from_u128(1),
            meter_id: Uuid::from_u128(2),
            instance: InstanceData {
                resource_uri: "/subscriptions/x/vm".into(),
                location: "local".into(),
                tags: BTreeMap::from([("a".into(), "b".into())]),
                additional_info: BTreeMap::new(),
            },
            quantity: Quantity::parse(quantity).unwrap(),
            usage_start: utc("2026-11-27T12:00:00Z"),
            usage_end: utc("2026-11-27T13:00:00.5Z"),
        }
    }

    #[test]
    fn times_round_trip_in_their_unit() {
        let time = utc("2026-11-27T12:34:56.789012Z");
        let micros = UnixMicros::of(time);
        assert_eq!(micros.stored(), 1_795_782_896_789_012);
        assert_eq!(micros.to_utc(), time);
        assert_eq!(micros.whole_seconds(), 1_795_782_896);
        let nanos = UnixNanos::of(time);
        assert_eq!(nanos.stored(), 1_795_782_896_789_012_000);
        assert_eq!(nanos.to_utc(), time);
        assert_eq!(nanos.whole_seconds(), micros.whole_seconds());
        let hour = UnixSeconds::bucket_of(Granularity::Hourly, time);
        assert_eq!(hour.to_utc(), utc("2026-11-27T12:00:00Z"));
        assert_eq!(
            hour.next_bucket(Granularity::Hourly).to_utc(),
            utc("2026-11-27T13:00:00Z")
        );
        // Before the epoch, seconds round down.
        assert_eq!(UnixMicros::from_stored(-1).whole_seconds(), -1);
        assert_eq!(
            UnixMicros::from_stored(-1).to_utc(),
            utc("1969-12-31T23:59:59.999999Z")
        );
    }

    #[test]
    fn bucket_sql_divides_by_the_bucket_in_the_column_unit() {
        assert_eq!(
            UnixNanos::bucket_sql("r.usage_start", Granularity::Hourly),
            "(r.usage_start / 3600000000000) * 3600"
        );
        assert_eq!(
            UnixMicros::bucket_sql("b.reported_at", Granularity::Daily),
            "(b.reported_at / 86400000000) * 86400"
        );
    }

    #[test]
    fn record_ids_hold_batch_and_ordinal() {
        let id = RecordId::new(7, 9_999);
        assert_eq!(id.stored(), 7 * 16_384 + 9_999);
        assert!(RecordId::range_of_batch(7).contains(&id.stored()));
        assert!(!RecordId::range_of_batch(8).contains(&id.stored()));
        assert_eq!(
            RecordId::range_of_batch(8).start,
            RecordId::new(8, 0).stored()
        );
        assert_eq!(
            RecordId::in_batch_sql("r.id", "b.id"),
            "r.id >= b.id * 16384 AND r.id < (b.id + 1) * 16384"
        );
    }

    #[test]
    fn quantities_split_and_carry_exactly() {
        let q = Quantity::parse("123456789012345678.0000000001").unwrap();
        let stored = StoredQuantity::of(q);
        assert_eq!(
            stored,
            StoredQuantity {
                units: 123_456_789_012_345_678,
                fraction: 1
            }
        );
        assert_eq!(stored.to_quantity().unwrap(), q);

        // Three fractions of 0.6 add to 1.8: one unit carries.
        let parts: Vec<_> = ["1.6", "2.6", "0.6"]
            .iter()
            .map(|q| StoredQuantity::of(Quantity::parse(q).unwrap()))
            .collect();
        let sum = StoredQuantity {
            units: parts.iter().map(|p| p.units).sum(),
            fraction: parts.iter().map(|p| p.fraction).sum(),
        };
        // What carry_sql computes in the database.
        let scale = FRACTION_SCALE as i64;
        let carried = StoredQuantity {
            units: sum.units + sum.fraction / scale,
            fraction: sum.fraction % scale,
        };
        assert_eq!(
            carried,
            StoredQuantity {
                units: 4,
                fraction: 8_000_000_000
            }
        );
        // Carried or not, the quantity read back is the same.
        assert_eq!(carried.to_quantity().unwrap(), sum.to_quantity().unwrap());
        assert_eq!(carried.to_quantity().unwrap().to_string(), "4.8");
        assert!(
            StoredQuantity {
                units: -1,
                fraction: 0
            }
            .to_quantity()
            .is_err()
        );
    }

    #[test]
    fn carry_sql_is_the_carry() {
        assert_eq!(
            carry_sql("SUM(u)", "SUM(f)"),
            (
                "SUM(u) + SUM(f) / 10000000000".to_string(),
                "SUM(f) % 10000000000".to_string()
            )
        );
    }

    #[test]
    fn a_record_maps_to_its_row() {
        let record = record("e-1", "2.5");
        let keys = DictionaryKeys {
            subscription: 3,
            meter: 4,
            instance: 5,
        };
        let stored = StoredRecord::new(RecordId::new(1, 2), &record, keys);
        assert_eq!(stored.event_key, record.event_key());
        assert_eq!(stored.content_hash, record.content_hash());
        assert_eq!(stored.usage_end.to_utc(), record.usage_end);
        let values = stored.values();
        assert_eq!(values.len(), RECORD_COLUMNS.split(',').count());
        assert_eq!(values[0], Value::BigInt(Some(16_386)));
        assert_eq!(values[5], Value::BigInt(Some(5)));
        assert_eq!(values[8], Value::BigInt(Some(2)));
        assert_eq!(values[9], Value::BigInt(Some(5_000_000_000)));
    }
}
