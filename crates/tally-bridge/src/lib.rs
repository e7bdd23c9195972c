//! The usage bridge: turns local usage into charges. Once a reported day closes
//! (`complete_through` >= the next midnight) it seals the day once ([`seal`]): the DAILY rows of
//! chargeable meters, each with its billing subscription, in batches of at most 1000 with
//! deterministic ids, stored in its own tables before the first upload. The uploader
//! ([`upload`]) then delivers them oldest first to `tally.commerce.v1.CommerceIngestion`, at
//! least once; the receiver deduplicates by batch id, so each batch counts exactly once.
//!
//! It reaches usage and registration only through their contracts ([`UsageApi`],
//! [`RegistrationApi`]): in-process inside `tally serve`, over gRPC when run alone ([`serve`]).
//! [`Bridge`] implements [`tally_proto::bridge_api::BridgeApi`] for operators.

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

pub mod clock;
mod error;
mod seal;
mod service;
mod upload;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tally_proto::bridge_api::{BridgeApi, BridgeGrpc, BridgeServices};
use tally_proto::registration_api::{RegistrationApi, RegistrationClient};
use tally_proto::server::{Options, ServeError, Server};
use tally_proto::usage_api::{UsageApi, UsageClient};
use tokio::net::TcpListener;

pub use error::BridgeError;
pub use service::Bridge;

/// Where the bridge uploads to, and with which token.
#[derive(Clone, Debug)]
pub struct Commerce {
    /// The commerce endpoint, e.g. `http://127.0.0.1:50070`.
    pub endpoint: String,
    /// Sent as `authorization: Bearer <token>` with every upload.
    pub token: Option<String>,
}

impl Commerce {
    /// Checks the endpoint URL and reads the token file (trimmed), so a bad setting stops the
    /// bridge at start with a message that names it.
    pub fn from_flags(
        endpoint: &str,
        token_file: Option<&std::path::Path>,
    ) -> Result<Commerce, ServeError> {
        let uri: tonic::transport::Uri = endpoint.parse().map_err(|e| {
            ServeError::Config(format!(
                "--commerce-endpoint {endpoint:?} is not a URL: {e}"
            ))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(ServeError::Config(format!(
                "--commerce-endpoint {endpoint:?} must be an http:// or https:// URL with a host"
            )));
        }
        let token = match token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ServeError::Config(format!(
                        "--commerce-token-file {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(ServeError::Config(format!(
                        "--commerce-token-file {}: the file is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
        };
        Ok(Commerce {
            endpoint: endpoint.to_string(),
            token,
        })
    }
}

/// The bridge's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://...?mode=rwc` or `postgres://...`: the bridge's own tables.
    pub database_url: String,
    /// `None`: nothing is sealed or uploaded, and the state is `NotConfigured`.
    pub commerce: Option<Commerce>,
    /// How often the loop looks for closed days and pending batches (it also wakes when a manual
    /// clock moves).
    pub interval: Duration,
    /// The first retry after a transient error waits this long (real time) ...
    pub backoff_initial: Duration,
    /// ... doubling up to this.
    pub backoff_max: Duration,
    /// One upload may take this long before it counts as DEADLINE_EXCEEDED (transient).
    pub upload_timeout: Duration,
    /// How the gRPC server guards itself.
    pub server: Options,
    /// Run alone ([`serve`]): follow the `tally.clock.v1` service at this URL (e.g. an
    /// aggregator started with `--manual-clock`) instead of the real clock.
    pub clock_url: Option<String>,
}

impl Config {
    pub fn new(database_url: impl Into<String>, commerce: Option<Commerce>) -> Config {
        Config {
            database_url: database_url.into(),
            commerce,
            interval: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(30),
            server: Options::default(),
            clock_url: None,
        }
    }
}

/// Opens the bridge's database and serves UsageBridge on `listener` until `shutdown`
/// completes, calling the usage and registration services at their gRPC addresses and
/// sealing and uploading in the background meanwhile. With `config.clock_url` it first waits
/// until that clock answers.
pub async fn serve(
    config: Config,
    usage_url: &str,
    registration_url: &str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let peer = |url: &str, source| ServeError::PeerAddress {
        url: url.to_string(),
        source,
    };
    let usage: Arc<dyn UsageApi> =
        Arc::new(UsageClient::connect_lazy(usage_url).map_err(|e| peer(usage_url, e))?);
    let registration: Arc<dyn RegistrationApi> = Arc::new(
        RegistrationClient::connect_lazy(registration_url)
            .map_err(|e| peer(registration_url, e))?,
    );
    let clock: Arc<dyn tally_core::Clock> = match &config.clock_url {
        Some(url) => clock::follow(url, clock::FOLLOW_INTERVAL).await?,
        None => Arc::new(tally_core::SystemClock),
    };
    let bridge = Arc::new(Bridge::open(config, usage, registration, clock).await?);
    serve_bridge(bridge, listener, shutdown).await
}

/// Serves an already opened bridge, with its loop running beside the server.
pub async fn serve_bridge(
    bridge: Arc<Bridge>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let worker = bridge.start();
    let options = bridge.config().server.clone();
    let mut server = Server::new(
        "tally-bridge",
        BridgeServices::<dyn BridgeApi>::NAMES,
        bridge.clone(),
    );
    BridgeGrpc::services(bridge).add_to(server.routes());
    let result = server.serve(listener, shutdown, &options).await;
    worker.stop().await;
    result
}
