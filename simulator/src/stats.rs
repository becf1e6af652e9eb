//! Latency statistics.
//!
//! Percentiles come from an HDR histogram (Tene's HdrHistogram) of
//! nanosecond values with three significant digits, so a reported p99 is
//! within 0.1% of the exact order statistic whatever its magnitude, in
//! bounded memory. The mean is kept exactly, from the sum of the raw values,
//! because the queueing-theory checks compare means.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::time::Nanos;

/// Significant decimal digits the histogram keeps.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The largest value an auto-resizing histogram can track.
pub(crate) const MAX_TRACKABLE: u64 = (i64::MAX / 2) as u64;

/// Collects the latencies of one population of requests.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    count: u64,
    sum: u128,
    max: Nanos,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        // An auto-resizing histogram grows to the largest value recorded.
        let histogram = Histogram::new(SIGNIFICANT_DIGITS)
            .expect("three significant digits is within the supported 0..=5");
        LatencyRecorder { histogram, count: 0, sum: 0, max: 0 }
    }

    pub fn record(&mut self, latency: Nanos) {
        // The histogram grows to fit, up to a cap some 146 years above any
        // run the request limit allows; clamping keeps `record` infallible.
        let value = latency.clamp(1, MAX_TRACKABLE);
        if self.histogram.record(value).is_err() {
            self.histogram.saturating_record(value);
        }
        self.count += 1;
        self.sum += u128::from(latency);
        self.max = self.max.max(latency);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact mean in nanoseconds (0 when nothing was recorded).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum as f64 / self.count as f64
    }

    /// The distribution as (quantile, nanoseconds) pairs: 100 even steps,
    /// then finer ones into the tail.
    pub fn cdf(&self) -> Vec<(f64, Nanos)> {
        if self.count == 0 {
            return Vec::new();
        }
        let even = (1..100).map(|i| f64::from(i) / 100.0);
        let tail = [0.995, 0.999, 0.9995, 0.9999, 1.0];
        even.chain(tail).map(|q| (q, self.histogram.value_at_quantile(q))).collect()
    }

    pub fn summary(&self) -> Latency {
        let quantile =
            |q: f64| if self.count == 0 { 0 } else { self.histogram.value_at_quantile(q) };
        Latency {
            mean_ns: self.mean().round() as Nanos,
            p50_ns: quantile(0.5),
            p99_ns: quantile(0.99),
            p99_9_ns: quantile(0.999),
            max_ns: self.max,
        }
    }
}

/// Latency figures of a population of requests, in nanoseconds of virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub mean_ns: Nanos,
    pub p50_ns: Nanos,
    pub p99_ns: Nanos,
    pub p99_9_ns: Nanos,
    pub max_ns: Nanos,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_uniform_sweep() {
        let mut r = LatencyRecorder::new();
        for us in 1..=10_000u64 {
            r.record(us * 1_000);
        }
        let s = r.summary();
        assert_eq!(s.mean_ns, 5_000_500);
        assert_eq!(s.max_ns, 10_000_000);
        let close = |got: u64, want: u64| (got as f64 / want as f64 - 1.0).abs() < 0.001;
        assert!(close(s.p50_ns, 5_000_000), "{s:?}");
        assert!(close(s.p99_ns, 9_900_000), "{s:?}");
        assert!(close(s.p99_9_ns, 9_990_000), "{s:?}");
    }

    #[test]
    fn empty_and_extreme_values_do_not_panic() {
        assert_eq!(LatencyRecorder::new().summary().p99_ns, 0);
        let mut r = LatencyRecorder::new();
        r.record(0);
        r.record(u64::MAX / 4);
        assert_eq!(r.count(), 2);
    }
}
