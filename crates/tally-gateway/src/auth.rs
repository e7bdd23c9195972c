//! Tokens: which bearer JWTs the gateway accepts, and the [`Principal`] each establishes.
//! (The layer that applies this to every request is in `http.rs`.)
//!
//! Accepted tokens are HS256 (a shared secret) or RS256 (configured public keys), with the
//! configured issuer and audience, unexpired and already valid. `alg: none` and every other
//! algorithm are refused. A token carries the caller's directory tenant (`tid`), its `roles`
//! (`Operator`, `ResourceProvider`, `DelegatedProvider`; none for a tenant user) and, for a
//! delegated provider, the provider subscription it acts for (`provider_subscription_id`).

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tally_core::Reason;
use uuid::Uuid;

use crate::principal::{Grants, Principal, Role};

/// Issuer and audience of the tokens `tally token` mints for development.
pub const DEVELOPMENT_ISSUER: &str = "tally";
pub const DEVELOPMENT_AUDIENCE: &str = "tally";

/// Allowed clock difference between token issuers and the gateway.
const LEEWAY_SECONDS: u64 = 30;

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

/// What a verified token says beyond its [`Principal`]: who it names and until when it is
/// valid. The authentication layer attaches it beside the principal, for the caller to read
/// back (`GET /tally/v1/whoami`); no access decision looks at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSubject {
    /// The `sub` claim.
    pub subject: String,
    /// The `exp` claim.
    pub expires: Option<DateTime<Utc>>,
}

/// A token that passed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub principal: Principal,
    pub subject: TokenSubject,
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

    /// The principal a token establishes, and whom it names.
    pub fn verify(&self, token: &str) -> Result<Verified, AuthError> {
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
                Ok(data) => {
                    return Ok(Verified {
                        principal: data.claims.principal()?,
                        subject: TokenSubject {
                            expires: DateTime::from_timestamp(data.claims.exp, 0),
                            subject: data.claims.sub,
                        },
                    });
                }
                Err(e) => last_error = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last_error)
    }
}

impl Claims {
    /// The claims of a development token for `principal` (what `tally token` and the tests
    /// sign): the development issuer and audience, valid from a minute ago for `lifetime`.
    pub fn development(principal: &Principal, subject: &str, lifetime: TimeDelta) -> Claims {
        let now = Utc::now();
        let (tenant, provider_subscription) = match principal {
            Principal::Operator => (None, None),
            Principal::Limited(grants) => (grants.tenant, grants.delegated_provider),
        };
        let guid = |id: Uuid| id.hyphenated().to_string();
        Claims {
            iss: DEVELOPMENT_ISSUER.into(),
            aud: DEVELOPMENT_AUDIENCE.into(),
            sub: subject.into(),
            exp: (now + lifetime).timestamp(),
            nbf: Some((now - TimeDelta::minutes(1)).timestamp()),
            iat: Some(now.timestamp()),
            tid: tenant.map(guid),
            roles: principal
                .roles()
                .into_iter()
                .map(|r| r.name().to_string())
                .collect(),
            provider_subscription_id: provider_subscription.map(guid),
        }
    }

    /// What these (verified) claims grant.
    fn principal(&self) -> Result<Principal, AuthError> {
        let guid = |name: &str, text: &Option<String>| -> Result<Option<Uuid>, AuthError> {
            match text.as_deref() {
                None | Some("") => Ok(None),
                Some(t) => tally_core::parse_guid(t)
                    .map(Some)
                    .ok_or_else(|| AuthError::Invalid(format!("claim {name} is not a GUID"))),
            }
        };
        // Roles of other applications may share a token; only ours matter here.
        let roles: Vec<Role> = self.roles.iter().filter_map(|r| Role::parse(r)).collect();
        let tenant = guid("tid", &self.tid)?;
        let provider_subscription =
            guid("provider_subscription_id", &self.provider_subscription_id)?;
        let delegated_provider = if roles.contains(&Role::DelegatedProvider) {
            let provider_subscription = provider_subscription.ok_or_else(|| {
                AuthError::Invalid(
                    "a DelegatedProvider token needs a provider_subscription_id claim".into(),
                )
            })?;
            Some(provider_subscription)
        } else {
            None
        };
        if roles.contains(&Role::Operator) {
            return Ok(Principal::Operator);
        }
        Ok(Principal::Limited(Grants {
            tenant,
            resource_provider: roles.contains(&Role::ResourceProvider),
            delegated_provider,
        }))
    }
}

/// Signs development tokens with an HS256 secret.
pub fn mint(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"secret";
    const TENANT: &str = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    const PROVIDER: &str = "5e5e5e5e-4444-4444-8444-444444444444";

    fn guid(text: &str) -> Uuid {
        tally_core::parse_guid(text).unwrap()
    }

    fn claims(roles: &[&str], tid: Option<&str>, provider: Option<&str>) -> Claims {
        let mut claims = Claims::development(
            &Principal::Limited(Grants::default()),
            "someone",
            TimeDelta::hours(1),
        );
        claims.roles = roles.iter().map(|r| r.to_string()).collect();
        claims.tid = tid.map(str::to_string);
        claims.provider_subscription_id = provider.map(str::to_string);
        claims
    }

    /// What verifying `claims` signed with `secret` gives, the refusal as its message.
    fn verify(claims: &Claims, secret: &[u8]) -> Result<Principal, String> {
        let verifier = Verifier::new(&AuthConfig::development(SECRET.to_vec())).unwrap();
        verifier
            .verify(&mint(secret, claims).unwrap())
            .map(|verified| verified.principal)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_token_means_what_the_roles_table_says() {
        let (tenant, provider) = (Some(guid(TENANT)), Some(guid(PROVIDER)));
        let limited = |tenant, resource_provider, delegated_provider| {
            Principal::Limited(Grants {
                tenant,
                resource_provider,
                delegated_provider,
            })
        };
        let cases = [
            (claims(&["Operator"], None, None), Principal::Operator),
            (
                // Other claims add nothing to an operator; other applications' roles are ignored.
                claims(&["operator", "SomethingElse"], Some(TENANT), Some(PROVIDER)),
                Principal::Operator,
            ),
            (
                claims(&[], Some(TENANT), None),
                limited(tenant, false, None),
            ),
            (
                claims(&["ResourceProvider"], None, None),
                limited(None, true, None),
            ),
            (
                claims(&["resource-provider"], Some(TENANT), None),
                limited(tenant, true, None),
            ),
            (
                claims(&["DelegatedProvider"], Some(TENANT), Some(PROVIDER)),
                limited(tenant, false, provider),
            ),
            (
                claims(
                    &["ResourceProvider", "delegated_provider"],
                    None,
                    Some(PROVIDER),
                ),
                limited(None, true, provider),
            ),
            // A provider subscription without the role grants nothing.
            (
                claims(&[], None, Some(PROVIDER)),
                limited(None, false, None),
            ),
            (claims(&[], None, None), limited(None, false, None)),
        ];
        for (claims, expected) in cases {
            assert_eq!(verify(&claims, SECRET), Ok(expected), "{claims:?}");
        }
    }

    #[test]
    fn development_claims_verify_to_their_principal() {
        let (tenant, provider) = (guid(TENANT), guid(PROVIDER));
        for principal in [
            Principal::Operator,
            Principal::tenant(tenant),
            Principal::resource_provider(),
            Principal::delegated_provider(Some(tenant), provider),
            Principal::delegated_provider(None, provider),
            Principal::Limited(Grants {
                tenant: Some(tenant),
                resource_provider: true,
                delegated_provider: Some(provider),
            }),
        ] {
            let claims = Claims::development(&principal, "someone", TimeDelta::hours(1));
            assert_eq!(verify(&claims, SECRET), Ok(principal), "{claims:?}");
        }
    }

    #[test]
    fn a_verified_token_names_its_subject_and_expiry() {
        let claims = claims(&[], Some(TENANT), None);
        let verifier = Verifier::new(&AuthConfig::development(SECRET.to_vec())).unwrap();
        let verified = verifier.verify(&mint(SECRET, &claims).unwrap()).unwrap();
        assert_eq!(
            verified.subject,
            TokenSubject {
                subject: "someone".into(),
                expires: DateTime::from_timestamp(claims.exp, 0),
            }
        );
        assert_eq!(verified.principal, Principal::tenant(guid(TENANT)));
    }

    #[test]
    fn bad_tokens_are_refused_with_the_reason() {
        let valid = || claims(&["Operator"], None, None);
        let now = Utc::now().timestamp();
        let mut expired = valid();
        expired.exp = now - 3_600;
        let mut not_yet = valid();
        not_yet.nbf = Some(now + 3_600);
        let mut issuer = valid();
        issuer.iss = "elsewhere".into();
        let mut audience = valid();
        audience.aud = "elsewhere".into();
        let cases = [
            (expired, SECRET, "ExpiredSignature"),
            (valid(), b"other".as_slice(), "InvalidSignature"),
            (not_yet, SECRET, "ImmatureSignature"),
            (issuer, SECRET, "InvalidIssuer"),
            (audience, SECRET, "InvalidAudience"),
            (
                claims(&["DelegatedProvider"], Some(TENANT), None),
                SECRET,
                "a DelegatedProvider token needs a provider_subscription_id claim",
            ),
            (
                claims(&["Operator", "DelegatedProvider"], None, None),
                SECRET,
                "a DelegatedProvider token needs a provider_subscription_id claim",
            ),
            (
                claims(&[], Some("not-a-guid"), None),
                SECRET,
                "claim tid is not a GUID",
            ),
            (
                claims(&["DelegatedProvider"], None, Some("nope")),
                SECRET,
                "claim provider_subscription_id is not a GUID",
            ),
        ];
        for (claims, secret, reason) in cases {
            let refused = verify(&claims, secret).unwrap_err();
            assert_eq!(
                refused,
                format!("the bearer token is invalid: {reason}"),
                "{claims:?}"
            );
        }
        let verifier = Verifier::new(&AuthConfig::development(SECRET.to_vec())).unwrap();
        let refused = verifier.verify("not.a.token").unwrap_err();
        assert!(
            matches!(&refused, AuthError::Invalid(m) if m.contains("Base64")),
            "{refused}"
        );
        assert_eq!(refused.reason(), Reason::InvalidToken);
        assert_eq!(AuthError::Missing.reason(), Reason::MissingCredentials);
    }
}
