//! What every Tally gRPC server shares: health, reflection (v1 for grpcurl, v1alpha for Postman
//! and grpcui) over Tally's and the health service's descriptors, and the way it serves.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic_reflection::server::{v1, v1alpha};

pub fn reflection_v1() -> v1::ServerReflectionServer<impl v1::ServerReflection> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid")
}

pub fn reflection_v1alpha() -> v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid")
}

/// Routes holding health (reporting `serving` as SERVING) and both reflection services; a
/// server adds its own services to them.
pub async fn standard_routes(serving: &[&str]) -> RoutesBuilder {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in serving {
        health
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let mut routes = Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection_v1())
        .add_service(reflection_v1alpha());
    routes
}

/// Serves `routes` on `listener` until `shutdown` completes. `accept_http1` lets REST share the
/// listener with gRPC.
pub async fn serve(
    routes: Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    accept_http1: bool,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .accept_http1(accept_http1)
        // Batches are large: let a stream's next batches arrive while this one is stored.
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// A channel to a peer service that connects on first use and reconnects after failures, so a
/// service can start before its peers do.
pub fn lazy_channel(url: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// A peer's failure as the caller sees it: a transport failure (no ErrorInfo of ours) is the
/// contract's retryable ServiceUnavailable; anything else passes through.
pub fn remote<T>(service: &str, result: crate::usage_api::Rpc<T>) -> crate::usage_api::Rpc<T> {
    result.map_err(|s| match (crate::status::reason(&s), s.code()) {
        (None, tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled) => {
            tracing::warn!(error = %s, service, "peer call failed");
            crate::status::unavailable(service)
        }
        _ => s,
    })
}
