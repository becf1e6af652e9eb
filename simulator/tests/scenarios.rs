//! Scenarios end to end through the library: a spec and a scenario file in,
//! a report out, with assertions drawn from the scenario's own settings.

use sluice_simulator::report::{Point, VariantReport};
use sluice_simulator::Report;

mod common;

/// One route to a pool of four equal endpoints, balanced round robin.
fn four() -> String {
    common::spec(4, "    balance: round_robin\n")
}

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;

/// Run `scenario` against the four-endpoint spec with the scenario's seed.
fn run(scenario: &str) -> Report {
    common::run(&four(), scenario)
}

/// The start of the first and the end of the last series step with errors,
/// among steps that start at or after `from`.
fn error_window(v: &VariantReport, from: u64) -> Option<(u64, u64)> {
    let step = v.series.get(1).map_or(1, |p| p.at_ns);
    let with: Vec<&Point> = v.series.iter().filter(|p| p.at_ns >= from && p.errors > 0).collect();
    Some((with.first()?.at_ns, with.last()?.at_ns + step))
}

fn errors_between(v: &VariantReport, from: u64, until: u64) -> u64 {
    v.series.iter().filter(|p| p.at_ns >= from && p.at_ns < until).map(|p| p.errors).sum()
}

fn answered_between(v: &VariantReport, from: u64, until: u64) -> f64 {
    let step = v.series.get(1).map_or(1, |p| p.at_ns) as f64 / SECOND as f64;
    v.series
        .iter()
        .filter(|p| p.at_ns >= from && p.at_ns < until)
        .map(|p| p.throughput * step)
        .sum()
}

/// One of four endpoints crashes at 2 s, under health checks every 250 ms
/// that take an endpoint out after two failures, and no retries.
const CRASH: &str = "\
version: 1
seed: 5
duration: 4s
warmup: 1s
arrivals: { rate: 1000 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { attempts: 1 }
  health_check: { interval: 250ms, jitter: 0s, timeout: 100ms, unhealthy_threshold: 2 }
events:
  - { at: 2s, action: crash, pool: app, endpoint: \"3\" }
";

#[test]
fn a_crash_fails_requests_only_until_health_checks_eject_the_endpoint() {
    // One of four endpoints crashes at 2 s. Probes every 250 ms without
    // jitter, and two failures make an endpoint unhealthy: the first failing
    // probe comes within 250 ms of the crash, the second 250 ms later, so
    // the crashed endpoint gets a quarter of the requests for at most
    // threshold x interval = 500 ms, and none after.
    let report = run(CRASH);
    let v = &report.variants[0];
    let step = v.series[1].at_ns;
    assert_eq!(step, 40 * MS, "a 4 s run has 40 ms steps");
    let (crash, window) = (2 * SECOND, 500 * MS);

    // Errors begin with the crash and end within the detection window.
    let (first, last) = error_window(v, SECOND).expect("the crash fails some requests");
    assert_eq!(first, crash, "errors start in the step of the crash");
    assert!(last <= crash + window + step, "errors until {last} ns, past the window");
    assert!(last > crash + 250 * MS - step, "one failing probe cannot eject: {last} ns");

    // They are connection failures (502), a quarter of the traffic at most.
    assert_eq!(v.errors.total(), v.errors.unreachable, "{:?}", v.errors);
    let most = 1_000.0 * 0.5 / 4.0 * 1.3;
    assert!((v.errors.unreachable as f64) < most, "{} > {most}", v.errors.unreachable);
    assert_eq!(errors_between(v, crash + window + step, 4 * SECOND), 0);
    // The three endpoints left carry the load after the ejection.
    assert!(v.endpoints[3].utilisation < 0.5 * v.endpoints[0].utilisation, "{:?}", v.endpoints);
}

#[test]
fn the_spec_s_panic_threshold_keeps_a_crashed_endpoint_in_rotation() {
    // The crash of the test above, on a pool whose panic threshold is 80 %:
    // with three of four endpoints healthy (75 %), the balancer spreads over
    // all four, as `serve` would, so the crashed one goes on failing its
    // share after the health checks have marked it down.
    let spec = common::spec(4, "    balance: round_robin\n    panic_threshold_percent: 80\n");
    let report = common::run(&spec, CRASH);
    let v = &report.variants[0];
    let (crash, window) = (2 * SECOND, 500 * MS);
    let late = errors_between(v, crash + window + v.series[1].at_ns, 4 * SECOND) as f64;
    // About a quarter of 1,000 requests a second for the last 1.4 s.
    assert!(late > 0.25 * 1_000.0 * 1.4 * 0.7, "{late} errors after the ejection");
}

#[test]
fn outlier_detection_ejects_a_crashed_endpoint_within_a_few_failures() {
    // Three consecutive connection failures eject; the crashed endpoint gets
    // about 250 requests a second, so it is out within a few milliseconds.
    let report = run("\
version: 1
seed: 6
duration: 4s
warmup: 1s
arrivals: { rate: 1000 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { attempts: 1 }
  outlier_detection: { consecutive_connect_failures: 3, base_ejection: 30s }
events:
  - { at: 2s, action: crash, pool: app, endpoint: \"1\" }
");
    let v = &report.variants[0];
    let step = v.series[1].at_ns;
    let (first, last) = error_window(v, SECOND).expect("the crash fails some requests");
    assert_eq!((first, last), (2 * SECOND, 2 * SECOND + step), "errors in one step only");
    // The tries in flight at the crash are reset, and three more fail to connect.
    assert!(v.errors.unreachable <= 3 + 8, "{:?}", v.errors);
}

/// Overload for 5 s (a burst to 1.5 times a 62.5% load), then the normal rate.
/// Per-try timeouts of 120 ms retried twice, at once, with or without a budget
/// of 10% of requests (plus 5 a second).
const RETRY_STORM: &str = "\
version: 1
seed: 3
duration: 40s
warmup: 5s
arrivals: { rate: 250, bursts: [{ at: 10s, length: 5s, factor: 1.5 }] }
pools:
  app: { workers: 1, service: { distribution: exponential, mean: 10ms } }
gateway:
  timeout: 2s
  retries: { attempts: 3, on: [timeout], per_try_timeout: 120ms, backoff: 0s }
  retry_budget: { ratio_percent: 10, min_per_second: 5 }
grid:
  attempts: [1, 3]
  retry_budget: [false, true]
";

#[test]
fn retries_without_a_budget_turn_a_burst_into_an_outage_and_with_one_do_not() {
    let report = run(RETRY_STORM);
    let names: Vec<&str> = report.variants.iter().map(|v| v.variant.as_str()).collect();
    assert_eq!(
        names,
        [
            "spec attempts=1 budget=off",
            "spec attempts=1 budget=on",
            "spec attempts=3 budget=off",
            "spec attempts=3 budget=on"
        ]
    );
    let (none, unbounded, budgeted) =
        (&report.variants[0], &report.variants[2], &report.variants[3]);
    let utilisation = |v: &VariantReport| {
        v.endpoints.iter().map(|e| e.utilisation).sum::<f64>() / v.endpoints.len() as f64
    };
    let tries = |v: &VariantReport| 1.0 + v.retries as f64 / v.requests as f64;
    // After the burst, from 25 s to the end: the normal rate, 62.5% load.
    let after = |v: &VariantReport| {
        let answered = answered_between(v, 25 * SECOND, 40 * SECOND);
        errors_between(v, 25 * SECOND, 40 * SECOND) as f64 / answered.max(1.0)
    };

    // Without a budget, timed-out tries stay on the endpoints while their
    // retries add more: every request costs nearly three tries, the
    // endpoints saturate, and the overload outlives the burst.
    assert!(tries(unbounded) > 2.3, "{} tries per request", tries(unbounded));
    assert!(utilisation(unbounded) > 0.9, "{}", utilisation(unbounded));
    assert!(after(unbounded) > 0.5, "{} of requests fail after the burst", after(unbounded));

    // With a budget, retries stay within it, load stays near the offered
    // 62.5% plus the burst, and the system recovers when the burst ends.
    let seconds = 35.0;
    let allowed = 0.10 + 5.0 * seconds / budgeted.requests as f64;
    assert!(tries(budgeted) - 1.0 <= allowed, "{} retries per request", tries(budgeted) - 1.0);
    assert!(utilisation(budgeted) < 0.8, "{}", utilisation(budgeted));
    assert!(after(budgeted) < 0.05, "{} of requests fail after the burst", after(budgeted));
    assert!(after(none) < 0.05, "without retries the system recovers too");
    assert!(budgeted.error_rate() < unbounded.error_rate() / 3.0);
}

#[test]
fn closed_loop_clients_follow_the_response_time_law() {
    // N clients, think Z, response R: throughput X = N / (R + Z). With
    // more workers than clients nothing waits, so R is the service time.
    let report = run("\
version: 1
seed: 2
duration: 60s
warmup: 5s
arrivals: { clients: 40, think: 30ms }
pools:
  app: { workers: 20, service: { distribution: exponential, mean: 10ms } }
");
    let v = &report.variants[0];
    let r = v.latency.mean_ns as f64 / MS as f64;
    assert!((r / 10.0 - 1.0).abs() < 0.03, "no waiting, so R is the 10 ms service: {r}");
    let want = 40.0 / ((r + 30.0) / 1e3);
    assert!((v.throughput / want - 1.0).abs() < 0.02, "{} vs {want}", v.throughput);
    assert_eq!(report.arrivals, "40 closed-loop clients, 30.00ms think time");
}

#[test]
fn closed_loop_clients_saturate_a_small_pool_without_overloading_it() {
    // 100 clients against 4 workers: throughput is the pool's capacity
    // (400/s), and response time grows to N / X - Z instead of without bound.
    let report = run("\
version: 1
seed: 2
duration: 30s
warmup: 5s
arrivals: { clients: 100 }
pools:
  app: { workers: 1, service: { distribution: constant, value: 10ms } }
");
    let v = &report.variants[0];
    assert!((v.throughput / 400.0 - 1.0).abs() < 0.01, "{}", v.throughput);
    let r = v.latency.mean_ns as f64 / MS as f64;
    assert!((r / 250.0 - 1.0).abs() < 0.02, "R = N / X = 250 ms, got {r}");
    assert_eq!(v.errors.total(), 0);
}

#[test]
fn events_change_what_endpoints_answer() {
    // Endpoint 0 fails 40% from 2 s; 1 fails fast from 4 s; 2 is a black
    // hole from 6 s (a 100 ms route timeout answers 504); all recover at 8 s.
    let report = run("\
version: 1
seed: 4
duration: 10s
arrivals: { rate: 400 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  timeout: 100ms
  retries: { attempts: 1 }
events:
  - { at: 2s, action: fail, pool: app, endpoint: \"0\", share: 0.4 }
  - { at: 4s, action: fail_fast, pool: app, endpoint: \"1\" }
  - { at: 6s, action: black_hole, pool: app, endpoint: \"2\" }
  - { at: 8s, action: recover, pool: app, endpoint: \"0\" }
  - { at: 8s, action: recover, pool: app, endpoint: \"1\" }
  - { at: 8s, action: recover, pool: app, endpoint: \"2\" }
");
    let v = &report.variants[0];
    assert_eq!(report.events.len(), 6);
    assert_eq!(report.events[0].label, "fail app 127.0.0.1:9001");
    assert_eq!(errors_between(v, 0, 2 * SECOND), 0);
    assert_eq!(errors_between(v, 8 * SECOND + 100 * MS, 10 * SECOND), 0);

    // Fail: 40% of a quarter of 400/s for 6 s, then fail fast: all of a
    // quarter for 4 s; both are the endpoint's own 5xx.
    let want = 400.0 / 4.0 * (0.4 * 6.0 + 4.0);
    let got = v.errors.upstream_5xx as f64;
    assert!((got / want - 1.0).abs() < 0.1, "{got} 5xx, expected about {want}");
    // The black hole swallows a quarter of 2 s of requests, each a 504 at 100 ms.
    let want = 400.0 / 4.0 * 2.0;
    let got = v.errors.timeout as f64;
    assert!((got / want - 1.0).abs() < 0.1, "{got} timeouts, expected about {want}");
    assert_eq!(v.latency.max_ns, 100 * MS, "nothing waits past the route timeout");
}

#[test]
fn a_slow_endpoint_and_a_rolling_deploy_show_in_utilisation_and_errors() {
    let slow = run("\
version: 1
seed: 4
duration: 20s
warmup: 2s
arrivals: { rate: 400 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
events:
  - { at: 0s, action: slow, pool: app, endpoint: \"2\", factor: 10 }
");
    let e = &slow.variants[0].endpoints;
    // Round robin sends it a quarter regardless: ten times the busy time.
    let ratio = e[2].utilisation / e[0].utilisation;
    assert!((ratio / 10.0 - 1.0).abs() < 0.1, "{ratio}");

    // A rolling deploy takes each endpoint down for 1 s, one every 2 s; with
    // retries on connection failures every request still succeeds.
    let deploy = run("\
version: 1
seed: 4
duration: 12s
warmup: 1s
arrivals: { rate: 400 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { attempts: 3, on: [connect_failure, reset] }
events:
  - { at: 2s, action: rolling_deploy, pool: app, down: 1s, every: 2s }
");
    let v = &deploy.variants[0];
    assert_eq!(deploy.events.len(), 8, "a crash and a recovery per endpoint");
    assert_eq!(v.errors.total(), 0, "{:?}", v.errors);
    assert!(v.retries > 0);
}

#[test]
fn retries_route_around_a_failing_endpoint() {
    // One endpoint answers 500 to half its requests. Without retries an
    // eighth of requests fail; with 3 attempts on 500, a retry goes to
    // another endpoint, and almost none do.
    let scenario = "\
version: 1
seed: 8
duration: 10s
warmup: 1s
arrivals: { rate: 400 }
pools:
  app: { workers: 4, service: { distribution: exponential, mean: 2ms } }
gateway:
  retries: { on: [500] }
grid:
  attempts: [1, 3]
events:
  - { at: 0s, action: fail, pool: app, endpoint: \"0\", share: 0.5 }
";
    let report = run(scenario);
    let (once, thrice) = (&report.variants[0], &report.variants[1]);
    assert!((once.error_rate() / 0.125 - 1.0).abs() < 0.1, "{}", once.error_rate());
    assert_eq!(once.retries, 0);
    assert!(thrice.error_rate() < 0.001, "{}", thrice.error_rate());
    // Each failed first try was retried once, on a healthy endpoint.
    let ratio = thrice.retries as f64 / thrice.requests as f64;
    assert!((ratio / 0.125 - 1.0).abs() < 0.1, "{ratio}");
}

#[test]
fn circuit_breakers_shed_load_per_gateway_instance() {
    // Four endpoints of 4 workers at 90% load hold about 45 requests in
    // flight on average. A breaker of 40 requests per gateway instance sheds
    // some with 503 when one instance sees them all; spread over four
    // instances, each sees about a quarter, and the same per-instance limit
    // (160 for the pool in effect) sheds almost nothing.
    let scenario = |instances: u32| {
        format!(
            "\
version: 1
seed: 9
duration: 20s
warmup: 2s
arrivals: {{ rate: 360 }}
pools:
  app: {{ workers: 4, service: {{ distribution: exponential, mean: 40ms }} }}
gateway:
  instances: {instances}
  circuit_breaker: {{ max_requests: 40 }}
"
        )
    };
    let one = run(&scenario(1));
    let four = run(&scenario(4));
    let (one, four) = (&one.variants[0], &four.variants[0]);
    assert!(one.errors.breaker > 100, "{:?}", one.errors);
    assert_eq!(one.errors.total(), one.errors.breaker, "only the breaker fails requests");
    assert!(four.errors.breaker < one.errors.breaker / 10, "{:?} vs {:?}", four.errors, one.errors);
}
