//! Latency statistics.
//!
//! Percentiles come from an HDR histogram (Tene's HdrHistogram) of
//! nanosecond values with three significant digits, so a reported p99 is
//! within 0.1% of the exact order statistic whatever its magnitude, in
//! bounded memory. The mean is kept exactly, from the sum of the raw values,
//! because the queueing-theory checks compare means.
//!
//! A run records a value or two per request, so recording is kept to an
//! index computation and an increment, into the histogram's bins without
//! the rest of its bookkeeping ([`Bins`]), and quantiles are read from
//! those bins as the histogram reads them.

#[cfg(test)]
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::time::Nanos;

/// Significant decimal digits the histogram keeps.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The largest value an auto-resizing histogram can track.
pub(crate) const MAX_TRACKABLE: u64 = (i64::MAX / 2) as u64;

/// The bins of an HdrHistogram of `digits` significant digits whose lowest
/// discernible value is 1, counted without the histogram's per-value
/// bookkeeping (range checks, minimum, maximum, total), which costs several
/// times the increment. [`Bins::value_at_quantile`] is the histogram's: the
/// same bins give the same answers.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    /// log2 of half the sub-buckets of a bucket.
    half: u32,
    /// The sub-bucket mask: values up to it are in bucket 0.
    mask: u64,
    /// Leading zeros of the values at the top of bucket 0.
    base: u32,
    counts: Vec<u64>,
}

impl Bins {
    /// Empty bins; `digits` at most 5, as the histogram allows.
    pub fn new(digits: u8) -> Bins {
        // Unit resolution up to 2 * 10^digits, in a power of two of sub-buckets.
        let largest = 2 * 10u64.pow(u32::from(digits.min(5)));
        let magnitude = u64::BITS - (largest - 1).leading_zeros();
        Bins {
            half: magnitude - 1,
            mask: (1 << magnitude) - 1,
            base: u64::BITS - magnitude,
            counts: Vec::new(),
        }
    }

    /// Empty bins like `self`, with room for the values `self` has
    /// counted, so that bins filled with much the same values (one step of
    /// a time series after another) need one allocation rather than a
    /// growth at each new largest value.
    pub fn like(&self) -> Bins {
        Bins { counts: vec![0; self.counts.len()], ..*self }
    }

    /// The histogram's index of `value`.
    #[inline]
    fn index(&self, value: u64) -> usize {
        let bucket = self.base - (value | self.mask).leading_zeros();
        let sub = (value >> bucket) as usize;
        ((bucket as usize + 1) << self.half) + sub - (1 << self.half)
    }

    /// The lowest value of bin `index`.
    fn value_at(&self, index: usize) -> u64 {
        let half_count = 1usize << self.half;
        let bucket = (index >> self.half).saturating_sub(1);
        let sub = if index < half_count { index } else { (index & (half_count - 1)) + half_count };
        (sub as u64) << bucket
    }

    #[inline]
    pub fn record(&mut self, value: u64) {
        let i = self.index(value);
        match self.counts.get_mut(i) {
            Some(c) => *c += 1,
            None => self.grow_and_count(i),
        }
    }

    /// Grow by half again at least: latencies creep up a bin at a time.
    #[cold]
    fn grow_and_count(&mut self, i: usize) {
        let len = self.counts.len();
        self.counts.resize((i + 1).max(len + len / 2), 0);
        self.counts[i] = 1;
    }

    /// Count every value of `other`, which has the same precision, here too.
    pub fn add(&mut self, other: &Bins) {
        debug_assert_eq!((self.half, self.base), (other.half, other.base));
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, &theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    /// The value at `quantile` (clamped to 1), exactly as
    /// `Histogram::value_at_quantile` gives it: the highest value
    /// equivalent to the bin where the count reaches the quantile's share
    /// (the lowest, for quantile 0), and 0 when nothing was recorded.
    pub fn value_at_quantile(&self, quantile: f64) -> u64 {
        self.values_at_quantiles(&[quantile])[0]
    }

    /// [`Bins::value_at_quantile`] of each of `quantiles`, in one pass over
    /// the bins when they rise, as a distribution's are asked.
    pub fn values_at_quantiles(&self, quantiles: &[f64]) -> Vec<u64> {
        let total = self.counts.iter().fold(0u64, |sum, &n| sum.saturating_add(n));
        // The bins up to `next` hold `seen`; the last of them is the first
        // where the count reached the previous quantile's target.
        let (mut next, mut seen, mut previous) = (0, 0u64, u64::MAX);
        let mut values = Vec::with_capacity(quantiles.len());
        for &quantile in quantiles {
            let quantile = if quantile > 1.0 { 1.0 } else { quantile };
            let target = ((quantile * total as f64).ceil() as u64).max(1);
            if target < previous {
                (next, seen) = (0, 0);
            }
            previous = target;
            while seen < target && next < self.counts.len() {
                seen = seen.saturating_add(self.counts[next]);
                next += 1;
            }
            values.push(if seen < target { 0 } else { self.highest(next - 1, quantile) });
        }
        values
    }

    /// The value the histogram reports for bin `index` at `quantile`: the
    /// highest in the bin, or the lowest for quantile 0.
    fn highest(&self, index: usize, quantile: f64) -> u64 {
        let low = self.value_at(index);
        if quantile == 0.0 || low == u64::MAX {
            return low;
        }
        let bucket = self.base - (low | self.mask).leading_zeros();
        low.saturating_add(1 << bucket) - 1
    }

    /// The histogram of the recorded values, for checking against (of the
    /// digits the bins were made with).
    #[cfg(test)]
    fn histogram(&self, digits: u8) -> Histogram<u64> {
        let mut h = Histogram::new(digits).expect("at most 5 significant digits");
        for (i, &n) in self.counts.iter().enumerate().filter(|(_, &n)| n > 0) {
            let value = self.value_at(i);
            if h.record_n(value, n).is_err() {
                h.saturating_record_n(value, n);
            }
        }
        h
    }
}

/// Collects the latencies of one population of requests.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    bins: Bins,
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
        LatencyRecorder { bins: Bins::new(SIGNIFICANT_DIGITS), count: 0, sum: 0, max: 0 }
    }

    #[inline]
    pub fn record(&mut self, latency: Nanos) {
        // The histogram grows to fit, up to a cap some 146 years above any
        // run the request limit allows.
        self.bins.record(latency.clamp(1, MAX_TRACKABLE));
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
        let quantiles: Vec<f64> = even.chain(tail).collect();
        let values = self.bins.values_at_quantiles(&quantiles);
        quantiles.into_iter().zip(values.into_iter().map(|v| v.min(self.max))).collect()
    }

    pub fn summary(&self) -> Latency {
        // In one pass over the bins (which give 0 when empty).
        // A bin reports its highest value, which may lie above the largest
        // recorded: never report a percentile above the maximum.
        let q: Vec<Nanos> = (self.bins.values_at_quantiles(&[0.5, 0.99, 0.999]).into_iter())
            .map(|v| v.min(self.max))
            .collect();
        Latency {
            mean_ns: self.mean().round() as Nanos,
            p50_ns: q[0],
            p99_ns: q[1],
            p99_9_ns: q[2],
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

    /// Equal values all land in one bin, whose highest value lies above
    /// them: no percentile or CDF point may exceed the maximum.
    #[test]
    fn no_percentile_exceeds_the_maximum() {
        let mut r = LatencyRecorder::new();
        for _ in 0..10 {
            r.record(5_000_000_000);
        }
        let s = r.summary();
        assert_eq!(
            (s.p50_ns, s.p99_ns, s.p99_9_ns, s.max_ns),
            (5_000_000_000, 5_000_000_000, 5_000_000_000, 5_000_000_000)
        );
        assert!(r.cdf().iter().all(|&(_, v)| v == 5_000_000_000));
    }

    #[test]
    fn bins_give_the_histogram_of_every_value() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for digits in [2, 3] {
            let mut bins = Bins::new(digits);
            let mut direct = Histogram::<u64>::new(digits).unwrap();
            for k in 0..200_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Every magnitude from 1 to 2^62, and every value below 5000.
                let value = if k % 4 == 0 { u64::from(k % 5000) } else { x >> (x % 63) }
                    .clamp(1, MAX_TRACKABLE);
                bins.record(value);
                direct.record(value).unwrap();
            }
            let rebuilt = bins.histogram(digits);
            let counts = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
                h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
            };
            assert_eq!(counts(&rebuilt), counts(&direct), "{digits} digits");
            assert_eq!(rebuilt.len(), direct.len());
            let quantiles = (0..=1000).map(|k| f64::from(k) / 1000.0);
            let quantiles: Vec<f64> =
                quantiles.chain([0.9995, 0.99999, 1.0, 1.5, -0.1, f64::NAN, 0.3]).collect();
            let all = bins.values_at_quantiles(&quantiles);
            for (&q, &got) in quantiles.iter().zip(&all) {
                let want = direct.value_at_quantile(q);
                assert_eq!(bins.value_at_quantile(q), want, "{q}");
                assert_eq!(got, want, "{q} among others");
                assert_eq!(rebuilt.value_at_quantile(q), want, "{q}");
            }
        }
        let empty = Bins::new(3);
        let none = Histogram::<u64>::new(3).unwrap();
        for q in [0.0, 0.5, 1.0] {
            assert_eq!(empty.value_at_quantile(q), none.value_at_quantile(q));
        }
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
