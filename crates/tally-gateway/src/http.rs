//! What every request meets on the gateway's one listener before any service: the
//! authentication layer, and the fallback that hands what no gRPC service claimed to REST.
//!
//! Both answer in the request's own dialect: a gRPC status for gRPC, ARM's error body for REST.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::Status;

use crate::auth::{AuthError, Verifier};
use crate::guard;
use crate::rest::{self, RestError, RestState};

/// Paths anyone may call: health checks (for load balancers and orchestrators), reflection
/// (schema only) and the portal's static files (the page signs in itself; its data calls carry
/// the token).
fn is_public(path: &str) -> bool {
    path == "/healthz"
        || path == "/readyz"
        || path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
        || crate::portal::is_portal_path(path)
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authentication layer: puts the caller's [`Principal`](crate::Principal) into the
/// request's extensions, or answers UNAUTHENTICATED (gRPC) / 401 (REST) without calling any
/// service.
pub(crate) async fn authenticate(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let verified = match bearer_token(&request) {
        None => Err(AuthError::Missing),
        Some(token) => verifier.verify(token),
    };
    match verified {
        Ok(verified) => {
            if request.uri().path() == "/metrics"
                && let Err(refused) = guard::may_read_metrics(&verified.principal)
            {
                return RestError::from_status(&refused, &rest::FieldNames::JSON).into_response();
            }
            request.extensions_mut().insert(verified.principal);
            request.extensions_mut().insert(verified.subject);
            next.run(request).await
        }
        Err(error) => {
            tracing::debug!(%error, path = request.uri().path(), "unauthenticated request");
            tally_proto::metrics::auth_failure(error.reason().as_str());
            if is_grpc(&request) {
                tally_proto::status::status(error.reason(), error.to_string())
                    .into_http::<Body>()
                    .into_response()
            } else {
                RestError::from_reason(error.reason(), error.to_string()).into_response()
            }
        }
    }
}

/// Every request no gRPC service claimed: an unknown RPC, or a REST call.
pub(crate) async fn fallback(State(state): State<Arc<RestState>>, request: Request) -> Response {
    if is_grpc(&request) {
        return Status::unimplemented(format!("{} is not a Tally RPC", request.uri().path()))
            .into_http::<Body>()
            .into_response();
    }
    rest::dispatch(&state, request).await
}
