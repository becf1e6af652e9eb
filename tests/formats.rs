//! Every output format of `sluice check`, as snapshots, and the SARIF log
//! checked against the SARIF 2.1.0 structure it must have.
//!
//! The spec is written to a fresh directory and named relatively, so the
//! snapshots hold no machine paths. Update them with `INSTA_UPDATE=always
//! cargo test --test formats` and review the diff.

use assert_cmd::Command;
use serde_json::Value;

/// An unknown pool, a duplicate route name (a label on
/// the first) and a path that normalisation would change (a warning).
const SPEC: &str = "\
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
      path: /users//{id}
      methods: [GET]
    to: user
  - name: get-user
    match: { path: /teams }
    to: users
";

/// Run `check` with `args` on `SPEC` and return stdout, stderr and status.
fn run(args: &[&str]) -> (String, String, i32) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), SPEC).unwrap();
    let out = Command::cargo_bin("sluice")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .arg("check")
        .args(args)
        .arg("spec.yaml")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code().unwrap())
}

#[test]
fn human() {
    let (stdout, stderr, status) = run(&[]);
    assert_eq!((status, stdout.as_str()), (1, ""));
    insta::assert_snapshot!("human", stderr);
}

#[test]
fn json() {
    let (stdout, _, status) = run(&["--format", "json"]);
    assert_eq!(status, 1);
    insta::assert_snapshot!("json", stdout);
}

#[test]
fn github() {
    let (stdout, _, status) = run(&["--format", "github"]);
    assert_eq!(status, 1);
    insta::assert_snapshot!("github", stdout);
}

#[test]
fn sarif() {
    let (stdout, _, status) = run(&["--format", "sarif"]);
    assert_eq!(status, 1);
    // The tool version changes with every release; the rest must not.
    let stable = stdout.replace(env!("CARGO_PKG_VERSION"), "[version]");
    insta::assert_snapshot!("sarif", stable);
}

#[test]
fn sarif_has_the_structure_code_scanning_reads() {
    let (stdout, _, _) = run(&["--format", "sarif"]);
    let log: Value = serde_json::from_str(&stdout).unwrap();

    // The official schema may not be redistributed here, so the test uses
    // its own schema of the subset Sluice writes, with SARIF's names.
    let schema: Value = serde_json::from_str(include_str!("fixtures/sarif-subset.schema.json"))
        .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{stdout}");

    // What a schema cannot say: indices point at the right rules, every
    // rule is used, and regions end after they start.
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{stdout}");
    for r in results {
        let rule = &rules[r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], r["ruleId"]);
        let places = r["locations"].as_array().unwrap().iter();
        let related = r["relatedLocations"].as_array().into_iter().flatten();
        for place in places.chain(related) {
            let region = &place["physicalLocation"]["region"];
            let start = (region["startLine"].as_u64(), region["startColumn"].as_u64());
            let end = (region["endLine"].as_u64(), region["endColumn"].as_u64());
            assert!(end > start, "an empty or reversed region: {region}");
            assert_eq!(place["physicalLocation"]["artifactLocation"]["uri"], "spec.yaml");
        }
    }
    for rule in rules {
        assert!(results.iter().any(|r| r["ruleId"] == rule["id"]), "unused rule {rule}");
    }
    let duplicate = results.iter().find(|r| r["ruleId"] == "S0202").unwrap();
    let label = &duplicate["relatedLocations"][0];
    assert_eq!(label["physicalLocation"]["region"]["startLine"], 10);
    assert_eq!(label["message"]["text"], "first used here");
}

#[test]
fn output_file_holds_the_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), SPEC).unwrap();
    Command::cargo_bin("sluice")
        .unwrap()
        .current_dir(dir.path())
        .args(["check", "--format", "sarif", "-o", "report.sarif", "spec.yaml"])
        .assert()
        .code(1)
        .stdout("");
    let written = std::fs::read_to_string(dir.path().join("report.sarif")).unwrap();
    let log: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(log["version"], "2.1.0");
}
