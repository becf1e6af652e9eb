//! Connection clocks and limits, end to end with real sockets and scaled-down
//! times: the request-head timeout, the client idle timeout, the upstream
//! connect timeout, the per-listener connection limit and the route body
//! size limit (fault kind K8, B37, and the self-protection of issue 4).

mod support;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{
    blackhole, client, raw, request, send, spec_with, statuses, until_closed, Gateway, Upstream,
};

const CLOCKS: &str = "    head_timeout: 300ms\n    idle_timeout: 500ms\n";

/// A slow client that never finishes its head is cut off at the head
/// timeout, even while it keeps trickling bytes (slowloris).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_off_at_the_head_timeout() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with(CLOCKS, &[upstream.address], "", ""));

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for byte in b"GET / HTTP/1.1\r\nHost: x.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    trickle.await;
    let (_, _) = until_closed(&mut stream, Duration::from_secs(3)).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "closed too early: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "closed too late: {elapsed:?}");
    assert!(upstream.seen().is_empty());
}

/// An idle keep-alive connection is closed at the idle timeout, and so is one
/// that never sends anything; neither is cut at the (shorter) head timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_at_the_idle_timeout() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with(CLOCKS, &[upstream.address], "", ""));

    let mut used = TcpStream::connect(gateway.addr("public")).await.unwrap();
    used.write_all(b"GET /a HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let (response, elapsed) = until_closed(&mut used, Duration::from_secs(3)).await;
    assert_eq!(statuses(&response), [200]);
    assert!(elapsed >= Duration::from_millis(450), "closed before the idle timeout: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "closed too late: {elapsed:?}");

    let mut silent = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let (nothing, elapsed) = until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(nothing.is_empty());
    assert!(elapsed >= Duration::from_millis(450), "closed before the idle timeout: {elapsed:?}");
}

/// The connection clocks stop while a request is in flight: a slow upstream
/// answer is delivered even though it takes longer than both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_not_cut_by_connection_clocks() {
    let upstream = Upstream::with_delay("slow", Duration::from_millis(900)).await;
    let gateway = Gateway::start(&spec_with(CLOCKS, &[upstream.address], "", ""));

    let response = raw(gateway.addr("public"), b"GET /slow HTTP/1.1\r\nHost: x.test\r\n\r\n").await;
    assert_eq!(statuses(&response), [200], "{response}");
    assert!(response.ends_with("slow"), "{response}");
}

/// B37 (connect): an endpoint that never completes the TCP handshake costs
/// the pool's connect timeout, then the request goes to another endpoint;
/// with no other endpoint the client gets 502 after that timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_timeout_fires_and_the_next_endpoint_answers() {
    let (hole, _fillers, _listener) = blackhole();
    let live = Upstream::start("live").await;
    let pool = "    connect_timeout: 200ms\n";
    let both = Gateway::start(&spec_with("", &[hole, live.address], pool, ""));
    let only_hole = Gateway::start(&spec_with("", &[hole], pool, ""));
    let http = client();

    for i in 0..4 {
        let started = Instant::now();
        let reply =
            send(&http, request("POST", both.addr("public"), "x.test", &format!("/{i}"))).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "live"));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
    assert_eq!(live.seen().len(), 4, "each POST reached the live endpoint once");

    let started = Instant::now();
    let reply = send(&http, request("GET", only_hole.addr("public"), "x.test", "/")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(180) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

/// Connections beyond `max_connections` wait to be accepted until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let upstream = Upstream::start("a").await;
    let gateway =
        Gateway::start(&spec_with("    max_connections: 1\n", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let mut first = TcpStream::connect(public).await.unwrap();
    first.write_all(b"GET /first HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let mut second = TcpStream::connect(public).await.unwrap();
    second
        .write_all(b"GET /second HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(400), second.read(&mut buffer)).await;
    assert!(waited.is_err(), "the second connection was served while the first held the only slot");

    drop(first);
    let (response, _) = until_closed(&mut second, Duration::from_secs(3)).await;
    assert_eq!(statuses(&response), [200], "{response}");
}

/// A declared Content-Length over the route's `max_body_size` gets 413 before
/// anything is sent; a chunked body is cut off with 413 once it passes the
/// limit; a body at the limit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_size_get_413() {
    let upstream = Upstream::start("a").await;
    let gateway =
        Gateway::start(&spec_with("", &[upstream.address], "", "    max_body_size: 1KiB\n"));
    let public = gateway.addr("public");

    let declared = "POST /big HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1000000\r\n\r\n";
    let started = Instant::now();
    let response = raw(public, declared.as_bytes()).await;
    assert_eq!(statuses(&response), [413], "{response}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(upstream.seen().is_empty(), "a declared-too-large body was forwarded");

    let mut chunked = String::from(
        "POST /chunked HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..4 {
        chunked.push_str(&format!("200\r\n{}\r\n", "b".repeat(512)));
    }
    chunked.push_str("0\r\n\r\n");
    let response = raw(public, chunked.as_bytes()).await;
    assert_eq!(statuses(&response), [413], "{response}");
    assert!(upstream.seen().iter().all(|s| s.body_len <= 1024), "{:?}", upstream.seen());

    let exact = format!(
        "POST /ok HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n{}",
        "c".repeat(1024)
    );
    assert_eq!(statuses(&raw(public, exact.as_bytes()).await), [200]);
}

/// A route's `timeout` that passes while the client is still sending its
/// request body is the client's slowness, not the endpoint's: the client
/// gets 408 `client_timeout`, the log says so, and outlier detection holds
/// nothing against the endpoint, so slow uploaders cannot eject a healthy
/// one and leave the pool with nothing to send to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_during_a_slow_upload_is_not_held_against_the_endpoint() {
    let upstream = Upstream::start("a").await;
    let outliers = "    outlier_detection: { consecutive_failures: 2, base_ejection: 30s, \
                    max_ejection_percent: 100 }\n";
    let mut gateway =
        Gateway::start(&spec_with("", &[upstream.address], outliers, "    timeout: 300ms\n"));
    for _ in 0..3 {
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        let head = "PUT /up HTTP/1.1\r\nHost: x.test\r\nContent-Length: 15\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..3 {
            // The gateway may close once it has answered.
            let _ = stream.write_all(b"hello").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (answer, _) = until_closed(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(statuses(&answer), [408], "{answer}");
        assert!(answer.contains("client_timeout"), "{answer}");
    }
    // The endpoint was not ejected.
    let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", "/ok")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(gateway.count_stderr("endpoint ejected"), 0, "{}", gateway.stderr().join("\n"));

    gateway.interrupt();
    assert!(gateway.wait(Duration::from_secs(5)).success());
    let slow = gateway.stdout().into_iter().find(|l| l.contains("\"path\":\"/up\"")).unwrap();
    let slow: serde_json::Value = serde_json::from_str(&slow).unwrap();
    assert_eq!(slow["status"], 408, "{slow}");
    let reason = slow["reason"].as_str().unwrap_or("");
    assert!(reason.contains("still sending its request body"), "{slow}");
}
