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

    let cases: [(&[(&str, &str)], &str, &str); 8] = [
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
        .map(|d| (d["code"].as_str().unwrap().into(), d["line"].as_u64().unwrap(), d["column"].as_u64().unwrap()))
        .collect();
    let want = [("S0214", 9, 11), ("S0214", 10, 19), ("S0214", 11, 31), ("S0214", 16, 40)];
    let want: Vec<(String, u64, u64)> = want.iter().map(|(c, l, k)| (c.to_string(), *l, *k)).collect();
    assert_eq!(found, want, "{report}");
}
