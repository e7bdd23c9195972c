//! Tally's pure domain: the meter catalog, exact quantities, usage records and their validation,
//! UTC buckets, reported windows and the contract's error reasons.
//!
//! Architecture invariant: nothing here does I/O, knows protobuf, HTTP or a database. Inputs arrive
//! as plain Rust values from the edges; outputs are plain values or typed errors.

// Request paths never panic: errors are typed. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod error;
pub mod guid;
pub mod meter;
pub mod quantity;
pub mod record;
pub mod registration;
pub mod time;

pub use error::{FieldViolation, Reason, Rejection, StatusClass};
pub use guid::{format_guid, guid_field, optional_guid_field, parse_guid};
pub use meter::{Meter, MeterCatalog};
pub use quantity::Quantity;
pub use record::{InstanceData, UsageRecord, UsageRecordInput, ValidBatch, validate_batch};
pub use time::{
    Clock, ClockWatcher, Granularity, ManualClock, RawTimestamp, ReportedWindow, SystemClock,
    WindowFields,
};
