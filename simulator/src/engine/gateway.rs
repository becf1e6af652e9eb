//! The gateway's side of a request: tries, time limits, circuit breaking,
//! retries within their budget, and the endpoint eligibility that health
//! checks and outlier detection decide. Every decision is a call into
//! `sluice_traffic`, with the virtual clock as its clock.

use std::sync::Arc;
use std::time::Duration;

use rand_pcg::Pcg64;

use sluice_traffic::retry::{self, RetryDecision};
use sluice_traffic::{
    Balancer, CircuitBreaker, Deadline, HealthCheck, Limit, Nanos as Clock, Outcome as TryOutcome,
    OutlierDetector, OutlierEvent, Pick, RetryBudget, TryBudget, TryFacts,
};

use super::measure::Ending;
use super::station::{State, Station, Try};
use super::{nanos, salt, Event, Run};
use crate::random::{keyed_uniform, round};
use crate::time::Nanos;
use crate::workload::{FaultKind, Gateway, PoolRules, Topology, Variant};

/// The decision state of one gateway instance.
pub(super) struct Instance {
    pub balancers: Vec<Balancer>,
    pub breakers: Vec<Option<Arc<CircuitBreaker>>>,
    /// Per route.
    pub budgets: Vec<Option<RetryBudget>>,
    pub outliers: Vec<Option<OutlierDetector>>,
    /// Per flat endpoint index.
    pub health: Vec<Option<HealthCheck>>,
}

impl Instance {
    pub fn new(
        topology: &Topology,
        variant: &Variant,
        g: &Gateway,
        rules: &[PoolRules],
        stations: &[Station],
    ) -> Instance {
        let balancers = topology
            .pools
            .iter()
            .zip(rules)
            .map(|(pool, rules)| {
                let weights: Vec<u32> = pool.endpoints.iter().map(|e| e.weight).collect();
                let balance = variant.balance_for(pool.balance);
                let algorithm =
                    sluice_compiler::plan::algorithm(balance, rules.choices, rules.ewma_window);
                Balancer::with_settings(algorithm, &weights, &rules.balance)
            })
            .collect();
        let budgets = topology.routes.iter().map(|r| g.budget(r).map(RetryBudget::new));
        Instance {
            balancers,
            breakers: rules
                .iter()
                .map(|r| r.circuit.map(|c| Arc::new(CircuitBreaker::new(c))))
                .collect(),
            budgets: budgets.collect(),
            outliers: topology
                .pools
                .iter()
                .zip(rules)
                .map(|(p, r)| r.outlier.map(|o| OutlierDetector::new(o, p.endpoints.len())))
                .collect(),
            health: stations
                .iter()
                .map(|s| rules[s.pool].health.as_ref().map(HealthCheck::new))
                .collect(),
        }
    }
}

impl Run<'_> {
    /// Start the next try of request `r`, or end the request when no try
    /// can start; `demand` is the try's service demand, when drawn ahead.
    /// (Out of line, for retries; a new request's first try is started by
    /// [`Run::start_try_inline`].)
    #[inline(never)]
    pub(super) fn start_try(&mut self, now: Nanos, r: u32, demand: Option<Nanos>) {
        self.start_try_inline(now, r, demand);
    }

    /// [`Run::start_try`], inlined into its caller.
    #[inline(always)]
    pub(super) fn start_try_inline(&mut self, now: Nanos, r: u32, demand: Option<Nanos>) {
        let request = &mut self.requests[r as usize];
        request.tries += 1;
        let (pool, inst) = (request.pool as usize, request.instance as usize);
        // Not `self.deadline`, which would borrow all of `self`. (Without
        // time limits, a try is unbounded.)
        let budget = if self.has.deadlines {
            let settings = self.deadlines[request.route as usize];
            Deadline::new(settings, Clock(request.arrived)).next_try(Clock(now))
        } else {
            TryBudget::Unbounded
        };
        if budget == TryBudget::Expired {
            return self.finish(now, r, Ending::Timeout);
        }

        // Breaker, then balancer, as `serve` does.
        let instance = &mut self.instances[inst];
        let breaker = if self.has.breakers { instance.breakers[pool].as_ref() } else { None };
        let permit = match breaker {
            Some(breaker) => match breaker.try_acquire_owned(Limit::Requests) {
                Ok(permit) => Some(permit),
                Err(_) => return self.finish(now, r, Ending::Breaker),
            },
            None => None,
        };
        let balancer = &mut instance.balancers[pool];
        let mut pick = Pick::at(Clock(now));
        if let Some(hash) = request.hash {
            pick = pick.with_hash(hash);
        }
        let picked = match request.last {
            None => pick_from(balancer, &mut self.picks, &pick),
            Some(last) => {
                // A retry, which avoids the endpoints tried so far as
                // `serve` does: those of the bits, the latest last.
                let mut tried = [0usize; 65];
                let mut count = 0;
                let mut bits = request.tried & !(1u64.checked_shl(last).unwrap_or(0));
                while bits != 0 {
                    tried[count] = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    count += 1;
                }
                tried[count] = last as usize;
                pick_from(balancer, &mut self.picks, &pick.avoiding(&tried[..=count]))
            }
        };
        let Some(index) = picked else {
            return self.finish(now, r, Ending::NoEndpoint);
        };
        let endpoint = self.first[pool] + index;
        // Whether the try has an open connection (when the pool keeps them).
        let open = match &mut self.connections {
            Some(connections) => {
                let state = self.stations[endpoint].state;
                let refusing = matches!(state, State::Crashed | State::NotAccepting);
                match connections.open(now, inst, pool, endpoint, breaker, refusing) {
                    Ok(open) => open,
                    // The pool is at its connection limits: 503 at once.
                    Err(_) => return self.finish(now, r, Ending::Breaker),
                }
            }
            None => false,
        };
        // The run owns its balancers: no other thread counts with it.
        balancer.begin_exclusive(index);

        let (id, number, measured) = (request.id, request.tries, request.measured);
        #[cfg(test)]
        if let Some(trace) = &mut self.trace {
            trace.tries.push((id, number, pool, index, now));
        }
        request.last = Some(index as u32);
        request.tried |= 1u64.checked_shl(index as u32).unwrap_or(0);
        // Whether the endpoint takes the try in (it holds it from then on).
        // One that accepts no new connection still serves on an open one.
        let station = &self.stations[endpoint];
        let up = station.state == State::Up || open && station.state == State::NotAccepting;
        let enters = up && !station.full();
        // The slot first, so that the try is written straight into it.
        let slot = self.tries.vacant();
        let generation = self.tries.fill(
            slot,
            Try {
                request: r,
                id,
                number,
                endpoint: endpoint as u32,
                index: index as u32,
                started: now,
                measured,
                awaited: true,
                held: enters,
                permit,
                demand,
                service: 0,
            },
        );
        if let Some(connections) = &mut self.connections {
            connections.hold(slot);
        }
        if let TryBudget::Bounded { timeout, .. } = budget {
            let at = now.saturating_add(nanos(timeout));
            self.events.push(at, Event::Timeout { slot, generation });
        }

        // The endpoint's answer, by its state.
        if enters {
            return self.enter(now, endpoint, slot);
        }
        match self.stations[endpoint].state {
            State::Crashed => self.try_ended(now, slot, TryOutcome::ConnectFailure),
            State::FailingFast => self.try_ended(now, slot, TryOutcome::Response(503)),
            // It has the request, and the stall clock runs.
            State::BlackHole => {
                let at = now.saturating_add(self.stalls[pool]);
                self.events.push(at, Event::Timeout { slot, generation });
            }
            // The connect hangs until the pool's connect timeout (or, over
            // HTTP/2, until the connect the try waits on fails).
            State::NotAccepting if !open => {
                let waits = self.connections.as_ref().and_then(|c| c.waits_until(slot));
                let at = waits.unwrap_or_else(|| now.saturating_add(self.connect_timeouts[pool]));
                self.events.push(at, Event::Unaccepted { slot, generation });
            }
            // Up (or on an open connection), with its queue full.
            State::Up | State::NotAccepting => self.try_ended(now, slot, TryOutcome::Response(503)),
        }
    }

    /// Queue try `slot` (which the endpoint now holds) at `endpoint`, or
    /// start it if a worker is free.
    #[inline(always)]
    fn enter(&mut self, now: Nanos, endpoint: usize, slot: u32) {
        let station = &mut self.stations[endpoint];
        if station.busy < station.workers() {
            self.begin_service(now, endpoint, slot);
        } else {
            station.waiting.push_back(slot);
            if !station.stall_check {
                station.stall_check = true;
                let at = now.saturating_add(self.stalls[station.pool]);
                self.events.push(at, Event::Stall { endpoint: endpoint as u32 });
            }
        }
    }

    /// Give up on the tries queued at `endpoint` that have waited for the
    /// pool's stall timeout without a byte of answer, as `serve` gives up
    /// on a response head that does not come (a timeout). The queue holds
    /// them in the order they started, so those are at its front; the
    /// endpoint keeps them, and serves them in their turn.
    pub(super) fn stalled(&mut self, now: Nanos, endpoint: usize) {
        let station = &mut self.stations[endpoint];
        let stall = self.stalls[station.pool];
        let tries = &self.tries;
        let due = |slot: &u32, by: Nanos| tries.started(*slot).saturating_add(stall) <= by;
        let from = station.waiting.partition_point(|s| due(s, station.stall_mark));
        let to = station.waiting.partition_point(|s| due(s, now));
        let stalled: Vec<u32> = station.waiting.range(from..to).copied().collect();
        station.stall_mark = now;
        station.stall_check = to < station.waiting.len();
        if let Some(&next) = station.waiting.get(to) {
            let at = self.tries.started(next).saturating_add(stall);
            self.events.push(at, Event::Stall { endpoint: endpoint as u32 });
        }
        for slot in stalled {
            if self.tries.at(slot).is_some_and(|t| t.awaited) {
                self.try_ended(now, slot, TryOutcome::Timeout);
            }
        }
    }

    #[inline(always)]
    fn begin_service(&mut self, now: Nanos, endpoint: usize, slot: u32) {
        let station = &mut self.stations[endpoint];
        let Some(model) = &station.model else { return };
        let Some((generation, t)) = self.tries.begin(slot) else { return };
        let (id, number, drawn) = (t.id, t.number, t.demand);
        let (started, awaited) = (t.started, t.awaited);
        let demand = drawn.unwrap_or_else(|| {
            model.service.quantile(keyed_uniform(self.seed, id, u64::from(number)))
        });
        #[cfg(test)]
        if let Some(trace) = &mut self.trace {
            trace.demands.push((station.pool, id, number, demand));
        }
        // Unslowed demand below 2^53 survives the round trip through f64 as is.
        let service = if station.slow == 1.0 && demand < 1 << 53 {
            demand
        } else {
            round(demand as f64 * station.slow)
        };

        station.advance(now);
        station.busy += 1;
        let done = now.saturating_add(service);
        self.events.push(done, Event::Served { slot, generation });
        // An answer that comes after the stall timeout is not waited for.
        // (Not before now: a try queued that long was given up in the queue.)
        let stall = started.saturating_add(self.stalls[station.pool]).max(now);
        if awaited && done > stall {
            self.events.push(stall, Event::Timeout { slot, generation });
        }
    }

    /// The endpoint finished a try: free the worker, answer if the gateway
    /// still waits, and start the next in line.
    pub(super) fn served(&mut self, now: Nanos, slot: u32, generation: u32) {
        let Some(t) = self.tries.get(slot, generation) else { return };
        t.held = false;
        let (endpoint, awaited, measured) = (t.endpoint as usize, t.awaited, t.measured);
        let (id, number) = (t.id, t.number);
        let station = &mut self.stations[endpoint];
        station.advance(now);
        station.busy -= 1;
        station.served += u64::from(measured);
        let failing = station.failing;
        let next = station.waiting.pop_front();

        if awaited {
            // The keyed draw is in (0, 1) and changes no stream: skip it when
            // the endpoint fails nothing.
            let fails = failing > 0.0
                && keyed_uniform(self.seed, id, salt::FAIL + u64::from(number)) < failing;
            let status = if fails { 500 } else { 200 };
            self.try_ended_inline(now, slot, TryOutcome::Response(status));
        } else {
            self.tries.release_if_done(slot);
        }
        if let Some(next) = next {
            self.begin_service(now, endpoint, next);
        }
    }

    /// The connect of try `slot` to an endpoint that accepts nothing ran out
    /// of time: a connect failure, which the gateway fails over from.
    pub(super) fn unaccepted(&mut self, now: Nanos, slot: u32, generation: u32) {
        if self.tries.get(slot, generation).is_some_and(|t| t.awaited) {
            self.try_ended(now, slot, TryOutcome::ConnectFailure);
        }
    }

    pub(super) fn timed_out(&mut self, now: Nanos, slot: u32, generation: u32) {
        if self.tries.get(slot, generation).is_some_and(|t| t.awaited) {
            self.try_ended(now, slot, TryOutcome::Timeout);
        }
    }

    /// The gateway learnt how try `slot` ended: tell the balancer and the
    /// outlier detector, then retry or answer the client. (Out of line, for
    /// every cause but a served try, which [`Run::served`] handles inline.)
    #[inline(never)]
    fn try_ended(&mut self, now: Nanos, slot: u32, outcome: TryOutcome) {
        self.try_ended_inline(now, slot, outcome);
    }

    /// [`Run::try_ended`], inlined into its caller.
    #[inline(always)]
    fn try_ended_inline(&mut self, now: Nanos, slot: u32, outcome: TryOutcome) {
        let Some((r, index, started)) = self.tries.stop_waiting(slot) else { return };
        let index = index as usize;

        // Only the fields needed, rather than a copy of the whole request.
        let request = &self.requests[r as usize];
        let (pool, inst, route) =
            (request.pool as usize, request.instance as usize, request.route as usize);
        let measured = request.measured;
        if let Some(connections) = &mut self.connections {
            let answered = matches!(outcome, TryOutcome::Response(_));
            connections.release(now, inst, self.first[pool] + index, slot, answered);
        }
        let instance = &mut self.instances[inst];
        let clock = Clock(now);
        let balancer = &mut instance.balancers[pool];
        balancer.end_exclusive(index);
        balancer.observe(index, duration(now - started), outcome, clock);
        if self.has.outliers {
            if let Some(detector) = &mut instance.outliers[pool] {
                let changes = detector.observe(index, outcome, clock);
                self.outlier_changes(now, inst, pool, changes);
            }
        }
        let failure = outcome.is_failure();
        if measured && failure {
            self.measure.failed_try();
        }

        if failure {
            let request = &self.requests[r as usize];
            let deadline = self.deadline(request);
            let facts =
                TryFacts { tries: request.tries, outcome, idempotent: true, replayable: true };
            let budget = self.instances[inst].budgets[route].as_ref();
            let decision = retry::decide(
                &self.retries[route],
                &deadline,
                budget,
                &facts,
                clock,
                &mut self.picks,
            );
            if let RetryDecision::Retry { backoff, .. } = decision {
                self.measure.retried(measured);
                self.events.push(now.saturating_add(nanos(backoff)), Event::Retry(r));
                return;
            }
        }
        let ending = match outcome {
            TryOutcome::Response(s) if s < 500 => Ending::Success,
            TryOutcome::Response(_) => Ending::Upstream5xx,
            TryOutcome::ConnectFailure | TryOutcome::Reset => Ending::Unreachable,
            TryOutcome::Timeout => Ending::Timeout,
        };
        self.finish_inline(now, r, ending);
    }

    /// Pass outlier detection's decisions to the balancer.
    fn outlier_changes(
        &mut self,
        now: Nanos,
        inst: usize,
        pool: usize,
        changes: Vec<OutlierEvent>,
    ) {
        for change in changes {
            match change {
                OutlierEvent::Ejected { endpoint, until, .. } => {
                    self.refresh(now, inst, self.first[pool] + endpoint);
                    let instance = inst as u32;
                    self.events.push(until.0, Event::Return { instance, pool: pool as u32 });
                }
                OutlierEvent::Returned { endpoint } => {
                    self.refresh(now, inst, self.first[pool] + endpoint);
                }
                OutlierEvent::Spared { .. } => {}
            }
        }
    }

    pub(super) fn outlier_return(&mut self, now: Nanos, inst: u32, pool: u32) {
        let (inst, pool) = (inst as usize, pool as usize);
        let Some(detector) = &mut self.instances[inst].outliers[pool] else { return };
        let changes = detector.poll(Clock(now));
        self.outlier_changes(now, inst, pool, changes);
    }

    /// Set an endpoint's eligibility from its health and outlier state.
    fn refresh(&mut self, now: Nanos, inst: usize, endpoint: usize) {
        let (pool, index) = (self.stations[endpoint].pool, self.stations[endpoint].index);
        let instance = &self.instances[inst];
        let healthy = instance.health[endpoint].is_none_or(|h| h.is_healthy());
        let ejected = instance.outliers[pool].as_ref().is_some_and(|d| d.is_ejected(index));
        instance.balancers[pool].set_eligible(index, healthy && !ejected, Clock(now));
    }

    /// Apply the workload's fault number `n`.
    pub(super) fn fault(&mut self, now: Nanos, n: usize) {
        let fault = self.workload.events[n];
        let endpoint = self.first[fault.pool] + fault.endpoint;
        let station = &mut self.stations[endpoint];
        match fault.kind {
            FaultKind::Crash => {
                // Connections drop: everything the endpoint held is reset.
                station.advance(now);
                station.state = State::Crashed;
                station.busy = 0;
                if let Some(connections) = &mut self.connections {
                    connections.crashed(endpoint);
                }
                // Those in service first, in the order they began, then the queue.
                let mut held = self.tries.serving(endpoint as u32);
                held.extend(station.waiting.drain(..));
                for slot in held {
                    let Some(t) = self.tries.at(slot) else { continue };
                    t.held = false;
                    if t.awaited {
                        self.try_ended(now, slot, TryOutcome::Reset);
                    } else {
                        self.tries.release_if_done(slot);
                    }
                }
            }
            FaultKind::Recover => {
                (station.state, station.slow, station.failing) = (State::Up, 1.0, 0.0);
            }
            FaultKind::Slow(factor) => station.slow = factor,
            FaultKind::Fail(share) => station.failing = share,
            FaultKind::FailFast => station.state = State::FailingFast,
            FaultKind::BlackHole => station.state = State::BlackHole,
            // What it holds stays, and is served as before.
            FaultKind::StopAccepting => station.state = State::NotAccepting,
        }
    }

    /// A health probe from `inst` to `endpoint`: its result by the
    /// endpoint's state. Probes are cheap: a healthy endpoint answers at once.
    pub(super) fn probe(&mut self, now: Nanos, inst: u32, endpoint: u32) {
        if self.stopped {
            return;
        }
        let station = &self.stations[endpoint as usize];
        let Some(health) = &self.rules[station.pool].health else { return };
        let key = now ^ (u64::from(inst) << 48) ^ u64::from(endpoint);
        let (outcome, at) = match station.state {
            State::Crashed => (TryOutcome::ConnectFailure, now),
            State::FailingFast => (TryOutcome::Response(503), now),
            State::BlackHole => (TryOutcome::Timeout, now.saturating_add(nanos(health.timeout))),
            // The probe's connect hangs too, until one of its limits runs out.
            State::NotAccepting => {
                let connect = self.connect_timeouts[station.pool];
                match connect < nanos(health.timeout) {
                    true => (TryOutcome::ConnectFailure, now.saturating_add(connect)),
                    false => (TryOutcome::Timeout, now.saturating_add(nanos(health.timeout))),
                }
            }
            State::Up if keyed_uniform(self.seed, key, salt::PROBE) < station.failing => {
                (TryOutcome::Response(500), now)
            }
            State::Up => (TryOutcome::Response(200), now),
        };
        self.events.push(at, Event::Probed { instance: inst, endpoint, outcome });
    }

    pub(super) fn probed(&mut self, now: Nanos, inst: u32, endpoint: u32, outcome: TryOutcome) {
        let pool = self.stations[endpoint as usize].pool;
        let Some(health) = self.rules[pool].health.clone() else { return };
        let (i, e) = (inst as usize, endpoint as usize);
        if let Some(check) = &mut self.instances[i].health[e] {
            if check.record(&health, outcome, Clock(now)).is_some() {
                self.refresh(now, i, e);
            }
        }
        let next = health.next_probe(Clock(now), &mut self.picks).0;
        if !self.stopped {
            self.events.push(next, Event::Probe { instance: inst, endpoint });
        }
    }
}

/// The balancer's pick, in a function of its own: the start of a try is
/// inlined in more than one place, and this keeps one copy of the
/// balancing code (with everything it calls inlined into it).
#[inline(never)]
fn pick_from(balancer: &Balancer, picks: &mut Pcg64, pick: &Pick) -> Option<usize> {
    balancer.pick_with(picks, pick)
}

fn duration(ns: Nanos) -> Duration {
    Duration::from_nanos(ns)
}
