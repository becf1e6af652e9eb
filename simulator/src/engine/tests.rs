//! The engine against queueing theory, and its bookkeeping.

use super::*;
use crate::random::ServiceTime;
use crate::time::SECOND;
use crate::workload::{EndpointShape, PoolLoad, PoolShape, RouteShape, RouteShare};

pub(super) const MS: Nanos = 1_000_000;

/// One route to one pool of `endpoints` equal endpoints.
pub(super) fn topology(endpoints: usize, balance: Balance) -> Topology {
    let endpoints = (0..endpoints)
        .map(|i| EndpointShape { label: format!("10.0.0.{i}:80"), weight: 1 })
        .collect();
    Topology {
        pools: vec![PoolShape::new("p", balance, endpoints)],
        routes: vec![RouteShape::new("r", 0)],
    }
}

pub(super) fn workload(rate: f64, length: Length, workers: u32, service: ServiceTime) -> Workload {
    let traffic = vec![RouteShare::new(0, 1.0)];
    Workload::poisson(length, SECOND, rate, traffic, vec![Some(PoolLoad::new(workers, service))])
}

pub(super) fn mean_ms(outcome: &Outcome) -> f64 {
    outcome.report.latency.mean_ns as f64 / MS as f64
}

pub(super) fn assert_close(got: f64, want: f64, tolerance: f64, what: &str) {
    let error = (got / want - 1.0).abs();
    assert!(
        error < tolerance,
        "{what}: got {got:.4}, theory {want:.4}, off by {:.2}%",
        100.0 * error
    );
}

#[test]
fn mm1_mean_sojourn_time_is_one_over_mu_minus_lambda() {
    // lambda = 800/s, mu = 1000/s: utilisation 0.8, W = 1 / (mu - lambda) = 5 ms.
    let t = topology(1, Balance::Random);
    let w = workload(800.0, Length::Requests(1_000_000), 1, ServiceTime::Exponential { mean: MS });
    let out = run_variant(&t, &w, 42, Variant::spec());

    assert_eq!(out.report.requests, 1_000_000);
    assert_close(mean_ms(&out), 5.0, 0.03, "M/M/1 mean sojourn (ms)");
    assert_close(out.report.endpoints[0].utilisation, 0.8, 0.01, "M/M/1 utilisation");
    // The sojourn time of M/M/1 is exponential, so its median is W ln 2.
    let p50 = out.report.latency.p50_ns as f64 / MS as f64;
    assert_close(p50, 5.0 * std::f64::consts::LN_2, 0.05, "M/M/1 median sojourn (ms)");
}

/// Erlang's C formula: the probability that an arrival waits in M/M/c.
fn erlang_c(servers: u32, offered: f64) -> f64 {
    let c = f64::from(servers);
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..servers {
        term *= offered / f64::from(k);
        sum += term;
    }
    let last = term * offered / c * c / (c - offered);
    last / (sum + last)
}

#[test]
fn mmc_mean_sojourn_time_follows_erlang_c() {
    // 4 workers, mean service 4 ms (mu = 250/s each), lambda = 800/s: a = 3.2.
    let t = topology(1, Balance::RoundRobin);
    let w =
        workload(800.0, Length::Requests(1_000_000), 4, ServiceTime::Exponential { mean: 4 * MS });
    let out = run_variant(&t, &w, 7, Variant::spec());

    let (c, mu, lambda) = (4.0, 250.0, 800.0);
    let want = erlang_c(4, lambda / mu) / (c * mu - lambda) + 1.0 / mu;
    assert_close(mean_ms(&out), want * 1e3, 0.03, "M/M/4 mean sojourn (ms)");
    assert_close(out.report.endpoints[0].utilisation, 0.8, 0.01, "M/M/4 utilisation");
}

#[test]
fn md1_mean_sojourn_time_follows_pollaczek_khinchine() {
    // Constant 1 ms service at 800/s: W = 1/mu + rho / (2 mu (1 - rho)) = 1 + 2 = 3 ms.
    let t = topology(1, Balance::RoundRobin);
    let w = workload(800.0, Length::Requests(300_000), 1, ServiceTime::Constant { value: MS });
    let out = run_variant(&t, &w, 9, Variant::spec());
    assert_close(mean_ms(&out), 3.0, 0.03, "M/D/1 mean sojourn (ms)");
}

#[test]
fn variants_see_the_same_arrivals_and_service_times() {
    let t = topology(4, Balance::RoundRobin);
    let w = workload(3_000.0, Length::Requests(20_000), 1, ServiceTime::Exponential { mean: MS });
    let runs: Vec<Outcome> =
        [Variant::spec(), Variant::all(Balance::Random), Variant::all(Balance::LeastRequest)]
            .into_iter()
            .map(|v| run_variant_traced(&t, &w, 3, v))
            .collect();

    // The same arrivals, routes and service demands, hence the same window...
    let demands = |o: &Outcome| {
        let mut d = o.trace.as_ref().unwrap().demands.clone();
        d.sort_unstable_by_key(|&(_, id, number, _)| (id, number));
        d
    };
    // (Every request created, warm-up included, is served once: no retries here.)
    assert_eq!(demands(&runs[0]).len(), runs[0].trace.as_ref().unwrap().arrivals.len());
    for run in &runs[1..] {
        assert_eq!(run.digest, runs[0].digest);
        assert_eq!(run.measured, runs[0].measured);
        assert_eq!(run.report.requests, runs[0].report.requests);
        assert_eq!(demands(run), demands(&runs[0]), "{}", run.report.variant);
    }
    // ...yet different balancing, hence different latencies.
    assert_ne!(runs[0].report.latency, runs[1].report.latency);
    assert_ne!(runs[1].report.latency, runs[2].report.latency);

    // And another seed draws another workload.
    assert_ne!(run_variant(&t, &w, 4, Variant::spec()).digest, runs[0].digest);
}

#[test]
fn arrivals_drawn_ahead_give_the_same_run() {
    // Two shares of traffic, retries after per-try timeouts, and a warm-up.
    let t = topology(4, Balance::LeastRequest);
    let mut w = workload(3_000.0, Length::Requests(30_000), 1, ServiceTime::log_normal(MS, 8 * MS));
    w.traffic = vec![RouteShare::new(0, 1.0), RouteShare::new(0, 3.0)];
    w.gateway.per_try_timeout = Some(std::time::Duration::from_millis(4));
    let on = sluice_traffic::retry::RetryOn { timeout: true, ..Default::default() };
    let retries = RetrySettings { attempts: 3, on, ..Default::default() };
    w.gateway.retries = Some(retries);
    let events = std::sync::atomic::AtomicU64::new(0);
    for variant in [Variant::spec(), Variant::all(Balance::Random)] {
        let inline = run_variant(&t, &w, 21, variant);
        let ahead = run_variant_counting(&t, &w, 21, variant, &events, true);
        assert!(inline.report.retries > 0);
        assert_eq!(ahead.digest, inline.digest);
        assert_eq!((ahead.warmup, ahead.measured), (inline.warmup, inline.measured));
        let json = |o: &Outcome| serde_json::to_string(&o.report).unwrap();
        assert_eq!(json(&ahead), json(&inline));
        assert_eq!(ahead.report.series.len(), inline.report.series.len());
        for (a, b) in ahead.report.series.iter().zip(&inline.report.series) {
            assert_eq!((a.at_ns, a.errors, a.p99_ns), (b.at_ns, b.errors, b.p99_ns));
        }
    }
}

#[test]
fn the_arrival_source_ignores_the_variant() {
    let w = workload(1_000.0, Length::Requests(10), 1, ServiceTime::Exponential { mean: MS });
    let draw = || {
        let mut source = Source::new(&w, 5);
        let mut at = source.next.unwrap();
        (0..1_000)
            .map(|_| {
                let share = source.share();
                at = source.after(&w, at, false).unwrap();
                (at, share)
            })
            .collect::<Vec<_>>()
    };
    let first = draw();
    assert_eq!(first, draw());
    assert!(first.windows(2).all(|p| p[0].0 <= p[1].0), "arrivals move forward in time");
}

#[test]
fn least_request_beats_random_at_high_load() {
    // Ten endpoints at utilisation 0.9: random dispatch makes ten M/M/1
    // queues (W = 10 ms); two choices cut the mean several-fold.
    let t = topology(10, Balance::Random);
    let mut w =
        workload(9_000.0, Length::Requests(300_000), 1, ServiceTime::Exponential { mean: MS });
    w.variants = vec![Variant::all(Balance::Random), Variant::all(Balance::LeastRequest)];
    let report = crate::simulate(&t, &w, 1);

    let (random, least) = (&report.variants[0], &report.variants[1]);
    let (random, least) = (random.latency.mean_ns as f64, least.latency.mean_ns as f64);
    assert_close(random / MS as f64, 10.0, 0.1, "random over 10 M/M/1 queues (ms)");
    assert!(least < random / 2.0, "least_request {least} ns vs random {random} ns");
}

#[test]
fn saturated_endpoints_are_exactly_fully_utilised() {
    // Offered 4x capacity: once the queue forms it never empties, so every
    // worker is busy for the whole window.
    let t = topology(2, Balance::RoundRobin);
    let w =
        workload(4_000.0, Length::Duration(3 * SECOND), 2, ServiceTime::Constant { value: 2 * MS });
    let out = run_variant(&t, &w, 1, Variant::spec());
    for e in &out.report.endpoints {
        assert_eq!(e.utilisation, 1.0, "{e:?}");
    }
    // Four workers of 2 ms serve exactly 2000 requests per second.
    assert_close(out.report.throughput, 2_000.0, 0.001, "saturated throughput");
}

#[test]
fn idle_endpoints_count_zero_and_served_requests_add_up() {
    let mut t = topology(3, Balance::WeightedRoundRobin);
    t.pools[0].endpoints[2].weight = 0;
    let w =
        workload(500.0, Length::Duration(11 * SECOND), 1, ServiceTime::Exponential { mean: MS });
    let out = run_variant(&t, &w, 2, Variant::spec());

    let e = &out.report.endpoints;
    assert_eq!((e[2].requests, e[2].utilisation), (0, 0.0));
    assert_eq!(e.iter().map(|e| e.requests).sum::<u64>(), out.report.requests);
    // Weighted 1:1 over two endpoints: each offered 250/s of 1 ms work.
    assert_close(e[0].utilisation, 0.25, 0.05, "endpoint 0 utilisation");
    assert_close(e[1].utilisation, 0.25, 0.05, "endpoint 1 utilisation");
    // A duration run measures exactly duration minus warm-up.
    assert_eq!((out.warmup, out.measured), (SECOND, 10 * SECOND));
    assert_close(out.report.requests as f64, 5_000.0, 0.05, "arrivals in 10 s at 500/s");
    assert_close(out.report.throughput, 500.0, 0.05, "throughput");
}

#[test]
fn busy_time_integrates_across_changes() {
    let mut s = Station::new(0, 0, None);
    // Idle until 10, one busy until 30, two busy until 35, one until 50.
    for (now, busy) in [(10, 1), (30, 2), (35, 1), (50, 0)] {
        s.advance(now);
        s.busy = busy;
    }
    assert_eq!(s.area, 20 + 2 * 5 + 15);
    assert_eq!(s.since, 50);
}

#[test]
fn requests_runs_measure_exactly_that_many() {
    let t = topology(3, Balance::LeastRequest);
    let mut w =
        workload(2_000.0, Length::Requests(12_345), 1, ServiceTime::log_normal(MS / 2, 4 * MS));
    w.warmup = 0;
    let out = run_variant(&t, &w, 8, Variant::spec());
    assert_eq!(out.report.requests, 12_345);
    assert_eq!(out.report.latency, out.report.routes[0].latency);
    assert_eq!(out.report.routes[0].requests, 12_345);
}

#[test]
fn the_series_p99_is_that_of_the_answers_of_each_step() {
    // M/M/1 at 0.8 with 5 ms mean sojourn: its p99 is 5 ms times ln 100.
    // A step holds a few thousand correlated answers, whose p99 runs low.
    let t = topology(1, Balance::Random);
    let w = workload(800.0, Length::Requests(200_000), 1, ServiceTime::Exponential { mean: MS });
    let out = run_variant(&t, &w, 3, Variant::spec());
    let steps: Vec<&crate::report::Point> =
        out.report.series.iter().filter(|p| p.at_ns >= SECOND).collect();
    let mean = steps.iter().map(|p| p.p99_ns as f64).sum::<f64>() / steps.len() as f64;
    assert_close(mean / MS as f64, 5.0 * 100f64.ln(), 0.25, "mean of the steps' p99 (ms)");
}

#[test]
fn two_choices_approach_the_supermarket_limit() {
    // Mitzenmacher's fixed point for JSQ(2) as the pool grows: a fraction
    // lambda^(2^i - 1) of servers hold at least i requests, so by Little's
    // law the mean sojourn is sum(lambda^(2^i - 1)) / lambda service times.
    let lambda: f64 = 0.9;
    let limit: f64 = (1..12).map(|i| lambda.powi((1 << i) - 1)).sum::<f64>() / lambda;
    let t = topology(100, Balance::LeastRequest);
    let w = workload(
        100.0 * lambda * 1_000.0,
        Length::Requests(1_000_000),
        1,
        ServiceTime::Exponential { mean: MS },
    );
    let out = run_variant(&t, &w, 12, Variant::spec());
    // A finite pool sits slightly above the limit (here by about 1%).
    assert_close(mean_ms(&out), limit, 0.03, "JSQ(2) over 100 servers (ms)");
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let t = topology(5, Balance::RoundRobin);
    let mut w =
        workload(3_000.0, Length::Duration(4 * SECOND), 2, ServiceTime::log_normal(MS, 9 * MS));
    w.variants =
        vec![Variant::spec(), Variant::all(Balance::Random), Variant::all(Balance::LeastRequest)];
    let a = crate::simulate(&t, &w, 99);
    let b = crate::simulate(&t, &w, 99);
    assert_eq!(a.to_table(), b.to_table());
    assert_eq!(a.to_json(), b.to_json());
    assert_ne!(a.to_table(), crate::simulate(&t, &w, 100).to_table());
}

/// Asserts two long lists are equal, naming the first difference only.
fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("{what}: first difference at {i}: {:?} vs {:?}", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
}

/// Two pools behind one route split 3:1, each with its own service law.
fn split_topology() -> (Topology, Workload) {
    let endpoints = |n: usize, net: u32| {
        (0..n).map(|i| EndpointShape { label: format!("10.0.{net}.{i}:80"), weight: 1 }).collect()
    };
    let mut route = RouteShape::new("r", 0);
    route.split = vec![(0, 3), (1, 1)];
    let t = Topology {
        pools: vec![
            PoolShape::new("a", Balance::RoundRobin, endpoints(3, 0)),
            PoolShape::new("b", Balance::RoundRobin, endpoints(2, 1)),
        ],
        routes: vec![route],
    };
    let traffic = vec![RouteShare::new(0, 1.0)];
    let pools = vec![
        Some(PoolLoad::new(2, ServiceTime::Exponential { mean: MS })),
        Some(PoolLoad::new(2, ServiceTime::log_normal(2 * MS, 9 * MS))),
    ];
    let w = Workload::poisson(Length::Requests(20_000), SECOND / 10, 3_000.0, traffic, pools);
    (t, w)
}

#[test]
fn every_variant_splits_the_same_requests_the_same_way() {
    let (t, w) = split_topology();
    let variants =
        [Variant::spec(), Variant::all(Balance::Random), Variant::all(Balance::LeastRequest)];
    let runs: Vec<Trace> =
        variants.into_iter().map(|v| run_variant_traced(&t, &w, 5, v).trace.unwrap()).collect();

    // Per pool: the requests it received (id and arrival), and the demand of
    // every try it served, by request and try.
    let per_pool = |trace: &Trace, pool: usize| {
        let arrivals: Vec<(u64, Nanos)> =
            trace.arrivals.iter().filter(|a| a.0 == pool).map(|a| (a.1, a.2)).collect();
        let mut demands: Vec<(u64, u32, Nanos)> =
            trace.demands.iter().filter(|d| d.0 == pool).map(|d| (d.1, d.2, d.3)).collect();
        demands.sort_unstable();
        (arrivals, demands)
    };
    for pool in 0..2 {
        let (arrivals, demands) = per_pool(&runs[0], pool);
        // Every request reached its pool and was served once (no retries here).
        assert_eq!(arrivals.len(), demands.len(), "pool {pool}");
        for (trace, variant) in runs.iter().zip(variants).skip(1) {
            let (a, d) = per_pool(trace, pool);
            let name = variant.name();
            same(&a, &arrivals, &format!("pool {pool}: requests (id, arrival) under {name}"));
            same(&d, &demands, &format!("pool {pool}: demands (id, try, ns) under {name}"));
        }
    }
    // And the sides are in proportion to the split's weights, 3:1.
    let a = runs[0].arrivals.iter().filter(|a| a.0 == 0).count() as f64;
    let all = runs[0].arrivals.len() as f64;
    assert_close(a / all, 0.75, 0.02, "share of the split's first side");
}

/// A day with a night trough, a morning rise and an evening peak.
const DAY: [f64; 24] = [
    0.3, 0.2, 0.15, 0.15, 0.2, 0.3, 0.6, 1.0, 1.4, 1.5, 1.5, 1.6, //
    1.7, 1.6, 1.5, 1.5, 1.6, 1.8, 2.0, 2.0, 1.6, 1.1, 0.7, 0.4,
];

/// Arrivals per hour-long window over two compressed days, against the
/// integral of the curve over each window.
fn arrivals_per_hour(pattern: crate::workload::Pattern) -> Vec<(f64, f64)> {
    use crate::workload::{Arrivals, DailyCurve, RateProfile};
    let hour = SECOND; // A day lasts 24 s.
    let mut w =
        workload(1_000.0, Length::Duration(48 * hour), 1, ServiceTime::Constant { value: MS });
    let mut profile = RateProfile::flat(1_000.0);
    profile.daily = Some(DailyCurve { period: 24 * hour, hours: DAY.to_vec() });
    w.arrivals = Arrivals::Open { pattern, profile: profile.clone() };

    let mut counts = vec![0u64; 48];
    let mut source = Source::new(&w, 17);
    let mut at = source.next;
    while let Some(t) = at.filter(|&t| t < 48 * hour) {
        counts[(t / hour) as usize] += 1;
        at = source.after(&w, t, false);
    }
    counts
        .iter()
        .enumerate()
        .map(|(h, &count)| {
            let h = h as u64;
            let expected = profile.expected((h + 1) * hour) - profile.expected(h * hour);
            (count as f64, expected)
        })
        .collect()
}

#[test]
fn poisson_arrivals_follow_the_daily_curve_hour_by_hour() {
    // Each window's count is Poisson with mean the curve's integral over it
    // (150 to 2,000 here): within four standard deviations, in every window.
    for (h, (count, expected)) in
        arrivals_per_hour(crate::workload::Pattern::Poisson).into_iter().enumerate()
    {
        let sigmas = (count - expected).abs() / expected.sqrt();
        assert!(
            sigmas < 4.0,
            "hour {h}: {count} arrivals, {expected:.1} expected ({sigmas:.1} sigma)"
        );
    }
}

#[test]
fn constant_arrivals_follow_the_daily_curve_hour_by_hour() {
    // Evenly spaced at the rate of the moment: within 1% and two arrivals.
    for (h, (count, expected)) in
        arrivals_per_hour(crate::workload::Pattern::Constant).into_iter().enumerate()
    {
        let error = (count - expected).abs();
        assert!(
            error < 0.01 * expected + 2.0,
            "hour {h}: {count} arrivals, {expected:.1} expected"
        );
    }
}

#[test]
fn the_daily_curve_interpolates_between_hours_and_wraps_at_midnight() {
    use crate::workload::DailyCurve;
    let curve = DailyCurve { period: 24 * SECOND, hours: DAY.to_vec() };
    assert_eq!(curve.at(0), 0.3);
    assert_eq!(curve.at(18 * SECOND), 2.0);
    assert_close(curve.at(SECOND / 2), 0.25, 1e-9, "half way from hour 0 to hour 1");
    assert_close(curve.at(23 * SECOND + SECOND / 2), 0.35, 1e-9, "half way from 23:00 to midnight");
    assert_eq!(curve.at(24 * SECOND), curve.at(0));
    assert_eq!(curve.at(30 * SECOND), curve.at(6 * SECOND));
    assert_eq!(curve.peak(), 2.0);
}

#[test]
fn a_steady_runs_throughput_series_holds_the_rate_to_its_last_point() {
    // 20,000 requests per second on 40 M/M/1 queues at 0.5: every step
    // answers the arrival rate, the last one too, whether the run ends at a
    // step boundary (a duration) or inside a step (a request count). A step
    // lasts 160 ms here, some 3,200 answers (a last one at least half as
    // many), so its rate is within 10% at over four standard deviations.
    let t = topology(40, Balance::RoundRobin);
    let exp = ServiceTime::Exponential { mean: MS };
    for length in [Length::Duration(16 * SECOND), Length::Requests(301_234)] {
        let w = workload(20_000.0, length, 1, exp.clone());
        for seed in 1..4 {
            let out = run_variant(&t, &w, seed, Variant::spec());
            let series = &out.report.series;
            assert!(series.len() > 50, "{length:?}: {} steps", series.len());
            for (i, p) in series.iter().enumerate().skip(1) {
                let what = format!("{length:?}, seed {seed}: step {i} of {}", series.len());
                assert_close(p.throughput, 20_000.0, 0.1, &what);
            }
            // The series ends where the window does.
            let step = series[1].at_ns;
            let last = series.last().unwrap().at_ns;
            let end = out.warmup + out.measured;
            assert!(last < end && end <= last + 2 * step, "{length:?}: {last} {end} {step}");
        }
    }
}
