//! Fuzz target: continuation-token decoding (`tally_aggregator::token::TokenKey::verify`).
//! Any string is refused or yields the row key it was issued for; an issued token round-trips,
//! and any other spelling of it, or the same token for another query, is refused.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tally_aggregator::token::TokenKey;
use tally_store::usage::{RowKey, UnixSeconds};

#[derive(Arbitrary, Debug)]
struct Input {
    secret: Vec<u8>,
    query: Vec<u8>,
    other_query: Vec<u8>,
    /// A token from a client: decoded as it comes.
    presented: String,
    /// A row key to issue a token for, and an edit to make to that token.
    key: (i64, i64, i64, i64),
    edit: Option<(u16, char)>,
}

fuzz_target!(|input: Input| {
    let keys = TokenKey::new(input.secret);
    if let Some(found) = keys.verify(&input.query, &input.presented) {
        // Only a token this key issued verifies: it is the one issued for what it carries.
        assert_eq!(keys.issue(&input.query, found), input.presented);
    }

    let (bucket, subscription_key, meter_key, instance_key) = input.key;
    let key = RowKey {
        usage_bucket: UnixSeconds::from_stored(bucket),
        subscription_key,
        meter_key,
        instance_key,
    };
    let token = keys.issue(&input.query, key);
    assert_eq!(keys.verify(&input.query, &token), Some(key));
    if input.other_query != input.query {
        assert_eq!(keys.verify(&input.other_query, &token), None);
    }
    if let Some((at, replacement)) = input.edit {
        let mut chars: Vec<char> = token.chars().collect();
        let at = usize::from(at) % (chars.len() + 1);
        if at == chars.len() {
            chars.push(replacement);
        } else {
            chars[at] = replacement;
        }
        let edited: String = chars.into_iter().collect();
        if edited != token {
            assert_eq!(keys.verify(&input.query, &edited), None, "{edited:?}");
        }
    }
});
