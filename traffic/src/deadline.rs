//! Per-try and whole-request timeouts.
//!
//! A route has two clocks: each try may take at most `per_try`, and the
//! request as a whole (every try and every backoff between them) at most
//! `overall`, counted from when the gateway received it. The time a try may
//! take is the smaller of the two budgets that remain, so a retry late in
//! the request gets only what is left, and the client is never kept past
//! the overall deadline by a retry that started just before it. This is the
//! arithmetic of Envoy's `per_try_timeout` within a route `timeout`, and of
//! gRPC's deadline propagation.

use std::time::Duration;

use crate::time::Nanos;

/// Timeouts of a route. `None` is no limit; `Some(ZERO)` leaves no time at
/// all, so every try is refused at once (`check` reports such settings).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct DeadlineSettings {
    pub per_try: Option<Duration>,
    pub overall: Option<Duration>,
}

impl DeadlineSettings {
    /// The longest a request can take with `attempts` tries each running to
    /// its per-try timeout, with `backoff` between tries, bounded by the
    /// overall timeout; `None` when nothing bounds it. `check` compares this
    /// with the route's timeout.
    pub fn worst_case(&self, attempts: u32, backoff: Duration) -> Option<Duration> {
        let tries = self.per_try.map(|t| {
            let waits = backoff.saturating_mul(attempts.max(1) - 1);
            t.saturating_mul(attempts.max(1)).saturating_add(waits)
        });
        match (tries, self.overall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `attempts` full tries fit in the overall timeout.
    pub fn tries_fit(&self, attempts: u32) -> bool {
        match (self.per_try, self.overall) {
            (Some(t), Some(o)) => t.saturating_mul(attempts.max(1)) <= o,
            _ => true,
        }
    }
}

/// Which limit bounds a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bound {
    /// The per-try timeout: on expiry, the try failed and a retry may follow.
    PerTry,
    /// The overall deadline: on expiry, the request is over (504).
    Overall,
}

/// The time the next try may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryBudget {
    /// No timeout applies.
    Unbounded,
    /// The try must end within `timeout`, set by `by`.
    Bounded { timeout: Duration, by: Bound },
    /// The overall deadline has passed (or a timeout is zero): do not try.
    Expired,
}

/// The deadlines of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Deadline {
    settings: DeadlineSettings,
    started: Nanos,
}

impl Deadline {
    /// The deadlines of a request received at `started`.
    #[inline]
    pub fn new(settings: DeadlineSettings, started: Nanos) -> Deadline {
        Deadline { settings, started }
    }

    /// When the request must be over, if ever.
    #[inline]
    pub fn overall_deadline(&self) -> Option<Nanos> {
        self.settings.overall.map(|o| self.started.after(o))
    }

    /// Time left before the overall deadline; `None` when there is none.
    #[inline]
    pub fn remaining(&self, now: Nanos) -> Option<Duration> {
        self.overall_deadline().map(|d| d.since(now))
    }

    /// The budget of a try that starts at `now`.
    #[inline]
    pub fn next_try(&self, now: Nanos) -> TryBudget {
        let overall = self.remaining(now).map(|t| (t, Bound::Overall));
        let per_try = self.settings.per_try.map(|t| (t, Bound::PerTry));
        // The tighter limit wins; on a tie, the overall one (it ends the request).
        let tighter = match (per_try, overall) {
            (Some(p), Some(o)) => Some(if p.0 < o.0 { p } else { o }),
            (p, o) => p.or(o),
        };
        match tighter {
            None => TryBudget::Unbounded,
            Some((t, _)) if t.is_zero() => TryBudget::Expired,
            Some((timeout, by)) => TryBudget::Bounded { timeout, by },
        }
    }

    /// The budget of a try that starts after waiting `backoff` from `now`.
    pub fn after_backoff(&self, now: Nanos, backoff: Duration) -> TryBudget {
        self.next_try(now.after(backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn the_tighter_budget_wins() {
        use Bound::*;
        use TryBudget::*;
        let both = DeadlineSettings { per_try: Some(ms(300)), overall: Some(ms(1000)) };
        let table = [
            (both, 0, Bounded { timeout: ms(300), by: PerTry }),
            (both, 600, Bounded { timeout: ms(300), by: PerTry }),
            (both, 700, Bounded { timeout: ms(300), by: Overall }),
            (both, 800, Bounded { timeout: ms(200), by: Overall }),
            (both, 1000, Expired),
            (both, 5000, Expired),
            (
                DeadlineSettings { per_try: Some(ms(300)), overall: None },
                9000,
                Bounded { timeout: ms(300), by: PerTry },
            ),
            (
                DeadlineSettings { per_try: None, overall: Some(ms(50)) },
                20,
                Bounded { timeout: ms(30), by: Overall },
            ),
            (DeadlineSettings::default(), 1 << 40, Unbounded),
            (DeadlineSettings { per_try: Some(Duration::ZERO), overall: None }, 0, Expired),
            (DeadlineSettings { per_try: None, overall: Some(Duration::ZERO) }, 0, Expired),
        ];
        for (settings, now, budget) in table {
            let d = Deadline::new(settings, at(100));
            assert_eq!(d.next_try(at(100 + now)), budget, "{settings:?} at +{now}");
        }
    }

    #[test]
    fn backoff_counts_against_the_deadline() {
        let d = Deadline::new(DeadlineSettings { per_try: None, overall: Some(ms(100)) }, at(0));
        assert_eq!(
            d.after_backoff(at(50), ms(30)),
            TryBudget::Bounded { timeout: ms(20), by: Bound::Overall }
        );
        assert_eq!(d.after_backoff(at(50), ms(60)), TryBudget::Expired);
        assert_eq!(d.remaining(at(500)), Some(Duration::ZERO));
        let huge =
            Deadline::new(DeadlineSettings { per_try: None, overall: Some(Duration::MAX) }, at(5));
        assert_eq!(huge.overall_deadline(), Some(Nanos::MAX));
    }

    #[test]
    fn worst_case_for_check() {
        let s = DeadlineSettings { per_try: Some(ms(300)), overall: Some(ms(1000)) };
        assert_eq!(s.worst_case(3, ms(50)), Some(ms(1000)));
        assert_eq!(s.worst_case(2, ms(50)), Some(ms(650)));
        assert_eq!(s.worst_case(0, ms(50)), Some(ms(300)));
        assert!(s.tries_fit(3) && !s.tries_fit(4));
        assert_eq!(DeadlineSettings::default().worst_case(3, ms(5)), None);
        let open = DeadlineSettings { per_try: Some(Duration::MAX), overall: None };
        assert_eq!(open.worst_case(u32::MAX, Duration::MAX), Some(Duration::MAX));
    }

    proptest! {
        /// A try never runs past the overall deadline or its own timeout.
        #[test]
        fn a_try_never_outlives_either_limit(
            per_try in proptest::option::of(0u64..10_000),
            overall in proptest::option::of(0u64..10_000),
            start in 0u64..1_000_000,
            elapsed in 0u64..20_000,
        ) {
            let settings = DeadlineSettings { per_try: per_try.map(ms), overall: overall.map(ms) };
            let d = Deadline::new(settings, at(start));
            let now = at(start + elapsed);
            match d.next_try(now) {
                TryBudget::Bounded { timeout, .. } => {
                    prop_assert!(!timeout.is_zero());
                    if let Some(p) = per_try { prop_assert!(timeout <= ms(p)); }
                    if let Some(end) = d.overall_deadline() { prop_assert!(now.after(timeout) <= end); }
                }
                TryBudget::Unbounded => prop_assert!(per_try.is_none() && overall.is_none()),
                TryBudget::Expired => prop_assert!(
                    per_try == Some(0) || overall.is_some_and(|o| elapsed >= o)
                ),
            }
        }
    }
}
