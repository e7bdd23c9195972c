//! What every Tally server shares ([`Server`]): gRPC health that follows the service's
//! readiness, reflection (v1 for grpcurl, v1alpha for Postman and grpcui) over Tally's and the
//! health service's descriptors, the operations endpoints (`/healthz`, `/readyz`, `/metrics`),
//! limits on load, metrics and a tracing span per request, TLS; the one error a service's
//! `serve` returns, and background loops that stop with the server.

mod body;
mod health;
mod limits;
mod listener;
mod observe;
mod operations;
mod panics;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};
use tonic_reflection::server::{v1, v1alpha};

use health::Health;
pub use health::{AllReady, PeerHealth, Readiness};
pub use limits::Limits;
pub use listener::{OverTls, Tls};
pub use operations::serve_metrics;

/// Reflection over Tally's and health's descriptor sets; `None` only if the sets embedded at
/// build time were invalid (a unit test builds both).
pub fn reflection_v1() -> Option<v1::ServerReflectionServer<impl v1::ServerReflection>> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .ok()
}

/// Reflection over Tally's and health's descriptor sets; `None` only if the sets embedded at
/// build time were invalid (a unit test builds both).
pub fn reflection_v1alpha()
-> Option<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .ok()
}

/// How a server guards itself: its limits, and TLS when configured.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    /// Serve gRPC and HTTP over TLS on the listener (both HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<Tls>,
}

/// One server of a Tally service: its gRPC services (with health and reflection), the
/// operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the readiness probe behind
/// them and behind gRPC health. Every service's `serve` is one of these:
///
/// ```ignore
/// let mut server = Server::new("tally-aggregator", UsageServices::<dyn UsageApi>::NAMES, readiness);
/// UsageGrpc::services(aggregator).add_to(server.routes());
/// server.serve(listener, shutdown, &options).await?;
/// ```
pub struct Server {
    name: &'static str,
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    readiness: Arc<dyn Readiness>,
}

impl Server {
    /// A server called `name` (in logs and metrics) whose health reports `services`, SERVING
    /// while `readiness` passes and NOT_SERVING while it fails.
    pub fn new(
        name: &'static str,
        services: &[&'static str],
        readiness: Arc<dyn Readiness>,
    ) -> Server {
        let mut routes = Routes::builder();
        if let Some(v1) = reflection_v1() {
            routes.add_service(v1);
        }
        if let Some(v1alpha) = reflection_v1alpha() {
            routes.add_service(v1alpha);
        }
        Server {
            name,
            routes,
            services: services.to_vec(),
            readiness,
        }
    }

    /// Where the service adds its own gRPC services.
    pub fn routes(&mut self) -> &mut RoutesBuilder {
        &mut self.routes
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        options: &Options,
    ) -> Result<(), ServeError> {
        self.serve_with(listener, shutdown, options, |router| router)
            .await
    }

    /// Serves until `shutdown` completes, with `wrap` adding routes and layers (the gateway's
    /// REST fallback and authentication) around the gRPC and operations routes. The limits,
    /// metrics and tracing layers sit outside whatever `wrap` adds.
    pub async fn serve_with(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        options: &Options,
        wrap: impl FnOnce(axum::Router) -> axum::Router,
    ) -> Result<(), ServeError> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        self.routes.add_service(health_service);
        let health = Health::new(self.name, &self.services, self.readiness, reporter);
        // Known before the first request: the first probe runs before the listener is served.
        let _ = health.update().await;
        let watcher = health.clone().watch();
        let router = wrap(operations::routes(
            self.routes.routes().into_axum_router(),
            health,
        ));
        // Innermost of the server's own layers: a panic is answered before limits and metrics
        // see the response, so the permit is returned and the call is counted as INTERNAL.
        let router = panics::layer(router, self.name);
        let router = match options.tls {
            Some(_) => router.layer(axum::middleware::from_fn(listener::mark_over_tls)),
            None => router,
        };
        let router = limits::layer(router, self.name, &options.limits);
        let router = observe::layer(router, self.name, self.services);
        let incoming = listener::incoming(listener, options.tls.clone(), &options.limits);
        let served = tonic::transport::Server::builder()
            .accept_http1(true)
            .max_concurrent_streams(Some(options.limits.max_streams_per_connection))
            // Batches are large: let a stream's next batches arrive while this one is stored.
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .add_routes(Routes::from(router))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        watcher.stop().await;
        Ok(served?)
    }
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
/// clock moves, so simulated days close in seconds. The first tick comes one interval after
/// start-up (loops do their first pass before waiting). Ticks keep a fixed cadence, counted from
/// the previous tick rather than from the end of the pass, so a pass's own time does not delay
/// the next one; a pass longer than the interval is followed at once by the next.
pub struct Ticker {
    interval: tokio::time::Interval,
    moved: std::sync::Arc<tokio::sync::Notify>,
}

impl Ticker {
    pub fn new(clock: &dyn tally_core::Clock, interval: std::time::Duration) -> Ticker {
        let moved = std::sync::Arc::new(tokio::sync::Notify::new());
        if let Some(manual) = clock.manual() {
            let wake = moved.clone();
            manual.watch(Box::new(move |_| wake.notify_one()));
        }
        // tokio refuses a zero period.
        let period = interval.max(std::time::Duration::from_millis(1));
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticker { interval, moved }
    }

    /// Completes at the next tick, or as soon as the clock moves.
    pub async fn tick(&mut self) {
        tokio::select! {
            _ = self.interval.tick() => {}
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
        let mut ticker = Ticker::new(&clock, Duration::from_secs(3_600));
        let waiting = tokio::spawn(async move { ticker.tick().await });
        clock.advance(chrono::Duration::hours(1));
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("woken by the clock, not by the hour-long interval")
            .expect("the tick task ran");
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_keep_their_cadence_whatever_a_pass_takes() {
        let start = tokio::time::Instant::now();
        let mut ticker = Ticker::new(&tally_core::SystemClock, Duration::from_secs(10));
        ticker.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(10), "not at once");
        tokio::time::sleep(Duration::from_secs(4)).await; // a pass
        ticker.tick().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(20),
            "counted from the tick"
        );
        tokio::time::sleep(Duration::from_secs(25)).await; // a pass longer than the interval
        ticker.tick().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(45),
            "at once after a long pass"
        );
        ticker.tick().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(55),
            "then one interval on"
        );
    }

    #[test]
    fn the_embedded_descriptor_sets_serve_reflection() {
        assert!(super::reflection_v1().is_some() && super::reflection_v1alpha().is_some());
    }

    struct Ready;

    #[tonic::async_trait]
    impl super::Readiness for Ready {
        async fn check(&self) -> Result<(), String> {
            Ok(())
        }
    }

    /// A served `Server` whose test-only routes panic answers INTERNAL over gRPC and a 500 JSON
    /// error over REST, and keeps serving.
    #[tokio::test]
    async fn a_panicking_handler_is_answered_internal_and_the_server_keeps_serving() {
        use axum::routing::{get, post};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        fn bug() -> &'static str {
            panic!("a test-only handler's bug")
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = super::Server::new("panics-test", &[], std::sync::Arc::new(Ready));
        let served = tokio::spawn(async move {
            let options = super::Options::default();
            let stopped = async move {
                let _ = stopped.await;
            };
            server
                .serve_with(listener, stopped, &options, |router| {
                    router
                        .route("/tally.test.v1.Panics/Now", post(|| async { bug() }))
                        .route("/panics", get(|| async { bug() }))
                })
                .await
        });

        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        for _ in 0..2 {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.unwrap();
            let err = grpc
                .unary::<(), (), _>(
                    tonic::Request::new(()),
                    axum::http::uri::PathAndQuery::from_static("/tally.test.v1.Panics/Now"),
                    tonic_prost::ProstCodec::<(), ()>::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
            assert_eq!(crate::status::reason(&err).as_deref(), Some("Internal"));
        }

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /panics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.contains(r#""code":"InternalServerError""#),
            "{answer}"
        );

        // Still serving: the operations endpoint answers on the same server.
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
    }
}
