//! Budget periods: calendar months in the configured IANA time zone.

use std::fmt;
use std::str::FromStr;

use jiff::ToSpan;
use jiff::tz::TimeZone;
use lexecon_core::Timestamp;

/// One calendar month, e.g. `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// The year.
    pub year: i16,
    /// The month, 1..=12.
    pub month: i8,
}

impl Period {
    /// The month containing `at` in `tz`.
    pub fn at(at: Timestamp, tz: &TimeZone) -> Period {
        let date = at.to_jiff().to_zoned(tz.clone()).date();
        Period {
            year: date.year(),
            month: date.month(),
        }
    }

    /// The instant this month ends (the next one starts) in `tz`.
    pub fn end(self, tz: &TimeZone) -> Option<Timestamp> {
        let first = jiff::civil::Date::new(self.year, self.month, 1).ok()?;
        let next = first.checked_add(1.month()).ok()?;
        let zoned = next.to_zoned(tz.clone()).ok()?;
        Some(Timestamp::from_jiff(zoned.timestamp()))
    }

    /// The instant this month starts in `tz`.
    pub fn start(self, tz: &TimeZone) -> Option<Timestamp> {
        let first = jiff::civil::Date::new(self.year, self.month, 1).ok()?;
        let zoned = first.to_zoned(tz.clone()).ok()?;
        Some(Timestamp::from_jiff(zoned.timestamp()))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A period string that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid period {0:?}: expected YYYY-MM such as 2026-11")]
pub struct PeriodError(String);

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PeriodError(s.to_owned());
        let (y, m) = s.split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let year: i16 = y.parse().map_err(|_| err())?;
        let month: i8 = m.parse().map_err(|_| err())?;
        if !(1..=12).contains(&month) {
            return Err(err());
        }
        Ok(Period { year, month })
    }
}

/// A cache of the current period, so that the hot path does not convert time zones on
/// every call.
#[derive(Debug)]
pub(crate) struct PeriodCache {
    tz: TimeZone,
    current: std::sync::Mutex<Option<(Period, i64, i64)>>,
}

impl PeriodCache {
    pub(crate) fn new(tz: TimeZone) -> PeriodCache {
        PeriodCache {
            tz,
            current: std::sync::Mutex::new(None),
        }
    }

    /// The period containing `now`, and when it ends.
    pub(crate) fn period(&self, now: Timestamp) -> (Period, Option<Timestamp>) {
        let t = now.unix_micros();
        let mut guard = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((p, start, end)) = *guard
            && start <= t
            && t < end
        {
            return (p, Some(Timestamp::from_unix_micros(end)));
        }
        let p = Period::at(now, &self.tz);
        let end = p.end(&self.tz);
        if let (Some(start), Some(end)) = (p.start(&self.tz), end) {
            *guard = Some((p, start.unix_micros(), end.unix_micros()));
        }
        (p, end)
    }
}
