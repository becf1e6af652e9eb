//! Clock readings passed in by the caller.
//!
//! Decision code never reads a clock. The runtime converts its monotonic
//! clock into [`Nanos`] since an epoch of its choosing (its start, say); the
//! simulator passes its virtual time. Spans are plain [`Duration`]s.
//!
//! All arithmetic saturates: a reading that goes backwards (two threads that
//! read the clock in one order and report in the other) counts as no time
//! passing rather than as a huge one, and nothing overflows.

use std::time::Duration;

/// A clock reading: nanoseconds since an arbitrary epoch fixed by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The epoch.
    pub const ZERO: Nanos = Nanos(0);
    /// The latest representable reading, used for "never".
    pub const MAX: Nanos = Nanos(u64::MAX);

    pub const fn from_millis(ms: u64) -> Nanos {
        Nanos(ms.saturating_mul(1_000_000))
    }

    pub const fn from_secs(s: u64) -> Nanos {
        Nanos(s.saturating_mul(1_000_000_000))
    }

    /// A span since the epoch, saturating at [`Nanos::MAX`].
    pub fn from_duration(d: Duration) -> Nanos {
        Nanos(duration_nanos(d))
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Nanos) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Nanos::MAX`].
    pub fn after(self, d: Duration) -> Nanos {
        Nanos(self.0.saturating_add(duration_nanos(d)))
    }

    /// Time since the epoch as a [`Duration`].
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

/// Whole nanoseconds of `d`, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Nanos(5).since(Nanos(9)), Duration::ZERO);
        assert_eq!(Nanos(9).since(Nanos(5)), Duration::from_nanos(4));
        assert_eq!(Nanos::MAX.after(Duration::from_secs(1)), Nanos::MAX);
        assert_eq!(Nanos::from_duration(Duration::MAX), Nanos::MAX);
        assert_eq!(Nanos::from_secs(u64::MAX), Nanos::MAX);
        assert_eq!(Nanos::from_millis(3).after(Duration::from_millis(2)), Nanos::from_millis(5));
        assert_eq!(Nanos::from_secs(2).as_duration(), Duration::from_secs(2));
    }
}
