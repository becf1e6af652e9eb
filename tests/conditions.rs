//! Routing on headers, query parameters and cookies, end to end: real
//! upstreams, the real gateway, a real HTTP client.

mod support;

use hyper::StatusCode;
use support::{client, request, send, Gateway, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_query_and_cookies_pick_the_route() {
    let (stable, canary, csv, beta) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
        Upstream::start("csv").await,
        Upstream::start("beta").await,
    );
    let spec = format!(
        "version: 1
listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]
pools:
  - {{ name: stable, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: canary, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: csv, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: beta, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - {{ name: stable, match: {{ path: /orders }}, to: stable }}
  - name: canary
    match:
      path: /orders
      headers: [{{ name: X-Version, regex: \"2(\\\\.[0-9]+)?\" }}]
    to: canary
  - name: csv
    match: {{ path: /orders/export, query: [{{ name: format, exact: csv }}] }}
    to: csv
  - name: beta
    match: {{ path: /orders, cookies: [{{ name: beta, exact: \"yes\" }}], headers: [{{ name: x-version, present: false }}] }}
    to: beta
",
        stable.address, canary.address, csv.address, beta.address
    );
    let gateway = Gateway::start(&spec);
    let addr = gateway.addr("public");
    let http = client();

    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 8] = [
        (&[], "/orders", "stable"),
        (&[("x-version", "2.1")], "/orders", "canary"),
        (&[("X-VERSION", "2")], "/orders", "canary"),
        (&[("x-version", "20")], "/orders", "stable"),
        (&[], "/orders/export?format=csv", "csv"),
        (&[], "/orders/export?format=c%73v&x=1", "csv"),
        (&[("cookie", "a=1; beta=yes")], "/orders", "beta"),
        (&[("cookie", "beta=yes"), ("x-version", "1")], "/orders", "stable"),
    ];
    for (headers, path, want) in cases {
        let mut req = request("GET", addr, "api.example.test", path);
        for (name, value) in headers {
            req.headers_mut().append(*name, value.parse().unwrap());
        }
        let reply = send(&http, req).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} {headers:?}: {}", reply.body);
        assert_eq!(reply.body, want, "{path} {headers:?}");
    }
    let reply = send(&http, request("GET", addr, "x", "/orders/export?format=json")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[test]
fn check_reports_bad_conditions_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    std::fs::write(
        &path,
        "version: 1
listeners: [{ name: public, bind: 127.0.0.1:8080 }]
pools: [{ name: p, endpoints: [{ address: 127.0.0.1:9001 }] }]
routes:
  - name: a
    match:
      path: /a
      headers:
        - { name: x-a, exact: \"1\", prefix: \"2\" }
        - { name: \"bad name\", present: true }
        - { name: x-b, regex: \"(unclosed\" }
    to: p
  - name: b
    match:
      path: /b
      query: [{ name: q, exact: \"1\" }, { name: q, present: false }]
    to: p
",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, u64, u64)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().into(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [("S0214", 9, 11), ("S0214", 10, 19), ("S0214", 11, 31), ("S0214", 16, 40)];
    let want: Vec<(String, u64, u64)> =
        want.iter().map(|(c, l, k)| (c.to_string(), *l, *k)).collect();
    assert_eq!(found, want, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_shares_traffic_and_sticky_keys_stay_on_their_side() {
    let (stable, canary) = (Upstream::start("stable").await, Upstream::start("canary").await);
    let spec = format!(
        "version: 1
listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]
pools:
  - {{ name: stable, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: canary, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - name: orders
    match: {{ path: \"/orders/{{*rest}}\" }}
    to: [{{ pool: stable, weight: 80 }}, {{ pool: canary, weight: 20 }}]
    sticky: {{ header: x-user }}
",
        stable.address, canary.address
    );
    let gateway = Gateway::start(&spec);
    let addr = gateway.addr("public");
    let http = client();

    // Unpinned requests split about 80:20.
    let mut canary_count = 0;
    for i in 0..500 {
        let reply = send(&http, request("GET", addr, "x", &format!("/orders/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
        canary_count += usize::from(reply.body == "canary");
    }
    assert!((60..=140).contains(&canary_count), "canary took {canary_count} of 500");

    // Each user stays on one side, and users spread over both sides.
    let mut sides = std::collections::HashSet::new();
    for user in 0..40 {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            let mut req = request("GET", addr, "x", "/orders/a");
            req.headers_mut().insert("x-user", format!("user-{user}").parse().unwrap());
            seen.insert(send(&http, req).await.body);
        }
        assert_eq!(seen.len(), 1, "user-{user} moved between sides: {seen:?}");
        sides.extend(seen);
    }
    assert_eq!(sides.len(), 2, "40 users all landed on one side");
}

/// A split where one side weighs 0 sends it nothing; reloaded onto a
/// three-way split of 1:2:7, a thousand requests land about 10/20/70 %.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_weights_hold_exactly_at_zero_and_proportionally_three_ways() {
    let sides =
        [Upstream::start("a").await, Upstream::start("b").await, Upstream::start("c").await];
    let spec = |to: &str| {
        format!(
            "version: 1
listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]
pools:
  - {{ name: a, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: b, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: c, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: {to}
",
            sides[0].address, sides[1].address, sides[2].address
        )
    };
    let gateway = Gateway::start(&spec("[{ pool: a, weight: 0 }, { pool: b, weight: 100 }]"));
    let addr = gateway.addr("public");
    let http = client();
    let count = async |n: usize| {
        let mut counts = std::collections::HashMap::new();
        for i in 0..n {
            let reply = send(&http, request("GET", addr, "x", &format!("/{i}"))).await;
            assert_eq!(reply.status, StatusCode::OK);
            *counts.entry(reply.body).or_insert(0usize) += 1;
        }
        let mut of = |side: &str| counts.remove(side).unwrap_or(0);
        [of("a"), of("b"), of("c")]
    };
    assert_eq!(count(1000).await, [0, 1000, 0], "weight 0 takes nothing");

    std::fs::write(
        gateway.spec_path(),
        spec("[{ pool: a, weight: 1 }, { pool: b, weight: 2 }, { pool: c, weight: 7 }]"),
    )
    .unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 1);
    let got = count(1000).await;
    // Within 5 points of 10/20/70 % (about five standard deviations at 10 %).
    for (side, (&got, want)) in got.iter().zip([100, 200, 700]).enumerate() {
        assert!(got.abs_diff(want) <= 50, "side {side}: {got} of 1000, want about {want}: {got:?}");
    }
}

/// `(code, pointer)` of every finding `check` reports for `spec`.
fn findings(spec: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, spec).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap().into(), d["pointer"].as_str().unwrap().into()))
        .collect()
}

#[test]
fn check_locates_split_mistakes() {
    let head = "version: 1
listeners: [{ name: public, bind: 127.0.0.1:8080 }]
pools: [{ name: stable, endpoints: [{ address: 127.0.0.1:9001 }] }]
routes:
  - name: a
    match: { path: /a }
";
    let pair = |c: &str, p: &str| (c.to_owned(), p.to_owned());
    let found = findings(&format!(
        "{head}    to: [{{ pool: stable, weight: 0 }}, {{ pool: canery, weight: 0 }}]\n"
    ));
    assert_eq!(found, [pair("S0210", "/routes/0/to"), pair("S0201", "/routes/0/to/1/pool")]);

    let found = findings(&format!("{head}    to: 7\n"));
    assert_eq!(found, [pair("S0103", "/routes/0/to")]);

    // A split entry missing its weight is reported at the entry, not as "no shape fits".
    let found = findings(&format!("{head}    to: [{{ pool: stable }}]\n"));
    assert_eq!(found, [pair("S0102", "/routes/0/to/0")]);
}

/// Regression: `explain` called a route that failed a header condition
/// "outranked", and showed only the first pool of a split.
#[test]
fn explain_names_failed_conditions_and_split_sides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    std::fs::write(
        &path,
        "version: 1
listeners: [{ name: public, bind: 127.0.0.1:8080 }]
pools:
  - { name: p1, endpoints: [{ address: 127.0.0.1:9001 }] }
  - { name: p2, endpoints: [{ address: 127.0.0.1:9002 }] }
routes:
  - { name: base, match: { path: /orders }, to: p1 }
  - { name: beta, match: { path: /orders, headers: [{ name: x-beta, exact: \"1\" }] }, to: p2 }
  - name: split
    match: { path: /split }
    to: [{ pool: p1, weight: 50 }, { pool: p2, weight: 50 }]
    sticky: { header: x-user }
",
    )
    .unwrap();
    let explain = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("explain")
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain(&["GET", "/orders"]);
    assert!(text.contains("beta: condition `header:x-beta=1` not met"), "{text}");

    let text = explain(&["GET", "/split", "-H", "x-user: alice"]);
    assert!(text.contains("split     p1 w50, p2 w50 (sticky: header x-user)"), "{text}");
    let side = text.lines().find(|l| l.starts_with("side")).unwrap().to_owned();
    assert!(side.contains("pinned"), "{text}");
    // The same key gives the same side every time.
    assert_eq!(
        explain(&["GET", "/split", "-H", "x-user: alice"])
            .lines()
            .find(|l| l.starts_with("side"))
            .unwrap(),
        side
    );
}

/// Regression: a header the client names in `Connection` is stripped before
/// forwarding, so routing must not see it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_named_in_connection_does_not_route() {
    let (plain, internal) = (Upstream::start("plain").await, Upstream::start("internal").await);
    let spec = format!(
        "version: 1
listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]
pools:
  - {{ name: plain, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: internal, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - {{ name: plain, match: {{ path: /x }}, to: plain }}
  - {{ name: internal, match: {{ path: /x, headers: [{{ name: x-internal, present: true }}] }}, to: internal }}
",
        plain.address, internal.address
    );
    let gateway = Gateway::start(&spec);
    let http = client();
    let mut req = request("GET", gateway.addr("public"), "x", "/x");
    req.headers_mut().insert("x-internal", "1".parse().unwrap());
    assert_eq!(send(&http, req).await.body, "internal");
    let mut req = request("GET", gateway.addr("public"), "x", "/x");
    req.headers_mut().insert("x-internal", "1".parse().unwrap());
    req.headers_mut().insert("connection", "x-internal".parse().unwrap());
    assert_eq!(send(&http, req).await.body, "plain");
}
