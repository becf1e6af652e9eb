//! Balancing, health checks, outlier detection, retries and circuit
//! breaking, end to end: the real binary in front of upstreams on
//! 127.0.0.1 that this test starts, stops and slows down itself.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use support::node::{get, spec, Node};
use support::{client, request, send, Gateway};
use tokio::task::JoinSet;

/// A load loop of several thousand requests, eight at a time, while one of
/// three endpoints is killed and later restarted: no request fails, the
/// health checks notice the death in about their configured worst case
/// (two probes of 50 ms interval, 10 ms jitter and 50 ms timeout: 220 ms;
/// the test allows a second, for a busy machine, which the default probe
/// interval alone would exceed), the dead endpoint receives nothing once
/// noticed, and it gets its share again once two probes pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_endpoint_leaves_and_returns_without_failing_requests() {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;

    let mut nodes = [Node::start().await, Node::start().await, Node::start().await];
    let refs: Vec<&Node> = nodes.iter().collect();
    let text = spec(
        &refs,
        &[],
        "    health_check: { path: /health, interval: 50ms, jitter: 10ms, timeout: 50ms, unhealthy_threshold: 2, healthy_threshold: 2 }\n",
        "",
    );
    let worst_detection = Duration::from_millis((50 + 10 + 50) * 2);
    let gateway = Gateway::start(&text);
    let address = gateway.addr("public");

    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let mut load = JoinSet::new();
    for worker in 0..8 {
        let (sent, failed, done) = (Arc::clone(&sent), Arc::clone(&failed), Arc::clone(&done));
        load.spawn(async move {
            let http = client();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let path = format!("/{worker}/{i}");
                if send(&http, request("GET", address, "x.test", &path)).await.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
    }
    let sent_at_least = async |n: usize| {
        while sent.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    // Wait (within a bound that only tells a hang) for the log to have said
    // `endpoint health changed` `n` times; how long that took.
    let health_changes = async |n: usize| {
        let started = Instant::now();
        while gateway.count_stderr("endpoint health changed") < n {
            assert!(started.elapsed() < Duration::from_secs(5), "no health change {n}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    };

    sent_at_least(1000).await;
    assert!(nodes[1].requests() > 100, "all three share the load");

    // Killed: the checks notice within their worst case.
    nodes[1].stop();
    let noticed = health_changes(1).await;
    assert!(
        noticed < Duration::from_secs(1),
        "noticed after {noticed:?}, worst {worst_detection:?}"
    );
    let dead_at = nodes[1].requests();
    let now = sent.load(Ordering::Relaxed);
    sent_at_least(now + 1000).await;
    assert_eq!(nodes[1].requests(), dead_at, "a dead endpoint receives nothing");

    // Restarted: back after two passing probes, then its share.
    nodes[1].restart().await;
    health_changes(2).await;
    let (before, now) = (nodes[1].requests(), sent.load(Ordering::Relaxed));
    sent_at_least(now.max(3000) + 600).await;
    assert!(nodes[1].requests() - before > 100, "the restarted endpoint is back in rotation");

    done.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent >= 3000, "{sent} requests");
    assert_eq!(failed, 0, "of {sent} requests, none fails while an endpoint dies and returns");
    // The log names the endpoint each time: down, then up.
    let changes: Vec<String> =
        gateway.stderr().into_iter().filter(|l| l.contains("endpoint health changed")).collect();
    let endpoint = format!("endpoint={}", nodes[1].address);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|l| l.contains(&endpoint)), "{changes:?}");
    let (down, up) =
        (changes[0].contains("to=\"unhealthy\""), changes[1].contains("to=\"healthy\""));
    assert!(down && up, "{changes:?}");
}

/// Send `n` requests, `concurrency` at a time, and return the share of
/// each node.
async fn shares(address: SocketAddr, nodes: &[Node], n: usize, concurrency: usize) -> Vec<f64> {
    let before: Vec<usize> = nodes.iter().map(Node::requests).collect();
    let mut tasks = JoinSet::new();
    for w in 0..concurrency {
        tasks.spawn(async move {
            let http = client();
            for i in 0..n / concurrency {
                let reply =
                    send(&http, request("GET", address, "x.test", &format!("/{w}/{i}"))).await;
                assert_eq!(reply.status, 200);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let counts: Vec<usize> = nodes.iter().zip(before).map(|(n, b)| n.requests() - b).collect();
    let total: usize = counts.iter().sum();
    counts.iter().map(|&c| c as f64 / total.max(1) as f64).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_aware_balancers_send_a_slow_endpoint_far_less() {
    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    for node in &nodes {
        node.state.delay_ms.store(2, Ordering::Relaxed);
    }
    nodes[2].state.delay_ms.store(20, Ordering::Relaxed);
    let refs: Vec<&Node> = nodes.iter().collect();

    let mut slow_share = Vec::new();
    for balance in ["round_robin", "least_request", "peak_ewma"] {
        let text = spec(&refs, &[], &format!("    balance: {balance}\n"), "");
        let gateway = Gateway::start(&text);
        let share = shares(gateway.addr("public"), &nodes, 600, 8).await;
        slow_share.push(share[2]);
    }
    let (rr, lr, ewma) = (slow_share[0], slow_share[1], slow_share[2]);
    assert!(rr > 0.28, "round robin gives the slow endpoint a third: {slow_share:?}");
    assert!(lr < rr * 0.6, "least_request sends it far less: {slow_share:?}");
    assert!(ewma < rr * 0.6, "peak_ewma sends it far less: {slow_share:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_within_a_budget_do_not_amplify_a_brown_out() {
    let nodes = [Node::start().await, Node::start().await];
    for node in &nodes {
        node.state.status.store(503, Ordering::Relaxed);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    let text = spec(
        &refs,
        &[],
        "",
        "    retries: { attempts: 3, on: [503], backoff: { base: 0ms, max: 0ms } }\n    retry_budget: { percent: 20, min_per_second: 1, window: 10s }\n",
    );
    let gateway = Gateway::start(&text);
    let address = gateway.addr("public");
    let n = 500;
    for i in 0..n {
        assert_eq!(get(address, &format!("/{i}")).await, 503);
    }
    let attempts: usize = nodes.iter().map(Node::requests).sum();
    // 20 % of 500, plus the reserve of 1/s over a 10 s window.
    assert!(attempts <= n + n / 5 + 10 + 2, "retries stayed within the budget: {attempts}");
    assert!(attempts > n, "some requests were retried: {attempts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_sent_twice_but_a_get_is_retried() {
    let nodes = [Node::start().await, Node::start().await];
    nodes[0].state.status.store(502, Ordering::Relaxed);
    let refs: Vec<&Node> = nodes.iter().collect();
    let text = spec(
        &refs,
        &[],
        "",
        "    retries: { attempts: 2, on: [502, reset, connect_failure] }\n    retry_budget: { percent: 100 }\n",
    );
    let gateway = Gateway::start(&text);
    let address = gateway.addr("public");
    let http = client();
    for i in 0..20 {
        let post = Request::builder()
            .method("POST")
            .uri(format!("http://{address}/orders/{i}"))
            .header("host", "x.test")
            .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
            .unwrap();
        let reply = send(&http, post).await;
        assert!(reply.status == 200 || reply.status == 502, "{}", reply.status);
        assert_eq!(get(address, &format!("/orders/{i}")).await, 200, "GET is retried elsewhere");
    }
    let posts =
        nodes[0].state.posts.load(Ordering::Relaxed) + nodes[1].state.posts.load(Ordering::Relaxed);
    assert_eq!(posts, 20, "every POST reached exactly one upstream once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_answers_503_beyond_max_requests() {
    let nodes = [Node::start().await];
    nodes[0].state.delay_ms.store(300, Ordering::Relaxed);
    let refs: Vec<&Node> = nodes.iter().collect();
    let text = spec(&refs, &[], "    circuit_breaker: { max_requests: 2 }\n", "");
    let gateway = Gateway::start(&text);
    let address = gateway.addr("public");

    let mut tasks = JoinSet::new();
    for i in 0..6 {
        tasks.spawn(async move {
            let reply = send(&client(), request("GET", address, "x.test", &format!("/{i}"))).await;
            (reply.status.as_u16(), reply.body)
        });
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            200 => ok += 1,
            503 => refused.push(body),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 2, "exactly max_requests are admitted");
    assert_eq!(refused.len(), 4);
    assert!(
        refused[0].contains("pool_overloaded") && refused[0].contains("max_requests"),
        "{}",
        refused[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_gets_nothing_and_an_empty_pool_answers_503_at_once() {
    // Under every algorithm, those that ignore other weights included (an
    // operator drains an endpoint by setting its weight to 0).
    for balance in ["weighted_round_robin", "round_robin", "random", "least_request"] {
        let nodes = [Node::start().await, Node::start().await, Node::start().await];
        let refs: Vec<&Node> = nodes.iter().collect();
        let text = spec(&refs, &[0, 1, 1], &format!("    balance: {balance}\n"), "");
        let gateway = Gateway::start(&text);
        let address = gateway.addr("public");
        for i in 0..100 {
            assert_eq!(get(address, &format!("/{i}")).await, 200);
        }
        assert_eq!(nodes[0].requests(), 0, "{balance}: weight 0 receives no request");
        assert!(nodes[1].requests() > 20 && nodes[2].requests() > 20, "{balance}");
    }

    // Every endpoint failing its checks: 503 at once, with a clear body.
    let mut dead = [Node::start().await];
    dead[0].stop();
    let refs: Vec<&Node> = dead.iter().collect();
    let text = spec(
        &refs,
        &[],
        "    health_check: { path: /health, interval: 50ms, timeout: 50ms, unhealthy_threshold: 1 }\n",
        "",
    );
    let gateway = Gateway::start(&text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", "/")).await;
    assert_eq!(reply.status, 503);
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(reply.json()["error"], "no_endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_thresholds_count_consecutive_results() {
    // The data path fails now and then (500, 200, 500, 500): with outlier
    // detection at 3 consecutive failures, it never ejects.
    let nodes = [Node::start().await, Node::start().await];
    let refs: Vec<&Node> = nodes.iter().collect();
    let text = spec(
        &refs,
        &[],
        "    outlier_detection: { consecutive_failures: 3, base_ejection: 10s, max_ejection_percent: 50 }\n",
        "",
    );
    let gateway = Gateway::start(&text);
    let address = gateway.addr("public");
    // Round robin alternates, so node 0 sees every other request.
    for (i, status) in [500, 200, 500, 500, 200, 500].into_iter().enumerate() {
        nodes[0].state.status.store(status, Ordering::Relaxed);
        get(address, &format!("/a/{i}")).await;
        get(address, &format!("/b/{i}")).await;
    }
    nodes[0].state.status.store(200, Ordering::Relaxed);
    let before = nodes[0].requests();
    for i in 0..20 {
        get(address, &format!("/c/{i}")).await;
    }
    assert!(nodes[0].requests() - before >= 8, "never ejected on non-consecutive failures");
    assert!(!gateway.stderr().join("\n").contains("ejected"));
}

/// Health checks count consecutive probe results: one failed probe, and two
/// in a row, change nothing; three in a row take the endpoint out; two
/// passes bring it back. (Probes every 150 ms stand for a check every
/// second; the gap between probes leaves room to count them on a busy
/// machine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_an_endpoint_out_after_three_failed_probes_and_back_after_two() {
    let nodes = [Node::start().await, Node::start().await];
    let refs: Vec<&Node> = nodes.iter().collect();
    let text = spec(
        &refs,
        &[],
        "    health_check: { path: /health, interval: 150ms, jitter: 0s, timeout: 100ms, unhealthy_threshold: 3, healthy_threshold: 2 }\n",
        "",
    );
    let gateway = Gateway::start(&text);
    let address = gateway.addr("public");
    let state = &nodes[0].state;
    let probes = || state.probes.load(Ordering::Relaxed);
    let probes_reach = async |n: usize| {
        let started = Instant::now();
        while probes() < n {
            assert!(started.elapsed() < Duration::from_secs(5), "probes stopped at {}", probes());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let changes = || gateway.count_stderr("endpoint health changed");
    let node_0_share = async || {
        let before = nodes[0].requests();
        for i in 0..20 {
            assert_eq!(get(address, &format!("/{i}")).await, 200);
        }
        nodes[0].requests() - before
    };

    // One failure, passes, two failures in a row, passes: still in.
    probes_reach(2).await;
    for failures in [1, 2] {
        state.failing_probes.store(failures, Ordering::Relaxed);
        let now = probes();
        probes_reach(now + failures + 3).await;
        assert_eq!(state.failing_probes.load(Ordering::Relaxed), 0);
    }
    assert_eq!(changes(), 0, "{:?}", gateway.stderr());
    assert!(node_0_share().await >= 5, "node 0 is in rotation");

    // Three failures in a row: out, on the third.
    let before = probes();
    state.probe_status.store(404, Ordering::Relaxed);
    gateway.wait_log_within("endpoint health changed", 1, Duration::from_secs(5));
    let failed = probes() - before;
    assert!((3..=4).contains(&failed), "out after {failed} failed probes");
    assert_eq!(node_0_share().await, 0, "node 0 is out of rotation");

    // Two passes: back.
    let before = probes();
    state.probe_status.store(0, Ordering::Relaxed);
    gateway.wait_log_within("endpoint health changed", 2, Duration::from_secs(5));
    let passed = probes() - before;
    assert!((2..=3).contains(&passed), "back after {passed} passing probes");
    assert!(node_0_share().await >= 5, "node 0 is back in rotation");
}

/// Reload `gateway` onto `text` and wait until the new plan serves.
fn reload(gateway: &Gateway, text: &str, reloads: usize) {
    std::fs::write(gateway.spec_path(), text).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", reloads);
}

/// Reload onto a pool of all three `nodes` with `settings`, then send 30
/// requests: node 1 (out of rotation before the reload) gets none of them,
/// the added node 2 its share.
async fn add_a_node_and_check_node_1_stays_out(
    gateway: &Gateway,
    nodes: &[Node; 3],
    settings: &str,
) {
    reload(gateway, &spec(&[&nodes[0], &nodes[1], &nodes[2]], &[], settings, ""), 1);
    let out = nodes[1].requests();
    for i in 0..30 {
        assert_eq!(get(gateway.addr("public"), &format!("/after/{i}")).await, 200);
    }
    assert_eq!(nodes[1].requests(), out, "the endpoint is back in rotation after the reload");
    assert!(nodes[2].requests() >= 10, "the added endpoint takes its share");
}

/// Outlier detection that ejects an endpoint at its first failure, for a
/// minute, at most half the pool.
const EJECT_AT_ONCE: &str = "    outlier_detection: { consecutive_failures: 1, base_ejection: 60s, max_ejection_percent: 50 }\n";

/// A gateway over the first two of `nodes`, with `failing` of them
/// answering 503 until outlier detection has ejected it.
async fn gateway_with_one_ejected(nodes: &[Node], failing: usize) -> Gateway {
    nodes[failing].state.status.store(503, Ordering::Relaxed);
    let gateway = Gateway::start(&spec(&[&nodes[0], &nodes[1]], &[], EJECT_AT_ONCE, ""));
    for i in 0..4 {
        get(gateway.addr("public"), &format!("/before/{i}")).await;
    }
    gateway.wait_log("endpoint ejected", 1);
    gateway
}

/// A reload that adds an endpoint changes the pool, but an endpoint that
/// outlier detection ejected before it stays ejected: its ejection is
/// state of that address, not of the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_endpoint_stays_ejected_when_a_reload_changes_its_pool() {
    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    let gateway = gateway_with_one_ejected(&nodes, 1).await;

    add_a_node_and_check_node_1_stays_out(&gateway, &nodes, EJECT_AT_ONCE).await;
    let log = gateway.stderr().join("\n");
    assert!(log.contains("kept=2"), "the log says which state carried over:\n{log}");
}

/// The same for active health checks: an endpoint found unhealthy stays
/// out of rotation across a reload that changes its pool but not the
/// check, rather than starting healthy until its next probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_endpoint_stays_out_when_a_reload_changes_its_pool() {
    let nodes = [Node::start().await, Node::start().await, Node::start().await];
    nodes[1].state.probe_status.store(503, Ordering::Relaxed);
    let check = "    health_check: { path: /health, interval: 400ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
    let gateway = Gateway::start(&spec(&[&nodes[0], &nodes[1]], &[], check, ""));
    gateway.wait_log("endpoint health changed", 1);

    add_a_node_and_check_node_1_stays_out(&gateway, &nodes, check).await;
}

/// A changed health check starts every endpoint afresh: the old results
/// answered a different question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_health_check_starts_afresh_after_a_reload() {
    let nodes = [Node::start().await, Node::start().await];
    nodes[1].state.probe_status.store(503, Ordering::Relaxed);
    let refs = [&nodes[0], &nodes[1]];
    let check = |path: &str, interval: &str| {
        format!("    health_check: {{ path: {path}, interval: {interval}, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1 }}\n")
    };
    let gateway = Gateway::start(&spec(&refs, &[], &check("/health", "300ms"), ""));
    let address = gateway.addr("public");
    gateway.wait_log("endpoint health changed", 1);
    assert_eq!(get(address, "/down").await, 200);

    nodes[1].state.probe_status.store(0, Ordering::Relaxed);
    // The new check's first probe is seconds away.
    reload(&gateway, &spec(&refs, &[], &check("/ready", "10s"), ""), 1);
    let before = nodes[1].requests();
    for i in 0..10 {
        assert_eq!(get(address, &format!("/after/{i}")).await, 200);
    }
    assert!(nodes[1].requests() - before >= 4, "a new check starts from the initial state");
}

/// Carried ejections still respect `max_ejection_percent`, now of the
/// changed pool: a reload that leaves a pool of one at 50% keeps nothing
/// ejected, rather than leave the pool with no endpoint at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_ejections_respect_the_cap_of_the_shrunk_pool() {
    let nodes = [Node::start().await, Node::start().await];
    let gateway = gateway_with_one_ejected(&nodes, 0).await;
    let address = gateway.addr("public");
    // It has recovered, but its ejection has a minute to run.
    nodes[0].state.status.store(200, Ordering::Relaxed);

    reload(&gateway, &spec(&[&nodes[0]], &[], EJECT_AT_ONCE, ""), 1);
    for i in 0..10 {
        assert_eq!(get(address, &format!("/after/{i}")).await, 200, "request {i}");
    }
    let log = gateway.stderr().join("\n");
    assert!(log.contains("ejected endpoint returned"), "the early return is logged:\n{log}");
}

/// A client connection keeps the plan it was accepted under alive for as
/// long as it stays open. The health probes of a pool a reload replaced
/// stop anyway: reloads do not add a prober per endpoint each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_open_connections_do_not_multiply_health_probes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let node = Node::start().await;
    let check = "    health_check: { path: /health, interval: 50ms, timeout: 100ms }\n";
    let gateway = Gateway::start(&spec(&[&node], &[1], check, ""));
    let address = gateway.addr("public");
    let mut held = Vec::new();
    for generation in 0..6 {
        // A kept-alive client on this plan, then a plan that changes the pool.
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(b"GET /held HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 256];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&answer[..n])
        );
        held.push(stream);
        let weight = if generation % 2 == 0 { 2 } else { 1 };
        reload(&gateway, &spec(&[&node], &[weight], check, ""), generation + 1);
    }

    let before = node.state.probes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let probes = node.state.probes.load(Ordering::Relaxed) - before;
    // One prober every 50 ms (with jitter) makes about 20; seven would make 140.
    assert!((5..=45).contains(&probes), "{probes} probes in a second");
    drop(held);
}

/// The failover after a refused connection is always on, as the README
/// says, and a retry budget does not stop it: nothing was sent, so it adds
/// no load to the pool that the budget is there to protect. With a budget
/// whose reserve of ten retries would be spent halfway, every GET that
/// meets the closed endpoint still reaches the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_retry_budget_still_fails_over_from_a_refused_connection() {
    let live = support::Upstream::start("live").await;
    let closed = support::closed_port();
    let text = support::spec_with(
        "",
        &[closed, live.address],
        "",
        "    retry_budget: { percent: 0, min_per_second: 1, window: 10s }\n",
    );
    let gateway = Gateway::start_with(&text, &["--access-log", "off"]);
    let address = gateway.addr("public");
    for i in 0..20 {
        assert_eq!(get(address, &format!("/{i}")).await, 200, "request {i}");
    }
    assert_eq!(live.seen().len(), 20);
}

/// A request the circuit breaker refuses for want of a connection
/// (`max_connections`, `max_pending`) was sent to no endpoint, and its
/// access log record says so with a null `endpoint`, as one refused by
/// `max_requests` does: the endpoint the balancer had picked did nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_a_connection_names_no_endpoint_in_the_log() {
    let slow = support::Upstream::with_delay("slow", Duration::from_millis(300)).await;
    let text = support::spec_with(
        "",
        &[slow.address],
        "    circuit_breaker: { max_connections: 1 }\n",
        "",
    );
    let mut gateway = Gateway::start(&text);
    let address = gateway.addr("public");
    let first = tokio::spawn(get(address, "/first"));
    slow.wait_for(1).await;
    assert_eq!(get(address, "/second").await, 503);
    assert_eq!(first.await.unwrap(), 200);

    gateway.interrupt();
    assert!(gateway.wait(Duration::from_secs(5)).success());
    let line = gateway.stdout().into_iter().find(|l| l.contains("\"path\":\"/second\"")).unwrap();
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["status"], 503, "{line}");
    assert!(line["reason"].as_str().unwrap_or("").contains("max_connections"), "{line}");
    assert_eq!(line["endpoint"], serde_json::Value::Null, "{line}");
}
