//! The traffic machines end to end, part two: consistent hashing on every kind of key and
//! across a reload, slow start, panic mode, per-try timeouts, outlier ejection and
//! return, and the circuit breaker's connection limits. Real upstreams on
//! 127.0.0.1; every clock scaled down to tens or hundreds of milliseconds.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::node::{get, spec, Node};
use support::{blackhole, client, request, send, spec_with, Gateway};
use tokio::task::JoinSet;

/// Send one GET per key (in header `x-user`) and return the port of the
/// node that answered each.
async fn owners(address: SocketAddr, keys: usize) -> Vec<u16> {
    let http = client();
    let mut ports = Vec::with_capacity(keys);
    for key in 0..keys {
        let mut ask = request("GET", address, "x.test", "/");
        ask.headers_mut().insert("x-user", format!("user-{key}").parse().unwrap());
        let reply = send(&http, ask).await;
        assert_eq!(reply.status, 200);
        let port = reply.headers["x-node"].to_str().unwrap().parse().unwrap();
        ports.push(port);
    }
    ports
}

/// Requests each node received while `f` ran.
async fn counted<F: std::future::Future<Output = ()>>(nodes: &[Node], f: F) -> Vec<usize> {
    let before: Vec<usize> = nodes.iter().map(Node::requests).collect();
    f.await;
    nodes.iter().zip(before).map(|(n, b)| n.requests() - b).collect()
}

async fn gets(address: SocketAddr, n: usize) {
    for i in 0..n {
        assert_eq!(get(address, &format!("/{i}")).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_keys_and_moves_only_a_removed_endpoints_share() {
    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    let pool = "    balance: consistent_hash\n    hash_on: { header: x-user }\n";
    let gateway = Gateway::start(&spec(&nodes.iter().collect::<Vec<_>>(), &[], pool, ""));
    let address = gateway.addr("public");

    let first = owners(address, 300).await;
    assert_eq!(owners(address, 300).await, first, "the same key reaches the same endpoint");
    let removed = nodes[2].address.port();
    let on_removed = first.iter().filter(|&&p| p == removed).count();
    assert!((60..=140).contains(&on_removed), "about a third on each endpoint: {on_removed}");

    // Remove the third endpoint: only its keys move.
    std::fs::write(gateway.spec_path(), spec(&[&nodes[0], &nodes[1]], &[], pool, "")).unwrap();
    gateway.hangup();
    gateway.wait_stderr("plan reloaded", 1, Duration::from_secs(10));
    let after = owners(address, 300).await;
    let moved = first.iter().zip(&after).filter(|(a, b)| a != b).count();
    let stayed_put = first.iter().zip(&after).all(|(a, b)| a == b || *a == removed);
    assert!(stayed_put, "keys of the endpoints that stayed did not move");
    assert_eq!(moved, on_removed, "exactly the removed endpoint's keys moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_returning_endpoint_up() {
    let nodes = [Node::start().await, Node::start().await];
    let pool = "    balance: random\n    \
        health_check: { path: /health, interval: 30ms, jitter: 0ms, timeout: 30ms, unhealthy_threshold: 1, healthy_threshold: 1 }\n    \
        slow_start: { window: 1500ms, initial_percent: 5 }\n";
    let gateway = Gateway::start(&spec(&nodes.iter().collect::<Vec<_>>(), &[], pool, ""));
    let address = gateway.addr("public");

    nodes[1].state.probe_status.store(503, Ordering::Relaxed);
    gateway.wait_stderr("endpoint health changed", 1, Duration::from_secs(5));
    let down = counted(&nodes, gets(address, 50)).await;
    assert_eq!(down[1], 0, "an unhealthy endpoint gets nothing");

    nodes[1].state.probe_status.store(0, Ordering::Relaxed);
    gateway.wait_stderr("endpoint health changed", 2, Duration::from_secs(5));
    let early = counted(&nodes, gets(address, 200)).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let late = counted(&nodes, gets(address, 200)).await;
    let share = |c: &[usize]| c[1] as f64 / (c[0] + c[1]) as f64;
    assert!(share(&early) < 0.3, "ramping up, the endpoint gets a small share: {early:?}");
    assert!(share(&late) > 0.35, "after the window, a fair share: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_panic_threshold_traffic_spreads_over_every_endpoint() {
    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    let checks = "    health_check: { path: /health, interval: 30ms, jitter: 0ms, timeout: 30ms, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
    let refs: Vec<&Node> = nodes.iter().collect();
    let panicky = Gateway::start(&spec(
        &refs,
        &[],
        &format!("{checks}    panic_threshold_percent: 50\n"),
        "",
    ));
    let strict = Gateway::start(&spec(&refs, &[], checks, ""));
    nodes[1].state.probe_status.store(503, Ordering::Relaxed);
    nodes[2].state.probe_status.store(503, Ordering::Relaxed);
    panicky.wait_stderr("endpoint health changed", 2, Duration::from_secs(5));
    strict.wait_stderr("endpoint health changed", 2, Duration::from_secs(5));

    // One of three healthy is below 50 %: all three share the traffic.
    let spread = counted(&nodes, gets(panicky.addr("public"), 300)).await;
    assert!(spread.iter().all(|&c| c > 60), "panic mode spreads over all: {spread:?}");
    // Without a threshold, only the healthy endpoint serves.
    let focused = counted(&nodes, gets(strict.addr("public"), 100)).await;
    assert_eq!(focused, [100, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_try_is_retried_elsewhere_within_the_route_timeout() {
    let nodes = [Node::start().await, Node::start().await];
    nodes[0].state.delay_ms.store(500, Ordering::Relaxed);
    let route = "    timeout: 1s\n    \
        retries: { attempts: 2, on: [timeout], per_try_timeout: 100ms, backoff: { base: 0ms, max: 0ms } }\n    \
        retry_budget: { percent: 100 }\n";
    let gateway = Gateway::start(&spec(&nodes.iter().collect::<Vec<_>>(), &[], "", route));
    let address = gateway.addr("public");

    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        assert_eq!(get(address, &format!("/{i}")).await, 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(nodes[0].requests() >= 3, "the slow endpoint was tried: {}", nodes[0].requests());
    assert!(slowest >= Duration::from_millis(90), "a try timed out first: {slowest:?}");
    assert!(slowest < Duration::from_millis(400), "and was not waited out: {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_is_ejected_after_consecutive_5xx_and_returns_after_the_ejection() {
    let nodes = [Node::start().await, Node::start().await];
    let pool = "    outlier_detection: { consecutive_failures: 3, base_ejection: 300ms, max_ejection_percent: 50 }\n";
    let gateway = Gateway::start(&spec(&nodes.iter().collect::<Vec<_>>(), &[], pool, ""));
    let address = gateway.addr("public");

    nodes[0].state.status.store(500, Ordering::Relaxed);
    for i in 0..6 {
        get(address, &format!("/fail/{i}")).await;
    }
    assert_eq!(nodes[0].requests(), 3, "round robin sent it every other request");
    gateway.wait_stderr("endpoint ejected", 1, Duration::from_secs(2));
    let ejected = counted(&nodes, gets(address, 40)).await;
    assert_eq!(ejected, [0, 40], "an ejected endpoint gets nothing");

    nodes[0].state.status.store(200, Ordering::Relaxed);
    gateway.wait_stderr("ejected endpoint returned", 1, Duration::from_secs(2));
    let back = counted(&nodes, gets(address, 40)).await;
    assert!(back[0] >= 10, "back in rotation after the ejection time: {back:?}");
}

/// Send `n` GETs at once and return each status with its body.
async fn burst(address: SocketAddr, n: usize) -> Vec<(u16, String)> {
    let mut tasks = JoinSet::new();
    for i in 0..n {
        tasks.spawn(async move {
            let started = Instant::now();
            let reply = send(&client(), request("GET", address, "x.test", &format!("/{i}"))).await;
            (reply.status.as_u16(), reply.body, started.elapsed())
        });
    }
    let mut replies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body, elapsed) = result.unwrap();
        if status == 503 {
            assert!(elapsed < Duration::from_millis(250), "a refusal is fast: {elapsed:?}");
        }
        replies.push((status, body));
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_answers_503_beyond_max_connections() {
    let nodes = [Node::start().await];
    nodes[0].state.delay_ms.store(300, Ordering::Relaxed);
    let pool = "    circuit_breaker: { max_connections: 2 }\n";
    let gateway = Gateway::start(&spec(&[&nodes[0]], &[], pool, ""));
    let replies = burst(gateway.addr("public"), 5).await;

    let mut by_status: HashMap<u16, Vec<String>> = HashMap::new();
    for (status, body) in replies {
        by_status.entry(status).or_default().push(body);
    }
    assert_eq!(by_status.get(&200).map(Vec::len), Some(2), "{by_status:?}");
    let refused = &by_status[&503];
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|b| b.contains("pool_overloaded") && b.contains("max_connections")));

    // The two connections stay pooled and serve the next requests.
    for i in 0..3 {
        assert_eq!(get(gateway.addr("public"), &format!("/again/{i}")).await, 200);
    }
    assert!(!gateway.stderr().join("\n").contains("endpoint ejected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_answers_503_beyond_max_pending() {
    // Connections to a full accept queue never open, so requests wait.
    let (hole, _fillers, _listener) = blackhole();
    let pool = "    connect_timeout: 400ms\n    circuit_breaker: { max_pending: 1 }\n";
    let gateway = Gateway::start(&spec_with("", &[hole], pool, ""));
    let replies = burst(gateway.addr("public"), 3).await;

    let mut statuses: Vec<u16> = replies.iter().map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [502, 503, 503], "{replies:?}");
    assert!(replies
        .iter()
        .filter(|(s, _)| *s == 503)
        .all(|(_, b)| b.contains("pool_overloaded") && b.contains("max_pending")));
}

/// The port of the node that answered a GET of `path` with `header`.
async fn owner(address: SocketAddr, path: &str, header: Option<(&'static str, String)>) -> u16 {
    let mut ask = request("GET", address, "x.test", path);
    if let Some((name, value)) = header {
        ask.headers_mut().insert(name, value.parse().unwrap());
    }
    let reply = send(&client(), ask).await;
    assert_eq!(reply.status, 200, "{path}");
    reply.headers["x-node"].to_str().unwrap().parse().unwrap()
}

/// Whether every node owns at least a few of `owners`, as a hash spreads keys.
fn spread(nodes: &[Node], owners: &[u16]) -> bool {
    nodes.iter().all(|n| owners.iter().filter(|&&p| p == n.address.port()).count() >= 3)
}

/// Consistent hashing on a cookie, a query parameter and a path parameter:
/// the same key reaches the same endpoint whatever else the request
/// carries (other cookies, other parameters, the rest of the path), and
/// different keys spread over every endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_follows_a_cookie_a_query_parameter_and_a_path_parameter() {
    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    let refs: Vec<&Node> = nodes.iter().collect();
    type Ask = fn(usize, usize) -> (String, Option<(&'static str, String)>);
    let cases: [(&str, Ask); 3] = [
        ("{ cookie: session }", |k, v| {
            ("/".into(), Some(("cookie", format!("theme=t{v}; session=s{k}; lang=l{v}"))))
        }),
        ("{ query: user }", |k, v| (format!("/search?page={v}&user=u{k}&sort=s{v}"), None)),
        ("{ path_param: id }", |k, v| (format!("/users/{k}/items/{v}"), None)),
    ];
    for (key, ask) in cases {
        let pool = format!("    balance: consistent_hash\n    hash_on: {key}\n");
        let spec = spec(&refs, &[], &pool, "").replace("\"/{*rest}\"", "\"/users/{id}/{*rest}\"");
        let spec = if key.contains("path_param") { spec } else { spec.replace("/users/{id}", "") };
        let gateway = Gateway::start(&spec);
        let address = gateway.addr("public");
        let mut owners = Vec::new();
        for k in 0..60 {
            let (path, header) = ask(k, 0);
            let first = owner(address, &path, header).await;
            let (path, header) = ask(k, 1);
            assert_eq!(owner(address, &path, header).await, first, "{key}: key {k} moved");
            owners.push(first);
        }
        assert!(spread(&nodes, &owners), "{key}: {owners:?}");
    }
}

/// Consistent hashing on the client's address: every request from one
/// address reaches one endpoint, whatever it asks for, and addresses
/// spread. (Clients bind 127.0.0.2 to 127.0.0.61, all of them loopback.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_follows_the_client_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    let pool = "    balance: consistent_hash\n    hash_on: client_address\n";
    let gateway = Gateway::start(&spec(&nodes.iter().collect::<Vec<_>>(), &[], pool, ""));
    let address = gateway.addr("public");
    let mut owners = Vec::new();
    for host in 2..62u8 {
        let mut seen = Vec::new();
        // Two connections (so two client ports), two different requests.
        for path in ["/a", "/b/c?d=e"] {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from(([127, 0, 0, host], 0))).unwrap();
            let mut stream = socket.connect(address).await.unwrap();
            let ask = format!("GET {path} HTTP/1.1\r\nHost: x.test\r\n\r\n");
            stream.write_all(ask.as_bytes()).await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let length = support::raw::header(&head, "content-length").unwrap().parse().unwrap();
            stream.read_exact(&mut vec![0u8; length]).await.unwrap();
            let node: u16 = support::raw::header(&head, "x-node").unwrap().parse().unwrap();
            seen.push(node);
        }
        assert_eq!(seen[0], seen[1], "127.0.0.{host} moved");
        owners.push(seen[0]);
    }
    assert!(spread(&nodes, &owners), "{owners:?}");
}
