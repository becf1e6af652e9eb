//! What a run counts: the measured window, answers by kind, latency overall,
//! per route and over time, and endpoint utilisation.

use super::station::Station;
use crate::report::{EndpointReport, Errors, Point, RouteReport, VariantReport};
use crate::stats::{Bins, LatencyRecorder, MAX_TRACKABLE};
use crate::time::{Nanos, SECOND};
use crate::workload::{Length, Topology, Workload};

/// How a request ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Success,
    /// The endpoint answered 5xx (failing, failing fast, or its queue full).
    Upstream5xx,
    /// The connection was refused or reset (502).
    Unreachable,
    /// The route's time limit passed (504).
    Timeout,
    /// A circuit breaker refused the try (503).
    Breaker,
    /// The pool had no eligible endpoint (503).
    NoEndpoint,
}

/// Most points of a time series.
const MAX_POINTS: usize = 400;

/// One step of the time series.
struct Step {
    answered: u64,
    errors: u64,
    latency: Bins,
}

pub(super) struct Measure {
    latency: LatencyRecorder,
    /// Per traffic share; empty when there is one share, whose requests
    /// are then exactly those of `latency`.
    routes: Vec<LatencyRecorder>,
    admitted: u64,
    errors: Errors,
    succeeded: u64,
    retries: u64,
    failed_tries: u64,
    departures: u64,
    departures_at_open: u64,
    departures_at_close: u64,
    opened: Nanos,
    closed: Option<Nanos>,
    step: Nanos,
    /// The step of the latest answer and its bounds, `[from, until)`, so
    /// that answers in the same step need no division.
    current: u64,
    current_from: Nanos,
    current_until: Nanos,
    series: Vec<Step>,
}

impl Measure {
    pub fn new(workload: &Workload) -> Measure {
        // About a hundred steps over the expected length of the run.
        let end = match workload.length {
            Length::Duration(end) => end,
            Length::Requests(n) => {
                let rate = workload.base_rate().max(1.0);
                workload.warmup + (n as f64 / rate * SECOND as f64) as Nanos
            }
        };
        Measure {
            latency: LatencyRecorder::new(),
            routes: if workload.traffic.len() == 1 {
                Vec::new()
            } else {
                workload.traffic.iter().map(|_| LatencyRecorder::new()).collect()
            },
            admitted: 0,
            errors: Errors::default(),
            succeeded: 0,
            retries: 0,
            failed_tries: 0,
            departures: 0,
            departures_at_open: 0,
            departures_at_close: 0,
            opened: workload.warmup,
            closed: None,
            step: (end / 100).max(1_000_000),
            current: 0,
            current_from: 0,
            current_until: 0,
            series: Vec::new(),
        }
    }

    pub fn arrived(&mut self, measured: bool) {
        self.admitted += u64::from(measured);
    }

    pub fn retried(&mut self, measured: bool) {
        self.retries += u64::from(measured);
    }

    pub fn failed_try(&mut self) {
        self.failed_tries += 1;
    }

    pub fn ended(&mut self, now: Nanos, arrived: Nanos, share: usize, measured: bool, e: Ending) {
        self.departures += 1;
        let latency = now - arrived;
        if now < self.current_from || now >= self.current_until {
            self.current = now / self.step;
            self.current_from = self.current * self.step;
            self.current_until = self.current_from.saturating_add(self.step);
        }
        let step = self.current as usize;
        if self.current < MAX_POINTS as u64 {
            while self.series.len() <= step {
                self.series.push(Step { answered: 0, errors: 0, latency: Bins::new(2) });
            }
            let s = &mut self.series[step];
            s.answered += 1;
            s.errors += u64::from(e != Ending::Success);
            s.latency.record(latency.clamp(1, MAX_TRACKABLE));
        }
        if !measured {
            return;
        }
        self.latency.record(latency);
        if let Some(route) = self.routes.get_mut(share) {
            route.record(latency);
        }
        match e {
            Ending::Success => self.succeeded += 1,
            Ending::Upstream5xx => self.errors.upstream_5xx += 1,
            Ending::Unreachable => self.errors.unreachable += 1,
            Ending::Timeout => self.errors.timeout += 1,
            Ending::Breaker => self.errors.breaker += 1,
            Ending::NoEndpoint => self.errors.no_endpoint += 1,
        }
    }

    pub fn open(&mut self, now: Nanos, stations: &mut [Station]) {
        self.opened = now;
        self.departures_at_open = self.departures;
        for station in stations {
            station.advance(now);
            station.area_at_open = station.area;
        }
    }

    pub fn close(&mut self, now: Nanos, stations: &mut [Station]) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(now);
        self.departures_at_close = self.departures;
        for station in stations {
            station.advance(now);
            station.area_at_close = station.area;
        }
    }

    /// The variant's report, its warm-up and its measured window.
    pub fn finish(
        self,
        name: String,
        topology: &Topology,
        workload: &Workload,
        stations: &[Station],
    ) -> (VariantReport, Nanos, Nanos) {
        let closed = self.closed.unwrap_or(self.opened).max(self.opened);
        let measured = closed - self.opened;
        let seconds = measured as f64 / SECOND as f64;
        let per_second = |n: u64| if measured == 0 { 0.0 } else { n as f64 / seconds };

        let routes = workload
            .traffic
            .iter()
            .enumerate()
            .map(|(i, share)| (share, self.routes.get(i).unwrap_or(&self.latency)))
            .map(|(share, rec)| RouteReport {
                route: topology.routes[share.route].name.clone(),
                requests: rec.count(),
                latency: rec.summary(),
            })
            .collect();

        // Endpoints of the pools the scenario models, in plan order.
        let endpoints = stations
            .iter()
            .filter(|s| s.model.is_some())
            .map(|s| {
                let capacity = u128::from(s.workers()) * u128::from(measured);
                let busy = s.area_at_close.saturating_sub(s.area_at_open);
                let pool = &topology.pools[s.pool];
                EndpointReport {
                    pool: pool.name.clone(),
                    endpoint: pool.endpoints[s.index].label.clone(),
                    workers: s.workers(),
                    requests: s.served,
                    utilisation: if capacity == 0 { 0.0 } else { busy as f64 / capacity as f64 },
                }
            })
            .collect();

        // Measured requests never answered (a black hole without a time limit).
        let mut errors = self.errors;
        errors.unanswered = self.admitted.saturating_sub(self.succeeded + errors.answered());
        let series = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| Point {
                at_ns: i as u64 * self.step,
                throughput: s.answered as f64 * SECOND as f64 / self.step as f64,
                errors: s.errors,
                p99_ns: if s.answered == 0 { 0 } else { s.latency.value_at_quantile(0.99) },
            })
            .collect();
        let report = VariantReport {
            variant: name,
            requests: self.admitted,
            succeeded: self.succeeded,
            errors,
            retries: self.retries,
            failed_tries: self.failed_tries,
            throughput: per_second(self.departures_at_close - self.departures_at_open),
            latency: self.latency.summary(),
            routes,
            endpoints,
            cdf: self.latency.cdf(),
            series,
            interval: None,
        };
        (report, self.opened, measured)
    }
}
