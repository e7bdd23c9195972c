//! The last resort against a panic in a handler. Without it a panic unwinds through hyper's
//! connection task: a gRPC caller sees its stream reset (`RST_STREAM`), a REST caller a closed
//! connection, and neither learns what happened. Here the panic becomes a typed answer,
//! `INTERNAL` (gRPC) or 500 `InternalServerError` (REST), and an error log line with the route and
//! the panic's message. The same holds while a response body is being sent (a streaming RPC's
//! stream, a REST body): a panic there ends a gRPC stream with `INTERNAL` in its trailers, and a
//! REST body with an error (the connection is closed, never a truncated body that looks whole).
//! Handlers are written not to panic (library code denies `unwrap`, `expect`, `panic!` and
//! unchecked indexing); this catches what slips through.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use http_body::{Frame, SizeHint};

/// `router` with a panic in any handler turned into an internal error.
pub(super) fn layer(router: axum::Router, server: &'static str) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(server, catch))
}

async fn catch(State(server): State<&'static str>, request: Request, next: Next) -> Response {
    let grpc = super::observe::is_grpc(&request);
    let route = request.uri().path().to_string();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response.map(|body| {
            Body::new(CatchingBody {
                inner: body,
                grpc,
                server,
                route,
                ended: false,
            })
        }),
        Err(panic) => {
            report(server, &route, panic.as_ref());
            internal_error(grpc)
        }
    }
}

fn report(server: &'static str, route: &str, panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(server, route, panic = %message, "a handler panicked");
    crate::metrics::handler_panicked(server);
}

/// A response body that turns a panic while it is polled (a streaming RPC's stream is polled
/// here) into the end of the response: `INTERNAL` trailers for gRPC, an error for REST.
struct CatchingBody {
    inner: Body,
    grpc: bool,
    server: &'static str,
    route: String,
    /// Set once a panic ended the body: the inner body is not polled again.
    ended: bool,
}

impl http_body::Body for CatchingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let inner = &mut this.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(polled) => polled,
            Err(panic) => {
                this.ended = true;
                report(this.server, &this.route, panic.as_ref());
                let mut trailers = HeaderMap::new();
                let internal =
                    crate::status::status(tally_core::Reason::Internal, "internal error");
                if this.grpc && internal.add_header(&mut trailers).is_ok() {
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                } else {
                    Poll::Ready(Some(Err(axum::Error::new(
                        "the response body panicked while it was sent",
                    ))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
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
    use axum::routing::{get, post};
    use futures::StreamExt as _;
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
            .route("/fine", get(|| async { "fine" }))
            .route(
                "/tally.test.v1.Panics/Stream",
                post(|| async { grpc_stream_that_panics() }),
            )
            .route(
                "/panics-while-streaming",
                get(|| async { Body::from_stream(chunks_then_panic()) }),
            );
        layer(route, "test")
    }

    /// Two chunks, then a panic inside the stream, as a streaming handler's bug would.
    fn chunks_then_panic() -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::iter(0..3).map(|i| {
            if i == 2 {
                panic!("a stream's bug");
            }
            Ok(Bytes::from_static(b"chunk"))
        })
    }

    /// A gRPC response whose body (the stream) panics after two chunks.
    fn grpc_stream_that_panics() -> Response {
        let mut response = Body::from_stream(chunks_then_panic()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        response
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

        // A panic while the body is sent: INTERNAL in the trailers after what was sent, or an
        // error ending the REST body, never a clean end.
        let grpc = Request::post("/tally.test.v1.Panics/Stream")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let answer = router.clone().oneshot(grpc).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let collected = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .expect("the gRPC body ends with trailers, not an error");
        let trailers = collected.trailers().cloned().expect("trailers");
        let status = tonic::Status::from_header_map(&trailers).unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(crate::status::reason(&status).as_deref(), Some("Internal"));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"chunkchunk"));

        let rest = Request::get("/panics-while-streaming")
            .body(Body::empty())
            .unwrap();
        let answer = router.clone().oneshot(rest).await.unwrap();
        assert!(
            axum::body::to_bytes(answer.into_body(), 1 << 16)
                .await
                .is_err(),
            "a REST body cut by a panic must end in an error"
        );

        // The router still serves afterwards.
        let fine = Request::get("/fine").body(Body::empty()).unwrap();
        let answer = router.oneshot(fine).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
}
