//! Exact decimal amounts: dollars held as integer micro-dollars, fractions as millionths.
//!
//! Configuration may write money as a TOML integer, float or string. A float is turned
//! back into its shortest decimal text (what the user wrote, for any amount a person
//! types) and that text is parsed digit by digit, so no binary floating point ever
//! reaches the accounting.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount held, in micro-dollars: 2^53 - 1 (about $9 billion).
///
/// Redis Lua numbers are doubles, exact up to 2^53; keeping every amount below that
/// keeps the Redis store as exact as the others.
pub const MAX_MICROS: u64 = (1 << 53) - 1;

/// Micro-dollars in one dollar.
pub(crate) const MICROS_PER_DOLLAR: u64 = 1_000_000;

/// Parses a non-negative decimal with at most six fractional digits into millionths.
///
/// `"12.5"` is `12_500_000`; `"0.000001"` is `1`. Returns what is wrong as text.
pub(crate) fn parse_millionths(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    if t.starts_with('-') {
        return Err(format!("{text:?} is negative; use an amount of 0 or more"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err(format!(
            "{text:?} is not a decimal amount; write it like 100 or 12.50"
        ));
    }
    let frac: String = frac.chars().filter(|c| *c != '_').collect();
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 6 {
        return Err(format!(
            "{text:?} has more than 6 decimal places; round it to a micro-dollar"
        ));
    }
    let too_large = || format!("{text:?} is too large; the most is 9007199254.740991");
    let mut value: u64 = 0;
    for b in int.bytes().filter(|b| *b != b'_') {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    let mut frac_value: u64 = 0;
    for i in 0..6 {
        let digit = frac_trimmed
            .as_bytes()
            .get(i)
            .map_or(0, |b| u64::from(b - b'0'));
        frac_value = frac_value * 10 + digit;
    }
    let total = value
        .checked_mul(MICROS_PER_DOLLAR)
        .and_then(|v| v.checked_add(frac_value))
        .ok_or_else(too_large)?;
    if total > MAX_MICROS {
        return Err(too_large());
    }
    Ok(total)
}

/// Formats millionths as the shortest exact decimal: `12_500_000` is `"12.5"`.
pub fn format_micros(micros: u64) -> String {
    let int = micros / MICROS_PER_DOLLAR;
    let frac = micros % MICROS_PER_DOLLAR;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// Accepts a TOML integer, float or string and yields its exact decimal text.
struct DecimalText;

impl Visitor<'_> for DecimalText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal amount such as 100, 12.5 or \"12.50\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        if !v.is_finite() {
            return Err(E::custom(format!("{v} is not an amount")));
        }
        // Rust prints the shortest decimal that reads back as the same double, and never
        // in exponent form: for anything typed by a person that is exactly what they typed.
        Ok(format!("{v}"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

/// An amount of money in micro-dollars, configured in dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dollars(pub u64);

impl Dollars {
    /// The amount in micro-dollars.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// Parses `"12.50"` (or `"$12.50"`) exactly.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_millionths(text).map(Dollars)
    }
}

impl fmt::Display for Dollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", format_micros(self.0))
    }
}

impl Serialize for Dollars {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A string keeps the amount exact through any round trip.
        serializer.serialize_str(&format_micros(self.0))
    }
}

impl<'de> Deserialize<'de> for Dollars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(DecimalText)?;
        Dollars::parse(&text).map_err(de::Error::custom)
    }
}

/// A fraction between 0 and 1, held in millionths (`0.8` is `800_000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction(pub u32);

impl Fraction {
    /// One whole.
    pub const ONE: Fraction = Fraction(1_000_000);

    /// `amount` times this fraction, rounded up (a threshold is never below the exact value).
    pub fn of(self, amount: u64) -> u64 {
        let product = u128::from(amount) * u128::from(self.0);
        u64::try_from(product.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_micros(u64::from(self.0)))
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(DecimalText)?;
        let value = parse_millionths(&text).map_err(de::Error::custom)?;
        u32::try_from(value)
            .ok()
            .filter(|v| *v <= 1_000_000)
            .map(Fraction)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "{text} is above 1; write a fraction such as 0.8 for 80%"
                ))
            })
    }
}
