//! What every Tally gRPC server shares: health, reflection (v1 for grpcurl, v1alpha for Postman
//! and grpcui) over Tally's and the health service's descriptors, the way it serves, the one
//! error a service's `serve` returns, and background loops that stop with the server.

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

/// Why a service's `serve` failed. Every service returns this one type, so the binaries report
/// them alike.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open {what}: {source}")]
    Open {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid peer address {url:?}: {source}")]
    PeerAddress {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl ServeError {
    /// `what` (a database, a key file, ...) could not be opened.
    pub fn open(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ServeError::Open {
            what,
            source: Box::new(source),
        }
    }
}

/// A loop that runs beside a server (the folder, the bridge's uploader, ...) until stopped.
pub struct Background {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Spawns `run`, handing it a future that completes when [`Background::stop`] is called.
    pub fn spawn<F>(run: impl FnOnce(BoxFuture) -> F) -> Background
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        Background { stop, task }
    }

    /// Asks the loop to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The stop signal a [`Background`] loop receives.
pub type BoxFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Paces a background loop: wakes it every `interval` of real time, and at once when a manual
/// clock moves, so simulated days close in seconds.
pub struct Ticker {
    interval: std::time::Duration,
    moved: std::sync::Arc<tokio::sync::Notify>,
}

impl Ticker {
    pub fn new(clock: &dyn tally_core::Clock, interval: std::time::Duration) -> Ticker {
        let moved = std::sync::Arc::new(tokio::sync::Notify::new());
        if let Some(manual) = clock.manual() {
            let wake = moved.clone();
            manual.watch(Box::new(move |_| wake.notify_one()));
        }
        Ticker { interval, moved }
    }

    /// Completes after `interval`, or as soon as the clock moves.
    pub async fn tick(&self) {
        tokio::select! {
            _ = tokio::time::sleep(self.interval) => {}
            _ = self.moved.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Ticker;

    #[tokio::test]
    async fn a_ticker_wakes_when_a_manual_clock_moves() {
        let clock = tally_core::ManualClock::new(chrono::Utc::now());
        let ticker = Ticker::new(&clock, Duration::from_secs(3_600));
        let waiting = tokio::spawn(async move { ticker.tick().await });
        clock.advance(chrono::Duration::hours(1));
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("woken by the clock, not by the hour-long interval")
            .expect("the tick task ran");
    }
}
