//! Endpoint selection within a pool.
//!
//! One [`Balancer`] per pool, shared by every worker thread: all state is
//! atomic, so picking never takes a lock. The caller reports the start and
//! end of each request with [`Balancer::begin`] and [`Balancer::end`], which
//! is what `least_request` reads.
//!
//! - `round_robin`: a shared counter, each endpoint in turn.
//! - `weighted_round_robin`: the smooth weighted round robin that nginx
//!   introduced, in which each step adds every endpoint's weight to its
//!   running score, picks the highest score and subtracts the total weight
//!   from it. The sequence depends only on the weights, so it is computed
//!   once when the pool is built and walked with a counter; a 5:1:1 pool gives
//!   `a a b a c a a`, never five in a row to one endpoint.
//! - `random`: uniform over endpoints.
//! - `least_request`: the power of two choices (Mitzenmacher, 2001): sample
//!   two distinct endpoints and take the one with fewer requests in flight
//!   per unit of weight. Two samples avoid the herding that a global
//!   least-loaded choice causes when many balancers act on stale counts.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use rand_core::Rng;

use crate::random::index;

/// Longest precomputed weighted round robin sequence. Weights whose sum is
/// larger are scaled down proportionally (keeping every non-zero weight at
/// least 1) before the sequence is built.
const MAX_SCHEDULE: u64 = 1 << 16;

/// A balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RoundRobin,
    WeightedRoundRobin,
    Random,
    /// Least requests in flight per weight among `choices` distinct random endpoints.
    LeastRequest {
        choices: usize,
    },
}

/// Picks endpoints for one pool.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    weights: Vec<u32>,
    /// Endpoint indices in smooth weighted order (weighted round robin only).
    schedule: Vec<u32>,
    next: AtomicUsize,
    in_flight: Vec<AtomicU32>,
}

impl Balancer {
    /// A balancer over endpoints with the given weights (one per endpoint).
    pub fn new(algorithm: Algorithm, weights: &[u32]) -> Balancer {
        let schedule = match algorithm {
            Algorithm::WeightedRoundRobin => smooth_schedule(weights),
            _ => Vec::new(),
        };
        Balancer {
            algorithm,
            weights: weights.to_vec(),
            schedule,
            next: AtomicUsize::new(0),
            in_flight: weights.iter().map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Choose an endpoint, or `None` when the pool has nothing to send to
    /// (no endpoints, or only zero weights under a weighted algorithm).
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        match self.algorithm {
            Algorithm::RoundRobin => Some(self.next.fetch_add(1, Ordering::Relaxed) % n),
            Algorithm::WeightedRoundRobin => {
                if self.schedule.is_empty() {
                    return None;
                }
                let step = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
                Some(self.schedule[step] as usize)
            }
            Algorithm::Random => Some(index(rng, n)),
            Algorithm::LeastRequest { choices } => self.least_request(rng, choices),
        }
    }

    /// Record that a request to `endpoint` started.
    pub fn begin(&self, endpoint: usize) {
        self.in_flight[endpoint].fetch_add(1, Ordering::Relaxed);
    }

    /// Record that a request to `endpoint` finished, however it ended.
    pub fn end(&self, endpoint: usize) {
        // Saturate rather than wrap if a caller reports an end twice.
        let _ = self.in_flight[endpoint]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// Requests in flight to `endpoint`.
    pub fn in_flight(&self, endpoint: usize) -> u32 {
        self.in_flight[endpoint].load(Ordering::Relaxed)
    }

    fn least_request<R: Rng + ?Sized>(&self, rng: &mut R, choices: usize) -> Option<usize> {
        let eligible = self.weights.iter().filter(|&&w| w > 0).count();
        if eligible == 0 {
            return None;
        }
        let choices = choices.clamp(1, eligible);

        // Sample `choices` distinct endpoints with non-zero weight. When they
        // are all wanted, scanning is cheaper and exact.
        let mut best: Option<(usize, u64, u64)> = None;
        let mut consider = |i: usize| {
            let load = u64::from(self.in_flight(i));
            let weight = u64::from(self.weights[i]);
            // Compare load_a / weight_a < load_b / weight_b without division.
            let better = match best {
                None => true,
                Some((_, bl, bw)) => load * bw < bl * weight,
            };
            if better {
                best = Some((i, load, weight));
            }
        };
        if choices == eligible {
            let start = index(rng, self.weights.len());
            (0..self.weights.len())
                .map(|k| (start + k) % self.weights.len())
                .filter(|&i| self.weights[i] > 0)
                .for_each(&mut consider);
        } else {
            let mut seen = [usize::MAX; 8];
            let mut taken = 0;
            while taken < choices.min(seen.len()) {
                let i = index(rng, self.weights.len());
                if self.weights[i] == 0 || seen[..taken].contains(&i) {
                    continue;
                }
                seen[taken] = i;
                taken += 1;
                consider(i);
            }
        }
        best.map(|(i, _, _)| i)
    }
}

/// The smooth weighted round robin sequence for `weights`, one full period.
fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let weights: Vec<i64> = if total > MAX_SCHEDULE {
        weights
            .iter()
            .map(|&w| match w {
                0 => 0,
                w => ((u64::from(w) * MAX_SCHEDULE / total).max(1)) as i64,
            })
            .collect()
    } else {
        weights.iter().map(|&w| i64::from(w)).collect()
    };
    let total: i64 = weights.iter().sum();

    let mut score = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (s, w) in score.iter_mut().zip(&weights) {
            *s += w;
        }
        let (best, _) = score
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .expect("total > 0 implies at least one endpoint");
        score[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_pcg::Pcg64;

    fn counts(b: &Balancer, n: usize) -> Vec<usize> {
        let mut rng = Pcg64::seed_from_u64(7);
        let mut c = vec![0; b.len()];
        for _ in 0..n {
            c[b.pick(&mut rng).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_visits_each_endpoint_in_turn() {
        let b = Balancer::new(Algorithm::RoundRobin, &[1, 5, 1]);
        let mut rng = Pcg64::seed_from_u64(1);
        let picks: Vec<_> = (0..6).map(|_| b.pick(&mut rng).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        let b = Balancer::new(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
        let mut rng = Pcg64::seed_from_u64(1);
        let picks: Vec<_> = (0..7).map(|_| b.pick(&mut rng).unwrap()).collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(counts(&b, 700), [500, 100, 100]);
    }

    #[test]
    fn weighted_round_robin_skips_zero_weights_and_refuses_all_zero() {
        let b = Balancer::new(Algorithm::WeightedRoundRobin, &[0, 2, 1]);
        assert_eq!(counts(&b, 300), [0, 200, 100]);
        let none = Balancer::new(Algorithm::WeightedRoundRobin, &[0, 0]);
        assert_eq!(none.pick(&mut Pcg64::seed_from_u64(1)), None);
    }

    #[test]
    fn huge_weights_are_scaled_not_dropped() {
        let b = Balancer::new(Algorithm::WeightedRoundRobin, &[u32::MAX, 1]);
        let c = counts(&b, b.schedule.len());
        assert!(c[1] >= 1, "an endpoint with weight 1 still gets traffic: {c:?}");
        assert!(b.schedule.len() as u64 <= MAX_SCHEDULE + 1);
    }

    #[test]
    fn random_is_roughly_uniform() {
        let b = Balancer::new(Algorithm::Random, &[1, 1, 1, 1]);
        for c in counts(&b, 40_000) {
            assert!((9_000..11_000).contains(&c), "{c}");
        }
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[1, 1]);
        for _ in 0..5 {
            b.begin(0);
        }
        let c = counts(&b, 100);
        assert_eq!(c, [0, 100]);
        b.end(0);
        assert_eq!(b.in_flight(0), 4);
    }

    #[test]
    fn least_request_weighs_load_by_weight() {
        // Endpoint 0 has twice the weight, so 3 in flight there is lighter than 2 on 1.
        let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[2, 1]);
        (0..3).for_each(|_| b.begin(0));
        (0..2).for_each(|_| b.begin(1));
        assert_eq!(counts(&b, 50), [50, 0]);
    }

    #[test]
    fn end_never_underflows() {
        let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[1]);
        b.end(0);
        assert_eq!(b.in_flight(0), 0);
    }
}

#[cfg(test)]
mod tie_tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_pcg::Pcg64;

    #[test]
    fn least_request_breaks_ties_at_random() {
        for n in [2usize, 3, 5] {
            let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &vec![1; n]);
            let mut rng = Pcg64::seed_from_u64(3);
            let mut c = vec![0; n];
            for _ in 0..3000 {
                c[b.pick(&mut rng).unwrap()] += 1;
            }
            let fair = 3000 / n;
            assert!(c.iter().all(|&k| k > fair * 8 / 10 && k < fair * 12 / 10), "{n}: {c:?}");
        }
    }
}
