//! Regressions found by feeding `sluice check` and `explain` hostile input.
//! Each test names the fault it guards against.

use std::io::Read;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

fn sluice() -> Command {
    Command::cargo_bin("sluice").expect("the sluice binary is built for tests")
}

fn write_spec(dir: &tempfile::TempDir, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `(code, line, column)` of every finding, and the exit status.
fn check(bytes: &[u8]) -> (i32, Vec<(String, u64, u64)>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(&dir, bytes);
    let out = sluice().args(["check", "--format", "json"]).arg(&path).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let n = |k: &str| d[k].as_u64().unwrap_or(0);
            (d["code"].as_str().unwrap().to_owned(), n("line"), n("column"))
        })
        .collect();
    (out.status.code().unwrap(), found, report)
}

const BASE: &str = "\
version: 1
listeners:
  - { name: public, bind: 127.0.0.1:8080 }
pools:
  - { name: p, endpoints: [{ address: 127.0.0.1:9001 }] }
routes:
  - name: r
    match: { path: /x, methods: [GET] }
    to: p
";

#[test]
fn a_closed_stdout_does_not_panic() {
    // Thousands of findings, far more than a pipe buffer holds.
    let mut spec = String::from(BASE);
    for i in 0..3000 {
        spec.push_str(&format!("  - {{ name: q{i}, match: {{ path: /q{i} }}, to: missing }}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(&dir, spec.as_bytes());
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader is gone now; the check still ends with its own status.
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn connect_is_not_a_routable_method() {
    let (status, found, _) = check(BASE.replace("methods: [GET]", "methods: [CONNECT]").as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found, [("S0104".to_owned(), 8, 34)]);
}

#[test]
fn repeated_methods_and_listeners_are_findings() {
    let (status, found, _) =
        check(BASE.replace("methods: [GET]", "methods: [GET, GET]").as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found, [("S0104".to_owned(), 8, 33)]);
}

#[test]
fn a_wildcard_bind_overlaps_a_specific_one_on_the_same_port() {
    let spec = BASE.replace(
        "  - { name: public, bind: 127.0.0.1:8080 }\n",
        "  - { name: public, bind: 127.0.0.1:8080 }\n  - { name: all, bind: 0.0.0.0:8080 }\n",
    );
    let (status, found, report) = check(spec.as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found, [("S0209".to_owned(), 4, 24)]);
    let message = report["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("overlaps 127.0.0.1:8080"), "{message}");
}

#[test]
fn invalid_utf8_is_a_located_finding() {
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.extend_from_slice(b"# caf\xe9\n");
    let (status, found, _) = check(&bytes);
    assert_eq!(status, 1);
    assert_eq!(found, [("S0001".to_owned(), 10, 6)]);
}

#[test]
fn an_empty_file_still_has_a_location() {
    let (status, found, _) = check(b"# nothing here\n");
    assert_eq!(status, 1);
    assert_eq!(found, [("S0103".to_owned(), 1, 1)]);
}

#[test]
fn a_fractional_version_is_a_wrong_type() {
    let (status, found, _) = check(BASE.replace("version: 1", "version: 1.5").as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found.first().map(|f| f.0.as_str()), Some("S0103"));
}

#[test]
fn host_labels_cannot_start_or_end_with_a_hyphen() {
    let spec = BASE.replace("match: { path: /x,", "match: { host: -api.example.test, path: /x,");
    let (status, found, _) = check(spec.as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found[0].0, "S0208");
}

#[test]
fn control_characters_in_values_reach_messages_escaped() {
    let spec =
        format!("{BASE}  - name: \"a\\u001b[31mb\"\n    match: {{ path: /y }}\n    to: nope\n");
    let (status, _, report) = check(spec.as_bytes());
    assert_eq!(status, 1);
    let text = report.to_string();
    assert!(!text.contains('\u{1b}'), "raw escape in {text}");
}

/// The human report's excerpt of `bytes` that quotes `shown`: its header
/// (`spec.yaml:LINE:COLUMN`), the quoted line that contains `shown`, and the
/// column (in characters) where the underline or marker under it starts,
/// with its width.
fn excerpt(bytes: &[u8], shown: &str) -> (String, String, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(&dir, bytes);
    let out = sluice().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'), "raw in {text}");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.contains(shown)).unwrap_or_else(|| panic!("{text}"));
    let header = lines[..at].iter().rev().find_map(|l| l.split_once("spec.yaml:")).unwrap().1;
    let header = header.trim_end_matches(']').to_owned();
    let marks: Vec<char> = lines[at + 1].chars().collect();
    let start = marks.iter().position(|c| "─┬▲".contains(*c)).unwrap_or_else(|| panic!("{text}"));
    let width = marks[start..].iter().take_while(|c| "─┬▲".contains(**c)).count();
    (header, lines[at].to_owned(), start, width)
}

#[test]
fn control_and_reordering_characters_reach_excerpts_escaped_under_their_labels() {
    // An escape sequence is not valid YAML: the finding is at the ESC, on a
    // line that also reorders its text with U+202E before it.
    let spec = format!("{BASE}  - name: \"r\u{202e}x\u{1b}[31my\"\n");
    let (header, line, start, width) = excerpt(spec.as_bytes(), "[31my");
    assert!(line.ends_with("- name: \"r\\u{202e}x\\u{1b}[31my\""), "{line}");
    let column = line.chars().position(|c| c == '\\').unwrap() + "\\u{202e}x".len();
    assert_eq!((start, width), (column, 1), "the marker is under the ESC's escape:\n{line}");
    assert_eq!(header, "10:15", "the column counts the file's characters");

    // A value with U+202E that a rule finds fault with: the underline
    // covers the whole value as shown, escape included.
    let spec = BASE.replace("    to: p\n", "    to: \"p\u{202e}q\"\n");
    let (header, line, start, width) = excerpt(spec.as_bytes(), "to: \"p");
    assert!(line.ends_with("to: \"p\\u{202e}q\""), "{line}");
    let column = line.chars().position(|c| c == '"').unwrap();
    let value = "\"p\\u{202e}q\"";
    assert_eq!((start, width), (column, value.len()), "underline under the value:\n{line}");
    assert_eq!(header, "9:9");
}

#[test]
fn a_file_name_beside_an_excerpt_is_escaped_too() {
    // An included file is named by a glob, so its name comes from the
    // directory, not from the command line.
    let dir = tempfile::tempdir().unwrap();
    let main = BASE.replacen("version: 1\n", "version: 1\ninclude: [\"teams/*.yaml\"]\n", 1);
    let path = write_spec(&dir, main.as_bytes());
    std::fs::create_dir(dir.path().join("teams")).unwrap();
    let team = "routes:\n  - { name: p, match: { path: /t }, to: nope }\n";
    std::fs::write(dir.path().join("teams/a\u{1b}[2Jb.yaml"), team).unwrap();
    let out = sluice().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(!text.contains('\u{1b}'), "raw escape in {text}");
    assert!(text.contains("a\\u{1b}[2Jb.yaml:2:41]"), "{text}");
}

/// Invisible characters other than controls and reordering ones (zero
/// width space and joiner, soft hyphen, byte order mark, Mongolian vowel
/// separator, line and paragraph separators) in a file name are written as
/// escapes too, in the human report and in GitHub annotations.
#[test]
fn invisible_characters_in_a_file_name_are_escaped() {
    let invisible =
        ['\u{200b}', '\u{200d}', '\u{ad}', '\u{feff}', '\u{180e}', '\u{2028}', '\u{2029}'];
    let dir = tempfile::tempdir().unwrap();
    let name: String = std::iter::once('a').chain(invisible).chain("b.yaml".chars()).collect();
    let path = dir.path().join(&name);
    let spec = BASE.replace("    to: p\n", "    to: nope\n");
    std::fs::write(&path, spec).unwrap();
    let shown = "a\\u{200b}\\u{200d}\\u{ad}\\u{feff}\\u{180e}\\u{2028}\\u{2029}b.yaml";

    let out = sluice().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(!text.contains(invisible), "a raw invisible character in {text:?}");
    assert!(text.contains(shown), "{text}");

    let out = sluice().args(["check", "--format", "github"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(invisible), "a raw invisible character in {text:?}");
    assert!(text.contains(shown), "{text}");
}

#[test]
fn non_ascii_templates_match_the_encoded_request_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_spec(&dir, BASE.replace("path: /x", "path: /café").as_bytes());
    for url in ["/caf%C3%A9", "/caf%c3%a9", "/café"] {
        let out = sluice().arg("explain").arg(&path).args(["GET", url]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn trailing_slash_ignore_matches_both_forms_and_ties_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let spec = BASE.replace(
        "match: { path: /x, methods: [GET] }",
        "match: { path: /x, trailing_slash: ignore }",
    );
    let path = write_spec(&dir, spec.as_bytes());
    for url in ["/x", "/x/"] {
        let out = sluice().arg("explain").arg(&path).args(["GET", url]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{url}");
    }
    let strict = write_spec(&dir, BASE.as_bytes());
    sluice().arg("explain").arg(&strict).args(["GET", "/x/"]).assert().code(1);

    let tied = format!("{spec}  - {{ name: s, match: {{ path: /x/ }}, to: p }}\n");
    let (status, found, _) = check(tied.as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found[0].0, "S0203");
}

#[test]
fn a_route_that_names_a_port_matches_only_that_port() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        "{BASE}  - {{ name: tls-port, match: {{ host: \"api.test:8443\", path: /x }}, to: p }}\n  - {{ name: any-port, match: {{ host: api.test, path: /x }}, to: p }}\n"
    );
    let path = write_spec(&dir, spec.as_bytes());
    let route = |url: &str| {
        let out = sluice().arg("explain").arg(&path).args(["GET", url]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().next().unwrap_or_default().trim_start_matches("route").trim().to_owned()
    };
    assert_eq!(route("http://api.test:8443/x"), "tls-port");
    assert_eq!(route("http://API.test:8443/x"), "tls-port");
    assert_eq!(route("http://api.test/x"), "any-port");
    assert_eq!(route("http://api.test:80/x"), "any-port");
    assert_eq!(route("http://api.test:9000/x"), "any-port");

    let (status, found, _) =
        check(BASE.replace("path: /x,", "host: \"api.test:0\", path: /x,").as_bytes());
    assert_eq!(status, 1);
    assert_eq!(found[0].0, "S0208");
}

/// Regression: `/café` was called non-normal although templates compile to
/// the canonical spelling; only a change of shape is a finding.
#[test]
fn spelling_is_not_a_non_normal_path_but_shape_is() {
    for (path, warned) in [("/café", false), ("/%7Euser", false), ("/a//b", true), ("/a/./b", true)]
    {
        let (_, found, _) =
            check(BASE.replace("path: /x", &format!("path: \"{path}\"")).as_bytes());
        assert_eq!(found.iter().any(|f| f.0 == "S0213"), warned, "{path}: {found:?}");
    }
}

/// Regression: the example request of an ambiguity found through the other
/// trailing-slash shape named a path the strict route does not match.
#[test]
fn ambiguity_examples_use_the_shape_that_tied() {
    let spec = format!(
        "{BASE}  - {{ name: strict, match: {{ path: /files }}, to: p }}\n  - {{ name: loose, match: {{ path: /files/, trailing_slash: ignore }}, to: p }}\n"
    );
    let (status, _, report) = check(spec.as_bytes());
    assert_eq!(status, 1);
    let message = report["diagnostics"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("http://example.test/files on"), "{message}");
}

/// Retrying on `timeout` without a `per_try_timeout` is an ignored setting
/// only when no try can time out before the route does: the pool's stall
/// clock is what times a try out then, so it must be shorter than the
/// route's `timeout` to leave time for another.
#[test]
fn retry_on_timeout_without_a_per_try_timeout_depends_on_the_stall_clock() {
    let retrying =
        BASE.replace("    to: p\n", "    to: p\n    retries: { attempts: 2, on: [timeout] }\n");
    let timed = retrying.replace("    to: p\n", "    to: p\n    timeout: 2s\n");
    let codes = |spec: &str| check(spec.as_bytes()).1.into_iter().map(|f| f.0).collect::<Vec<_>>();

    let ignored = |spec: &str| codes(spec).contains(&"S0221".to_owned());

    // The default stall clock (60 s) outlasts a 2 s route timeout.
    assert!(ignored(&timed));
    assert!(ignored(&timed.replace("{ name: p,", "{ name: p, stall_timeout: 2s,")));
    // A shorter stall clock, or no route timeout at all, leaves time to retry.
    assert!(!ignored(&timed.replace("{ name: p,", "{ name: p, stall_timeout: 500ms,")));
    assert!(!ignored(&retrying));
    // A stall timeout is a duration like the others.
    let bad = BASE.replace("{ name: p,", "{ name: p, stall_timeout: 0s,");
    assert_eq!(codes(&bad), ["S0206"]);
    let bad = BASE.replace("name: public,", "name: public, stall_timeout: 0ms,");
    assert_eq!(codes(&bad).first().map(String::as_str), Some("S0206"));
}

/// A malformed duration is one finding, S0206 at the value, wherever it is
/// written: the schema's pattern and the settings check used to report it
/// twice, as S0104 and S0206, for every duration but a route's `timeout`.
/// The spec below sets each of the schema's eighteen durations wrongly.
#[test]
fn a_malformed_duration_is_one_finding_in_every_setting() {
    let (status, found, report) = check(EVERY_DURATION.as_bytes());
    assert_eq!(status, 1, "{report}");
    let lines: Vec<u64> = found.iter().map(|(_, line, _)| *line).collect();
    assert_eq!(found.len(), 18, "one finding per bad value: {found:?}");
    assert!(found.iter().all(|(code, _, _)| code == "S0206"), "{found:?}");
    let mut distinct = lines.clone();
    distinct.dedup();
    assert_eq!(distinct, lines, "one per line, in order: {found:?}");
}

/// A duration too long for 64-bit nanoseconds passed `check` and was
/// silently cut to about 584 years where it was used (scenarios already
/// refused it). Every spec duration refuses it, saying why.
#[test]
fn a_duration_too_long_for_the_clock_is_refused_in_every_setting() {
    let spec = EVERY_DURATION.replace(" s\n", "9999999999999h\n");
    assert_eq!(spec.matches("9999999999999h").count(), 18);
    let (status, found, report) = check(spec.as_bytes());
    assert_eq!(status, 1, "{report}");
    assert_eq!(found.len(), 18, "one finding per long value: {found:?}");
    assert!(found.iter().all(|(code, _, _)| code == "S0206"), "{found:?}");
    for d in report["diagnostics"].as_array().unwrap() {
        let message = d["message"].as_str().unwrap();
        assert!(
            message.ends_with("is too long; the longest duration is about 584 years"),
            "{message}"
        );
    }
    // The longest that fits is accepted.
    let longest = BASE.replace("    to: p\n", "    to: p\n    timeout: 5124095h\n");
    assert_eq!(check(longest.as_bytes()).1, []);
    let longer = BASE.replace("    to: p\n", "    to: p\n    timeout: 5124096h\n");
    assert_eq!(check(longer.as_bytes()).1, [("S0206".to_owned(), 10, 14)]);
}

/// Every duration setting of a spec, each written `N s`.
const EVERY_DURATION: &str = "\
version: 1
listeners:
  - name: public
    bind: 127.0.0.1:8080
    head_timeout: 1 s
    idle_timeout: 2 s
    stall_timeout: 3 s
pools:
  - name: p
    connect_timeout: 4 s
    idle_timeout: 5 s
    stall_timeout: 6 s
    resolve_interval: 7 s
    endpoints: [{ address: 127.0.0.1:9001 }]
    health_check:
      path: /healthz
      interval: 8 s
      jitter: 9 s
      timeout: 10 s
    outlier_detection:
      max_ejection_percent: 100
      base_ejection: 11 s
      max_ejection: 12 s
    slow_start:
      window: 13 s
routes:
  - name: r
    match: { path: /x, methods: [GET] }
    to: p
    timeout: 14 s
    retries:
      attempts: 2
      per_try_timeout: 15 s
      backoff:
        base: 16 s
        max: 17 s
    retry_budget:
      percent: 20
      window: 18 s
";

/// A number that its setting's type cannot hold stopped the reading of the
/// spec with serde's words ("invalid value: invalid value: integer
/// `4294967296`, expected u32"), and one behind another schema error was
/// not reported at all. Each is a finding that names the key and the
/// range, all in one run, and the rules after the schema still run
/// (saying nothing about the stand-in that takes the value's place: the
/// weight here is no reason for the warning that weights are ignored).
#[test]
fn numbers_out_of_range_are_each_reported_in_words() {
    let spec = BASE
        .replace(
            "  - { name: p, endpoints: [{ address: 127.0.0.1:9001 }] }\n",
            "  - name: p
    circuit_breaker: { max_connections: 4294967296, max_requests: -1, max_pending: 3.0 }
    endpoints: [{ address: 127.0.0.1:9001, weight: 99999999999999999999 }]
    tiemout: 1s
",
        )
        .replace("    to: p\n", "    to: q\n");
    let (status, found, report) = check(spec.as_bytes());
    assert_eq!(status, 1);
    let messages: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    let want = [
        ("S0301", 5, 11, "pool `p` is not used by any route"),
        ("S0104", 6, 41, "`pools[0].circuit_breaker.max_connections` must be from 1 to 4294967295, found `4294967296`"),
        ("S0104", 6, 67, "`pools[0].circuit_breaker.max_requests` must be from 1 to 4294967295, found `-1`"),
        ("S0103", 6, 84, "`pools[0].circuit_breaker.max_pending` must be written as a whole number, found `3.0`"),
        ("S0104", 7, 52, "`pools[0].endpoints[0].weight` must be from 0 to 10000, found `99999999999999999999`"),
        ("S0101", 8, 5, "unknown key `tiemout` in `pools[0]`"),
        ("S0201", 12, 9, "route `r` sends to pool `q`, which is not defined"),
    ];
    let got: Vec<(&str, u64, u64, &str)> =
        found.iter().zip(&messages).map(|((c, l, k), m)| (c.as_str(), *l, *k, *m)).collect();
    assert_eq!(got, want);
}

/// A malformed size was answered with the units of the widest size setting
/// (`B, KiB, MiB or GiB`) whatever the setting, so `max_head_size` was
/// told it could be written in GiB and then refused `1GiB` for it: each
/// setting's help now lists the units it takes. And a size below the
/// setting's least, like other values out of range, names its key.
#[test]
fn size_findings_name_the_setting_and_the_units_it_takes() {
    let spec = BASE
        .replace("bind: 127.0.0.1:8080 }", "bind: 127.0.0.1:8080, max_head_size: 64kib }")
        .replace("    to: p\n", "    to: p\n    max_body_size: 5kb\n");
    let findings = |spec: &str| -> Vec<(String, String)> {
        let (status, _, report) = check(spec.as_bytes());
        assert_eq!(status, 1, "{report}");
        report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["message"].as_str().unwrap().to_owned(), d["help"].to_string()))
            .collect()
    };
    let head = "\"write a whole number followed by B, KiB or MiB, such as 64KiB\"";
    let body = "\"write a whole number followed by B, KiB, MiB or GiB, such as 64KiB\"";
    let said = |message: &str, help: &str| (message.to_owned(), help.to_owned());
    assert_eq!(
        findings(&spec),
        [
            said("bad size `64kib` in `listeners[0].max_head_size`", head),
            said("bad size `5kb` in `routes[0].max_body_size`", body),
        ]
    );
    let spec = spec.replace("64kib", "1GiB").replace("5kb", "5GiB");
    assert_eq!(findings(&spec), [said("bad size `1GiB` in `listeners[0].max_head_size`", head)]);
    let spec = spec.replace("1GiB", "512B");
    assert_eq!(
        findings(&spec),
        [said(
            "`listeners[0].max_head_size` must be at least 1024 bytes, found `512B`",
            "\"use at least 1KiB; 16KiB to 64KiB is usual\""
        )]
    );
}

/// S0215 said that later tries are cut short even when the per-try timeout
/// was no shorter than the route's whole timeout, where it can never fire
/// at all (the route's timeout wins a tie): that case now says so.
#[test]
fn a_per_try_timeout_no_shorter_than_the_route_timeout_is_said_never_to_fire() {
    let with = |per_try: &str| {
        let retries = format!(
            "    to: p\n    timeout: 2s\n    retries: {{ attempts: 3, per_try_timeout: {per_try} }}\n    retry_budget: {{ percent: 20 }}\n"
        );
        let (status, found, report) = check(BASE.replace("    to: p\n", &retries).as_bytes());
        assert_eq!(status, 0, "{report}");
        assert_eq!(found, [("S0215".to_owned(), 11, 46)], "{report}");
        let finding = &report["diagnostics"][0];
        (finding["message"].as_str().unwrap().to_owned(), finding["help"].to_string())
    };
    let (message, help) = with("1s");
    assert_eq!(
        message,
        "3 tries of up to 1s each do not fit in route `r`'s timeout of 2s, so later tries are cut short"
    );
    assert!(help.contains("lower `attempts`"), "{help}");
    for per_try in ["2s", "3s"] {
        let (message, help) = with(per_try);
        assert_eq!(
            message,
            format!(
                "`per_try_timeout` of {per_try} is no shorter than route `r`'s timeout of 2s, so it can never fire: the route's timeout ends a slow first try, and the request with it, before any retry"
            )
        );
        assert!(help.contains("below the route's timeout: to at most 666.666666ms"), "{help}");
    }
}
