//! The gateway's own HTTP/1.1 server, which serves plain requests (no body,
//! no `Expect`, no upgrade) and hands a connection to hyper at its first
//! other request: versions and keep-alive, pipelining across the hand-over,
//! response framing and trailers, and a client that leaves mid-request.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{raw, spec_with, statuses, until_closed, Answer, Gateway, ScriptedUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Send `bytes` on a new connection to `address` and read until the
/// gateway closes it; panics when it is still open after `seconds`.
async fn until_closing(address: SocketAddr, bytes: &[u8], seconds: u64) -> String {
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(bytes).await.unwrap();
    until_closed(&mut client, Duration::from_secs(seconds)).await.0
}

/// Read one response framed by Content-Length from `stream`.
async fn one_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&chunk[..n]),
            other => panic!("no whole response ({other:?}); got {text:?}"),
        }
    }
}

/// An HTTP/1.0 client is answered in HTTP/1.0 and its connection closes,
/// unless it asked to keep it; then the answer says so and it stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_get_http10_answers_and_keep_alive_only_when_asked() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let response = until_closing(public, b"GET /once HTTP/1.0\r\nHost: x.test\r\n\r\n", 5).await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\n/once"), "{response}");
    assert!(!response.to_ascii_lowercase().contains("connection:"), "{response}");

    let mut kept = TcpStream::connect(public).await.unwrap();
    for path in ["/first", "/second"] {
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: x.test\r\nConnection: keep-alive\r\n\r\n");
        kept.write_all(request.as_bytes()).await.unwrap();
        let response = one_response(&mut kept).await;
        assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
        assert!(
            response.to_ascii_lowercase().contains("\r\nconnection: keep-alive\r\n"),
            "{response}"
        );
        assert!(response.ends_with(&format!("\r\n\r\n{path}")), "{response}");
    }
    assert_eq!(upstream.requests().len(), 3);

    // A request the gateway refuses closes the connection, and the answer
    // says only that.
    let refused = b"GET /x HTTP/1.0\r\nHost: a b\r\nConnection: keep-alive\r\n\r\n";
    let response = until_closing(public, refused, 5).await;
    assert!(response.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{response}");
    assert!(response.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{response}");
    assert!(!response.to_ascii_lowercase().contains("keep-alive"), "{response}");
}

/// Pipelined requests are answered in order, also when a request with a
/// body in the middle moves the connection to hyper with the rest of the
/// bytes already read; and every response carries one `Date`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_keep_their_order_across_the_hand_over() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let pipelined = "GET /1 HTTP/1.1\r\nHost: x.test\r\n\r\n\
                     HEAD /2 HTTP/1.1\r\nHost: x.test\r\n\r\n\
                     POST /3 HTTP/1.1\r\nHost: x.test\r\nContent-Length: 3\r\n\r\nabc\
                     GET /4 HTTP/1.1\r\nHost: x.test\r\n\r\n\
                     GET /5 HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
    let response = raw(gateway.addr("public"), pipelined.as_bytes()).await;
    assert_eq!(statuses(&response), [200, 200, 200, 200, 200], "{response}");
    let order: Vec<usize> = ["/1", "/3", "/4", "/5"]
        .iter()
        .map(|p| {
            response.find(&format!("\r\n\r\n{p}")).unwrap_or_else(|| panic!("{p}: {response}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "answered out of order: {response}");
    assert_eq!(response.to_ascii_lowercase().matches("\r\ndate: ").count(), 5, "{response}");
    assert!(response.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{response}");
    let targets: Vec<String> = upstream.requests().iter().map(|r| r.target().to_owned()).collect();
    assert_eq!(targets, ["/1", "/2", "/3", "/4", "/5"]);
    assert_eq!(upstream.requests()[2].body, b"abc");
}

/// A request head that arrives a byte at a time is served, and the next
/// one on the connection too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_served() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let mut client = TcpStream::connect(gateway.addr("public")).await.unwrap();
    client.set_nodelay(true).unwrap();
    for path in ["/slowly", "/again"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x.test\r\nX-A: b\r\n\r\n");
        for byte in request.as_bytes() {
            client.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let response = one_response(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with(&format!("\r\n\r\n{path}")), "{response}");
    }
}

/// A chunked response reaches an HTTP/1.1 client chunked; its trailer
/// fields only when the client sent `TE: trailers`, and only those the
/// response's `Trailer` field names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_responses_keep_their_named_trailers_for_clients_that_take_them() {
    let upstream = ScriptedUpstream::start(None, |_| {
        Answer::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\nX-Unnamed: 1\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for request in support::TAKING_TRAILERS {
        let taking = raw(public, request.as_bytes()).await;
        let lower = taking.to_ascii_lowercase();
        assert!(lower.contains("\r\ntransfer-encoding: chunked\r\n"), "{taking}");
        assert!(lower.contains("\r\ntrailer: x-checksum\r\n"), "{taking}");
        assert!(taking.contains("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n"), "{taking}");
        assert!(lower.ends_with("\r\n0\r\nx-checksum: 42\r\n\r\n"), "{request}: {taking}");
    }

    let plain = raw(public, b"GET /t HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n").await;
    assert!(plain.ends_with("\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "{plain}");
}

/// A client that closes its connection while its request waits for the
/// upstream cancels the request: the gateway closes the upstream
/// connection instead of waiting for an answer nobody will read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_its_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // The upstream reads the request, never answers, and reports how long
    // its connection stayed open.
    let upstream = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the gateway closed before sending a head");
            head.extend_from_slice(&chunk[..n]);
        }
        let read = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await;
        (closed.map(|n| n.map_or(0, |n| n)), read.elapsed())
    });
    let gateway = Gateway::start(&spec_with("", &[address], "", "    timeout: 30s\n"));

    let mut client = TcpStream::connect(gateway.addr("public")).await.unwrap();
    client.write_all(b"GET /wait HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(client);

    let (closed, after) = upstream.await.unwrap();
    assert_eq!(closed.ok(), Some(0), "the upstream connection stayed open for {after:?}");
    assert!(after < Duration::from_secs(2), "closed only after {after:?}");
}

/// Bytes that cannot start a request (here the start of a TLS handshake,
/// which has no line end) are refused with 400 as soon as they arrive, the
/// whole handshake or its first byte alone, not when a clock runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_cannot_start_a_request_are_refused_at_once() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let hello = [0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03];
    for sent in [&hello[..], &hello[..1]] {
        let response = until_closing(gateway.addr("public"), sent, 2).await;
        assert_eq!(statuses(&response), [400], "{} bytes: {response:?}", sent.len());
    }
    assert!(upstream.requests().is_empty());
}

/// A response of unknown length (the upstream ends it by closing) is
/// chunked to an HTTP/1.1 client, whose connection stays usable, and sent
/// as it comes to an HTTP/1.0 client, whose connection then closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_of_unknown_length_is_chunked_or_ended_by_closing() {
    let upstream = ScriptedUpstream::start(None, |r| match r.target() {
        "/open-ended" => Answer::SendAndClose(b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec()),
        other => Answer::ok(other),
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let mut client = TcpStream::connect(public).await.unwrap();
    client.write_all(b"GET /open-ended HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    while !received.ends_with(b"\r\n0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
            .await
            .expect("the chunked body ends")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(text.contains("\r\ntransfer-encoding: chunked\r\n"), "{text}");
    assert!(text.contains("until the end"), "{text}");
    client.write_all(b"GET /after HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
    assert!(one_response(&mut client).await.ends_with("\r\n\r\n/after"));

    let old = b"GET /open-ended HTTP/1.0\r\nHost: x.test\r\n\r\n";
    let response = until_closing(public, old, 5).await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nuntil the end"), "{response}");
    assert!(!response.to_ascii_lowercase().contains("transfer-encoding"), "{response}");
}

/// An absolute-form target whose path is empty reaches the upstream with
/// `/` as its path and its query kept (RFC 9112, section 3.2.1), from
/// either server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_without_a_path_gets_a_slash() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");
    for request in [
        "GET http://x.test?a=b HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
        "GET http://x.test HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
        "POST http://x.test:80?a=b HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
    ] {
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{request}: {response}");
    }
    let targets: Vec<String> = upstream.requests().iter().map(|r| r.target().to_owned()).collect();
    assert_eq!(targets, ["/?a=b", "/", "/?a=b"]);
}

/// A response's exchange ends before its last bytes go out, whatever its
/// framing: a client that sends its next request as soon as it has the
/// whole response never finds the last one still holding its pool's only
/// place under `max_requests`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_response_ends_its_exchange_before_the_client_has_it() {
    use support::{client, request, send};

    let upstream = ScriptedUpstream::start(None, |r| match r.target() {
        "/chunked" => Answer::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        "/204" => Answer::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/empty" => Answer::ok(""),
        _ => Answer::ok("abc"),
    })
    .await;
    let breaker = "    circuit_breaker: { max_requests: 1 }\n";
    let gateway = Gateway::start(&spec_with("", &[upstream.address], breaker, ""));
    let address = gateway.addr("public");
    let http = client();
    for round in 0..25 {
        for (method, path, status, body) in [
            ("GET", "/length", 200, "abc"),
            ("GET", "/chunked", 200, "abc"),
            ("GET", "/empty", 200, ""),
            ("GET", "/204", 204, ""),
            ("HEAD", "/length", 200, ""),
        ] {
            let reply = send(&http, request(method, address, "x.test", path)).await;
            assert_eq!(
                (reply.status.as_u16(), reply.body.as_str()),
                (status, body),
                "round {round}: {method} {path}"
            );
        }
    }
}
