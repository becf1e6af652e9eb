//! The pool's stall timeout: once an endpoint has a try, the gateway waits
//! at most that long for its answer, as `serve` waits for a response head,
//! whether the try is queued, in service or swallowed.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_traffic::HealthSettings;

use super::measure::Ending;
use super::tests::{topology, workload, MS};
use super::*;
use crate::random::ServiceTime;
use crate::time::SECOND;
use crate::workload::{Fault, FaultKind, Pattern};

/// Each request's arrival, end and ending, by id.
fn endings(trace: &Trace) -> BTreeMap<u64, (Nanos, Nanos, Ending)> {
    trace.ended.iter().map(|&(id, arrived, end, how)| (id, (arrived, end, how))).collect()
}

#[test]
fn a_try_unanswered_for_the_stall_timeout_is_given_up_wherever_it_waits() {
    // One worker serving each request in exactly 1 s, a stall timeout of
    // 1.5 s, three requests a millisecond apart and no route timeout: the
    // first is answered in 1 s; the second goes into service at 1 s and
    // would be answered at 2 s; the third would still be queued at 1.5 s.
    // Both are given up 1.5 s after they were sent, and the endpoint still
    // serves them, as a real one would.
    let mut t = topology(1, Balance::RoundRobin);
    t.pools[0].stall_timeout = Duration::from_millis(1_500);
    let mut w = workload(1_000.0, Length::Requests(3), 1, ServiceTime::Constant { value: SECOND });
    w.warmup = 0;
    if let Arrivals::Open { pattern, .. } = &mut w.arrivals {
        *pattern = Pattern::Constant;
    }
    let out = run_variant_traced(&t, &w, 1, Variant::spec());
    let ended = endings(out.trace.as_ref().unwrap());
    let took: Vec<(Nanos, Ending)> = ended.values().map(|&(a, e, how)| (e - a, how)).collect();
    assert_eq!(
        took,
        [(SECOND, Ending::Success), (1_500 * MS, Ending::Timeout), (1_500 * MS, Ending::Timeout)]
    );
    assert_eq!(out.report.endpoints[0].requests, 3, "it served all three");
}

#[test]
fn a_black_hole_costs_each_try_the_stall_timeout() {
    // Endpoint 0 of 2 swallows requests from 1 s; the route has no timeout
    // and retries nothing but connect failures. Each try to it ends as a
    // timeout after the pool's 400 ms stall timeout, not never.
    let mut t = topology(2, Balance::RoundRobin);
    t.pools[0].stall_timeout = Duration::from_millis(400);
    let mut w =
        workload(50.0, Length::Duration(4 * SECOND), 4, ServiceTime::Constant { value: MS });
    w.warmup = 0;
    w.events = vec![Fault { at: SECOND, pool: 0, endpoint: 0, kind: FaultKind::BlackHole }];
    let out = run_variant_traced(&t, &w, 2, Variant::spec());
    let trace = out.trace.unwrap();
    let ended = endings(&trace);
    let swallowed: Vec<u64> =
        (trace.tries.iter()).filter(|t| t.3 == 0 && t.4 >= SECOND).map(|t| t.0).collect();
    assert!(swallowed.len() > 50, "{} tries to it", swallowed.len());
    for id in swallowed {
        let (arrived, end, how) = ended[&id];
        assert_eq!((how, end - arrived), (Ending::Timeout, 400 * MS), "request {id}");
    }
    assert_eq!(out.report.errors.unanswered, 0);
}

#[test]
fn closed_loop_clients_stuck_in_a_black_hole_come_back_after_the_stall_timeout() {
    // Five clients, no think time, both endpoints swallowing everything
    // from 1 s, health checks probing them: without the stall timeout the
    // clients would wait for ever and the probes never stop. With it, each
    // client's request ends as a timeout 300 ms after it was sent, and the
    // run ends.
    let mut t = topology(2, Balance::RoundRobin);
    t.pools[0].stall_timeout = Duration::from_millis(300);
    t.pools[0].rules.health = Some(HealthSettings::default());
    let mut w = workload(1.0, Length::Duration(3 * SECOND), 4, ServiceTime::Constant { value: MS });
    w.warmup = 0;
    w.arrivals = Arrivals::Closed { clients: 5, think: 0 };
    w.events = (0..2)
        .map(|endpoint| Fault { at: SECOND, pool: 0, endpoint, kind: FaultKind::BlackHole })
        .collect();
    let out = run_variant_traced(&t, &w, 4, Variant::spec());
    let ended = endings(out.trace.as_ref().unwrap());
    let late: Vec<_> = ended.values().filter(|(arrived, _, _)| *arrived >= SECOND).collect();
    assert!(late.len() >= 5 * 6, "{} requests after the black hole", late.len());
    for (arrived, end, how) in late {
        assert_eq!((*how, end - arrived), (Ending::Timeout, 300 * MS));
    }
}
