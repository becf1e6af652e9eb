//! End-to-end tests of `sluice serve`: the real binary, real sockets on
//! loopback, real upstream servers.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{client, request, send, Gateway, PatternBody, Upstream};

/// A spec with one listener on an ephemeral port and one pool.
fn one_pool(balance: &str, endpoints: &[(&Upstream, u32)], route_extra: &str) -> String {
    let endpoints: String = endpoints
        .iter()
        .map(|(u, w)| format!("      - {{ address: \"{}\", weight: {w} }}\n", u.address))
        .collect();
    format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: backend
    balance: {balance}
    endpoints:
{endpoints}routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: backend
{route_extra}"
    )
}

/// How many of `replies` came from each upstream.
fn tally(bodies: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for body in bodies {
        *counts.entry(body.clone()).or_insert(0) += 1;
    }
    counts
}

async fn get_many(gateway: &Gateway, n: usize) -> Vec<String> {
    let http = client();
    let mut bodies = Vec::with_capacity(n);
    for i in 0..n {
        let reply =
            send(&http, request("GET", gateway.addr("public"), "x.test", &format!("/r/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.body);
        bodies.push(reply.body);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_path_and_method_and_forwards_the_path_unchanged() {
    let users_read = Upstream::start("users-read").await;
    let users_write = Upstream::start("users-write").await;
    let other_host = Upstream::start("other-host").await;
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - {{ name: read, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: write, endpoints: [{{ address: \"{}\" }}] }}
  - {{ name: other, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - name: get-user
    match: {{ host: api.example.test, path: \"/v1/users/{{id}}/files/{{*rest}}\", methods: [GET] }}
    to: read
  - name: put-user
    match: {{ host: api.example.test, path: \"/v1/users/{{id}}/files/{{*rest}}\", methods: [PUT] }}
    to: write
  - name: other-user
    match: {{ host: \"*.other.test\", path: \"/v1/users/{{id}}/files/{{*rest}}\" }}
    to: other
",
        users_read.address, users_write.address, other_host.address
    );
    let gateway = Gateway::start(&spec);
    let http = client();
    let public = gateway.addr("public");
    let path = "/v1/users/42/files/a/b%20c.txt?version=3&x=%2F";

    let reply = send(&http, request("GET", public, "api.example.test", path)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "users-read"));
    let reply = send(&http, request("PUT", public, "API.Example.TEST:8080", path)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "users-write"));
    let reply = send(&http, request("DELETE", public, "eu.other.test", path)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "other-host"));
    let reply = send(&http, request("DELETE", public, "api.example.test", path)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "no route takes DELETE on api.example.test");

    for upstream in [&users_read, &users_write, &other_host] {
        let seen = upstream.seen();
        assert_eq!(seen.len(), 1, "{} saw {seen:?}", upstream.name);
        assert_eq!(seen[0].target, path, "{} must see the original path and query", upstream.name);
    }
    assert_eq!(users_write.seen()[0].method, "PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_100_requests_evenly_over_3_endpoints() {
    let (a, b, c) =
        (Upstream::start("a").await, Upstream::start("b").await, Upstream::start("c").await);
    let gateway = Gateway::start(&one_pool("round_robin", &[(&a, 1), (&b, 1), (&c, 1)], ""));

    let counts = tally(&get_many(&gateway, 100).await);
    let mut spread: Vec<usize> = counts.values().copied().collect();
    spread.sort_unstable();
    assert_eq!(spread, [33, 33, 34], "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_splits_90_requests_2_to_1() {
    let (heavy, light) = (Upstream::start("heavy").await, Upstream::start("light").await);
    let gateway =
        Gateway::start(&one_pool("weighted_round_robin", &[(&heavy, 2), (&light, 1)], ""));

    let counts = tally(&get_many(&gateway, 90).await);
    assert_eq!(counts.get("heavy"), Some(&60), "{counts:?}");
    assert_eq!(counts.get("light"), Some(&30), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_bound_to_one_listener_is_not_served_on_another() {
    let upstream = Upstream::start("admin").await;
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
  - {{ name: admin, bind: \"127.0.0.1:0\" }}
pools:
  - {{ name: admin, endpoints: [{{ address: \"{}\" }}] }}
routes:
  - name: admin-health
    listeners: [admin]
    match: {{ path: /health }}
    to: admin
",
        upstream.address
    );
    let gateway = Gateway::start(&spec);
    let http = client();

    let reply = send(&http, request("GET", gateway.addr("admin"), "x.test", "/health")).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "admin"));
    let reply = send(&http, request("GET", gateway.addr("public"), "x.test", "/health")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_request_gets_a_json_404_naming_it() {
    let upstream = Upstream::start("api").await;
    let spec = one_pool("round_robin", &[(&upstream, 1)], "")
        .replace("path: \"/{*rest}\"", "path: \"/api/{*rest}\"");
    let gateway = Gateway::start(&spec);

    let reply =
        send(&client(), request("GET", gateway.addr("public"), "x.test", "/nope?q=1")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "error": "no_route",
            "message": "no route matches GET /nope on listener public"
        })
    );
}

/// Fault kind K4: a host matches whatever its letter case, a port (80 or
/// any other, for a route that names none) and one trailing dot, among many
/// exact hosts as among few; the upstream receives the `Host` the client
/// sent, unchanged. Two trailing dots, or another name, match nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_match_across_case_port_and_trailing_dot_among_many_routes() {
    let upstream = Upstream::start("hosts").await;
    let mut spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - {{ name: p, endpoints: [{{ address: \"{}\" }}] }}
routes:
",
        upstream.address
    );
    // 150 exact hosts, more than a linear scan would be used for.
    for i in 0..150 {
        spec.push_str(&format!(
            "  - {{ name: r{i}, match: {{ host: svc{i}.example.test, path: \"/who/{{n}}\" }}, to: p }}\n"
        ));
    }
    let mut gateway = Gateway::start(&spec);
    let (http, public) = (client(), gateway.addr("public"));

    let matching = [
        ("svc0.example.test", 0),
        ("SVC7.Example.TEST", 7),
        ("svc42.example.test:80", 42),
        ("svc99.example.test.", 99),
        ("Svc149.Example.Test.:8443", 149),
        ("svc100.EXAMPLE.test", 100),
    ];
    for (n, (host, _)) in matching.iter().enumerate() {
        let reply = send(&http, request("GET", public, host, &format!("/who/{n}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
        let seen = upstream.seen();
        assert_eq!(seen[n].headers["host"], *host, "the Host sent upstream is the client's");
    }
    for host in ["svc1.example.test..", "svc1.example.test.x", "svc150.example.test", "."] {
        let reply = send(&http, request("GET", public, host, "/who/x")).await;
        assert!(reply.status.is_client_error(), "{host:?} got {}", reply.status);
    }

    // The access log names the route each request took.
    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));
    let lines: Vec<serde_json::Value> =
        gateway.stdout().iter().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    for (n, (host, route)) in matching.iter().enumerate() {
        let line = lines.iter().find(|l| l["path"] == format!("/who/{n}")).expect("logged");
        assert_eq!(line["route"], format!("r{route}"), "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_endpoint_port_gives_502() {
    let closed = support::closed_port();
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - {{ name: gone, endpoints: [{{ address: \"{closed}\" }}] }}
routes:
  - {{ name: all, match: {{ path: \"/{{*rest}}\" }}, to: gone }}
"
    );
    let gateway = Gateway::start(&spec);

    let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", "/a")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json()["error"], "upstream_unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failover_tries_each_endpoint_at_most_once_and_finds_the_live_one() {
    // Three endpoints, two of them refusing connections, no health checks,
    // no retries configured: a failed connection sent nothing, so the
    // request goes on to an endpoint it has not tried. Avoiding only the
    // previous one, a random pick would go dead, dead, dead again for about
    // one request in six.
    let live = Upstream::start("live").await;
    let (a, b) = (support::closed_port(), support::closed_port());
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: three
    balance: random
    endpoints: [{{ address: \"{a}\" }}, {{ address: \"{b}\" }}, {{ address: \"{}\" }}]
routes:
  - {{ name: all, match: {{ path: \"/{{*rest}}\" }}, to: three }}
",
        live.address
    );
    let gateway = Gateway::start(&spec);
    let client = client();
    let mut failed = Vec::new();
    for k in 0..150 {
        // A POST fails over too: its connection never opened.
        let method = if k % 2 == 0 { "GET" } else { "POST" };
        let reply = send(&client, request(method, gateway.addr("public"), "x.test", "/a")).await;
        if reply.status != StatusCode::OK {
            failed.push((k, reply.status));
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
    assert_eq!(live.seen().len(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_gives_504_without_waiting_for_the_upstream() {
    let slow = Upstream::with_delay("slow", Duration::from_secs(2)).await;
    let gateway = Gateway::start(&one_pool("round_robin", &[(&slow, 1)], "    timeout: 200ms\n"));

    let started = Instant::now();
    let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", "/slow")).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.json()["error"], "upstream_timeout");
    assert!(elapsed >= Duration::from_millis(200), "answered after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "answered after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_sees_x_forwarded_headers() {
    let upstream = Upstream::start("api").await;
    let gateway = Gateway::start(&one_pool("round_robin", &[(&upstream, 1)], ""));

    let mut req = request("GET", gateway.addr("public"), "api.example.test:8080", "/a");
    req.headers_mut().insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    req.headers_mut().insert("connection", "keep-alive, x-drop-me".parse().unwrap());
    req.headers_mut().insert("x-drop-me", "secret".parse().unwrap());
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, StatusCode::OK);

    let seen = &upstream.seen()[0];
    // The peer is not a trusted proxy, so what it claims is replaced.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "api.example.test:8080");
    assert_eq!(seen.headers["host"], "api.example.test:8080");
    assert!(!seen.headers.contains_key("x-drop-me"), "a header named in Connection is hop-by-hop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_5_mb_request_body_arrives_intact() {
    let upstream = Upstream::start("sink").await;
    let gateway = Gateway::start(&one_pool("round_robin", &[(&upstream, 1)], ""));
    const TOTAL: usize = 5 * 1024 * 1024;

    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{}/upload", gateway.addr("public")))
        .header("host", "x.test")
        .body(PatternBody::new(TOTAL, 64 * 1024))
        .unwrap();
    let reply = send(&client(), req).await;
    assert_eq!(reply.status, StatusCode::OK);

    let expected: Vec<u8> = (0..TOTAL).map(PatternBody::byte).collect();
    let seen = &upstream.seen()[0];
    assert_eq!(seen.body_len, TOTAL as u64);
    assert_eq!(seen.body_fnv, support::fnv1a(support::FNV_OFFSET, &expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_lets_an_in_flight_request_finish_then_exits_0() {
    let slow = Upstream::with_delay("slow", Duration::from_secs(1)).await;
    let mut gateway = Gateway::start(&one_pool("round_robin", &[(&slow, 1)], ""));
    let public = gateway.addr("public");

    let in_flight =
        tokio::spawn(
            async move { send(&client(), request("GET", public, "x.test", "/slow")).await },
        );
    slow.wait_for(1).await;
    gateway.interrupt();

    // New connections are refused once the listener has closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tokio::net::TcpStream::connect(public).await.is_err(), "listener still accepting");

    let reply = in_flight.await.expect("the request task completes");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "slow"));
    let status = gateway.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", gateway.stderr().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_idle_connections_or_ones_that_never_sent_a_request() {
    // hyper on its own waits for a fresh connection's first request before it
    // honours a graceful shutdown, so a pre-connecting client held the drain open.
    let upstream = Upstream::start("api").await;
    let mut gateway = Gateway::start(&one_pool("round_robin", &[(&upstream, 1)], ""));
    let public = gateway.addr("public");
    let _never_used = tokio::net::TcpStream::connect(public).await.unwrap();
    let http = client();
    let reply = send(&http, request("GET", public, "x.test", "/a")).await;
    assert_eq!(reply.status, StatusCode::OK, "leaves an idle keep-alive connection");

    let started = Instant::now();
    gateway.terminate();
    let status = gateway.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(2), "exit took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_json_with_the_documented_fields() {
    let upstream = Upstream::start("api").await;
    let spec = one_pool("round_robin", &[(&upstream, 1)], "")
        .replace("path: \"/{*rest}\"", "path: \"/api/{*rest}\"");
    let mut gateway = Gateway::start(&spec);
    let http = client();
    send(&http, request("POST", gateway.addr("public"), "x.test", "/api/items?secret=1")).await;
    send(&http, request("GET", gateway.addr("public"), "x.test", "/missing")).await;
    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));

    let lines = gateway.stdout();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let routed: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    let unrouted: serde_json::Value = serde_json::from_str(&lines[1]).expect("a JSON line");

    // Every documented field, in the documented order.
    let fields = [
        "time",
        "client",
        "listener",
        "method",
        "path",
        "route",
        "endpoint",
        "status",
        "duration_ms",
        "reason",
    ];
    assert_eq!(routed.as_object().unwrap().len(), fields.len(), "{routed}");
    let positions: Vec<usize> = fields
        .iter()
        .map(|f| lines[0].find(&format!("\"{f}\":")).unwrap_or_else(|| panic!("no {f}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", lines[0]);
    let time = routed["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert!(routed["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(routed["listener"], "public");
    assert_eq!(routed["method"], "POST");
    assert_eq!(routed["path"], "/api/items", "the query is left out");
    assert_eq!(routed["route"], "all");
    assert_eq!(routed["endpoint"], upstream.address.to_string());
    assert_eq!(routed["status"], 200);
    assert!(routed["duration_ms"].as_f64().unwrap() >= 0.0);

    assert_eq!(unrouted["route"], serde_json::Value::Null);
    assert_eq!(unrouted["endpoint"], serde_json::Value::Null);
    assert_eq!(unrouted["status"], 404);
    // Why the gateway answered itself; nothing to say of an upstream's answer.
    assert_eq!(unrouted["reason"], "no route matches GET /missing on listener public");
    assert_eq!(routed["reason"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_can_go_to_a_file_or_be_turned_off() {
    let upstream = Upstream::start("api").await;
    let spec = one_pool("round_robin", &[(&upstream, 1)], "");
    let dir = support::temp_dir();
    let file = dir.join("access.log");

    let mut to_file = Gateway::start_with(&spec, &["--access-log", file.to_str().unwrap()]);
    let mut off = Gateway::start_with(&spec, &["--access-log", "off"]);
    for gateway in [&to_file, &off] {
        let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", "/a")).await;
        assert_eq!(reply.status, StatusCode::OK);
        gateway.interrupt();
    }
    assert_eq!(to_file.wait(Duration::from_secs(5)).code(), Some(0));
    assert_eq!(off.wait(Duration::from_secs(5)).code(), Some(0));

    let logged = std::fs::read_to_string(&file).unwrap();
    let line: serde_json::Value = serde_json::from_str(logged.trim_end()).unwrap();
    assert_eq!((line["path"].as_str(), line["status"].as_u64()), (Some("/a"), Some(200)));
    assert!(to_file.stdout().is_empty() && off.stdout().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_is_routed_by_its_own_host() {
    let upstream = Upstream::start("api").await;
    let spec = one_pool("round_robin", &[(&upstream, 1)], "")
        .replace("match: { path:", "match: { host: api.example.test, path:");
    let gateway = Gateway::start(&spec);
    let public = gateway.addr("public");

    let mut stream = tokio::net::TcpStream::connect(public).await.unwrap();
    let raw = "GET http://api.example.test/v1/a?b=1 HTTP/1.1\r\nHost: wrong.test\r\n\
               Connection: close\r\n\r\n";
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let seen = &upstream.seen()[0];
    assert_eq!(seen.target, "/v1/a?b=1", "the upstream gets the origin form");
    assert_eq!(seen.headers["host"], "api.example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_400_and_the_gateway_keeps_serving() {
    let upstream = Upstream::start("api").await;
    let gateway = Gateway::start(&one_pool("round_robin", &[(&upstream, 1)], ""));
    let public = gateway.addr("public");

    for raw in [
        "GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: caf\u{e9}.test\r\nConnection: close\r\n\r\n",
        "NOT A REQUEST\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(public).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 400"), "{raw:?} got {response:?}");
    }

    let reply = send(&client(), request("GET", public, "x.test", "/still-up")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(upstream.seen().iter().all(|s| s.target == "/still-up"));
}

/// Regression: a finished exchange must stop counting as in flight as soon
/// as its response is complete, or least_request shuns endpoints that have
/// long finished their work (sequential requests all went to one endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_spreads_sequential_requests_over_idle_endpoints() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gateway = Gateway::start(&one_pool("least_request", &[(&a, 1), (&b, 1)], ""));

    let counts = tally(&get_many(&gateway, 200).await);
    for name in ["a", "b"] {
        let n = counts.get(name).copied().unwrap_or(0);
        assert!((60..=140).contains(&n), "nothing is in flight between requests: {counts:?}");
    }
}

/// The access log's status for a client that went away: 499 when it left
/// while waiting for its answer, or in the middle of its request body
/// (closed or reset); a body that is malformed, not cut short, is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_says_499_for_a_client_that_left() {
    let upstream = Upstream::with_delay("slow", Duration::from_millis(300)).await;
    let spec = one_pool("round_robin", &[(&upstream, 1)], "");
    let mut gateway = Gateway::start(&spec);
    let address = gateway.addr("public");
    let cases: [(&str, &[u8], u64); 4] = [
        ("/waiting", b"GET /waiting HTTP/1.1\r\nHost: x.test\r\n\r\n", 499),
        ("/cut", b"POST /cut HTTP/1.1\r\nHost: x.test\r\nContent-Length: 10\r\n\r\nabc", 499),
        (
            "/cut-chunk",
            b"POST /cut-chunk HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            499,
        ),
        (
            "/malformed",
            b"POST /malformed HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
    ];
    for (_, bytes, _) in &cases {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
    }
    // Long enough for the slow upstream to have answered the one left waiting.
    tokio::time::sleep(Duration::from_millis(600)).await;
    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));

    let lines = gateway.stdout();
    for (path, _, status) in cases {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{path}\"")));
        let line: serde_json::Value = serde_json::from_str(line.expect(path)).unwrap();
        assert_eq!(line["status"].as_u64(), Some(status), "{path}: {line}");
    }
}

/// The same over HTTP/2: a client that resets its stream, or closes its
/// connection, in the middle of its request body is a 499; a body shorter
/// than its `content-length` that the client ended is malformed, a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_says_499_for_an_http2_client_that_left() {
    use support::h2raw::{self, DATA, END_STREAM, HEADERS, RST_STREAM};

    let upstream = Upstream::start("api").await;
    let spec = one_pool("round_robin", &[(&upstream, 1)], "");
    let mut gateway = Gateway::start(&spec);
    let address = gateway.addr("public");
    // POST `path` declaring 100 bytes: :method POST, :scheme http, :path,
    // :authority, content-length, none of them indexed.
    let post = |path: &str| {
        let mut fields = h2raw::get(path);
        fields[0] = 0x83;
        fields.extend([0x0f, 0x0d, 3]);
        fields.extend(b"100");
        h2raw::frame(HEADERS, 0x4, 1, &fields)
    };
    let cases: [(&str, Vec<u8>, bool, u64); 3] = [
        ("/reset", h2raw::frame(RST_STREAM, 0, 1, &[0, 0, 0, 0x8]), false, 499),
        ("/closed", Vec::new(), true, 499),
        ("/short", h2raw::frame(DATA, END_STREAM, 1, b"def"), false, 400),
    ];
    for (path, then, close, _) in &cases {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut bytes = h2raw::preface(&[]);
        bytes.extend(post(path));
        bytes.extend(h2raw::frame(DATA, 0, 1, b"abc"));
        stream.write_all(&bytes).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(then).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if *close {
            drop(stream);
        } else {
            h2raw::frames(&mut stream, Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));
    let lines = gateway.stdout();
    for (path, _, _, status) in cases {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{path}\"")));
        let line: serde_json::Value = serde_json::from_str(line.expect(path)).unwrap();
        assert_eq!(line["status"].as_u64(), Some(status), "{path}: {line}");
    }
}
