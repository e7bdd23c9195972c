//! The usage service (aggregator): accepts usage records from resource providers, folds them
//! hourly and daily into the usage database, and answers the provider and tenant usage queries.
//!
//! [`Aggregator`] implements [`tally_proto::usage_api::UsageApi`]; [`serve`] runs it as a gRPC
//! server, and `tally serve` hands the same object to the gateway in-process.

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

mod error;
mod folder;
mod service;
pub mod token;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tally_proto::clock_api::{ClockApi, ClockGrpc, ClockServices};
use tally_proto::server::{Options, ServeError, Server};
use tally_proto::usage_api::{UsageApi, UsageGrpc, UsageServices};
use tokio::net::TcpListener;

pub use error::UsageError;
pub use service::Aggregator;

/// The aggregator's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://...?mode=rwc` or `postgres://...`.
    pub database_url: String,
    /// How often the folder looks for unfolded batches.
    pub fold_interval: Duration,
    /// Records folded per fold transaction, at most (a batch is never split).
    pub fold_max_records: u64,
    /// Bytes of posted batches (as encoded) being stored at once, at most; a batch beyond it is
    /// refused with RESOURCE_EXHAUSTED / `TooManyRequests`, never queued. At least
    /// `MAX_BATCH_BYTES`, so any valid batch fits when nothing else is stored.
    pub ingest_budget_bytes: usize,
    /// How the gRPC server guards itself.
    pub server: Options,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            fold_interval: Duration::from_millis(250),
            fold_max_records: 100_000,
            ingest_budget_bytes: 256 << 20,
            server: Options::default(),
        }
    }
}

/// Opens the usage database and serves the usage contract on `listener` until `shutdown`
/// completes; folds in the background meanwhile.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let aggregator = Arc::new(
        Aggregator::open(&config, Arc::new(tally_core::SystemClock))
            .await
            .map_err(|e| ServeError::open("the usage database", e))?,
    );
    serve_aggregator(aggregator, listener, shutdown).await
}

/// Serves an already opened aggregator (tests inject clocks this way).
pub async fn serve_aggregator(
    aggregator: Arc<Aggregator>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_services(aggregator, None, listener, shutdown).await
}

/// Serves an already opened aggregator and, beside it, the clock it runs on
/// (`tally aggregator --manual-clock`): peers such as a bridge run alone follow it, and
/// AdvanceClock moves it.
pub async fn serve_aggregator_with_clock(
    aggregator: Arc<Aggregator>,
    clock: Arc<dyn ClockApi>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_services(aggregator, Some(clock), listener, shutdown).await
}

async fn serve_services(
    aggregator: Arc<Aggregator>,
    clock: Option<Arc<dyn ClockApi>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let folder = aggregator.start_folder();
    let options = aggregator.config.server.clone();
    let mut names = UsageServices::<dyn UsageApi>::NAMES.to_vec();
    if clock.is_some() {
        names.extend(ClockServices::<dyn ClockApi>::NAMES);
    }
    let mut server = Server::new("tally-aggregator", &names, aggregator.clone());
    UsageGrpc::services(aggregator).add_to(server.routes());
    if let Some(clock) = clock {
        ClockGrpc::services(clock).add_to(server.routes());
    }
    let result = server.serve(listener, shutdown, &options).await;
    folder.stop().await;
    result
}
