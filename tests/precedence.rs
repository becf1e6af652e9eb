//! Route selection (fault kind K3): prefix boundaries, precedence that does
//! not depend on the order of routes or on routes of other hosts, and
//! anchored regex constraints. Checked through `sluice explain`, which runs
//! the same trie as `serve`.

use assert_cmd::Command;

const HEAD: &str = "\
version: 1
listeners: [{ name: public, bind: 127.0.0.1:8080 }]
pools:
  - { name: a, endpoints: [{ address: 127.0.0.1:9001 }] }
  - { name: b, endpoints: [{ address: 127.0.0.1:9002 }] }
  - { name: e, endpoints: [{ address: 127.0.0.1:9003 }] }
  - { name: r, endpoints: [{ address: 127.0.0.1:9004 }] }
routes:
";

/// The route `explain` picks for `method url` under `routes` (one YAML line
/// each), or `None`.
fn route_for(routes: &[&str], method: &str, url: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    let mut spec = HEAD.to_owned();
    for r in routes {
        spec.push_str(&format!("  - {r}\n"));
    }
    std::fs::write(&path, spec).unwrap();
    let out = Command::cargo_bin("sluice")
        .unwrap()
        .arg("explain")
        .arg(&path)
        .args([method, url])
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            Some(text.lines().next().unwrap().trim_start_matches("route").trim().to_owned())
        }
        Some(1) => None,
        other => panic!("explain exited {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn a_prefix_matches_whole_segments_only() {
    // T3.1: a prefix route for /foo and one for everything else.
    let routes = [
        "{ name: foo, match: { path: \"/foo/{*rest}\" }, to: a }",
        "{ name: all, match: { path: \"/{*rest}\" }, to: b }",
    ];
    for (url, want) in [("/foo", "foo"), ("/foo/", "foo"), ("/foo/bar", "foo"), ("/foobar", "all")]
    {
        assert_eq!(route_for(&routes, "GET", url).as_deref(), Some(want), "{url}");
    }
}

#[test]
fn precedence_is_the_same_in_every_route_order() {
    // T3.2: the longer prefix wins among prefixes; an exact path beats a prefix.
    let routes = [
        "{ name: merchant, match: { path: \"/merchant/{*rest}\" }, to: a }",
        "{ name: postservice, match: { path: \"/merchant/postservice.php/{*rest}\" }, to: b }",
        "{ name: api, match: { path: \"/api/{*rest}\" }, to: r }",
        "{ name: account, match: { path: /api/account }, to: e }",
    ];
    let cases = [
        ("/merchant/postservice.php?form=2", "postservice"),
        ("/merchant/other", "merchant"),
        ("/api/account", "account"),
        ("/api/accounts", "api"),
    ];
    let orders: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]];
    for order in orders {
        let shuffled: Vec<&str> = order.iter().map(|&i| routes[i]).collect();
        for (url, want) in cases {
            assert_eq!(
                route_for(&shuffled, "GET", url).as_deref(),
                Some(want),
                "{url} in order {order:?}"
            );
        }
    }
}

#[test]
fn routes_of_other_hosts_never_change_the_result() {
    // B12: adding a route for host `bar` must not change what `foo` gets.
    let base = ["{ name: foo-v1, match: { host: foo.test, path: \"/v1/{*rest}\" }, to: a }"];
    let more = [
        base[0],
        "{ name: bar-x, match: { host: bar.test, path: \"/v1/x\" }, to: b }",
        "{ name: bar-all, match: { host: bar.test, path: \"/{*rest}\" }, to: b }",
    ];
    for routes in [&base[..], &more[..]] {
        assert_eq!(route_for(routes, "GET", "http://foo.test/v1/x").as_deref(), Some("foo-v1"));
    }
}

#[test]
fn regex_constraints_match_the_whole_segment() {
    // B13: a constraint is anchored; alternation cannot escape the anchors.
    let routes = [
        "{ name: admin, match: { path: \"/{section:admin|root}/{*rest}\" }, to: a }",
        "{ name: other, match: { path: \"/{*rest}\" }, to: b }",
    ];
    for (url, want) in [
        ("/admin/x", "admin"),
        ("/root/x", "admin"),
        ("/xadminx/y", "other"),
        ("/adminx/y", "other"),
        ("/xroot/y", "other"),
    ] {
        assert_eq!(route_for(&routes, "GET", url).as_deref(), Some(want), "{url}");
    }
}

#[test]
fn path_regex_routes_come_after_every_template_route() {
    let routes = [
        "{ name: api, match: { path: \"/api/{*rest}\" }, to: a }",
        "{ name: legacy, match: { path_regex: \"/legacy/[0-9]+(/.*)?\" }, to: b }",
        "{ name: legacy-literal, match: { path: /legacy/7 }, to: e }",
    ];
    assert_eq!(route_for(&routes, "GET", "/legacy/12").as_deref(), Some("legacy"));
    assert_eq!(route_for(&routes, "GET", "/legacy/12/x/y").as_deref(), Some("legacy"));
    assert_eq!(route_for(&routes, "GET", "/legacy/7").as_deref(), Some("legacy-literal"));
    assert_eq!(route_for(&routes, "GET", "/legacy/x").as_deref(), None);
    assert_eq!(route_for(&routes, "GET", "/xx/legacy/12").as_deref(), None, "anchored");
    assert_eq!(route_for(&routes, "GET", "/api/legacy/1").as_deref(), Some("api"));
    // A catch-all template takes everything first.
    let with_all = [routes[1], "{ name: all, match: { path: \"/{*rest}\" }, to: r }"];
    assert_eq!(route_for(&with_all, "GET", "/legacy/12").as_deref(), Some("all"));
}

#[test]
fn path_and_path_regex_mistakes_are_findings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    let spec = format!(
        "{HEAD}  - {{ name: both, match: {{ path: /a, path_regex: /a }}, to: a }}\n  - {{ name: neither, match: {{ methods: [GET] }}, to: a }}\n  - {{ name: bad, match: {{ path_regex: \"(\" }}, to: a }}\n  - {{ name: same1, match: {{ path_regex: /x }}, to: a }}\n  - {{ name: same2, match: {{ path_regex: /x }}, to: b }}\n"
    );
    std::fs::write(&path, spec).unwrap();
    let out = Command::cargo_bin("sluice")
        .unwrap()
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["S0207", "S0102", "S0207", "S0203"], "{report}");
}
