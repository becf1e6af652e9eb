//! Specs split over several files with `include:`: every finding names the
//! file and line it is about, whichever file that is.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn sluice() -> Command {
    Command::cargo_bin("sluice").expect("the sluice binary is built for tests")
}

const MAIN: &str = "\
version: 1
include: [\"teams/*.yaml\"]
listeners:
  - { name: public, bind: 127.0.0.1:8080 }
pools:
  - { name: shared, endpoints: [{ address: 127.0.0.1:9001 }] }
routes:
  - { name: health, match: { path: /health }, to: shared }
";

const ORDERS: &str = "\
pools:
  - { name: orders, endpoints: [{ address: 127.0.0.1:9002 }] }
routes:
  - name: get-order
    match: { path: \"/orders/{id}\", methods: [GET] }
    to: orders
";

const USERS: &str = "\
routes:
  - name: get-user
    match: { path: \"/users/{id}\" }
    to: shared
";

fn layout(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("teams")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn check_json(main: &Path) -> (i32, Value) {
    let out = sluice().args(["check", "--format", "json"]).arg(main).output().unwrap();
    (out.status.code().unwrap(), serde_json::from_slice(&out.stdout).unwrap())
}

/// `(file name, code, line, column)` of every finding.
fn findings(report: &Value) -> Vec<(String, String, u64, u64)> {
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let file = d["file"].as_str().unwrap();
            let name = Path::new(file).file_name().unwrap().to_string_lossy().into_owned();
            let n = |k: &str| d[k].as_u64().unwrap_or(0);
            (name, d["code"].as_str().unwrap().to_owned(), n("line"), n("column"))
        })
        .collect()
}

#[test]
fn included_files_join_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    layout(
        dir.path(),
        &[("main.yaml", MAIN), ("teams/orders.yaml", ORDERS), ("teams/users.yaml", USERS)],
    );
    let main = dir.path().join("main.yaml");
    let (status, report) = check_json(&main);
    assert_eq!(status, 0, "{report}");

    let out = sluice().arg("explain").arg(&main).args(["GET", "/orders/7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("route     get-order") && text.contains("pool      orders"), "{text}");

    let plan = dir.path().join("main.plan");
    sluice().arg("compile").arg(&main).arg("-o").arg(&plan).assert().code(0);
}

#[test]
fn findings_point_into_the_file_they_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let users = USERS.replace("to: shared", "to: sharde");
    let orders =
        format!("{ORDERS}  - name: health\n    match: {{ path: /status }}\n    to: orders\n");
    layout(
        dir.path(),
        &[("main.yaml", MAIN), ("teams/orders.yaml", &orders), ("teams/users.yaml", &users)],
    );
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    let found = findings(&report);
    assert!(found.contains(&("orders.yaml".into(), "S0202".into(), 7, 11)), "{found:?}");
    assert!(found.contains(&("users.yaml".into(), "S0201".into(), 4, 9)), "{found:?}");

    // The duplicate's label points back into the main file.
    let duplicate =
        report["diagnostics"].as_array().unwrap().iter().find(|d| d["code"] == "S0202").unwrap();
    let label = &duplicate["labels"][0];
    assert!(label["file"].as_str().unwrap().ends_with("main.yaml"), "{label}");
    assert_eq!(label["line"], 8);

    // The human report names the other file in its help.
    let out = sluice().arg("check").arg(dir.path().join("main.yaml")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("orders.yaml:7:11"), "{stderr}");
    assert!(stderr.contains("main.yaml:8:"), "{stderr}");
}

#[test]
fn bad_includes_are_located_findings() {
    let dir = tempfile::tempdir().unwrap();
    let main = MAIN.replace("teams/*.yaml", "temas/*.yaml");
    layout(dir.path(), &[("main.yaml", &main)]);
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    assert_eq!(findings(&report), [("main.yaml".to_owned(), "S0004".to_owned(), 2, 11)]);

    // A fragment may not carry a version or include others, and its YAML errors are its own.
    let dir = tempfile::tempdir().unwrap();
    layout(
        dir.path(),
        &[
            ("main.yaml", MAIN),
            ("teams/a.yaml", "version: 1\nroutes: []\n"),
            ("teams/b.yaml", "routes: [\n"),
        ],
    );
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    let found = findings(&report);
    assert!(found.contains(&("a.yaml".into(), "S0101".into(), 1, 1)), "{found:?}");
    assert!(found.iter().any(|f| f.0 == "b.yaml" && f.1 == "S0001"), "{found:?}");
}

#[test]
fn a_pattern_matching_too_many_files_stops_at_the_limit() {
    // 1,200 matches: the walk stops past the thousandth, and says so once.
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), &[("main.yaml", MAIN)]);
    for n in 0..1_200 {
        std::fs::write(dir.path().join(format!("teams/t{n:04}.yaml")), "routes: []\n").unwrap();
    }
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    let found = findings(&report);
    assert_eq!(found, [("main.yaml".to_owned(), "S0004".to_owned(), 2, 11)], "{report}");
    let message = report["diagnostics"][0]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "include `teams/*.yaml` matches more than 1000 files, the most a spec includes"
    );

    // Past the limit with the entries before it: the entry that went past
    // it is named.
    let main = MAIN.replace("[\"teams/*.yaml\"]", "[\"teams/t00*.yaml\", \"teams/*.yaml\"]");
    std::fs::write(dir.path().join("main.yaml"), main).unwrap();
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    assert_eq!(findings(&report), [("main.yaml".to_owned(), "S0004".to_owned(), 2, 30)]);
    let message = report["diagnostics"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "include `teams/*.yaml` matches more than 1000 files, with the entries before it,"
        ),
        "{message}"
    );
}

#[test]
fn a_pattern_is_walked_from_its_literal_directory_within_a_bound() {
    // Beside `teams/`, a tree of more entries than all the includes of one
    // spec may read, none of them a spec.
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), &[("main.yaml", MAIN), ("teams/orders.yaml", ORDERS)]);
    for n in 0..10 {
        let sub = dir.path().join(format!("big/d{n}"));
        std::fs::create_dir_all(&sub).unwrap();
        for m in 0..1_010 {
            std::fs::write(sub.join(format!("f{m:04}.txt")), "").unwrap();
        }
    }
    let main = dir.path().join("main.yaml");
    let include = |patterns: &str| {
        std::fs::write(&main, MAIN.replace("[\"teams/*.yaml\"]", patterns)).unwrap();
        check_json(&main)
    };

    // A pattern under `teams/` never looks into `big/`.
    let (status, report) = include("[\"teams/**/*.yaml\"]");
    assert_eq!(status, 0, "{report}");

    // One that starts above both stops at the bound, and says which
    // pattern, from where.
    let (status, report) = include("[\"teams/*.yaml\", \"**/*.json\"]");
    assert_eq!(status, 1);
    assert_eq!(findings(&report), [("main.yaml".to_owned(), "S0004".to_owned(), 2, 27)]);
    let message = report["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("`**/*.json`"), "{message}");
    assert!(message.contains("10000 directory entries"), "{message}");
    assert!(message.contains(&format!("walking {}", dir.path().display())), "{message}");
    assert!(message.contains("stopped in "), "{message}");

    // A pattern whose directory does not exist ends there, and says so.
    let (status, report) = include("[\"teams/*.yaml\", \"nowhere/**/*.yaml\"]");
    assert_eq!(status, 1);
    assert_eq!(findings(&report), [("main.yaml".to_owned(), "S0004".to_owned(), 2, 27)]);
    let finding = &report["diagnostics"][0];
    assert!(finding["message"].as_str().unwrap().contains("matches no file"), "{finding}");
    let help = finding["help"].as_str().unwrap();
    let missing = dir.path().join("nowhere");
    assert_eq!(help, format!("there is no directory {}", missing.display()), "{finding}");
}

#[test]
fn a_spec_that_includes_itself_is_told_so_and_read_once() {
    // By name, and by a pattern that matches nothing else; beside a pattern
    // that reaches the team files, one of them twice.
    let dir = tempfile::tempdir().unwrap();
    let main = MAIN.replace(
        "[\"teams/*.yaml\"]",
        "[\"main.yaml\", \"*.yaml\", \"teams/*.yaml\", \"teams/users.yaml\"]",
    );
    layout(
        dir.path(),
        &[("main.yaml", &main), ("teams/orders.yaml", ORDERS), ("teams/users.yaml", USERS)],
    );
    let path = dir.path().join("main.yaml");
    let (status, report) = check_json(&path);
    assert_eq!(status, 0, "warnings only: {report}");
    let expected = [("main.yaml", 2, 11), ("main.yaml", 2, 24)];
    let expected: Vec<_> =
        expected.iter().map(|&(f, l, c)| (f.to_owned(), "S0005".to_owned(), l, c)).collect();
    assert_eq!(findings(&report), expected, "{report}");
    assert_eq!(report["diagnostics"][0]["severity"], "warning");
    let message = |n: usize| report["diagnostics"][n]["message"].as_str().unwrap().to_owned();
    assert_eq!(message(0), "include `main.yaml` names this spec itself");
    assert_eq!(message(1), "include `*.yaml` matches this spec itself");
    sluice().args(["check", "--deny", "warnings"]).arg(&path).assert().code(1);

    // Every route and pool once: the main spec's and each team's.
    let plan = dir.path().join("main.plan");
    let out = sluice().arg("compile").arg(&path).arg("-o").arg(&plan).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("(3 routes, 2 pools, 1 listener,"), "{stderr}");

    // A cycle through an included file: its `include` is an error of its
    // own, and the entry that leads back is named.
    let dir = tempfile::tempdir().unwrap();
    let users = format!("include: [\"../main.yaml\", \"users.yaml\"]\n{USERS}");
    layout(
        dir.path(),
        &[("main.yaml", MAIN), ("teams/orders.yaml", ORDERS), ("teams/users.yaml", &users)],
    );
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    let found = findings(&report);
    assert_eq!(
        found,
        [
            ("users.yaml".to_owned(), "S0101".to_owned(), 1, 1),
            ("users.yaml".to_owned(), "S0005".to_owned(), 1, 11),
            ("users.yaml".to_owned(), "S0005".to_owned(), 1, 27),
        ],
        "{report}"
    );
    assert_eq!(
        report["diagnostics"][1]["message"],
        "include `../main.yaml` names the spec that includes this file"
    );
    assert_eq!(report["diagnostics"][2]["message"], "include `users.yaml` names this file itself");
}

/// A hard link is the file it links to: one to the spec is the spec
/// itself, a warning as a symbolic link to it is, and one to an included
/// file that a pattern also matches is read once.
#[cfg(unix)]
#[test]
fn a_hard_link_to_the_spec_or_an_included_file_is_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = MAIN.replace("[\"teams/*.yaml\"]", "[\"hard.yaml\", \"teams/*.yaml\"]");
    layout(dir.path(), &[("main.yaml", &main), ("teams/users.yaml", USERS)]);
    std::fs::hard_link(dir.path().join("main.yaml"), dir.path().join("hard.yaml")).unwrap();
    let users = dir.path().join("teams/users.yaml");
    std::fs::hard_link(&users, dir.path().join("teams/users-again.yaml")).unwrap();
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 0, "warnings only: {report}");
    assert_eq!(
        findings(&report),
        [("main.yaml".to_owned(), "S0005".to_owned(), 2, 11)],
        "{report}"
    );
    let message = report["diagnostics"][0]["message"].as_str().unwrap();
    assert_eq!(message, "include `hard.yaml` names this spec itself");

    // An included file's entry that leads back to the spec by a hard link.
    let looped = format!("include: [\"../hard.yaml\"]\n{USERS}");
    std::fs::remove_file(dir.path().join("teams/users-again.yaml")).unwrap();
    std::fs::write(&users, looped).unwrap();
    let (status, report) = check_json(&dir.path().join("main.yaml"));
    assert_eq!(status, 1);
    let found = findings(&report);
    assert!(found.contains(&("users.yaml".to_owned(), "S0005".to_owned(), 1, 11)), "{report}");
    let cycle = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "S0005" && d["file"].as_str().unwrap().ends_with("users.yaml"))
        .unwrap();
    assert_eq!(cycle["message"], "include `../hard.yaml` names the spec that includes this file");
}

/// `serve` refuses a spec with an error, with a line per error naming the
/// file it is in; a control character in that file's name, or in the
/// spec's, reaches the log as its escape, never as the raw byte a
/// terminal would act on.
#[test]
fn serve_logs_hidden_characters_of_file_names_as_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let broken = ORDERS.replace("    to: orders", "    to: nowhere");
    layout(dir.path(), &[("main\u{1b}[2J.yaml", MAIN), ("teams/o\u{1b}[31m.yaml", &broken)]);
    let out = sluice().arg("serve").arg(dir.path().join("main\u{1b}[2J.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains('\u{1b}'), "a raw escape character: {stderr:?}");
    assert!(stderr.contains("main\\u{1b}[2J.yaml is not a valid spec (1 error(s))"), "{stderr}");
    let line = format!("  {}:6:9: error[S0201 unknown-pool]: route `get-order`", {
        dir.path().join("teams/o\\u{1b}[31m.yaml").display()
    });
    assert!(stderr.contains(&line), "{stderr}");
}

/// An absolute pattern that matches no file is not said to be relative to
/// the spec's directory: the help says it is matched as written, and where
/// a relative one would have been looked for.
#[test]
fn an_absolute_pattern_matching_nothing_is_not_called_relative() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), &[("teams/orders.yaml", ORDERS)]);
    let main = dir.path().join("main.yaml");
    let help = |pattern: &Path| {
        let pattern = pattern.display();
        std::fs::write(&main, MAIN.replace("teams/*.yaml", &pattern.to_string())).unwrap();
        let (status, report) = check_json(&main);
        assert_eq!(status, 1, "{report}");
        let finding = &report["diagnostics"][0];
        assert_eq!(finding["message"], format!("include `{pattern}` matches no file"), "{report}");
        finding["help"].as_str().unwrap().to_owned()
    };
    let absolute = format!(
        "the pattern is absolute, so it is matched as written; without the leading `/` it \
         would be relative to {}",
        dir.path().display()
    );
    assert_eq!(help(&dir.path().join("teams/none.yaml")), absolute);
    assert_eq!(help(&dir.path().join("teams/*.json")), absolute);
    let missing = dir.path().join("nowhere");
    let there_is_none = format!("there is no directory {}", missing.display());
    assert_eq!(help(&missing.join("*.yaml")), there_is_none);
    // A relative pattern's help is as it was.
    let relative = format!("patterns are relative to {}", dir.path().display());
    assert_eq!(help(Path::new("teams/*.json")), relative);
}
