//! The billing service (chargeback): versioned, immutable price sheets; exact rating of HOURLY
//! usage rows at the price in force at their usage hour; monthly statements over the usage
//! reported in a UTC month, final and stored once when the month closes; adjustments.
//!
//! It owns its tables (`billing_*`, its own migrator), reads usage only through
//! [`UsageApi`] and tenancy only through [`RegistrationApi`], and follows
//! [`tally_core::Clock`]. [`Billing`] implements [`BillingApi`]; [`serve`] runs it as a gRPC
//! server; `tally serve` hands the same object to the gateway in-process. Exports are built from
//! [`Billing::rated_rows`].

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

mod api;
mod error;
mod export;
pub mod money;
pub mod period;
pub mod rating;
mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tally_proto::billing_api::{BillingApi, BillingGrpc, BillingServices};
use tally_proto::registration_api::{RegistrationApi, RegistrationClient};
use tally_proto::server::{Options, ServeError, Server, Ticker};
use tally_proto::usage_api::{UsageApi, UsageClient};
use tokio::net::TcpListener;

pub use error::BillingError;
pub use service::{Billing, RatedRow, RatedRows};

/// The billing service's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://...?mode=rwc` or `postgres://...`.
    pub database_url: String,
    /// The usage service (`http://host:port`), read through the usage contract.
    pub usage_url: String,
    /// The registration service, read through the registration contract for subscription owners.
    pub registration_url: String,
    /// How often the closer looks for a month that has become complete (it also wakes when a
    /// manual clock moves).
    pub close_interval: Duration,
    /// How the gRPC server guards itself.
    pub server: Options,
}

impl Config {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            usage_url: "http://127.0.0.1:50052".into(),
            registration_url: "http://127.0.0.1:50053".into(),
            close_interval: Duration::from_secs(30),
            server: Options::default(),
        }
    }
}

/// Opens the billing database and serves the billing contract on `listener` until `shutdown`
/// completes, reading usage and tenancy from the peers the config names.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let usage: Arc<dyn UsageApi> = Arc::new(
        UsageClient::connect_lazy(&config.usage_url)
            .map_err(|e| ServeError::open("the usage service address", e))?,
    );
    let registration: Arc<dyn RegistrationApi> = Arc::new(
        RegistrationClient::connect_lazy(&config.registration_url)
            .map_err(|e| ServeError::open("the registration service address", e))?,
    );
    let billing = Arc::new(
        Billing::open(
            &config,
            usage,
            registration,
            Arc::new(tally_core::SystemClock),
        )
        .await
        .map_err(|e| ServeError::open("the billing database", e))?,
    );
    serve_billing(billing, listener, shutdown).await
}

/// Serves an already opened billing service (tests inject clocks this way).
pub async fn serve_billing(
    billing: Arc<Billing>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let closer = billing.start_closer();
    let options = billing.config.server.clone();
    let mut server = Server::new(
        "tally-billing",
        BillingServices::<dyn BillingApi>::NAMES,
        billing.clone(),
    );
    BillingGrpc::services(billing).add_to(server.routes());
    let result = server.serve(listener, shutdown, &options).await;
    closer.abort();
    result
}

impl Billing {
    /// Stores the final statements of each month as soon as it completes (complete_through >=
    /// its end), so that they are fixed at that moment; reads close a month too if they come
    /// first. Stopped by aborting the handle.
    pub fn start_closer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let billing = self.clone();
        let mut ticker = Ticker::new(billing.clock.as_ref(), billing.config.close_interval);
        tokio::spawn(async move {
            loop {
                if let Err(e) = billing.close_completed().await {
                    tracing::warn!(error = %e, "closing a billing period failed; retrying");
                }
                ticker.tick().await;
            }
        })
    }
}
