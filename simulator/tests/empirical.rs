//! An `empirical` service law read from a file of observed latencies, end
//! to end through the library: the simulated service times are the file's,
//! and a file that cannot be used is a located finding.

use std::path::PathBuf;

use sluice_compiler::diagnostic::Diagnostic;
use sluice_compiler::document::SourceFile;
use sluice_simulator::{check_scenario, simulate, Report, Topology};

mod common;

/// One route to one endpoint.
fn one() -> sluice_compiler::Plan {
    common::plan(&common::spec(1, ""))
}

const MS: f64 = 1e6;

/// A directory of this test's own, emptied first.
fn dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empirical").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `scenario`, written as `scenario.yaml` in `dir` (where its latency file
/// is), and its path.
fn write(dir: &std::path::Path, scenario: &str) -> String {
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, scenario).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Check `scenario`, written in `dir`, against [`one`].
fn check(dir: &std::path::Path, scenario: &str) -> sluice_simulator::CheckedScenario {
    check_scenario(SourceFile::new(write(dir, scenario), scenario), Some(&one()))
}

fn run(dir: &std::path::Path, scenario: &str) -> Report {
    let plan = one();
    let workload = common::workload(&plan, &write(dir, scenario), scenario);
    simulate(&Topology::from_plan(&plan), &workload, workload.seed.unwrap_or(0))
}

/// 1,000 observed latencies, skewed as real ones are: most between 2 and
/// 10 ms, a tail to about 200 ms. Written in several units, with comments
/// and blank lines, as a file put together by hand would be. Returns the
/// file's text and its values in nanoseconds.
fn observed() -> (String, Vec<u64>) {
    let mut text = String::from("# GET /v1/contacts, one latency per line\n\n");
    let mut values = Vec::new();
    for i in 0..1_000u64 {
        // A smooth skewed law by inversion at evenly spaced ranks: 2 ms
        // plus a log-normal-like body, with a power-law tail.
        let u = (i as f64 + 0.5) / 1_000.0;
        let ms = 2.0 + 3.0 * (-(1.0 - u).ln()) + 0.5 / (1.0 - u).sqrt();
        let us = (ms * 1_000.0).round() as u64;
        let line = match i % 3 {
            0 => format!("{us}us"),
            1 => format!("{}.{:03}ms", us / 1_000, us % 1_000),
            _ => format!("{}.{:06}s # seconds, too", us / 1_000_000, us % 1_000_000),
        };
        text.push_str(&line);
        text.push('\n');
        values.push(us * 1_000);
    }
    values.sort_unstable();
    (text, values)
}

fn scenario(rate: u32, workers: u32, requests: u32, seed: u32) -> String {
    format!(
        "version: 1\nseed: {seed}\nrequests: {requests}\nwarmup: 1s\narrivals: {{ rate: {rate} }}\n\
         pools:\n  app:\n    workers: {workers}\n    \
         service: {{ distribution: empirical, file: observed.txt }}\n"
    )
}

#[test]
fn simulated_service_times_have_the_files_mean_and_p99() {
    // 1,000 workers at 200 requests per second of 6 ms each on average:
    // some 1.2 busy, so no request ever waits and each latency is its
    // service time, drawn from the file with replacement. Over 200,000
    // draws the mean is within 1% of the file's (its standard error is
    // about 0.15%). The file puts exactly 1% of its mass from its 991st
    // value up, so the draws' p99 is the file's 990th value or one of its
    // neighbours (the rank moves by under 0.1% at three standard errors),
    // values about 2.5% apart here; the report's histogram rounds by
    // under 0.1%.
    let dir = dir("direct");
    let (text, values) = observed();
    std::fs::write(dir.join("observed.txt"), text).unwrap();
    let report = run(&dir, &scenario(200, 1_000, 200_000, 3));
    let v = &report.variants[0];
    assert_eq!(v.requests, 200_000);
    assert_eq!(v.succeeded, 200_000);

    let mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
    let got_mean = v.latency.mean_ns as f64;
    let off = (got_mean / mean - 1.0).abs();
    assert!(off < 0.01, "mean {:.3} ms, file {:.3} ms", got_mean / MS, mean / MS);
    let (low, high) = (values[988] as f64 * 0.999, values[990] as f64 * 1.001);
    let got_p99 = v.latency.p99_ns as f64;
    assert!(
        (low..=high).contains(&got_p99),
        "p99 {:.3} ms, the file's 99th percentile {:.3} ms (from {:.3} to {:.3} allowed)",
        got_p99 / MS,
        values[989] as f64 / MS,
        low / MS,
        high / MS
    );
    // Nothing outside the file's range.
    assert!(v.latency.max_ns <= *values.last().unwrap() + values.last().unwrap() / 1_000);
}

#[test]
fn an_empirical_mg1_queue_follows_pollaczek_khinchine() {
    // One worker at utilisation 0.6: M/G/1, whose mean sojourn depends on
    // the law's first two moments, W = E[S] + lambda E[S^2] / (2 (1 - rho)),
    // so a file read wrongly (a unit, a dropped line) shows here too.
    // Tolerance over 300,000 requests: 2%, over four standard deviations
    // (the mean's was 0.45% over eight seeds).
    let dir = dir("mg1");
    let (text, values) = observed();
    std::fs::write(dir.join("observed.txt"), text).unwrap();
    let n = values.len() as f64;
    let s1 = values.iter().map(|&v| v as f64 / MS).sum::<f64>() / n;
    let s2 = values.iter().map(|&v| (v as f64 / MS).powi(2)).sum::<f64>() / n;
    // Utilisation 0.6, at a whole number of requests per second.
    let rate = (600.0 / s1).round() as u32;
    let lambda = f64::from(rate) / 1_000.0; // per ms
    let want = s1 + lambda * s2 / (2.0 * (1.0 - lambda * s1));

    let report = run(&dir, &scenario(rate, 1, 300_000, 5));
    let got = report.variants[0].latency.mean_ns as f64 / MS;
    assert!((got / want - 1.0).abs() < 0.02, "M/G/1 mean {got:.3} ms, theory {want:.3} ms");
}

/// The one finding of checking a scenario whose latency file holds `text`.
fn finding(name: &str, text: &[u8]) -> Diagnostic {
    let dir = dir(name);
    std::fs::write(dir.join("observed.txt"), text).unwrap();
    let checked = check(&dir, &scenario(100, 1, 1_000, 1));
    assert!(checked.workload.is_none(), "{name}: the scenario was accepted");
    let [d] = &checked.diagnostics[..] else {
        panic!("{name}: expected one finding, got {:?}", checked.diagnostics);
    };
    d.clone()
}

#[test]
fn a_latency_file_that_cannot_be_used_is_a_located_error() {
    // The scenario's `file:` is on line 9; the finding points there, names
    // the file and, for a bad line, its number and text.
    let cases: [(&str, &[u8], &[&str]); 10] = [
        ("empty", b"", &["observed.txt", "no service times"]),
        ("mark only", b"\xef\xbb\xbf", &["observed.txt", "no service times"]),
        ("comments", b"# nothing measured yet\n\n   \n", &["observed.txt", "no service times"]),
        ("no unit", b"12ms\n12.5\n", &["observed.txt", "line 2", "12.5"]),
        ("not a time", b"3ms\n4ms\nn/a # lost\n", &["line 3", "`n/a` is not a duration"]),
        ("negative", b"-5ms\n", &["observed.txt", "line 1", "`-5ms` is not a duration"]),
        ("no number", b"ms\n", &["observed.txt", "line 1", "`ms` is not a duration"]),
        ("huge", b"1ms\n99999999999999999999999h\n", &["observed.txt", "line 2"]),
        ("binary", b"\xff\xfe1ms\n", &["observed.txt"]),
        ("all zero", b"0ms\n0s\n", &["every service time in `observed.txt` is 0"]),
    ];
    for (name, text, wants) in cases {
        let d = finding(name, text);
        let line = d.one_line();
        assert!(line.contains("error[S0418"), "{name}: {line}");
        assert!(line.contains("scenario.yaml:9:"), "{name}: not located at `file:`: {line}");
        for want in wants {
            assert!(d.message.contains(want), "{name}: no `{want}` in {line}");
        }
    }
}

#[test]
fn a_latency_file_may_start_with_a_byte_order_mark_and_end_lines_with_crlf() {
    let dir = dir("exported");
    std::fs::write(dir.join("observed.txt"), "\u{feff}2ms\r\n4ms\r\n# done\r\n").unwrap();
    let report = run(&dir, &scenario(50, 100, 2_000, 1));
    let mean = report.variants[0].latency.mean_ns as f64 / MS;
    assert!((mean - 3.0).abs() < 0.1, "mean {mean} ms of 2 ms and 4 ms drawn alike");
}
