//! Endpoint selection within a pool.
//!
//! One [`Balancer`] per pool, shared by every worker thread. Picking never
//! takes a lock except under `peak_ewma`, which locks the two endpoints it
//! compares (see below). The caller reports the start and end of each
//! request with [`Balancer::begin`] and [`Balancer::end`], which is what
//! `least_request` reads, and each try's latency and outcome with
//! [`Balancer::observe`], which is what `peak_ewma` reads.
//!
//! - `round_robin`: a shared counter, each endpoint in turn.
//! - `weighted_round_robin`: the smooth weighted round robin that nginx
//!   introduced, in which each step adds every endpoint's weight to its
//!   running score, picks the highest score and subtracts the total weight
//!   from it. The sequence depends only on the weights, so it is computed
//!   once when the pool is built and walked with a counter; a 5:1:1 pool gives
//!   `a a b a c a a`, never five in a row to one endpoint.
//! - `random`: uniform over endpoints.
//! - `least_request`: the power of d choices (Mitzenmacher, 2001): sample `d`
//!   distinct endpoints and take the one with fewer requests in flight per
//!   unit of weight, ties broken at random in proportion to weight. Two
//!   choices (the default) avoid the herding that a global least-loaded
//!   choice causes when many balancers act on stale counts; comparing all of
//!   them ([`ALL_CHOICES`]) is join-the-shortest-queue, the best choice for a
//!   single balancer with exact counts.
//! - `peak_ewma`: the same sampling, but the score is the endpoint's peak
//!   EWMA latency (see [`PeakEwma`]) times its requests in flight plus one,
//!   per unit of weight, as in Finagle. It sees slowness before queues
//!   build up. Each endpoint's estimate is a pair (value, time of last
//!   update) that must change together, so it sits behind its own small
//!   mutex, held for a few arithmetic operations; a pick locks only the
//!   endpoints it compares, one at a time, so threads rarely meet there.
//! - `consistent_hash`: a ring of virtual nodes over a key hash the caller
//!   supplies ([`Pick::hash`]); see the `ring` module for why a ring rather
//!   than Maglev. Without a hash, a pick is random.
//!
//! # Eligibility, panic mode and exclusion
//!
//! Every endpoint is eligible until the caller says otherwise with
//! [`Balancer::set_eligible`] (health checks and outlier detection decide;
//! the balancer only obeys). No algorithm picks an ineligible endpoint while
//! an eligible one exists, except in panic mode: when fewer than
//! [`BalanceSettings::panic_threshold_percent`] of the endpoints are eligible,
//! the balancer spreads over all of them rather than crush the few that are
//! left. With the threshold at 0 (the default) there is no panic mode, and a
//! pool with no eligible endpoint picks `None`, which the caller answers with
//! a 503.
//!
//! [`Pick::avoid`] names the endpoints a request has already tried, the
//! latest last. A retry goes to an endpoint not among them while one is a
//! candidate; once every candidate was tried, to one other than the latest;
//! and to the latest only when it is the one candidate left.
//!
//! When round robin's next endpoint is not a candidate, the pick falls back
//! to a random candidate in proportion to weight, so the endpoint after an
//! ejected one does not receive a double share.
//!
//! # Slow start
//!
//! With [`BalanceSettings::slow_start`], an endpoint that becomes eligible
//! again starts at a fraction of its weight and ramps linearly to the full
//! weight over a window, so a cold cache or JIT is not flooded at once.
//! Every algorithm except `consistent_hash` applies it (moving keys away and
//! back would defeat the point of hashing).
//!
//! # Settings from specs
//!
//! Every setting comes from an operator's spec, so none may panic: an empty
//! pool and a pool of zero weights pick `None`; `choices: 0` reads as 1;
//! percentages above 100 read as 100; zero windows disable what they time.
//! Endpoint indices out of range are ignored by every method.

mod ewma;
mod ring;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand_core::Rng;

use self::ewma::Estimate;
pub use self::ewma::PeakEwma;
use self::ring::Ring;
use crate::hash::key_hash;
use crate::outcome::Outcome;
use crate::random::{chance, index, up_to};
use crate::time::Nanos;

/// Longest precomputed weighted round robin sequence. Weights whose sum is
/// larger are scaled down proportionally (keeping every non-zero weight at
/// least 1) before the sequence is built.
const MAX_SCHEDULE: u64 = 1 << 16;

/// `choices` value that compares every endpoint (join the shortest queue).
pub const ALL_CHOICES: usize = usize::MAX;

/// Up to this many choices are sampled independently; more are taken along
/// a random walk with a random stride.
const MAX_SAMPLED: usize = 8;

/// Random probes before a pick falls back to scanning the pool.
const PROBES: usize = 16;

/// `ramp` value of an endpoint at full weight.
const FULL: u64 = 1000;

/// A balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// Each endpoint in turn, ignoring weights.
    RoundRobin,
    /// Each endpoint in proportion to its weight, interleaved smoothly.
    WeightedRoundRobin,
    /// A uniformly random endpoint, ignoring weights.
    Random,
    /// Least requests in flight per weight among `choices` distinct random
    /// endpoints (2 is the power of two choices; [`ALL_CHOICES`] compares
    /// all; 0 reads as 1).
    LeastRequest { choices: usize },
    /// Lowest peak EWMA latency times load, per weight; see [`PeakEwma`].
    PeakEwma(PeakEwma),
    /// The endpoint that owns [`Pick::hash`] on a weighted hash ring.
    ConsistentHash,
}

impl Algorithm {
    /// Whether endpoint weights set shares (if not, every endpoint with a
    /// weight counts as weight 1). Under every algorithm, weight 0 drains an
    /// endpoint: it receives nothing.
    pub fn is_weighted(self) -> bool {
        !matches!(self, Algorithm::RoundRobin | Algorithm::Random)
    }
}

/// Pool-wide settings beyond the algorithm.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BalanceSettings {
    /// Below this share of eligible endpoints, spread over all of them
    /// (panic mode). 0 disables panic mode; values above 100 read as 100.
    pub panic_threshold_percent: u8,
    /// Ramp up endpoints that become eligible again.
    pub slow_start: Option<SlowStart>,
    /// A stable identity per endpoint for `consistent_hash`, such as
    /// [`key_hash`] of its address, so that keys stay put when endpoints are
    /// added, removed or reordered in the spec. Endpoints without one (this
    /// list is empty or short) are identified by their index, which keeps
    /// the guarantee only while the order of the pool does not change.
    pub endpoint_keys: Vec<u64>,
}

/// Linear weight ramp for endpoints that just became eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SlowStart {
    /// How long the ramp lasts; zero disables slow start.
    pub window: Duration,
    /// Share of the weight at the start of the ramp (values above 100 read
    /// as 100; 0 starts at a thousandth so the endpoint is not starved).
    pub initial_percent: u8,
}

impl Default for SlowStart {
    fn default() -> SlowStart {
        SlowStart { window: Duration::from_secs(30), initial_percent: 10 }
    }
}

/// The facts of one pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pick<'a> {
    /// The caller's clock reading.
    pub now: Nanos,
    /// The request's key hash (see [`key_hash`]), for `consistent_hash`.
    pub hash: Option<u64>,
    /// The endpoints this request's earlier tries went to, the latest last
    /// (see the module's documentation for how they are avoided).
    pub avoid: &'a [usize],
}

impl<'a> Pick<'a> {
    pub fn at(now: Nanos) -> Pick<'static> {
        Pick { now, ..Pick::default() }
    }

    pub fn with_hash(self, hash: u64) -> Pick<'a> {
        Pick { hash: Some(hash), ..self }
    }

    /// This pick, for a request whose earlier tries went to `tried`, the
    /// latest last.
    pub fn avoiding(self, tried: &[usize]) -> Pick<'_> {
        Pick { avoid: tried, now: self.now, hash: self.hash }
    }
}

/// Picks endpoints for one pool.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    /// `algorithm.is_weighted()`, read on every pick.
    weighted: bool,
    /// Every endpoint always has the same effective weight (equal weights,
    /// or none that count, and no slow start), so that requests in flight
    /// compare as they are, without dividing each by the same weight.
    uniform: bool,
    /// Random or least request over a non-empty pool with every endpoint
    /// usable and no slow start: while every endpoint is eligible and none
    /// is avoided, every endpoint is a candidate and no clock is read, so a
    /// pick needs no view of the pool (see [`Balancer::pick_with`]).
    plain: bool,
    weights: Vec<u32>,
    /// Endpoint indices in smooth weighted order (weighted round robin only).
    schedule: Vec<u32>,
    /// The hash ring (consistent hash only).
    ring: Ring,
    /// Latency estimates (peak EWMA only).
    estimates: Vec<Mutex<Estimate>>,
    next: AtomicUsize,
    in_flight: Vec<AtomicU32>,
    eligible: Vec<AtomicBool>,
    /// Endpoints that are usable (see `usable`) and eligible.
    live: AtomicUsize,
    /// Endpoints that can receive traffic at all: weight > 0 under a
    /// weighted algorithm, every endpoint otherwise.
    usable: usize,
    /// Largest weight among usable endpoints (1 when unweighted).
    max_weight: u64,
    /// When each endpoint last became eligible, for slow start; `u64::MAX`
    /// when it is not ramping.
    ramp_from: Vec<AtomicU64>,
    /// The latest clock reading seen, for [`Balancer::pick`].
    clock: AtomicU64,
    panic_threshold: u64,
    slow_start: Option<SlowStart>,
}

/// One pick's view of the pool.
struct View<'a> {
    now: Nanos,
    panic: bool,
    /// Endpoints not to pick: some or all of [`Pick::avoid`].
    avoid: &'a [usize],
    /// How many of `avoid` are candidates otherwise.
    avoided: usize,
    /// Every endpoint is a candidate (all usable and eligible, or panic
    /// mode over a pool that is all usable, and none to avoid), so that
    /// sampling needs no per-endpoint check. (It is read from the count of
    /// eligible endpoints: while another thread changes one, a pick may
    /// still go to it, as it could had it come a moment earlier.)
    all: bool,
}

impl Balancer {
    /// A balancer over endpoints with the given weights (one per endpoint),
    /// with default settings: no panic mode, no slow start.
    pub fn new(algorithm: Algorithm, weights: &[u32]) -> Balancer {
        Balancer::with_settings(algorithm, weights, &BalanceSettings::default())
    }

    /// A balancer with explicit pool settings.
    pub fn with_settings(
        algorithm: Algorithm,
        weights: &[u32],
        settings: &BalanceSettings,
    ) -> Balancer {
        let n = weights.len();
        let schedule = match algorithm {
            Algorithm::WeightedRoundRobin => smooth_schedule(weights),
            _ => Vec::new(),
        };
        let ring = match algorithm {
            Algorithm::ConsistentHash => {
                let keys: Vec<u64> = (0..n)
                    .map(|i| {
                        let by_index = || key_hash(&(i as u64).to_le_bytes());
                        settings.endpoint_keys.get(i).copied().unwrap_or_else(by_index)
                    })
                    .collect();
                Ring::new(&keys, weights)
            }
            _ => Ring::default(),
        };
        let estimates = match algorithm {
            Algorithm::PeakEwma(s) => (0..n).map(|_| Mutex::new(Estimate::new(&s))).collect(),
            _ => Vec::new(),
        };

        let weighted = algorithm.is_weighted();
        let usable = weights.iter().filter(|&&w| w > 0).count();
        let max_weight =
            if weighted { weights.iter().copied().max().map_or(1, u64::from) } else { 1 };
        let slow_start = settings.slow_start.filter(|s| !s.window.is_zero());
        // (An unweighted pool with a drained endpoint is uniform over the
        // others: every candidate counts as weight 1.)
        let uniform =
            slow_start.is_none() && (!weighted || weights.windows(2).all(|w| w[0] == w[1]));
        let plain = matches!(algorithm, Algorithm::Random | Algorithm::LeastRequest { .. })
            && slow_start.is_none()
            && n > 0
            && usable == n;
        Balancer {
            algorithm,
            weighted,
            uniform,
            plain,
            weights: weights.to_vec(),
            schedule,
            ring,
            estimates,
            next: AtomicUsize::new(0),
            in_flight: weights.iter().map(|_| AtomicU32::new(0)).collect(),
            eligible: weights.iter().map(|_| AtomicBool::new(true)).collect(),
            live: AtomicUsize::new(usable),
            usable,
            max_weight: max_weight.max(1),
            ramp_from: weights.iter().map(|_| AtomicU64::new(u64::MAX)).collect(),
            clock: AtomicU64::new(0),
            panic_threshold: u64::from(settings.panic_threshold_percent.min(100)),
            slow_start,
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
    /// (no endpoints, only zero weights under a weighted algorithm, or no
    /// eligible endpoint outside panic mode). Time-dependent algorithms use
    /// the latest clock reading the balancer was given.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<usize> {
        let now = Nanos(self.clock.load(Ordering::Relaxed));
        self.pick_with(rng, &Pick::at(now))
    }

    /// Choose an endpoint for a request with these facts.
    pub fn pick_with<R: Rng + ?Sized>(&self, rng: &mut R, pick: &Pick) -> Option<usize> {
        // The usual pick, from a pool with every endpoint eligible: not in
        // panic mode, and every endpoint a candidate. (It picks what the
        // general way below would, with the same draws.)
        if self.plain && pick.avoid.is_empty() && self.live.load(Ordering::Acquire) == self.len() {
            let view = View { now: pick.now, panic: false, avoid: &[], avoided: 0, all: true };
            match self.algorithm {
                // (Unweighted without slow start, so uniform.)
                Algorithm::Random => return Some(index(rng, self.len())),
                Algorithm::LeastRequest { choices } => return self.best_of(rng, &view, choices),
                _ => {}
            }
        }
        self.see(pick.now);
        let view = self.view(pick)?;
        // The usual picks inline; the rest out of line, which keeps the
        // usual ones lean when this is inlined into a caller's hot path.
        match self.algorithm {
            Algorithm::Random => self.sample(rng, &view),
            Algorithm::LeastRequest { choices } => self.best_of(rng, &view, choices),
            _ => self.pick_other(rng, &view, pick),
        }
    }

    /// [`Balancer::pick_with`] under the other algorithms.
    #[inline(never)]
    fn pick_other<R: Rng + ?Sized>(&self, rng: &mut R, view: &View, pick: &Pick) -> Option<usize> {
        let n = self.len();
        match self.algorithm {
            Algorithm::RoundRobin => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
                self.take_or_fall_back(rng, view, i)
            }
            Algorithm::WeightedRoundRobin => {
                if self.schedule.is_empty() {
                    return None;
                }
                let step = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
                self.take_or_fall_back(rng, view, self.schedule[step] as usize)
            }
            Algorithm::Random => self.sample(rng, view),
            Algorithm::LeastRequest { choices } => self.best_of(rng, view, choices),
            Algorithm::PeakEwma(s) => self.best_of(rng, view, s.choices),
            Algorithm::ConsistentHash => match pick.hash {
                Some(hash) => self
                    .ring
                    .lookup(hash, |i| self.candidate(i, view))
                    .or_else(|| self.fall_back(rng, view)),
                None => self.sample(rng, view),
            },
        }
    }

    /// Choose an endpoint other than `last` when any other candidate
    /// exists: the pick for a retry.
    pub fn pick_excluding<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        now: Nanos,
        last: usize,
    ) -> Option<usize> {
        self.pick_with(rng, &Pick::at(now).avoiding(&[last]))
    }

    /// Record that a request to `endpoint` started.
    pub fn begin(&self, endpoint: usize) {
        if let Some(c) = self.in_flight.get(endpoint) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Record that a request to `endpoint` finished, however it ended.
    pub fn end(&self, endpoint: usize) {
        // Saturate rather than wrap if a caller reports an end twice.
        if let Some(c) = self.in_flight.get(endpoint) {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    /// [`Balancer::begin`] through exclusive access, as an owner that
    /// shares the balancer with no thread has (the simulator): the same
    /// count, without an atomic read-modify-write.
    #[inline]
    pub fn begin_exclusive(&mut self, endpoint: usize) {
        if let Some(c) = self.in_flight.get_mut(endpoint) {
            let c = c.get_mut();
            *c = c.wrapping_add(1);
        }
    }

    /// [`Balancer::end`] through exclusive access; see
    /// [`Balancer::begin_exclusive`].
    #[inline]
    pub fn end_exclusive(&mut self, endpoint: usize) {
        if let Some(c) = self.in_flight.get_mut(endpoint) {
            let c = c.get_mut();
            *c = c.saturating_sub(1);
        }
    }

    /// Requests in flight to `endpoint`.
    pub fn in_flight(&self, endpoint: usize) -> u32 {
        self.in_flight.get(endpoint).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Record how one try to `endpoint` went: its latency (until the
    /// response head, or until it failed) and outcome. Only `peak_ewma`
    /// learns from it; for the others it only advances the clock.
    #[inline(always)]
    pub fn observe(&self, endpoint: usize, latency: Duration, outcome: Outcome, now: Nanos) {
        self.see(now);
        if let (Algorithm::PeakEwma(s), Some(e)) = (self.algorithm, self.estimates.get(endpoint)) {
            lock(e).observe(&s, latency, outcome.is_failure(), now);
        }
    }

    /// The latency estimate of `endpoint` at `now` (`peak_ewma` only).
    pub fn latency_estimate(&self, endpoint: usize, now: Nanos) -> Option<Duration> {
        let (Algorithm::PeakEwma(s), Some(e)) = (self.algorithm, self.estimates.get(endpoint))
        else {
            return None;
        };
        Some(Duration::from_nanos(lock(e).cost_at(&s, now) as u64))
    }

    /// Let `endpoint` receive traffic or not, as health checks and outlier
    /// detection decide. An endpoint that becomes eligible starts its slow
    /// start ramp at `now` and forgets its latency estimate.
    pub fn set_eligible(&self, endpoint: usize, eligible: bool, now: Nanos) {
        self.see(now);
        let Some(flag) = self.eligible.get(endpoint) else { return };
        if flag.swap(eligible, Ordering::AcqRel) == eligible {
            return;
        }

        if self.usable(endpoint) {
            if eligible {
                self.live.fetch_add(1, Ordering::AcqRel);
            } else {
                let _ = self
                    .live
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1));
            }
        }
        if eligible {
            if self.slow_start.is_some() {
                self.ramp_from[endpoint].store(now.0, Ordering::Relaxed);
            }
            if let (Algorithm::PeakEwma(s), Some(e)) =
                (self.algorithm, self.estimates.get(endpoint))
            {
                *lock(e) = Estimate::new(&s);
            }
        }
    }

    /// Take over, from the balancer of the pool this one replaces, what it
    /// learned about the endpoints both have: `kept[i]` names the old index
    /// of new endpoint `i`, or `None`. Latency estimates (`peak_ewma`, when
    /// both balancers use it) and slow-start ramps carry over; eligibility
    /// is the caller's to set. In-flight counts do not: requests still
    /// running on the old balancer end their count there.
    pub fn carry_from(&self, old: &Balancer, kept: &[Option<usize>]) {
        for (i, from) in kept.iter().enumerate().take(self.len()) {
            let Some(j) = from.filter(|&j| j < old.len()) else { continue };
            if let (Some(mine), Some(theirs)) = (self.estimates.get(i), old.estimates.get(j)) {
                *lock(mine) = *lock(theirs);
            }
            if self.slow_start.is_some() {
                self.ramp_from[i]
                    .store(old.ramp_from[j].load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        self.clock.fetch_max(old.clock.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether `endpoint` may receive traffic outside panic mode.
    pub fn is_eligible(&self, endpoint: usize) -> bool {
        self.eligible.get(endpoint).is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// Endpoints that can receive traffic and are eligible.
    pub fn eligible_count(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Whether too few endpoints are eligible, so picks spread over all.
    #[inline]
    pub fn in_panic(&self) -> bool {
        let live = self.live.load(Ordering::Acquire) as u64;
        self.panic_threshold > 0 && live * 100 < self.panic_threshold * self.usable as u64
    }

    /// Remember the latest clock reading, for [`Balancer::pick`]. Only the
    /// algorithms that read time pay for the shared write, and only when
    /// the reading is newer.
    #[inline]
    fn see(&self, now: Nanos) {
        let timed = matches!(self.algorithm, Algorithm::PeakEwma(_)) || self.slow_start.is_some();
        if timed && now.0 > self.clock.load(Ordering::Relaxed) {
            self.clock.fetch_max(now.0, Ordering::Relaxed);
        }
    }

    #[inline]
    fn usable(&self, i: usize) -> bool {
        // (When every endpoint is usable, no weight needs reading.)
        self.usable == self.weights.len() || self.weights[i] > 0
    }

    /// Whether `i` may be picked in this view.
    #[inline]
    fn candidate(&self, i: usize, view: &View) -> bool {
        !view.avoid.contains(&i)
            && self.usable(i)
            && (view.panic || self.eligible[i].load(Ordering::Acquire))
    }

    /// How this pick sees the pool, or `None` when nothing can be picked.
    #[inline]
    fn view<'a>(&self, pick: &Pick<'a>) -> Option<View<'a>> {
        let panic = self.in_panic();
        let count = if panic { self.usable } else { self.live.load(Ordering::Acquire) };
        if count == 0 || self.is_empty() {
            return None;
        }
        let all = count == self.len() && self.usable == count;
        let mut view = View { now: pick.now, panic, avoid: &[], avoided: 0, all };
        if !pick.avoid.is_empty() {
            self.avoid(&mut view, pick.avoid, count);
        }
        Some(view)
    }

    /// Set what `view` avoids of `tried`, given `count` candidates: all of
    /// them while another candidate is left, else the latest try's endpoint
    /// while another is left, else nothing.
    #[inline(never)]
    fn avoid<'a>(&self, view: &mut View<'a>, tried: &'a [usize], count: usize) {
        let candidates = |tried: &[usize]| {
            let distinct = tried.iter().enumerate().filter(|&(k, a)| !tried[..k].contains(a));
            distinct.filter(|&(_, &a)| a < self.len() && self.candidate(a, view)).count()
        };
        let every = candidates(tried);
        let (avoid, avoided) = if every < count {
            (tried, every)
        } else {
            let latest = &tried[tried.len() - 1..];
            match candidates(latest) {
                1 if count > 1 => (latest, 1),
                _ => return,
            }
        };
        view.avoid = avoid;
        view.avoided = avoided;
        view.all = false;
    }

    /// Weight of `i` now, in thousandths: its weight times its slow start
    /// ramp (never 0 for a usable endpoint).
    #[inline]
    fn effective_weight(&self, i: usize, now: Nanos) -> u64 {
        let weight = if self.weighted { u64::from(self.weights[i]) } else { 1 };
        weight * self.ramp(i, now)
    }

    /// Slow start progress of `i` at `now`, from the initial share to
    /// [`FULL`].
    #[inline]
    fn ramp(&self, i: usize, now: Nanos) -> u64 {
        // Inline for the usual pool without slow start, where it is a constant.
        match self.slow_start {
            None => FULL,
            Some(slow) => self.ramp_of(i, now, slow),
        }
    }

    /// [`Balancer::ramp`] under slow start.
    fn ramp_of(&self, i: usize, now: Nanos, slow: SlowStart) -> u64 {
        let from = self.ramp_from[i].load(Ordering::Relaxed);
        if from == u64::MAX || matches!(self.algorithm, Algorithm::ConsistentHash) {
            return FULL;
        }
        let elapsed = now.since(Nanos(from));
        if elapsed >= slow.window {
            return FULL;
        }
        let start = (u64::from(slow.initial_percent.min(100)) * 10).max(1);
        let progress = elapsed.as_nanos() * u128::from(FULL - start) / slow.window.as_nanos();
        start + progress as u64
    }

    /// `i` if it is a candidate and passes its slow start ramp, otherwise a
    /// random candidate by weight.
    fn take_or_fall_back<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        view: &View,
        i: usize,
    ) -> Option<usize> {
        if self.candidate(i, view) && chance(rng, self.ramp(i, view.now), FULL) {
            return Some(i);
        }
        self.fall_back(rng, view)
    }

    /// A random candidate in proportion to effective weight, by rejection
    /// sampling when that succeeds quickly, else by a scan.
    #[inline(always)]
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R, view: &View) -> Option<usize> {
        if view.all && self.uniform {
            // The first probe is a candidate, and passes its weight check
            // without a draw (every weight is the largest).
            return Some(index(rng, self.len()));
        }
        self.sample_by_probes(rng, view)
    }

    /// [`Balancer::sample`] in general.
    #[inline(never)]
    fn sample_by_probes<R: Rng + ?Sized>(&self, rng: &mut R, view: &View) -> Option<usize> {
        for _ in 0..PROBES {
            let i = index(rng, self.len());
            if self.candidate(i, view)
                && chance(rng, self.effective_weight(i, view.now), self.max_weight * FULL)
            {
                return Some(i);
            }
        }
        self.fall_back(rng, view)
    }

    /// A random candidate in proportion to effective weight, by a scan. If
    /// the pool changed since `view` was taken and only the avoided endpoint
    /// is left, that one.
    fn fall_back<R: Rng + ?Sized>(&self, rng: &mut R, view: &View) -> Option<usize> {
        let weight = |i: usize| {
            if self.candidate(i, view) {
                self.effective_weight(i, view.now)
            } else {
                0
            }
        };
        let total: u64 = (0..self.len()).map(weight).sum();
        if total == 0 {
            let a = *view.avoid.last()?;
            let relaxed = View { avoid: &[], avoided: 0, all: false, ..*view };
            return self.candidate(a, &relaxed).then_some(a);
        }

        let mut r = up_to(rng, total - 1);
        for i in 0..self.len() {
            let w = weight(i);
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }

    /// The best-scoring of `choices` distinct candidates (`least_request`
    /// and `peak_ewma`).
    #[inline(always)]
    fn best_of<R: Rng + ?Sized>(&self, rng: &mut R, view: &View, choices: usize) -> Option<usize> {
        let n = self.len();
        if !(view.all && choices == 2 && n > 2) {
            return self.best_of_any(rng, view, choices);
        }
        // The power of two choices over a pool whose every endpoint is a
        // candidate: the sampling of [`Balancer::best_of_any`], without its
        // checks. The first probe is taken, and the second is the first one
        // to differ from it.
        let first = index(rng, n);
        let mut second = first;
        for _ in 1..PROBES * 2 {
            let i = index(rng, n);
            if i != first {
                second = i;
                break;
            }
        }
        if second == first {
            return Some(first);
        }
        if self.uniform && matches!(self.algorithm, Algorithm::LeastRequest { .. }) {
            // What `consider` decides, on the counts themselves: the lower
            // one, without a branch; a tie, at random as `consider` draws.
            let (a, b) = (self.in_flight(first), self.in_flight(second));
            if a == b {
                return Some(if chance(rng, FULL, 2 * FULL) { second } else { first });
            }
            return Some(if b < a { second } else { first });
        }
        let mut best = Best::default();
        self.consider(rng, view, first, &mut best);
        self.consider(rng, view, second, &mut best);
        best.endpoint
    }

    /// [`Balancer::best_of`] in general.
    #[inline(never)]
    fn best_of_any<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        view: &View,
        choices: usize,
    ) -> Option<usize> {
        let mut best = Best::default();
        let count = if view.panic { self.usable } else { self.live.load(Ordering::Acquire) };
        let count = count.saturating_sub(view.avoided);
        let choices = choices.max(1);
        let n = self.len();

        if choices >= count {
            // Every candidate; the random start only spreads the scan's work.
            let start = index(rng, n);
            for i in (0..n).map(|k| (start + k) % n) {
                if self.candidate(i, view) {
                    self.consider(rng, view, i, &mut best);
                }
            }
        } else if choices <= MAX_SAMPLED {
            let mut seen = [usize::MAX; MAX_SAMPLED];
            let mut taken = 0;
            for _ in 0..PROBES * choices {
                let i = index(rng, n);
                if !self.candidate(i, view) || seen[..taken].contains(&i) {
                    continue;
                }
                seen[taken] = i;
                taken += 1;
                self.consider(rng, view, i, &mut best);
                if taken == choices {
                    break;
                }
            }
        } else {
            // A random walk with a stride coprime to n visits distinct endpoints.
            let start = index(rng, n);
            let mut stride = 1 + index(rng, n - 1);
            while gcd(stride, n) != 1 {
                stride = stride % (n - 1) + 1;
            }
            let mut taken = 0;
            for k in 0..n {
                let i = (start + k * stride) % n;
                if self.candidate(i, view) {
                    self.consider(rng, view, i, &mut best);
                    taken += 1;
                    if taken == choices {
                        break;
                    }
                }
            }
        }
        best.endpoint.or_else(|| self.fall_back(rng, view))
    }

    /// Compare candidate `i` (which the caller checked is one) with the
    /// best so far; exact ties go to either at random in proportion to
    /// weight.
    #[inline(always)]
    fn consider<R: Rng + ?Sized>(&self, rng: &mut R, view: &View, i: usize, best: &mut Best) {
        let in_flight = f64::from(self.in_flight(i));
        let (score, weight) = match self.algorithm {
            Algorithm::PeakEwma(s) => {
                let weight = self.effective_weight(i, view.now);
                let cost = lock(&self.estimates[i]).cost_at(&s, view.now);
                (cost * (in_flight + 1.0) / weight as f64, weight)
            }
            // Counts below 2^32 over one weight keep their order and their
            // ties, so the counts themselves compare the same. And with
            // every weight the same, any one weight splits ties the same:
            // `chance(w, k * w)` draws one number `x` and is true when
            // `x * k < 2^64`, whatever `w` is.
            _ if self.uniform => (in_flight, FULL),
            _ => {
                let weight = self.effective_weight(i, view.now);
                (in_flight / weight as f64, weight)
            }
        };

        match best.endpoint {
            Some(_) if score > best.score => {}
            Some(_) if score == best.score => {
                best.tied_weight += weight;
                if chance(rng, weight, best.tied_weight) {
                    best.endpoint = Some(i);
                }
            }
            _ => *best = Best { endpoint: Some(i), score, tied_weight: weight },
        }
    }
}

#[derive(Default)]
struct Best {
    endpoint: Option<usize>,
    score: f64,
    tied_weight: u64,
}

/// Lock an estimate. A panic elsewhere while it was held cannot leave it
/// half-updated in a harmful way (it is two numbers), so poisoning is ignored.
fn lock(m: &Mutex<Estimate>) -> MutexGuard<'_, Estimate> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
mod tests;
