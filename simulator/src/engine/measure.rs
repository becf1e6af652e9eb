//! What a run counts: the measured window, answers by kind, latency overall,
//! per route and over time, and endpoint utilisation.

use super::source::{Helper, ENDED_BATCH};
use super::station::Station;
use crate::report::{EndpointReport, Errors, Point, RouteReport, VariantReport};
use crate::stats::{Bins, LatencyRecorder, MAX_TRACKABLE};
use crate::time::{Nanos, SECOND};
use crate::workload::{Length, Topology, Workload};

/// How a request ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
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

/// One request as it ended, as the [`Tally`] needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ended {
    pub now: Nanos,
    pub arrived: Nanos,
    pub share: u32,
    pub measured: bool,
    pub ending: Ending,
    /// Answered once arrivals had stopped (at or after the window closed):
    /// counted, but outside the time series, which covers the window.
    pub late: bool,
}

/// What a run counts about requests as they end: latency overall, per
/// route and over time, and answers by kind. It takes the ended requests in
/// the order they ended, on the run's thread or, with a core to spare, on
/// the thread that draws the arrivals ([`super::source`]); it counts the
/// same either way.
pub(super) struct Tally {
    latency: LatencyRecorder,
    /// Per traffic share; empty when there is one share, whose requests
    /// are then exactly those of `latency`.
    routes: Vec<LatencyRecorder>,
    errors: Errors,
    succeeded: u64,
    step: Nanos,
    /// The step of the latest answer and its bounds, `[from, until)`, so
    /// that answers in the same step need no division.
    current: u64,
    current_from: Nanos,
    current_until: Nanos,
    series: Vec<Step>,
}

impl Tally {
    pub fn new(workload: &Workload) -> Tally {
        // About a hundred steps over the expected length of the run.
        let end = match workload.length {
            Length::Duration(end) => end,
            Length::Requests(n) => {
                let rate = workload.base_rate().max(1.0);
                workload.warmup + (n as f64 / rate * SECOND as f64) as Nanos
            }
        };
        Tally {
            latency: LatencyRecorder::new(),
            routes: if workload.traffic.len() == 1 {
                Vec::new()
            } else {
                workload.traffic.iter().map(|_| LatencyRecorder::new()).collect()
            },
            errors: Errors::default(),
            succeeded: 0,
            step: (end / 100).max(1_000_000),
            current: 0,
            current_from: 0,
            current_until: 0,
            series: Vec::new(),
        }
    }

    /// A placeholder that allocates nothing.
    fn empty() -> Tally {
        Tally {
            latency: LatencyRecorder::new(),
            routes: Vec::new(),
            errors: Errors::default(),
            succeeded: 0,
            step: 1,
            current: 0,
            current_from: 0,
            current_until: 0,
            series: Vec::new(),
        }
    }

    #[inline]
    pub fn record(&mut self, ended: &Ended) {
        let Ended { now, arrived, share, measured, ending, late } = *ended;
        let latency = now - arrived;
        if late {
            // (Arrivals have stopped: the series is over.)
        } else if now < self.current_from || now >= self.current_until {
            self.current = now / self.step;
            self.current_from = self.current * self.step;
            self.current_until = self.current_from.saturating_add(self.step);
        }
        let step = self.current as usize;
        if !late && self.current < MAX_POINTS as u64 {
            while self.series.len() <= step {
                let latency = self.series.last().map_or_else(|| Bins::new(2), |s| s.latency.like());
                self.series.push(Step { answered: 0, errors: 0, latency });
            }
            let s = &mut self.series[step];
            s.answered += 1;
            s.errors += u64::from(ending != Ending::Success);
            s.latency.record(latency.clamp(1, MAX_TRACKABLE));
        }
        if !measured {
            return;
        }
        self.latency.record(latency);
        if let Some(route) = self.routes.get_mut(share as usize) {
            route.record(latency);
        }
        match ending {
            Ending::Success => self.succeeded += 1,
            Ending::Upstream5xx => self.errors.upstream_5xx += 1,
            Ending::Unreachable => self.errors.unreachable += 1,
            Ending::Timeout => self.errors.timeout += 1,
            Ending::Breaker => self.errors.breaker += 1,
            Ending::NoEndpoint => self.errors.no_endpoint += 1,
        }
    }
}

/// Where a run's ended requests go: into its own tally, or in batches to
/// the tally of the thread that draws its arrivals.
enum Sink {
    Local(Box<Tally>),
    Remote(Helper),
}

pub(super) struct Measure {
    sink: Sink,
    /// Ended requests not yet handed to the helper.
    batch: Vec<Ended>,
    admitted: u64,
    retries: u64,
    failed_tries: u64,
    departures: u64,
    departures_at_open: u64,
    departures_at_close: u64,
    opened: Nanos,
    closed: Option<Nanos>,
}

impl Measure {
    /// Counting in a tally of its own, or with `helper`'s.
    pub fn new(workload: &Workload, helper: Option<Helper>) -> Measure {
        let (sink, batch) = match helper {
            Some(helper) => (Sink::Remote(helper), Vec::with_capacity(ENDED_BATCH)),
            None => (Sink::Local(Box::new(Tally::new(workload))), Vec::new()),
        };
        Measure {
            sink,
            batch,
            admitted: 0,
            retries: 0,
            failed_tries: 0,
            departures: 0,
            departures_at_open: 0,
            departures_at_close: 0,
            opened: workload.warmup,
            closed: None,
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

    #[inline]
    pub fn ended(&mut self, mut ended: Ended) {
        self.departures += 1;
        ended.late = self.closed.is_some_and(|closed| ended.now >= closed);
        match &mut self.sink {
            Sink::Local(tally) => tally.record(&ended),
            Sink::Remote(helper) => {
                self.batch.push(ended);
                if self.batch.len() >= ENDED_BATCH {
                    self.batch = helper.tally(std::mem::take(&mut self.batch));
                }
            }
        }
    }

    /// The tally of every ended request: the run's own, or `None` when the
    /// helper keeps it (having been handed the last of them and let go).
    pub fn take_tally(&mut self) -> Option<Tally> {
        let sink = std::mem::replace(&mut self.sink, Sink::Local(Box::new(Tally::empty())));
        match sink {
            Sink::Local(tally) => Some(*tally),
            Sink::Remote(mut helper) => {
                if !self.batch.is_empty() {
                    helper.tally(std::mem::take(&mut self.batch));
                }
                helper.done();
                None
            }
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
        tally: Tally,
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
            .map(|(i, share)| (share, tally.routes.get(i).unwrap_or(&tally.latency)))
            .map(|(share, rec)| RouteReport {
                route: topology.routes[share.route].name.clone(),
                requests: rec.count(),
                latency: rec.summary(),
                interval: None,
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
                    utilisation_ci95: None,
                }
            })
            .collect();

        // Measured requests never answered (a black hole without a time limit).
        let mut errors = tally.errors;
        errors.unanswered = self.admitted.saturating_sub(tally.succeeded + errors.answered());
        let series = series(tally.series, tally.step, self.closed);
        let report = VariantReport {
            variant: name,
            requests: self.admitted,
            succeeded: tally.succeeded,
            errors,
            retries: self.retries,
            failed_tries: self.failed_tries,
            throughput: per_second(self.departures_at_close - self.departures_at_open),
            latency: tally.latency.summary(),
            routes,
            endpoints,
            cdf: tally.latency.cdf(),
            series,
            interval: None,
        };
        (report, self.opened, measured)
    }
}

/// The time series of `steps` of `step` each, over the window up to
/// `closed`: each step's answers per second over the time it covers.
///
/// The window rarely ends on a step boundary (a request-count run ends at
/// its last arrival), so the last step may cover only part of a step; it
/// counts answers over that part alone. A last part shorter than half a
/// step joins the step before, rather than be charted from a handful of
/// answers.
fn series(mut steps: Vec<Step>, step: Nanos, closed: Option<Nanos>) -> Vec<Point> {
    let end = |i: usize| {
        let until = (i as Nanos + 1).saturating_mul(step);
        closed.map_or(until, |closed| until.min(closed))
    };
    let mut lengths: Vec<Nanos> =
        (0..steps.len()).map(|i| end(i).saturating_sub(i as Nanos * step)).collect();
    let short = lengths.last().is_some_and(|&length| length < step / 2);
    if steps.len() >= 2 && short {
        if let (Some(last), Some(length)) = (steps.pop(), lengths.pop()) {
            let before = steps.len() - 1;
            steps[before].answered += last.answered;
            steps[before].errors += last.errors;
            steps[before].latency.add(&last.latency);
            lengths[before] += length;
        }
    }
    (steps.iter().zip(lengths).enumerate())
        .map(|(i, (s, length))| Point {
            at_ns: i as Nanos * step,
            throughput: if length == 0 {
                0.0
            } else {
                s.answered as f64 * SECOND as f64 / length as f64
            },
            errors: s.errors,
            p99_ns: if s.answered == 0 { 0 } else { s.latency.value_at_quantile(0.99) },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(answered: &[u64]) -> Vec<Step> {
        (answered.iter())
            .map(|&n| {
                let mut latency = Bins::new(2);
                (0..n).for_each(|i| latency.record(1_000 + i));
                Step { answered: n, errors: n / 10, latency }
            })
            .collect()
    }

    #[test]
    fn a_last_step_counts_over_the_time_it_covers() {
        // Steps of 1 s; the window closes 0.6 s into the third.
        let points = series(steps(&[100, 100, 60]), SECOND, Some(2_600_000_000));
        let rates: Vec<f64> = points.iter().map(|p| p.throughput).collect();
        assert_eq!(rates, [100.0, 100.0, 100.0]);
        // Closing on a boundary, or not at all, leaves whole steps.
        let whole = |closed| series(steps(&[100, 100]), SECOND, closed);
        assert_eq!(whole(Some(2 * SECOND))[1].throughput, 100.0);
        assert_eq!(whole(None)[1].throughput, 100.0);
    }

    #[test]
    fn a_last_step_under_half_a_step_joins_the_one_before() {
        // The window closes 0.2 s into the third step: 1.2 s in the second.
        // Its answers are slow: 20 of 120, so the p99 is theirs.
        let mut given = steps(&[100, 100, 20]);
        given[2].latency = Bins::new(2);
        (0..20).for_each(|i| given[2].latency.record(50_000 + i));
        let points = series(given, SECOND, Some(2_200_000_000));
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].at_ns, SECOND);
        assert_eq!(points[1].throughput, 100.0);
        assert_eq!(points[1].errors, 12);
        // Its p99 is over the answers of both.
        let mut both = steps(&[100])[0].latency.clone();
        (0..20).for_each(|i| both.record(50_000 + i));
        assert_eq!(points[1].p99_ns, both.value_at_quantile(0.99));
        assert!(points[1].p99_ns >= 50_000, "{}", points[1].p99_ns);
        // A lone short step stays as it is.
        let lone = series(steps(&[10]), SECOND, Some(SECOND / 10));
        assert_eq!((lone.len(), lone[0].throughput), (1, 100.0));
    }
}
