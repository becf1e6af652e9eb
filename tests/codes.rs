//! Every finding code of a spec, as `sluice check` reports it: one
//! table-driven case per code in the README, asserting the code, the file,
//! the line and column it points at, and the exit status.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

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

/// `CLEAN` with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(CLEAN.matches(from).count(), 1, "`{from}` occurs once in the base spec");
    CLEAN.replacen(from, to, 1)
}

/// A spec with `n` listeners.
fn listeners(n: usize) -> String {
    let mut text = String::from("version: 1\nlisteners:\n");
    for i in 0..n {
        text.push_str(&format!("  - {{ name: l{i}, bind: \"127.0.0.1:{}\" }}\n", 10000 + i));
    }
    text
}

/// A spec whose catch-all route `rest` is taken entirely by three others.
const SHADOWED: &str = "\
version: 1
listeners:
  - { name: public, bind: 127.0.0.1:8080 }
pools:
  - { name: files, endpoints: [{ address: 127.0.0.1:9001 }] }
routes:
  - name: rest
    match: { path: \"/files/{*rest}\" }
    to: files
  - name: root
    match: { path: /files }
    to: files
  - name: item
    match: { path: \"/files/{key}/{*more}\" }
    to: files
  - name: empty
    match: { path: \"/files//{*more}\" }
    to: files
";

struct Case {
    code: &'static str,
    spec: String,
    line: u64,
    column: u64,
    status: i32,
}

fn case(code: &'static str, spec: String, line: u64, column: u64, status: i32) -> Case {
    Case { code, spec, line, column, status }
}

fn cases() -> Vec<Case> {
    vec![
        case("S0001", "version: 1\nlisteners: [\n".into(), 2, 12, 1),
        case("S0002", edit("    to: users\n", "    to: users\n    to: users\n"), 16, 5, 1),
        case("S0003", edit("timeout: 2s", "timeout: !env 2s"), 16, 19, 1),
        case("S0004", edit("version: 1\n", "version: 1\ninclude: [missing/*.yaml]\n"), 2, 11, 1),
        case("S0005", edit("version: 1\n", "version: 1\ninclude: [spec.yaml]\n"), 2, 11, 0),
        case("S0101", edit("    timeout: 2s", "    timout: 2s"), 16, 5, 1),
        case("S0102", edit("    to: users\n", ""), 10, 5, 1),
        case("S0103", edit("9001\n", "9001\n        weight: heavy\n"), 9, 17, 1),
        case("S0104", edit("  - name: users\n", "  - name: users\n    balance: fastest\n"), 7, 14, 1),
        case("S0201", edit("    to: users", "    to: user"), 15, 9, 1),
        case(
            "S0202",
            format!("{CLEAN}  - name: get-user\n    match: {{ path: /other }}\n    to: users\n"),
            17,
            11,
            1,
        ),
        case(
            "S0203",
            format!("{CLEAN}  - name: also-user\n    match: {{ path: \"/users/{{uid}}\", host: api.example.test, methods: [GET] }}\n    to: users\n"),
            18,
            5,
            1,
        ),
        case("S0204", edit("  - name: get-user\n", "  - name: get-user\n    listeners: [pubic]\n"), 11, 17, 1),
        case("S0205", edit("address: 127.0.0.1:9001", "address: localhost-9001"), 8, 18, 1),
        case("S0206", edit("timeout: 2s", "timeout: 2 sec"), 16, 14, 1),
        case("S0207", edit("path: /users/{id}", "path: /a{id}"), 13, 13, 1),
        case("S0208", edit("host: api.example.test", "host: api.*.test"), 12, 13, 1),
        case(
            "S0209",
            edit("pools:\n", "  - name: again\n    bind: 127.0.0.1:8080\npools:\n"),
            6,
            11,
            1,
        ),
        case(
            "S0210",
            edit(
                "  - name: users\n    endpoints:\n      - address: 127.0.0.1:9001\n",
                "  - name: users\n    balance: weighted_round_robin\n    endpoints:\n      - address: 127.0.0.1:9001\n        weight: 0\n",
            ),
            9,
            7,
            1,
        ),
        case("S0211", listeners(65), 67, 5, 1),
        case("S0212", SHADOWED.into(), 8, 5, 1),
        case("S0213", edit("path: /users/{id}", "path: /users//{id}"), 13, 13, 0),
        case(
            "S0214",
            edit(
                "      methods: [GET]\n",
                "      methods: [GET]\n      headers: [{ name: x-a, exact: \"1\", present: true }]\n",
            ),
            15,
            17,
            1,
        ),
        case(
            "S0215",
            edit("    timeout: 2s\n", "    timeout: 2s\n    retries: { attempts: 3, per_try_timeout: 1s }\n    retry_budget: { percent: 20 }\n"),
            17,
            46,
            0,
        ),
        case("S0216", edit("    timeout: 2s\n", "    timeout: 2s\n    retries: { attempts: 2 }\n"), 17, 5, 0),
        case("S0217", edit("  - name: users\n", "  - name: users\n    health_check: { path: /health, interval: 10s }\n"), 7, 5, 0),
        case("S0218", edit("  - name: users\n", "  - name: users\n    outlier_detection: { max_ejection_percent: 10 }\n"), 7, 48, 0),
        case("S0219", edit("  - name: users\n", "  - name: users\n    balance: consistent_hash\n"), 7, 14, 1),
        case(
            "S0220",
            edit("  - name: users\n", "  - name: users\n    outlier_detection: { base_ejection: 30s, max_ejection: 1s }\n"),
            7,
            60,
            1,
        ),
        case("S0221", edit("  - name: users\n", "  - name: users\n    choices: 3\n"), 7, 5, 0),
        case(
            "S0222",
            edit(
                "    endpoints:\n      - address: 127.0.0.1:9001\n",
                "    circuit_breaker: { max_connections: 1 }\n    endpoints:\n      - address: 127.0.0.1:9001\n      - address: 127.0.0.1:9002\n",
            ),
            7,
            41,
            0,
        ),
        case(
            "S0301",
            edit("routes:\n", "  - name: spare\n    endpoints:\n      - address: 127.0.0.1:9002\nroutes:\n"),
            9,
            11,
            0,
        ),
        case("S0302", edit("9001\n", "9001\n        weight: 2\n"), 8, 7, 0),
        case("S0303", edit("listeners:\n  - name: public\n    bind: 127.0.0.1:8080\n", "listeners: []\n"), 7, 1, 0),
    ]
}

/// Run `check --format json` on `text` in a fresh directory, naming the
/// file relatively, and return the exit status and the report.
fn check(text: &str) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), text).unwrap();
    let out = Command::cargo_bin("sluice")
        .unwrap()
        .current_dir(dir.path())
        .args(["check", "--format", "json", "spec.yaml"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), report)
}

#[test]
fn every_code_is_reported_where_it_belongs() {
    let mut failures = Vec::new();
    for c in cases() {
        let (status, report) = check(&c.spec);
        let found = report["diagnostics"].as_array().unwrap();
        let Some(d) = found.iter().find(|d| d["code"] == c.code) else {
            failures.push(format!("{}: not reported; got {report}", c.code));
            continue;
        };
        let got = (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64(), status);
        let want = (Some("spec.yaml"), Some(c.line), Some(c.column), c.status);
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}: {}", c.code, d["message"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_covers_every_documented_spec_code() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let documented: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| S0"))
        .filter(|rest| !rest.starts_with('4')) // scenario codes have their own tests
        .map(|rest| &rest[..3])
        .collect();
    let tested: Vec<String> = cases().iter().map(|c| c.code[2..].to_owned()).collect();
    for code in &documented {
        assert!(tested.iter().any(|t| t == code), "S0{code} is documented but not tested");
    }
    assert_eq!(documented.len(), tested.len(), "every tested code is documented");
}
