//! The gateway's own HTTP/1.1 upstream client (`runtime/src/http1.rs`)
//! against hostile and buggy upstreams, byte by byte: heads in pieces and
//! at their limits, malformed and merely unusual heads, every framing
//! variant, connections cut at every point, floods of informational
//! responses, and early responses to uploads. End to end with the `sluice`
//! binary and raw sockets on loopback.
//!
//! The invariants: a response is passed on whole or visibly broken (a 502
//! before its head, or a body that fails at the client), never as a
//! shorter complete one; a response's bytes never answer another request;
//! a connection whose state is unknown is closed, and one in a known state
//! is reused.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::raw::{find, gateway_for, get, get_body, header, ok, target, Conn, RawUpstream};
use support::{client, raw, request, send, Gateway};

/// `GET path` with `Connection: close` over a raw socket: the reply's bytes.
async fn get_raw(gateway: &Gateway, path: &str) -> String {
    let text = format!("GET {path} HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n");
    raw(gateway.addr("public"), text.as_bytes()).await
}

/// The next request gets its own response, and on a new connection when
/// `new_connection` (the previous one was closed), else on the same one.
async fn next_is_fine(
    gateway: &Gateway,
    upstream: &RawUpstream,
    after: &str,
    new_connection: bool,
) {
    let accepted = upstream.accepted();
    let next = format!("/next{}", after.replace('/', "_"));
    assert_eq!(get(gateway, &next).await, (StatusCode::OK, next), "after {after}");
    let opened = upstream.accepted() - accepted;
    if new_connection {
        assert_eq!(opened, 1, "after {after}: the connection must not be reused");
    } else {
        assert_eq!(opened, 0, "after {after}: the connection should have been reused");
    }
}

/// A response head and body arriving a few bytes at a time, and a head of
/// 60 KiB in 1 KiB pieces, are read whole; the connection is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_and_bodies_in_tiny_pieces_are_read_whole() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let (answer, step): (Vec<u8>, usize) = match target(&head) {
                "/chunked" => (
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: a\r\n\r\n\
                      5;e=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-t: 1\r\n\r\n"
                        .to_vec(),
                    1,
                ),
                "/length" => (ok("in three-byte pieces"), 3),
                "/big-head" => {
                    let fields: String =
                        (0..60).map(|i| format!("x-f{i:02}: {}\r\n", "v".repeat(1000))).collect();
                    let answer = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 3\r\n\r\nbig");
                    (answer.into_bytes(), 1024)
                }
                path => (ok(path), usize::MAX),
            };
            if !c.write_in_pieces(&answer, step).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    assert_eq!(get(&gateway, "/chunked").await, (StatusCode::OK, "hello world".to_owned()));
    assert_eq!(get(&gateway, "/length").await, (StatusCode::OK, "in three-byte pieces".to_owned()));
    let reply =
        send(&client(), request("GET", gateway.addr("public"), "x.test", "/big-head")).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "big"));
    assert_eq!(reply.headers.get("x-f59").map(|v| v.len()), Some(1000));
    next_is_fine(&gateway, &upstream, "/big-head", false).await;
    assert_eq!(upstream.accepted(), 1);
}

/// A response head may be 64 KiB long, not a byte more: one over is a 502
/// and its connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_head_limit_is_exactly_64_kib() {
    let head_of = |total: usize| {
        let start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ".to_vec();
        let mut head = start.clone();
        head.resize(total - 4, b'v');
        head.extend_from_slice(b"\r\n\r\nok");
        head
    };
    let upstream =
        RawUpstream::canned(vec![("fits", head_of(65536)), ("over", head_of(65537))]).await;
    let gateway = gateway_for(&upstream, "", "");
    assert_eq!(get(&gateway, "/fits").await, (StatusCode::OK, "ok".to_owned()));
    next_is_fine(&gateway, &upstream, "/fits", false).await;
    let (status, body) = get(&gateway, "/over").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    next_is_fine(&gateway, &upstream, "/over", true).await;
}

/// A response head over the gateway's limits, 64 KiB or 100 fields, is a
/// 502 that says so, to the client (`upstream_head_too_large`) and in the
/// access log's `reason`; so is one that an upgrade's client refuses for
/// its fields. Like any other response the upstream got wrong, it counts
/// against the endpoint: three in a row eject it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_response_head_is_a_502_that_says_so() {
    let mut long = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ".to_vec();
    long.resize(65537 - 4, b'v');
    long.extend_from_slice(b"\r\n\r\nok");
    let mut many = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\nok");
    let upstream = RawUpstream::canned(vec![("long", long), ("many", many)]).await;
    let outlier = "    outlier_detection: { consecutive_failures: 3, base_ejection: 30s, \
                   max_ejection_percent: 100 }\n";
    let mut gateway = gateway_for(&upstream, outlier, "");
    let public = gateway.addr("public");

    let upgrade = "GET /many/upgrade HTTP/1.1\r\nHost: x.test\r\nConnection: upgrade, close\r\n\
                   Upgrade: websocket\r\n\r\n";
    for (path, request) in [
        ("/many/upgrade", upgrade),
        ("/long", "GET /long HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n"),
        ("/many", "GET /many HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n"),
    ] {
        let response = raw(public, request.as_bytes()).await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(head.starts_with("HTTP/1.1 502 "), "{path}: {response}");
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
        assert_eq!(body["error"], "upstream_head_too_large", "{path}: {body}");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.contains("response head"), "{path}: {message}");
        assert!(!message.contains(&upstream.address.to_string()), "{path}: {message}");
    }
    gateway.wait_stderr("endpoint ejected after consecutive failures", 1, Duration::from_secs(5));
    let ejection = gateway.stderr().into_iter().find(|l| l.contains("endpoint ejected"));
    assert!(ejection.is_some_and(|l| l.contains(&upstream.address.to_string())));

    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));
    let lines = gateway.stdout();
    for (path, limit) in [
        ("/long", "65536 bytes"),
        ("/many", "100 header fields"),
        ("/many/upgrade", "the upgrade client takes"),
    ] {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{path}\"")));
        let line: serde_json::Value = serde_json::from_str(line.expect(path)).unwrap();
        assert_eq!(line["status"], 502, "{path}: {line}");
        assert_eq!(line["endpoint"], upstream.address.to_string(), "{path}: {line}");
        let reason = line["reason"].as_str().unwrap_or("");
        assert!(reason.contains("response head too large"), "{path}: {line}");
        assert!(reason.contains(limit), "{path}: {line}");
    }
}

/// Heads that are not valid HTTP/1.1 are a 502, and their connection, which
/// the upstream keeps open, is never used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_response_heads_are_refused_and_their_connection_closed() {
    let bad: Vec<(&'static str, Vec<u8>)> = vec![
        ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("folded-length", b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 2\r\n\r\nok".to_vec()),
        (
            "space-in-name",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
        ("empty-name", b"HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok".to_vec()),
        ("del-in-value", b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("nul-in-value", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("cr-in-value", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("http2", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("http09", b"ok".to_vec()),
        ("status-099", b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("status-2000", b"HTTP/1.1 2000 Long\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("control-in-reason", b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("length-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok".to_vec()),
        (
            "length-20-digits",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok".to_vec(),
        ),
        ("length-trailing-comma", b"HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok".to_vec()),
        (
            "length-empty-and-2",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
        (
            "chunked-and-length",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n\
              2\r\nok\r\n0\r\n\r\n"
                .to_vec(),
        ),
    ];
    let names: Vec<&str> = bad.iter().map(|(name, _)| *name).collect();
    let upstream = RawUpstream::canned(bad).await;
    let gateway = gateway_for(&upstream, "", "");
    for name in names {
        let path = format!("/{name}");
        let (status, body) = get(&gateway, &path).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{name}: {body}");
        next_is_fine(&gateway, &upstream, &path, true).await;
    }
}

/// Heads that are unusual but unambiguous are passed on, and their
/// connection is reused: no reason phrase, bare LF line ends, empty lines
/// before the status line, a status of 600, obs-text and empty values,
/// Content-Length with leading zeros, padding or repeated, and
/// informational responses of every kind before the final one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_but_unambiguous_heads_pass_and_keep_the_connection() {
    let fine: Vec<(&'static str, Vec<u8>)> = vec![
        ("no-reason", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok".to_vec()),
        ("leading-crlf", b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("status-600", b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("obs-text", b"HTTP/1.1 200 OK\r\nX-A: a\xffb\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        (
            "empty-values",
            b"HTTP/1.1 200 OK\r\nX-E:\r\nX-S: \r\nContent-Length: 2\r\nX-L:\r\n\r\nok".to_vec(),
        ),
        ("length-zeros", b"HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok".to_vec()),
        ("length-padded", b"HTTP/1.1 200 OK\r\nContent-Length: \t 2 \t\r\n\r\nok".to_vec()),
        (
            "length-twice",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ),
        (
            "informational",
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n\
              HTTP/1.0 103 Early Hints\r\nLink: </a>\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        ),
        (
            "chunked-upper",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk-lines",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              0001;a=b;c=\"d;e\"\r\no\r\n1 ;x\r\nk\r\nA\t\r\n0123456789\r\n0000;end\r\n\r\n"
                .to_vec(),
        ),
    ];
    let names: Vec<&str> = fine.iter().map(|(name, _)| *name).collect();
    let upstream = RawUpstream::canned(fine).await;
    let gateway = gateway_for(&upstream, "", "");
    for name in names {
        let path = format!("/{name}");
        let expected = if name == "chunk-lines" { "ok0123456789" } else { "ok" };
        let (status, body) = get(&gateway, &path).await;
        let want =
            if name == "status-600" { StatusCode::from_u16(600).unwrap() } else { StatusCode::OK };
        assert_eq!((status, body.as_str()), (want, expected), "{name}");
        next_is_fine(&gateway, &upstream, &path, false).await;
    }
    assert_eq!(upstream.accepted(), 1);
}

/// A chunked body framed wrongly fails at the client, and its connection
/// is closed: a size of 17 hex digits, a `0x` prefix, a leading space, data
/// without its CRLF or with a bare LF, a last chunk ended by bare LFs, 101
/// trailer fields, and a trailer line that is not a field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_fail_and_close_the_connection() {
    let chunked = |body: &[u8]| {
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        answer.extend_from_slice(body);
        answer
    };
    let many: String = (0..101).map(|i| format!("x-t{i}: {i}\r\n")).collect();
    let bad: Vec<(&'static str, Vec<u8>)> = vec![
        ("size-17-digits", chunked(b"00000000000000002\r\nok\r\n0\r\n\r\n")),
        ("size-0x", chunked(b"0x2\r\nok\r\n0\r\n\r\n")),
        ("size-leading-space", chunked(b" 2\r\nok\r\n0\r\n\r\n")),
        ("data-without-crlf", chunked(b"2\r\nok0\r\n\r\n")),
        ("data-bare-lf", chunked(b"2\r\nok\n0\r\n\r\n")),
        ("last-chunk-bare-lf", chunked(b"2\r\nok\r\n0\n\n")),
        ("trailers-101", chunked(format!("2\r\nok\r\n0\r\n{many}\r\n").as_bytes())),
        ("trailer-not-a-field", chunked(b"2\r\nok\r\n0\r\nnot a field\r\n\r\n")),
    ];
    let names: Vec<&str> = bad.iter().map(|(name, _)| *name).collect();
    let upstream = RawUpstream::canned(bad).await;
    let gateway = gateway_for(&upstream, "", "");
    for name in names {
        let path = format!("/{name}");
        let reply = get_body(&gateway, &path).await;
        assert!(reply.is_err(), "{name}: a malformed chunked body must fail, got {reply:?}");
        next_is_fine(&gateway, &upstream, &path, true).await;
    }
}

/// A trailer section of 100 fields ends the body like any other, and the
/// connection is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_trailer_fields_end_the_body_in_step() {
    let fields: String = (0..100).map(|i| format!("x-t{i}: {i}\r\n")).collect();
    let answer = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n{fields}\r\n"
    );
    let upstream = RawUpstream::canned(vec![("trailers", answer.into_bytes())]).await;
    let gateway = gateway_for(&upstream, "", "");
    assert_eq!(get(&gateway, "/trailers").await, (StatusCode::OK, "ok".to_owned()));
    next_is_fine(&gateway, &upstream, "/trailers", false).await;
}

/// A response under any transfer coding but one `chunked` (`gzip`,
/// `gzip, chunked`, `chunked` twice, `identity`, an empty one) is refused
/// with 502: the gateway drops `Transfer-Encoding` on the way to the
/// client, which would get a coded body it cannot tell is coded. The
/// connection is not reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_codings_other_than_one_chunked_are_refused() {
    let codings = [
        ("/gzip", "gzip"),
        ("/gzip-chunked", "gzip, chunked"),
        ("/twice", "chunked, chunked"),
        ("/identity", "identity"),
        ("/empty", ""),
    ];
    let upstream = RawUpstream::start(move |mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let path = target(&head).to_owned();
            let Some((_, coding)) = codings.iter().find(|(p, _)| *p == path) else {
                if !c.write(&ok(&path)).await {
                    return;
                }
                continue;
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            );
            c.write(answer.as_bytes()).await;
            return;
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    for (path, _) in codings {
        assert_eq!(get(&gateway, path).await.0, StatusCode::BAD_GATEWAY, "{path}");
        next_is_fine(&gateway, &upstream, path, true).await;
    }
}

/// The upstream closing, or resetting, the connection at every byte of a
/// response: the client gets a 502 or a body that fails, never a complete
/// response short of its end, and the next request gets its own response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_at_any_byte_never_looks_like_a_whole_response() {
    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            // /cut/{c,l}/{n}/{close,reset}
            let path = target(&head).to_owned();
            let parts: Vec<&str> = path.split('/').collect();
            if parts.get(1) != Some(&"cut") {
                if !c.write(&ok(&path)).await {
                    return;
                }
                continue;
            }
            let full = if parts[2] == "c" { CHUNKED } else { LENGTH };
            let n: usize = parts[3].parse().unwrap();
            c.write(&full[..n]).await;
            if parts[4] == "reset" {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = c.stream.set_zero_linger();
            }
            return;
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    for (kind, full) in [("c", CHUNKED), ("l", LENGTH)] {
        let head = find(full, b"\r\n\r\n").unwrap() + 4;
        for n in 0..full.len() {
            for how in ["close", "reset"] {
                let path = format!("/cut/{kind}/{n}/{how}");
                let reply = get_body(&gateway, &path).await;
                match &reply {
                    // No whole head: the gateway answers itself.
                    Ok((status, _)) if n < head => assert_eq!(*status, StatusCode::BAD_GATEWAY),
                    // A reset may discard a head the gateway had not read yet.
                    Ok((status, _)) if how == "reset" => {
                        assert_eq!(*status, StatusCode::BAD_GATEWAY, "{path}")
                    }
                    // A whole head was passed on: its body must fail.
                    Ok(_) => panic!("{path}: a cut-off response looked whole: {reply:?}"),
                    Err(error) => assert!(n >= head, "{path}: {error}"),
                }
                let next = format!("/after/{kind}/{n}/{how}");
                assert_eq!(get(&gateway, &next).await, (StatusCode::OK, next));
            }
        }
        // Closed right after the last byte: whole.
        let path = format!("/cut/{kind}/{}/close", full.len());
        assert_eq!(get(&gateway, &path).await, (StatusCode::OK, "hello".to_owned()));
    }
}

/// Thousands of informational responses before the final one are skipped;
/// an endless stream of them is cut by the route's timeout (504), and that
/// connection is not used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_informational_responses_are_skipped_or_timed_out() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            match target(&head) {
                "/flood" => {
                    let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n".repeat(5000);
                    if !c.write(&hints).await || !c.write(&ok("after the flood")).await {
                        return;
                    }
                }
                "/endless" => loop {
                    if !c.write(b"HTTP/1.1 103 Early Hints\r\n\r\n").await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                },
                path => {
                    if !c.write(&ok(path)).await {
                        return;
                    }
                }
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "    timeout: 300ms\n");
    assert_eq!(get(&gateway, "/flood").await, (StatusCode::OK, "after the flood".to_owned()));
    next_is_fine(&gateway, &upstream, "/flood", false).await;
    let started = Instant::now();
    let (status, body) = get(&gateway, "/endless").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    next_is_fine(&gateway, &upstream, "/endless", true).await;
}

/// An upstream that refuses an upload early, keeps the connection open and
/// never reads the body: the client has the refusal at once; the gateway
/// stops trying to finish the upload after the pool's `idle_timeout`,
/// closes both connections, and the next request is answered on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_refusal_from_an_upstream_that_never_reads_the_body() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if target(&head) == "/upload" {
                c.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
                    .await;
                // Never read again, and keep the connection open.
                tokio::time::sleep(Duration::from_secs(5)).await;
                return;
            }
            if !c.skip_body(&head).await || !c.write(&ok(target(&head))).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "    idle_timeout: 200ms\n", "");

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let length = 32 * 1024 * 1024;
    let started = Instant::now();
    let upload = async {
        let head =
            format!("POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: {length}\r\n\r\n");
        writer.write_all(head.as_bytes()).await.unwrap();
        let block = vec![b'u'; 256 * 1024];
        for _ in 0..length / block.len() {
            if writer.write_all(&block).await.is_err() {
                return false;
            }
        }
        true
    };
    let receive = async {
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut refused_after = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => reply.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("the client connection is still open"),
            }
            if refused_after.is_none() && reply.ends_with(b"too big!") {
                refused_after = Some(started.elapsed());
            }
        }
        (String::from_utf8_lossy(&reply).into_owned(), refused_after, started.elapsed())
    };
    let (whole, (reply, refused_after, closed_after)) = tokio::join!(upload, receive);
    assert!(!whole, "the upload cannot have gone through");
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    assert!(refused_after.unwrap() < Duration::from_millis(500), "{refused_after:?}");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    next_is_fine(&gateway, &upstream, "/upload", true).await;
}

/// An upstream that streams a large answer as soon as it has the head of an
/// upload, while reading the upload in full (as a full-duplex server may),
/// and a client that sends its whole body before reading: it works
/// directly, so it must work through the gateway.
///
/// Today it deadlocks. Once the response head has arrived, the rest of the
/// upload is sent only from `Http1Body::poll_frame` (`poll_upload`), that
/// is, only while the client-side connection pulls response body. When the
/// client does not read (it is still uploading) hyper stops polling the
/// body once its socket is full, so the upload stops, so the client's
/// writes block, so it never reads: nothing moves, with no timeout. The
/// upload must make progress independently of the response body's reader
/// (as it did with hyper's client, whose connection task drives both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_streaming_response_does_not_stall_the_upload() {
    const ANSWER: usize = 16 * 1024 * 1024;
    const UPLOAD: usize = 48 * 1024 * 1024;
    let upstream = RawUpstream::start(|c: Conn| async move {
        let Conn { mut stream, mut buffer, .. } = c;
        while find(&buffer, b"\r\n\r\n").is_none() {
            let mut chunk = [0u8; 16384];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let at = find(&buffer, b"\r\n\r\n").unwrap() + 4;
        let mut received = buffer.len() - at;
        let (mut from, mut to) = stream.split();
        let answer = async {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {ANSWER}\r\n\r\n");
            to.write_all(head.as_bytes()).await?;
            let block = vec![b'r'; 1024 * 1024];
            for _ in 0..ANSWER / block.len() {
                to.write_all(&block).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let take_upload = async {
            let mut chunk = vec![0u8; 256 * 1024];
            while received < UPLOAD {
                match from.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received += n,
                }
            }
        };
        let _ = tokio::join!(answer, take_upload);
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");

    // The same exchange straight with the upstream works...
    let direct = tokio::time::timeout(Duration::from_secs(5), upload_then_read(upstream.address))
        .await
        .expect("the upstream and client deadlock even without the gateway");
    assert_eq!(direct, "HTTP/1.1 200");
    // ...and must through the gateway.
    let proxied = upload_then_read(gateway.addr("public"));
    let status = tokio::time::timeout(Duration::from_secs(5), proxied)
        .await
        .expect("the upload and the answer deadlocked");
    assert_eq!(status, "HTTP/1.1 200");

    /// Upload `UPLOAD` bytes to `address` with a small receive buffer, and
    /// only then read the `ANSWER`-byte response; its status line.
    async fn upload_then_read(address: SocketAddr) -> String {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        let head =
            format!("POST /stream HTTP/1.1\r\nHost: x.test\r\nContent-Length: {UPLOAD}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let block = vec![b'u'; 1024 * 1024];
        for _ in 0..UPLOAD / block.len() {
            stream.write_all(&block).await.unwrap();
        }
        let mut received = Vec::new();
        let mut chunk = vec![0u8; 256 * 1024];
        let head = loop {
            if let Some(at) = find(&received, b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the head");
            received.extend_from_slice(&chunk[..n]);
        };
        let mut total = received.len() - head;
        while total < ANSWER {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {total} body bytes");
            total += n;
        }
        String::from_utf8_lossy(&received[..12]).into_owned()
    }
}

/// RFC 9112, section 6.1: a client that receives an HTTP/1.0 message with
/// Transfer-Encoding "MUST treat the message as if the framing is faulty
/// ... and close the connection after processing the message". The
/// gateway decodes the chunks but then reuses the connection, since
/// `Head::from_parsed` decides reuse from `Connection: keep-alive` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_response_with_transfer_encoding_closes_its_connection() {
    let answer = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
                   2\r\nok\r\n0\r\n\r\n";
    let upstream = RawUpstream::canned(vec![("te10", answer.to_vec())]).await;
    let gateway = gateway_for(&upstream, "", "");
    let reply = get_body(&gateway, "/te10").await;
    if let Ok((status, body)) = &reply {
        assert_eq!((*status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    }
    next_is_fine(&gateway, &upstream, "/te10", true).await;
}

/// The documented limits of a chunk-size line (`MAX_CHUNK_LINE`, 4 KiB) and
/// of a trailer section (`MAX_HEAD`, 64 KiB) are checked only while the line
/// or section is still incomplete: one that arrives whole in a single read
/// is accepted whatever its size, so the same response passes or fails with
/// how the upstream's bytes happen to be segmented. `decode_chunk` (for
/// `Chunk::Size`) and `trailers` should check the length of what they
/// parsed too, as `parse_head_with` does for heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_line_and_trailer_limits_hold_however_the_bytes_arrive() {
    let chunked = |body: Vec<u8>| {
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        answer.extend_from_slice(&body);
        answer
    };
    let long_line = chunked(format!("2;{}\r\nok\r\n0\r\n\r\n", "e".repeat(5000)).into_bytes());
    let big_trailer =
        chunked(format!("2\r\nok\r\n0\r\nx-big: {}\r\n\r\n", "b".repeat(70_000)).into_bytes());
    let upstream =
        RawUpstream::canned(vec![("long-line", long_line), ("big-trailer", big_trailer)]).await;
    let gateway = gateway_for(&upstream, "", "");
    let mut passed = Vec::new();
    for path in ["/long-line", "/big-trailer"] {
        if let Ok(reply) = get_body(&gateway, path).await {
            passed.push((path, reply));
        }
    }
    assert!(passed.is_empty(), "over the limit, yet passed: {passed:?}");
}

/// RFC 9110, section 8.6: a recipient of `Content-Length: 2, 2` "MAY either
/// reject the message as invalid or replace that invalid field value with a
/// single instance of the decimal value"; a sender "MUST NOT forward a
/// message with a Content-Length header field value that does not match the
/// ABNF". The gateway frames the body by the one length but forwards the
/// list as it came. Likewise a response to HEAD (or a 204 or 304), whose
/// Content-Length `framing` never looks at, is passed on with any value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_reaches_the_client_as_one_number() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let answer: &[u8] = if head.starts_with("HEAD") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2 ,2\r\n\r\nok"
            };
            if !c.write(answer).await {
                return;
            }
        }
    })
    .await;
    let gateway = gateway_for(&upstream, "", "");
    let text = get_raw(&gateway, "/list").await;
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
    let length = header(&text, "content-length");
    assert_eq!(length, Some("2"), "{text}");

    let head = raw(
        gateway.addr("public"),
        b"HEAD /head HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    if let Some(length) = header(&head, "content-length") {
        assert!(length.bytes().all(|b| b.is_ascii_digit()), "HEAD passed on {length:?}: {head}");
    }
}

/// RFC 9112, section 2.3: an intermediary "MUST send [its] own HTTP-version
/// in forwarded messages". An HTTP/1.0 upstream's status line reaches an
/// HTTP/1.1 client as `HTTP/1.0 200 OK` (the response's version is passed
/// through to hyper's server, which writes it), and without a
/// `Connection: keep-alive` the client must then take its own connection
/// as closing after the response. This is not specific to `http1.rs`
/// (hyper-util's client sets the version the same way), but `Head` is
/// where the version is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_upstream_is_answered_with_the_gateways_own_version() {
    let answer = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
    let upstream = RawUpstream::canned(vec![("old", answer.to_vec())]).await;
    let gateway = gateway_for(&upstream, "", "");
    let text = raw(
        gateway.addr("public"),
        b"GET /old HTTP/1.1\r\nHost: x.test\r\n\r\nGET /second HTTP/1.1\r\nHost: x.test\r\n\
          Connection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("/second"), "{text}");
}

/// A response whose body the upstream breaks off after its head was passed
/// on is logged with the status the client got and a `reason` that says the
/// body failed and why, not as a clean answer: by length or chunked, closed
/// or reset, and a body that stops for the pool's `stall_timeout`. A whole
/// answer still has a null `reason`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_is_logged_with_a_reason() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            let path = target(&head).to_owned();
            let answer: &[u8] = match path.as_str() {
                "/length" | "/reset" => b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
                "/chunked" => {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                }
                "/stall" => b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
                _ => {
                    if !c.write(&ok(&path)).await {
                        return;
                    }
                    continue;
                }
            };
            c.write(answer).await;
            match path.as_str() {
                "/reset" => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _ = c.stream.set_zero_linger();
                }
                "/stall" => tokio::time::sleep(Duration::from_secs(2)).await,
                _ => {}
            }
            return;
        }
    })
    .await;
    let mut gateway = gateway_for(&upstream, "    stall_timeout: 200ms\n", "");
    for path in ["/length", "/reset", "/chunked", "/stall"] {
        let reply = get_body(&gateway, path).await;
        assert!(reply.is_err(), "{path}: a cut body must fail at the client: {reply:?}");
    }
    assert_eq!(get(&gateway, "/whole").await, (StatusCode::OK, "/whole".to_owned()));

    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));
    let lines = gateway.stdout();
    let record = |path: &str| -> serde_json::Value {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{path}\"")));
        serde_json::from_str(line.unwrap_or_else(|| panic!("{path} logged: {lines:?}"))).unwrap()
    };
    let endpoint = upstream.address.to_string();
    for (path, why) in [
        ("/length", "connection closed"),
        ("/reset", ""),
        ("/chunked", "connection closed"),
        ("/stall", "sent and took nothing for 200ms"),
    ] {
        let line = record(path);
        assert_eq!(line["status"], 200, "{path}: {line}");
        assert_eq!(line["endpoint"], endpoint, "{path}: {line}");
        let reason = line["reason"].as_str().unwrap_or("");
        let expected = format!("upstream {endpoint} failed after sending response headers");
        assert!(reason.starts_with(&expected), "{path}: {line}");
        assert!(reason.contains(why), "{path}: {line}");
    }
    assert_eq!(record("/whole")["reason"], serde_json::Value::Null);
}
