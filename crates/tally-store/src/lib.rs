//! Tally's storage layer: sea-orm over SQLite (the embedded default) and PostgreSQL (production
//! and scale-out). Each service opens its own [`Database`] and owns its tables; nothing here reads
//! another service's tables.
//!
//! Architecture invariant: storage types never leave this crate. Callers pass and receive
//! `tally-core` values and the plain result structs defined here. (The exceptions are for the
//! benchmark, which measures the database itself: the connection settings, [`sqlite_options`]
//! and [`postgres_options`], and the stored row, [`usage::StoredRecord`].)

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

pub mod billing;
pub mod bridge;
mod db;
mod error;
mod guid;
pub mod receiver;
pub mod registration;
pub mod scratch;
mod sql;
pub mod usage;

pub use billing::BillingStore;
pub use bridge::BridgeStore;
pub use db::{Backend, Database, postgres_options, sqlite_options};
pub use error::StoreError;
pub use receiver::ReceiverStore;
pub use registration::RegistrationStore;
pub use usage::UsageStore;
