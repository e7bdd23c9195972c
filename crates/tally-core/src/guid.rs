//! GUIDs as the contract accepts them: any case, with or without dashes and braces.

use uuid::Uuid;

/// Parses a GUID in any of the accepted spellings. Callers format the result with
/// `Uuid::hyphenated`, which is the canonical lower-case form the contract returns.
pub fn parse_guid(text: &str) -> Option<Uuid> {
    let text = text.trim();
    // `Uuid::parse_str` also accepts `urn:uuid:` prefixes, which the contract does not.
    if text.is_empty() || text.starts_with("urn:") {
        return None;
    }
    Uuid::parse_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_spelling_and_canonicalises() {
        let canonical = "f271a8a3-88c4-4d93-956a-063e1d2fa80b";
        for spelling in [
            "F271A8A388C44D93956A063E1D2FA80B",
            "f271a8a3-88c4-4d93-956a-063e1d2fa80b",
            "{F271A8A3-88C4-4D93-956A-063E1D2FA80B}",
        ] {
            let guid = parse_guid(spelling).expect(spelling);
            assert_eq!(guid.hyphenated().to_string(), canonical);
        }
    }

    #[test]
    fn rejects_what_is_not_a_guid() {
        for bad in [
            "",
            "not-a-guid",
            "f271a8a3-88c4-4d93-956a",
            "urn:uuid:f271a8a3-88c4-4d93-956a-063e1d2fa80b",
        ] {
            assert!(parse_guid(bad).is_none(), "{bad}");
        }
    }
}
