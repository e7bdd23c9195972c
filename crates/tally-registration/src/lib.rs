//! The registration and tenancy service: the installation's registration with its upstream
//! commerce system (billing model, usage reporting, multi-tenancy), directory tenants, user
//! subscriptions (owner tenant, optional delegated provider, soft deletion) and CSP customer
//! mappings, with the billing subscription each tenant's usage goes to.
//!
//! [`RegistrationService`] implements [`tally_proto::registration_api::RegistrationApi`]; [`serve`]
//! runs it as a gRPC server and `tally serve` hands it to the gateway in-process.

mod error;
mod service;

use std::future::Future;
use std::sync::Arc;

use tally_proto::registration_api::RegistrationGrpc;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use error::RegistrationError;
pub use service::RegistrationService;

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the registration database: {0}")]
    Store(#[from] tally_store::StoreError),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Opens the registration database and serves the registration contract on `listener` until
/// `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let service = Arc::new(RegistrationService::open(&config.database_url).await?);
    serve_service(service, listener, shutdown).await
}

/// Serves an already opened registration service.
pub async fn serve_service(
    service: Arc<RegistrationService>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let services = RegistrationGrpc::services(service);
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in tally_proto::registration_api::SERVICE_NAMES {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(tally_proto::server::reflection_v1())
        .add_service(tally_proto::server::reflection_v1alpha())
        .add_service(services.registration)
        .add_service(services.tenancy)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
