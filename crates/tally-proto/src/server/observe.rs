//! What every request leaves behind: a tracing span (exported over OTLP when the binary is
//! configured so), and for gRPC a latency sample per RPC and status code, taken when the
//! response ends (a stream's whole life). REST routes are timed by the gateway, which knows
//! their templates.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use super::body::{OnEnd, with_end};

pub(super) fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// `router` with a span per request and gRPC latency metrics; `services` are the gRPC services
/// it serves (besides health and reflection), so that only their RPCs get a label of their own.
pub(super) fn layer(
    router: axum::Router,
    server: &'static str,
    services: Vec<&'static str>,
) -> axum::Router {
    let known: Arc<[&'static str]> = services
        .into_iter()
        .chain([
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ])
        .collect();
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let known = known.clone();
            async move { observe(server, &known, request, next).await }
        },
    ))
}

async fn observe(
    server: &'static str,
    known: &[&'static str],
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if !is_grpc(&request) {
        let span = tracing::info_span!(
            "http",
            otel.name = %format!("{} {}", request.method(), path),
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = %path,
            server,
        );
        return next.run(request).instrument(span).await;
    }
    let rpc = if is_known_rpc(&path, known) {
        path
    } else {
        "unknown".to_string()
    };
    let span = tracing::info_span!(
        "grpc",
        otel.name = %rpc,
        otel.kind = "server",
        rpc.system = "grpc",
        server,
    );
    let call = GrpcCall {
        rpc,
        started: Instant::now(),
        code: None,
    };
    let mut call = call;
    let response = next.run(request).instrument(span).await;
    // A trailers-only response (an error, a refusal) carries its status in the headers.
    call.code = grpc_code(response.headers());
    response.map(|body| with_end(body, call))
}

fn is_known_rpc(path: &str, known: &[&str]) -> bool {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return false;
    };
    !method.is_empty() && !method.contains('/') && known.contains(&service)
}

fn grpc_code(headers: &HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|value| tonic::Code::from_bytes(value.as_bytes()))
}

/// One gRPC call being answered; recorded when its response ends.
struct GrpcCall {
    rpc: String,
    started: Instant,
    code: Option<tonic::Code>,
}

impl OnEnd for GrpcCall {
    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(code) = grpc_code(trailers) {
            self.code = Some(code);
        }
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        // No status at all: the client went away before the end.
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        let rpc = if code == tonic::Code::Unimplemented {
            // Methods nobody serves are not worth a label each.
            "unknown".to_string()
        } else {
            std::mem::take(&mut self.rpc)
        };
        crate::metrics::grpc_request(rpc, code_name(code), self.started.elapsed());
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::is_known_rpc;

    #[test]
    fn only_served_rpcs_get_a_label_of_their_own() {
        let known = ["tally.usage.v1.UsageIngestion", "grpc.health.v1.Health"];
        assert!(is_known_rpc(
            "/tally.usage.v1.UsageIngestion/PostUsage",
            &known
        ));
        assert!(is_known_rpc("/grpc.health.v1.Health/Check", &known));
        assert!(!is_known_rpc("/tally.usage.v1.Nope/PostUsage", &known));
        assert!(!is_known_rpc("/tally.usage.v1.UsageIngestion/", &known));
        assert!(!is_known_rpc("/tally.usage.v1.UsageIngestion/a/b", &known));
        assert!(!is_known_rpc("/", &known));
    }
}
