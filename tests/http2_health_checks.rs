//! Active health checks of an HTTP/2 pool speak HTTP/2 (prior knowledge),
//! so endpoints that speak nothing else (gRPC services, say) are probed,
//! and judged by what they answer.

mod support;

use std::time::Duration;

use support::h2c::H2cUpstream;
use support::{eventually, statuses, Gateway};

/// 503 for the health check, 200 for anything else.
fn failing_check(path: &str) -> u16 {
    if path == "/healthz" {
        503
    } else {
        200
    }
}

/// Wait, at most 5 s, until the gateway has logged `n` health changes of
/// the endpoint at `address` to `to`.
async fn wait_health(gateway: &Gateway, address: std::net::SocketAddr, to: &str, n: usize) {
    let changes = || {
        gateway
            .stderr()
            .iter()
            .filter(|line| line.contains("endpoint health changed"))
            .filter(|line| {
                line.contains(&address.to_string()) && line.contains(&format!("to=\"{to}\""))
            })
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || changes() >= n).await,
        "{address} never turned {to}:\n{}",
        gateway.stderr().join("\n")
    );
}

/// Where `count` requests through the gateway went, by the name each
/// answer carries.
async fn answers(gateway: &Gateway, count: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..count {
        let get = b"GET /api HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
        let answer = support::raw(gateway.addr("public"), get).await;
        assert_eq!(statuses(&answer), [200], "{answer}");
        names.push(answer.rsplit("\r\n\r\n").next().unwrap_or("").to_owned());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pools_probe_their_endpoints_over_http2() {
    let good = H2cUpstream::start("good").await;
    let bad = H2cUpstream::answering("bad", failing_check).await;
    let check = "    health_check: { path: /healthz, interval: 200ms, jitter: 0ms, timeout: 150ms, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
    let spec = support::spec_with(
        "",
        &[good.address, bad.address],
        &format!("    protocol: http2\n{check}"),
        "",
    );
    let gateway = Gateway::start(&spec);

    // Both are probed over HTTP/2 and answer: the one answering 503 is
    // taken out, the other stays in.
    good.wait_for("/healthz", 3, Duration::from_secs(5)).await;
    bad.wait_for("/healthz", 1, Duration::from_secs(5)).await;
    for probe in good.seen().iter().filter(|seen| seen.path == "/healthz") {
        assert_eq!(probe.user_agent.as_deref(), Some("sluice-health-check"), "{probe:?}");
    }
    wait_health(&gateway, bad.address, "unhealthy", 1).await;
    assert_eq!(answers(&gateway, 4).await, ["good"; 4]);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains(&format!("endpoint={}", good.address)), "{stderr}");

    // Once its check passes, it is back.
    bad.answer_with(|_| 200);
    wait_health(&gateway, bad.address, "healthy", 1).await;
    let mut names = answers(&gateway, 4).await;
    names.sort();
    assert_eq!(names, ["bad", "bad", "good", "good"]);
}

/// A probe's response head is held to the limit requests' heads are (a
/// header list of 64 KiB as HTTP/2 sizes it), not to hyper's 16 KiB: an
/// endpoint that answers its check with a 30 KiB field is healthy, as it
/// is for the requests it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_takes_a_response_head_as_large_as_a_request_does() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::Response;

    let probes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&probes);
    let (address, _server) = support::h2c::serve(move |request: hyper::Request<_>| {
        if request.uri().path() == "/healthz" {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        async move {
            Response::builder()
                .header("x-large", "v".repeat(30 * 1024))
                .body(Full::new(Bytes::from_static(b"big")))
                .unwrap()
        }
    })
    .await;
    let check = "    health_check: { path: /healthz, interval: 100ms, jitter: 0ms, timeout: 500ms, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
    let spec = support::spec_with("", &[address], &format!("    protocol: http2\n{check}"), "");
    let gateway = Gateway::start(&spec);

    assert!(eventually(Duration::from_secs(5), || probes.load(Ordering::Relaxed) >= 4).await);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains("endpoint health changed"), "{stderr}");
    assert_eq!(answers(&gateway, 2).await, ["big"; 2]);
}
