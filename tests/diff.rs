//! `sluice diff OLD NEW`: structural changes, their impact on sample
//! requests, and the exit status CI relies on.

use assert_cmd::Command;
use serde_json::Value;

const OLD: &str = "\
version: 1
listeners:
  - { name: public, bind: 127.0.0.1:8080 }
pools:
  - name: users
    balance: weighted_round_robin
    endpoints:
      - { address: 127.0.0.1:9001, weight: 1 }
      - { address: 127.0.0.1:9002, weight: 1 }
  - name: teams
    endpoints: [{ address: 127.0.0.1:9003 }]
routes:
  - name: get-user
    match: { host: api.example.test, path: \"/users/{id}\", methods: [GET] }
    to: users
  - name: teams
    match: { host: api.example.test, path: \"/teams/{*rest}\" }
    to: teams
";

/// Run `diff` on two spec texts; the exit status and stdout.
fn diff(old: &str, new: &str, format: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.yaml"), old).unwrap();
    std::fs::write(dir.path().join("new.yaml"), new).unwrap();
    let out = Command::cargo_bin("sluice")
        .unwrap()
        .current_dir(dir.path())
        .args(["diff", "old.yaml", "new.yaml", "--format", format])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap(), text(&out.stdout), text(&out.stderr))
}

fn diff_json(old: &str, new: &str) -> (i32, Value) {
    let (status, stdout, stderr) = diff(old, new, "json");
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (status, doc)
}

#[test]
fn identical_specs_change_nothing() {
    let (status, stdout, _) = diff(OLD, OLD, "human");
    assert_eq!(status, 0);
    assert!(stdout.starts_with("no changes\nimpact: none of "), "{stdout}");
}

#[test]
fn an_added_route_takes_requests() {
    let new = format!(
        "{OLD}  - name: me\n    match: {{ host: api.example.test, path: /users/me, methods: [GET] }}\n    to: teams\n"
    );
    let (status, doc) = diff_json(OLD, &new);
    assert_eq!(status, 1, "{doc}");
    assert_eq!(doc["routes"]["added"], serde_json::json!(["me"]));
    assert_eq!(doc["handled_differently"], true);
    let changed = doc["impact"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{doc}");
    assert_eq!(changed[0]["request"]["path"], "/users/me");
    assert_eq!(changed[0]["old"]["route"], "get-user");
    assert_eq!(changed[0]["new"]["route"], "me");
    assert_eq!(changed[0]["new"]["pool"], "teams");

    let (_, human, _) = diff(OLD, &new, "human");
    assert!(human.contains("routes\n  + me\n"), "{human}");
    assert!(human.contains("impact: 1 of "), "{human}");
    assert!(human.contains("  GET http://api.example.test/users/me on public\n"), "{human}");
}

#[test]
fn a_changed_weight_changes_handling() {
    let new = OLD.replacen("9002, weight: 1", "9002, weight: 3", 1);
    let (status, doc) = diff_json(OLD, &new);
    assert_eq!(status, 1, "{doc}");
    let change = &doc["pools"]["changed"][0];
    assert_eq!(change["name"], "users");
    assert_eq!(change["fields"][0]["field"], "/endpoints/1/weight");
    assert_eq!(
        (change["fields"][0]["old"].as_u64(), change["fields"][0]["new"].as_u64()),
        (Some(1), Some(3))
    );
    let changed = doc["impact"]["changed"].as_array().unwrap();
    assert!(!changed.is_empty());
    assert!(changed
        .iter()
        .all(|c| c["old"]["route"] == "get-user" && c["new"]["route"] == "get-user"));
}

#[test]
fn a_reordering_changes_nothing() {
    let (head, routes) = OLD.split_once("routes:\n").unwrap();
    let (first, second) = routes.split_at(routes.find("  - name: teams").unwrap());
    let new = format!("{head}routes:\n{second}{first}");
    assert_ne!(new, OLD);
    let (status, doc) = diff_json(OLD, &new);
    assert_eq!(status, 0, "{doc}");
    assert_eq!(doc["handled_differently"], false);
    assert!(doc["impact"]["requests"].as_u64().unwrap() >= 4, "{doc}");
}

#[test]
fn a_timeout_change_is_listed_and_counts() {
    let new = OLD.replacen("    to: users\n", "    to: users\n    timeout: 5s\n", 1);
    let (status, stdout, _) = diff(OLD, &new, "human");
    assert_eq!(status, 1);
    assert!(stdout.contains("routes\n  ~ get-user\n      /timeout: null -> \"5s\"\n"), "{stdout}");
}

#[test]
fn an_invalid_or_missing_spec_cannot_be_compared() {
    let bad = OLD.replacen("    to: users\n", "    to: nobody\n", 1);
    let (status, stdout, stderr) = diff(OLD, &bad, "json");
    assert_eq!(status, 3);
    assert_eq!(stdout, "");
    assert!(stderr.contains("S0201 unknown-pool"), "{stderr}");
    assert!(stderr.contains("new.yaml is not a valid spec"), "{stderr}");

    Command::cargo_bin("sluice")
        .unwrap()
        .args(["diff", "/nonexistent/old.yaml", "/nonexistent/new.yaml"])
        .assert()
        .code(3);
}

/// Regression: a changed condition value or split weight reroutes requests,
/// and `diff` must say so (it once sampled only bare requests).
#[test]
fn changed_conditions_and_split_weights_are_impact() {
    let dir = tempfile::tempdir().unwrap();
    let head = "version: 1
listeners: [{ name: public, bind: 127.0.0.1:8080 }]
pools:
  - { name: p1, endpoints: [{ address: 127.0.0.1:9001 }] }
  - { name: p2, endpoints: [{ address: 127.0.0.1:9002 }] }
routes:
  - { name: base, match: { path: /orders }, to: p1 }
";
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let beta = |v: &str| {
        format!("{head}  - {{ name: beta, match: {{ path: /orders, headers: [{{ name: x-beta, exact: \"{v}\" }}] }}, to: p2 }}\n")
    };
    let (old, new) = (write("old.yaml", beta("1")), write("new.yaml", beta("2")));
    let out = sluice_diff(&old, &new);
    assert_eq!(out.0, Some(1), "{}", out.1);
    assert!(out.1.contains("-H 'x-beta: 1'"), "{}", out.1);

    let split = |w: u32| {
        format!("{head}  - {{ name: s, match: {{ path: /s }}, to: [{{ pool: p1, weight: {w} }}, {{ pool: p2, weight: {} }}] }}\n", 100 - w)
    };
    let (old, new) = (write("a.yaml", split(50)), write("b.yaml", split(90)));
    let out = sluice_diff(&old, &new);
    assert_eq!(out.0, Some(1), "{}", out.1);
    assert!(
        out.1.contains("split p1 w50, p2 w50") && out.1.contains("split p1 w90, p2 w10"),
        "{}",
        out.1
    );
}

fn sluice_diff(old: &std::path::Path, new: &std::path::Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("diff")
        .arg(old)
        .arg(new)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}
