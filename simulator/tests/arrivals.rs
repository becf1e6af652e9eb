//! Open-loop arrivals follow their rate profile: the number of requests in
//! a run is the integral of the rate over it, for constant spacing within
//! a handful of requests, for Poisson arrivals within a few standard
//! deviations.

mod common;

/// 100/s for 10 s, a 10 s ramp to 300/s, held to 40 s with a burst doubling
/// it from 30 s to 35 s, then a step back to 100/s to the end at 60 s:
/// 1000 + 2000 + 6000 + 1500 + 2000 = 12,500 requests.
const EXPECTED: f64 = 12_500.0;

fn requests(pattern: &str, seed: u64) -> f64 {
    let scenario = format!(
        "\
version: 1
seed: {seed}
duration: 60s
warmup: 0s
arrivals:
  rate: 100
  pattern: {pattern}
  changes: [{{ at: 10s, rate: 300, ramp: 10s }}, {{ at: 40s, rate: 100 }}]
  bursts: [{{ at: 30s, length: 5s, factor: 2 }}]
pools:
  app: {{ workers: 64, service: {{ distribution: constant, value: 1ms }} }}
"
    );
    // The scenario's seed is `seed`.
    common::run(&common::spec(1, ""), &scenario).variants[0].requests as f64
}

#[test]
fn constant_arrivals_match_the_integral_of_their_rate() {
    let got = requests("constant", 1);
    assert!((got - EXPECTED).abs() <= 5.0, "{got} requests, the integral is {EXPECTED}");
}

#[test]
fn poisson_arrivals_match_the_integral_of_their_rate() {
    // A Poisson count has standard deviation sqrt(12,500), about 112:
    // each seed within 4 of them, and the mean of five within 2.
    let counts: Vec<f64> = (1..=5).map(|seed| requests("poisson", seed)).collect();
    let sd = EXPECTED.sqrt();
    for &got in &counts {
        assert!((got - EXPECTED).abs() < 4.0 * sd, "{got} requests, the integral is {EXPECTED}");
    }
    let mean = counts.iter().sum::<f64>() / counts.len() as f64;
    assert!((mean - EXPECTED).abs() < 2.0 * sd / 5f64.sqrt(), "{counts:?}");
}
