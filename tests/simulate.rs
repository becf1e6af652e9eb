//! `sluice simulate` as a user runs it: the real binary on the example
//! platform spec and scenario, and on the access log of a real `serve` run.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use support::{client, request, send, Gateway, Upstream};

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

/// A second spec whose pools share no name with the platform's.
const SHOP: &str = "tests/fixtures/shop.yaml";

#[test]
fn every_library_scenario_checks_clean_and_runs() {
    let mut names: Vec<PathBuf> = std::fs::read_dir("specs/scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    // (spec, the pool that receives most of the default traffic)
    for (spec, busiest) in [(SPEC, "contacts"), (SHOP, "catalog")] {
        for path in &names {
            let out = sluice().args(["check", spec, "--scenario"]).arg(path).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let clean = out.status.success() && !stderr.contains("warning");
            assert!(clean, "{spec} {}: {stderr}", path.display());
            let out = sluice()
                .args(["simulate", spec, "--format", "json", "--scenario"])
                .arg(path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{spec} {}: {stderr}", path.display());
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            let variants = report["variants"].as_array().unwrap();
            assert_eq!(variants.len(), 3, "{spec} {}", path.display());
            assert!(variants.iter().all(|v| v["requests"].as_u64() > Some(0)));
            // An event in the busiest pool happens in the pool the traffic reaches most.
            let text = std::fs::read_to_string(path).unwrap();
            if text.contains("pool: busiest") {
                let events = report["events"].as_array().unwrap();
                assert!(!events.is_empty(), "{spec} {}", path.display());
                for e in events {
                    let label = e["label"].as_str().unwrap();
                    let pool = label.split(' ').nth(1);
                    assert_eq!(pool, Some(busiest), "{spec} {}: {label}", path.display());
                }
            }
        }
    }
}

#[test]
fn an_undecidable_busiest_pool_is_a_located_error() {
    // Weighted so that `catalog` and `orders` (with its canary) tie.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tie.scenario.yaml");
    std::fs::write(
        &scenario,
        "version: 1
duration: 10s
arrivals: { rate: 100 }
traffic:
  - { route: product, weight: 2 }
  - { route: create-order, weight: 2 }
  - { route: order, weight: 0.2 }
pools:
  \"*\": { workers: 4, service: { distribution: exponential, mean: 5ms } }
events:
  - { at: 5s, action: crash, pool: busiest, endpoint: \"0\" }
",
    )
    .unwrap();
    for command in ["check", "simulate"] {
        let out = sluice().args([command, SHOP, "--scenario"]).arg(&scenario).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(if command == "check" { 1 } else { 3 }), "{stderr}");
        assert!(stderr.contains("S0423"), "{stderr}");
        assert!(stderr.contains("pools `catalog`, `orders` each receive"), "{stderr}");
        assert!(stderr.contains("tie.scenario.yaml:11:36]"), "{stderr}");
    }
}

#[test]
fn a_spec_without_routes_is_a_finding_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("empty.yaml");
    std::fs::write(
        &spec,
        "version: 1\npools:\n  - { name: p, endpoints: [{ address: 127.0.0.1:9001 }] }\n",
    )
    .unwrap();
    let scenario = scenario_in(
        &dir,
        "version: 1
duration: 2s
arrivals: { rate: 10 }
pools:
  \"*\": { workers: 2, service: { distribution: exponential, mean: 10ms } }
",
    );
    for command in ["check", "simulate"] {
        let out = sluice().arg(command).arg(&spec).arg("--scenario").arg(&scenario).output();
        let out = out.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(if command == "check" { 1 } else { 3 }), "{stderr}");
        assert!(stderr.contains("S0401") && stderr.contains("the spec has no routes"), "{stderr}");
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

/// A CSV as (header, rows of cells); no cell of these reports is quoted.
fn csv_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines().map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

/// Every figure has a `_ci95` column; with three replications each holds a
/// positive half-width (the arrivals, latencies and loads vary from seed to
/// seed) whose interval contains the figure and the first replication's own
/// value: with three replications, Student's t (4.303) makes every sample
/// fall within the interval of their mean. With one, the cells are empty.
#[test]
fn replications_give_every_figure_a_confidence_interval() {
    let scenario = "specs/scenarios/black-hole.yaml";
    let run = |extra: &[&str]| {
        let out = sluice()
            .args(["simulate", SPEC, "--scenario", scenario, "--seed", "5"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let (header, rows) = csv_table(&run(&["--format", "csv", "--replications", "3"]));
    let (header_one, rows_one) = csv_table(&run(&["--format", "csv"]));
    assert_eq!(header, header_one, "the header does not depend on --replications");
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {header:?}"))
    };

    // (figure, whether it is a count summed over replications, whether it
    // varies from seed to seed here: p99.9 is the 1s timeout in every run.)
    let figures = [
        ("requests", true, true),
        ("succeeded", true, true),
        ("error_rate", false, true),
        ("timeout", true, true),
        ("breaker", true, false),
        ("no_endpoint", true, false),
        ("unreachable", true, false),
        ("upstream_5xx", true, false),
        ("unanswered", true, false),
        ("retries", true, false),
        ("throughput", false, true),
        ("mean_ns", false, true),
        ("p50_ns", false, true),
        ("p99_ns", false, true),
        ("p99_9_ns", false, false),
        ("success_rate", false, true),
    ];
    for (name, count, varies) in figures {
        let (at, ci) = (column(name), column(&format!("{name}_ci95")));
        for (row, one) in rows.iter().zip(&rows_one) {
            let value: f64 = row[at].parse().unwrap();
            let half: f64 = row[ci].parse().unwrap_or_else(|_| panic!("{name}_ci95: {row:?}"));
            assert!(if varies { half > 0.0 } else { half >= 0.0 }, "{name}: {row:?}");
            // Slack for rounding (to whole nanoseconds, to 0.001/s); a
            // count's interval is of the sum.
            let slack = if name.ends_with("rate") { 1e-12 } else { 1.0 };
            let (mut lo, mut hi) = (value - half - slack, value + half + slack);
            if count {
                (lo, hi) = (lo / 3.0, hi / 3.0);
            }
            let first: f64 = one[at].parse().unwrap();
            assert!((lo..=hi).contains(&first), "{name} of one run, {first}, outside {lo}..{hi}");
            assert!(one[ci].is_empty(), "one replication has no interval: {one:?}");
        }
    }
    assert!(
        header.iter().all(|h| h != "max_ns_ci95"),
        "max is the largest of all, with no interval"
    );

    // JSON: intervals beside the figures, per route and endpoint too.
    let report: Value =
        serde_json::from_str(&run(&["--format", "json", "--replications", "3"])).unwrap();
    for v in report["variants"].as_array().unwrap() {
        let ci = &v["interval"];
        assert!(
            ci["p99_ns"].as_f64() > Some(0.0) && ci["errors"]["timeout"].as_f64() > Some(0.0),
            "{ci}"
        );
        for r in v["routes"].as_array().unwrap() {
            assert!(r["interval"]["p99_ns"].as_f64().is_some(), "{r}");
        }
        for e in v["endpoints"].as_array().unwrap() {
            assert!(e["utilisation_ci95"].as_f64().is_some(), "{e}");
        }
    }
    let one: Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    assert!(one["variants"][0].get("interval").is_none(), "one replication has no interval");

    // The table and the HTML report show them with ±.
    let table = run(&["--replications", "3"]);
    let utilisation = table.lines().skip_while(|l| !l.starts_with("utilisation")).nth(1).unwrap();
    assert!(utilisation.contains('±'), "{table}");
    let errors = table.lines().skip_while(|l| !l.starts_with("errors ")).nth(1).unwrap();
    // Only the timeouts have an interval: a kind with none in every run is `0`.
    assert!(errors.matches('±').count() == 1 && errors.contains(" 0  "), "{table}");
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    run(&["--replications", "3", "--report", html.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("95% confidence half-width") && page.contains("Errors by kind"));
    assert!(page.matches(" ±").count() > 20, "too few intervals in the page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_the_access_log_of_a_real_serve_run() {
    // A gateway with two routes writes its access log to a file.
    let (reads, writes) = (Upstream::start("reads").await, Upstream::start("writes").await);
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - {{ name: reads, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: writes, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - {{ name: read, match: {{ path: \"/items/{{id}}\", methods: [GET] }}, to: reads }}
  - {{ name: write, match: {{ path: \"/items\", methods: [POST] }}, to: writes }}
",
        reads.address, writes.address
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut gateway = Gateway::start_with(&spec, &["--access-log", log.to_str().unwrap()]);
    let http = client();
    let public = gateway.addr("public");
    for i in 0..30 {
        let (method, path) =
            if i % 3 == 2 { ("POST", "/items".to_owned()) } else { ("GET", format!("/items/{i}")) };
        send(&http, request(method, public, "x.test", &path)).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Requests that match no route are logged with a null route and left out.
    send(&http, request("GET", public, "x.test", "/nothing-here")).await;
    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));

    // Replay it at twice the logged rate.
    let text = std::fs::read_to_string(&log).unwrap();
    let times: Vec<i64> = text
        .lines()
        .filter(|l| !l.contains("\"route\":null"))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let t = v["time"].as_str().unwrap();
            // Milliseconds within the day are enough for a run of a second.
            let clock = &t[11..23];
            let (h, m, s) = (&clock[0..2], &clock[3..5], &clock[6..12]);
            let ms = |x: &str| x.replace('.', "").parse::<i64>().unwrap();
            (ms(h) * 60 + ms(m)) * 60_000 + ms(s)
        })
        .collect();
    assert_eq!((times.len(), text.lines().count()), (30, 31), "{text}");
    let span_ms = times.iter().max().unwrap() - times.iter().min().unwrap();
    let scenario = dir.path().join("replay.scenario.yaml");
    std::fs::write(
        &scenario,
        "version: 1
arrivals: { replay: access.log, scale: 2.0 }
pools:
  \"*\": { workers: 2, service: { distribution: constant, value: 1ms } }
",
    )
    .unwrap();
    let out = sluice()
        .args(["simulate"])
        .arg(gateway.spec_path())
        .arg("--scenario")
        .arg(&scenario)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Every routed request arrives once, on its route, over half the span.
    let v = &report["variants"][0];
    assert_eq!(v["requests"], 30, "{report}");
    let routes: Vec<(&str, u64)> = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["route"].as_str().unwrap(), r["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(routes, [("read", 20), ("write", 10)]);
    assert_eq!(report["measured_ns"], span_ms as u64 * 1_000_000 / 2 + 1);
    let arrivals = report["arrivals"].as_str().unwrap();
    assert!(arrivals.starts_with("access log replay of 30 requests from "), "{arrivals}");
    assert!(arrivals.ends_with(" at 2x"), "{arrivals}");
    assert_eq!(v["errors"]["unreachable"], 0);
}

/// The progress bar is for terminals only: a run longer than a second with
/// its stderr piped (as in CI) writes nothing there.
#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long.scenario.yaml");
    std::fs::write(
        &scenario,
        "version: 1\nseed: 1\nrequests: 3000000\narrivals: { rate: 1000 }\n\
         pools:\n  \"*\": { workers: 8, service: { distribution: exponential, mean: 2ms } }\n\
         balancers: [round_robin, least_request]\n",
    )
    .unwrap();
    let spec = format!("{}/specs/platform.yaml", env!("CARGO_MANIFEST_DIR"));
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["simulate", &spec, "--scenario"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // Worth asserting only if the run was long enough for a bar to appear.
    eprintln!("the run took {:?}", started.elapsed());
}

/// Run `sluice simulate SPEC --scenario FILE` with a pseudo-terminal for
/// its stdin, stdout and stderr (through util-linux's `script`), and return
/// all it wrote there; `None` when `script` is not installed.
fn simulate_on_a_terminal(scenario: &std::path::Path) -> Option<String> {
    let spec = format!("{}/specs/platform.yaml", env!("CARGO_MANIFEST_DIR"));
    let command = format!(
        "'{}' simulate '{spec}' --scenario '{}' --format csv",
        env!("CARGO_BIN_EXE_sluice"),
        scenario.display()
    );
    let out = match std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run script: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    Some(text)
}

/// On a terminal, a run longer than a second shows a progress bar on
/// stderr (and clears it at the end), and a short run shows none.
#[test]
fn a_progress_bar_on_a_terminal_for_long_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |name: &str, requests: u64| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "version: 1\nseed: 1\nrequests: {requests}\narrivals: {{ rate: 1000 }}\n\
                 pools:\n  \"*\": {{ workers: 8, service: {{ distribution: exponential, mean: 2ms }} }}\n\
                 balancers: [round_robin, least_request]\n"
            ),
        )
        .unwrap();
        path
    };
    // A run long enough for the bar, however fast the machine: the
    // requests double until a run takes more than 1.5 s.
    let mut requests = 3_000_000;
    let (long, took) = loop {
        let started = std::time::Instant::now();
        let Some(long) = simulate_on_a_terminal(&scenario("long.yaml", requests)) else {
            let message =
                "skipped: util-linux `script` is not installed to give the run a terminal\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
            return;
        };
        let took = started.elapsed();
        if took > std::time::Duration::from_millis(1500) || requests >= 48_000_000 {
            break (long, took);
        }
        requests *= 2;
    };
    assert!(
        took > std::time::Duration::from_millis(1500),
        "too short a run to show a bar: {took:?} for {requests} requests"
    );
    assert!(long.contains("\rsimulating ["), "no progress bar in {took:?}: {long:?}");
    assert!(long.contains(" runs, ") && long.contains("M events"), "{long:?}");
    // It is cleared before the results are printed.
    let cleared = long.rfind(&format!("\r{:70}\r", "")).expect("the bar is cleared");
    assert!(cleared < long.find("variant,requests").unwrap(), "{long:?}");

    let short = simulate_on_a_terminal(&scenario("short.yaml", 20_000)).unwrap();
    assert!(short.contains("variant,requests"), "{short:?}");
    assert!(!short.contains("simulating"), "a short run shows no bar: {short:?}");
}

/// A spec with pools that hash on an API key and on a path parameter, and
/// a round-robin pool with a 250 ms connect timeout.
const KEYED: &str = "tests/fixtures/keyed.yaml";

/// Write `text` as a scenario in `dir`; its path.
fn scenario_in(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("mix.scenario.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `simulate KEYED` on `scenario` as JSON, with `check` finding nothing first.
fn keyed_json(scenario: &std::path::Path) -> (String, Value) {
    let out = sluice().args(["check", KEYED, "--scenario"]).arg(scenario).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("warning"), "{stderr}");
    let out = sluice()
        .args(["simulate", KEYED, "--format", "json", "--seed", "9", "--scenario"])
        .arg(scenario)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(&text).unwrap();
    (text, report)
}

/// Each endpoint's share of the requests `pool` served.
fn shares(variant: &Value, pool: &str) -> Vec<f64> {
    let endpoints = variant["endpoints"].as_array().unwrap();
    let counts: Vec<f64> = (endpoints.iter())
        .filter(|e| e["pool"] == pool)
        .map(|e| e["requests"].as_f64().unwrap())
        .collect();
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

#[test]
fn a_zipf_keyed_mix_skews_a_hashing_pool_and_repeats_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mix = |law: &str| {
        format!(
            "version: 1
duration: 20s
arrivals: {{ rate: 500 }}
traffic:
  - route: session
    headers: {{ x-api-key: {{ {law}, prefix: key- }} }}
  - path: /v1/items/{{n}}
    params: {{ n: {{ {law} }} }}
pools:
  \"*\": {{ workers: 16, service: {{ distribution: exponential, mean: 5ms }} }}
"
        )
    };
    let zipf = scenario_in(&dir, &mix("zipf: { keys: 100, exponent: 1.3 }"));
    let (text, report) = keyed_json(&zipf);
    assert_eq!(text, keyed_json(&zipf).0, "the same seed gave other bytes");
    // Key 1 alone is about a quarter of the requests: the endpoint that
    // owns it takes far more than an even share of four (or of three).
    let variant = &report["variants"][0];
    for (pool, even) in [("sessions", 0.25), ("items", 1.0 / 3.0)] {
        let share = shares(variant, pool);
        let hottest = share.iter().copied().fold(0.0, f64::max);
        assert!(hottest > even + 0.1, "{pool}: {share:?}");
    }

    // Keys equally likely spread over the ring about evenly.
    let uniform = scenario_in(&dir, &mix("uniform: { keys: 10000 }"));
    let variant = &keyed_json(&uniform).1["variants"][0];
    for (pool, even) in [("sessions", 0.25), ("items", 1.0 / 3.0)] {
        let share = shares(variant, pool);
        assert!(share.iter().all(|s| (s - even).abs() < 0.07), "{pool}: {share:?}");
    }
}

#[test]
fn an_endpoint_that_stops_accepting_costs_new_connections_the_connect_timeout() {
    // `backend` balances round robin over three endpoints with a connect
    // timeout of 250 ms; each request takes 10 ms. From 10 s to 20 s,
    // endpoint 0 accepts no new connection. A try to it that needs one
    // waits 250 ms before another endpoint serves it (a route without
    // `retries` fails over at once, as `serve` does); one that finds an
    // idle kept-alive connection is served on it. Nothing fails.
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_in(
        &dir,
        "version: 1
duration: 30s
arrivals: { rate: 300 }
traffic:
  - { route: other }
pools:
  backend: { workers: 16, service: { distribution: constant, value: 10ms } }
events:
  - { at: 10s, action: stop_accepting, pool: backend, endpoint: \"0\" }
  - { at: 20s, action: recover, pool: backend, endpoint: \"0\" }
",
    );
    let run = |idle_timeout: &str| {
        let spec = std::fs::read_to_string(KEYED).unwrap().replace(
            "    connect_timeout: 250ms\n",
            &format!("    connect_timeout: 250ms\n    idle_timeout: {idle_timeout}\n"),
        );
        let path = dir.path().join("keyed.yaml");
        std::fs::write(&path, spec).unwrap();
        let out = sluice()
            .args(["simulate", "--format", "json", "--seed", "9", "--scenario"])
            .arg(&scenario)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["variants"][0].clone()
    };
    let ms = |v: &Value, field: &str| v["latency"][field].as_f64().unwrap() / 1e6;

    // Connections idle for a millisecond close: at 100 requests a second
    // per endpoint, nearly every try to it needs a new one, so about a
    // ninth of all requests pay 250 ms more, and endpoint 0 serves its
    // third only outside the window.
    let short = run("1ms");
    assert_eq!(short["succeeded"], short["requests"], "{short}");
    assert!((ms(&short, "p50_ns") - 10.0).abs() < 0.1, "{short}");
    assert!((ms(&short, "p99_ns") - 260.0).abs() < 0.5, "{short}");
    assert!((ms(&short, "max_ns") - 260.0).abs() < 0.5, "{short}");
    assert!((ms(&short, "mean_ns") - 37.8).abs() < 3.0, "{short}");
    let share = shares(&short, "backend");
    assert!((share[0] - 2.0 / 9.0).abs() < 0.02, "{share:?}");

    // Kept alive for the default 4 s, the connections it had go on
    // carrying most of its share; only the tries that need one more pay.
    let kept = run("4s");
    assert_eq!(kept["succeeded"], kept["requests"], "{kept}");
    assert!((ms(&kept, "max_ns") - 260.0).abs() < 0.5, "{kept}");
    assert!(ms(&kept, "mean_ns") < 15.0, "{kept}");
    let share = shares(&kept, "backend");
    assert!(share[0] > 0.3, "{share:?}");
}

/// The run-size limit covers the whole run: `check` counts every variant
/// of a scenario, and `simulate` every replication, which only the command
/// line knows. A scenario of two variants of 30 million requests is within
/// the limit once and beyond it with `--replications 2`, refused before
/// anything runs.
#[test]
fn replications_beyond_the_run_size_limit_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_in(
        &dir,
        "version: 1
requests: 30000000
arrivals: { rate: 100000 }
pools:
  \"*\": { workers: 10, service: { distribution: constant, value: 50us } }
balancers: [spec, random]
",
    );
    let out = sluice().args(["check", KEYED, "--scenario"]).arg(&scenario).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = sluice()
        .args(["simulate", KEYED, "--replications", "2", "--scenario"])
        .arg(&scenario)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(
            "--replications 2 runs each of the 2 variant(s) 2 times, about 120000000 requests in \
             all (30000000 per run), more than the limit of 100000000"
        ),
        "{stderr}"
    );
}
