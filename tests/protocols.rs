//! HTTP/2 from clients and to pools, its stream limits and the rapid-reset
//! attack, gRPC-shaped trailers, upgrades (fault B30), `Expect:
//! 100-continue` (B31), and access log lines for requests the parser
//! refused.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use support::h2c::H2Recorder;
use support::{
    eventually, h2raw, raw, spec_with, statuses, Answer, Frames, Gateway, ScriptedUpstream,
    Upstream,
};

/// An HTTP/2-only (h2c) server that answers like a gRPC service: the body it
/// got back, then trailers with `grpc-status: 0`.
async fn grpc_upstream() -> H2Recorder {
    H2Recorder::start(|got| {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("grpc-message", HeaderValue::from_static("ok"));
        let echo = Bytes::from(got.body.clone());
        let body = Frames::new(vec![Frame::data(echo), Frame::trailers(trailers)]);
        Response::builder().header("content-type", "application/grpc").body(body).unwrap()
    })
    .await
}

/// A prior-knowledge HTTP/2 client.
fn h2_client<B>() -> Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_reach_http1_pools() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let client = h2_client::<Full<Bytes>>();
    let request = Request::get(format!("http://{}/v1/x?q=1", gateway.addr("public")))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.expect("the gateway answers over h2");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "a");
    let seen = &upstream.seen()[0];
    assert_eq!(seen.target, "/v1/x?q=1");
    assert_eq!(seen.headers["host"], gateway.addr("public").to_string());
}

/// gRPC end to end: an h2c client, the gateway, an h2c upstream; the
/// request's trailers reach the upstream (without fields the gateway
/// governs), and the response's `grpc-status` trailer reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_cross_the_gateway_both_ways() {
    let upstream = grpc_upstream().await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "    protocol: http2\n", ""));

    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    trailers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
    let frames =
        vec![Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")), Frame::trailers(trailers)];
    let request = Request::post(format!("http://{}/pkg.Svc/Call", gateway.addr("public")))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Frames::new(frames))
        .unwrap();
    let response = h2_client().request(request).await.expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let collected = response.into_body().collect().await.expect("read the body");
    let trailers = collected.trailers().cloned().expect("trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(collected.to_bytes(), &b"\0\0\0\0\x02hi"[..]);

    let seen = upstream.seen()[0].clone();
    assert_eq!(seen.headers.get("te").map(|v| v.to_str().unwrap()), Some("trailers"));
    let upstream_trailers = seen.trailers.expect("request trailers reach the upstream");
    assert_eq!(upstream_trailers["x-checksum"], "abc");
    assert!(!upstream_trailers.contains_key("x-forwarded-for"));
}

/// The listener's `max_concurrent_streams` holds an HTTP/2 client to that
/// many requests at once: streams beyond it wait (once the client knows the
/// setting) or are refused with REFUSED_STREAM (when it did not yet), but
/// never run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_are_limited_per_connection() {
    let upstream = Upstream::with_delay("slow", Duration::from_millis(200)).await;
    let listener = "    http2: { max_concurrent_streams: 1, max_pending_resets: 5 }\n";
    let gateway = Gateway::start(&spec_with(listener, &[upstream.address], "", ""));
    let client = h2_client::<Full<Bytes>>();
    let address = gateway.addr("public");

    let began = Instant::now();
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = Request::get(format!("http://{address}/"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                client.request(request).await.map(|r| r.status())
            })
        })
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for send in sends {
        match send.await.unwrap() {
            Ok(status) => {
                assert_eq!(status, StatusCode::OK);
                answered += 1;
            }
            Err(error) => {
                assert!(format!("{error:?}").contains("REFUSED_STREAM"), "{error:?}");
                refused += 1;
            }
        }
    }
    let elapsed = began.elapsed();
    assert!(answered >= 1);
    assert!(
        elapsed >= Duration::from_millis(200) * answered - Duration::from_millis(50),
        "{answered} streams ran at once: {elapsed:?} ({refused} refused)"
    );
}

/// An upstream that switches to a tunnel on any request and echoes bytes.
async fn echo_upstream() -> SocketAddr {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = socket.accept().await else { continue };
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
                let switch = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                              Upgrade: websocket\r\n\r\n";
                stream.write_all(switch.as_bytes()).await.unwrap();
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x.test\r\nConnection: Upgrade\r\n\
                       Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Open a WebSocket tunnel through the gateway; returns the stream after the 101.
async fn open_tunnel(gateway: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(gateway).await.unwrap();
    stream.write_all(UPGRADE.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_tunnel_bytes_both_ways() {
    let upstream = echo_upstream().await;
    let gateway = Gateway::start(&spec_with("", &[upstream], "", ""));

    let mut stream = open_tunnel(gateway.addr("public")).await;
    for message in [&b"ping"[..], b"\x81\x05hello", b"GET / HTTP/1.1\r\n\r\n"] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("the echo arrives")
            .unwrap();
        assert_eq!(echoed, message);
    }
}

/// B30: an upstream that answers an upgrade request with 200 does not get a
/// tunnel; the bytes the client sent next are parsed as a request, checks
/// and forwarded headers included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tunnel_without_101() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let pipelined =
        format!("{UPGRADE}GET /second HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n");
    let response = raw(gateway.addr("public"), pipelined.as_bytes()).await;
    assert_eq!(statuses(&response), [200, 200], "{response}");
    let requests = upstream.requests();
    let targets: Vec<&str> = requests.iter().map(|r| r.target()).collect();
    assert_eq!(targets, ["/ws", "/second"]);
    assert_eq!(requests[0].header("upgrade"), Some("websocket"));
    assert_eq!(requests[1].header("x-forwarded-for"), Some("127.0.0.1"), "{}", requests[1].head);
}

/// B31 (T7.1): an upstream that refuses an `Expect: 100-continue` upload at
/// once is answered through, promptly, without a 100 from the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_refusal_of_an_expected_body_is_relayed() {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                read_head(&mut stream).await;
                let refusal = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\
                               Connection: close\r\n\r\ntoo big!";
                let _ = stream.write_all(refusal.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            });
        }
    });
    let gateway = Gateway::start(&spec_with("", &[upstream], "", ""));

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1048576\r\n\
                Expect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let began = Instant::now();
    let head = tokio::time::timeout(Duration::from_secs(1), read_head(&mut stream))
        .await
        .expect("the refusal arrives within 1 s");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(began.elapsed() < Duration::from_millis(900));
}

/// `Expect: 100-continue` to an upstream that wants the body: the client
/// gets its 100 when the upstream sends one, then the upstream's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_body_flows_after_the_upstreams_100() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let head = "POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\n\
                Expect: 100-continue\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let interim = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
        .await
        .expect("a 100 arrives");
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert_eq!(upstream.seen()[0].body_len, 5);
}

/// A request that the HTTP parser refuses still leaves an access log line,
/// with the status, the client, the reason and no route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_refusals_are_logged() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let response = raw(gateway.addr("public"), b"GET / HTTP/1.1\r\nHost x.test\r\n\r\n").await;
    assert_eq!(statuses(&response), [400], "{response}");

    let line = || gateway.stdout().into_iter().find(|l| l.contains("\"status\":400"));
    eventually(Duration::from_secs(5), || line().is_some()).await;
    let line = line().expect("an access log line for the refusal");
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["route"], serde_json::Value::Null);
    assert_eq!(record["listener"], "public");
    assert!(record["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(!record["reason"].as_str().unwrap_or("").is_empty(), "{line}");
    assert!(upstream.seen().is_empty());
}

/// The rapid-reset attack: a client that opens streams and resets each at
/// once, faster than they are served, has its connection closed with
/// GOAWAY ENHANCE_YOUR_CALM beyond `max_pending_resets`; one that resets a
/// few stays connected and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_resets_beyond_the_limit_close_the_connection() {
    use h2raw::{GOAWAY, HEADERS, RST_STREAM};
    const ENHANCE_YOUR_CALM: [u8; 4] = [0, 0, 0, 0xb];
    let upstream = Upstream::with_delay("ok", Duration::from_millis(50)).await;
    let listener = "    http2: { max_pending_resets: 5 }\n";
    let gateway = Gateway::start(&spec_with(listener, &[upstream.address], "", ""));

    let fields = h2raw::get("/");
    let opened_and_reset = |streams: std::ops::Range<u32>| {
        let mut bytes = Vec::new();
        for id in streams.map(|n| 2 * n + 1) {
            bytes.extend(h2raw::frame(HEADERS, 0x5, id, &fields));
            bytes.extend(h2raw::frame(RST_STREAM, 0, id, &[0, 0, 0, 0x8]));
        }
        bytes
    };
    let preface = h2raw::preface(&[]);

    let mut attacker = TcpStream::connect(gateway.addr("public")).await.unwrap();
    attacker.write_all(&[preface.clone(), opened_and_reset(0..100)].concat()).await.unwrap();
    let frames = h2raw::frames(&mut attacker, Duration::from_secs(3)).await;
    let goaway = frames.iter().find(|(kind, _, _)| *kind == GOAWAY);
    let Some((_, _, payload)) = goaway else { panic!("no GOAWAY: {frames:?}") };
    assert_eq!(payload.get(4..8), Some(&ENHANCE_YOUR_CALM[..]), "{frames:?}");

    let mut polite = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let mut bytes = [preface, opened_and_reset(0..3)].concat();
    bytes.extend(h2raw::frame(HEADERS, 0x5, 7, &fields));
    polite.write_all(&bytes).await.unwrap();
    let frames = h2raw::frames(&mut polite, Duration::from_millis(800)).await;
    assert!(frames.iter().all(|(kind, _, _)| *kind != GOAWAY), "{frames:?}");
    assert!(frames.iter().any(|&(kind, id, _)| kind == HEADERS && id == 7), "{frames:?}");
}

/// An HTTP/2 client that goes silent, and does not acknowledge the PING
/// that a graceful close waits on, is still closed soon after the idle
/// timeout, freeing its place under the listener's connection limit; so
/// is one that left a header block unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http2_client_is_closed_after_the_idle_timeout() {
    let upstream = Upstream::start("ok").await;
    let listener = "    idle_timeout: 200ms\n    head_timeout: 300ms\n    max_connections: 1\n";
    let gateway = Gateway::start(&spec_with(listener, &[upstream.address], "", ""));
    let preface = h2raw::preface(&[]);
    // HEADERS without END_HEADERS, and no CONTINUATION after it.
    let unfinished = h2raw::frame(h2raw::HEADERS, 0x1, 1, &[0x82, 0x86, 0x84]);

    for (case, opening) in
        [("silent", preface.clone()), ("unfinished", [preface, unfinished].concat())]
    {
        let mut silent = TcpStream::connect(gateway.addr("public")).await.unwrap();
        silent.write_all(&opening).await.unwrap();
        let started = Instant::now();
        // Reads (so the gateway's writes never stall) but never answers.
        let frames = h2raw::frames(&mut silent, Duration::from_secs(5)).await;
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(3), "{case}: open for {elapsed:?}: {frames:?}");
        let goaway = frames.iter().any(|(kind, _, _)| *kind == h2raw::GOAWAY);
        assert!(goaway, "{case}: no GOAWAY: {frames:?}");
    }
    // The one connection the listener allows is free again.
    let answer = support::raw(gateway.addr("public"), b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n");
    let answer = tokio::time::timeout(Duration::from_secs(3), answer).await;
    assert!(answer.expect("the slot was not freed").starts_with("HTTP/1.1 200"));
}

/// Read one response with a Content-Length body from `stream`: its head
/// and body, lossily as text.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let head = read_head(stream).await;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("the whole response body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// B31: `Expect: 100-continue` to an upstream that never sends `100
/// Continue` but reads the whole body before it answers. The gateway stops
/// holding the body back after a short wait, so the exchange completes
/// rather than each side waiting on the other: for a client that waits for
/// the gateway's 100 before sending, and for one that sends its body at
/// once. The upstream receives every byte, and the client connection stays
/// in step for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_body_flows_when_the_upstream_never_sends_100() {
    let upstream = ScriptedUpstream::start(None, |r| {
        Answer::ok(&format!("{} got {} bytes", r.target(), r.body.len()))
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let body: Vec<u8> = (0..60_000).map(support::PatternBody::byte).collect();
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x.test\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        )
    };

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let limit = Duration::from_secs(5);

    // A client that waits for the 100 the gateway sends on its own.
    let waits = async {
        stream.write_all(head("/waits").as_bytes()).await.unwrap();
        let interim = read_head(&mut stream).await;
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
        stream.write_all(&body).await.unwrap();
        let (status, text) = read_response(&mut stream).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}{text}");
        assert_eq!(text, "/waits got 60000 bytes");
    };
    tokio::time::timeout(limit, waits)
        .await
        .expect("a client waiting for 100: no answer within 5 s");

    // A client that sends its body without waiting, on the same connection.
    let eager = async {
        let mut request = head("/eager").into_bytes();
        request.extend_from_slice(&body);
        stream.write_all(&request).await.unwrap();
        let mut response = read_response(&mut stream).await;
        if response.0.starts_with("HTTP/1.1 100") {
            response = read_response(&mut stream).await;
        }
        assert!(response.0.starts_with("HTTP/1.1 200"), "{response:?}");
        assert_eq!(response.1, "/eager got 60000 bytes");
    };
    tokio::time::timeout(limit, eager)
        .await
        .expect("a client sending at once: no answer within 5 s");

    let after = async {
        stream.write_all(b"GET /after HTTP/1.1\r\nHost: x.test\r\n\r\n").await.unwrap();
        let (status, text) = read_response(&mut stream).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}{text}");
        assert_eq!(text, "/after got 0 bytes");
    };
    tokio::time::timeout(limit, after).await.expect("the next request: no answer within 5 s");

    let requests = upstream.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method() == "POST").collect();
    assert_eq!(posts.len(), 2, "{requests:?}");
    for post in posts {
        assert!(post.body == body, "{}: {} bytes arrived", post.target(), post.body.len());
    }
}

/// The listener's `max_headers` holds over HTTP/2 as over HTTP/1.1: a
/// request with more fields is answered 431 by the gateway and reaches no
/// upstream, at the default limit and at a listener's own; one at the limit
/// is served. A trailer section over the limit fails the request as
/// HTTP/1.1's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_held_to_the_header_field_limit() {
    // An upstream with no limit of its own on fields.
    let upstream = raw::RawUpstream::canned(Vec::new()).await;
    let default = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let strict = Gateway::start(&spec_with("    max_headers: 5\n", &[upstream.address], "", ""));
    let client = h2_client::<Full<Bytes>>();
    let get = |gateway: &Gateway, fields: usize| {
        let mut request = Request::get(format!("http://{}/x", gateway.addr("public")));
        for i in 0..fields {
            request = request.header(format!("x-h{i}"), "v");
        }
        client.request(request.body(Full::new(Bytes::new())).unwrap())
    };

    for (gateway, fields, status) in [
        (&default, 100, StatusCode::OK),
        (&default, 101, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        (&default, 1000, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        (&strict, 5, StatusCode::OK),
        (&strict, 6, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
    ] {
        let response = get(gateway, fields).await.expect("the gateway answers over h2");
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.status(), status, "{fields} fields");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if status != StatusCode::OK {
            assert!(body.is_empty(), "a 431 has no body, as over HTTP/1.1");
        }
    }
    assert_eq!(upstream.log().len(), 2, "only the requests within the limit are forwarded");

    // Trailers: 101 fields, over HTTP/1.1 and over HTTP/2, to an upstream
    // that reads the whole body before it answers.
    let reader = Upstream::start("b").await;
    let default = Gateway::start(&spec_with("", &[reader.address], "", ""));
    let fields: String = (0..101).map(|i| format!("x-t{i}: v\r\n")).collect();
    let chunked = format!(
        "POST /x HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n{fields}\r\n"
    );
    let http1 = statuses(&raw(default.addr("public"), chunked.as_bytes()).await);
    let mut trailers = HeaderMap::new();
    for i in 0..101 {
        trailers.insert(
            hyper::header::HeaderName::from_bytes(format!("x-t{i}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
    }
    let frames = vec![Frame::data(Bytes::from_static(b"hi")), Frame::trailers(trailers)];
    let request = Request::post(format!("http://{}/x", default.addr("public")))
        .body(Frames::new(frames))
        .unwrap();
    let http2 = h2_client().request(request).await.expect("the gateway answers over h2");
    assert_eq!(http1, [400]);
    assert_eq!(http2.status(), StatusCode::BAD_REQUEST);
    assert!(reader.seen().iter().all(|s| s.trailers.is_none()));
}

/// B31, RFC 9110 (section 10.1.1) and RFC 9112 (section 9.6): an upstream
/// that answers an `Expect: 100-continue` request at once, without reading
/// its body, is answered through; the body left unread stands between this
/// request and the next, so the gateway closes the connection after the
/// answer and says so in it with `Connection: close`, so that a client
/// reusing the connection knows not to. So it does for a client that sent
/// its body right behind the head anyway, and when the gateway answers
/// itself (an unreachable endpoint) before a body was read or while only
/// part of it was. A body read whole leaves the connection open, unsaid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_leaves_the_body_unread_says_the_connection_closes() {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                // Answers each head at once, and keeps its connection.
                while !read_head(&mut stream).await.is_empty() {
                    let refusal =
                        "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!";
                    if stream.write_all(refusal.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let reading = Upstream::start("read").await;
    let refuses = Gateway::start(&spec_with("", &[refusing], "", ""));
    let unreachable = Gateway::start(&spec_with("", &[support::closed_port()], "", ""));
    let reads = Gateway::start(&spec_with("", &[reading.address], "", ""));

    let expecting = "POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\n\
                     Expect: 100-continue\r\n\r\n";
    let partial = "POST /upload HTTP/1.1\r\nHost: x.test\r\nContent-Length: 100000\r\n\r\nhello";
    let cases = [
        ("early answer, client waits", &refuses, expecting.to_owned(), 413),
        ("early answer, eager client", &refuses, format!("{expecting}hello"), 413),
        ("unreachable, client waits", &unreachable, expecting.to_owned(), 502),
        ("unreachable, part of the body", &unreachable, partial.to_owned(), 502),
    ];
    for (case, gateway, request, status) in cases {
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let (text, _) = support::until_closed(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(statuses(&text), [status], "{case}: {text}");
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("\r\nconnection: close\r\n"), "{case}: {text}");
        assert!(!lower.contains("keep-alive"), "{case}: {text}");
    }

    // A body read whole, and a pipelined request after it on the same
    // connection: only the second, which asks for it, closes.
    let mut stream = TcpStream::connect(reads.addr("public")).await.unwrap();
    let requests = "POST /whole HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\n\r\nhello\
                    GET /next HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
    stream.write_all(requests.as_bytes()).await.unwrap();
    let (text, _) = support::until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(statuses(&text), [200, 200], "{text}");
    assert_eq!(text.to_ascii_lowercase().matches("connection: close").count(), 1, "{text}");
    assert_eq!(reading.seen().iter().map(|s| s.body_len).collect::<Vec<_>>(), [5, 0]);
}
