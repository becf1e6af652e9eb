//! Replications: each figure of a replicated run is the mean (or, for a
//! count, the sum) of independent runs, with a Student-t 95% confidence
//! half-width beside it.

use sluice_simulator::report::VariantReport;
use sluice_simulator::{replication_seed, simulate, simulate_replicated, Topology};

mod common;

/// lambda = 800/s and mu = 1000/s per endpoint: W = 1 / (mu - lambda) = 5 ms.
const MM1: &str = "\
version: 1
seed: 11
duration: 42s
warmup: 2s
arrivals: { rate: 3200 }
pools:
  app: { workers: 1, service: { distribution: exponential, mean: 1ms } }
";

const N: u32 = 5;

/// A figure of one run.
type Figure = fn(&VariantReport) -> f64;
/// Student's t, 97.5% quantile, 4 degrees of freedom.
const T4: f64 = 2.776;

/// One route to four equal endpoints picked at random, so that each sees
/// Poisson arrivals (a random split of a Poisson stream) and is an M/M/1
/// queue; and the scenario [`MM1`].
fn setup() -> (Topology, sluice_simulator::Workload) {
    let plan = common::plan(&common::spec(4, "    balance: random\n"));
    (Topology::from_plan(&plan), common::workload(&plan, "mm1.yaml", MM1))
}

/// Mean and Student-t half-width of `xs`, computed here independently.
fn mean_and_half(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let s2 = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, T4 * (s2 / n).sqrt())
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

#[test]
fn every_figure_is_the_mean_of_its_replications_with_a_student_t_interval() {
    let (topology, workload) = setup();
    let seed = 11;
    let combined = simulate_replicated(&topology, &workload, seed, N);
    let runs: Vec<VariantReport> = (0..N)
        .map(|k| simulate(&topology, &workload, replication_seed(seed, k)).variants.remove(0))
        .collect();
    let v = &combined.variants[0];
    let ci = v.interval.expect("an interval with two replications or more");

    // Means, with the half-width of the mean.
    let figures: [(&str, Figure, f64, f64); 6] = [
        ("throughput", |r| r.throughput, v.throughput, ci.throughput),
        ("mean", |r| r.latency.mean_ns as f64, v.latency.mean_ns as f64, ci.mean_ns),
        ("p50", |r| r.latency.p50_ns as f64, v.latency.p50_ns as f64, ci.p50_ns),
        ("p99", |r| r.latency.p99_ns as f64, v.latency.p99_ns as f64, ci.p99_ns),
        ("p99.9", |r| r.latency.p99_9_ns as f64, v.latency.p99_9_ns as f64, ci.p99_9_ns),
        ("success", |r| r.success_rate(), v.success_rate(), ci.success_rate),
    ];
    for (name, f, point, half) in figures {
        let xs: Vec<f64> = runs.iter().map(f).collect();
        let (mean, want) = mean_and_half(&xs);
        assert!(
            (point - mean).abs() <= 0.5 + 1e-9 * mean,
            "{name}: {point} is not the mean {mean}"
        );
        close(half, want, name);
    }
    assert!(ci.throughput > 0.0 && ci.mean_ns > 0.0 && ci.p99_ns > 0.0 && ci.p99_9_ns > 0.0);

    // Counts add up, and their half-width is N times the mean's.
    let requests: Vec<f64> = runs.iter().map(|r| r.requests as f64).collect();
    assert_eq!(v.requests as f64, requests.iter().sum::<f64>());
    close(ci.requests, f64::from(N) * mean_and_half(&requests).1, "requests");
    assert!(ci.requests > 0.0, "Poisson arrivals vary from seed to seed");

    // Per endpoint: utilisation is a mean, requests add up.
    for (i, e) in v.endpoints.iter().enumerate() {
        let xs: Vec<f64> = runs.iter().map(|r| r.endpoints[i].utilisation).collect();
        let (mean, want) = mean_and_half(&xs);
        close(e.utilisation, mean, "utilisation");
        close(e.utilisation_ci95.expect("an endpoint interval"), want, "utilisation half-width");
        let served: u64 = runs.iter().map(|r| r.endpoints[i].requests).sum();
        assert_eq!(e.requests, served);
    }
    let route = &v.routes[0];
    let p99s: Vec<f64> = runs.iter().map(|r| r.routes[0].latency.p99_ns as f64).collect();
    close(route.interval.expect("a route interval").p99_ns, mean_and_half(&p99s).1, "route p99");

    // The interval of the mean sojourn time covers M/M/1's 5 ms and that of
    // the utilisation covers 0.8; each is narrow.
    let (mean, half) = (v.latency.mean_ns as f64, ci.mean_ns);
    assert!((mean - half..=mean + half).contains(&5e6), "5ms not in {mean} ± {half}");
    assert!(half < 0.05 * mean, "{mean} ± {half}");
    for e in &v.endpoints {
        let h = e.utilisation_ci95.unwrap();
        assert!((e.utilisation - h..=e.utilisation + h).contains(&0.8), "{e:?}");
    }
}

#[test]
fn one_replication_has_no_interval() {
    let (topology, workload) = setup();
    let report = simulate_replicated(&topology, &workload, 3, 1);
    let v = &report.variants[0];
    assert!(v.interval.is_none());
    assert!(v.routes.iter().all(|r| r.interval.is_none()));
    assert!(v.endpoints.iter().all(|e| e.utilisation_ci95.is_none()));
    let json = report.to_json();
    assert!(!json.contains("interval") && !json.contains("ci95"), "{json}");
}
