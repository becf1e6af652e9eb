//! The listener, pool and route settings for connections, timeouts and
//! limits: defaults when left out, the plan values when set, and a located
//! finding for every nonsensical value.

use std::time::Duration;

use sluice_compiler::{check, SourceFile};

fn spec(listener: &str, pool: &str, route: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: 127.0.0.1:0
{listener}pools:
  - name: p
    endpoints: [{{ address: 127.0.0.1:9 }}]
{pool}routes:
  - name: r
    match: {{ path: /x }}
    to: p
{route}"
    )
}

/// `(code, pointer)` of every finding.
fn findings(text: &str) -> Vec<(String, String)> {
    let checked = check(SourceFile::new("t.yaml", text));
    checked.diagnostics.iter().map(|d| (d.code.id.to_owned(), d.pointer.clone())).collect()
}

#[test]
fn settings_left_out_get_their_documented_defaults() {
    let plan = check(SourceFile::new("t.yaml", spec("", "", ""))).plan.expect("valid");
    let listener = &plan.listeners[0];
    assert!(listener.trusted_proxies.is_empty());
    assert_eq!(
        (listener.max_connections, listener.max_headers, listener.max_head_size),
        (10_000, 100, 64 * 1024)
    );
    assert_eq!(
        (listener.head_timeout, listener.idle_timeout),
        (Duration::from_secs(10), Duration::from_secs(60))
    );
    assert_eq!(listener.request_id, sluice_compiler::spec::RequestId::Off);
    assert_eq!(listener.http10_default_host, None);
    let pool = &plan.pools[0];
    assert_eq!(
        (pool.connect_timeout, pool.idle_timeout),
        (Duration::from_secs(5), Duration::from_secs(4))
    );
    assert_eq!(plan.routes[0].max_body_size, None);
}

#[test]
fn settings_given_reach_the_plan() {
    let text = spec(
        "    trusted_proxies: [10.0.0.0/8, \"::1\"]\n    max_connections: 50\n    max_headers: 20\n    \
         max_head_size: 16KiB\n    head_timeout: 200ms\n    idle_timeout: 2s\n    \
         request_id: generate\n    http10_default_host: api.example.test:8080\n",
        "    connect_timeout: 250ms\n    idle_timeout: 1s\n",
        "    max_body_size: 2MiB\n",
    );
    let plan = check(SourceFile::new("t.yaml", text)).plan.expect("valid");
    let listener = &plan.listeners[0];
    assert_eq!(
        listener.trusted_proxies,
        [("10.0.0.0".parse().unwrap(), 8), ("::1".parse().unwrap(), 128)]
    );
    assert_eq!(
        (listener.max_connections, listener.max_headers, listener.max_head_size),
        (50, 20, 16384)
    );
    assert_eq!(listener.head_timeout, Duration::from_millis(200));
    assert_eq!(listener.idle_timeout, Duration::from_secs(2));
    assert_eq!(listener.request_id, sluice_compiler::spec::RequestId::Generate);
    assert_eq!(listener.http10_default_host.as_deref(), Some("api.example.test:8080"));
    assert_eq!(plan.pools[0].connect_timeout, Duration::from_millis(250));
    assert_eq!(plan.pools[0].idle_timeout, Duration::from_secs(1));
    assert_eq!(plan.routes[0].max_body_size, Some(2 << 20));
}

#[test]
fn nonsensical_values_are_located_findings() {
    let cases = [
        (spec("    head_timeout: 0s\n", "", ""), "S0206", "/listeners/0/head_timeout"),
        (spec("    idle_timeout: 0ms\n", "", ""), "S0206", "/listeners/0/idle_timeout"),
        (spec("", "    connect_timeout: 0s\n", ""), "S0206", "/pools/0/connect_timeout"),
        (spec("", "    idle_timeout: 0h\n", ""), "S0206", "/pools/0/idle_timeout"),
        (spec("    max_head_size: 100B\n", "", ""), "S0104", "/listeners/0/max_head_size"),
        (spec("    max_head_size: 64kb\n", "", ""), "S0104", "/listeners/0/max_head_size"),
        (spec("", "", "    max_body_size: 10 MB\n"), "S0104", "/routes/0/max_body_size"),
        (spec("    max_connections: 0\n", "", ""), "S0104", "/listeners/0/max_connections"),
        (spec("    max_headers: 0\n", "", ""), "S0104", "/listeners/0/max_headers"),
        (
            spec("    trusted_proxies: [10.0.0.1/8]\n", "", ""),
            "S0205",
            "/listeners/0/trusted_proxies/0",
        ),
        (
            spec("    trusted_proxies: [10.0.0.0/33]\n", "", ""),
            "S0205",
            "/listeners/0/trusted_proxies/0",
        ),
        (spec("    request_id: keep\n", "", ""), "S0104", "/listeners/0/request_id"),
        (
            spec("    http10_default_host: \"*.example.test\"\n", "", ""),
            "S0208",
            "/listeners/0/http10_default_host",
        ),
        (
            spec("    http10_default_host: a_b.test\n", "", ""),
            "S0208",
            "/listeners/0/http10_default_host",
        ),
        (
            spec("    http10_default_host: a.test:0\n", "", ""),
            "S0208",
            "/listeners/0/http10_default_host",
        ),
        (
            spec("    trusted_proxies: [proxy.internal]\n", "", ""),
            "S0205",
            "/listeners/0/trusted_proxies/0",
        ),
    ];
    for (text, code, pointer) in cases {
        let found = findings(&text);
        assert!(
            found.iter().any(|(c, p)| c == code && p == pointer),
            "expected {code} at {pointer}, found {found:?}"
        );
    }
}

#[test]
fn a_zero_body_limit_is_allowed() {
    assert!(findings(&spec("", "", "    max_body_size: 0B\n")).is_empty());
}

#[test]
fn peak_ewma_window_reaches_the_algorithm_and_is_checked_where_it_is_ignored() {
    use sluice_traffic::Algorithm;
    let window = |pool: &str| {
        let plan = check(SourceFile::new("t.yaml", spec("", pool, ""))).plan.expect("valid");
        match plan.pools[0].algorithm() {
            Algorithm::PeakEwma(settings) => settings.window,
            other => panic!("peak_ewma lowered to {other:?}"),
        }
    };
    assert_eq!(window("    balance: peak_ewma\n"), Duration::from_secs(10));
    assert_eq!(
        window("    balance: peak_ewma\n    ewma_window: 250ms\n"),
        Duration::from_millis(250)
    );

    // Another algorithm ignores it, and says so where it is set.
    assert_eq!(
        findings(&spec("", "    balance: least_request\n    ewma_window: 2s\n", "")),
        [("S0221".to_owned(), "/pools/0/ewma_window".to_owned())]
    );
    assert_eq!(
        findings(&spec("", "    balance: peak_ewma\n    ewma_window: 2 sec\n", "")),
        [("S0206".to_owned(), "/pools/0/ewma_window".to_owned())]
    );
}

#[test]
fn the_replay_body_limit_reaches_the_plan_and_a_bad_one_is_located() {
    let plan = |route: &str| check(SourceFile::new("t.yaml", spec("", "", route))).plan;
    let limit = |route: &str| plan(route).expect("valid").routes[0].retries.replay_body_limit;
    // 64 KiB unless the route's retries say otherwise.
    assert_eq!(limit(""), 64 * 1024);
    assert_eq!(limit("    retries: { attempts: 2 }\n"), 64 * 1024);
    assert_eq!(limit("    retries: { attempts: 2, replay_body_limit: 1MiB }\n"), 1 << 20);
    assert_eq!(limit("    retries: { attempts: 2, replay_body_limit: 0B }\n"), 0);
    let found = findings(&spec("", "", "    retries: { attempts: 2, replay_body_limit: lots }\n"));
    let at = "/routes/0/retries/replay_body_limit".to_owned();
    assert!(found.contains(&("S0104".to_owned(), at)), "{found:?}");
}
