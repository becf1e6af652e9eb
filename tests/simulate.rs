//! `sluice simulate` as a user runs it: the real binary on the example
//! platform spec and scenario.

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

const SPEC: &str = "specs/platform.yaml";
const SCENARIO: &str = "specs/platform.scenario.yaml";
const VARIANTS: [&str; 5] =
    ["spec", "round_robin", "weighted_round_robin", "random", "least_request"];

fn sluice() -> Command {
    Command::cargo_bin("sluice").expect("the sluice binary is built for tests")
}

/// Run `simulate` on the example files with extra arguments; stdout on success.
fn simulate(extra: &[&str]) -> String {
    let out =
        sluice().args(["simulate", SPEC, "--scenario", SCENARIO]).args(extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status.code());
    assert!(stderr.is_empty(), "the example scenario has no findings: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_same_seed_prints_the_same_table_and_another_seed_does_not() {
    let first = simulate(&[]);
    assert_eq!(first, simulate(&[]), "two runs with the scenario's seed differ");
    assert_ne!(first, simulate(&["--seed", "7"]), "a different seed gave the same table");

    for variant in VARIANTS {
        assert!(first.lines().any(|l| l.starts_with(variant)), "no row for {variant}:\n{first}");
    }
    assert!(first.starts_with("seed 42, 1200 req/s"), "{first}");
    assert!(first.contains("utilisation  endpoint"), "{first}");
    assert!(first.contains("search       127.0.0.1:9143"), "{first}");
}

#[test]
fn json_carries_every_variant_over_the_same_arrivals() {
    let text = simulate(&["--format", "json", "--seed", "3"]);
    assert_eq!(text, simulate(&["--format", "json", "--seed", "3"]));
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["seed"], 3);
    assert_eq!(report["warmup_ns"], 5_000_000_000u64);
    assert_eq!(report["measured_ns"], 55_000_000_000u64);

    let variants = report["variants"].as_array().unwrap();
    let names: Vec<&str> = variants.iter().map(|v| v["variant"].as_str().unwrap()).collect();
    assert_eq!(names, VARIANTS);
    for v in variants {
        // Common random numbers: every variant sees the same arrivals.
        assert_eq!(v["requests"], variants[0]["requests"]);
        let l = &v["latency"];
        assert!(l["p50_ns"].as_u64() <= l["p99_ns"].as_u64(), "{l}");
        assert!(l["p99_ns"].as_u64() <= l["p99_9_ns"].as_u64(), "{l}");
        assert_eq!(v["routes"].as_array().unwrap().len(), 23);
        for e in v["endpoints"].as_array().unwrap() {
            let u = e["utilisation"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&u), "{e}");
        }
    }
    // Arrivals are about 1200/s over the 55 measured seconds.
    let requests = variants[0]["requests"].as_f64().unwrap();
    assert!((requests / 66_000.0 - 1.0).abs() < 0.02, "{requests}");
}

#[test]
fn a_scenario_with_errors_is_refused_with_located_findings() {
    let dir = tempfile::tempdir().unwrap();
    let bad: PathBuf = dir.path().join("bad.scenario.yaml");
    let text = std::fs::read_to_string(SCENARIO).unwrap().replace("route: deal,", "route: dael,");
    std::fs::write(&bad, text).unwrap();

    let out = sluice().args(["simulate", SPEC, "--scenario"]).arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("S0401") && stderr.contains("unknown route `dael`"), "{stderr}");
    assert!(stderr.contains("bad.scenario.yaml:26:14]"), "{stderr}");
}

#[test]
fn unreadable_inputs_exit_3() {
    let out =
        sluice().args(["simulate", "specs/missing.yaml", "--scenario", SCENARIO]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out =
        sluice().args(["simulate", SPEC, "--scenario", "specs/missing.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn check_accepts_the_example_scenario() {
    let out = sluice().args(["check", SPEC, "--scenario", SCENARIO]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_library_scenario_checks_clean_and_runs() {
    let mut names: Vec<PathBuf> = std::fs::read_dir("specs/scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    for path in names {
        let out = sluice().args(["check", SPEC, "--scenario"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let clean = out.status.success() && !stderr.contains("warning");
        assert!(clean, "{}: {stderr}", path.display());
        let out = sluice()
            .args(["simulate", SPEC, "--format", "json", "--scenario"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", path.display());
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["variants"].as_array().unwrap().len(), 3, "{}", path.display());
    }
}

#[test]
fn a_failed_budget_exits_1_and_names_the_variant() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = sluice()
        .args(["simulate", SPEC, "--scenario", "specs/scenarios/black-hole.yaml", "--report"])
        .arg(&html)
        .args(["--assert", "errors < 0.01%", "--assert", "p99.9 < 1h"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("budget failed: variant `round_robin` fails `errors < 0.01%`"),
        "{stderr}"
    );
    assert!(!stderr.contains("p99.9"), "{stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"), "no charts");
    assert!(!page.contains("src=") && !page.contains("href="), "external assets");
    assert!(page.contains("black_hole contacts"), "the event is not marked");
}

#[test]
fn csv_and_replications_carry_every_variant() {
    let csv = simulate(&["--format", "csv", "--replications", "2"]);
    assert_eq!(csv.lines().count(), 1 + VARIANTS.len(), "{csv}");
    let table = simulate(&["--replications", "2"]);
    assert!(table.contains("2 replications") && table.contains('±'), "{table}");
}
