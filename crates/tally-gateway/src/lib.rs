//! The gateway: Tally's public front door. It serves the usage contract (and, as they land, the
//! registration contract and the Azure-compatible REST surface) by calling the services behind
//! it through their Rust traits: in-process inside `tally serve`, over gRPC when deployed apart.

use std::future::Future;
use std::sync::Arc;

use tally_proto::usage_api::{UsageApi, UsageClient, UsageGrpc};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// Where the gateway finds the services behind it, when they run apart.
#[derive(Clone, Debug)]
pub struct Config {
    /// The aggregator's gRPC address, e.g. `http://127.0.0.1:50052`.
    pub aggregator_url: String,
}

/// The services behind the gateway, in-process or remote.
#[derive(Clone)]
pub struct Backends {
    pub usage: Arc<dyn UsageApi>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid peer address {url:?}: {source}")]
    PeerAddress {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the gateway on `listener`, calling the services at `config`'s addresses.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let usage = UsageClient::connect_lazy(&config.aggregator_url).map_err(|source| {
        ServeError::PeerAddress {
            url: config.aggregator_url.clone(),
            source,
        }
    })?;
    serve_backends(
        Backends {
            usage: Arc::new(usage),
        },
        listener,
        shutdown,
    )
    .await
}

/// Serves the gateway on `listener` in front of `backends`.
pub async fn serve_backends(
    backends: Backends,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let usage = UsageGrpc::services(backends.usage);
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in tally_proto::usage_api::SERVICE_NAMES {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(tally_proto::server::reflection_v1())
        .add_service(tally_proto::server::reflection_v1alpha())
        .add_service(usage.ingestion)
        .add_service(usage.provider)
        .add_service(usage.tenant)
        .add_service(usage.admin)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
