//! Fuzz target: quantity parsing (`Quantity::parse`, `Quantity::parse_record`).
//! Any text parses or is refused with a typed error; a parsed quantity prints in its shortest
//! form, which parses back to the same value and prints the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::Quantity;
use tally_core::quantity::QuantityError;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Quantity::parse(text);
    match Quantity::parse_record(text) {
        Ok(record) => assert_eq!(parsed, Ok(record), "a record quantity is a quantity"),
        Err(QuantityError::TooLargeForRecord) => assert!(parsed.is_ok()),
        Err(e) => assert_eq!(parsed, Err(e), "the same refusal for {text:?}"),
    }
    let Ok(quantity) = parsed else {
        return;
    };
    let printed = quantity.to_string();
    assert_eq!(
        Quantity::parse(&printed),
        Ok(quantity),
        "{text:?} printed {printed:?}"
    );
    assert_eq!(
        printed
            .parse::<Quantity>()
            .map(|q| q.to_string())
            .ok()
            .as_deref(),
        Some(printed.as_str())
    );
    assert_eq!(
        Quantity::from_parts(quantity.units(), u128::from(quantity.fraction())),
        quantity
    );
    assert!(u128::from(quantity.fraction()) < 10_000_000_000);
    // The same digits with a trailing zero on the fraction are the same value.
    if printed.contains('.') && printed.len() < 40 {
        let padded = format!("{printed}0");
        if let Ok(q) = Quantity::parse(&padded) {
            assert_eq!(q, quantity);
        }
    }
});
