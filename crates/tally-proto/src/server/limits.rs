//! Load limits. A server serves at most `max_in_flight` requests at once (a stream counts until
//! it ends); one more is refused at once, before any work, with RESOURCE_EXHAUSTED /
//! `TooManyRequests` (REST: 503 `ServiceUnavailable` with `Retry-After`, as reference §5.2
//! reports throttling). Nothing queues: a request either holds a permit or is answered. Open
//! connections are bounded too (more wait in the kernel's listen backlog), and so are HTTP/2
//! streams per connection (the client waits to open more).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::body::{OnEnd, with_end};

/// How much a server takes on at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests served at once; more are refused with RESOURCE_EXHAUSTED (REST: 503).
    pub max_in_flight: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_streams_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: 512,
            max_connections: 1_024,
            max_streams_per_connection: 256,
        }
    }
}

/// Health checks pass the limit: a loaded server is busy, not down, and must not be restarted
/// or taken out of rotation for being busy.
fn is_exempt(path: &str) -> bool {
    path == "/healthz" || path == "/readyz" || path.starts_with("/grpc.health.v1.Health/")
}

struct InFlight {
    server: &'static str,
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    fn publish(&self) {
        crate::metrics::requests_in_flight(
            self.server,
            self.max.saturating_sub(self.permits.available_permits()),
        );
    }
}

/// A request's place among those in flight, given back when its response ends.
struct Permit {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<InFlight>,
}

impl OnEnd for Permit {}

impl Drop for Permit {
    fn drop(&mut self) {
        // The permit itself is released just after this runs: count it as gone.
        crate::metrics::requests_in_flight(
            self.in_flight.server,
            self.in_flight
                .max
                .saturating_sub(self.in_flight.permits.available_permits() + 1),
        );
    }
}

/// `router` behind the in-flight limit of `limits`.
pub(super) fn layer(router: axum::Router, server: &'static str, limits: &Limits) -> axum::Router {
    let in_flight = Arc::new(InFlight {
        server,
        permits: Arc::new(Semaphore::new(limits.max_in_flight)),
        max: limits.max_in_flight,
    });
    router.layer(axum::middleware::from_fn_with_state(in_flight, limit))
}

async fn limit(State(in_flight): State<Arc<InFlight>>, request: Request, next: Next) -> Response {
    if is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(permit) = in_flight.permits.clone().try_acquire_owned() else {
        crate::metrics::request_refused("in_flight");
        return refusal(&request, in_flight.max);
    };
    in_flight.publish();
    let permit = Permit {
        _permit: permit,
        in_flight,
    };
    next.run(request).await.map(|body| with_end(body, permit))
}

/// The answer to a request over the limit, in its own dialect.
fn refusal(request: &Request, max: usize) -> Response {
    let message = format!("the server is serving its limit of {max} requests; retry shortly");
    if super::observe::is_grpc(request) {
        return crate::status::too_many_requests(message)
            .into_http::<Body>()
            .into_response();
    }
    let body = format!(r#"{{"error":{{"code":"ServiceUnavailable","message":"{message}"}}}}"#);
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    /// A router whose `/slow` route counts its callers in `entered` and waits for a permit of
    /// `release`.
    fn blocked(
        entered: Arc<std::sync::atomic::AtomicUsize>,
        release: Arc<Semaphore>,
        limits: &Limits,
    ) -> axum::Router {
        let route = axum::Router::new()
            .route(
                "/slow",
                get(move || {
                    let (entered, release) = (entered.clone(), release.clone());
                    async move {
                        entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        release.acquire().await.unwrap().forget();
                        "done"
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        layer(route, "test", limits)
    }

    #[tokio::test]
    async fn a_request_over_the_limit_is_refused_at_once_and_health_still_answers() {
        let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let release = Arc::new(Semaphore::new(0));
        let limits = Limits {
            max_in_flight: 2,
            ..Limits::default()
        };
        let router = blocked(entered.clone(), release.clone(), &limits);
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let first = tokio::spawn(router.clone().oneshot(get("/slow")));
        let second = tokio::spawn(router.clone().oneshot(get("/slow")));
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while entered.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("both requests reach the handler");

        // Both hold their permits; a third is refused without waiting.
        let third = router.clone().oneshot(get("/slow")).await.unwrap();
        assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(third.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(third.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "ServiceUnavailable");
        let health = router.clone().oneshot(get("/healthz")).await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);

        let grpc = Request::post("/tally.usage.v1.UsageIngestion/PostUsage")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let refused = router.clone().oneshot(grpc).await.unwrap();
        let status = tonic::Status::from_header_map(refused.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            crate::status::reason(&status).as_deref(),
            Some("TooManyRequests")
        );

        release.add_permits(2);
        for handle in [first, second] {
            let response = handle.await.unwrap().unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            // The permit is held until the body has been sent.
            axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
        }
        release.add_permits(1);
        let served = router.oneshot(get("/slow")).await.unwrap();
        assert_eq!(served.status(), StatusCode::OK, "permits came back");
    }
}
