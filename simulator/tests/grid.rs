//! Each axis of the variant grid changes what the gateway decides, in the
//! direction its setting says; bad values are located findings.

use std::time::Duration;

use sluice_compiler::document::SourceFile;
use sluice_compiler::Balance;
use sluice_simulator::report::VariantReport;
use sluice_simulator::workload::{EndpointShape, Gateway, PoolRules, PoolShape};
use sluice_simulator::{check_scenario, Report, Variant};
use sluice_traffic::{CircuitLimits, HealthSettings};

mod common;

/// One route to a pool of four equal endpoints, balanced round robin.
fn four() -> String {
    common::spec(4, "    balance: round_robin\n")
}

fn plan() -> sluice_compiler::Plan {
    common::plan(&four())
}

/// Run `scenario` against the four-endpoint spec; the variants in grid order.
fn run(scenario: &str) -> Report {
    common::run(&four(), scenario)
}

/// The two variants of a two-value grid, after checking their names.
fn pair<'a>(report: &'a Report, names: [&str; 2]) -> (&'a VariantReport, &'a VariantReport) {
    let got: Vec<&str> = report.variants.iter().map(|v| v.variant.as_str()).collect();
    assert_eq!(got, names);
    (&report.variants[0], &report.variants[1])
}

#[test]
fn a_tighter_breaker_limit_sheds_more_with_503() {
    let report = run("\
version: 1
seed: 3
duration: 10s
warmup: 1s
arrivals: { rate: 360 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 40ms } }
grid:
  max_requests: [20, 1000]
");
    let (tight, loose) = pair(&report, ["spec max_requests=20", "spec max_requests=1000"]);
    assert!(tight.errors.breaker > 200, "{:?}", tight.errors);
    assert_eq!(loose.errors.breaker, 0, "{:?}", loose.errors);
}

#[test]
fn a_tighter_connection_limit_sheds_more_with_503() {
    // About 3.6 tries in flight per endpoint, each on a connection of its
    // own, and idle connections keep their places: 4 connections for the
    // pool of four refuse many tries, 1,000 none.
    let report = run("\
version: 1
seed: 3
duration: 10s
warmup: 1s
arrivals: { rate: 360 }
pools:
  app: { workers: 8, service: { distribution: exponential, mean: 40ms } }
grid:
  max_connections: [4, 1000]
");
    let (tight, loose) = pair(&report, ["spec max_connections=4", "spec max_connections=1000"]);
    assert!(tight.errors.breaker > 1000, "{:?}", tight.errors);
    assert_eq!(loose.errors.breaker, 0, "{:?}", loose.errors);
    assert_eq!(loose.succeeded, loose.requests);
}

#[test]
fn a_tighter_pending_limit_refuses_connects_to_an_endpoint_that_stopped_accepting() {
    // Endpoint 0 stops accepting connections: tries that need a new one
    // to it wait out the 5 s connect timeout. One such connect at a time
    // refuses the others at once; 1,000 refuse none.
    let report = run("\
version: 1
seed: 5
duration: 10s
warmup: 1s
arrivals: { rate: 360 }
pools:
  app: { workers: 8, service: { distribution: exponential, mean: 40ms } }
grid:
  max_pending: [1, 1000]
events:
  - { at: 2s, action: stop_accepting, pool: app, endpoint: \"0\" }
");
    let (tight, loose) = pair(&report, ["spec max_pending=1", "spec max_pending=1000"]);
    assert!(tight.errors.breaker > 0, "{:?}", tight.errors);
    assert_eq!(loose.errors.breaker, 0, "{:?}", loose.errors);
}

#[test]
fn a_shorter_per_try_timeout_retries_a_slow_endpoint_sooner() {
    // Endpoint 0 is 50 times slower (100 ms on average); tries that run out
    // are retried on another endpoint. With 20 ms per try, most tries to it
    // are retried and the tail is short; with 500 ms few are and it is long.
    let report = run("\
version: 1
seed: 4
duration: 10s
warmup: 1s
arrivals: { rate: 200 }
pools:
  app: { workers: 8, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { attempts: 3, on: [timeout] }
grid:
  per_try_timeout: [20ms, 500ms]
events:
  - { at: 0s, action: slow, pool: app, endpoint: \"0\", factor: 50 }
");
    let (short, long) =
        pair(&report, ["spec per_try_timeout=20.00ms", "spec per_try_timeout=500.00ms"]);
    let share = |v: &VariantReport| v.retries as f64 / v.requests as f64;
    // A quarter of requests go to the slow endpoint first; e^-0.2 of those
    // outlast 20 ms, e^-5 outlast 500 ms.
    assert!(share(short) > 0.18, "{}", share(short));
    assert!(share(long) < 0.01, "{}", share(long));
    assert!(
        short.latency.p99_ns < long.latency.p99_ns / 3,
        "{:?} {:?}",
        short.latency,
        long.latency
    );
}

#[test]
fn retrying_on_a_status_hides_an_endpoint_that_fails_with_it() {
    let report = run("\
version: 1
seed: 5
duration: 10s
warmup: 1s
arrivals: { rate: 400 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { attempts: 3 }
grid:
  retry_on: [[connect_failure], [connect_failure, 500]]
events:
  - { at: 0s, action: fail, pool: app, endpoint: \"0\", share: 0.5 }
");
    let (without, with) =
        pair(&report, ["spec retry_on=connect_failure", "spec retry_on=connect_failure+500"]);
    assert!((without.error_rate() / 0.125 - 1.0).abs() < 0.15, "{}", without.error_rate());
    assert_eq!(without.retries, 0);
    assert!(with.error_rate() < 0.002, "{}", with.error_rate());
    assert!(with.retries as f64 > 0.1 * with.requests as f64, "{}", with.retries);
}

#[test]
fn a_lower_budget_ratio_allows_fewer_retries() {
    // Endpoint 0 answers 503 at once, so a quarter of first tries need a
    // retry. A budget of 50% per request allows them all; one of 2% (with
    // 1 retry a second regardless) leaves most of those requests failing.
    let report = run("\
version: 1
seed: 6
duration: 20s
warmup: 1s
arrivals: { rate: 400 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { attempts: 2, on: [503] }
  retry_budget: { min_per_second: 1, window: 5s }
grid:
  ratio_percent: [2, 50]
events:
  - { at: 0s, action: fail_fast, pool: app, endpoint: \"0\" }
");
    let (low, high) = pair(&report, ["spec budget_ratio=2%", "spec budget_ratio=50%"]);
    let share = |v: &VariantReport| v.retries as f64 / v.requests as f64;
    assert!(share(low) < 0.04, "{}", share(low));
    assert!(share(high) > 0.2, "{}", share(high));
    assert!(low.error_rate() > 0.2, "{}", low.error_rate());
    assert!(high.error_rate() < 0.01, "{}", high.error_rate());
}

/// A crash of endpoint 0 at 5 s, its recovery at 15 s; no retries, so each
/// try sent to the crashed endpoint before health checks eject it fails.
fn health_run(grid: &str) -> Report {
    run(&format!(
        "\
version: 1
seed: 7
duration: 30s
warmup: 1s
arrivals: {{ rate: 400 }}
pools:
  app: {{ workers: 4, service: {{ distribution: exponential, mean: 2ms }} }}
gateway:
  retries: {{ attempts: 1 }}
  health_check: {{ interval: 1s, jitter: 0ms, timeout: 100ms }}
grid:
  {grid}
events:
  - {{ at: 5s, action: crash, pool: app, endpoint: \"0\" }}
  - {{ at: 15s, action: recover, pool: app, endpoint: \"0\" }}
"
    ))
}

#[test]
fn a_shorter_health_interval_ejects_a_crashed_endpoint_sooner() {
    let report = health_run("health_interval: [200ms, 3s]");
    let (fast, slow) =
        pair(&report, ["spec health_interval=200.00ms", "spec health_interval=3.000s"]);
    // Three failed probes eject it: about 0.6 s of failures against 9 s.
    let failed = |v: &VariantReport| v.errors.unreachable as f64 / 100.0;
    assert!(failed(fast) < 2.0, "{} s of failures", failed(fast));
    assert!(failed(slow) > 5.0, "{} s of failures", failed(slow));
}

#[test]
fn a_lower_unhealthy_threshold_ejects_a_crashed_endpoint_sooner() {
    let report = health_run("unhealthy_threshold: [1, 6]");
    let (one, six) = pair(&report, ["spec unhealthy_threshold=1", "spec unhealthy_threshold=6"]);
    let failed = |v: &VariantReport| v.errors.unreachable as f64 / 100.0;
    assert!(failed(one) < 1.5, "{} s of failures", failed(one));
    assert!(failed(six) > 4.5, "{} s of failures", failed(six));
}

#[test]
fn a_higher_healthy_threshold_keeps_a_recovered_endpoint_out_longer() {
    // Back at 15 s; with 8 passes needed it serves some 7 s less.
    let report = health_run("healthy_threshold: [1, 8]");
    let (one, eight) = pair(&report, ["spec healthy_threshold=1", "spec healthy_threshold=8"]);
    let served = |v: &VariantReport| v.endpoints[0].requests as f64;
    let fewer = served(one) - served(eight);
    assert!((fewer / 700.0 - 1.0).abs() < 0.2, "{} vs {}", served(one), served(eight));
    assert_eq!(one.errors, eight.errors, "the ejection is the same");
}

#[test]
fn a_variant_changes_one_limit_and_keeps_each_pool_s_others() {
    let endpoints = vec![EndpointShape { label: "e".into(), weight: 1 }];
    let mut pool = PoolShape::new("p", Balance::RoundRobin, endpoints);
    let own = CircuitLimits { max_connections: 7, max_pending: 5, max_requests: 9 };
    let health = HealthSettings { interval: Duration::from_secs(2), ..HealthSettings::default() };
    pool.rules = PoolRules { circuit: Some(own), health: Some(health), ..PoolRules::default() };

    let variant =
        Variant { max_requests: Some(3), unhealthy_threshold: Some(1), ..Variant::spec() };
    let rules = Gateway::default().with(&variant).pool(&pool);
    let circuit = rules.circuit.unwrap();
    assert_eq!((circuit.max_connections, circuit.max_pending, circuit.max_requests), (7, 5, 3));
    for (variant, want) in [
        (Variant { max_connections: Some(2), ..Variant::spec() }, (2, 5, 9)),
        (Variant { max_pending: Some(1), ..Variant::spec() }, (7, 1, 9)),
    ] {
        let c = Gateway::default().with(&variant).pool(&pool).circuit.unwrap();
        assert_eq!((c.max_connections, c.max_pending, c.max_requests), want);
    }
    let health = rules.health.unwrap();
    assert_eq!((health.interval, health.unhealthy_threshold), (Duration::from_secs(2), 1));

    // A pool with no health checks gets the default ones with the change.
    let plain = PoolShape::new("q", Balance::RoundRobin, Vec::new());
    let rules = Gateway::default().with(&variant).pool(&plain);
    assert_eq!(rules.health.unwrap().interval, HealthSettings::default().interval);
}

#[test]
fn bad_grid_values_are_located_findings() {
    let scenario = "\
version: 1
duration: 5s
arrivals: { rate: 10 }
pools:
  app: { workers: 1, service: { distribution: constant, value: 1ms } }
grid:
  per_try_timeout: [100ms, 0s]
  retry_on: [[timeout], [timeout, 404]]
  health_interval: [soon]
  healthy_threshold: [0]
  unhealthy_threshold: [2, 0]
  ratio_percent: [20]
  max_connections: [0]
  max_pending: [3, 0]
gateway:
  circuit_breaker: { max_connections: 0, max_pending: 2 }
";
    let plan = plan();
    let checked = check_scenario(SourceFile::new("grid.yaml", scenario), Some(&plan));
    assert!(checked.workload.is_none(), "a scenario with errors gives no workload");
    let found: Vec<String> = checked.diagnostics.iter().map(|d| d.one_line()).collect();
    for (place, words) in [
        ("grid.yaml:7:28", "above zero"),
        ("grid.yaml:8:35", "`404` is not a retry condition"),
        ("grid.yaml:9:21", "soon"),
        ("grid.yaml:10:23", "`healthy_threshold` must be at least 1"),
        ("grid.yaml:11:28", "`unhealthy_threshold` must be at least 1"),
        ("grid.yaml:13:21", "`max_connections` must be at least 1"),
        ("grid.yaml:14:20", "`max_pending` must be at least 1"),
        ("grid.yaml:16:39", "`max_connections` must be at least 1"),
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(place) && f.contains(words)),
            "no finding at {place} saying {words}: {found:#?}"
        );
    }
    assert_eq!(found.len(), 8, "{found:#?}");
}

/// A scenario's `gateway:` sections change only the settings they name,
/// over each pool's and route's own; a grid value wins over both.
#[test]
fn gateway_sections_change_only_what_they_name() {
    let spec = common::spec(
        2,
        "    circuit_breaker: { max_connections: 1, max_pending: 4 }
    health_check: { path: /health, interval: 2s, unhealthy_threshold: 4 }
    outlier_detection: { consecutive_failures: 7, base_ejection: 40s }
",
    )
    .replace(
        "    to: app\n",
        "    to: app
    retries: { attempts: 3, on: [timeout, 503], backoff: { base: 5ms } }
    retry_budget: { percent: 30, min_per_second: 2 }
",
    );
    let plan = common::plan(&spec);
    let topology = sluice_simulator::Topology::from_plan(&plan);
    let (pool, route) = (&topology.pools[0], &topology.routes[0]);
    let resolve = |gateway: &str, grid: &str| {
        let scenario = format!(
            "version: 1\nduration: 5s\narrivals: {{ rate: 10 }}\npools:\n  \
             app: {{ workers: 1, service: {{ distribution: constant, value: 1ms }} }}\n\
             gateway: {gateway}\n{grid}"
        );
        let w = common::workload(&plan, "scenario.yaml", &scenario);
        let g = w.gateway.with(&w.variants[0]);
        (g.pool(pool), g.retries(route), g.budget(route))
    };

    let (rules, retries, budget) = resolve(
        "{ circuit_breaker: { max_requests: 1000 }, health_check: { timeout: 1s }, \
         outlier_detection: { max_ejection_percent: 20 }, retries: { per_try_timeout: 1s }, \
         retry_budget: { window: 20s } }",
        "",
    );
    let c = rules.circuit.expect("the spec's breaker stays");
    assert_eq!((c.max_connections, c.max_pending, c.max_requests), (1, 4, 1000));
    let h = rules.health.expect("the spec's health checks stay");
    assert_eq!(
        (h.interval, h.timeout, h.unhealthy_threshold),
        (Duration::from_secs(2), Duration::from_secs(1), 4)
    );
    let o = rules.outlier.expect("the spec's outlier detection stays");
    assert_eq!(
        (o.consecutive_failures, o.base_ejection, o.max_ejection_percent),
        (7, Duration::from_secs(40), 20)
    );
    assert_eq!(retries.attempts, 3);
    assert_eq!((retries.on.timeout, retries.on.statuses.clone()), (true, vec![503]));
    assert_eq!(retries.backoff_base, Duration::from_millis(5));
    let b = budget.expect("the spec's budget stays");
    assert_eq!((b.ratio_percent, b.min_per_second, b.window), (30, 2, Duration::from_secs(20)));

    // Empty sections change nothing.
    let empty = "{ circuit_breaker: {}, health_check: {}, outlier_detection: {}, retries: {}, \
                 retry_budget: {} }";
    let (rules, retries, budget) = resolve(empty, "");
    let spec_only = resolve("{}", "");
    assert_eq!(rules, spec_only.0);
    assert_eq!(retries, spec_only.1);
    assert_eq!(budget, spec_only.2);

    // A grid value wins over the scenario's for the same setting, and
    // leaves the others to it.
    let (rules, ..) = resolve(
        "{ circuit_breaker: { max_connections: 50, max_requests: 1000 } }",
        "grid: { max_connections: [9] }\n",
    );
    let c = rules.circuit.unwrap();
    assert_eq!((c.max_connections, c.max_pending, c.max_requests), (9, 4, 1000));

    // A pool or route without the feature gets its defaults with the change.
    let bare = common::plan(&common::spec(2, ""));
    let bare = sluice_simulator::Topology::from_plan(&bare);
    let scenario = "version: 1\nduration: 5s\narrivals: { rate: 10 }\npools:\n  \
                    app: { workers: 1, service: { distribution: constant, value: 1ms } }\n\
                    gateway: { circuit_breaker: { max_pending: 3 }, health_check: {}, \
                    retry_budget: { ratio_percent: 5 } }\n";
    let w = common::workload(&common::plan(&common::spec(2, "")), "s.yaml", scenario);
    let rules = w.gateway.pool(&bare.pools[0]);
    let c = rules.circuit.unwrap();
    assert_eq!((c.max_connections, c.max_pending, c.max_requests), (u32::MAX, 3, u32::MAX));
    assert_eq!(rules.health, Some(HealthSettings::default()));
    assert_eq!(rules.outlier, None);
    let b = w.gateway.budget(&bare.routes[0]).unwrap();
    assert_eq!((b.ratio_percent, b.min_per_second), (5, 10));
}
