//! UTC timestamps with microsecond precision, formatted as RFC 3339.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant, held as microseconds since the Unix epoch.
///
/// Microseconds are enough for ordering decisions and fit every store we use
/// (SQLite and PostgreSQL `BIGINT`). Serialized as RFC 3339 with a `Z` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// A timestamp string that is not RFC 3339, or an instant out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: expected RFC 3339 such as 2026-01-31T12:00:00Z")]
pub struct TimestampError {
    input: String,
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp from milliseconds since the Unix epoch (saturating).
    pub const fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis.saturating_mul(1_000))
    }

    /// A timestamp from whole seconds since the Unix epoch (saturating).
    pub const fn from_unix_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Milliseconds since the Unix epoch, rounded towards negative infinity.
    pub const fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// Whole seconds since the Unix epoch, rounded towards negative infinity.
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant moved by `micros` (saturating).
    pub const fn add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// This instant moved by `secs` seconds (saturating).
    pub const fn add_secs(self, secs: i64) -> Self {
        self.add_micros(secs.saturating_mul(1_000_000))
    }

    /// The instant as a `jiff` timestamp, for calendar arithmetic.
    pub fn to_jiff(self) -> jiff::Timestamp {
        // Every i64 microsecond count within jiff's range (years -9999..=9999) converts;
        // beyond it we clamp, which only affects instants no clock produces.
        jiff::Timestamp::from_microsecond(self.0).unwrap_or(if self.0 < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }

    /// The instant from a `jiff` timestamp (sub-microsecond digits are dropped).
    pub fn from_jiff(ts: jiff::Timestamp) -> Self {
        Timestamp(ts.as_microsecond())
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-24T07:08:14.123456Z`.
    pub fn to_rfc3339(self) -> String {
        format!("{:.6}", self.to_jiff())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.to_jiff())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<jiff::Timestamp>()
            .map(Timestamp::from_jiff)
            .map_err(|_| TimestampError {
                input: s.to_owned(),
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc_with_micros() {
        let ts = Timestamp::from_unix_micros(1_764_000_000_123_456);
        assert_eq!(ts.to_rfc3339(), "2025-11-24T16:00:00.123456Z");
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn parses_what_it_prints_and_offsets() {
        let ts = Timestamp::from_unix_micros(1_764_000_000_123_456);
        assert_eq!(ts.to_rfc3339().parse::<Timestamp>(), Ok(ts));
        let with_offset: Timestamp = "2025-11-24T17:00:00.123456+01:00".parse().unwrap();
        assert_eq!(with_offset, ts);
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[test]
    fn unit_conversions_round_down() {
        let ts = Timestamp::from_unix_micros(-1);
        assert_eq!(ts.unix_millis(), -1);
        assert_eq!(ts.unix_secs(), -1);
        assert_eq!(Timestamp::from_unix_secs(3).unix_millis(), 3_000);
        assert_eq!(Timestamp::from_unix_secs(3).add_secs(2).unix_secs(), 5);
    }

    #[test]
    fn serde_is_rfc3339() {
        let ts = Timestamp::from_unix_secs(0);
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(json, "\"1970-01-01T00:00:00.000000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
    }
}
