//! The gateway: Tally's public front door. On one listener it serves the usage and registration
//! contracts over gRPC (with health and reflection) and the Azure-compatible REST surface, and
//! puts access control in front of all of it: a tower layer ([`http`]) authenticates every
//! request with a token ([`auth`]) and attaches its [`Principal`]; guards ([`guard`]) authorize
//! each call before it reaches the services behind, which they call through their Rust traits:
//! in-process inside `tally serve`, over gRPC when deployed apart.
//!
//! Modules depend one way: `principal` <- `auth`, `guard` <- `rest` <- `http` <- this file.

pub mod auth;
mod guard;
mod http;
mod principal;
mod rest;

use std::future::Future;
use std::sync::Arc;

use tally_proto::registration_api::{RegistrationApi, RegistrationClient, RegistrationGrpc};
use tally_proto::usage_api::{UsageApi, UsageClient, UsageGrpc};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use auth::{AuthConfig, Claims};
pub use guard::OWNERSHIP_TTL;
pub use principal::{Grants, Principal, Role};

/// Where the gateway finds the services behind it, when they run apart, and which tokens it
/// accepts.
#[derive(Clone, Debug)]
pub struct Config {
    /// The aggregator's gRPC address, e.g. `http://127.0.0.1:50052`.
    pub aggregator_url: String,
    /// The registration service's gRPC address, e.g. `http://127.0.0.1:50053`.
    pub registration_url: String,
    pub auth: AuthConfig,
}

/// The services behind the gateway, in-process or remote.
#[derive(Clone)]
pub struct Backends {
    pub usage: Arc<dyn UsageApi>,
    pub registration: Arc<dyn RegistrationApi>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid peer address {url:?}: {source}")]
    PeerAddress {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("invalid token configuration: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
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
    let backends = Backends {
        usage: Arc::new(usage),
        registration: Arc::new(registration),
    };
    serve_backends(backends, config.auth, listener, shutdown).await
}

/// Serves the gateway on `listener` in front of `backends`.
pub async fn serve_backends(
    backends: Backends,
    auth: AuthConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let verifier = Arc::new(auth::Verifier::new(&auth)?);
    let ownership = Arc::new(guard::Ownership::new(backends.registration.clone()));
    let usage = Arc::new(guard::GuardedUsage::new(backends.usage, ownership.clone()));
    let registration = Arc::new(guard::GuardedRegistration::new(
        backends.registration,
        ownership,
    ));
    let rest = Arc::new(rest::RestState::new(usage.clone(), registration.clone()));

    let usage = UsageGrpc::services(usage);
    let registration = RegistrationGrpc::services(registration);
    let serving: Vec<&str> = tally_proto::usage_api::SERVICE_NAMES
        .iter()
        .chain(&tally_proto::registration_api::SERVICE_NAMES)
        .copied()
        .collect();
    let mut grpc = tally_proto::server::standard_routes(&serving).await;
    grpc.add_service(usage.ingestion)
        .add_service(usage.provider)
        .add_service(usage.tenant)
        .add_service(usage.admin)
        .add_service(registration.registration)
        .add_service(registration.tenancy);
    let router = grpc
        .routes()
        .into_axum_router()
        .fallback_service(axum::routing::any(http::fallback).with_state(rest))
        .layer(axum::middleware::from_fn_with_state(
            verifier,
            http::authenticate,
        ));
    tally_proto::server::serve(Routes::from(router), listener, shutdown, true).await?;
    Ok(())
}
