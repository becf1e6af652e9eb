//! The latency estimate behind `peak_ewma`.
//!
//! Finagle's peak EWMA load metric, as also used by linkerd: each endpoint
//! keeps an exponentially weighted moving average of observed latency. A
//! sample above the average replaces it at once (the peak), so a sudden
//! slowdown is seen on the first slow response; a sample below it pulls it
//! down gradually, with weight `1 - exp(-elapsed / window)`, so recovery is
//! trusted only after it has lasted. Between samples the estimate decays
//! towards zero over the same window, so an endpoint that was avoided for
//! being slow is tried again after a while instead of being starved for good.
//!
//! Failures count as slow: a failed try is observed as at least the
//! configured penalty. Without that, an endpoint that answers 503 in a
//! millisecond would look like the fastest in the pool and attract more
//! traffic the more it fails.

use std::time::Duration;

use crate::time::Nanos;

/// Settings of the `peak_ewma` algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PeakEwma {
    /// Endpoints compared per pick, as for `least_request` (2 by default;
    /// [`crate::balance::ALL_CHOICES`] compares all; 0 reads as 1).
    pub choices: usize,
    /// Time constant of the decay. Zero remembers nothing: every estimate is
    /// zero as soon as time passes, and the algorithm behaves like
    /// `least_request`.
    pub window: Duration,
    /// The least latency a failed try (5xx, reset, timeout, connect failure)
    /// counts as.
    pub failure_penalty: Duration,
    /// The estimate of an endpoint with no observations yet, and of one that
    /// has just become eligible again.
    pub initial_latency: Duration,
}

impl Default for PeakEwma {
    fn default() -> PeakEwma {
        PeakEwma {
            choices: 2,
            window: Duration::from_secs(10),
            failure_penalty: Duration::from_secs(1),
            initial_latency: Duration::from_millis(10),
        }
    }
}

/// One endpoint's estimate, in nanoseconds, and when it was last updated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Estimate {
    cost: f64,
    stamp: Option<Nanos>,
}

impl Estimate {
    pub(crate) fn new(settings: &PeakEwma) -> Estimate {
        Estimate { cost: settings.initial_latency.as_nanos() as f64, stamp: None }
    }

    /// Fold in one observed try.
    pub(crate) fn observe(
        &mut self,
        settings: &PeakEwma,
        latency: Duration,
        failed: bool,
        now: Nanos,
    ) {
        let latency = if failed { latency.max(settings.failure_penalty) } else { latency };
        let sample = latency.as_nanos() as f64;
        let keep = self.stamp.map_or(0.0, |t| decay(now.since(t), settings.window));
        self.cost =
            if sample > self.cost { sample } else { self.cost * keep + sample * (1.0 - keep) };
        self.stamp = Some(self.stamp.map_or(now, |t| t.max(now)));
    }

    /// The estimate at `now`, in nanoseconds.
    pub(crate) fn cost_at(&self, settings: &PeakEwma, now: Nanos) -> f64 {
        match self.stamp {
            Some(t) => self.cost * decay(now.since(t), settings.window),
            None => self.cost,
        }
    }
}

/// The weight the past keeps after `elapsed`: `exp(-elapsed / window)`.
fn decay(elapsed: Duration, window: Duration) -> f64 {
    if elapsed.is_zero() {
        1.0
    } else if window.is_zero() {
        0.0
    } else {
        (-(elapsed.as_secs_f64() / window.as_secs_f64())).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn settings() -> PeakEwma {
        PeakEwma { window: Duration::from_secs(1), ..PeakEwma::default() }
    }

    #[test]
    fn peaks_jump_and_dips_decay() {
        let s = settings();
        let mut e = Estimate::new(&s);
        e.observe(&s, ms(100), false, Nanos::from_millis(0));
        assert_eq!(e.cost_at(&s, Nanos::from_millis(0)), 100e6);

        // A fast sample one window later moves the estimate 1 - 1/e of the way.
        e.observe(&s, ms(10), false, Nanos::from_millis(1000));
        let expected = 100e6 / std::f64::consts::E + 10e6 * (1.0 - 1.0 / std::f64::consts::E);
        assert!((e.cost_at(&s, Nanos::from_millis(1000)) - expected).abs() < 1.0);
    }

    #[test]
    fn failures_count_as_at_least_the_penalty() {
        let s = settings();
        let mut e = Estimate::new(&s);
        e.observe(&s, ms(1), true, Nanos::ZERO);
        assert_eq!(e.cost_at(&s, Nanos::ZERO), s.failure_penalty.as_nanos() as f64);
    }

    #[test]
    fn idle_estimates_decay_towards_zero() {
        let s = settings();
        let mut e = Estimate::new(&s);
        e.observe(&s, ms(100), false, Nanos::ZERO);
        let later = e.cost_at(&s, Nanos::from_secs(5));
        assert!(later < 1e6, "{later}");
    }

    #[test]
    fn zero_window_remembers_nothing_and_never_divides_by_zero() {
        let s = PeakEwma { window: Duration::ZERO, ..settings() };
        let mut e = Estimate::new(&s);
        e.observe(&s, ms(100), false, Nanos::ZERO);
        assert_eq!(e.cost_at(&s, Nanos::ZERO), 100e6);
        assert_eq!(e.cost_at(&s, Nanos(1)), 0.0);
        e.observe(&s, ms(5), false, Nanos(2));
        assert_eq!(e.cost_at(&s, Nanos(2)), 5e6);
    }

    #[test]
    fn readings_out_of_order_count_as_no_time() {
        let s = settings();
        let mut e = Estimate::new(&s);
        e.observe(&s, ms(100), false, Nanos::from_secs(10));
        e.observe(&s, ms(1), false, Nanos::from_secs(9));
        assert_eq!(e.cost_at(&s, Nanos::from_secs(10)), 100e6);
    }
}
