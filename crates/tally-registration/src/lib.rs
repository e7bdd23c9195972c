//! The registration and tenancy service: the installation's registration with its upstream
//! commerce system, directory tenants, user subscriptions and CSP customer mappings.
//!
//! This release serves health and reflection only; the contract's Registration and Tenancy
//! services are described in `proto/tally/registration/v1` and land with their storage.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the registration service on `listener` until `shutdown` completes.
pub async fn serve(
    _config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (_health, health_service) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(tally_proto::server::reflection_v1())
        .add_service(tally_proto::server::reflection_v1alpha())
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
