//! The `tally` command and the thin per-service binaries: argument parsing, logging, signals,
//! and wiring the service libraries together. Everything of substance lives in the libraries.

pub mod cli;
mod demo;
mod export;
mod keys;
mod run;
mod serve;
mod telemetry;

pub use run::{run, run_service};
