//! Tally's storage layer: sea-orm over SQLite (the embedded default) and PostgreSQL (production
//! and scale-out). Each service opens its own [`Database`] and owns its tables; nothing here reads
//! another service's tables.
//!
//! Architecture invariant: storage types never leave this crate. Callers pass and receive
//! `tally-core` values and the plain result structs defined here.

mod db;
mod error;
pub mod registration;
mod sql;
pub mod usage;

pub use db::{Backend, Database};
pub use error::StoreError;
pub use registration::RegistrationStore;
pub use usage::UsageStore;
