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

use std::sync::Arc;

use rand_distr::{Distribution, Exp1};
use rand_pcg::Pcg64;

use crate::time::Nanos;

/// The independent random streams of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Arrivals = 1,
    Routes = 2,
    Service = 3,
    Balancer = 4,
    Think = 5,
}

/// The generator for one stream of a seeded run.
pub fn stream(seed: u64, which: Stream) -> Pcg64 {
    let id = which as u64;
    let high = splitmix(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let low = splitmix(high ^ id);
    Pcg64::new((u128::from(high) << 64) | u128::from(low), u128::from(id))
}

#[inline]
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform draw in `(0, 1)` keyed by `(seed, id, salt)`: a counter-based
/// generator, so that the n-th try of the k-th request draws the same
/// number in every variant however the variants interleave their draws.
/// This extends common random numbers to draws whose order depends on the
/// variant (which endpoint a try reaches, whether it is retried).
#[inline]
pub fn keyed_uniform(seed: u64, id: u64, salt: u64) -> f64 {
    let z = keyed_bits(seed, id, salt);
    // Below 2^53, so exact through i64, which converts in one instruction.
    ((z >> 11) as i64 as f64 + 0.5) / (1u64 << 53) as f64
}

/// The 64 bits behind [`keyed_uniform`]: a draw keyed by `(seed, id, salt)`,
/// for decisions that take an integer, such as the side of a weighted split.
#[inline]
pub fn keyed_bits(seed: u64, id: u64, salt: u64) -> u64 {
    splitmix(splitmix(seed ^ splitmix(id)) ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// How long an endpoint's worker takes to serve one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceTime {
    /// Always the same time.
    Constant { value: Nanos },
    /// Memoryless, the service law of M/M/c queues.
    Exponential { mean: Nanos },
    /// `exp(N(mu, sigma))` nanoseconds: a skewed law with a long right
    /// tail, as measured service times usually have.
    LogNormal { mu: f64, sigma: f64 },
    /// `scale / U^(1/shape)`: a power-law tail (`shape > 1`).
    Pareto { scale: Nanos, shape: f64 },
    /// `slow` with probability `slow_share`, else `fast`.
    Bimodal { fast: Box<ServiceTime>, slow: Box<ServiceTime>, slow_share: f64 },
    /// Observed times, sorted, drawn uniformly with replacement.
    Empirical { sorted: Arc<[Nanos]> },
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
        let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        self.quantile(u)
    }

    /// The time at quantile `u` of the law (`0 < u < 1`): inversion, so one
    /// uniform draw per request gives every variant and every endpoint
    /// model the same rank of service demand.
    pub fn quantile(&self, u: f64) -> Nanos {
        match self {
            ServiceTime::Constant { value } => *value,
            ServiceTime::Exponential { mean } => round(-(1.0 - u).ln() * *mean as f64),
            ServiceTime::LogNormal { mu, sigma } => round((mu + sigma * normal_quantile(u)).exp()),
            ServiceTime::Pareto { scale, shape } => {
                round(*scale as f64 / (1.0 - u).powf(1.0 / shape.max(1e-9)))
            }
            ServiceTime::Bimodal { fast, slow, slow_share } => {
                // The lower `1 - share` of ranks go to the fast mode, rescaled.
                let share = slow_share.clamp(0.0, 1.0);
                if u < 1.0 - share {
                    fast.quantile(u / (1.0 - share))
                } else {
                    slow.quantile(((u - (1.0 - share)) / share).min(1.0 - 1e-12))
                }
            }
            ServiceTime::Empirical { sorted } => {
                let i = (u * sorted.len() as f64) as usize;
                sorted.get(i.min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
            }
        }
    }

    /// The law's mean, in nanoseconds.
    pub fn mean(&self) -> f64 {
        match self {
            ServiceTime::Constant { value } => *value as f64,
            ServiceTime::Exponential { mean } => *mean as f64,
            ServiceTime::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
            ServiceTime::Pareto { scale, shape } => {
                if *shape > 1.0 {
                    shape * *scale as f64 / (shape - 1.0)
                } else {
                    f64::INFINITY
                }
            }
            ServiceTime::Bimodal { fast, slow, slow_share } => {
                fast.mean() * (1.0 - slow_share) + slow.mean() * slow_share
            }
            ServiceTime::Empirical { sorted } => {
                let sum: u128 = sorted.iter().map(|&x| u128::from(x)).sum();
                sum as f64 / sorted.len().max(1) as f64
            }
        }
    }
}

/// The standard normal quantile, by Acklam's rational approximation
/// (relative error below 1.2e-9), which is plenty for service times.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The gap to the next arrival of a Poisson process with `rate` per second.
pub fn poisson_gap<R: rand_core::Rng + ?Sized>(rng: &mut R, rate: f64) -> Nanos {
    let x: f64 = Exp1.sample(rng);
    round(x * 1e9 / rate)
}

/// Nearest nanosecond, halves away from zero; `as` saturates, so huge
/// draws become `u64::MAX` rather than wrapping.
///
/// Exactly `ns.round() as Nanos`, but without a call into the maths library
/// for the common case (baseline x86-64 has no rounding instruction): below
/// 2^53 the truncation is exact, and so is the fraction left over.
#[inline]
pub(crate) fn round(ns: f64) -> Nanos {
    const EXACT: f64 = (1u64 << 53) as f64;
    if (0.0..EXACT).contains(&ns) {
        // Through i64, which converts in one instruction either way.
        let whole = ns as i64;
        whole as Nanos + Nanos::from(ns - whole as f64 >= 0.5)
    } else {
        ns.round() as Nanos
    }
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
            let got = mean_of(law.clone(), 400_000);
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
    fn pareto_bimodal_and_empirical_laws_have_their_means() {
        let laws = [
            ServiceTime::Pareto { scale: 1_000_000, shape: 3.0 },
            ServiceTime::Bimodal {
                fast: Box::new(ServiceTime::Constant { value: 1_000_000 }),
                slow: Box::new(ServiceTime::Exponential { mean: 50_000_000 }),
                slow_share: 0.1,
            },
            ServiceTime::Empirical { sorted: Arc::from(vec![1, 2, 3, 10]) },
        ];
        for law in laws {
            let got = mean_of(law.clone(), 400_000);
            let want = law.mean();
            assert!((got / want - 1.0).abs() < 0.02, "{law:?}: sample mean {got}, law mean {want}");
        }
    }

    #[test]
    fn keyed_draws_are_uniform_and_repeatable() {
        assert_eq!(keyed_uniform(1, 2, 3), keyed_uniform(1, 2, 3));
        assert_ne!(keyed_uniform(1, 2, 3), keyed_uniform(1, 2, 4));
        let mean = (0..100_000).map(|i| keyed_uniform(9, i, 0)).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
    }

    #[test]
    fn round_matches_the_standard_rounding() {
        let halves = [0.5, 1.5, 2.5, 0.49999999999999994, 4503599627370495.5];
        let edges = [0.0, -0.0, -0.5, -3.7, 1e300, f64::INFINITY, f64::NAN, 9007199254740991.0];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let drawn = (0..100_000).map(|_| {
            x = splitmix(x);
            // Uniform in [0, 1), scaled by 10^0 to 10^19.
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 10f64.powi((x % 20) as i32)
        });
        for v in halves.into_iter().chain(edges).chain(drawn) {
            assert_eq!(round(v), v.round() as Nanos, "{v:e}");
        }
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
