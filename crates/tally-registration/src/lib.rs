//! The registration and tenancy service: the installation's registration with its upstream
//! commerce system (billing model, usage reporting, multi-tenancy), directory tenants, user
//! subscriptions (owner tenant, optional delegated provider, soft deletion) and CSP customer
//! mappings, with the billing subscription each tenant's usage goes to.
//!
//! [`RegistrationService`] implements [`tally_proto::registration_api::RegistrationApi`]; [`serve`]
//! runs it as a gRPC server and `tally serve` hands it to the gateway in-process.

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
mod service;

use std::future::Future;
use std::sync::Arc;

use tally_proto::registration_api::{RegistrationApi, RegistrationGrpc, RegistrationServices};
use tally_proto::server::{Options, ServeError, Server};
use tokio::net::TcpListener;

pub use error::RegistrationError;
pub use service::RegistrationService;

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    /// How the gRPC server guards itself.
    pub server: Options,
}

/// Opens the registration database and serves the registration contract on `listener` until
/// `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let service = Arc::new(
        RegistrationService::open(&config.database_url)
            .await
            .map_err(|e| ServeError::open("the registration database", e))?,
    );
    serve_service(service, listener, shutdown, &config.server).await
}

/// Serves an already opened registration service.
pub async fn serve_service(
    service: Arc<RegistrationService>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: &Options,
) -> Result<(), ServeError> {
    let mut server = Server::new(
        "tally-registration",
        RegistrationServices::<dyn RegistrationApi>::NAMES,
        service.clone(),
    );
    RegistrationGrpc::services(service).add_to(server.routes());
    server.serve(listener, shutdown, options).await
}
