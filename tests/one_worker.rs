//! `sluice serve --workers 1`, which accepts and serves on one thread,
//! rather than the worker threads the other end-to-end tests use: many
//! concurrent exchanges over pooled upstream connections, the connection
//! clocks, and the drain.

mod support;

use std::time::Duration;

use hyper::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::{
    client, request, send, spec_with, statuses, until_closed, Answer, Gateway, ScriptedUpstream,
};

const ONE: &[&str] = &["--workers", "1", "--access-log", "stdout"];

/// 300 requests at once over two upstreams: each answer is the one its own
/// request asked for, and the upstream connections are reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_answer() {
    let a = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let b = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start_with(&spec_with("", &[a.address, b.address], "", ""), ONE);
    let address = gateway.addr("public");
    let http = client();

    for round in 0..2 {
        let tasks: Vec<_> = (0..150)
            .map(|i| {
                let http = http.clone();
                tokio::spawn(async move {
                    let path = format!("/r{round}/{i}");
                    let reply = send(&http, request("GET", address, "x.test", &path)).await;
                    (path, reply)
                })
            })
            .collect();
        for task in tasks {
            let (path, reply) = task.await.unwrap();
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, path.as_str()));
        }
    }
    assert_eq!(a.requests().len() + b.requests().len(), 300);
    // The second round found the first round's connections idle.
    assert!(
        a.connections() + b.connections() <= 150 + 10,
        "{} + {}",
        a.connections(),
        b.connections()
    );
}

/// The head and idle clocks run on one worker as on several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_clocks_close_slow_and_idle_clients() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let clocks = "    head_timeout: 300ms\n    idle_timeout: 500ms\n";
    let gateway = Gateway::start_with(&spec_with(clocks, &[upstream.address], "", ""), ONE);

    let mut slow = TcpStream::connect(gateway.addr("public")).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x.test\r\n").await.unwrap();
    let (_, elapsed) = until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(elapsed >= Duration::from_millis(250), "head clock: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "head clock: {elapsed:?}");

    let mut idle = TcpStream::connect(gateway.addr("public")).await.unwrap();
    idle.write_all(b"GET /idle HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let (response, elapsed) = until_closed(&mut idle, Duration::from_secs(3)).await;
    assert_eq!(statuses(&response), [200], "{response}");
    assert!(elapsed >= Duration::from_millis(450), "idle clock: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "idle clock: {elapsed:?}");
    assert_eq!(upstream.requests().len(), 1, "the unfinished head never went upstream");
}

/// SIGTERM lets a request in flight finish, then the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_before_the_drain_ends() {
    let upstream = support::Upstream::with_delay("slow", Duration::from_millis(400)).await;
    let mut gateway = Gateway::start_with(&spec_with("", &[upstream.address], "", ""), ONE);
    let address = gateway.addr("public");
    let http = client();

    let in_flight =
        tokio::spawn(async move { send(&http, request("GET", address, "x.test", "/late")).await });
    upstream.wait_for(1).await;
    gateway.terminate();
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "slow"));
    assert!(gateway.wait(Duration::from_secs(5)).success());
}
