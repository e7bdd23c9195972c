//! Fuzz target: bearer JWT handling (`tally_gateway::auth::Verifier::verify`), on arbitrary
//! token strings, on arbitrary headers and payloads signed with the right HS256 secret (so that
//! claims parsing and the principal's rules are reached), and on arbitrary claims minted as
//! `tally token` does. Every token is accepted or refused with a typed `AuthError::Invalid`.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tally_core::Reason;
use tally_gateway::auth::{AuthConfig, AuthError, Verifier, mint};
use tally_gateway::{Claims, Principal, Role};

const SECRET: &[u8] = b"fuzz-secret";

#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Any(String),
}

impl Text {
    fn pick(self, known: &[&str]) -> String {
        match self {
            Text::Known(i) => known[usize::from(i) % known.len()].to_string(),
            Text::Any(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct ArbitraryClaims {
    iss: Text,
    aud: Text,
    sub: String,
    exp_from_now: i32,
    exp_any: Option<i64>,
    nbf_from_now: Option<i32>,
    tid: Option<Text>,
    roles: Vec<Text>,
    provider_subscription_id: Option<Text>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A token string as a client sends it.
    Raw(String),
    /// A header and payload (JSON or not), correctly signed with the secret.
    Signed { header: Text, payload: Vec<u8> },
    /// Claims minted as `tally token` does.
    Minted(ArbitraryClaims),
}

const GUIDS: &[&str] = &["6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "", "not-a-guid"];

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        Verifier::new(&AuthConfig::development(SECRET.to_vec())).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn signed(header: &str, payload: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap_or_else(|e| panic!("{e}"));
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn expect_refusal_is_typed(result: &Result<tally_gateway::auth::Verified, AuthError>) {
    if let Err(error) = result {
        assert!(matches!(error, AuthError::Invalid(_)), "{error:?}");
        assert_eq!(error.reason(), Reason::InvalidToken);
    }
}

fuzz_target!(|input: Input| {
    let verifier = verifier();
    match input {
        Input::Raw(token) => {
            let result = verifier.verify(&token);
            expect_refusal_is_typed(&result);
        }
        Input::Signed { header, payload } => {
            let header = header.pick(&[
                r#"{"alg":"HS256","typ":"JWT"}"#,
                r#"{"alg":"HS256"}"#,
                r#"{"alg":"none"}"#,
                r#"{"alg":"RS256","typ":"JWT"}"#,
                r#"{"alg":"HS512","typ":"JWT"}"#,
            ]);
            let result = verifier.verify(&signed(&header, &payload));
            expect_refusal_is_typed(&result);
        }
        Input::Minted(arbitrary) => {
            let now = chrono::Utc::now().timestamp();
            let roles = [
                "Operator",
                "ResourceProvider",
                "DelegatedProvider",
                "operator",
                "Reader",
            ];
            let claims = Claims {
                iss: arbitrary.iss.pick(&["tally", "other"]),
                aud: arbitrary.aud.pick(&["tally", "other"]),
                sub: arbitrary.sub,
                exp: arbitrary
                    .exp_any
                    .unwrap_or(now + i64::from(arbitrary.exp_from_now)),
                nbf: arbitrary.nbf_from_now.map(|n| now + i64::from(n)),
                iat: None,
                tid: arbitrary.tid.map(|t| t.pick(GUIDS)),
                roles: arbitrary
                    .roles
                    .into_iter()
                    .map(|r| r.pick(&roles))
                    .collect(),
                provider_subscription_id: arbitrary.provider_subscription_id.map(|t| t.pick(GUIDS)),
            };
            let Ok(token) = mint(SECRET, &claims) else {
                return;
            };
            let result = verifier.verify(&token);
            expect_refusal_is_typed(&result);
            if let Ok(verified) = result {
                assert_eq!(claims.iss, "tally");
                assert_eq!(claims.aud, "tally");
                assert_eq!(verified.subject.subject, claims.sub);
                assert_eq!(
                    verified.subject.expires,
                    chrono::DateTime::from_timestamp(claims.exp, 0)
                );
                let operator = claims
                    .roles
                    .iter()
                    .any(|r| Role::parse(r) == Some(Role::Operator));
                assert_eq!(
                    verified.principal == Principal::Operator,
                    operator,
                    "{claims:?}"
                );
            }
        }
    }
});
