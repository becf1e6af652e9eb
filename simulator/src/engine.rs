//! The discrete-event engine.
//!
//! Next-event time advance over an [`EventQueue`]: the clock jumps from one
//! event to the next, and nothing happens in between. The model is an open
//! (or, with clients, closed) network of multi-server FIFO queues, one per
//! endpoint, in front of which one or more gateway instances decide:
//!
//! 1. A source emits requests ([`source`]); each picks a route by the
//!    scenario's weights and lands on a gateway instance.
//! 2. The instance runs each try through the same `sluice_traffic` machines
//!    as `serve` ([`gateway`]): the request's [`sluice_traffic::Deadline`],
//!    the pool's [`sluice_traffic::CircuitBreaker`], its
//!    [`sluice_traffic::Balancer`], and after a failed try
//!    [`sluice_traffic::retry::decide`] with the pool's retry budget.
//!    Outlier detection and active health checks mark endpoints eligible or
//!    not, all in virtual time.
//! 3. The endpoint ([`station`]) refuses (crashed), answers 503 at once
//!    (failing fast, or its queue is full), swallows the request (black
//!    hole), or starts it when a worker is free and queues it otherwise.
//!    A try the gateway gave up on keeps its worker until the endpoint
//!    finishes it, which is how retries amplify an overload.
//!
//! Service demand is drawn by inversion from a uniform keyed by the request
//! and try number ([`crate::random::keyed_uniform`]), so every variant gives
//! the n-th try of a request the same rank of demand, on whichever endpoint.
//! Arrivals, their routes and, when every endpoint has the same law, the
//! demand of their first tries depend on nothing a variant decides, so with
//! a core to spare they are drawn ahead on a second thread ([`source`]),
//! which changes no result.
//!
//! Measurement follows the usual steady-state practice: arrivals before the
//! warm-up instant are served but not counted; arrivals in the measured
//! window are followed to completion, however long the system takes to
//! drain. Utilisation is the time-integral of busy workers over the window,
//! divided by workers times window length.
//!
//! Validation: with one endpoint this is a textbook queue, and the tests
//! check it against M/M/1, M/M/c (Erlang C), M/M/c/K (a queue limit),
//! M/D/1 (Pollaczek-Khinchine), the sigma-root formula of round robin, and
//! the supermarket model of power-of-d choices.

mod connections;
mod gateway;
mod measure;
mod source;
mod station;

use rand_pcg::Pcg64;
use sluice_compiler::plan::key::{self, KeySource};
use sluice_compiler::spec::HashOn;
use sluice_compiler::Balance;
use sluice_traffic::{
    Algorithm, Deadline, DeadlineSettings, Nanos as Clock, Outcome as TryOutcome, RetrySettings,
};

use self::connections::Connections;
use self::gateway::Instance;
use self::measure::{Ended, Ending, Measure, Tally};
use self::source::{Draws, Feed, Helper, Source};
use self::station::{Station, TrySlots};
use crate::queue::EventQueue;
use crate::random::{keyed_bits, keyed_uniform, stream, ServiceTime, Stream};
use crate::report::VariantReport;
use crate::time::Nanos;
use crate::workload::{Arrivals, Length, PoolRules, Topology, Variant, Workload};

/// The traffic algorithm a spec's balance name stands for.
pub fn algorithm(balance: Balance) -> Algorithm {
    // The one mapping, shared with `serve`.
    sluice_compiler::plan::algorithm(balance, None, None)
}

/// Salts of the keyed draws, one per use.
mod salt {
    pub const INSTANCE: u64 = 1 << 40;
    pub const FAIL: u64 = 2 << 40;
    pub const PROBE: u64 = 3 << 40;
    pub const THINK: u64 = 4 << 40;
    pub const SPLIT: u64 = 5 << 40;
}

/// A request, from arrival to its final answer.
#[derive(Debug, Clone, Copy)]
struct Request {
    id: u64,
    arrived: Nanos,
    /// Index into the workload's traffic shares.
    share: u32,
    route: u32,
    pool: u32,
    instance: u32,
    measured: bool,
    tries: u32,
    /// The closed-loop client that sent it.
    client: Option<u32>,
    /// The endpoint (within the pool) of the last try.
    last: Option<u32>,
    /// The endpoints (within the pool) of every try so far, as bits; an
    /// endpoint past the 64th is remembered only as `last`.
    tried: u64,
    /// The hash of the request's key, for a pool that hashes on one.
    hash: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// The open-loop arrival the [`Source`] holds is due.
    Arrival,
    /// A closed-loop client sends its next request.
    Client(u32),
    /// An endpoint finished serving try `slot`.
    Served { slot: u32, generation: u32 },
    /// The time limit of try `slot` passed.
    Timeout { slot: u32, generation: u32 },
    /// The connect of try `slot` to an endpoint that accepts no connection
    /// ran out of time.
    Unaccepted { slot: u32, generation: u32 },
    /// Tries waiting in the queue of endpoint `endpoint` (a flat index) may
    /// have waited out their pool's stall timeout.
    Stall { endpoint: u32 },
    /// Request `request` tries again after its backoff.
    Retry(u32),
    /// The workload's fault number `n` happens.
    Fault(u32),
    /// Instance `instance` probes endpoint `endpoint` (a flat index).
    Probe { instance: u32, endpoint: u32 },
    /// The probe's result is known.
    Probed { instance: u32, endpoint: u32, outcome: TryOutcome },
    /// Ejections in `pool` of `instance` may be over.
    Return { instance: u32, pool: u32 },
    /// The warm-up ends.
    Open,
    /// The measured window ends (duration runs only).
    Close,
}

/// Which of the gateway's optional machines a run has anywhere, so that a
/// run without one skips looking for it on every try.
#[derive(Debug, Clone, Copy)]
struct Machines {
    /// A time limit on some route.
    deadlines: bool,
    /// A circuit breaker on some pool.
    breakers: bool,
    /// A retry budget on some route.
    budgets: bool,
    /// Outlier detection on some pool.
    outliers: bool,
}

/// What one variant's run produced, before formatting.
pub(crate) struct Outcome {
    pub report: VariantReport,
    pub warmup: Nanos,
    pub measured: Nanos,
    /// A hash of every arrival's instant and route.
    #[cfg(test)]
    pub digest: u64,
    /// What the run recorded, when asked to ([`run_variant_traced`]).
    #[cfg(test)]
    pub trace: Option<Trace>,
}

/// Who went where in a run, for tests of common random numbers.
#[cfg(test)]
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Trace {
    /// Per request, as created: its pool (a split route's side), id and arrival.
    pub arrivals: Vec<(usize, u64, Nanos)>,
    /// Per try that began service: its pool, request id, try number and
    /// service demand (before any slowdown).
    pub demands: Vec<(usize, u64, u32, Nanos)>,
    /// Per try, as it started: its request id, try number, pool, endpoint
    /// within the pool, and start.
    pub tries: Vec<(u64, u32, usize, usize, Nanos)>,
    /// Per request, as it ended: its id, arrival, end and how it ended.
    pub ended: Vec<(u64, Nanos, Nanos, Ending)>,
}

/// The state of one variant's run.
struct Run<'a> {
    topology: &'a Topology,
    workload: &'a Workload,
    /// Per pool: its decision settings, the scenario's over the spec's.
    rules: Vec<PoolRules>,
    /// Per route: its retry policy.
    retries: Vec<RetrySettings>,
    /// Per route: its time limits.
    deadlines: Vec<DeadlineSettings>,
    /// Per pool: the key its balancer hashes on under this variant.
    hash_keys: Vec<Option<HashOn>>,
    /// Per pool: its connect timeout.
    connect_timeouts: Vec<Nanos>,
    /// Per pool: its stall timeout.
    stalls: Vec<Nanos>,
    /// Which of the gateway's machines the run has at all.
    has: Machines,
    /// Upstream connections, where they matter.
    connections: Option<Connections>,
    seed: u64,
    variant: Variant,
    events: EventQueue<Event>,
    /// Closed-loop runs draw each request's route here.
    source: Option<Source>,
    /// Open-loop and replay runs take their arrivals from here.
    feed: Option<Feed<'a>>,
    picks: Pcg64,
    instances: Vec<Instance>,
    /// Flat index of each pool's first endpoint.
    first: Vec<usize>,
    stations: Vec<Station>,
    tries: TrySlots,
    requests: Vec<Request>,
    free_requests: Vec<u32>,
    /// Requests created so far (their ids).
    created: u64,
    /// Measured requests created.
    admitted: u64,
    /// Whether arrivals have stopped.
    stopped: bool,
    measure: Measure,
    #[cfg(test)]
    trace: Option<Trace>,
}

/// Simulate `workload` on `topology` under one variant.
#[cfg(test)]
pub(crate) fn run_variant(
    topology: &Topology,
    workload: &Workload,
    seed: u64,
    variant: Variant,
) -> Outcome {
    let events = std::sync::atomic::AtomicU64::new(0);
    run_variant_counting(topology, workload, seed, variant, &events, false)
}

/// [`run_variant`], recording every request's pool and every try's demand
/// in [`Outcome::trace`].
#[cfg(test)]
pub(crate) fn run_variant_traced(
    topology: &Topology,
    workload: &Workload,
    seed: u64,
    variant: Variant,
) -> Outcome {
    let open = !matches!(workload.arrivals, Arrivals::Closed { .. });
    let draws = open.then(|| Draws::new(workload, seed, common_law(topology, workload)));
    let mut run = Run::new(topology, workload, seed, variant, draws.map(Feed::inline), None);
    run.trace = Some(Trace::default());
    let events = std::sync::atomic::AtomicU64::new(0);
    run.complete(&events, || None::<((), Tally)>).0
}

/// [`run_variant`], adding the events it processes to `events` in batches,
/// with its arrivals drawn on a thread of their own when `ahead` (the
/// outcome is the same either way).
pub(crate) fn run_variant_counting(
    topology: &Topology,
    workload: &Workload,
    seed: u64,
    variant: Variant,
    events: &std::sync::atomic::AtomicU64,
    ahead: bool,
) -> Outcome {
    let open = !matches!(workload.arrivals, Arrivals::Closed { .. });
    std::thread::scope(|scope| {
        let draws = open.then(|| Draws::new(workload, seed, common_law(topology, workload)));
        let (feed, helper, thread) = match draws {
            Some(draws) if ahead => {
                let (feed, helper, thread) = Feed::ahead(scope, draws, workload);
                (Some(feed), Some(helper), Some(thread))
            }
            Some(draws) => (Some(Feed::inline(draws)), None, None),
            None => (None, None, None),
        };
        let run = Run::new(topology, workload, seed, variant, feed, helper);
        let join =
            || thread.map(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        let (outcome, drawn) = run.complete(events, join);
        with_digest(outcome, drawn)
    })
}

/// The outcome, with the digest of the arrivals if another thread drew them.
#[cfg(test)]
fn with_digest(mut outcome: Outcome, drawn: Option<Draws>) -> Outcome {
    if let Some(draws) = drawn {
        outcome.digest = draws.digest();
    }
    outcome
}

#[cfg(not(test))]
fn with_digest(outcome: Outcome, _: Option<Draws>) -> Outcome {
    outcome
}

/// The service law of every endpoint the workload models, when they all
/// have the same one.
fn common_law(topology: &Topology, workload: &Workload) -> Option<ServiceTime> {
    let mut laws = topology.pools.iter().enumerate().flat_map(|(p, pool)| {
        let load = workload.pools.get(p).and_then(Option::as_ref);
        load.into_iter().flat_map(|l| (0..pool.endpoints.len()).map(|i| l.endpoint(i).service))
    });
    let first = laws.next()?;
    laws.all(|law| law == first).then_some(first)
}

impl Run<'_> {
    /// Process every event, and report; `join` gives back the helper's
    /// draws and tally, when a helper drew the arrivals.
    fn complete<D>(
        mut self,
        events: &std::sync::atomic::AtomicU64,
        join: impl FnOnce() -> Option<(D, Tally)>,
    ) -> (Outcome, Option<D>) {
        const BATCH: u64 = 1 << 16;
        let mut counted = 0u64;
        while let Some((now, event)) = self.events.pop() {
            counted += 1;
            if counted == BATCH {
                events.fetch_add(counted, std::sync::atomic::Ordering::Relaxed);
                counted = 0;
            }
            match event {
                Event::Arrival => self.open_arrival(now),
                Event::Client(c) => self.client_arrival(now, c),
                Event::Served { slot, generation } => self.served(now, slot, generation),
                Event::Timeout { slot, generation } => self.timed_out(now, slot, generation),
                Event::Unaccepted { slot, generation } => self.unaccepted(now, slot, generation),
                Event::Stall { endpoint } => self.stalled(now, endpoint as usize),
                Event::Retry(r) => self.start_try(now, r, None),
                Event::Fault(n) => self.fault(now, n as usize),
                Event::Probe { instance, endpoint } => self.probe(now, instance, endpoint),
                Event::Probed { instance, endpoint, outcome } => {
                    self.probed(now, instance, endpoint, outcome)
                }
                Event::Return { instance, pool } => self.outlier_return(now, instance, pool),
                Event::Open => self.measure.open(now, &mut self.stations),
                Event::Close => self.measure.close(now, &mut self.stations),
            }
        }
        events.fetch_add(counted, std::sync::atomic::Ordering::Relaxed);
        let own = self.measure.take_tally();
        let (tally, drawn) = match join() {
            Some((draws, tally)) => (tally, Some(draws)),
            // (A run without a helper always has a tally of its own.)
            None => (own.unwrap_or_else(|| Tally::new(self.workload)), None),
        };
        let name = self.variant.name();
        let (topology, workload) = (self.topology, self.workload);
        let (report, warmup, measured) =
            self.measure.finish(tally, name, topology, workload, &self.stations);
        let outcome = Outcome {
            report,
            warmup,
            measured,
            #[cfg(test)]
            digest: match (&self.feed, &self.source) {
                (Some(Feed::Inline { draws, .. }), _) => draws.digest(),
                (_, Some(source)) => source.digest,
                _ => 0,
            },
            #[cfg(test)]
            trace: self.trace.take(),
        };
        (outcome, drawn)
    }
}

impl<'a> Run<'a> {
    fn new(
        topology: &'a Topology,
        workload: &'a Workload,
        seed: u64,
        variant: Variant,
        mut feed: Option<Feed<'a>>,
        helper: Option<Helper>,
    ) -> Self {
        let gateway = workload.gateway.with(&variant);

        // Endpoint stations, pool by pool.
        let mut first = Vec::with_capacity(topology.pools.len());
        let mut stations = Vec::new();
        for (p, pool) in topology.pools.iter().enumerate() {
            first.push(stations.len());
            for index in 0..pool.endpoints.len() {
                let model = workload.pools[p].as_ref().map(|l| l.endpoint(index));
                stations.push(Station::new(p, index, model));
            }
        }
        let mut picks = stream(seed, Stream::Balancer);
        let rules: Vec<PoolRules> = topology.pools.iter().map(|p| gateway.pool(p)).collect();
        let retries = topology.routes.iter().map(|r| gateway.retries(r)).collect();
        let deadlines: Vec<DeadlineSettings> =
            topology.routes.iter().map(|r| gateway.deadline(r)).collect();
        let hash_keys = (topology.pools.iter())
            .map(|p| {
                let hashes = variant.balance_for(p.balance) == Balance::ConsistentHash;
                p.hash_on.clone().filter(|_| hashes)
            })
            .collect();
        let connect_timeouts = topology.pools.iter().map(|p| nanos(p.connect_timeout)).collect();
        let stalls = topology.pools.iter().map(|p| nanos(p.stall_timeout)).collect();
        let instances: Vec<Instance> = (0..gateway.instances.max(1))
            .map(|_| Instance::new(topology, &variant, &gateway, &rules, &stations))
            .collect();
        let connections = Connections::new(topology, workload, &rules, instances.len());
        let has = Machines {
            deadlines: deadlines.iter().any(|d| d.per_try.is_some() || d.overall.is_some()),
            breakers: instances.iter().any(|i| i.breakers.iter().any(Option::is_some)),
            budgets: instances.iter().any(|i| i.budgets.iter().any(Option::is_some)),
            outliers: instances.iter().any(|i| i.outliers.iter().any(Option::is_some)),
        };

        // The window events go first, so they precede arrivals at the same instant.
        let mut events = EventQueue::new();
        events.push(workload.warmup, Event::Open);
        if let Length::Duration(end) = workload.length {
            events.push(end, Event::Close);
        }
        for (n, fault) in workload.events.iter().enumerate() {
            events.push(fault.at, Event::Fault(n as u32));
        }
        let mut source = None;
        match workload.arrivals {
            Arrivals::Open { .. } | Arrivals::Replay(_) => {
                if let Some(at) = feed.as_mut().and_then(Feed::advance) {
                    events.push_lane(at, Event::Arrival);
                }
            }
            Arrivals::Closed { clients, .. } => {
                source = Some(Source::new(workload, seed));
                for c in 0..clients {
                    events.push(0, Event::Client(c));
                }
            }
        }
        // Every gateway instance starts with the run, and probes each
        // endpoint first soon after, as `serve`'s checker does when it starts.
        for i in 0..gateway.instances.max(1) {
            for (e, station) in stations.iter().enumerate() {
                let Some(health) = &rules[station.pool].health else { continue };
                if station.model.is_none() {
                    continue;
                }
                let first = health.first_probe(Clock::ZERO, &mut picks).0;
                events.push(first, Event::Probe { instance: i, endpoint: e as u32 });
            }
        }

        Run {
            topology,
            workload,
            rules,
            retries,
            deadlines,
            hash_keys,
            connect_timeouts,
            stalls,
            has,
            connections,
            seed,
            variant,
            events,
            source,
            feed,
            picks,
            instances,
            first,
            stations,
            tries: TrySlots::default(),
            requests: Vec::new(),
            free_requests: Vec::new(),
            created: 0,
            admitted: 0,
            stopped: false,
            measure: Measure::new(workload, helper),
            #[cfg(test)]
            trace: None,
        }
    }

    fn open_arrival(&mut self, now: Nanos) {
        self.create(now, None);
        if !self.stopped {
            match self.feed.as_mut().and_then(Feed::advance) {
                Some(at) => self.events.push_lane(at, Event::Arrival),
                None => self.stopped = true,
            }
        }
    }

    fn client_arrival(&mut self, now: Nanos, client: u32) {
        if self.stopped || !admits(self.workload, now, self.admitted) {
            self.stopped = true;
            return;
        }
        self.create(now, Some(client));
    }

    /// A new request at `now`, from a closed-loop `client` or else the
    /// feed's current arrival: choose its route, side and instance, and try.
    #[inline(always)]
    fn create(&mut self, now: Nanos, client: Option<u32>) {
        let (share, replayed, demand) = match (&self.feed, client) {
            (Some(feed), None) => {
                let drawn = feed.current();
                (drawn.share as usize, drawn.client, drawn.demand)
            }
            _ => (self.source.as_mut().map_or(0, Source::share), None, None),
        };
        let id = self.created;
        self.created += 1;
        let measured = now >= self.workload.warmup;
        self.admitted += u64::from(measured);

        let route_index = self.workload.traffic[share].route;
        let (pool, hash) = match (&self.workload.traffic[share].template, replayed) {
            (Some(template), _) => self.keyed(route_index, id, || template.draw(self.seed, id)),
            // A replayed request carries its logged client's address.
            (None, Some(client)) => match self.replayed_address(client) {
                Some(address) => self.keyed(route_index, id, || ClientOnly(address)),
                None => (self.side(route_index, id, None), None),
            },
            (None, None) => (self.side(route_index, id, None), None),
        };
        #[cfg(test)]
        if let Some(trace) = &mut self.trace {
            trace.arrivals.push((pool, id, now));
        }
        // Instances share requests evenly; a replayed client sticks to one,
        // as behind a load balancer that hashes the source address.
        // (A keyed draw changes no stream, so one instance needs none.)
        let n = self.instances.len();
        let instance = if n == 1 {
            0
        } else {
            let key = replayed.map_or(id, |c| u64::from(c) | 1 << 63);
            ((keyed_uniform(self.seed, key, salt::INSTANCE) * n as f64) as usize).min(n - 1)
        };
        let request = Request {
            id,
            arrived: now,
            share: share as u32,
            route: route_index as u32,
            pool: pool as u32,
            instance: instance as u32,
            measured,
            tries: 0,
            client,
            last: None,
            tried: 0,
            hash,
        };
        let r = match self.free_requests.pop() {
            Some(r) => {
                self.requests[r as usize] = request;
                r
            }
            None => {
                self.requests.push(request);
                (self.requests.len() - 1) as u32
            }
        };
        self.measure.arrived(measured);
        if self.has.budgets {
            if let Some(budget) = &self.instances[instance].budgets[route_index] {
                budget.record_request(Clock(now));
            }
        }

        // A request run closes its window at the last measured arrival.
        if let Length::Requests(n) = self.workload.length {
            if measured && self.admitted == n {
                self.measure.close(now, &mut self.stations);
                self.stopped = true;
            }
        }
        self.start_try_inline(now, r, demand);
    }

    /// The pool of request `id` of route `route`: the route's pool, or the
    /// side of its split that `point` (the hash of a sticky key) falls on.
    /// A request without a point is split by a draw keyed by the request,
    /// not taken from the balancer's stream, which each algorithm consumes
    /// differently: so every variant sends the same requests to the same
    /// side (common random numbers).
    #[inline]
    fn side(&self, route: usize, id: u64, point: Option<u64>) -> usize {
        let route = &self.topology.routes[route];
        if route.split.is_empty() {
            return route.pool;
        }
        let weights: Vec<u32> = route.split.iter().map(|s| s.1).collect();
        let point = point.unwrap_or_else(|| keyed_bits(self.seed, id, salt::SPLIT));
        sluice_traffic::split::choose(&weights, point).map_or(route.pool, |i| route.split[i].0)
    }

    /// The IP address of replayed client `client`.
    fn replayed_address(&self, client: u32) -> Option<std::net::IpAddr> {
        match &self.workload.arrivals {
            Arrivals::Replay(replay) => replay.addresses.get(client as usize).copied(),
            _ => None,
        }
    }

    /// The pool and key hash of request `id`, read from the values `keys`
    /// gives (drawn ones, or a replayed client's address) by the code
    /// `serve` reads a request's keys with; `keys` is called only when a
    /// pool or split of the route reads a key.
    #[inline(never)]
    fn keyed<K: KeySource>(
        &self,
        route: usize,
        id: u64,
        keys: impl FnOnce() -> K,
    ) -> (usize, Option<u64>) {
        let shape = &self.topology.routes[route];
        let sticky = shape.sticky.as_ref().filter(|_| !shape.split.is_empty());
        let hashes = |pool: usize| self.hash_keys[pool].as_ref();
        let sides = std::iter::once(shape.pool).chain(shape.split.iter().map(|s| s.0));
        if sticky.is_none() && !sides.into_iter().any(|p| hashes(p).is_some()) {
            return (self.side(route, id, None), None);
        }
        let drawn = keys();
        let point = sticky.and_then(|key| key::sticky_point(key, &drawn));
        let pool = self.side(route, id, point);
        (pool, hashes(pool).and_then(|key| key::hash_point(key, &drawn)))
    }

    /// The time limits of `request`, from its route's and its arrival
    /// (worked out when needed rather than kept with every request).
    #[inline]
    fn deadline(&self, request: &Request) -> Deadline {
        Deadline::new(self.deadlines[request.route as usize], Clock(request.arrived))
    }

    /// The request is over: record it, free it, and let its client think.
    /// (Out of line, for requests that end without an answer; an answered
    /// one ends through [`Run::finish_inline`].)
    #[inline(never)]
    fn finish(&mut self, now: Nanos, r: u32, ending: Ending) {
        self.finish_inline(now, r, ending);
    }

    /// [`Run::finish`], inlined into its caller.
    #[inline(always)]
    fn finish_inline(&mut self, now: Nanos, r: u32, ending: Ending) {
        let request = &self.requests[r as usize];
        let (id, client) = (request.id, request.client);
        let (arrived, share, measured) = (request.arrived, request.share, request.measured);
        #[cfg(test)]
        if let Some(trace) = &mut self.trace {
            trace.ended.push((id, arrived, now, ending));
        }
        self.measure.ended(Ended { now, arrived, share, measured, ending, late: false });
        self.free_requests.push(r);
        if let (Some(client), Arrivals::Closed { think, .. }) = (client, &self.workload.arrivals) {
            let u = keyed_uniform(self.seed, id, salt::THINK);
            let wait = (-(1.0 - u).ln() * *think as f64).round() as Nanos;
            self.events.push(now.saturating_add(wait), Event::Client(client));
        }
    }
}

/// `d` in nanoseconds of virtual time, at most `u64::MAX`.
fn nanos(d: std::time::Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A replayed request's keys: only its client's address (the log records
/// no header, cookie or query).
struct ClientOnly(std::net::IpAddr);

impl KeySource for ClientOnly {
    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }
    fn cookie_headers(&self, _: &mut dyn FnMut(&str) -> bool) -> bool {
        false
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn path_param(&self, _: &str, _: &mut dyn FnMut(&str)) {}
    fn client(&self) -> Option<std::net::IpAddr> {
        Some(self.0)
    }
}

/// Whether an arrival at `at` is admitted, `admitted` measured ones so far.
fn admits(workload: &Workload, at: Nanos, admitted: u64) -> bool {
    match workload.length {
        Length::Duration(end) => at < end,
        Length::Requests(n) => admitted < n,
    }
}

#[cfg(test)]
mod mix;
#[cfg(test)]
mod pooling;
#[cfg(test)]
mod stalls;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod validation;
