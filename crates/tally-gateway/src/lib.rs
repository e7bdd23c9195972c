//! The gateway: Tally's public front door. On one listener it serves the usage and registration
//! contracts over gRPC (with health and reflection), the Azure-compatible REST surface and the
//! web portal ([`portal`]), and puts access control in front of all of it: a tower layer
//! ([`http`]) authenticates every request with a token ([`auth`]) and attaches its
//! [`Principal`]; guards ([`guard`]) authorize
//! each call before it reaches the services behind, which they call through their Rust traits:
//! in-process inside `tally serve`, over gRPC when deployed apart.
//!
//! Modules depend one way: `principal` <- `auth`, `guard` <- `rest` <- `http` <- this file;
//! `portal` (static files) depends on none of them.

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

pub mod auth;
mod clock;
mod guard;
mod http;
mod portal;
mod principal;
mod rest;

use std::future::Future;
use std::sync::Arc;

use tally_proto::billing_api::{BillingApi, BillingClient, BillingGrpc, BillingServices};
use tally_proto::bridge_api::{BridgeApi, BridgeClient, BridgeGrpc, BridgeServices};
use tally_proto::clock_api::{ClockApi, ClockGrpc, ClockServices};
use tally_proto::registration_api::{
    RegistrationApi, RegistrationClient, RegistrationGrpc, RegistrationServices,
};
use tally_proto::server::{AllReady, Options, PeerHealth, Readiness, ServeError, Server};
use tally_proto::usage_api::{UsageApi, UsageClient, UsageGrpc, UsageServices};
use tokio::net::TcpListener;

pub use auth::{AuthConfig, Claims};
pub use clock::ProcessClock;
pub use guard::{OWNERSHIP_TTL, OwnershipCache};
pub use principal::{Grants, Principal, Role};
pub use rest::{ReportedTimes, RestProbe, RestRefusal, probe_request};

/// Where the gateway finds the services behind it, when they run apart, and which tokens it
/// accepts.
#[derive(Clone, Debug)]
pub struct Config {
    /// The aggregator's gRPC address, e.g. `http://127.0.0.1:50052`.
    pub aggregator_url: String,
    /// The registration service's gRPC address, e.g. `http://127.0.0.1:50053`.
    pub registration_url: String,
    /// The usage bridge's gRPC address, e.g. `http://127.0.0.1:50054`.
    pub bridge_url: String,
    /// The billing service's gRPC address, if this gateway fronts one.
    pub billing_url: Option<String>,
    pub auth: AuthConfig,
    /// How the gateway's server guards itself (limits, TLS).
    pub server: Options,
    /// How long ownership learned from the registration service is trusted.
    pub ownership_ttl: std::time::Duration,
}

/// The services behind the gateway, in-process or remote.
#[derive(Clone)]
pub struct Backends {
    pub usage: Arc<dyn UsageApi>,
    pub registration: Arc<dyn RegistrationApi>,
    pub clock: Arc<dyn ClockApi>,
    /// The billing service, when this gateway fronts one (`tally serve` does).
    pub billing: Option<Arc<dyn BillingApi>>,
    pub bridge: Arc<dyn BridgeApi>,
    /// Whether the services behind answer: the gateway is ready (`/readyz`, gRPC health) only
    /// while this passes. In one process, the services themselves; apart, their gRPC health.
    pub readiness: Arc<dyn Readiness>,
    /// How long ownership answers are trusted: until the in-process registration service
    /// reports a change, or a TTL when it runs apart.
    pub ownership: OwnershipCache,
}

/// Serves the gateway on `listener`, calling the services at `config`'s addresses.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let peer = |url: &String, source| ServeError::PeerAddress {
        url: url.clone(),
        source,
    };
    let usage = UsageClient::connect_lazy(&config.aggregator_url)
        .map_err(|e| peer(&config.aggregator_url, e))?;
    let registration = RegistrationClient::connect_lazy(&config.registration_url)
        .map_err(|e| peer(&config.registration_url, e))?;
    let bridge =
        BridgeClient::connect_lazy(&config.bridge_url).map_err(|e| peer(&config.bridge_url, e))?;
    let peer_health = |url: &String| {
        PeerHealth::connect_lazy(url)
            .map(|p| Arc::new(p) as Arc<dyn Readiness>)
            .map_err(|e| peer(url, e))
    };
    let mut peers = vec![
        ("aggregator", peer_health(&config.aggregator_url)?),
        ("registration", peer_health(&config.registration_url)?),
    ];
    let billing = match &config.billing_url {
        Some(url) => {
            peers.push(("billing", peer_health(url)?));
            let client = BillingClient::connect_lazy(url).map_err(|e| peer(url, e))?;
            Some(Arc::new(client) as Arc<dyn BillingApi>)
        }
        None => None,
    };
    let readiness = AllReady(peers);
    let backends = Backends {
        usage: Arc::new(usage),
        registration: Arc::new(registration),
        clock: Arc::new(ProcessClock::new(Arc::new(tally_core::SystemClock))),
        billing,
        bridge: Arc::new(bridge),
        readiness: Arc::new(readiness),
        ownership: OwnershipCache::For(config.ownership_ttl),
    };
    serve_backends(backends, config.auth, &config.server, listener, shutdown).await
}

/// Serves the gateway on `listener` in front of `backends`.
pub async fn serve_backends(
    backends: Backends,
    auth: AuthConfig,
    options: &Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let verifier = Arc::new(
        auth::Verifier::new(&auth).map_err(|e| ServeError::Config(format!("tokens: {e}")))?,
    );
    let ownership = Arc::new(guard::Ownership::new(
        backends.registration.clone(),
        backends.ownership,
    ));
    let usage = Arc::new(guard::GuardedUsage::new(backends.usage, ownership.clone()));
    let registration = Arc::new(guard::GuardedRegistration::new(
        backends.registration,
        ownership,
    ));
    let clock = Arc::new(guard::GuardedClock::new(backends.clock));
    let billing: Option<Arc<dyn BillingApi>> = backends
        .billing
        .map(|b| Arc::new(guard::GuardedBilling::new(b)) as Arc<dyn BillingApi>);
    let bridge = Arc::new(guard::GuardedBridge::new(backends.bridge));
    let rest = Arc::new(rest::RestState::new(
        usage.clone(),
        registration.clone(),
        clock.clone(),
        billing.clone(),
        bridge.clone(),
    ));

    let serving: Vec<&'static str> = UsageServices::<dyn UsageApi>::NAMES
        .iter()
        .chain(RegistrationServices::<dyn RegistrationApi>::NAMES)
        .chain(ClockServices::<dyn ClockApi>::NAMES)
        .chain(if billing.is_some() {
            BillingServices::<dyn BillingApi>::NAMES
        } else {
            &[]
        })
        .chain(BridgeServices::<dyn BridgeApi>::NAMES)
        .copied()
        .collect();
    let mut server = Server::new("tally-gateway", &serving, backends.readiness);
    UsageGrpc::services(usage).add_to(server.routes());
    RegistrationGrpc::services(registration).add_to(server.routes());
    ClockGrpc::services(clock).add_to(server.routes());
    if let Some(billing) = billing {
        BillingGrpc::services(billing).add_to(server.routes());
    }
    BridgeGrpc::services(bridge).add_to(server.routes());
    server
        .serve_with(listener, shutdown, options, |router| {
            router
                .merge(portal::routes())
                .fallback_service(axum::routing::any(http::fallback).with_state(rest))
                .layer(axum::middleware::from_fn_with_state(
                    verifier,
                    http::authenticate,
                ))
        })
        .await
}
