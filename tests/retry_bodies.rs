//! Retries after a request body was sent: a route with retries keeps a copy
//! of a body up to its `replay_body_limit` and sends it again, whole, to the
//! next endpoint; a larger body is never sent twice. End to end, with
//! scripted upstreams on loopback that read every body in full.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use support::{client, raw, send, statuses, Answer, Gateway, ScriptedUpstream};

/// One upstream that reads each body and answers 503, and one that answers
/// 200 with the body it read.
async fn failing_and_echoing() -> (ScriptedUpstream, ScriptedUpstream) {
    let failing = ScriptedUpstream::start(None, |_| {
        Answer::Send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let echoing = echoing().await;
    (failing, echoing)
}

/// An upstream that answers 200 with the body it read.
async fn echoing() -> ScriptedUpstream {
    ScriptedUpstream::start(None, |r| {
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", r.body.len()).into_bytes();
        answer.extend_from_slice(&r.body);
        Answer::Send(answer)
    })
    .await
}

/// Round robin over `failing` then `echoing`, retrying 503 once.
fn spec(failing: &ScriptedUpstream, echoing: &ScriptedUpstream, retries: &str) -> String {
    format!(
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
    retries: {{ attempts: 2, on: [503]{retries} }}
",
        failing.address, echoing.address
    )
}

/// A body of `n` letters that say where they are.
fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The data of a chunked body, as the upstream read it.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let line = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = std::str::from_utf8(&raw[..line]).unwrap().split(';').next().unwrap();
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return data;
        }
        data.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw = &raw[line + 2 + size + 2..];
    }
}

fn put(gateway: &Gateway, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::builder()
        .method("PUT")
        .uri(format!("http://{}/item", gateway.addr("public")))
        .header("host", "x.test")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_within_the_limit_is_sent_again_whole_to_the_next_endpoint() {
    let (failing, echoing) = failing_and_echoing().await;
    let gateway = Gateway::start(&spec(&failing, &echoing, ""));
    let http = client();
    let sent = body(10 * 1024);

    for _ in 0..6 {
        let reply = send(&http, put(&gateway, sent.clone())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.as_bytes(), sent.as_slice(), "the retry carried the whole body");
    }
    // Round robin sends half the first tries to the failing endpoint, each
    // then retried on the other: it read every body whole, and the echoing
    // one got all six.
    let failed = failing.requests();
    assert!(failed.len() >= 2, "{} first tries failed", failed.len());
    assert!(failed.iter().all(|r| r.body == sent));
    let answered = echoing.requests();
    assert_eq!(answered.len(), 6);
    assert!(answered.iter().all(|r| r.body == sent && r.method() == "PUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_with_trailers_is_sent_again_too() {
    let (failing, echoing) = failing_and_echoing().await;
    let gateway = Gateway::start(&spec(&failing, &echoing, ""));
    let request = b"PUT /item HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\
                    Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n";
    for _ in 0..4 {
        let answer = raw(gateway.addr("public"), request).await;
        assert_eq!(statuses(&answer), [200], "{answer}");
    }
    // Both endpoints read the whole body, chunked again by the gateway
    // (trailers are not passed to an HTTP/1.1 pool).
    let failed = failing.requests();
    assert!(!failed.is_empty());
    assert_eq!(echoing.requests().len(), 4);
    for r in failed.iter().chain(&echoing.requests()) {
        assert_eq!(dechunk(&r.body), b"hello world", "{:?}", String::from_utf8_lossy(&r.body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_never_sent_twice() {
    let (failing, echoing) = failing_and_echoing().await;
    let gateway = Gateway::start(&spec(&failing, &echoing, ", replay_body_limit: 1KiB"));
    let http = client();
    let sent = body(4 * 1024);

    let mut unavailable = 0;
    for _ in 0..6 {
        let reply = send(&http, put(&gateway, sent.clone())).await;
        match reply.status {
            StatusCode::OK => assert_eq!(reply.body.as_bytes(), sent.as_slice()),
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Every first try on the failing endpoint is answered as it was; none
    // reaches the other endpoint a second time.
    assert!(unavailable >= 2, "{unavailable} answered 503");
    assert_eq!(failing.requests().len(), unavailable);
    assert_eq!(echoing.requests().len(), 6 - unavailable);
}

/// A 503 that an upstream sends as soon as it has a request's head, before
/// it reads the body (load shedding), is retried as the route says, like
/// one sent after the body: the gateway reads the rest of the client's
/// body into its copy and sends the whole of it to the next endpoint. So
/// is a reset that comes while the body is still on its way. Whether the
/// first upstream then reads the body, closes without reading it, or
/// resets the connection mid-body, and whatever the body's framing, the
/// client gets the echo of its whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_that_ends_before_the_body_is_all_sent_is_retried_with_all_of_it() {
    use std::time::Duration;
    use support::raw::{Conn, RawUpstream};
    use tokio::io::AsyncWriteExt;

    let early = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let how = head.split(' ').nth(1).unwrap_or("").to_owned();
            if how.starts_with("/reset") {
                // Take a piece of the body, then break off.
                let _ = c.fill().await;
                let _ = c.stream.set_zero_linger();
                return;
            }
            let close = if how.starts_with("/close") { "Connection: close\r\n" } else { "" };
            let answer =
                format!("HTTP/1.1 503 Service Unavailable\r\n{close}Content-Length: 0\r\n\r\n");
            if !c.write(answer.as_bytes()).await || !close.is_empty() {
                return;
            }
            if head.to_ascii_lowercase().contains("transfer-encoding") {
                // Read the chunks up to the last.
                while !c.buffer.windows(5).any(|w| w == b"0\r\n\r\n") {
                    if !c.fill().await {
                        return;
                    }
                }
                c.buffer.clear();
            } else if !c.skip_body(&head).await {
                return;
            }
        }
    })
    .await;
    let echoing = echoing().await;
    // The early upstream first, for every request.
    let spec = format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: p
    balance: weighted_round_robin
    endpoints: [{{ address: \"{}\", weight: 100 }}, {{ address: \"{}\", weight: 1 }}]
routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: p
    retries: {{ attempts: 2, on: [reset, 503] }}
",
        early.address, echoing.address
    );
    let gateway = Gateway::start(&spec);
    let sent = body(3 * 4000);
    for how in ["drain", "close", "reset"] {
        for chunked in [false, true] {
            let path = format!("/{how}/{}", if chunked { "chunked" } else { "length" });
            let framing = match chunked {
                true => "Transfer-Encoding: chunked".to_owned(),
                false => format!("Content-Length: {}", sent.len()),
            };
            let mut stream = tokio::net::TcpStream::connect(gateway.addr("public")).await.unwrap();
            let head = format!(
                "PUT {path} HTTP/1.1\r\nHost: x.test\r\n{framing}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            for piece in sent.chunks(4000) {
                let piece = match chunked {
                    true => [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat(),
                    false => piece.to_vec(),
                };
                stream.write_all(&piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if chunked {
                stream.write_all(b"0\r\n\r\n").await.unwrap();
            }
            let (answer, _) = support::until_closed(&mut stream, Duration::from_secs(5)).await;
            assert_eq!(statuses(&answer), [200], "{path}: {answer}");
            let echoed = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).as_bytes();
            // The echo is of what the upstream read, chunked again when the client chunked.
            let echoed = if chunked { dechunk(echoed) } else { echoed.to_vec() };
            assert!(
                echoed == sent,
                "{path}: the retry carried {} of {} bytes",
                echoed.len(),
                sent.len()
            );
        }
    }
    let answered = echoing.requests();
    assert_eq!(answered.len(), 6);
    assert!(answered.iter().all(|r| r.method() == "PUT"));
}
