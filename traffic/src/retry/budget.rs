//! The retry budget: retries may be at most a share of recent requests.
//!
//! Per-request attempt limits alone let retries multiply load exactly when
//! an upstream is least able to take it: with three attempts, a brown-out
//! that fails every try triples the traffic and turns into an outage. A
//! budget bounds retries pool-wide to `ratio_percent` of the original
//! requests seen in the last `window`, plus a small reserve of
//! `min_per_second` so that a quiet route can still retry at all. This is
//! the scheme of Finagle's `RetryBudget` and linkerd's retry budgets.
//!
//! A retry is counted the moment it is admitted, before its backoff, not
//! when it is sent. A proxy that counted only retries on the wire once let a
//! thousand retries waiting in backoff through together, each of which had
//! seen an empty budget.
//!
//! The window slides in [`BUCKETS`] steps: counts live in buckets of
//! `window / BUCKETS`, and the oldest bucket is dropped whole. So the bound
//! holds exactly over every window the budget itself sees (the current
//! bucket and the ones before it, spanning `window`); a window of the same
//! length at an arbitrary offset can also see the tail of one older bucket.
//! The state is a handful of counters behind one mutex, since admitting a
//! retry must read the window and count the retry in one step: with
//! separate atomics, two threads could both see room for the last retry and
//! both take it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::time::{duration_nanos, Nanos};

/// Buckets the window is divided into.
pub const BUCKETS: u64 = 10;

/// Shortest window; shorter settings read as this.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);

/// Budget settings of a route or pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BudgetSettings {
    /// Retries allowed per 100 original requests in the window (may exceed 100).
    pub ratio_percent: u32,
    /// Retries allowed per second of window regardless of traffic.
    pub min_per_second: u32,
    /// How far back requests and retries count.
    pub window: Duration,
}

impl Default for BudgetSettings {
    fn default() -> BudgetSettings {
        BudgetSettings { ratio_percent: 20, min_per_second: 10, window: Duration::from_secs(10) }
    }
}

impl BudgetSettings {
    /// Retries the window allows beyond the ratio: `min_per_second × window`.
    pub fn reserve(&self) -> u64 {
        let window = duration_nanos(self.window.max(MIN_WINDOW));
        let r = u128::from(self.min_per_second) * u128::from(window) / 1_000_000_000;
        u64::try_from(r).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket of time this is (time / bucket width); stale when older
    /// than the window.
    epoch: u64,
    requests: u64,
    retries: u64,
}

#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS as usize],
    /// The latest epoch seen; earlier readings count as this one.
    latest: u64,
}

/// A retry budget, shared by every worker.
#[derive(Debug)]
pub struct RetryBudget {
    settings: BudgetSettings,
    width: u64,
    reserve: u64,
    window: Mutex<Window>,
}

impl RetryBudget {
    pub fn new(settings: BudgetSettings) -> RetryBudget {
        let width = (duration_nanos(settings.window.max(MIN_WINDOW)) / BUCKETS).max(1);
        let window = Window { buckets: Default::default(), latest: 0 };
        RetryBudget { settings, width, reserve: settings.reserve(), window: Mutex::new(window) }
    }

    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// Count an original request (not a retry) received at `now`.
    pub fn record_request(&self, now: Nanos) {
        self.with_bucket(now, |b, _, _| b.requests = b.requests.saturating_add(1));
    }

    /// Admit one retry at `now` if the budget allows, counting it at once.
    pub fn try_withdraw(&self, now: Nanos) -> bool {
        let (ratio, reserve) = (u128::from(self.settings.ratio_percent), u128::from(self.reserve));
        self.with_bucket(now, |b, requests, retries| {
            let allowed =
                100 * (u128::from(retries) + 1) <= ratio * u128::from(requests) + 100 * reserve;
            if allowed {
                b.retries = b.retries.saturating_add(1);
            }
            allowed
        })
    }

    /// Retries the budget would admit at `now`.
    pub fn available(&self, now: Nanos) -> u64 {
        let (ratio, reserve) = (u128::from(self.settings.ratio_percent), u128::from(self.reserve));
        self.with_bucket(now, |_, requests, retries| {
            let total = ratio * u128::from(requests) / 100 + reserve;
            u64::try_from(total.saturating_sub(u128::from(retries))).unwrap_or(u64::MAX)
        })
    }

    /// Run `f` on the current bucket with the window's request and retry
    /// totals.
    fn with_bucket<T>(&self, now: Nanos, f: impl FnOnce(&mut Bucket, u64, u64) -> T) -> T {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = (now.0 / self.width).max(w.latest);
        w.latest = epoch;

        let slot = (epoch % BUCKETS) as usize;
        if w.buckets[slot].epoch != epoch {
            w.buckets[slot] = Bucket { epoch, ..Bucket::default() };
        }
        let live = w.buckets.iter().filter(|b| epoch - b.epoch < BUCKETS);
        let (requests, retries) = live.fold((0u64, 0u64), |(q, r), b| {
            (q.saturating_add(b.requests), r.saturating_add(b.retries))
        });
        f(&mut w.buckets[slot], requests, retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(ratio: u32, min: u32, window_ms: u64) -> RetryBudget {
        RetryBudget::new(BudgetSettings {
            ratio_percent: ratio,
            min_per_second: min,
            window: Duration::from_millis(window_ms),
        })
    }

    fn admitted(b: &RetryBudget, now: Nanos, tries: usize) -> usize {
        (0..tries).filter(|_| b.try_withdraw(now)).count()
    }

    #[test]
    fn ratio_of_requests_plus_reserve() {
        let b = budget(20, 1, 10_000);
        let t = Nanos::from_secs(100);
        (0..100).for_each(|_| b.record_request(t));
        // 20% of 100 plus 1/s over 10 s.
        assert_eq!(b.available(t), 30);
        assert_eq!(admitted(&b, t, 1000), 30);
        assert_eq!(b.available(t), 0);
    }

    #[test]
    fn pending_retries_count_at_once() {
        // A burst of failures all wanting a retry at the same instant, all
        // before any of them is sent: only the budget's worth is admitted.
        let b = budget(10, 0, 1000);
        (0..1000).for_each(|_| b.record_request(Nanos::ZERO));
        assert_eq!(admitted(&b, Nanos::from_millis(1), 1000), 100);
    }

    #[test]
    fn the_window_slides() {
        let b = budget(50, 0, 1000);
        (0..10).for_each(|_| b.record_request(Nanos::ZERO));
        assert_eq!(admitted(&b, Nanos::from_millis(500), 10), 5);
        // After a full window the requests at 0 are gone, but the retries
        // at 500 ms still count: 4 new requests allow 2, and 5 are taken.
        (0..4).for_each(|_| b.record_request(Nanos::from_millis(1000)));
        assert_eq!(b.available(Nanos::from_millis(1000)), 0);
        // Once those retries leave the window too, the 2 are there.
        assert_eq!(admitted(&b, Nanos::from_millis(1500), 10), 2);
    }

    #[test]
    fn zero_settings_are_safe() {
        let b = budget(0, 0, 0);
        (0..10).for_each(|_| b.record_request(Nanos::ZERO));
        assert!(!b.try_withdraw(Nanos::ZERO));
        assert_eq!(
            BudgetSettings {
                window: Duration::ZERO,
                min_per_second: 5000,
                ..BudgetSettings::default()
            }
            .reserve(),
            5
        );
        let huge = budget(u32::MAX, u32::MAX, u64::MAX);
        assert!(huge.try_withdraw(Nanos::MAX));
    }

    #[test]
    fn clock_readings_out_of_order_do_not_revive_old_buckets() {
        let b = budget(100, 0, 1000);
        b.record_request(Nanos::from_secs(5));
        assert!(b.try_withdraw(Nanos::from_secs(1)), "an earlier reading counts as the latest");
        assert!(!b.try_withdraw(Nanos::from_secs(5)));
    }

    proptest! {
        /// Over every window the budget sees, retries never exceed
        /// ratio × requests + reserve.
        #[test]
        fn never_exceeds_the_budget(
            ratio in 0u32..150,
            min in 0u32..5,
            window_ms in 1u64..2000,
            steps in proptest::collection::vec((0u64..300, any::<bool>()), 0..400),
        ) {
            let b = budget(ratio, min, window_ms);
            let width = (window_ms * 1_000_000 / BUCKETS).max(1);
            let reserve = b.settings().reserve();
            let mut now = 0u64;
            let mut requests: Vec<u64> = Vec::new();
            let mut retries: Vec<u64> = Vec::new();
            for (dt, is_request) in steps {
                now += dt * 1_000_000 / 7;
                if is_request {
                    b.record_request(Nanos(now));
                    requests.push(now);
                } else if b.try_withdraw(Nanos(now)) {
                    retries.push(now);
                    let from = (now / width).saturating_sub(BUCKETS - 1) * width;
                    let q = requests.iter().filter(|&&t| t >= from).count() as u64;
                    let r = retries.iter().filter(|&&t| t >= from).count() as u64;
                    prop_assert!(100 * r <= u64::from(ratio) * q + 100 * reserve,
                        "{} retries for {} requests", r, q);
                }
            }
        }
    }
}
