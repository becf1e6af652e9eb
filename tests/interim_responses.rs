//! Interim (1xx) responses from an HTTP/1.1 pool reach an HTTP/1.1 client
//! that the gateway's own server serves (RFC 9110, section 15.2): before
//! the final response, without hop-by-hop fields, at most ten per request,
//! never to an HTTP/1.0 client, and the connection goes on afterwards.
//! Requests that hyper's server serves (those with a body) still get none.
//! End to end with the `sluice` binary and raw sockets on loopback.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use support::raw::{find, ok, target, Conn, RawUpstream};
use support::{raw, spec_with, statuses, Answer, Gateway, ScriptedUpstream};

/// The early hint every `/hints...` answer starts with: a `Link` to pass on,
/// and fields that are hop-by-hop, one of them only because `Connection`
/// names it.
const HINT: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\
                      X-Hop: secret\r\nConnection: x-hop\r\nKeep-Alive: timeout=5\r\n\r\n";

/// An upstream that answers
/// - `/hints-held` with [`HINT`], then, once `release` is told, `200 done`;
/// - `/hints` with [`HINT`] and `200 done` in one write;
/// - `/many` with fifteen 103s, each with `Link: <N>`, then `200 done`;
/// - anything else with `200` and its target.
async fn upstream(release: Arc<Notify>) -> RawUpstream {
    RawUpstream::start(move |mut c: Conn| {
        let release = Arc::clone(&release);
        async move {
            while let Some(head) = c.head().await {
                if !c.skip_body(&head).await {
                    return;
                }
                let answer = match target(&head) {
                    "/hints-held" => {
                        if !c.write(HINT).await {
                            return;
                        }
                        release.notified().await;
                        ok("done")
                    }
                    "/hints" => [HINT, &ok("done")].concat(),
                    "/many" => {
                        let mut answer = Vec::new();
                        for n in 0..15 {
                            let hint = format!("HTTP/1.1 103 Early Hints\r\nLink: <{n}>\r\n\r\n");
                            answer.extend_from_slice(hint.as_bytes());
                        }
                        answer.extend_from_slice(&ok("done"));
                        answer
                    }
                    path => ok(path),
                };
                if !c.write(&answer).await {
                    return;
                }
            }
        }
    })
    .await
}

/// Read from `stream` into `seen` until it holds `needle`; false when the
/// connection ends or 5 s pass first.
async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while find(seen, needle).is_none() {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
    true
}

/// `GET path` on `stream`, keeping the connection; everything up to the
/// end of a `200 done` (or of the target echoed back), as text.
async fn get_on(stream: &mut TcpStream, path: &str, version: &str) -> String {
    let request = format!("GET {path} HTTP/{version}\r\nHost: x.test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write a request on loopback");
    let end = if path.starts_with("/hints") || path == "/many" { "done" } else { path };
    let mut seen = Vec::new();
    let whole = read_until(stream, &mut seen, format!("\r\n\r\n{end}").as_bytes()).await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(whole, "{path}: the response did not come whole: {text:?}");
    text
}

/// The heads of `text` (the lines before each empty line), lowercased.
fn heads(text: &str) -> Vec<String> {
    text.match_indices("HTTP/1.")
        .filter_map(|(at, _)| text[at..].split_once("\r\n\r\n").map(|(h, _)| h.to_lowercase()))
        .collect()
}

/// What an early hint must look like once the gateway has passed it on.
fn assert_forwarded_hint(head: &str, context: &str) {
    assert!(head.starts_with("http/1.1 103 early hints\r\n"), "{context}: {head:?}");
    assert!(head.contains("\r\nlink: </style.css>; rel=preload"), "{context}: {head:?}");
    for hop in ["x-hop", "secret", "connection", "keep-alive"] {
        assert!(!head.contains(hop), "{context}: {hop} passed on: {head:?}");
    }
    assert!(!head.contains("date:") && !head.contains("content-length"), "{context}: {head:?}");
}

async fn start() -> (RawUpstream, Gateway, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let upstream = upstream(Arc::clone(&release)).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    (upstream, gateway, release)
}

async fn connect(address: SocketAddr) -> TcpStream {
    TcpStream::connect(address).await.expect("connect on loopback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_hint_reaches_the_client_before_the_final_response() {
    let (_upstream, gateway, release) = start().await;
    let mut stream = connect(gateway.addr("public")).await;

    // The hint arrives while the upstream still holds its final response.
    stream.write_all(b"GET /hints-held HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    let hinted = read_until(&mut stream, &mut seen, b"\r\n\r\n").await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(hinted, "no early hint before the final response: {text:?}");
    assert_forwarded_hint(&heads(&text)[0], "held");
    assert_eq!(statuses(&text), [103], "{text:?}");
    release.notify_one();
    assert!(read_until(&mut stream, &mut seen, b"\r\n\r\ndone").await, "{seen:?}");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(statuses(&text), [103, 200], "{text:?}");

    // A hint that comes with its final response in one piece, on the same
    // connection: still first, and the connection goes on afterwards.
    let text = get_on(&mut stream, "/hints", "1.1").await;
    assert_eq!(statuses(&text), [103, 200], "{text:?}");
    assert_forwarded_hint(&heads(&text)[0], "together");
    let text = get_on(&mut stream, "/plain", "1.1").await;
    assert_eq!(statuses(&text), [200], "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_client_gets_no_interim_response() {
    let (_upstream, gateway, _release) = start().await;
    let public = gateway.addr("public");

    let request = "GET /hints HTTP/1.0\r\nHost: x.test\r\n\r\n";
    let response = raw(public, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response:?}");
    assert!(!response.contains("103") && !response.contains("style.css"), "{response:?}");
    assert!(response.ends_with("\r\n\r\ndone"), "{response:?}");

    // Kept alive, the connection still carries none.
    let mut stream = connect(public).await;
    let request = "GET /hints HTTP/1.0\r\nHost: x.test\r\nConnection: keep-alive\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    assert!(read_until(&mut stream, &mut seen, b"\r\n\r\ndone").await, "{seen:?}");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(heads(&text).len(), 1, "{text:?}");
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text:?}");

    // The same request in HTTP/1.1, on the same gateway, has its hint.
    let text = get_on(&mut connect(public).await, "/hints", "1.1").await;
    assert_eq!(statuses(&text), [103, 200], "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_beyond_ten_a_request_are_dropped() {
    let (_upstream, gateway, _release) = start().await;
    let mut stream = connect(gateway.addr("public")).await;

    for round in 0..2 {
        let text = get_on(&mut stream, "/many", "1.1").await;
        let mut expected = vec![103; 10];
        expected.push(200);
        assert_eq!(statuses(&text), expected, "round {round}: {text:?}");
        // The first ten, in order.
        let links: Vec<String> = heads(&text)
            .iter()
            .filter_map(|head| head.split_once("\r\nlink: ").map(|(_, link)| link.to_owned()))
            .collect();
        let first_ten: Vec<String> = (0..10).map(|n| format!("<{n}>")).collect();
        assert_eq!(links, first_ten, "round {round}: {text:?}");
    }
    // The bound is per request: the next one starts afresh, and plain
    // requests go on.
    let text = get_on(&mut stream, "/hints", "1.1").await;
    assert_eq!(statuses(&text), [103, 200], "{text:?}");
    let text = get_on(&mut stream, "/plain", "1.1").await;
    assert_eq!(statuses(&text), [200], "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_hyper_serves_gets_no_interim_response() {
    let (_upstream, gateway, _release) = start().await;
    let public = gateway.addr("public");

    // A body sends the connection to hyper's server, which drops the hint.
    let request = "POST /hints HTTP/1.1\r\nHost: x.test\r\nContent-Length: 2\r\n\
                   Connection: close\r\n\r\nhi";
    let response = raw(public, request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "{response:?}");
    assert!(response.ends_with("\r\n\r\ndone"), "{response:?}");

    // The gateway's own server passes it on.
    let text = get_on(&mut connect(public).await, "/hints", "1.1").await;
    assert_eq!(statuses(&text), [103, 200], "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_elsewhere_keeps_the_hints_already_sent() {
    // The first endpoint hints, then fails with 503; the retry goes to the
    // second, which hints too and answers.
    let failing = ScriptedUpstream::start(None, |_| {
        Answer::Send(
            b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n\
              HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let answering = ScriptedUpstream::start(None, |_| {
        Answer::Send([&b"HTTP/1.1 103 Early Hints\r\nLink: <b>\r\n\r\n"[..], &ok("done")].concat())
    })
    .await;
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: p
    balance: round_robin
    endpoints: [{{ address: \"{}\" }}, {{ address: \"{}\" }}]
routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: p
    retries: {{ attempts: 2, on: [503] }}
",
        failing.address, answering.address
    );
    let gateway = Gateway::start(&spec);
    let mut stream = connect(gateway.addr("public")).await;

    // Both hints, in the order they came, then the one final response.
    let text = get_on(&mut stream, "/hints", "1.1").await;
    assert_eq!(statuses(&text), [103, 103, 200], "{text:?}");
    let heads = heads(&text);
    assert!(heads[0].ends_with("\r\nlink: <a>") && heads[1].ends_with("\r\nlink: <b>"), "{text:?}");
    assert!(!text.contains("503"), "{text:?}");
    // The connection goes on.
    let text = get_on(&mut stream, "/hints", "1.1").await;
    assert_eq!(statuses(&text).last(), Some(&200), "{text:?}");
    assert!(!text.contains("503"), "{text:?}");
}

/// An upstream that sent an interim response had the request. When it then
/// closes the connection, the request is not sent again on a new one, as a
/// request on a pooled connection that the upstream had closed before it
/// arrived would be: the upstream sees it once, the client one `102`.
#[tokio::test]
async fn a_request_answered_with_an_interim_response_is_not_sent_again() {
    let upstream = ScriptedUpstream::start(None, |request| {
        if request.head.starts_with("GET /warm") {
            Answer::ok("warm")
        } else {
            Answer::SendAndClose(b"HTTP/1.1 102 Processing\r\n\r\n".to_vec())
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    // A first request leaves a pooled connection for the second to reuse.
    let mut stream = connect(gateway.addr("public")).await;
    stream.write_all(b"GET /warm HTTP/1.1\r\nHost: x.test\r\n\r\n").await.expect("write");
    let mut seen = Vec::new();
    assert!(read_until(&mut stream, &mut seen, b"\r\n\r\nwarm").await, "{seen:?}");

    for (method, path) in [("DELETE", "/item/7"), ("GET", "/page")] {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: x.test\r\n\r\n");
        let mut stream = connect(gateway.addr("public")).await;
        stream.write_all(request.as_bytes()).await.expect("write a request on loopback");
        let mut seen = Vec::new();
        assert!(read_until(&mut stream, &mut seen, b"HTTP/1.1 502").await, "{seen:?}");
        let text = String::from_utf8_lossy(&seen);
        assert_eq!(text.matches("102 Processing").count(), 1, "{text:?}");
        let sent = upstream.requests().iter().filter(|r| r.head.contains(path)).count();
        assert_eq!(sent, 1, "the upstream had {method} {path} {sent} times");
    }
}
