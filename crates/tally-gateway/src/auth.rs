//! Authentication: bearer JWTs, checked by a tower layer in front of every gRPC and REST route.
//!
//! Accepted tokens are HS256 (a shared secret) or RS256 (configured public keys), with the
//! configured issuer and audience, unexpired and already valid. `alg: none` and every other
//! algorithm are refused. A token carries the caller's directory tenant (`tid`), its `roles`
//! (`Operator`, `ResourceProvider`, `DelegatedProvider`; none for a tenant user) and, for a
//! delegated provider, the provider subscription it acts for (`provider_subscription_id`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tally_core::Reason;
use uuid::Uuid;

/// Issuer and audience of the tokens `tally token` mints for development.
pub const DEVELOPMENT_ISSUER: &str = "tally";
pub const DEVELOPMENT_AUDIENCE: &str = "tally";

/// Allowed clock difference between token issuers and the gateway.
const LEEWAY_SECONDS: u64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Operator,
    ResourceProvider,
    DelegatedProvider,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "Operator",
            Role::ResourceProvider => "ResourceProvider",
            Role::DelegatedProvider => "DelegatedProvider",
        }
    }

    /// Case-insensitive, with or without dashes (`resource-provider`).
    pub fn parse(text: &str) -> Option<Role> {
        let key: String = text
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "operator" => Some(Role::Operator),
            "resourceprovider" => Some(Role::ResourceProvider),
            "delegatedprovider" => Some(Role::DelegatedProvider),
            _ => None,
        }
    }
}

/// Who is calling, as established from the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub tenant_id: Option<Uuid>,
    pub roles: Vec<Role>,
    pub provider_subscription_id: Option<Uuid>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The claims Tally reads and `tally token` writes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_subscription_id: Option<String>,
}

/// What the gateway accepts.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// HS256 secrets.
    pub shared_secrets: Vec<Vec<u8>>,
    /// RS256 public keys, PEM.
    pub public_keys_pem: Vec<Vec<u8>>,
}

impl AuthConfig {
    /// Development settings: HS256 with `secret`, issuer and audience `tally`.
    pub fn development(secret: Vec<u8>) -> Self {
        Self {
            issuer: DEVELOPMENT_ISSUER.into(),
            audience: DEVELOPMENT_AUDIENCE.into(),
            shared_secrets: vec![secret],
            public_keys_pem: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send an 'authorization: Bearer <token>' header")]
    Missing,
    #[error("the bearer token is invalid: {0}")]
    Invalid(String),
    #[error("invalid public key: {0}")]
    BadKey(String),
}

impl AuthError {
    pub fn reason(&self) -> Reason {
        match self {
            AuthError::Missing => Reason::MissingCredentials,
            _ => Reason::InvalidToken,
        }
    }
}

/// Checks tokens against the configured keys.
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    validation_base: (String, String),
}

impl Verifier {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let mut keys = Vec::new();
        for secret in &config.shared_secrets {
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret)));
        }
        for pem in &config.public_keys_pem {
            let key =
                DecodingKey::from_rsa_pem(pem).map_err(|e| AuthError::BadKey(e.to_string()))?;
            keys.push((Algorithm::RS256, key));
        }
        Ok(Self {
            keys,
            validation_base: (config.issuer.clone(), config.audience.clone()),
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.validation_base.0]);
        validation.set_audience(&[&self.validation_base.1]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        validation
    }

    /// The caller a token establishes.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if !matches!(header.alg, Algorithm::HS256 | Algorithm::RS256) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut last_error = AuthError::Invalid(format!("no key for algorithm {:?}", header.alg));
        for (algorithm, key) in self.keys.iter().filter(|(a, _)| *a == header.alg) {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation(*algorithm)) {
                Ok(data) => return caller(data.claims),
                Err(e) => last_error = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last_error)
    }
}

fn caller(claims: Claims) -> Result<Caller, AuthError> {
    let guid = |name: &str, text: &Option<String>| -> Result<Option<Uuid>, AuthError> {
        match text.as_deref() {
            None | Some("") => Ok(None),
            Some(t) => tally_core::parse_guid(t)
                .map(Some)
                .ok_or_else(|| AuthError::Invalid(format!("claim {name} is not a GUID"))),
        }
    };
    let mut roles = Vec::new();
    for name in &claims.roles {
        // Roles of other applications may share a token; only ours matter here.
        if let Some(role) = Role::parse(name) {
            roles.push(role);
        }
    }
    let provider_subscription_id =
        guid("provider_subscription_id", &claims.provider_subscription_id)?;
    if roles.contains(&Role::DelegatedProvider) && provider_subscription_id.is_none() {
        return Err(AuthError::Invalid(
            "a DelegatedProvider token needs a provider_subscription_id claim".into(),
        ));
    }
    Ok(Caller {
        subject: claims.sub,
        tenant_id: guid("tid", &claims.tid)?,
        roles,
        provider_subscription_id,
    })
}

/// Signs development tokens with an HS256 secret.
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Paths anyone may call: health checks (for load balancers) and reflection (schema only).
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

pub(crate) fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The layer: puts the [`Caller`] into the request's extensions, or answers UNAUTHENTICATED
/// (gRPC) / 401 (REST) without calling any service.
pub(crate) async fn authenticate(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    let result = match token {
        None => Err(AuthError::Missing),
        Some(token) => verifier.verify(&token),
    };
    match result {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            tracing::debug!(%error, path = request.uri().path(), "unauthenticated request");
            let status = tally_proto::status::status(error.reason(), error.to_string());
            if is_grpc(&request) {
                status.into_http::<axum::body::Body>().into_response()
            } else {
                crate::rest::from_status(&status).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_offset: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: DEVELOPMENT_ISSUER.into(),
            aud: DEVELOPMENT_AUDIENCE.into(),
            sub: "someone".into(),
            exp: now + exp_offset,
            nbf: Some(now - 60),
            iat: Some(now),
            tid: Some("6A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D".into()),
            roles: vec!["operator".into(), "SomethingElse".into()],
            provider_subscription_id: None,
        }
    }

    #[test]
    fn a_minted_token_verifies_to_its_caller() {
        let verifier = Verifier::new(&AuthConfig::development(b"secret".to_vec())).unwrap();
        let token = mint(b"secret", &claims(3_600)).unwrap();
        let caller = verifier.verify(&token).unwrap();
        assert_eq!(caller.roles, [Role::Operator]);
        assert_eq!(
            caller.tenant_id.unwrap().hyphenated().to_string(),
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let verifier = Verifier::new(&AuthConfig::development(b"secret".to_vec())).unwrap();
        assert!(
            verifier
                .verify(&mint(b"secret", &claims(-3_600)).unwrap())
                .is_err(),
            "expired"
        );
        assert!(
            verifier
                .verify(&mint(b"other", &claims(3_600)).unwrap())
                .is_err(),
            "wrong key"
        );
        let mut c = claims(3_600);
        c.nbf = Some(chrono::Utc::now().timestamp() + 3_600);
        assert!(
            verifier.verify(&mint(b"secret", &c).unwrap()).is_err(),
            "not yet valid"
        );
        let mut c = claims(3_600);
        c.iss = "elsewhere".into();
        assert!(
            verifier.verify(&mint(b"secret", &c).unwrap()).is_err(),
            "issuer"
        );
        let mut c = claims(3_600);
        c.aud = "elsewhere".into();
        assert!(
            verifier.verify(&mint(b"secret", &c).unwrap()).is_err(),
            "audience"
        );
        let mut c = claims(3_600);
        c.roles = vec!["DelegatedProvider".into()];
        assert!(
            verifier.verify(&mint(b"secret", &c).unwrap()).is_err(),
            "delegated provider without subscription"
        );
        assert!(verifier.verify("not.a.token").is_err());
    }
}
