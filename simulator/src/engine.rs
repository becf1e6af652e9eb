//! The discrete-event engine.
//!
//! Next-event time advance over an [`EventQueue`]: the clock jumps from one
//! event to the next, and nothing happens in between. The model is an open
//! network of multi-server FIFO queues, one per endpoint:
//!
//! 1. A Poisson source emits requests; each picks a route by the scenario's
//!    weights and carries a service demand drawn from its pool's law.
//! 2. The route's pool asks its [`sluice_traffic::Balancer`] for an endpoint,
//!    the same object `serve` consults, and reports `begin`; so
//!    `least_request` sees every request queued or in service at an
//!    endpoint, as the gateway sees requests in flight.
//! 3. The endpoint starts the request if one of its workers is free, and
//!    otherwise queues it; a departure frees the worker for the next in line
//!    and reports `end` to the balancer.
//!
//! Measurement follows the usual steady-state practice: arrivals before the
//! warm-up instant are served but not counted; arrivals in the measured
//! window are followed to completion, however long the system takes to
//! drain. Utilisation is the time-integral of busy workers over the window,
//! divided by workers times window length, taken exactly from the instants
//! at which the busy count changes.
//!
//! Validation: with one endpoint this is a textbook queue, and the tests
//! check mean sojourn times against M/M/1 (`1/(mu - lambda)`), M/M/c (Erlang
//! C) and M/D/1 (Pollaczek-Khinchine); with many endpoints under
//! `least_request`, against the power-of-two-choices limit of Mitzenmacher's
//! supermarket model.

use std::collections::VecDeque;

use rand::RngExt;
use rand_pcg::Pcg64;
use sluice_compiler::Balance;
use sluice_traffic::{Algorithm, Balancer};

use crate::queue::EventQueue;
use crate::random::{poisson_gap, stream, Stream};
use crate::report::{EndpointReport, RouteReport, VariantReport};
use crate::stats::LatencyRecorder;
use crate::time::{Nanos, SECOND};
use crate::workload::{Length, Topology, Variant, Workload};

/// The traffic algorithm a spec's balance name stands for.
pub fn algorithm(balance: Balance) -> Algorithm {
    match balance {
        Balance::RoundRobin => Algorithm::RoundRobin,
        Balance::WeightedRoundRobin => Algorithm::WeightedRoundRobin,
        Balance::Random => Algorithm::Random,
        Balance::LeastRequest => Algorithm::LeastRequest { choices: 2 },
    }
}

/// A request, from arrival to departure.
#[derive(Debug, Clone, Copy)]
struct Request {
    arrived: Nanos,
    service: Nanos,
    /// Index into the workload's traffic shares (not the topology's routes).
    share: u32,
    measured: bool,
}

#[derive(Debug)]
enum Event {
    /// The arrival the [`Source`] holds is due.
    Arrival,
    /// A worker of `endpoint` (a flat index) finished `request`.
    Departure { endpoint: u32, request: Request },
    /// The warm-up ends.
    Open,
    /// The measured window ends (duration runs only).
    Close,
}

/// The arrival process: one draw from each workload stream per request.
struct Source {
    gaps: Pcg64,
    routes: Pcg64,
    service: Pcg64,
    /// Running sums of the traffic weights, for choosing a share.
    cumulative: Vec<f64>,
    next: Request,
    /// A running hash of every arrival, to show variants saw the same ones.
    #[cfg(test)]
    digest: u64,
}

impl Source {
    fn new(workload: &Workload, topology: &Topology, seed: u64) -> Source {
        let cumulative = workload
            .traffic
            .iter()
            .scan(0.0, |sum, share| {
                *sum += share.weight;
                Some(*sum)
            })
            .collect();
        let mut source = Source {
            gaps: stream(seed, Stream::Arrivals),
            routes: stream(seed, Stream::Routes),
            service: stream(seed, Stream::Service),
            cumulative,
            next: Request { arrived: 0, service: 0, share: 0, measured: false },
            #[cfg(test)]
            digest: 0,
        };
        source.advance(workload, topology, 0);
        source
    }

    /// Draw the arrival after one at `after`.
    fn advance(&mut self, workload: &Workload, topology: &Topology, after: Nanos) {
        let arrived = after.saturating_add(poisson_gap(&mut self.gaps, workload.rate));

        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = self.routes.random::<f64>() * total;
        let share = self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1);

        let route = workload.traffic[share].route;
        let load = workload.pools[topology.routes[route].pool]
            .expect("a checked workload has a service model for every pool its traffic reaches");
        let service = load.service.sample(&mut self.service);

        #[cfg(test)]
        {
            let mix = |x: u64| (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            self.digest = mix(mix(mix(self.digest ^ arrived) ^ share as u64) ^ service);
        }
        let measured = arrived >= workload.warmup;
        self.next = Request { arrived, service, share: share as u32, measured };
    }
}

/// One endpoint's queue and its bookkeeping.
#[derive(Debug)]
struct Station {
    pool: usize,
    /// Index within the pool, as the balancer knows it.
    index: usize,
    workers: u32,
    busy: u32,
    waiting: VecDeque<Request>,
    /// Integral of busy workers over time, in worker-nanoseconds, up to `since`.
    area: u128,
    since: Nanos,
    area_at_open: u128,
    area_at_close: u128,
    /// Measured requests this endpoint served.
    served: u64,
}

impl Station {
    fn advance(&mut self, now: Nanos) {
        self.area += u128::from(self.busy) * u128::from(now - self.since);
        self.since = now;
    }
}

/// The state of one variant's run.
struct Run<'a> {
    topology: &'a Topology,
    workload: &'a Workload,
    events: EventQueue<Event>,
    source: Source,
    balancers: Vec<Balancer>,
    picks: Pcg64,
    /// Flat index of each pool's first endpoint.
    first: Vec<usize>,
    stations: Vec<Station>,
    latency: LatencyRecorder,
    /// Per traffic share.
    route_latency: Vec<LatencyRecorder>,
    admitted: u64,
    unroutable: u64,
    departures: u64,
    departures_at_open: u64,
    departures_at_close: u64,
    opened: Nanos,
    closed: Option<Nanos>,
}

/// What one variant's run produced, before formatting.
pub(crate) struct Outcome {
    pub report: VariantReport,
    pub warmup: Nanos,
    pub measured: Nanos,
    /// A hash of every arrival's instant, route and service demand.
    #[cfg(test)]
    pub digest: u64,
}

/// Simulate `workload` on `topology` under one balancing variant.
pub(crate) fn run_variant(
    topology: &Topology,
    workload: &Workload,
    seed: u64,
    variant: Variant,
) -> Outcome {
    let mut run = Run::new(topology, workload, seed, variant);
    while let Some((now, event)) = run.events.pop() {
        match event {
            Event::Arrival => run.arrive(now),
            Event::Departure { endpoint, request } => run.depart(now, endpoint as usize, request),
            Event::Open => run.open(now),
            Event::Close => run.close(now),
        }
    }
    run.finish(variant)
}

impl<'a> Run<'a> {
    fn new(topology: &'a Topology, workload: &'a Workload, seed: u64, variant: Variant) -> Self {
        // Balancers and endpoint stations, pool by pool.
        let mut balancers = Vec::with_capacity(topology.pools.len());
        let mut first = Vec::with_capacity(topology.pools.len());
        let mut stations = Vec::new();
        for (p, pool) in topology.pools.iter().enumerate() {
            let weights: Vec<u32> = pool.endpoints.iter().map(|e| e.weight).collect();
            balancers.push(Balancer::new(algorithm(variant.balance_for(pool.balance)), &weights));
            first.push(stations.len());
            let workers = workload.pools[p].map_or(1, |l| l.workers.max(1));
            stations.extend((0..pool.endpoints.len()).map(|index| Station {
                pool: p,
                index,
                workers,
                busy: 0,
                waiting: VecDeque::new(),
                area: 0,
                since: 0,
                area_at_open: 0,
                area_at_close: 0,
                served: 0,
            }));
        }

        // The window events go first, so they precede arrivals at the same instant.
        let mut events = EventQueue::new();
        events.push(workload.warmup, Event::Open);
        if let Length::Duration(end) = workload.length {
            events.push(end, Event::Close);
        }
        let source = Source::new(workload, topology, seed);
        if admits(workload, source.next.arrived, 0) {
            events.push(source.next.arrived, Event::Arrival);
        }

        Run {
            topology,
            workload,
            events,
            source,
            balancers,
            picks: stream(seed, Stream::Balancer),
            first,
            stations,
            latency: LatencyRecorder::new(),
            route_latency: workload.traffic.iter().map(|_| LatencyRecorder::new()).collect(),
            admitted: 0,
            unroutable: 0,
            departures: 0,
            departures_at_open: 0,
            departures_at_close: 0,
            opened: workload.warmup,
            closed: None,
        }
    }

    fn arrive(&mut self, now: Nanos) {
        let request = self.source.next;
        if request.measured {
            self.admitted += 1;
        }

        // The balancer of the route's pool picks the endpoint.
        let route = &self.topology.routes[self.workload.traffic[request.share as usize].route];
        // A split route sends each request to a side in proportion to the weights
        // (a simulated request has no sticky key, so every one is split at random).
        let pool = if route.split.is_empty() {
            route.pool
        } else {
            let weights: Vec<u32> = route.split.iter().map(|s| s.1).collect();
            let point = rand_core::Rng::next_u64(&mut self.picks);
            sluice_traffic::split::choose(&weights, point).map_or(route.pool, |i| route.split[i].0)
        };
        match self.balancers[pool].pick(&mut self.picks) {
            Some(index) => {
                self.balancers[pool].begin(index);
                self.enter(now, self.first[pool] + index, request);
            }
            None => self.unroutable += u64::from(request.measured),
        }

        // A request run closes its window at the last measured arrival.
        if let Length::Requests(n) = self.workload.length {
            if request.measured && self.admitted == n {
                self.close(now);
            }
        }
        self.source.advance(self.workload, self.topology, now);
        if admits(self.workload, self.source.next.arrived, self.admitted) {
            self.events.push(self.source.next.arrived, Event::Arrival);
        }
    }

    /// Start `request` at `endpoint`, or queue it behind the busy workers.
    fn enter(&mut self, now: Nanos, endpoint: usize, request: Request) {
        let station = &mut self.stations[endpoint];
        if station.busy < station.workers {
            station.advance(now);
            station.busy += 1;
            let done = now.saturating_add(request.service);
            self.events.push(done, Event::Departure { endpoint: endpoint as u32, request });
        } else {
            station.waiting.push_back(request);
        }
    }

    fn depart(&mut self, now: Nanos, endpoint: usize, request: Request) {
        let station = &mut self.stations[endpoint];
        station.advance(now);
        station.busy -= 1;
        self.balancers[station.pool].end(station.index);
        self.departures += 1;
        if request.measured {
            station.served += 1;
            let latency = now - request.arrived;
            self.latency.record(latency);
            self.route_latency[request.share as usize].record(latency);
        }
        if let Some(next) = self.stations[endpoint].waiting.pop_front() {
            self.enter(now, endpoint, next);
        }
    }

    fn open(&mut self, now: Nanos) {
        self.opened = now;
        self.departures_at_open = self.departures;
        for station in &mut self.stations {
            station.advance(now);
            station.area_at_open = station.area;
        }
    }

    fn close(&mut self, now: Nanos) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(now);
        self.departures_at_close = self.departures;
        for station in &mut self.stations {
            station.advance(now);
            station.area_at_close = station.area;
        }
    }

    fn finish(self, variant: Variant) -> Outcome {
        let closed = self.closed.unwrap_or(self.opened).max(self.opened);
        let measured = closed - self.opened;
        let seconds = measured as f64 / SECOND as f64;
        let per_second = |n: u64| if measured == 0 { 0.0 } else { n as f64 / seconds };

        let routes = self
            .workload
            .traffic
            .iter()
            .zip(&self.route_latency)
            .map(|(share, rec)| RouteReport {
                route: self.topology.routes[share.route].name.clone(),
                requests: rec.count(),
                latency: rec.summary(),
            })
            .collect();

        // Endpoints of the pools the scenario models, in plan order.
        let endpoints = self
            .stations
            .iter()
            .filter(|s| self.workload.pools[s.pool].is_some())
            .map(|s| {
                let capacity = u128::from(s.workers) * u128::from(measured);
                let busy = s.area_at_close.saturating_sub(s.area_at_open);
                let pool = &self.topology.pools[s.pool];
                EndpointReport {
                    pool: pool.name.clone(),
                    endpoint: pool.endpoints[s.index].label.clone(),
                    workers: s.workers,
                    requests: s.served,
                    utilisation: if capacity == 0 { 0.0 } else { busy as f64 / capacity as f64 },
                }
            })
            .collect();

        let report = VariantReport {
            variant: variant.name().to_owned(),
            requests: self.admitted,
            unroutable: self.unroutable,
            throughput: per_second(self.departures_at_close - self.departures_at_open),
            latency: self.latency.summary(),
            routes,
            endpoints,
        };
        Outcome {
            report,
            warmup: self.opened,
            measured,
            #[cfg(test)]
            digest: self.source.digest,
        }
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
mod tests;
