//! What the engine runs: the plan's shape and a validated workload.
//!
//! [`Topology`] is the part of a compiled plan the simulator needs (routes,
//! pools, endpoint weights and balancing algorithms), with names kept only
//! for the report. [`Workload`] is a scenario after checking, with every name
//! resolved to an index and every duration parsed; the engine trusts it.

use std::sync::Arc;
use std::time::Duration;

use sluice_compiler::spec::{
    HashOn, Protocol, Sticky, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_IDLE_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
};
use sluice_compiler::{Balance, Plan};
use sluice_traffic::retry::RetryOn;
use sluice_traffic::{
    BalanceSettings, BudgetSettings, CircuitLimits, DeadlineSettings, HealthSettings,
    OutlierSettings, RetrySettings,
};

use crate::random::ServiceTime;
use crate::request::Template;
use crate::time::Nanos;

/// Routes and pools of a plan.
#[derive(Debug, Clone)]
pub struct Topology {
    pub pools: Vec<PoolShape>,
    pub routes: Vec<RouteShape>,
}

/// A pool as the simulator sees it.
#[derive(Debug, Clone)]
pub struct PoolShape {
    pub name: String,
    /// The algorithm the spec chose.
    pub balance: Balance,
    pub endpoints: Vec<EndpointShape>,
    /// The spec's pool settings, used unless the scenario overrides them.
    pub rules: PoolRules,
    /// The request key a `consistent_hash` pick hashes on.
    pub hash_on: Option<HashOn>,
    /// How long the gateway waits for a connection to an endpoint to open.
    pub connect_timeout: Duration,
    /// How the gateway speaks to the endpoints: one connection per try in
    /// flight (HTTP/1.1), or one per endpoint for all of them (HTTP/2).
    pub protocol: Protocol,
    /// How long an upstream connection may stay idle before the gateway
    /// closes it.
    pub idle_timeout: Duration,
    /// How long the gateway waits for a response once the endpoint has the
    /// request, before it gives the try up as timed out.
    pub stall_timeout: Duration,
}

/// A pool's decision settings from the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolRules {
    /// Endpoints a `least_request` or `peak_ewma` pick compares.
    pub choices: Option<usize>,
    /// Decay window of `peak_ewma`'s latency estimates.
    pub ewma_window: Option<Duration>,
    /// Panic threshold, slow start and the endpoints' places on the hash ring.
    pub balance: BalanceSettings,
    pub health: Option<HealthSettings>,
    pub outlier: Option<OutlierSettings>,
    pub circuit: Option<CircuitLimits>,
}

#[derive(Debug, Clone)]
pub struct EndpointShape {
    /// How the report names the endpoint (its address).
    pub label: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct RouteShape {
    pub name: String,
    /// Index into [`Topology::pools`]: the route's pool, or the first side of its split.
    pub pool: usize,
    /// For a weighted split, each side's pool and weight; empty otherwise.
    pub split: Vec<(usize, u32)>,
    /// The route's timeout until the response head, from the spec.
    pub timeout: Option<Duration>,
    /// The spec's retry policy, per-try timeout and retry budget.
    pub retries: RetrySettings,
    pub per_try_timeout: Option<Duration>,
    pub budget: Option<BudgetSettings>,
    /// The key that pins a request to a side of the split.
    pub sticky: Option<Sticky>,
}

impl PoolShape {
    /// A pool with the spec's default settings.
    pub fn new(name: &str, balance: Balance, endpoints: Vec<EndpointShape>) -> PoolShape {
        PoolShape {
            name: name.to_owned(),
            balance,
            endpoints,
            rules: PoolRules::default(),
            hash_on: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            protocol: Protocol::Http1,
            idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

impl RouteShape {
    /// A route to `pool` with no timeout and the default failover policy.
    pub fn new(name: &str, pool: usize) -> RouteShape {
        RouteShape {
            name: name.to_owned(),
            pool,
            split: Vec::new(),
            timeout: None,
            retries: RetrySettings::default(),
            per_try_timeout: None,
            budget: None,
            sticky: None,
        }
    }
}

impl Topology {
    /// The shape of a compiled plan.
    pub fn from_plan(plan: &Plan) -> Topology {
        let pools = plan
            .pools
            .iter()
            .map(|p| PoolShape {
                name: p.name.clone(),
                balance: p.balance,
                endpoints: p
                    .endpoints
                    .iter()
                    .map(|e| EndpointShape { label: e.address.to_string(), weight: e.weight })
                    .collect(),
                rules: PoolRules {
                    choices: p.choices,
                    ewma_window: p.ewma_window,
                    balance: p.balance_settings.clone(),
                    health: p.health_check.as_ref().map(|h| h.settings.clone()),
                    outlier: p.outlier_detection,
                    circuit: (p.circuit_breaker != CircuitLimits::default())
                        .then_some(p.circuit_breaker),
                },
                hash_on: p.hash_on.clone(),
                connect_timeout: p.connect_timeout,
                protocol: p.protocol,
                idle_timeout: p.idle_timeout,
                stall_timeout: p.stall_timeout,
            })
            .collect();
        let routes = plan
            .routes
            .iter()
            .map(|r| RouteShape {
                name: r.name.clone(),
                pool: r.pool,
                split: r.split.iter().map(|s| (s.pool, s.weight)).collect(),
                timeout: r.timeout,
                retries: r.retries.settings.clone(),
                per_try_timeout: r.retries.per_try_timeout,
                budget: r.retry_budget,
                sticky: r.sticky.as_deref().cloned(),
            })
            .collect();
        Topology { pools, routes }
    }

    pub fn route_index(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.name == name)
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }
}

/// A checked scenario, resolved against a [`Topology`].
#[derive(Debug, Clone)]
pub struct Workload {
    /// The scenario's seed, if it set one.
    pub seed: Option<u64>,
    /// When arrivals stop.
    pub length: Length,
    /// Arrivals before this instant warm the system up and are not measured.
    pub warmup: Nanos,
    /// How requests arrive.
    pub arrivals: Arrivals,
    /// How arrivals split over routes (weights > 0, at least one share).
    pub traffic: Vec<RouteShare>,
    /// Per pool of the topology, by index: its service model, when the
    /// scenario gives one. Every pool the traffic reaches has one.
    pub pools: Vec<Option<PoolLoad>>,
    /// Gateway settings every variant starts from.
    pub gateway: Gateway,
    /// Endpoint events, in time order.
    pub events: Vec<Fault>,
    /// The variants to compare, at least one.
    pub variants: Vec<Variant>,
}

impl Workload {
    /// A workload of Poisson arrivals at `rate` with default gateway
    /// settings, no events and one variant, `spec`.
    pub fn poisson(
        length: Length,
        warmup: Nanos,
        rate: f64,
        traffic: Vec<RouteShare>,
        pools: Vec<Option<PoolLoad>>,
    ) -> Workload {
        Workload {
            seed: None,
            length,
            warmup,
            arrivals: Arrivals::Open {
                pattern: Pattern::Poisson,
                profile: RateProfile::flat(rate),
            },
            traffic,
            pools,
            gateway: Gateway::default(),
            events: Vec::new(),
            variants: vec![Variant::spec()],
        }
    }

    /// The open-loop base rate (a replay's mean rate), or 0 for a closed loop.
    pub fn base_rate(&self) -> f64 {
        match &self.arrivals {
            Arrivals::Open { profile, .. } => profile.base,
            Arrivals::Closed { .. } => 0.0,
            Arrivals::Replay(replay) => replay.rate(),
        }
    }
}

/// How requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// An open-loop source whose rate follows `profile`.
    Open { pattern: Pattern, profile: RateProfile },
    /// `clients` clients, each waiting an exponential think time of mean
    /// `think` after an answer before its next request.
    Closed { clients: u32, think: Nanos },
    /// Arrivals read from an access log, in time order.
    Replay(Replay),
}

/// The requests of an access log, as arrivals: instants relative to the
/// log's first request (already divided by the scale), and for each its
/// traffic share and its client.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Arrival instants, ascending.
    pub times: std::sync::Arc<[Nanos]>,
    /// Per arrival: its index into [`Workload::traffic`].
    pub shares: std::sync::Arc<[u32]>,
    /// Per arrival: its client (as logged, `IP:PORT`), numbered in order
    /// of first appearance.
    pub clients: std::sync::Arc<[u32]>,
    /// Per client number: its IP address, which a pool hashing or a split
    /// sticking on the client address reads.
    pub addresses: std::sync::Arc<[std::net::IpAddr]>,
    /// Distinct clients in the log.
    pub distinct_clients: u32,
    /// The rate factor the log was replayed at.
    pub scale: f64,
}

impl Replay {
    /// The mean arrival rate over the replay, requests per second.
    pub fn rate(&self) -> f64 {
        let span = self.times.last().copied().unwrap_or(0);
        if span == 0 {
            return 0.0;
        }
        self.times.len() as f64 * 1e9 / span as f64
    }
}

/// How open-loop arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Poisson,
    Constant,
}

/// An arrival rate over time: a base rate, changes (steps or linear ramps)
/// and bursts that multiply it, and a daily curve that multiplies it too.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    /// Requests per second before the first change (> 0).
    pub base: f64,
    /// In time order.
    pub changes: Vec<RateChange>,
    pub bursts: Vec<Burst>,
    pub daily: Option<DailyCurve>,
}

/// A day of hourly rate multipliers, compressed into `period` of virtual
/// time and repeated: the multiplier is `hours[h]` at the start of hour `h`
/// and moves linearly to the next hour's (after hour 23, hour 0's).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyCurve {
    /// One day of virtual time (> 0).
    pub period: Nanos,
    /// The multiplier at the start of each hour from midnight (24, each > 0).
    pub hours: Vec<f64>,
}

impl DailyCurve {
    /// The multiplier at `t`.
    pub fn at(&self, t: Nanos) -> f64 {
        let n = self.hours.len();
        if n == 0 || self.period == 0 {
            return 1.0;
        }
        // The position within the day, in hours (exact integer arithmetic
        // for the day, so that long runs do not drift).
        let into = (t % self.period) as f64 / self.period as f64 * n as f64;
        let h = (into as usize).min(n - 1);
        let (from, to) = (self.hours[h], self.hours[(h + 1) % n]);
        from + (to - from) * (into - h as f64)
    }

    /// The largest multiplier.
    pub fn peak(&self) -> f64 {
        self.hours.iter().copied().fold(0.0, f64::max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateChange {
    pub at: Nanos,
    pub ramp: Nanos,
    pub rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub from: Nanos,
    pub until: Nanos,
    pub factor: f64,
}

impl RateProfile {
    pub fn flat(rate: f64) -> RateProfile {
        RateProfile { base: rate, changes: Vec::new(), bursts: Vec::new(), daily: None }
    }

    /// The rate at `t`, requests per second.
    pub fn at(&self, t: Nanos) -> f64 {
        let mut rate = self.base;
        for c in self.changes.iter().take_while(|c| c.at <= t) {
            let into = t - c.at;
            rate = if into >= c.ramp {
                c.rate
            } else {
                rate + (c.rate - rate) * into as f64 / c.ramp as f64
            };
        }
        let factor: f64 =
            self.bursts.iter().filter(|b| b.from <= t && t < b.until).map(|b| b.factor).product();
        match &self.daily {
            Some(daily) => rate * factor * daily.at(t),
            None => rate * factor,
        }
    }

    /// An upper bound of the rate at any time.
    pub fn peak(&self) -> f64 {
        let rates = self.changes.iter().map(|c| c.rate).fold(self.base, f64::max);
        let bursts: f64 = self.bursts.iter().map(|b| b.factor.max(1.0)).product();
        match &self.daily {
            Some(daily) => rates * bursts * daily.peak(),
            None => rates * bursts,
        }
    }

    /// The highest rate before `end` (at any time, without one), and the
    /// first instant it is reached.
    ///
    /// Between two breakpoints (the start and end of a change's ramp or of a
    /// burst, the start of an hour of the daily curve) the base rate and the
    /// daily multiplier are each linear and the bursts constant, so the rate
    /// is a quadratic in time: its largest value over the piece is at an end
    /// or at the vertex, and those are all looked at. Past the last change
    /// or burst the rate repeats with the day, so one day more is enough.
    /// With more hours than can be looked at one by one (a very short day
    /// over a long run), [`RateProfile::peak`] stands in, an upper bound.
    pub fn highest(&self, end: Option<Nanos>) -> (f64, Nanos) {
        const MOST_HOURS: u64 = 200_000;
        let mut points = vec![0];
        for c in &self.changes {
            points.extend([c.at, c.at.saturating_add(c.ramp)]);
        }
        for b in &self.bursts {
            points.extend([b.from, b.until]);
        }
        let last = points.iter().copied().max().unwrap_or(0);
        let horizon = match &self.daily {
            Some(d) => last.saturating_add(d.period),
            None => last.saturating_add(1),
        };
        let horizon = end.map_or(horizon, |end| horizon.min(end)).max(1);
        if let Some(d) = &self.daily {
            let hours = d.hours.len().max(1) as u64;
            let hour = (d.period / hours).max(1);
            if horizon / hour > MOST_HOURS {
                return (self.peak(), 0);
            }
            points.extend((0..=horizon / hour).map(|h| (h * d.period) / hours));
        }
        points.push(horizon);
        points.retain(|&t| t <= horizon);
        points.sort_unstable();
        points.dedup();

        let mut best = (self.at(0), 0);
        let mut look = |t: Nanos| {
            let rate = self.at(t);
            if rate > best.0 {
                best = (rate, t);
            }
        };
        for piece in points.windows(2) {
            let (from, to) = (piece[0], piece[1] - 1);
            look(from);
            look(to);
            if to <= from + 1 {
                continue;
            }
            // The vertex of the parabola through the ends and the middle.
            let mid = from + (to - from) / 2;
            let (x0, x1, x2) = (0.0, (mid - from) as f64, (to - from) as f64);
            let (y0, y1, y2) = (self.at(from), self.at(mid), self.at(to));
            let a = ((y2 - y0) / x2 - (y1 - y0) / x1) / (x2 - x1);
            if a < 0.0 {
                let b = (y1 - y0) / x1 - a * (x1 + x0);
                let vertex = -b / (2.0 * a);
                if (0.0..=x2).contains(&vertex) {
                    look(from + vertex as Nanos);
                }
            }
        }
        best
    }

    /// Whether the rate is the same at all times.
    pub fn is_flat(&self) -> bool {
        self.changes.is_empty() && self.bursts.is_empty() && self.daily.is_none()
    }

    /// The expected number of arrivals in `[0, end)`: a midpoint sum over
    /// the pieces between breakpoints (the ends of changes' ramps and of
    /// bursts, and with a daily curve, the start of every hour), on each of
    /// which the rate is linear or a product of two linear terms, so the sum
    /// is exact or very nearly. Over more than a thousand days, a daily
    /// curve counts at its mean multiplier.
    pub fn expected(&self, end: Nanos) -> f64 {
        const STEPS: u64 = 1_000;
        const MOST_DAYS: u64 = 1_000;
        let mut points = vec![0, end];
        for c in &self.changes {
            points.extend([c.at, c.at.saturating_add(c.ramp)]);
        }
        for b in &self.bursts {
            points.extend([b.from, b.until]);
        }
        if let Some(d) = &self.daily {
            let hours = d.hours.len().max(1) as u64;
            if end / d.period.max(1) > MOST_DAYS {
                let mean = d.hours.iter().sum::<f64>() / hours as f64;
                let without = RateProfile { daily: None, ..self.clone() };
                return without.expected(end) * mean;
            }
            let hour = (d.period / hours).max(1);
            points.extend((0..=end / hour).map(|h| h * d.period / hours));
        }
        points.retain(|&t| t <= end);
        points.sort_unstable();
        points.dedup();
        let mut total = 0.0;
        for piece in points.windows(2) {
            let (from, to) = (piece[0], piece[1]);
            let steps = (STEPS as u128 * u128::from(to - from) / u128::from(end.max(1))).max(1);
            let step = ((u128::from(to - from) / steps) as Nanos).max(1);
            let mut t = from;
            while t < to {
                let width = step.min(to - t);
                total += self.at(t + width / 2) * width as f64 / 1e9;
                t += width;
            }
        }
        total
    }
}

/// Gateway settings, lowered into the traffic crate's types.
///
/// A scenario's `gateway:` sections change single settings over each
/// route's and pool's own (from the spec), as the variant grid does: only
/// what a section names changes, in [`Overrides`]. A grid value wins over
/// the scenario's for the same setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Gateway replicas (>= 1), each with its own decision state.
    pub instances: u32,
    /// Route timeout for every route, over the spec's.
    pub timeout: Option<Duration>,
    /// Per-try timeout, over the spec's.
    pub per_try_timeout: Option<Duration>,
    /// A whole retry policy in place of every route's own, for callers
    /// that build a workload by hand; `attempts` and `overrides` still
    /// change single fields over it. Scenarios never set it.
    pub retries: Option<RetrySettings>,
    /// Retry attempts, over the route's policy.
    pub attempts: Option<u32>,
    /// `Some(true)`: every route has a retry budget, its own or the default
    /// one; `Some(false)`: none has; `None`: each route keeps its own.
    pub budget: Option<bool>,
    /// Every pool has active health checks, its own or the default ones.
    pub health: bool,
    /// Every pool has outlier detection, its own or the default one.
    pub outlier: bool,
    /// Single settings, applied over each pool's and route's own (a pool
    /// or route without the feature gets its defaults with the change).
    pub overrides: Overrides,
}

/// Single settings, each over whatever a pool or route has otherwise: only
/// the named limit, threshold or duration changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The circuit breaker's limits.
    pub max_requests: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_pending: Option<u32>,
    /// The retry policy's `on` conditions and backoff.
    pub retry_on: Option<RetryConditions>,
    pub backoff_base: Option<Duration>,
    pub backoff_max: Option<Duration>,
    /// The retry budget's settings (a route without a budget gets the
    /// default one with these).
    pub budget_ratio: Option<u32>,
    pub budget_min_per_second: Option<u32>,
    pub budget_window: Option<Duration>,
    /// Health-check settings (a pool without health checks gets the
    /// default ones with these).
    pub health_interval: Option<Duration>,
    pub health_jitter: Option<Duration>,
    pub health_timeout: Option<Duration>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    /// Outlier-detection settings (a pool without outlier detection gets
    /// the default one with these).
    pub consecutive_failures: Option<u32>,
    pub consecutive_connect_failures: Option<u32>,
    pub base_ejection: Option<Duration>,
    pub max_ejection: Option<Duration>,
    pub max_ejection_percent: Option<u8>,
}

impl Overrides {
    fn circuit(&self) -> bool {
        [self.max_requests, self.max_connections, self.max_pending].iter().any(Option::is_some)
    }

    fn budget(&self) -> bool {
        self.budget_ratio.is_some()
            || self.budget_min_per_second.is_some()
            || self.budget_window.is_some()
    }

    fn health(&self) -> bool {
        let counts = [self.healthy_threshold, self.unhealthy_threshold];
        let times = [self.health_interval, self.health_jitter, self.health_timeout];
        counts.iter().any(Option::is_some) || times.iter().any(Option::is_some)
    }

    fn outlier(&self) -> bool {
        let counts = [self.consecutive_failures, self.consecutive_connect_failures];
        let times = [self.base_ejection, self.max_ejection];
        counts.iter().any(Option::is_some)
            || times.iter().any(Option::is_some)
            || self.max_ejection_percent.is_some()
    }
}

impl Default for Gateway {
    fn default() -> Gateway {
        Gateway {
            instances: 1,
            timeout: None,
            per_try_timeout: None,
            retries: None,
            attempts: None,
            budget: None,
            health: false,
            outlier: false,
            overrides: Overrides::default(),
        }
    }
}

impl Gateway {
    /// The deadlines of `route` under these settings.
    pub fn deadline(&self, route: &RouteShape) -> DeadlineSettings {
        DeadlineSettings {
            per_try: self.per_try_timeout.or(route.per_try_timeout),
            overall: self.timeout.or(route.timeout),
        }
    }

    /// The retry policy of `route` under these settings.
    pub fn retries(&self, route: &RouteShape) -> RetrySettings {
        let o = &self.overrides;
        let mut r = self.retries.clone().unwrap_or_else(|| route.retries.clone());
        r.attempts = self.attempts.unwrap_or(r.attempts);
        if let Some(on) = o.retry_on {
            r.on = on.to_retry_on();
        }
        r.backoff_base = o.backoff_base.unwrap_or(r.backoff_base);
        r.backoff_max = o.backoff_max.unwrap_or(r.backoff_max);
        r
    }

    /// The retry budget of `route` under these settings, if it has one.
    pub fn budget(&self, route: &RouteShape) -> Option<BudgetSettings> {
        let o = &self.overrides;
        let own = match (self.budget, route.budget) {
            (Some(false), _) => return None,
            (_, Some(own)) => own,
            (Some(true), None) => BudgetSettings::default(),
            (None, None) if o.budget() => BudgetSettings::default(),
            (None, None) => return None,
        };
        Some(BudgetSettings {
            ratio_percent: o.budget_ratio.unwrap_or(own.ratio_percent),
            min_per_second: o.budget_min_per_second.unwrap_or(own.min_per_second),
            window: o.budget_window.unwrap_or(own.window),
        })
    }

    /// The decision settings of `pool` under these settings.
    pub fn pool(&self, pool: &PoolShape) -> PoolRules {
        let (own, o) = (&pool.rules, &self.overrides);
        let circuit = match own.circuit {
            None if !o.circuit() => None,
            c => {
                let c = c.unwrap_or_default();
                Some(CircuitLimits {
                    max_requests: o.max_requests.unwrap_or(c.max_requests),
                    max_connections: o.max_connections.unwrap_or(c.max_connections),
                    max_pending: o.max_pending.unwrap_or(c.max_pending),
                })
            }
        };
        let health = match &own.health {
            None if !(self.health || o.health()) => None,
            h => {
                let h = h.clone().unwrap_or_default();
                Some(HealthSettings {
                    interval: o.health_interval.unwrap_or(h.interval),
                    jitter: o.health_jitter.unwrap_or(h.jitter),
                    timeout: o.health_timeout.unwrap_or(h.timeout),
                    healthy_threshold: o.healthy_threshold.unwrap_or(h.healthy_threshold),
                    unhealthy_threshold: o.unhealthy_threshold.unwrap_or(h.unhealthy_threshold),
                    ..h
                })
            }
        };
        let outlier = match own.outlier {
            None if !(self.outlier || o.outlier()) => None,
            d => {
                let d = d.unwrap_or_default();
                Some(OutlierSettings {
                    consecutive_failures: o.consecutive_failures.unwrap_or(d.consecutive_failures),
                    consecutive_connect_failures: o
                        .consecutive_connect_failures
                        .unwrap_or(d.consecutive_connect_failures),
                    base_ejection: o.base_ejection.unwrap_or(d.base_ejection),
                    max_ejection: o.max_ejection.unwrap_or(d.max_ejection),
                    max_ejection_percent: o.max_ejection_percent.unwrap_or(d.max_ejection_percent),
                })
            }
        };
        PoolRules {
            choices: own.choices,
            ewma_window: own.ewma_window,
            balance: own.balance.clone(),
            health,
            outlier,
            circuit,
        }
    }

    /// These settings with a variant's overrides applied: each of its
    /// values wins over the scenario's for the same setting.
    pub fn with(&self, variant: &Variant) -> Gateway {
        let mut g = self.clone();
        if let Some(attempts) = variant.attempts {
            g.attempts = Some(attempts);
        }
        if let Some(timeout) = variant.timeout {
            g.timeout = Some(Duration::from_nanos(timeout));
        }
        if let Some(per_try) = variant.per_try_timeout {
            g.per_try_timeout = Some(Duration::from_nanos(per_try));
        }
        let o = &mut g.overrides;
        o.max_requests = variant.max_requests.or(o.max_requests);
        o.max_connections = variant.max_connections.or(o.max_connections);
        o.max_pending = variant.max_pending.or(o.max_pending);
        o.retry_on = variant.retry_on.or(o.retry_on);
        o.health_interval = variant.health_interval.map(Duration::from_nanos).or(o.health_interval);
        o.healthy_threshold = variant.healthy_threshold.or(o.healthy_threshold);
        o.unhealthy_threshold = variant.unhealthy_threshold.or(o.unhealthy_threshold);
        // A budget switched off has no ratio to change.
        if variant.retry_budget != Some(false) {
            o.budget_ratio = variant.budget_ratio.or(o.budget_ratio);
        }
        if let Some(on) = variant.retry_budget {
            g.budget = Some(on);
        }
        g
    }
}

/// What happens to one endpoint (a flat index over every pool's endpoints)
/// at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    pub at: Nanos,
    pub pool: usize,
    /// Index within the pool.
    pub endpoint: usize,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    Crash,
    Recover,
    Slow(f64),
    Fail(f64),
    FailFast,
    BlackHole,
    StopAccepting,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Recover => "recover",
            FaultKind::Slow(_) => "slow",
            FaultKind::Fail(_) => "fail",
            FaultKind::FailFast => "fail_fast",
            FaultKind::BlackHole => "black_hole",
            FaultKind::StopAccepting => "stop_accepting",
        }
    }
}

/// When a run stops admitting arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Arrivals stop at this instant, warm-up included.
    Duration(Nanos),
    /// Arrivals stop after this many measured (post-warm-up) requests.
    Requests(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteShare {
    /// Index into [`Topology::routes`].
    pub route: usize,
    pub weight: f64,
    /// The values the share's requests carry, when it sets any.
    pub template: Option<Arc<Template>>,
}

impl RouteShare {
    /// A share of `route` whose requests carry no values.
    pub fn new(route: usize, weight: f64) -> RouteShare {
        RouteShare { route, weight, template: None }
    }
}

/// How one endpoint serves requests.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointLoad {
    /// Requests served at once (>= 1); more wait in its FIFO queue.
    pub workers: u32,
    pub service: ServiceTime,
    /// Most requests waiting; beyond, 503 at once.
    pub queue_limit: Option<u32>,
}

/// The service model of the endpoints of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolLoad {
    /// Requests an endpoint serves at once (>= 1); more wait in its FIFO queue.
    pub workers: u32,
    pub service: ServiceTime,
    pub queue_limit: Option<u32>,
    /// Per endpoint of the pool, by index: its own model, when it has one.
    pub endpoints: Vec<Option<EndpointLoad>>,
}

impl PoolLoad {
    /// Every endpoint alike, with no queue limit.
    pub fn new(workers: u32, service: ServiceTime) -> PoolLoad {
        PoolLoad { workers, service, queue_limit: None, endpoints: Vec::new() }
    }

    /// The model of endpoint `index`.
    pub fn endpoint(&self, index: usize) -> EndpointLoad {
        match self.endpoints.get(index) {
            Some(Some(e)) => e.clone(),
            _ => EndpointLoad {
                workers: self.workers,
                service: self.service.clone(),
                queue_limit: self.queue_limit,
            },
        }
    }
}

/// One way of running the gateway: a balancing choice and setting overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// `None`: each pool uses the algorithm its spec names.
    pub balance: Option<Balance>,
    pub attempts: Option<u32>,
    pub timeout: Option<Nanos>,
    pub max_requests: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_pending: Option<u32>,
    pub retry_budget: Option<bool>,
    pub per_try_timeout: Option<Nanos>,
    pub retry_on: Option<RetryConditions>,
    /// The retry budget's `ratio_percent`.
    pub budget_ratio: Option<u32>,
    pub health_interval: Option<Nanos>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
}

/// A retry policy's `on` conditions, in a form that copies: statuses 500 to
/// 599 as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryConditions {
    pub connect_failure: bool,
    pub reset: bool,
    pub timeout: bool,
    /// Bit `k` is status `500 + k`.
    statuses: u128,
}

impl RetryConditions {
    /// The conditions of `on`; statuses outside 500 to 599 are left out
    /// (`check` refuses them).
    pub fn new(on: &RetryOn) -> RetryConditions {
        let statuses = on
            .statuses
            .iter()
            .filter(|s| (500..600).contains(*s))
            .fold(0u128, |bits, s| bits | 1 << (s - 500));
        RetryConditions {
            connect_failure: on.connect_failure,
            reset: on.reset,
            timeout: on.timeout,
            statuses,
        }
    }

    pub fn to_retry_on(self) -> RetryOn {
        RetryOn {
            connect_failure: self.connect_failure,
            reset: self.reset,
            timeout: self.timeout,
            statuses: (0..100u16)
                .filter(|k| self.statuses >> k & 1 == 1)
                .map(|k| 500 + k)
                .collect(),
        }
    }

    /// Such as `connect_failure+timeout+503`, or `none`.
    pub fn name(self) -> String {
        let flags = [
            (self.connect_failure, "connect_failure"),
            (self.reset, "reset"),
            (self.timeout, "timeout"),
        ];
        let words = flags.iter().filter(|(on, _)| *on).map(|(_, w)| w.to_string());
        let statuses = self.to_retry_on().statuses.into_iter().map(|s| s.to_string());
        let all: Vec<String> = words.chain(statuses).collect();
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join("+")
        }
    }
}

impl Variant {
    /// Each pool uses the algorithm its spec names.
    pub fn spec() -> Variant {
        Variant {
            balance: None,
            attempts: None,
            timeout: None,
            max_requests: None,
            max_connections: None,
            max_pending: None,
            retry_budget: None,
            per_try_timeout: None,
            retry_on: None,
            budget_ratio: None,
            health_interval: None,
            healthy_threshold: None,
            unhealthy_threshold: None,
        }
    }

    /// Every pool uses `balance`.
    pub fn all(balance: Balance) -> Variant {
        Variant { balance: Some(balance), ..Variant::spec() }
    }

    /// The name used in scenarios and reports: the algorithm, then each
    /// override, such as `least_request attempts=3 timeout=250ms`.
    pub fn name(&self) -> String {
        let mut name = self.balance.map_or("spec", Balance::as_str).to_owned();
        if let Some(a) = self.attempts {
            name.push_str(&format!(" attempts={a}"));
        }
        if let Some(t) = self.timeout {
            name.push_str(&format!(" timeout={}", crate::time::Human(t)));
        }
        if let Some(m) = self.max_requests {
            name.push_str(&format!(" max_requests={m}"));
        }
        if let Some(m) = self.max_connections {
            name.push_str(&format!(" max_connections={m}"));
        }
        if let Some(m) = self.max_pending {
            name.push_str(&format!(" max_pending={m}"));
        }
        if let Some(b) = self.retry_budget {
            name.push_str(if b { " budget=on" } else { " budget=off" });
        }
        if let Some(t) = self.per_try_timeout {
            name.push_str(&format!(" per_try_timeout={}", crate::time::Human(t)));
        }
        if let Some(on) = self.retry_on {
            name.push_str(&format!(" retry_on={}", on.name()));
        }
        if let Some(r) = self.budget_ratio {
            name.push_str(&format!(" budget_ratio={r}%"));
        }
        if let Some(t) = self.health_interval {
            name.push_str(&format!(" health_interval={}", crate::time::Human(t)));
        }
        if let Some(n) = self.healthy_threshold {
            name.push_str(&format!(" healthy_threshold={n}"));
        }
        if let Some(n) = self.unhealthy_threshold {
            name.push_str(&format!(" unhealthy_threshold={n}"));
        }
        name
    }

    /// The algorithm a pool whose spec says `own` uses under this variant.
    pub fn balance_for(&self, own: Balance) -> Balance {
        self.balance.unwrap_or(own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;

    /// The largest rate seen at every millisecond before `end`.
    fn scanned(profile: &RateProfile, end: Nanos) -> f64 {
        (0..end / 1_000_000).map(|ms| profile.at(ms * 1_000_000)).fold(0.0, f64::max)
    }

    #[test]
    fn expected_arrivals_are_exact_across_steps_ramps_and_bursts() {
        let profile = RateProfile {
            base: 300.0,
            changes: vec![
                RateChange { at: 6 * SECOND + 1, ramp: 0, rate: 30.0 },
                RateChange { at: 10 * SECOND, ramp: 2 * SECOND + 7, rate: 130.0 },
            ],
            bursts: vec![Burst { from: 20 * SECOND + 3, until: 21 * SECOND, factor: 2.0 }],
            daily: None,
        };
        // 300/s for 6 s, 30/s for 4 s, a ramp from 30 to 130/s over 2 s,
        // then 130/s, doubled for a second.
        let exact = 1800.0 + 120.0 + 160.0 + 130.0 * 18.0 + 130.0;
        let got = profile.expected(30 * SECOND);
        assert!((got - exact).abs() < 1e-3, "{got} against {exact}");
    }

    #[test]
    fn the_highest_rate_is_found_between_breakpoints_too() {
        // A ramp up against a daily curve going down: their product peaks
        // inside an hour, not at a breakpoint.
        let falling: Vec<f64> = (0..24).map(|h| 3.0 - f64::from(h) / 12.0).collect();
        let daily = DailyCurve { period: 24 * SECOND, hours: falling };
        let ramp = RateChange { at: 0, ramp: 24 * SECOND, rate: 400.0 };
        let early = Burst { from: 15 * SECOND, until: 16 * SECOND, factor: 1.5 };
        let burst = Burst { from: 30 * SECOND, until: 31 * SECOND, factor: 1.5 };
        let profiles = [
            RateProfile { base: 130.0, changes: vec![ramp], bursts: vec![], daily: Some(daily) },
            RateProfile { base: 100.0, changes: vec![], bursts: vec![early], daily: None },
            RateProfile::flat(7.0),
        ];
        for profile in profiles {
            // (Before the day wraps back to its highest hour.)
            let end = 20 * SECOND;
            let (rate, at) = profile.highest(Some(end));
            let want = scanned(&profile, end);
            assert!(rate >= want * (1.0 - 1e-9), "{rate} below the scanned {want}: {profile:?}");
            assert!(rate <= want * (1.0 + 1e-4), "{rate} above the scanned {want}: {profile:?}");
            assert_eq!(profile.at(at), rate);
            assert!(rate <= profile.peak() * (1.0 + 1e-12));
        }
        // Arrivals that stop before the burst never see it.
        let burst = RateProfile { bursts: vec![burst], ..RateProfile::flat(100.0) };
        assert_eq!(burst.highest(Some(30 * SECOND)), (100.0, 0));
        assert_eq!(burst.highest(None), (150.0, 30 * SECOND));
    }
}
