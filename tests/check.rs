//! `sluice check`, `compile`, `explain` and `schema` as a user runs them:
//! the real binary, real files, exit statuses and exact positions.

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

fn sluice() -> Command {
    Command::cargo_bin("sluice").expect("the sluice binary is built for tests")
}

/// A temporary spec file; the directory lives as long as the value.
struct Spec {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn spec(text: &str) -> Spec {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, text).unwrap();
    Spec { _dir: dir, path }
}

const CLEAN: &str = "\
version: 1
listeners:
  - name: public
    bind: 127.0.0.1:8080
pools:
  - name: users
    endpoints:
      - address: 127.0.0.1:9001
routes:
  - name: get-user
    match:
      host: api.example.test
      path: /users/{id}
      methods: [GET]
    to: users
    timeout: 2s
";

/// Run `check --format json` and return the exit code and the report.
fn check_json(text: &str) -> (i32, Value) {
    let s = spec(text);
    let out = sluice().args(["check", "--format", "json"]).arg(&s.path).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), report)
}

/// The (code, line, column) of every finding.
fn findings(report: &Value) -> Vec<(String, u64, u64)> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["line"].as_u64().unwrap_or(0),
                d["column"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn one(code: &str, line: u64, column: u64) -> Vec<(String, u64, u64)> {
    vec![(code.to_owned(), line, column)]
}

#[test]
fn clean_spec_passes() {
    let (status, report) = check_json(CLEAN);
    assert_eq!(status, 0, "{report}");
    assert_eq!(report["valid"], true);
    assert_eq!(report["error_count"], 0);
    assert_eq!(report["warning_count"], 0);

    let s = spec(CLEAN);
    let out = sluice().arg("check").arg(&s.path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ok (1 listener, 1 pool, 1 route)"), "{stderr}");
}

#[test]
fn bundled_example_passes() {
    let root = env!("CARGO_MANIFEST_DIR");
    sluice().arg("check").arg(format!("{root}/specs/platform.yaml")).assert().code(0);
}

#[test]
fn unknown_key_points_at_the_key_and_suggests_a_spelling() {
    let (status, report) = check_json(&CLEAN.replace("    timeout: 2s", "    timout: 2s"));
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0101", 16, 5));
    let d = &report["diagnostics"][0];
    assert_eq!(d["pointer"], "/routes/0/timout");
    assert_eq!(d["help"], "did you mean `timeout`?");
    assert_eq!(d["file"].as_str().map(|f| f.ends_with("spec.yaml")), Some(true));
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = CLEAN.replace(
        "      - address: 127.0.0.1:9001",
        "      - address: 127.0.0.1:9001\n        weight: heavy",
    );
    let (status, report) = check_json(&text);
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0103", 9, 17));
}

#[test]
fn bad_duration_is_reported_once_at_the_value() {
    let (status, report) = check_json(&CLEAN.replace("timeout: 2s", "timeout: 2 sec"));
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0206", 16, 14));
}

#[test]
fn bad_addresses_are_reported() {
    let text = CLEAN.replace("address: 127.0.0.1:9001", "address: localhost-9001");
    let (status, report) = check_json(&text);
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0205", 8, 18));

    let (status, report) =
        check_json(&CLEAN.replace("bind: 127.0.0.1:8080", "bind: 127.0.0.1:99999"));
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0205", 4, 11));
}

#[test]
fn route_to_an_undefined_pool() {
    let (status, report) = check_json(&CLEAN.replace("    to: users", "    to: user"));
    assert_eq!(status, 1);
    // The pool is now unused as well: a warning at its name.
    assert_eq!(findings(&report), vec![("S0301".into(), 6, 11), ("S0201".into(), 15, 9)]);
    assert_eq!(report["diagnostics"][1]["help"], "did you mean `users`?");
}

#[test]
fn duplicate_names_label_both() {
    let text = format!("{CLEAN}  - name: get-user\n    match: {{ path: /other }}\n    to: users\n");
    let (status, report) = check_json(&text);
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0202", 17, 11));
    let label = &report["diagnostics"][0]["labels"][0];
    assert_eq!((label["line"].as_u64(), label["column"].as_u64()), (Some(10), Some(11)));

    let pools = CLEAN.replace(
        "routes:",
        "  - name: users\n    endpoints:\n      - address: 127.0.0.1:9002\nroutes:",
    );
    let (status, report) = check_json(&pools);
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0202", 9, 11));
}

#[test]
fn routes_that_match_the_same_requests_are_ambiguous() {
    let text = format!(
        "{CLEAN}  - name: also-user\n    match: {{ host: API.example.test, path: \"/users/{{uid}}\", methods: [GET, POST] }}\n    to: users\n"
    );
    let (status, report) = check_json(&text);
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0203", 18, 5));
    let message = report["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("GET http://api.example.test/users/x"), "{message}");
    assert_eq!(report["diagnostics"][0]["labels"][0]["line"], 11);
}

#[test]
fn duplicated_yaml_key_is_an_error() {
    let text = CLEAN.replace("    to: users\n", "    to: users\n    to: users\n");
    let (status, report) = check_json(&text);
    assert_eq!(status, 1);
    assert_eq!(findings(&report), one("S0002", 16, 5));
}

#[test]
fn yaml_syntax_error_is_a_located_finding() {
    let (status, report) = check_json("version: 1\nlisteners: [\n  - name: x\n");
    assert_eq!(status, 1);
    let f = findings(&report);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, "S0001");
    assert!(f[0].1 >= 2, "{f:?}");
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = CLEAN
        .replace("    timeout: 2s", "    timeout: soon")
        .replace("address: 127.0.0.1:9001", "address: nowhere")
        .replace("    to: users", "    to: missing");
    let (status, report) = check_json(&text);
    assert_eq!(status, 1);
    let codes: Vec<String> = findings(&report).into_iter().map(|f| f.0).collect();
    assert_eq!(codes, ["S0301", "S0205", "S0201", "S0206"]);
    assert_eq!(report["error_count"], 3);
    assert_eq!(report["warning_count"], 1);
}

#[test]
fn missing_file_cannot_run_and_usage_errors_exit_2() {
    sluice().args(["check", "/nonexistent/spec.yaml"]).assert().code(3);
    sluice().arg("check").assert().code(2);
    sluice().args(["check", "--format", "yaml", "x"]).assert().code(2);
}

#[test]
fn deny_warnings_fails_on_warnings() {
    let text = CLEAN.replace(
        "routes:",
        "  - name: spare\n    endpoints:\n      - address: 127.0.0.1:9009\nroutes:",
    );
    let s = spec(&text);
    sluice().arg("check").arg(&s.path).assert().code(0);
    sluice().args(["check", "--deny", "warnings"]).arg(&s.path).assert().code(1);
}

#[test]
fn human_report_shows_the_source_line() {
    let s = spec(&CLEAN.replace("    to: users", "    to: user"));
    let out = sluice().arg("check").arg(&s.path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("S0201 unknown-pool"), "{stderr}");
    assert!(stderr.contains("to: user"), "the offending line is quoted: {stderr}");
    assert!(stderr.contains("spec.yaml:15:9"), "{stderr}");
}

#[test]
fn github_format_annotates_the_line() {
    let s = spec(&CLEAN.replace("    to: users", "    to: user"));
    let out = sluice().args(["check", "--format", "github"]).arg(&s.path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(",line=15,col=9,title=S0201 unknown-pool::route `get-user`"),
        "{stdout}"
    );
}

/// A file name with a comma, a colon, a percent sign, an escape character
/// and a reordering character, and names with line breaks in them: each
/// finding is one workflow command, its properties split where sluice
/// meant, its file decoding back to the name given (the hidden characters
/// written as escapes), and nothing raw that a terminal or the log viewer
/// would act on.
#[test]
fn github_annotations_stay_one_command_per_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a,b:c%d\u{1b}[31m\u{202e}.yaml");
    let text = CLEAN
        .replace("  - name: users\n", "  - name: \"us\\ners\"\n")
        .replace("    to: users", "    to: \"us\\r\\ners\\n::error::injected\"");
    std::fs::write(&path, text).unwrap();

    let out = sluice().args(["check", "--format", "json"]).arg(&path).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = report["diagnostics"].as_array().unwrap().len();
    assert_eq!(count, 3, "a bad name, an unused pool, an unknown pool: {report}");

    let out = sluice().args(["check", "--format", "github"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), count, "{stdout}");
    let hidden = |c: char| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c);
    let shown = dir.path().join("a,b:c%d\\u{1b}[31m\\u{202e}.yaml").display().to_string();
    let decode = |v: &str| {
        v.replace("%2C", ",").replace("%3A", ":").replace("%0A", "\n").replace("%25", "%")
    };
    for line in stdout.lines() {
        assert!(!line.chars().any(hidden), "a raw hidden character: {line:?}");
        let rest = line.strip_prefix("::error ").or_else(|| line.strip_prefix("::warning "));
        let (properties, message) = rest.and_then(|r| r.split_once("::")).unwrap_or_else(|| {
            panic!("not a workflow command: {line:?}");
        });
        let properties: Vec<(&str, String)> = properties
            .split(',')
            .map(|p| p.split_once('=').unwrap_or_else(|| panic!("{p:?} in {line:?}")))
            .map(|(k, v)| (k, decode(v)))
            .collect();
        let keys: Vec<&str> = properties.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["file", "line", "col", "title"], "{line:?}");
        assert_eq!(properties[0].1, shown, "{line:?}");
        assert!(decode(message).contains("`us\\"), "the name is quoted, escaped: {line:?}");
    }
    assert!(stdout.contains("pool `us\\r\\ners\\n::error::injected`, which"), "{stdout}");
}

/// A health check path that no probe can be sent with (a space, no
/// leading `/`, a fragment) is an error at the path, and `explain` refuses
/// the spec too, where it used to show the check as if it would run.
#[test]
fn health_check_paths_that_are_not_request_targets_are_refused() {
    let mut text = CLEAN.to_owned();
    for (i, path) in ["\"/healthz now\"", "healthz", "\"/healthz#ready\""].iter().enumerate() {
        let pool = format!(
            "  - name: checked-{i}\n    endpoints: [{{ address: 127.0.0.1:9001 }}]\n    \
             health_check: {{ path: {path}, interval: 1s }}\n"
        );
        text = text.replacen("routes:\n", &format!("{pool}routes:\n"), 1);
    }
    let (code, report) = check_json(&text);
    assert_eq!(code, 1, "{report}");
    let at = |line| ("S0207".to_owned(), line, 27);
    let found: Vec<_> = findings(&report).into_iter().filter(|f| f.0 != "S0301").collect();
    assert_eq!(found, [at(11), at(14), at(17)], "{report}");
    let messages: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["message"].as_str())
        .filter(|m| m.starts_with("health check path"))
        .collect();
    assert_eq!(
        messages,
        [
            "health check path `/healthz now` is not a valid request target (` ` must be percent-encoded)",
            "health check path `healthz` does not start with `/`",
            "health check path `/healthz#ready` has a fragment (`#...`), which a request never carries",
        ]
    );

    let s = spec(&text);
    let out = sluice().arg("explain").arg(&s.path).args(["GET", "/users/1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn compile_writes_a_plan_that_explain_and_reload_accept() {
    let s = spec(CLEAN);
    let plan = s.path.with_extension("plan");
    sluice().arg("compile").arg(&s.path).arg("-o").arg(&plan).assert().code(0);

    let out = sluice()
        .arg("explain")
        .arg(&plan)
        .args(["GET", "http://API.example.test:8080/users/42?x=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("route     get-user"), "{stdout}");
    assert!(stdout.contains("id = \"42\""), "{stdout}");

    // A flipped byte is refused with a clear error.
    let mut bytes = std::fs::read(&plan).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&plan, &bytes).unwrap();
    let out = sluice().arg("explain").arg(&plan).args(["GET", "/users/1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));

    // So is a file that is not a plan at all, of any format.
    std::fs::write(&plan, "sluice-plan 99 sha256:00\n{}").unwrap();
    let out = sluice().arg("explain").arg(&plan).args(["GET", "/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("format 99"));
}

/// Regression: `check` on a compiled plan said the file was "not valid
/// UTF-8 text" and showed its binary bytes. It says what the file is,
/// at its header line, as a spec or as a scenario.
#[test]
fn check_says_a_compiled_plan_is_not_a_spec_or_a_scenario() {
    let s = spec(CLEAN);
    let plan = s.path.with_extension("plan");
    sluice().arg("compile").arg(&s.path).arg("-o").arg(&plan).assert().code(0);
    for args in [vec![&plan], vec![&s.path, &std::path::PathBuf::from("--scenario"), &plan]] {
        let out = sluice().arg("check").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).expect("no binary bytes in the report");
        let noun = if args.len() == 1 { "a spec" } else { "a scenario" };
        let words = format!("this is a compiled plan (written by `sluice compile`), not {noun}");
        assert!(stderr.contains(&words), "{stderr}");
        assert!(stderr.contains(".plan:1:1]"), "{stderr}");
        assert!(!stderr.contains("UTF-8") && !stderr.contains('\u{fffd}'), "{stderr}");
    }
}

#[test]
fn compile_refuses_an_invalid_spec() {
    let s = spec(&CLEAN.replace("    to: users", "    to: nope"));
    let plan = s.path.with_extension("plan");
    sluice().arg("compile").arg(&s.path).arg("-o").arg(&plan).assert().code(1);
    assert!(!plan.exists(), "no plan is written for a spec with errors");
}

#[test]
fn explain_reports_no_match_and_invalid_specs() {
    let s = spec(CLEAN);
    let out = sluice()
        .arg("explain")
        .arg(&s.path)
        .args(["GET", "http://api.example.test/teams/1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no route matches GET /teams/1"));

    let out = sluice()
        .arg("explain")
        .arg(&s.path)
        .args(["POST", "http://api.example.test/users/1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the route is GET only");

    let bad = spec(&CLEAN.replace("    to: users", "    to: nope"));
    sluice().arg("explain").arg(&bad.path).args(["GET", "/users/1"]).assert().code(3);
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = sluice().args(["schema", "spec"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read(format!("{}/schemas/spec.schema.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn committed_scenario_schema_matches_the_code() {
    let out = sluice().args(["schema", "scenario"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let path = format!("{}/schemas/scenario.schema.json", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read(&path).unwrap();
    assert!(
        out.stdout == committed,
        "schemas/scenario.schema.json is stale; regenerate it with \
         `cargo run -- schema scenario > schemas/scenario.schema.json`"
    );
}

#[test]
fn explain_says_why_the_closest_other_routes_lost() {
    let text = format!(
        "{CLEAN}  - name: me\n    match: {{ host: api.example.test, path: /users/me }}\n    to: users\n\
         \x20 - name: put-user\n    match: {{ host: api.example.test, path: \"/users/{{id}}\", methods: [PUT] }}\n    to: users\n"
    );
    let s = spec(&text);
    let out = sluice()
        .arg("explain")
        .arg(&s.path)
        .args(["GET", "http://api.example.test/users/me"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("route     me\n"), "{stdout}");
    assert!(
        stdout.contains(
            "others    get-user: matches, but is outranked: the literal `me` beats `{id}` at segment 2\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("          put-user: method not allowed (only PUT)\n"), "{stdout}");

    // With no match, the near misses go to stderr after the message.
    let out = sluice()
        .arg("explain")
        .arg(&s.path)
        .args(["DELETE", "http://api.example.test/users/7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("others    get-user: method not allowed (only GET)"), "{stderr}");
}

/// `explain` tells, for the matched route's pool, how long a dead endpoint
/// keeps its traffic and how long a recovered one stays out: each is the
/// thresholds times the longest probe cycle (interval, jitter and timeout).
#[test]
fn explain_shows_how_long_failover_and_return_take() {
    let checked = CLEAN.replace(
        "      - address: 127.0.0.1:9001\n",
        "      - address: 127.0.0.1:9001
    health_check: { path: /healthz, interval: 5s, jitter: 1s, timeout: 2s,
                    unhealthy_threshold: 3, healthy_threshold: 2 }
    outlier_detection: { consecutive_failures: 4, base_ejection: 10s }
",
    );
    let s = spec(&checked);
    let out = sluice()
        .arg("explain")
        .arg(&s.path)
        .args(["GET", "http://api.example.test/users/1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let health = stdout.lines().find(|l| l.starts_with("health")).unwrap_or_default();
    assert!(health.contains("GET /healthz every 5s"), "{stdout}");
    // (5 s + 1 s + 2 s) times 3, and times 2.
    assert!(health.contains("out within 24s, a recovered one back within 16s"), "{stdout}");
    let outliers = stdout.lines().find(|l| l.starts_with("outliers")).unwrap_or_default();
    assert!(outliers.contains("ejected after 4 failures"), "{stdout}");
    assert!(outliers.contains("for 10s"), "{stdout}");

    let plain = spec(CLEAN);
    let url = "http://api.example.test/users/1";
    let out = sluice().arg("explain").arg(&plain.path).args(["GET", url]).output();
    let stdout = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
    assert!(stdout.contains("health    no active checks"), "{stdout}");
    assert!(!stdout.contains("outliers"), "{stdout}");
}

/// A connection limit below the endpoints that take traffic may leave some
/// without a connection: a warning at the limit, worded for the protocol,
/// and none when every serving endpoint can have one.
#[test]
fn a_connection_limit_below_the_endpoints_is_a_warning() {
    let pool = |settings: &str, weights: [u32; 3]| {
        let endpoints: String = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("      - {{ address: 127.0.0.1:900{i}, weight: {w} }}\n"))
            .collect();
        CLEAN.replace(
            "    endpoints:\n      - address: 127.0.0.1:9001\n",
            &format!("    balance: weighted_round_robin\n{settings}    endpoints:\n{endpoints}"),
        )
    };
    let warnings = |text: &str| {
        let (status, report) = check_json(text);
        assert_eq!(status, 0, "{report}");
        let found = report["diagnostics"].as_array().unwrap().clone();
        found.into_iter().filter(|d| d["code"] == "S0222").collect::<Vec<Value>>()
    };
    let found = warnings(&pool("    circuit_breaker: { max_connections: 2 }\n", [1, 1, 1]));
    assert_eq!(found.len(), 1, "{found:?}");
    let message = found[0]["message"].as_str().unwrap();
    assert!(message.starts_with("pool `users` allows 2 upstream connection(s) for its 3 endpoints"));
    assert!(message.contains("idle kept-alive connection"), "{message}");
    assert_eq!((found[0]["line"].as_u64(), found[0]["column"].as_u64()), (Some(8), Some(41)));
    assert!(found[0]["help"].as_str().unwrap().contains("at least 3"), "{found:?}");

    let h2 = "    protocol: http2\n    circuit_breaker: { max_connections: 2 }\n";
    let found = warnings(&pool(h2, [1, 1, 1]));
    let message = found[0]["message"].as_str().unwrap();
    assert!(message.contains("3 HTTP/2 endpoints, each of which needs one"), "{message}");

    // A drained endpoint needs no connection; enough places, no warning.
    for (settings, weights) in [
        ("    circuit_breaker: { max_connections: 2 }\n", [1, 0, 1]),
        ("    circuit_breaker: { max_connections: 3 }\n", [1, 1, 1]),
        ("    circuit_breaker: { max_requests: 1 }\n", [1, 1, 1]),
    ] {
        assert!(warnings(&pool(settings, weights)).is_empty(), "{settings} {weights:?}");
    }
}
