//! GUIDs as the contract accepts them: any case, with or without dashes and braces.

use uuid::Uuid;

use crate::error::{Reason, Rejection};

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

/// The contract's spelling of a GUID: lower case, with dashes.
pub fn format_guid(id: &Uuid) -> String {
    id.hyphenated().to_string()
}

/// A required GUID field; a missing or malformed one is `InvalidProperty` naming `field`.
pub fn guid_field(field: &str, text: &str) -> Result<Uuid, Rejection> {
    parse_guid(text).ok_or_else(|| Rejection::field(Reason::InvalidProperty, field, bad_guid(text)))
}

/// An optional GUID field: empty is `None`; a malformed one is `InvalidProperty` naming `field`.
pub fn optional_guid_field(field: &str, text: &str) -> Result<Option<Uuid>, Rejection> {
    if text.is_empty() {
        Ok(None)
    } else {
        guid_field(field, text).map(Some)
    }
}

/// Why `text` is not a GUID, as a field violation says it (long input is cut short).
pub fn bad_guid(text: &str) -> String {
    if text.is_empty() {
        "is required".into()
    } else {
        format!("{:?} is not a GUID", crate::error::shorten(text))
    }
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
    fn guid_fields_name_the_field() {
        let missing = guid_field("tenant_id", "").unwrap_err();
        assert_eq!(missing.reason, Reason::InvalidProperty);
        assert_eq!(missing.violations[0].field, "tenant_id");
        assert_eq!(missing.violations[0].description, "is required");
        let bad = optional_guid_field("subscription_id", "x").unwrap_err();
        assert_eq!(bad.violations[0].description, "\"x\" is not a GUID");
        assert_eq!(optional_guid_field("subscription_id", ""), Ok(None));
        let id = guid_field("id", "{F271A8A3-88C4-4D93-956A-063E1D2FA80B}").unwrap();
        assert_eq!(format_guid(&id), "f271a8a3-88c4-4d93-956a-063e1d2fa80b");
        assert_eq!(
            bad_guid(&"y".repeat(100)).len(),
            64 + 2 + " is not a GUID".len()
        );
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
