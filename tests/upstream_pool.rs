//! The HTTP/1.1 upstream pool under hostile and buggy peers: upstreams that
//! answer early, send too much, too little or out of turn, and clients that
//! leave mid-response. End to end with the `sluice` binary and raw sockets on
//! loopback; the invariant behind every test is that a response's bytes never
//! reach another request, and that a connection left in an unknown state is
//! closed rather than reused.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::raw::{find, gateway_for, get, get_body, header, ok, target, Conn, RawUpstream};
use support::{client, eventually, raw, request, retry_503, send, spec_with, statuses, Gateway};

/// A well-behaved keep-alive upstream that answers every request with its
/// target, reading Content-Length and chunked bodies.
async fn echo_target(mut c: Conn) {
    while let Some(head) = c.head().await {
        if !read_body(&mut c, &head).await || !c.ok(target(&head)).await {
            return;
        }
    }
}

async fn read_body(c: &mut Conn, head: &str) -> bool {
    if header(head, "transfer-encoding").is_some() {
        return c.chunked().await.is_some();
    }
    let length = header(head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    c.body(length).await.is_some()
}

/// An upstream that refuses an upload with 413 as soon as it has the head,
/// then, keeping the connection, reads and drops the body as RFC 9110 asks:
/// the client sees the 413, the gateway finishes sending the body, and the
/// connection stays in step and in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_with_keep_alive_keeps_the_connection_in_step() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let refusal = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!";
            if target(&head) == "/upload" && !c.write(refusal).await {
                return;
            }
            if !read_body(&mut c, &head).await {
                return;
            }
            if target(&head) != "/upload" && !c.ok(target(&head)).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let http = client::<Full<Bytes>>();

    for round in 0..3 {
        // A client that sends its whole body whatever the answer, as curl
        // does, on a connection of its own.
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        let (mut reader, mut writer) = stream.split();
        let length = 256 * 1024;
        let head =
            format!("POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: {length}\r\n\r\n");
        let body = vec![b'u'; length];
        let upload = async {
            writer.write_all(head.as_bytes()).await.unwrap();
            writer.write_all(&body).await.unwrap();
        };
        let receive = async {
            let mut reply = Vec::new();
            let mut chunk = [0u8; 4096];
            while !reply.ends_with(b"too big!") {
                let n = reader.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed before the reply: {}", String::from_utf8_lossy(&reply));
                reply.extend_from_slice(&chunk[..n]);
            }
            String::from_utf8_lossy(&reply).into_owned()
        };
        let ((), reply) = tokio::join!(upload, receive);
        assert!(reply.starts_with("HTTP/1.1 413 "), "round {round}: {reply}");
        // The rest of the upload goes on behind the reply for a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..2 {
            let path = format!("/next-{round}-{i}");
            let reply = send(&http, request("GET", gateway.addr("public"), "x.test", &path)).await;
            assert_eq!((reply.status, reply.body), (StatusCode::OK, path));
        }
    }
    // The upload went on after the 413, so the connection stayed usable.
    assert_eq!(upstream.accepted(), 1, "{:?}", upstream.log());
}

/// An upstream that refuses an upload early and closes without reading the
/// body: the client gets the 413, not a 502, and the next request is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_with_close_reaches_the_client() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) == "/upload" {
                c.write(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big!")
                    .await;
                let _ = c.stream.shutdown().await;
                // Linger so the refusal is read before any reset.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            if !read_body(&mut c, &head).await || !c.ok(target(&head)).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let http = client::<Full<Bytes>>();

    let upload = hyper::Request::post(format!("http://{}/upload", gateway.addr("public")))
        .header("host", "x.test")
        .body(Full::new(Bytes::from(vec![b'u'; 64 * 1024])))
        .unwrap();
    let reply = send(&http, upload).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "too big!"));
    assert_eq!(get(&gateway, "/after").await, (StatusCode::OK, "/after".to_owned()));
}

/// `Expect: 100-continue` refused early by an upstream that keeps the
/// connection: the client has the 413 well before the one-second wait, and
/// the connection, whose request body was never sent, is not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expect_continue_refusal_is_quick_and_the_connection_is_not_reused() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) == "/upload" {
                if !c
                    .write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
                    .await
                {
                    return;
                }
                // This upstream forgets the unsent body: whatever comes next
                // would be read as the next head.
                continue;
            }
            if !read_body(&mut c, &head).await || !c.ok(target(&head)).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");

    let started = Instant::now();
    let text = raw(
        gateway.addr("public"),
        b"POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: 100000\r\n\
          Expect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [413], "{text}");
    assert!(text.ends_with("too big!"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
    for i in 0..3 {
        let path = format!("/next-{i}");
        assert_eq!(get(&gateway, &path).await, (StatusCode::OK, path));
    }
}

/// Bytes after a complete response (garbage, or a second response to the
/// same request), whether they arrive with it or a little later, are never
/// read as the response to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_response_never_answer_the_next_request() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let mut answer = ok(target(&head));
            match target(&head) {
                "/garbage" => answer.extend_from_slice(b"GARBAGE\r\n"),
                "/twice" => answer.extend_from_slice(&ok("WRONG")),
                "/twice-later" => {
                    if !c.write(&answer).await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    answer = ok("WRONG");
                }
                _ => {}
            }
            if !c.write(&answer).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");

    for bad in ["/garbage", "/twice", "/twice-later"] {
        assert_eq!(get(&gateway, bad).await, (StatusCode::OK, bad.to_owned()));
        tokio::time::sleep(Duration::from_millis(60)).await;
        for i in 0..3 {
            let path = format!("{bad}/next-{i}");
            assert_eq!(get(&gateway, &path).await, (StatusCode::OK, path), "{:?}", upstream.log());
        }
    }
}

/// A response whose framing is ambiguous (Content-Length values that
/// differ or are not a number, Content-Length beside Transfer-Encoding) is
/// refused with 502 before anything reaches the client, and a chunked body
/// framed loosely (a bare LF, data longer than its size) fails at the
/// client. Either way the connection is closed: what the upstream meant as
/// its next response never answers another request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_response_framing_is_refused_and_the_connection_closed() {
    let smuggled = ok("SMUGGLED");
    let upstream = RawUpstream::start(move |mut c: Conn| {
        let smuggled = smuggled.clone();
        async move {
            while let Some(head) = c.head().await {
                let bad: &[u8] = match target(&head) {
                    "/lengths-differ" => {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 31\r\n\r\nok"
                    }
                    "/length-list" => b"HTTP/1.1 200 OK\r\nContent-Length: 2, 31\r\n\r\nok",
                    "/length-sign" => b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
                    "/length-and-chunked" => {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\
                          Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                    }
                    "/bare-lf" => {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n"
                    }
                    "/long-chunk" => {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n0\r\n\r\n"
                    }
                    path => {
                        if !c.ok(path).await {
                            return;
                        }
                        continue;
                    }
                };
                // The bad response, then what a desynchronised reader would
                // take for the next one; the connection stays open.
                if !c.write(bad).await || !c.write(&smuggled).await {
                    return;
                }
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");

    for bad in ["/lengths-differ", "/length-list", "/length-sign", "/length-and-chunked"] {
        let (status, body) = get(&gateway, bad).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{bad}: {body}");
        let accepted = upstream.accepted();
        let next = format!("{bad}/next");
        assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next), "{:?}", upstream.log());
        assert_eq!(upstream.accepted(), accepted + 1, "{bad}: its connection was not reused");
    }
    for bad in ["/bare-lf", "/long-chunk"] {
        let reply = get_body(&gateway, bad).await;
        assert!(reply.is_err(), "{bad}: a malformed chunked body must fail, got {reply:?}");
        let next = format!("{bad}/next");
        assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next), "{:?}", upstream.log());
    }
}

/// A response head may carry up to 100 header fields, all passed on; one
/// with more is refused with 502 and its connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_heads_carry_up_to_a_hundred_fields() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let path = target(&head).to_owned();
            let count: usize = path.trim_start_matches('/').parse().unwrap_or(0);
            let fields: String = (0..count).map(|i| format!("x-field-{i}: {i}\r\n")).collect();
            let answer = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 2\r\n\r\nok");
            if !c.write(answer.as_bytes()).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let http = client();
    for count in [0, 30, 90] {
        let path = format!("/{count}");
        let reply = send(&http, request("GET", gateway.addr("public"), "x.test", &path)).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"), "{count} fields");
        let passed =
            (0..count).filter(|i| reply.headers.contains_key(format!("x-field-{i}").as_str()));
        assert_eq!(passed.count(), count, "every field reaches the client");
    }
    // 99 fields and Content-Length: more than the test client reads.
    let text = raw(
        gateway.addr("public"),
        b"GET /99 HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(text.contains("x-field-98: 98\r\n"), "{text}");
    let reply = send(&http, request("GET", gateway.addr("public"), "x.test", "/100")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "101 fields: {}", reply.body);
}

/// Informational responses (103, 100) before the final one are skipped, and
/// the connection is reused afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informational_responses_are_skipped_and_the_connection_reused() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let mut answer = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
                               HTTP/1.1 100 Continue\r\n\r\n"
                .to_vec();
            answer.extend_from_slice(&ok(target(&head)));
            if !c.write(&answer).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    for i in 0..4 {
        let path = format!("/{i}");
        assert_eq!(get(&gateway, &path).await, (StatusCode::OK, path));
    }
    assert_eq!(upstream.accepted(), 1, "{:?}", upstream.log());
}

/// A HEAD answered with a Content-Length and no body, and 204 and 304 that
/// wrongly carry a body: the next request on the endpoint still gets its own
/// response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_responses_keep_the_next_response_in_step() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let answer: Vec<u8> = match (head.split(' ').next(), target(&head)) {
                (Some("HEAD"), "/head-with-body") => {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG".to_vec()
                }
                (Some("HEAD"), _) => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
                (_, "/204") => {
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nWRONG".to_vec()
                }
                (_, "/304") => {
                    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nWRONG".to_vec()
                }
                (_, path) => ok(path),
            };
            if !c.write(&answer).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let http = client::<Full<Bytes>>();

    let reply = send(&http, request("HEAD", gateway.addr("public"), "x.test", "/h")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers.get("content-length").map(|v| v.as_bytes()), Some(&b"5"[..]));
    assert_eq!(get(&gateway, "/after-head").await, (StatusCode::OK, "/after-head".to_owned()));
    assert_eq!(upstream.accepted(), 1, "a HEAD response with a length keeps the connection");

    // A bodiless response followed by stray bytes: the bytes never answer
    // the next request, and the connection they came on is dropped, so the
    // next request opens a new one (and the one after reuses that).
    let reply =
        send(&http, request("HEAD", gateway.addr("public"), "x.test", "/head-with-body")).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, ""));
    for i in 0..2 {
        let next = format!("/head-with-body/next-{i}");
        assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next), "{:?}", upstream.log());
    }
    assert_eq!(upstream.accepted(), 2, "the connection with stray bytes is not reused");

    let mut connections = 2;
    for (path, status) in [("/204", StatusCode::NO_CONTENT), ("/304", StatusCode::NOT_MODIFIED)] {
        let reply = send(&http, request("GET", gateway.addr("public"), "x.test", path)).await;
        assert_eq!((reply.status, reply.body.as_str()), (status, ""));
        for i in 0..2 {
            let next = format!("{path}/next-{i}");
            assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next), "{:?}", upstream.log());
        }
        connections += 1;
        assert_eq!(upstream.accepted(), connections, "after {path}, one new connection");
    }
}

/// A response framed by the end of the connection reaches the client whole,
/// and its connection is not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_response_is_whole_and_its_connection_not_reused() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) == "/eof" {
                c.write(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                c.write(b"the end").await;
                return;
            }
            if !c.ok(target(&head)).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    assert_eq!(get(&gateway, "/a").await, (StatusCode::OK, "/a".to_owned()));
    assert_eq!(get(&gateway, "/eof").await, (StatusCode::OK, "until the end".to_owned()));
    assert_eq!(get(&gateway, "/b").await, (StatusCode::OK, "/b".to_owned()));
    assert_eq!(upstream.accepted(), 2, "{:?}", upstream.log());
}

/// A body cut off by the upstream (mid-chunk, short of its length, or right
/// after the head) fails at the client rather than looking complete, and
/// the next request is answered on a good connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_fails_at_the_client_and_the_next_request_is_fine() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let cut: &[u8] = match target(&head) {
                "/chunked" => {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n8\r\nwor"
                }
                "/length" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
                "/head-only" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
                path => {
                    if !c.ok(path).await {
                        return;
                    }
                    continue;
                }
            };
            c.write(cut).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    for path in ["/chunked", "/length", "/head-only"] {
        // The failure may come before the head (all of it arrived at once)
        // or in the body: never as a complete response.
        let reply = get_body(&gateway, path).await;
        assert!(reply.is_err(), "{path}: a cut-off body must fail, got {reply:?}");
        let next = format!("{path}/next");
        assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next));
    }
}

/// A client that leaves mid-response: the upstream connection is closed
/// rather than reused with the rest of that response still coming, and the
/// next request on the endpoint gets its own response, not those bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_response_never_passes_its_bytes_to_the_next_request() {
    const HALF: usize = 512 * 1024;
    let closed = Arc::new(AtomicUsize::new(0));
    let seen_closed = Arc::clone(&closed);
    let upstream = RawUpstream::start(move |mut c: Conn| {
        let closed = Arc::clone(&seen_closed);
        async move {
            while let Some(head) = c.head().await {
                if target(&head) != "/big" {
                    if !c.ok(target(&head)).await {
                        return;
                    }
                    continue;
                }
                // The rest comes later; if the connection were reused it
                // would be read as the next request's response.
                if c.big_in_halves(HALF).await == Some(true) {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
    })
    .await;
    // One connection at most, so the next request could only go on the
    // same connection, or on a new one once that is closed.
    let gateway = gateway_for(&upstream, "    circuit_breaker: { max_connections: 1 }\n", "");

    let mut leaving = TcpStream::connect(gateway.addr("public")).await.unwrap();
    leaving.write_all(b"GET /big HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let mut first = [0u8; 4096];
    let n = leaving.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    drop(leaving);

    // Immediately, and again once the upstream has sent everything; each
    // is sent again while the closed connection's slot is not back yet.
    let deadline = Instant::now() + Duration::from_secs(3);
    for i in 0..5 {
        let path = format!("/next-{i}");
        let reply = retry_503(deadline, || get(&gateway, &path)).await;
        assert_eq!(reply, (StatusCode::OK, path));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = || closed.load(Ordering::SeqCst) == 1;
    assert!(eventually(Duration::from_secs(3), done).await, "never: the /big connection is closed");
}

/// Pipelined client requests each get their own response, in order, even
/// when the first is the slowest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_their_own_responses_in_order() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) == "/p1" {
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
            if !c.ok(target(&head)).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let text = raw(
        gateway.addr("public"),
        b"GET /p1 HTTP/1.1\r\nHost: x.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x.test\r\n\r\n\
          GET /p3 HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [200, 200, 200], "{text}");
    let (p1, p2, p3) =
        (text.find("\r\n\r\n/p1"), text.find("\r\n\r\n/p2"), text.find("\r\n\r\n/p3"));
    assert!(p1 < p2 && p2 < p3 && p1.is_some(), "{text}");
}

/// Two hundred requests at once to one endpoint, twice: every client gets
/// the response to its own request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_each_get_their_own_response() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let path = target(&head).to_owned();
            let delay = path.len() as u64 % 7;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            // Split the write so responses arrive in pieces.
            let answer = ok(&path);
            let (a, b) = answer.split_at(answer.len() / 2);
            if !c.write(a).await || !c.write(b).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let address = gateway.addr("public");

    for round in 0..2 {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                tokio::spawn(async move {
                    let path = format!("/r{round}/{i}/{}", "x".repeat(i % 13));
                    let reply = send(&client(), request("GET", address, "x.test", &path)).await;
                    (path, reply.status, reply.body)
                })
            })
            .collect();
        for task in tasks {
            let (path, status, body) = task.await.unwrap();
            assert_eq!((status, body), (StatusCode::OK, path));
        }
    }
    assert!(upstream.accepted() <= 400, "{}", upstream.accepted());
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A large body streamed to a client that reads nothing for a while: the
/// gateway holds only a bounded amount of it, and then delivers it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_to_a_stalled_client_stays_bounded_in_memory() {
    const SIZE: usize = 64 * 1024 * 1024;
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) != "/huge" {
                if !c.ok(target(&head)).await {
                    return;
                }
                continue;
            }
            if !c
                .write(format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes())
                .await
            {
                return;
            }
            let block = vec![b'h'; 1024 * 1024];
            for _ in 0..SIZE / block.len() {
                if !c.write(&block).await {
                    return;
                }
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let before = rss_kib(gateway.pid());

    let mut stalled = TcpStream::connect(gateway.addr("public")).await.unwrap();
    stalled.write_all(b"GET /huge HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib(gateway.pid());
    assert!(during < before + 32 * 1024, "RSS grew from {before} KiB to {during} KiB");

    let mut total = 0usize;
    let mut chunk = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let started = Instant::now();
    while total < SIZE {
        assert!(started.elapsed() < Duration::from_secs(10), "read {total} bytes");
        let n = stalled.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed after {total} body bytes");
        if head.len() < 4 || find(&head, b"\r\n\r\n").is_none() {
            head.extend_from_slice(&chunk[..n]);
            if let Some(at) = find(&head, b"\r\n\r\n") {
                total += head.len() - at - 4;
            }
        } else {
            total += n;
        }
    }
    assert_eq!(total, SIZE);
    assert_eq!(get(&gateway, "/after").await, (StatusCode::OK, "/after".to_owned()));
}

/// The per-try timeout bounds the wait for the response head only: a body
/// that pauses longer still arrives whole. A head that comes too late is a
/// 504, and that late response is never given to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_try_timeout_covers_the_head_and_a_late_response_is_dropped() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            match target(&head) {
                "/pausing" => {
                    if !c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst").await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if !c.write(b" half").await {
                        return;
                    }
                }
                "/late" => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if !c.ok("LATE").await {
                        return;
                    }
                }
                path => {
                    if !c.ok(path).await {
                        return;
                    }
                }
            }
        }
    })
    .await;
    let route = "    retries: { attempts: 1, on: [reset], per_try_timeout: 150ms }\n";
    let gateway = gateway_for(&upstream, "    circuit_breaker: { max_connections: 1 }\n", route);

    assert_eq!(get(&gateway, "/pausing").await, (StatusCode::OK, "first half".to_owned()));
    let (status, body) = get(&gateway, "/late").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    for i in 0..3 {
        let path = format!("/next-{i}");
        assert_eq!(get(&gateway, &path).await, (StatusCode::OK, path), "{:?}", upstream.log());
    }
}

/// Connections come back under `max_connections` after every kind of
/// exchange, so sequential requests never meet the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_slots_come_back_after_every_kind_of_exchange() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let answer: &[u8] = match target(&head) {
                "/close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                "/reset" => return,
                "/cut" => b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok",
                path => {
                    if !c.ok(path).await {
                        return;
                    }
                    continue;
                }
            };
            c.write(answer).await;
            return;
        }
    })
    .await;
    let gateway =
        gateway_for(&upstream, "    circuit_breaker: { max_connections: 1, max_pending: 1 }\n", "");
    for path in ["/a", "/close", "/b", "/reset", "/c", "/cut", "/d"] {
        let reply = get_body(&gateway, path).await;
        if let Ok((status, body)) = &reply {
            assert_ne!(*status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body:?}");
        }
        if path.len() == 2 {
            assert_eq!(reply, Ok((StatusCode::OK, Bytes::from(path))));
        }
    }
}

/// A pooled connection that the upstream has closed is not an open
/// connection: it must not hold a `max_connections` slot that a request to
/// another endpoint needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_upstream_closed_does_not_hold_a_breaker_slot() {
    let closing = |name: &'static str| {
        RawUpstream::start(move |mut c: Conn| async move {
            // Close connections idle for 50 ms.
            loop {
                let Ok(Some(head)) =
                    tokio::time::timeout(Duration::from_millis(50), c.head()).await
                else {
                    return;
                };
                if !c.ok(&format!("{name}{}", target(&head))).await {
                    return;
                }
            }
        })
    };
    let (a, b) = (closing("a").await, closing("b").await);
    let gateway = Gateway::start(&spec_with(
        "",
        &[a.address, b.address],
        "    circuit_breaker: { max_connections: 1 }\n",
        "",
    ));
    let mut bodies = Vec::new();
    for i in 0..4 {
        let (status, body) = get(&gateway, &format!("/{i}")).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
        bodies.push(body);
        // Both upstreams have closed their idle connections by now.
        let done = || a.finished() + b.finished() == i + 1;
        assert!(
            eventually(Duration::from_secs(2), done).await,
            "never: the upstream closed its connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bodies.iter().any(|b| b.starts_with('a')) && bodies.iter().any(|b| b.starts_with('b')));
}

/// Idle pooled connections are closed by the gateway once `idle_timeout`
/// has passed, without any further request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let closed_after = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&closed_after);
    let upstream = RawUpstream::start(move |mut c: Conn| {
        let record = Arc::clone(&record);
        async move {
            let head = c.head().await;
            if head.is_some() && c.ok("idle next").await {
                let since = Instant::now();
                if c.closed_within(Duration::from_secs(2)).await {
                    record.lock().unwrap().push(since.elapsed());
                }
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "    idle_timeout: 100ms\n", "");
    assert_eq!(get(&gateway, "/").await, (StatusCode::OK, "idle next".to_owned()));
    let done = || upstream.finished() == 1;
    assert!(eventually(Duration::from_secs(2), done).await, "never: the idle connection is closed");
    let closed = closed_after.lock().unwrap().clone();
    assert_eq!(closed.len(), 1);
    assert!(
        closed[0] >= Duration::from_millis(80) && closed[0] < Duration::from_millis(600),
        "{closed:?}"
    );
}

/// A bodiless POST allowed to retry on `reset` that dies on a reused
/// connection goes to the other endpoint and succeeds there. (A POST whose
/// body was sent is never retried, as the README says.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_reset_on_a_reused_connection_succeeds_elsewhere() {
    // Answers the first request of each connection, resets on the next.
    let flaky = RawUpstream::start(|mut c: Conn| async move {
        let mut served = 0;
        while let Some(head) = c.head().await {
            if served > 0 || !read_body(&mut c, &head).await {
                let _ = c.stream.set_zero_linger();
                return;
            }
            served += 1;
            if !c.ok("flaky").await {
                return;
            }
        }
    })
    .await;
    let steady = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if !read_body(&mut c, &head).await || !c.ok("steady").await {
                return;
            }
        }
    })
    .await;
    let route = "    retries: { attempts: 2, on: [reset], non_idempotent: true }\n";
    let gateway = Gateway::start(&spec_with("", &[flaky.address, steady.address], "", route));
    let http = client::<Full<Bytes>>();
    for i in 0..6 {
        let post = hyper::Request::post(format!("http://{}/o", gateway.addr("public")))
            .header("host", "x.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = send(&http, post).await;
        assert_eq!(reply.status, StatusCode::OK, "POST {i}: {}", reply.body);
    }
}

/// Request bodies, with a length, chunked, and after `100 Continue`, reach
/// the upstream whole, and the connection is reused across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_arrive_whole_over_one_connection() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&bodies);
    let upstream = RawUpstream::start(move |mut c: Conn| {
        let record = Arc::clone(&record);
        async move {
            while let Some(head) = c.head().await {
                if header(&head, "expect").is_some()
                    && !c.write(b"HTTP/1.1 100 Continue\r\n\r\n").await
                {
                    return;
                }
                let body = if header(&head, "transfer-encoding").is_some() {
                    c.chunked().await.map(|raw| dechunk(&raw))
                } else {
                    let length =
                        header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    c.body(length).await
                };
                let Some(body) = body else { return };
                record.lock().unwrap().push((target(&head).to_owned(), body));
                if !c.ok(target(&head)).await {
                    return;
                }
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let address = gateway.addr("public");

    let pattern = |n: usize| -> Vec<u8> { (0..n).map(support::PatternBody::byte).collect() };
    let http = client::<Full<Bytes>>();
    let post = hyper::Request::post(format!("http://{address}/length"))
        .header("host", "x.test")
        .body(Full::new(Bytes::from(pattern(100_000))))
        .unwrap();
    assert_eq!(send(&http, post).await.body, "/length");

    let chunked = client::<support::PatternBody>();
    let post = hyper::Request::post(format!("http://{address}/chunked"))
        .header("host", "x.test")
        .body(support::PatternBody::new(300_000, 7_000))
        .unwrap();
    assert_eq!(send(&chunked, post).await.body, "/chunked");

    let started = Instant::now();
    let text = raw(
        address,
        b"POST /continue HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\
          Connection: close\r\n\r\nhello",
    )
    .await;
    assert!(text.ends_with("/continue"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(900), "waited {:?}", started.elapsed());

    let bodies = bodies.lock().unwrap().clone();
    let expected = [
        ("/length", pattern(100_000)),
        ("/chunked", pattern(300_000)),
        ("/continue", b"hello".to_vec()),
    ];
    assert_eq!(bodies.len(), 3);
    for ((path, body), (want_path, want)) in bodies.iter().zip(expected) {
        assert_eq!(path, want_path);
        assert!(body == &want, "{path}: {} bytes, not the {} sent", body.len(), want.len());
    }
    assert_eq!(upstream.accepted(), 1, "{:?}", upstream.log());
}

fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let line = find(rest, b"\r\n").expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&rest[..line]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[line + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A client that stops mid-upload: the half-sent request's upstream
/// connection is closed, and the next client is answered on a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_upload_closes_the_upstream_connection() {
    let upstream = RawUpstream::start(echo_target).await;
    let gateway = gateway_for(&upstream, "", "");
    let mut leaving = TcpStream::connect(gateway.addr("public")).await.unwrap();
    leaving
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    leaving.write_all(&[b'x'; 10_000]).await.unwrap();
    let done = || upstream.log().len() == 1;
    assert!(
        eventually(Duration::from_secs(2), done).await,
        "never: the upload reaches the upstream"
    );
    drop(leaving);
    let done = || upstream.finished() == 1;
    assert!(
        eventually(Duration::from_secs(2), done).await,
        "never: the half-sent request's connection is closed"
    );
    for i in 0..3 {
        let path = format!("/next-{i}");
        assert_eq!(get(&gateway, &path).await, (StatusCode::OK, path));
    }
}

/// A client that leaves while its request waits for the response head: the
/// upstream connection is closed, so the late response is never read as
/// the next request's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_before_the_response_head_never_passes_it_on() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) == "/slow" {
                tokio::time::sleep(Duration::from_millis(150)).await;
                if !c.ok("WRONG: the answer to /slow").await {
                    return;
                }
                continue;
            }
            if !c.ok(target(&head)).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "    circuit_breaker: { max_connections: 1 }\n", "");
    let mut leaving = TcpStream::connect(gateway.addr("public")).await.unwrap();
    leaving.write_all(b"GET /slow HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let done = || upstream.log().len() == 1;
    assert!(eventually(Duration::from_secs(2), done).await, "never: /slow reaches the upstream");
    drop(leaving);

    let deadline = Instant::now() + Duration::from_secs(3);
    for i in 0..4 {
        let path = format!("/next-{i}");
        let reply = retry_503(deadline, || get(&gateway, &path)).await;
        assert_eq!(reply, (StatusCode::OK, path), "{:?}", upstream.log());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

/// An HTTP/2 client that cancels its stream mid-response: the HTTP/1.1
/// upstream connection carrying it is closed, and the next stream on the
/// same client connection gets its own response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_cancelled_mid_response_never_passes_its_bytes_on() {
    const HALF: usize = 256 * 1024;
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) != "/big" {
                if !c.ok(target(&head)).await {
                    return;
                }
                continue;
            }
            c.big_in_halves(HALF).await;
            return;
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "    circuit_breaker: { max_connections: 1 }\n", "");
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    // Over HTTP/2 the URI's authority is the host asked for, and a `Host`
    // naming another would be refused: name the gateway in both.
    let public = gateway.addr("public");
    let host = public.to_string();

    let response = h2.request(request("GET", public, &host, "/big")).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.expect("a first frame").expect("data");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(body);

    let deadline = Instant::now() + Duration::from_secs(3);
    for i in 0..4 {
        let path = format!("/next-{i}");
        let reply = retry_503(deadline, || async {
            let reply = send(&h2, request("GET", public, &host, &path)).await;
            (reply.status, reply.body)
        })
        .await;
        assert_eq!(reply, (StatusCode::OK, path), "{:?}", upstream.log());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

/// An upstream that switches protocols on a request that asked for no
/// upgrade (the client gets 502), or frames a response both by length and
/// by chunks: nothing is tunnelled, and the next request gets its own
/// response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unasked_upgrades_and_double_framing_do_not_desync_the_pool() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let answer: Vec<u8> = match target(&head) {
                "/switch" => b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\n\
                               Connection: upgrade\r\n\r\nRAW TUNNEL BYTES"
                    .to_vec(),
                "/both" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\
                             Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    .to_vec(),
                path => ok(path),
            };
            if !c.write(&answer).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    for bad in ["/switch", "/both"] {
        let reply = get_body(&gateway, bad).await;
        if let Ok((status, body)) = &reply {
            assert!(!body.starts_with(b"RAW"), "{bad}: {status} {body:?}");
        }
        if bad == "/switch" {
            // A 101 nobody asked for is the upstream's error, not a response.
            let (status, _) = reply.as_ref().expect("the gateway answers an unasked 101 itself");
            assert_eq!(*status, StatusCode::BAD_GATEWAY);
        }
        for i in 0..2 {
            let next = format!("{bad}/next-{i}");
            assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next), "{:?}", upstream.log());
        }
    }
}

/// A 204 or a 304 on a keep-alive connection, followed 50 ms later by stray
/// bytes (a whole second response): the connection sits idle in the pool
/// when they arrive, and they never answer the next request, which gets
/// its own response on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_arriving_after_a_bodiless_response_never_answer_the_next_request() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let answer: &[u8] = match target(&head) {
                "/204" => b"HTTP/1.1 204 No Content\r\n\r\n",
                "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
                path => {
                    if !c.ok(path).await {
                        return;
                    }
                    continue;
                }
            };
            if !c.write(answer).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !c.write(&ok("WRONG: stray")).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let http = client::<Full<Bytes>>();

    for (path, status) in [("/204", StatusCode::NO_CONTENT), ("/304", StatusCode::NOT_MODIFIED)] {
        let reply = send(&http, request("GET", gateway.addr("public"), "x.test", path)).await;
        assert_eq!((reply.status, reply.body.as_str()), (status, ""), "{path}");
        let connections = upstream.accepted();
        // The stray bytes have arrived on the idle connection.
        tokio::time::sleep(Duration::from_millis(150)).await;
        for i in 0..2 {
            let next = format!("{path}/next-{i}");
            assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next), "{:?}", upstream.log());
        }
        assert_eq!(
            upstream.accepted(),
            connections + 1,
            "after {path}, one new connection: {:?}",
            upstream.log()
        );
    }
}
