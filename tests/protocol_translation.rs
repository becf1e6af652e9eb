//! Requests that cross from one HTTP version to the other on their way
//! through the gateway (an HTTP/2 client to an HTTP/1.1 pool, an HTTP/1.1
//! client to an HTTP/2 pool, and HTTP/2 on both sides), sent the way a
//! hostile client would: what each upstream receives is read as it
//! arrived, and must be one well-framed request that the upstream's own
//! parser, whichever it is, reads as the gateway routed it, without
//! failing requests of other clients that share its connection.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use support::h2c::{self, H2Recorder};
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

/// A request whose header section is as large as the listener lets in,
/// sent to an HTTP/2 pool: over HTTP/1.1, 64 KiB in 97 fields, which
/// HTTP/2 counts 32 bytes more each; over HTTP/2, just under the
/// listener's 64 KiB, to which the gateway adds `host` and the
/// `x-forwarded-*` fields. An upstream built on the h2 library (hyper,
/// tonic), whose default limit is 16 KiB, closes its whole connection
/// (GOAWAY) for a header list over four times that. The request of another
/// client, in flight on the shared connection at the time, must still be
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_list_fails_no_other_clients_request() {
    let held = Arc::new(Semaphore::new(0));
    let gate = Arc::clone(&held);
    let (upstream, _task) = h2c::serve(move |request: hyper::Request<_>| {
        let gate = Arc::clone(&gate);
        async move {
            if request.uri().path() == "/held" {
                gate.acquire().await.expect("the semaphore stays open").forget();
            }
            Response::new(Full::new(Bytes::from(request.uri().path().to_owned())))
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream], "    protocol: http2\n", ""));
    let public = gateway.addr("public");

    for http2 in [false, true] {
        // Another client's request, held by the upstream on the shared connection.
        let waiting = tokio::spawn(async move {
            let request = "GET /held HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
            raw(public, request.as_bytes()).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;

        let status = match http2 {
            false => {
                let value = "v".repeat(640);
                let fields: String =
                    (0..97).map(|i| format!("x-big-{i:02}: {value}\r\n")).collect();
                let big = format!(
                    "GET /big HTTP/1.1\r\nHost: x.test\r\n{fields}Connection: close\r\n\r\n"
                );
                assert!(big.len() < 64 * 1024, "{}", big.len());
                statuses(&raw(public, big.as_bytes()).await)
            }
            true => {
                // The pseudo-header fields count 175 bytes; 97 fields of 672
                // and one of 77 bring the list to 65,436, under the
                // listener's 65,536, and the gateway's 205 bytes over it.
                let mut request = hyper::Request::get("http://x.test/big2");
                let value = "v".repeat(632);
                for i in 0..97 {
                    request = request.header(format!("x-big-{i:02}"), &value);
                }
                request = request.header("x-pad", "p".repeat(40));
                let request = request.body(Full::new(Bytes::new())).unwrap();
                let mut sender = support::h2c_sender(public).await;
                let answered = sender.send_request(request).await;
                vec![answered.map_or(0, |response| response.status().as_u16())]
            }
        };
        held.add_permits(1);
        let other = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the held request is answered")
            .expect("the client task ends");
        assert_eq!(
            statuses(&other),
            [200],
            "HTTP/2 client: {http2}; the big request got {status:?}; the other: {other}"
        );
        assert!(other.ends_with("/held"), "{other}");
    }
}
