//! Exact, non-negative decimal quantities with ten fractional digits.
//!
//! A quantity is a count of 10^-10 units in a `u128`. The contract fixes the scale (at most ten
//! fractional digits) and the sign (>= 0), so fixed point is exact by construction: sums never
//! round, whatever their size, and no binary floating point is involved anywhere.
//! For storage a quantity splits into whole units and a fraction, both plain integers, so that
//! SQLite (which has no decimal type) and PostgreSQL add them exactly alike.

use std::fmt;

/// Fractional digits kept by every quantity.
pub const FRACTION_DIGITS: usize = 10;
/// 10^FRACTION_DIGITS: the number of fraction steps in one unit.
pub const FRACTION_SCALE: u64 = 10_000_000_000;
/// A record's quantity has at most this many integer digits, so its units fit an `i64`.
pub const MAX_RECORD_INTEGER_DIGITS: usize = 18;
/// Any quantity (a sum included) has at most this many integer digits, so it fits a `u128`.
const MAX_INTEGER_DIGITS: usize = 28;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u128);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error("quantity must not be negative")]
    Negative,
    #[error("quantity must be a plain decimal such as 17 or 2.4")]
    Malformed,
    #[error("quantity has more than 10 fractional digits")]
    TooManyFractionDigits,
    #[error("quantity has more than 18 integer digits")]
    TooLargeForRecord,
    #[error("quantity has more than 28 integer digits")]
    TooLarge,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// Parses a record's quantity: [`Quantity::parse`], and below 10^18 so its whole units fit
    /// the record's integer column.
    pub fn parse_record(text: &str) -> Result<Quantity, QuantityError> {
        let quantity = Quantity::parse(text)?;
        if quantity.units() >= 10u128.pow(MAX_RECORD_INTEGER_DIGITS as u32) {
            return Err(QuantityError::TooLargeForRecord);
        }
        Ok(quantity)
    }

    /// Parses the contract's decimal form: digits, optionally a dot and 1..=10 more digits.
    /// No sign, exponent, separators or surrounding spaces.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        if text.starts_with('-') {
            return Err(QuantityError::Negative);
        }
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(QuantityError::Malformed);
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > FRACTION_DIGITS {
            return Err(QuantityError::TooManyFractionDigits);
        }
        let significant = integer.trim_start_matches('0');
        if significant.len() > MAX_INTEGER_DIGITS {
            return Err(QuantityError::TooLarge);
        }
        let units: u128 = significant.parse().unwrap_or(0);
        let mut steps: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().unwrap_or(0)
        };
        for _ in fraction.len()..FRACTION_DIGITS {
            steps *= 10;
        }
        Ok(Quantity(units * u128::from(FRACTION_SCALE) + steps))
    }

    /// Rebuilds a quantity from its stored parts. `fraction` may exceed one unit (partial sums
    /// add fractions before carrying); the carry is applied here.
    pub fn from_parts(units: u128, fraction: u128) -> Quantity {
        Quantity(units * u128::from(FRACTION_SCALE) + fraction)
    }

    /// Whole units.
    pub fn units(self) -> u128 {
        self.0 / u128::from(FRACTION_SCALE)
    }

    /// The fraction, in 10^-10 steps, always below one unit.
    pub fn fraction(self) -> u64 {
        (self.0 % u128::from(FRACTION_SCALE)) as u64
    }

    /// The raw count of 10^-10 steps.
    pub fn steps(self) -> u128 {
        self.0
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, other: Quantity) {
        // 3.4e28 units cannot be reached by sums of records below 1e18 each in any real volume.
        self.0 += other.0;
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        let mut total = Quantity::ZERO;
        for q in iter {
            total += q;
        }
        total
    }
}

/// The shortest exact form: `17`, `2.4`, `0.0000000001`.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fraction = self.fraction();
        if fraction == 0 {
            return write!(f, "{}", self.units());
        }
        let digits = format!("{fraction:010}");
        write!(f, "{}.{}", self.units(), digits.trim_end_matches('0'))
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        for (text, printed) in [
            ("17", "17"),
            ("2.4000000000", "2.4"),
            ("0.0000000001", "0.0000000001"),
            ("007.50", "7.5"),
            ("0", "0"),
            (
                "999999999999999999.9999999999",
                "999999999999999999.9999999999",
            ),
        ] {
            assert_eq!(
                Quantity::parse(text).unwrap().to_string(),
                printed,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_what_the_contract_forbids() {
        use QuantityError::*;
        for (text, error) in [
            ("", Empty),
            ("-1", Negative),
            ("1e5", Malformed),
            ("+1", Malformed),
            (" 1", Malformed),
            ("1.", Malformed),
            (".5", Malformed),
            ("1_000", Malformed),
            ("NaN", Malformed),
            ("0.00000000001", TooManyFractionDigits),
            ("10000000000000000000000000000", TooLarge),
        ] {
            assert_eq!(Quantity::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(
            Quantity::parse_record("1000000000000000000"),
            Err(TooLargeForRecord)
        );
        assert!(Quantity::parse_record("999999999999999999.9999999999").is_ok());
        assert!(Quantity::parse("2999999999999999999.9999999997").is_ok());
    }

    #[test]
    fn sums_are_exact_where_binary_floats_are_not() {
        let tenth = Quantity::parse("0.1").unwrap();
        let total: Quantity = std::iter::repeat_n(tenth, 100_000).sum();
        assert_eq!(total.to_string(), "10000");
        let tiny = Quantity::parse("0.0000000001").unwrap();
        let total: Quantity = std::iter::repeat_n(tiny, 123_456).sum();
        assert_eq!(total.to_string(), "0.0000123456");
    }

    #[test]
    fn parts_round_trip_with_carry() {
        let q = Quantity::parse("123456789012345678.0123456789").unwrap();
        assert_eq!(Quantity::from_parts(q.units(), u128::from(q.fraction())), q);
        let carried = Quantity::from_parts(1, u128::from(FRACTION_SCALE) * 3 + 5);
        assert_eq!(carried.to_string(), "4.0000000005");
    }
}
