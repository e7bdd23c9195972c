//! Continuation tokens: opaque, tamper-proof bookmarks.
//!
//! A token carries the key of the last row returned and an HMAC-SHA256 over that key and the
//! query it belongs to (which API, granularity, window, subscription filter, allow_incomplete).
//! Altering either, or presenting the token with another query, fails verification. The secret
//! lives in the usage database, so every instance accepts every other instance's tokens.
//! Public only for the fuzz target in `tests/fuzz`; the service is its one user.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use tally_store::usage::{RowKey, UnixSeconds};

const VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
const TOKEN_BYTES: usize = 1 + 32 + MAC_BYTES;

pub struct TokenKey {
    /// HMAC-SHA256 keyed with the secret, cloned for each token.
    keyed: Hmac<Sha256>,
}

impl TokenKey {
    pub fn new(secret: Vec<u8>) -> Self {
        // HMAC's own key block (RFC 2104): the secret, or its hash when longer than a block,
        // padded with zeros. Keying from the block is infallible and the same MAC as keying from
        // the secret itself.
        let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
        let hashed;
        let key: &[u8] = if secret.len() > block.len() {
            hashed = Sha256::digest(&secret);
            &hashed
        } else {
            &secret
        };
        for (slot, byte) in block.iter_mut().zip(key) {
            *slot = *byte;
        }
        Self {
            keyed: <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block),
        }
    }

    fn mac(&self, query: &[u8], body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(&(query.len() as u64).to_le_bytes());
        mac.update(query);
        mac.update(body);
        mac
    }

    /// The token resuming `query` after `after`.
    pub fn issue(&self, query: &[u8], after: RowKey) -> String {
        let mut body = Vec::with_capacity(TOKEN_BYTES);
        body.push(VERSION);
        for part in [
            after.usage_bucket.stored(),
            after.subscription_key,
            after.meter_key,
            after.instance_key,
        ] {
            body.extend_from_slice(&part.to_be_bytes());
        }
        let tag = self.mac(query, &body).finalize().into_bytes();
        body.extend(tag.iter().take(MAC_BYTES));
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The row key in `token`, if it was issued for `query` and not altered.
    pub fn verify(&self, query: &[u8], token: &str) -> Option<RowKey> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != TOKEN_BYTES || bytes.first() != Some(&VERSION) {
            return None;
        }
        let (body, tag) = bytes.split_at(TOKEN_BYTES - MAC_BYTES);
        self.mac(query, body).verify_truncated_left(tag).ok()?;
        let part = |i: usize| {
            body.get(1 + 8 * i..9 + 8 * i)
                .and_then(|bytes| bytes.try_into().ok())
                .map(i64::from_be_bytes)
        };
        Some(RowKey {
            usage_bucket: UnixSeconds::from_stored(part(0)?),
            subscription_key: part(1)?,
            meter_key: part(2)?,
            instance_key: part(3)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RowKey {
        RowKey {
            usage_bucket: UnixSeconds::from_stored(1_764_201_600),
            subscription_key: 7,
            meter_key: 12,
            instance_key: 99,
        }
    }

    /// Keying from HMAC's key block gives the MAC of keying from the secret itself, short or
    /// long, so tokens issued before stay valid.
    #[test]
    fn the_key_block_is_the_secret_s_hmac() {
        for secret in [b"secret".to_vec(), vec![7u8; 64], vec![9u8; 200]] {
            let mut expected = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            expected.update(b"body");
            let mut ours = TokenKey::new(secret).keyed;
            ours.update(b"body");
            assert_eq!(
                ours.finalize().into_bytes(),
                expected.finalize().into_bytes()
            );
        }
    }

    #[test]
    fn round_trips_for_the_same_query_only() {
        let keys = TokenKey::new(b"secret".to_vec());
        let token = keys.issue(b"query-a", key());
        assert_eq!(keys.verify(b"query-a", &token), Some(key()));
        assert_eq!(keys.verify(b"query-b", &token), None);
        assert_eq!(
            TokenKey::new(b"other".to_vec()).verify(b"query-a", &token),
            None
        );
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let keys = TokenKey::new(b"secret".to_vec());
        let token = keys.issue(b"q", key());
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            assert_eq!(
                keys.verify(b"q", &URL_SAFE_NO_PAD.encode(altered)),
                None,
                "byte {i}"
            );
        }
        assert_eq!(keys.verify(b"q", "not base64!"), None);
        assert_eq!(keys.verify(b"q", ""), None);
    }

    /// Property tests (proptest): any key round-trips through its token for the query it was
    /// issued for, and no input, however malformed, makes verification panic or succeed.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn row_key() -> impl Strategy<Value = RowKey> {
            (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()).prop_map(
                |(bucket, subscription_key, meter_key, instance_key)| RowKey {
                    usage_bucket: UnixSeconds::from_stored(bucket),
                    subscription_key,
                    meter_key,
                    instance_key,
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn issue_then_verify_is_the_identity(
                secret in proptest::collection::vec(any::<u8>(), 0..100),
                query in proptest::collection::vec(any::<u8>(), 0..200),
                other in proptest::collection::vec(any::<u8>(), 0..200),
                after in row_key(),
            ) {
                let keys = TokenKey::new(secret);
                let token = keys.issue(&query, after);
                prop_assert_eq!(keys.verify(&query, &token), Some(after));
                if other != query {
                    prop_assert_eq!(keys.verify(&other, &token), None);
                }
            }

            #[test]
            fn arbitrary_text_is_refused_without_panicking(token in any::<String>()) {
                let keys = TokenKey::new(b"secret".to_vec());
                prop_assert_eq!(keys.verify(b"q", &token), None);
            }

            #[test]
            fn arbitrary_bytes_are_refused_without_panicking(
                bytes in proptest::collection::vec(any::<u8>(), 0..80),
            ) {
                // Well-formed base64 of any length, including the token's own.
                let keys = TokenKey::new(b"secret".to_vec());
                prop_assert_eq!(keys.verify(b"q", &URL_SAFE_NO_PAD.encode(&bytes)), None);
            }
        }
    }
}
