//! The operations endpoints every server has, beside its gRPC services: `GET /healthz` (the
//! process answers), `GET /readyz` (its database and peers answer: 200, or 503 saying what is
//! missing) and `GET /metrics` (Prometheus text). On the gateway, `/metrics` needs an operator
//! token; `serve_metrics` serves it without one on a listener of its own (`--metrics-listen`).

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::ServeError;
use super::health::Health;

/// `router` plus the operations endpoints, answered from `health`.
pub(super) fn routes(router: axum::Router, health: Health) -> axum::Router {
    router
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move { readyz(&health).await }
            }),
        )
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(health: &Health) -> Response {
    match health.update().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics() -> Response {
    let mut response = crate::metrics::render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Serves `/metrics` (and `/healthz`) with no token on `listener`, for a scraper on a private
/// network, until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let router = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServeError::open("the metrics listener", e))
}
