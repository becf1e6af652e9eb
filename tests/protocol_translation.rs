//! Requests that cross from one HTTP version to the other on their way
//! through the gateway (an HTTP/2 client to an HTTP/1.1 pool, an HTTP/1.1
//! client to an HTTP/2 pool, and HTTP/2 on both sides), sent the way a
//! hostile client would: what each upstream receives is read as it
//! arrived, and must be one well-framed request that the upstream's own
//! parser, whichever it is, reads as the gateway routed it, without
//! failing requests of other clients that share its connection.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::h2c::H2Recorder;
use support::h2raw::{self, stream_outcome, StreamOutcome};
use support::{raw, spec_with, statuses, Answer, Gateway, ScriptedUpstream};

/// The pseudo-header fields of a POST of `path` for host x.test.
fn post(path: &'static str) -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.as_bytes()),
        (b":authority", b"x.test"),
    ]
}

/// Send, on a new HTTP/2 connection to `gateway`, one request (stream 1)
/// with the header fields `fields`, then each DATA frame of `data`, the
/// last ending the stream; what the client saw of it.
async fn h2_request(
    gateway: SocketAddr,
    fields: &[(&[u8], &[u8])],
    data: &[&[u8]],
) -> StreamOutcome {
    use h2raw::{frame, DATA, END_HEADERS, END_STREAM, HEADERS};
    let mut stream = TcpStream::connect(gateway).await.expect("connect to the gateway");
    let flags = if data.is_empty() { END_HEADERS | END_STREAM } else { END_HEADERS };
    let mut bytes = h2raw::preface(&[]);
    bytes.extend(frame(HEADERS, flags, 1, &h2raw::literals(fields)));
    for (at, piece) in data.iter().enumerate() {
        let end = if at + 1 == data.len() { END_STREAM } else { 0 };
        bytes.extend(frame(DATA, end, 1, piece));
    }
    stream.write_all(&bytes).await.expect("write the request");
    stream_outcome(&mut stream).await
}

/// An h2c upstream that records each request and answers 200 `ok`.
async fn h2_recorder() -> H2Recorder {
    H2Recorder::start(|_| Response::new(Full::new(Bytes::from_static(b"ok")))).await
}

/// RFC 9110 (section 8.6) lets a recipient take a repeated Content-Length
/// of one number as that number, but not forward it repeated, and an
/// HTTP/2 client may repeat `content-length` (the HTTP/2 layer checks only
/// that the copies agree). The upstream receives one field, over HTTP/1.1
/// (where a parser such as Node's refuses a repeated one) and over HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_content_length_reaches_the_upstream_once() {
    let http1 = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let http2 = h2_recorder().await;
    for (pool, address) in [("", http1.address), ("    protocol: http2\n", http2.address)] {
        let gateway = Gateway::start(&spec_with("", &[address], pool, ""));
        let public = gateway.addr("public");
        let mut fields = post("/twice");
        fields.extend([(&b"content-length"[..], &b"5"[..]), (b"content-length", b"5")]);
        let outcome = h2_request(public, &fields, &[b"hel", b"lo"]).await;
        assert_eq!(outcome.status, Some(200), "{pool:?}: {outcome:?}");

        // An HTTP/1.1 client's repeated field, which the gateway reads as one.
        let request = "POST /h1 HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\n\
                       Content-Length: 5\r\nConnection: close\r\n\r\nhello";
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{pool:?}: {response}");
    }
    let requests = http1.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in requests {
        let lines = request.head.to_ascii_lowercase().matches("\r\ncontent-length:").count();
        assert_eq!((lines, request.header("content-length")), (1, Some("5")), "{}", request.head);
        assert_eq!(request.body, b"hello");
    }
    let seen = http2.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in seen {
        let values: Vec<_> = request.headers.get_all("content-length").iter().collect();
        assert_eq!(values, ["5"], "{}: {:?}", request.path, request.headers);
        assert_eq!(request.body, b"hello");
    }
}
