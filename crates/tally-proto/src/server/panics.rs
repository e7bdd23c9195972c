//! The last resort against a panic in a handler. Without it a panic unwinds through hyper's
//! connection task: a gRPC caller sees its stream reset (`RST_STREAM`), a REST caller a closed
//! connection, and neither learns what happened. Here the panic becomes a typed answer,
//! `INTERNAL` (gRPC) or 500 `InternalServerError` (REST), and an error log line with the route and
//! the panic's message. Handlers are written not to panic (library code denies `unwrap`,
//! `expect`, `panic!` and unchecked indexing); this catches what slips through.

use std::panic::AssertUnwindSafe;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;

/// `router` with a panic in any handler turned into an internal error.
pub(super) fn layer(router: axum::Router, server: &'static str) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(server, catch))
}

async fn catch(State(server): State<&'static str>, request: Request, next: Next) -> Response {
    let grpc = super::observe::is_grpc(&request);
    let route = request.uri().path().to_string();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(server, route, panic = %message, "a handler panicked");
            crate::metrics::handler_panicked(server);
            internal_error(grpc)
        }
    }
}

/// The answer to a request whose handler panicked, in its own dialect. The panic's message stays
/// in the log: it may hold internals.
fn internal_error(grpc: bool) -> Response {
    let message = "internal error";
    if grpc {
        return crate::status::status(tally_core::Reason::Internal, message)
            .into_http::<axum::body::Body>()
            .into_response();
    }
    let body = format!(r#"{{"error":{{"code":"InternalServerError","message":"{message}"}}}}"#);
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt as _;

    use super::*;

    /// A test-only service whose every route panics, once with a `&str`, once with a `String`.
    fn panicking() -> axum::Router {
        let route = axum::Router::new()
            .route(
                "/tally.test.v1.Panics/Now",
                post(|| async {
                    if true {
                        panic!("a handler's bug");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/panics",
                get(|| async {
                    let n = std::hint::black_box(3);
                    if n == 3 {
                        panic!("a handler's bug with {n}");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        layer(route, "test")
    }

    #[tokio::test]
    async fn a_panic_becomes_internal_over_grpc_and_a_500_over_rest() {
        let router = panicking();
        let grpc = Request::post("/tally.test.v1.Panics/Now")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let answer = router.clone().oneshot(grpc).await.unwrap();
        let status = tonic::Status::from_header_map(answer.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(crate::status::reason(&status).as_deref(), Some("Internal"));
        assert!(!status.message().contains("bug"), "{status:?}");

        let rest = Request::get("/panics").body(Body::empty()).unwrap();
        let answer = router.clone().oneshot(rest).await.unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "InternalServerError");

        // The router still serves afterwards.
        let fine = Request::get("/fine").body(Body::empty()).unwrap();
        let answer = router.oneshot(fine).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
}
