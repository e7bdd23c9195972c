//! GUIDs in columns: every table stores them as hyphenated lowercase text.

use uuid::Uuid;

use crate::error::StoreError;

/// How a GUID is stored.
pub(crate) fn to_text(id: &Uuid) -> String {
    id.hyphenated().to_string()
}

/// A stored GUID read back; anything else means the table was altered behind our back.
pub(crate) fn from_text(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("{text:?} is not a GUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_as_lowercase_text() {
        let id = Uuid::from_u128(0x5F3A_9C1E_0B4D_4E8F_9A2B_1C3D_5E7F_9A0B);
        let text = to_text(&id);
        assert_eq!(text, "5f3a9c1e-0b4d-4e8f-9a2b-1c3d5e7f9a0b");
        assert_eq!(from_text(&text).unwrap(), id);
        assert!(matches!(from_text("nope"), Err(StoreError::Corrupt(_))));
    }
}
