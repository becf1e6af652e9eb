//! The engine with keyed traffic, and with an endpoint that stops accepting
//! connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_compiler::spec::HashOn;
use sluice_traffic::{key_hash, Algorithm, Balancer, Pick};

use super::measure::Ending;
use super::tests::{topology, MS};
use super::*;
use crate::random::ServiceTime;
use crate::request::{KeyLaw, Keys, Template, Value};
use crate::time::SECOND;
use crate::workload::{Fault, FaultKind, PoolLoad, RouteShare};

const SEED: u64 = 23;

/// A pool of `n` endpoints hashing on header `x-key`, placed on the ring as
/// `serve` places them, and a workload whose requests carry keys of `law`.
fn keyed(n: usize, law: KeyLaw, requests: u64) -> (Topology, Workload) {
    let mut t = topology(n, Balance::ConsistentHash);
    let pool = &mut t.pools[0];
    pool.hash_on = Some(HashOn::Header("x-key".into()));
    pool.rules.balance.endpoint_keys =
        pool.endpoints.iter().map(|e| key_hash(e.label.as_bytes())).collect();
    let template = Template {
        values: vec![Value::Keys(Keys { law, prefix: "k".into(), address: false })],
        headers: vec![("x-key".into(), 0)],
        ..Template::default()
    };
    let share = RouteShare { template: Some(Arc::new(template)), ..RouteShare::new(0, 1.0) };
    let load = PoolLoad::new(8, ServiceTime::Exponential { mean: MS });
    let w =
        Workload::poisson(Length::Requests(requests), 0, 2_000.0, vec![share], vec![Some(load)]);
    (t, w)
}

/// Per endpoint, the share of requests the keys of `law` send there,
/// from where the ring puts each key: a balancer built as the pool's.
fn predicted(t: &Topology, law: &KeyLaw) -> Vec<f64> {
    let pool = &t.pools[0];
    let weights: Vec<u32> = pool.endpoints.iter().map(|e| e.weight).collect();
    let ring = Balancer::with_settings(Algorithm::ConsistentHash, &weights, &pool.rules.balance);
    let mut rng = stream(0, Stream::Balancer);
    let mut share = vec![0.0; weights.len()];
    for k in 1..=law.keys() {
        let pick = Pick::default().with_hash(key_hash(format!("k{k}").as_bytes()));
        share[ring.pick_with(&mut rng, &pick).unwrap()] += law.probability(k);
    }
    share
}

/// Per endpoint, the share of first tries it received; and each key's endpoints.
fn observed(t: &Topology, w: &Workload, trace: &Trace) -> (Vec<f64>, BTreeMap<u64, Vec<usize>>) {
    let template = w.traffic[0].template.as_deref().unwrap();
    let mut counts = vec![0u64; t.pools[0].endpoints.len()];
    let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &(id, number, _, endpoint, _) in &trace.tries {
        if number != 1 {
            continue;
        }
        counts[endpoint] += 1;
        let key = template.key(SEED, id, 0).unwrap();
        let seen = by_key.entry(key).or_default();
        if !seen.contains(&endpoint) {
            seen.push(endpoint);
        }
    }
    let total = counts.iter().sum::<u64>() as f64;
    (counts.iter().map(|&c| c as f64 / total).collect(), by_key)
}

fn traced(t: &Topology, w: &Workload) -> Trace {
    run_variant_traced(t, w, SEED, Variant::spec()).trace.unwrap()
}

#[test]
fn a_zipf_key_mix_loads_each_endpoint_as_the_ring_places_its_keys() {
    // 200 keys, exponent 1.1: key 1 alone is about a sixth of the requests,
    // so the endpoint that owns it is hot. The prediction weighs each key's
    // probability by where a balancer built like the pool's puts it; the
    // run draws 200,000 keys, so each share is within about 0.003 (three
    // standard deviations) of it.
    let law = KeyLaw::zipf(200, 1.1);
    let (t, w) = keyed(5, law.clone(), 200_000);
    let want = predicted(&t, &law);
    let (got, by_key) = observed(&t, &w, &traced(&t, &w));
    for (e, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!(
            (got - want).abs() < 0.005,
            "endpoint {e}: {got:.4} of requests, ring says {want:.4}"
        );
    }
    let hottest = got.iter().copied().fold(0.0, f64::max);
    assert!(hottest > 0.3, "the hottest endpoint has {hottest:.3}, not well above 0.2: {got:?}");

    // While every endpoint is up, a key always goes to the same endpoint.
    assert_eq!(by_key.len(), 200, "every key is drawn at least once");
    for (key, endpoints) in &by_key {
        assert_eq!(endpoints.len(), 1, "key {key} went to endpoints {endpoints:?}");
    }
}

#[test]
fn a_uniform_key_mix_spreads_about_evenly() {
    // 10,000 keys equally likely: each endpoint's share is its part of the
    // ring, which virtual nodes keep within a few points of a fifth (the
    // ring of these five addresses gives one of them 23%).
    let law = KeyLaw::Uniform { keys: 10_000 };
    let (t, w) = keyed(5, law.clone(), 100_000);
    let want = predicted(&t, &law);
    let (got, _) = observed(&t, &w, &traced(&t, &w));
    for (e, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!((got - want).abs() < 0.008, "endpoint {e}: {got:.4}, ring says {want:.4}");
        assert!((got - 0.2).abs() < 0.05, "endpoint {e} has {got:.4} of uniform keys");
    }
}

#[test]
fn without_keys_a_hashing_pool_picks_at_random() {
    // The same pool, its requests carrying no key: every endpoint about a fifth.
    let (t, mut w) = keyed(5, KeyLaw::zipf(200, 1.1), 100_000);
    w.traffic[0].template = None;
    let (got, by_key) = observed_without_keys(&t, &w);
    assert!(by_key, "a request without a key still ran");
    for share in got {
        assert!((share - 0.2).abs() < 0.01, "{share}");
    }
}

fn observed_without_keys(t: &Topology, w: &Workload) -> (Vec<f64>, bool) {
    let trace = traced(t, w);
    let mut counts = vec![0u64; t.pools[0].endpoints.len()];
    for &(_, _, _, endpoint, _) in &trace.tries {
        counts[endpoint] += 1;
    }
    let total = counts.iter().sum::<u64>() as f64;
    (counts.iter().map(|&c| c as f64 / total).collect(), total > 0.0)
}

#[test]
fn every_variant_draws_the_same_keys_for_the_same_requests() {
    // Common random numbers: the keys are a function of the seed and the
    // request, so a variant that hashes and one that does not see the same.
    let (t, w) = keyed(5, KeyLaw::zipf(50, 1.0), 5_000);
    let template = w.traffic[0].template.as_deref().unwrap();
    let ids = |variant| {
        let out = run_variant_traced(&t, &w, SEED, variant).trace.unwrap();
        let mut ids: Vec<(u64, u64)> = (out.tries.iter())
            .filter(|t| t.1 == 1)
            .map(|t| (t.0, template.key(SEED, t.0, 0).unwrap()))
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(Variant::spec()), ids(Variant::all(Balance::RoundRobin)));
}

/// Three endpoints under round robin, each request served in exactly 100
/// ms by one of many workers; endpoint 0 stops accepting connections at 10
/// s and recovers at 20 s; the pool's connect timeout is 250 ms, and its
/// idle connections close after `idle_timeout`.
fn stop_accepting_run(idle_timeout: Duration) -> (Trace, Outcome) {
    let mut t = topology(3, Balance::RoundRobin);
    t.pools[0].connect_timeout = Duration::from_millis(250);
    t.pools[0].idle_timeout = idle_timeout;
    let service = ServiceTime::Constant { value: 100 * MS };
    let traffic = vec![RouteShare::new(0, 1.0)];
    let load = PoolLoad::new(64, service);
    let mut w =
        Workload::poisson(Length::Duration(30 * SECOND), 0, 90.0, traffic, vec![Some(load)]);
    let fault = |at, kind| Fault { at, pool: 0, endpoint: 0, kind };
    w.events =
        vec![fault(10 * SECOND, FaultKind::StopAccepting), fault(20 * SECOND, FaultKind::Recover)];
    let mut out = run_variant_traced(&t, &w, SEED, Variant::spec());
    (out.trace.take().unwrap(), out)
}

#[test]
fn an_endpoint_that_stops_accepting_costs_new_connections_the_connect_timeout() {
    // Without keep-alive, every try needs a new connection.
    let (trace, out) = stop_accepting_run(Duration::ZERO);
    let ended: BTreeMap<u64, (Nanos, Nanos, Ending)> =
        trace.ended.iter().map(|&(id, arrived, end, how)| (id, (arrived, end, how))).collect();
    let first: Vec<_> = trace.tries.iter().filter(|t| t.1 == 1).collect();
    let (stop, recover) = (10 * SECOND, 20 * SECOND);

    // Requests it held when it stopped accepting finish as usual, in 100 ms.
    let held: Vec<_> =
        first.iter().filter(|t| t.3 == 0 && t.4 < stop && t.4 + 100 * MS > stop).collect();
    assert!(!held.is_empty(), "no request was in service at the event");
    for t in &held {
        let (arrived, end, how) = ended[&t.0];
        assert_eq!((how, end - arrived), (Ending::Success, 100 * MS), "request {}", t.0);
    }

    // New requests to it wait out the connect timeout, then another endpoint
    // serves them: 250 ms, a backoff of up to 25 ms, then 100 ms.
    let refused: Vec<_> =
        first.iter().filter(|t| t.3 == 0 && (stop..recover).contains(&t.4)).collect();
    assert!(refused.len() > 200, "{} requests went to it while it refused", refused.len());
    for t in &refused {
        let (arrived, end, how) = ended[&t.0];
        let took = end - arrived;
        assert_eq!(how, Ending::Success, "request {}", t.0);
        assert!((350 * MS..=375 * MS).contains(&took), "request {} took {took} ns", t.0);
        let retry = trace.tries.iter().find(|r| r.0 == t.0 && r.1 == 2).unwrap();
        assert_ne!(retry.3, 0, "the retry went to another endpoint");
    }
    assert_eq!(out.report.requests, trace.ended.len() as u64);
    assert_eq!(out.report.succeeded, out.report.requests, "connect failures were failed over");

    // After `recover` it takes its share again, answered in 100 ms.
    let back: Vec<_> = first.iter().filter(|t| t.3 == 0 && t.4 >= recover).collect();
    let after = first.iter().filter(|t| t.4 >= recover).count();
    let share = back.len() as f64 / after as f64;
    assert!((share - 1.0 / 3.0).abs() < 0.02, "{share}");
    for t in back {
        assert_eq!(ended[&t.0].1 - ended[&t.0].0, 100 * MS, "request {}", t.0);
    }
}

#[test]
fn an_endpoint_that_stops_accepting_still_serves_on_its_open_connections() {
    // With keep-alive, a try to it takes an idle connection when one is
    // left, and is served as before; one that needs a new connection waits
    // out the connect timeout and fails over.
    let (trace, out) = stop_accepting_run(Duration::from_secs(4));
    let ended: BTreeMap<u64, (Nanos, Nanos)> =
        trace.ended.iter().map(|&(id, arrived, end, _)| (id, (arrived, end))).collect();
    let (stop, recover) = (10 * SECOND, 20 * SECOND);
    let to_it =
        (trace.tries.iter()).filter(|t| t.1 == 1 && t.3 == 0 && (stop..recover).contains(&t.4));
    let (mut served, mut failed_over) = (0, 0);
    for t in to_it {
        let (arrived, end) = ended[&t.0];
        match end - arrived {
            took if took == 100 * MS => served += 1,
            took if (350 * MS..=375 * MS).contains(&took) => failed_over += 1,
            took => panic!("request {} took {took} ns", t.0),
        }
    }
    assert!(served > 100 && failed_over > 0, "{served} served, {failed_over} failed over");
    assert_eq!(out.report.succeeded, out.report.requests);
}
