//! Exact decimals for prices, costs and amounts. Prices and quantities carry at most 10
//! fractional digits, so a cost (quantity x price) carries at most 20: [`Money`] is a count of
//! 10^-20 currency units in an unbounded integer, so products and sums never overflow and never
//! round (rust_decimal's 28 digits could not hold 10 + 10 fractional digits and a large
//! quantity). Only [`Money::round_half_even`] rounds, and only `amount_due` uses it.

use std::fmt;
use std::ops::{Add, AddAssign};

use num_bigint::{BigInt, Sign};
use tally_core::quantity::Quantity;

/// Fractional digits of a price, a tier boundary or an adjustment amount, at most.
pub const PRICE_DIGITS: u32 = 10;
/// Fractional digits of a [`Money`].
pub const MONEY_DIGITS: u32 = 20;

/// Why a decimal text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("must be a plain decimal such as 12 or 0.25")]
    Malformed,
    #[error("must not be negative")]
    Negative,
    #[error("has more than 10 fractional digits")]
    TooManyFractionDigits,
}

/// An exact decimal with at most 10 fractional digits: a count of 10^-10 (a price, a tier
/// boundary, an adjustment amount).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(BigInt);

impl Price {
    /// Parses `[-]digits[.digits]` with at most 10 fractional digits; `allow_negative` for
    /// adjustment amounts.
    pub fn parse(text: &str, allow_negative: bool) -> Result<Price, DecimalError> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || (body.contains('.') && fraction.is_empty())
        {
            return Err(DecimalError::Malformed);
        }
        if fraction.len() > PRICE_DIGITS as usize {
            return Err(DecimalError::TooManyFractionDigits);
        }
        let padded = format!("{whole}{fraction:0<width$}", width = PRICE_DIGITS as usize);
        let magnitude: BigInt = padded.parse().map_err(|_| DecimalError::Malformed)?;
        if negative && magnitude.sign() != Sign::NoSign && !allow_negative {
            return Err(DecimalError::Negative);
        }
        Ok(Price(if negative { -magnitude } else { magnitude }))
    }

    /// A quantity as a decimal of the same scale (quantities also have 10 fractional digits).
    pub fn of_quantity(quantity: Quantity) -> Price {
        Price(BigInt::from(quantity.steps()))
    }

    /// The amount as money (for adjustments).
    pub fn to_money(&self) -> Money {
        Money(&self.0 * BigInt::from(10u64.pow(MONEY_DIGITS - PRICE_DIGITS)))
    }

    pub fn is_negative(&self) -> bool {
        self.0.sign() == Sign::Minus
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scaled_text(&self.0, PRICE_DIGITS))
    }
}

/// An exact amount of money: a count of 10^-20 currency units.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(BigInt);

impl Money {
    pub fn zero() -> Money {
        Money(BigInt::from(0))
    }

    /// quantity x unit price, exact.
    pub fn cost(quantity: Quantity, unit_price: &Price) -> Money {
        Money(BigInt::from(quantity.steps()) * &unit_price.0)
    }

    /// This amount rounded half to even to `digits` fractional digits, written with exactly
    /// that many (the currency's minor unit: "12.30", "1234").
    pub fn round_half_even(&self, digits: u32) -> String {
        let drop = BigInt::from(10u32).pow(MONEY_DIGITS - digits);
        let negative = self.0.sign() == Sign::Minus;
        let magnitude = if negative { -&self.0 } else { self.0.clone() };
        let mut kept = &magnitude / &drop;
        let rest = &magnitude % &drop;
        let twice = &rest * BigInt::from(2);
        let odd = (&kept % BigInt::from(2)).sign() != Sign::NoSign;
        if twice > drop || (twice == drop && odd) {
            kept += 1;
        }
        let signed = if negative && kept.sign() != Sign::NoSign {
            -kept
        } else {
            kept
        };
        scaled_fixed(&signed, digits)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl AddAssign<&Money> for Money {
    fn add_assign(&mut self, other: &Money) {
        self.0 += &other.0;
    }
}

impl fmt::Display for Money {
    /// The exact value with no trailing fractional zeros ("0", "12.5", "-0.00000000000000000001").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scaled_text(&self.0, MONEY_DIGITS))
    }
}

/// `value` x 10^-digits with exactly `digits` fractional digits.
fn scaled_fixed(value: &BigInt, digits: u32) -> String {
    let negative = value.sign() == Sign::Minus;
    let magnitude = if negative { -value } else { value.clone() };
    let mut text = magnitude.to_string();
    let digits = digits as usize;
    if text.len() <= digits {
        text = format!("{}{text}", "0".repeat(digits + 1 - text.len()));
    }
    if digits > 0 {
        text.insert(text.len() - digits, '.');
    }
    if negative {
        text.insert(0, '-');
    }
    text
}

/// `value` x 10^-digits with trailing fractional zeros removed.
fn scaled_text(value: &BigInt, digits: u32) -> String {
    let text = scaled_fixed(value, digits);
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantity(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn prices_are_parsed_exactly_or_refused_with_a_cause() {
        assert_eq!(
            Price::parse("0.1234567890", false).unwrap().to_string(),
            "0.123456789"
        );
        assert_eq!(Price::parse("12", false).unwrap().to_string(), "12");
        assert_eq!(
            Price::parse("0.12345678901", false),
            Err(DecimalError::TooManyFractionDigits)
        );
        assert_eq!(Price::parse("-1", false), Err(DecimalError::Negative));
        assert_eq!(Price::parse("-1.5", true).unwrap().to_string(), "-1.5");
        for bad in ["", "1.", ".5", "1e3", "+1", "1,5", " 1"] {
            assert_eq!(
                Price::parse(bad, true),
                Err(DecimalError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_cost_keeps_twenty_fractional_digits_beyond_28_significant_ones() {
        let q = quantity("123456789012345678.0000000001");
        let p = Price::parse("98765432109.0000000001", false).unwrap();
        // Python: Decimal(q) * Decimal(p) at 100 digits of precision.
        assert_eq!(
            Money::cost(q, &p).to_string(),
            "12193263113593964223360920590.77777777870000000001"
        );
    }

    #[test]
    fn amount_due_rounds_half_to_even() {
        let money = |s: &str| Price::parse(s, true).unwrap().to_money();
        assert_eq!(money("2.5").round_half_even(0), "2");
        assert_eq!(money("3.5").round_half_even(0), "4");
        assert_eq!(money("0.125").round_half_even(2), "0.12");
        assert_eq!(money("0.135").round_half_even(2), "0.14");
        assert_eq!(money("0.1251").round_half_even(2), "0.13");
        assert_eq!(money("-2.5").round_half_even(0), "-2");
        assert_eq!(money("-0.004").round_half_even(2), "0.00");
        assert_eq!(money("7").round_half_even(2), "7.00");
    }
}
