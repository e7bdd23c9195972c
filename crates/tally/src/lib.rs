//! The `tally` command and the thin per-service binaries: argument parsing, logging, signals,
//! and wiring the service libraries together. Everything of substance lives in the libraries.

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

pub mod cli;
// The demo is a one-off CLI tour over data it just wrote, not a request path.
#[allow(clippy::indexing_slicing)]
mod demo;
mod export;
mod keys;
mod run;
mod serve;
mod telemetry;

pub use run::{run, run_service};
