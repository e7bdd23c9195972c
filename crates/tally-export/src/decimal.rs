//! Exact fixed-point decimals for export columns: an `i128` count of 10^-SCALE units.
//!
//! Quantities have 10 fractional digits and costs and prices 20 (a quantity with at most 10 times
//! a price with at most 10), exactly the Parquet types decimal128(38, 10) and decimal128(38, 20).
//! Text always carries the full scale (`10.0000000000`), so tools that infer types (pandas, the
//! FOCUS validator) read a decimal, never an integer.

use std::fmt;
use std::str::FromStr;

/// An exact decimal with `SCALE` fractional digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scaled<const SCALE: u32>(i128);

/// A quantity: decimal128(38, 10).
pub type ExactQuantity = Scaled<10>;
/// A cost or a unit price: decimal128(38, 20).
pub type ExactAmount = Scaled<20>;

/// Text that is not a plain decimal of at most `SCALE` fractional digits, or one too large.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a decimal with at most {1} fractional digits within 38 digits")]
pub struct DecimalError(pub String, pub u32);

impl<const SCALE: u32> Scaled<SCALE> {
    pub const ZERO: Self = Scaled(0);
    /// Decimal precision of the Parquet column.
    pub const PRECISION: u8 = 38;
    /// Fractional digits of the Parquet column.
    pub const SCALE: i8 = SCALE as i8;

    /// From a count of 10^-SCALE units.
    pub const fn from_units(units: i128) -> Self {
        Scaled(units)
    }

    /// The count of 10^-SCALE units (the Parquet decimal's unscaled value).
    pub const fn units(self) -> i128 {
        self.0
    }

    /// From an integer mantissa and its own scale (`mantissa` x 10^-`scale`), exactly: `None`
    /// when `scale` exceeds SCALE or the value overflows.
    pub fn from_mantissa(mantissa: i128, scale: u32) -> Option<Self> {
        let shift = SCALE.checked_sub(scale)?;
        mantissa.checked_mul(10i128.checked_pow(shift)?).map(Scaled)
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Scaled)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl<const SCALE: u32> fmt::Display for Scaled<SCALE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let one = 10u128.pow(SCALE);
        let (integer, fraction) = (magnitude / one, magnitude % one);
        if SCALE == 0 {
            write!(f, "{sign}{integer}")
        } else {
            write!(
                f,
                "{sign}{integer}.{fraction:0width$}",
                width = SCALE as usize
            )
        }
    }
}

impl<const SCALE: u32> FromStr for Scaled<SCALE> {
    type Err = DecimalError;

    /// A plain decimal: optional `-`, digits, optionally `.` and at most SCALE digits.
    fn from_str(text: &str) -> Result<Self, DecimalError> {
        let error = || DecimalError(text.to_string(), SCALE);
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty()
            || !all_digits(integer)
            || !all_digits(fraction)
            || (digits.contains('.') && fraction.is_empty())
            || fraction.len() > SCALE as usize
        {
            return Err(error());
        }
        let padded = format!("{integer}{fraction:0<width$}", width = SCALE as usize);
        let significant = padded.trim_start_matches('0');
        if significant.len() > 38 {
            return Err(error());
        }
        let units: i128 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| error())?
        };
        Ok(Scaled(if negative { -units } else { units }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_the_full_scale_and_round_trips() {
        let q: ExactQuantity = "10".parse().unwrap();
        assert_eq!(q.to_string(), "10.0000000000");
        let a: ExactAmount = "-0.5".parse().unwrap();
        assert_eq!(a.to_string(), "-0.50000000000000000000");
        assert_eq!(a.units(), -50_000_000_000_000_000_000);
        let big: ExactAmount = "123456789012345678.12345678901234567891".parse().unwrap();
        assert_eq!(big.to_string(), "123456789012345678.12345678901234567891");
    }

    #[test]
    fn rejects_what_is_not_exact() {
        for bad in ["", "-", "1.", ".5", "1e3", "1.000000000001", "+1", "1,5"] {
            assert!(bad.parse::<ExactQuantity>().is_err(), "{bad}");
        }
        assert!("1234567890123456789.0".parse::<ExactAmount>().is_err());
    }

    #[test]
    fn from_mantissa_rescales_exactly() {
        assert_eq!(
            ExactAmount::from_mantissa(25, 1).unwrap().to_string(),
            "2.50000000000000000000"
        );
        assert_eq!(ExactQuantity::from_mantissa(1, 11), None);
    }
}
