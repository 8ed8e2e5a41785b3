//! The injectable clock: the only way time enters the pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::Timestamp;

/// A source of the current time.
///
/// Every component that needs "now" takes a `Clock`, so tests use a [`ManualClock`]
/// and stay deterministic.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_jiff(jiff::Timestamp::now())
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Cloning shares the same instant, so a test can hand one clone to the code
/// under test and advance the other.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            micros: Arc::new(AtomicI64::new(start.unix_micros())),
        }
    }

    /// Moves the clock to `to` (backwards too, to test skew handling).
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.unix_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `micros` microseconds.
    pub fn advance_micros(&self, micros: i64) {
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_micros(secs.saturating_mul(1_000_000));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.micros.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::new(Timestamp::from_unix_secs(100));
        let seen_by_code = clock.clone();
        assert_eq!(seen_by_code.now(), Timestamp::from_unix_secs(100));
        clock.advance_secs(5);
        assert_eq!(seen_by_code.now(), Timestamp::from_unix_secs(105));
        clock.advance_micros(-10_000_000);
        assert_eq!(seen_by_code.now(), Timestamp::from_unix_secs(95));
        clock.set(Timestamp::EPOCH);
        assert_eq!(seen_by_code.now(), Timestamp::EPOCH);
    }

    #[test]
    fn system_clock_is_after_2025_and_monotone_enough() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(a > Timestamp::from_unix_secs(1_735_689_600));
        assert!(b >= a);
    }

    #[test]
    fn clock_works_behind_arc_dyn() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_unix_secs(7)));
        assert_eq!(clock.now().unix_secs(), 7);
    }
}
