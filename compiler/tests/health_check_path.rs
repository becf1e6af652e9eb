//! A health check's `path` must be one a probe can be sent with, as the
//! probe itself reads it: `check` refuses, at the path, one with a space,
//! a control or non-ASCII character, a fragment, or no leading `/`, and a
//! valid path (with a query, say) reaches the plan as written.

use sluice_compiler::plan::{probe_target, ProbePathError};
use sluice_compiler::{check, SourceFile};

fn spec(path: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: 127.0.0.1:0
pools:
  - name: p
    endpoints: [{{ address: 127.0.0.1:9 }}]
    health_check:
      path: {path}
      interval: 1s
routes:
  - name: r
    match: {{ path: /x }}
    to: p
"
    )
}

/// `(code, pointer, line, column, message)` of every finding.
fn findings(text: &str) -> Vec<(String, String, usize, usize, String)> {
    let checked = check(SourceFile::new("t.yaml", text));
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let (line, column) = d.location.map_or((0, 0), |l| (l.line, l.column));
            (d.code.id.to_owned(), d.pointer.clone(), line, column, d.message.clone())
        })
        .collect()
}

#[test]
fn paths_no_probe_can_be_sent_with_are_located_errors() {
    let cases = [
        ("\"/healthz now\"", "` ` must be percent-encoded"),
        ("\"/healthz\\tnow\"", "must be percent-encoded"),
        ("\"/h\u{e9}alth\"", "must be percent-encoded"),
        ("healthz", "does not start with `/`"),
        ("\"healthz now\"", "does not start with `/`"),
        ("\"/healthz#ready\"", "has a fragment"),
        ("\"/#\"", "has a fragment"),
    ];
    for (path, says) in cases {
        let found = findings(&spec(path));
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        let (code, pointer, line, column, message) = &found[0];
        assert_eq!(
            (code.as_str(), pointer.as_str(), *line, *column),
            ("S0207", "/pools/0/health_check/path", 9, 13),
            "{path}: {message}"
        );
        assert!(message.starts_with("health check path `"), "{path}: {message}");
        assert!(message.contains(says), "{path}: {message}");
    }
}

#[test]
fn valid_paths_reach_the_plan_as_written() {
    for path in ["/healthz", "/healthz?full=1&x=%20y", "/", "/a/b.json"] {
        let checked = check(SourceFile::new("t.yaml", spec(&format!("\"{path}\""))));
        assert!(checked.diagnostics.is_empty(), "{path}: {:?}", checked.diagnostics);
        let plan = checked.plan.expect("valid");
        let check = plan.pools[0].health_check.as_ref().expect("a health check");
        assert_eq!(check.path, path);
        assert_eq!(check.target().map(|t| t.as_str().to_owned()), Ok(path.to_owned()));
    }
}

#[test]
fn the_probe_target_refuses_what_check_refuses() {
    assert_eq!(probe_target("healthz"), Err(ProbePathError::NotAbsolute));
    assert_eq!(probe_target(""), Err(ProbePathError::NotAbsolute));
    assert_eq!(probe_target("/a#b"), Err(ProbePathError::Fragment));
    for bad in ["/a b", "/a\u{7f}", "/a\r\nHost: x", "/\u{e9}"] {
        assert!(matches!(probe_target(bad), Err(ProbePathError::Invalid(_))), "{bad:?}");
    }
}
