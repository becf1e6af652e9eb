//! Seeded random streams and the distributions the workload draws from.
//!
//! Each source of randomness has its own PCG stream (O'Neill, 2014) derived
//! from the run's seed: arrival gaps, route choice, service times and balancer
//! decisions. Keeping them apart is the method of common random numbers
//! (Law, ch. 11): every balancer variant consumes the first three streams in
//! the same order, one draw set per arrival, so all variants see the same
//! arrival instants, the same routes and the same service demand per request,
//! and the difference between their results is due to the balancer rather
//! than to sampling luck. Only the balancer stream is consumed differently by
//! different algorithms, and it feeds nothing else.
//!
//! Streams differ in both PCG state and increment. The state comes from a
//! SplitMix64 finaliser (Steele, Lea and Flood, 2014) of the seed and the
//! stream number, so nearby seeds do not give nearby states.

use rand_distr::{Distribution, Exp1, StandardNormal};
use rand_pcg::Pcg64;

use crate::time::Nanos;

/// The independent random streams of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Arrivals = 1,
    Routes = 2,
    Service = 3,
    Balancer = 4,
}

/// The generator for one stream of a seeded run.
pub fn stream(seed: u64, which: Stream) -> Pcg64 {
    let id = which as u64;
    let high = splitmix(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let low = splitmix(high ^ id);
    Pcg64::new((u128::from(high) << 64) | u128::from(low), u128::from(id))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How long an endpoint's worker takes to serve one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Always the same time.
    Constant { value: Nanos },
    /// Memoryless, the service law of M/M/c queues.
    Exponential { mean: Nanos },
    /// `exp(N(mu, sigma))` nanoseconds: a skewed law with a long right
    /// tail, as measured service times usually have.
    LogNormal { mu: f64, sigma: f64 },
}

/// The standard normal quantile of 0.99, relating a log-normal's median and p99.
const Z_99: f64 = 2.326_347_874_040_841;

impl ServiceTime {
    /// The log-normal law with the given median and 99th percentile
    /// (`p99 >= median > 0`), the two figures operators usually know.
    pub fn log_normal(median: Nanos, p99: Nanos) -> ServiceTime {
        let (median, p99) = (median.max(1) as f64, p99.max(1) as f64);
        ServiceTime::LogNormal { mu: median.ln(), sigma: (p99 / median).ln().max(0.0) / Z_99 }
    }

    /// Draw one service time.
    pub fn sample<R: rand_core::Rng + ?Sized>(&self, rng: &mut R) -> Nanos {
        match *self {
            ServiceTime::Constant { value } => value,
            ServiceTime::Exponential { mean } => {
                let x: f64 = Exp1.sample(rng);
                round(x * mean as f64)
            }
            ServiceTime::LogNormal { mu, sigma } => {
                let z: f64 = StandardNormal.sample(rng);
                round((mu + sigma * z).exp())
            }
        }
    }

    /// The law's mean, in nanoseconds.
    pub fn mean(&self) -> f64 {
        match *self {
            ServiceTime::Constant { value } => value as f64,
            ServiceTime::Exponential { mean } => mean as f64,
            ServiceTime::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
        }
    }
}

/// The gap to the next arrival of a Poisson process with `rate` per second.
pub fn poisson_gap<R: rand_core::Rng + ?Sized>(rng: &mut R, rate: f64) -> Nanos {
    let x: f64 = Exp1.sample(rng);
    round(x * 1e9 / rate)
}

/// Nearest nanosecond; `as` saturates, so huge draws become `u64::MAX`
/// rather than wrapping.
fn round(ns: f64) -> Nanos {
    ns.round() as Nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of(law: ServiceTime, n: u32) -> f64 {
        let mut rng = stream(11, Stream::Service);
        (0..n).map(|_| law.sample(&mut rng) as f64).sum::<f64>() / f64::from(n)
    }

    #[test]
    fn sample_means_match_the_laws() {
        let laws = [
            ServiceTime::Constant { value: 5_000_000 },
            ServiceTime::Exponential { mean: 20_000_000 },
            ServiceTime::log_normal(10_000_000, 80_000_000),
        ];
        for law in laws {
            let got = mean_of(law, 400_000);
            let want = law.mean();
            assert!((got / want - 1.0).abs() < 0.01, "{law:?}: sample mean {got}, law mean {want}");
        }
    }

    #[test]
    fn log_normal_hits_its_median_and_p99() {
        let law = ServiceTime::log_normal(10_000_000, 80_000_000);
        let mut rng = stream(3, Stream::Service);
        let mut xs: Vec<Nanos> = (0..200_000).map(|_| law.sample(&mut rng)).collect();
        xs.sort_unstable();
        let median = xs[xs.len() / 2] as f64;
        let p99 = xs[xs.len() * 99 / 100] as f64;
        assert!((median / 10e6 - 1.0).abs() < 0.02, "median {median}");
        assert!((p99 / 80e6 - 1.0).abs() < 0.04, "p99 {p99}");
    }

    #[test]
    fn poisson_gaps_average_one_over_rate() {
        let mut rng = stream(5, Stream::Arrivals);
        let n = 400_000;
        let total: u64 = (0..n).map(|_| poisson_gap(&mut rng, 800.0)).sum();
        let mean_gap = total as f64 / f64::from(n);
        assert!((mean_gap / 1_250_000.0 - 1.0).abs() < 0.01, "{mean_gap}");
    }

    #[test]
    fn streams_are_distinct_and_repeatable() {
        use rand_core::Rng;
        let first = |seed, s| stream(seed, s).next_u64();
        assert_eq!(first(1, Stream::Arrivals), first(1, Stream::Arrivals));
        assert_ne!(first(1, Stream::Arrivals), first(1, Stream::Routes));
        assert_ne!(first(1, Stream::Service), first(1, Stream::Balancer));
        assert_ne!(first(1, Stream::Arrivals), first(2, Stream::Arrivals));
    }
}
