//! Upstream connections under the circuit breaker's connection limits:
//! `max_connections` against Erlang's loss formula, idle connections that
//! keep their places until they expire, HTTP/2's one connection per
//! endpoint, `max_pending` while connects hang, and connections closed
//! when the gateway gives up on a try.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_compiler::spec::Protocol;
use sluice_traffic::CircuitLimits;

use super::measure::Ending;
use super::tests::{assert_close, topology, workload, MS};
use super::*;
use crate::random::ServiceTime;
use crate::time::SECOND;
use crate::workload::{Fault, FaultKind, Pattern};

/// Circuit-breaker limits of connections only.
fn connections(max_connections: u32, max_pending: u32) -> Option<CircuitLimits> {
    Some(CircuitLimits { max_connections, max_pending, ..CircuitLimits::default() })
}

/// Erlang's B formula: the share of arrivals an M/G/c/c loss system turns
/// away, by the recurrence B(k) = a B(k-1) / (k + a B(k-1)).
fn erlang_b(servers: u32, offered: f64) -> f64 {
    (1..=servers).fold(1.0, |b, k| offered * b / (f64::from(k) + offered * b))
}

#[test]
fn max_connections_on_one_endpoint_loses_what_erlang_b_predicts() {
    // One endpoint with more workers than connections: a try that finds
    // every connection busy needs a new one, which the limit refuses. The
    // idle ones are always reused first, so the pool is an M/M/5/5 loss
    // system with an offered load of 4.
    let mut t = topology(1, Balance::RoundRobin);
    t.pools[0].rules.circuit = connections(5, u32::MAX);
    let w =
        workload(1_000.0, Length::Requests(400_000), 64, ServiceTime::Exponential { mean: 4 * MS });
    let out = run_variant(&t, &w, 11, Variant::spec());

    let lost = out.report.errors.breaker as f64 / out.report.requests as f64;
    assert_close(lost, erlang_b(5, 4.0), 0.03, "share refused by max_connections 5");
    assert_eq!(out.report.succeeded + out.report.errors.breaker, out.report.requests);
    assert_eq!(out.report.retries, 0, "a refusal by the pool's limits is not retried");

    // HTTP/2 carries every try on one connection: nothing is refused.
    t.pools[0].protocol = Protocol::Http2;
    t.pools[0].rules.circuit = connections(1, u32::MAX);
    let out = run_variant(&t, &w, 11, Variant::spec());
    assert_eq!(out.report.succeeded, out.report.requests);
}

/// Two endpoints under round robin, `max_connections: 1`, a request every
/// 100 ms served in 1 ms: each try finds the one connection idle, but
/// every other one to the other endpoint.
fn alternating(protocol: Protocol, idle_timeout: Duration) -> Outcome {
    let mut t = topology(2, Balance::RoundRobin);
    t.pools[0].rules.circuit = connections(1, u32::MAX);
    t.pools[0].protocol = protocol;
    t.pools[0].idle_timeout = idle_timeout;
    let mut w = workload(10.0, Length::Requests(200), 4, ServiceTime::Constant { value: MS });
    if let Arrivals::Open { pattern, .. } = &mut w.arrivals {
        *pattern = Pattern::Constant;
    }
    run_variant(&t, &w, 5, Variant::spec())
}

#[test]
fn an_idle_connection_keeps_its_place_until_it_expires() {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        // Idle for 99 ms of the 4 s it may be: the other endpoint's try
        // finds the pool's one place taken, and is refused.
        let out = alternating(protocol, Duration::from_secs(4));
        let refused = out.report.errors.breaker;
        assert!((99..=101).contains(&refused), "{protocol:?}: {refused} of 200 refused");
        assert_eq!(out.report.succeeded + refused, 200, "{protocol:?}");

        // Expired after 50 ms: closed to make room, and nothing is refused.
        let out = alternating(protocol, Duration::from_millis(50));
        assert_eq!(out.report.succeeded, 200, "{protocol:?}");
    }
}

#[test]
fn a_try_given_up_on_closes_its_connection() {
    // The only endpoint swallows requests from 1 s to 3 s, and the route
    // gives up after 100 ms: each such try closes its connection, so once
    // the endpoint answers again, its two places are free, and requests end
    // as they do in the same run without the fault. Were the connections
    // kept, every later request would be refused.
    let mut t = topology(1, Balance::RoundRobin);
    t.pools[0].rules.circuit = connections(2, u32::MAX);
    t.routes[0].timeout = Some(Duration::from_millis(100));
    let mut w =
        workload(100.0, Length::Duration(6 * SECOND), 8, ServiceTime::Constant { value: MS });
    w.warmup = 0;
    let endings = |w: &Workload| {
        let trace = run_variant_traced(&t, w, 3, Variant::spec()).trace.unwrap();
        let endings: BTreeMap<u64, (Nanos, Ending)> =
            trace.ended.iter().map(|&(id, arrived, _, how)| (id, (arrived, how))).collect();
        endings
    };
    let calm = endings(&w);
    let fault = |at, kind| Fault { at, pool: 0, endpoint: 0, kind };
    w.events = vec![fault(SECOND, FaultKind::BlackHole), fault(3 * SECOND, FaultKind::Recover)];
    let faulted = endings(&w);

    let recovered = 3 * SECOND + 100 * MS;
    let after = |e: &BTreeMap<u64, (Nanos, Ending)>| -> Vec<(u64, Ending)> {
        e.iter()
            .filter(|(_, (arrived, _))| *arrived >= recovered)
            .map(|(&id, &(_, how))| (id, how))
            .collect()
    };
    assert!(after(&calm).len() > 200);
    assert_eq!(after(&faulted), after(&calm), "requests after the endpoint recovered");

    // While it swallowed them, two tries at a time waited out the timeout,
    // and the rest were refused at once.
    let during = faulted.values().filter(|(arrived, _)| (SECOND..3 * SECOND).contains(arrived));
    let count = |kind: Ending| during.clone().filter(|(_, how)| *how == kind).count();
    let (timeouts, refused) = (count(Ending::Timeout), count(Ending::Breaker));
    assert!(timeouts > 20 && refused > 100, "{timeouts} timed out, {refused} refused");
}

#[test]
fn max_pending_bounds_connects_that_hang() {
    // Endpoint 0 of 2 stops accepting connections for 2 s; without
    // keep-alive every try needs a new connection, and a connect to it
    // hangs for the 250 ms connect timeout, then fails over. At 100
    // requests per second, about 12 hang at once: `max_pending: 3` lets 3
    // hang and refuses the rest of those at once.
    let run = |max_pending: u32, protocol: Protocol| {
        let mut t = topology(2, Balance::RoundRobin);
        t.pools[0].protocol = protocol;
        t.pools[0].connect_timeout = Duration::from_millis(250);
        t.pools[0].idle_timeout = Duration::ZERO;
        t.pools[0].rules.circuit = connections(u32::MAX, max_pending);
        let mut w =
            workload(100.0, Length::Duration(5 * SECOND), 8, ServiceTime::Constant { value: MS });
        w.warmup = 0;
        let fault = |at, kind| Fault { at, pool: 0, endpoint: 0, kind };
        w.events =
            vec![fault(SECOND, FaultKind::StopAccepting), fault(3 * SECOND, FaultKind::Recover)];
        let out = run_variant_traced(&t, &w, 13, Variant::spec());
        out.trace.unwrap()
    };

    let limited = run(3, Protocol::Http1);
    let refused: Vec<_> = limited.ended.iter().filter(|e| e.3 == Ending::Breaker).collect();
    assert!(refused.len() > 50, "{} refused", refused.len());
    // (Until the last connect begun before it recovered runs out.)
    for e in &refused {
        assert!((SECOND..3 * SECOND + 250 * MS).contains(&e.1), "refused at {} ns", e.1);
    }
    // Never more than 3 tries wait on a connect at once: those whose first
    // try took the connect timeout before failing over.
    let mut waits: Vec<(Nanos, i32)> = Vec::new();
    for &(id, number, _, endpoint, start) in &limited.tries {
        let retried = limited.tries.iter().any(|t| t.0 == id && t.1 == number + 1);
        if endpoint == 0 && retried {
            waits.extend([(start, 1), (start + 250 * MS, -1)]);
        }
    }
    waits.sort_unstable();
    let most = waits.iter().scan(0, |n, w| {
        *n += w.1;
        Some(*n)
    });
    assert_eq!(most.max(), Some(3), "connects hanging at once");

    // A limit above what hangs refuses nothing.
    let unlimited = run(100, Protocol::Http1);
    assert!(unlimited.ended.iter().all(|e| e.3 == Ending::Success));

    // Over HTTP/2, tries to it wait on the one connect under way rather
    // than dial again: it holds one place, the other endpoint's connects
    // one more for an instant, and two places refuse nothing, where over
    // HTTP/1.1 they refuse many.
    let refused = |trace: &Trace| trace.ended.iter().filter(|e| e.3 == Ending::Breaker).count();
    assert!(refused(&run(2, Protocol::Http1)) > 50);
    let shared = run(2, Protocol::Http2);
    assert_eq!(refused(&shared), 0);
    // And they fail with that connect, not a connect timeout after they came.
    let failed_over = |trace: &Trace| -> Vec<Nanos> {
        let ended: BTreeMap<u64, (Nanos, Nanos)> =
            trace.ended.iter().map(|&(id, arrived, end, _)| (id, (arrived, end))).collect();
        let retried = |id: u64| trace.tries.iter().any(|t| t.0 == id && t.1 == 2);
        (trace.tries.iter())
            .filter(|t| t.1 == 1 && t.3 == 0 && retried(t.0))
            .map(|t| ended[&t.0].1 - ended[&t.0].0)
            .collect()
    };
    let took = failed_over(&shared);
    assert!(took.iter().all(|&ns| ns <= 276 * MS), "{took:?}");
    assert!(took.iter().filter(|&&ns| ns < 200 * MS).count() > 10, "{took:?}");
    assert!(failed_over(&run(100, Protocol::Http1)).iter().all(|&ns| ns >= 251 * MS));
    let waited = (shared.tries.iter()).filter(|t| t.3 == 0 && (SECOND..3 * SECOND).contains(&t.4));
    assert!(waited.count() > 50);
}

#[test]
fn the_limits_are_per_gateway_instance() {
    // Each of two instances has its own 5 connections: the loss is that of
    // two M/M/5/5 systems with half the load each.
    let mut t = topology(1, Balance::RoundRobin);
    t.pools[0].rules.circuit = connections(5, u32::MAX);
    let mut w =
        workload(2_000.0, Length::Requests(400_000), 64, ServiceTime::Exponential { mean: 4 * MS });
    w.gateway.instances = 2;
    let out = run_variant(&t, &w, 17, Variant::spec());
    let lost = out.report.errors.breaker as f64 / out.report.requests as f64;
    assert_close(lost, erlang_b(5, 4.0), 0.03, "share refused, two instances");
}
