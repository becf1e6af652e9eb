//! The stall clocks, end to end with real sockets and scaled-down times: a
//! pool's `stall_timeout` gives up on an upstream that stops sending its
//! response or stops taking the request body, and a listener's gives up on
//! a client that stops sending its body or stops reading its response. A
//! transfer that keeps moving, however slowly, is never cut.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::h2c;
use support::raw::{get_body, header, ok, Conn, RawUpstream};
use support::{eventually, spec_with, statuses, until_closed, Gateway};

const POOL_STALL: &str = "    stall_timeout: 300ms\n";
const LISTENER_STALL: &str = "    stall_timeout: 300ms\n";

/// Whether `elapsed` is the 300 ms clock's doing: not before it, and well
/// short of anything a hang would take.
fn at_the_clock(elapsed: Duration) -> bool {
    elapsed >= Duration::from_millis(280) && elapsed < Duration::from_millis(2500)
}

/// A response body that stops halfway fails at the stall timeout, and the
/// stalled connection is closed, not pooled: the next request gets a new one.
/// The same holds when the listener's own stall clock is as short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_that_stops_fails_at_the_pool_stall_timeout() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if head.starts_with("GET /stop ") {
                let _ = c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nten bytes.").await;
                // Hold the connection open, silent, until the gateway closes it.
                c.closed_within(Duration::from_secs(10)).await;
                return;
            }
            if !c.ok("fine").await {
                return;
            }
        }
    })
    .await;
    for (run, listener) in ["", LISTENER_STALL].into_iter().enumerate() {
        let gateway = Gateway::start(&spec_with(listener, &[upstream.address], POOL_STALL, ""));
        let started = Instant::now();
        let failed = get_body(&gateway, "/stop").await;
        let elapsed = started.elapsed();
        let error = failed.expect_err("a body cut short must not read as whole");
        assert!(error.starts_with("200 OK"), "the head should have come through: {error}");
        assert!(at_the_clock(elapsed), "gave up after {elapsed:?}");

        let (status, body) = get_body(&gateway, "/next").await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"fine"[..]));
        assert_eq!(upstream.accepted(), 2 * (run + 1), "the stalled connection must not be reused");
    }
    let closed = eventually(Duration::from_secs(2), || upstream.finished() >= 2).await;
    assert!(closed, "the gateway should have closed the stalled connections");
}

/// A body that trickles, a byte every 100 ms for a whole second, keeps its
/// 300 ms clock from running out, and so does a head that trickles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_moving_response_is_never_cut() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while c.head().await.is_some() {
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789";
            for byte in answer {
                if !c.write(&[*byte]).await {
                    return;
                }
                if byte.is_ascii_digit() || *byte == b'\n' {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], POOL_STALL, ""));

    let started = Instant::now();
    let (status, body) = get_body(&gateway, "/slow").await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"0123456789"[..]));
    assert!(started.elapsed() >= Duration::from_millis(1000), "the trickle was not slow");
}

/// An upstream that takes the request and never answers is a 504 at the
/// stall timeout, though the route sets no `timeout`; with `on: [timeout]`
/// the request is retried on the other endpoint, which answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_a_timeout_at_the_stall_timeout() {
    let silent = RawUpstream::start(|mut c: Conn| async move {
        c.head().await;
        c.closed_within(Duration::from_secs(10)).await;
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[silent.address], POOL_STALL, ""));
    let started = Instant::now();
    let reply = support::send(
        &support::client(),
        support::request("GET", gateway.addr("public"), "x.test", "/"),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert!(reply.body.contains("upstream_timeout"), "{}", reply.body);
    assert!(at_the_clock(elapsed), "answered after {elapsed:?}");
    drop(gateway);

    let answering = RawUpstream::start(|mut c: Conn| async move {
        while c.head().await.is_some() {
            if !c.ok("from the other one").await {
                return;
            }
        }
    })
    .await;
    let retries = "    retries: { attempts: 2, on: [timeout] }\n";
    let spec = spec_with("", &[silent.address, answering.address], POOL_STALL, retries)
        .replace("    endpoints:", "    balance: round_robin\n    endpoints:");
    let gateway = Gateway::start(&spec);
    for _ in 0..2 {
        let (status, body) = get_body(&gateway, "/").await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"from the other one"[..]));
    }
}

/// An upstream that reads the head but never the body stops taking bytes
/// once the socket buffers are full; the stall clock then gives up with a
/// 504 rather than wait on it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_takes_no_upload_is_given_up() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        c.head().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], POOL_STALL, ""));

    // More than every socket buffer on the way can hold.
    const SIZE: usize = 64 << 20;
    let stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let upload = tokio::spawn(async move {
        let head = format!("POST /up HTTP/1.1\r\nHost: x.test\r\nContent-Length: {SIZE}\r\n\r\n");
        writer.write_all(head.as_bytes()).await.ok()?;
        let block = vec![b'u'; 1 << 20];
        for _ in 0..SIZE / block.len() {
            writer.write_all(&block).await.ok()?;
        }
        Some(writer)
    });
    let started = Instant::now();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk)).await;
        match read.expect("the gateway should answer within 5 s") {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&response);
    assert_eq!(statuses(&text), [504], "{text}");
    assert!(elapsed < Duration::from_millis(4000), "answered after {elapsed:?}");
    upload.abort();
}

/// A client that sends part of its body and then nothing gets 408 at the
/// listener's stall timeout and its connection is closed; the upstream's
/// connection, which had the partial request, is closed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_mid_upload_gets_408() {
    let closed = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&closed);
    let upstream = RawUpstream::start(move |mut c: Conn| {
        let seen = Arc::clone(&seen);
        async move {
            let Some(head) = c.head().await else { return };
            let length = header(&head, "content-length").and_then(|v| v.parse().ok());
            if c.body(length.unwrap_or(0)).await.is_some() {
                let _ = c.write(&ok("whole")).await;
                return;
            }
            seen.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with(LISTENER_STALL, &[upstream.address], "", ""));

    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        let head = format!("POST /up {version}\r\nHost: x.test\r\nContent-Length: 100\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(b"only ten..").await.unwrap();
        let (response, elapsed) = until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(response.starts_with(&format!("{version} 408")), "{response}");
        assert!(response.contains("client_timeout"), "{response}");
        assert!(at_the_clock(elapsed), "answered after {elapsed:?}");
    }
    eventually(Duration::from_secs(2), || closed.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(closed.load(Ordering::SeqCst), 2, "the upstream's connections should close");

    // A slow upload that keeps moving is passed on whole.
    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    stream
        .write_all(b"POST /up HTTP/1.1\r\nHost: x.test\r\nContent-Length: 10\r\n\r\n")
        .await
        .unwrap();
    let response = trickle_body_then_read(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Send the ten bytes of a request body one every 100 ms, then read what
/// comes back (within a bound that only tells a hang).
async fn trickle_body_then_read(stream: &mut TcpStream) -> String {
    for byte in b"0123456789" {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    let mut response = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response[..n]).into_owned()
}

/// A client that asks for a large response and reads none of it is closed
/// at the listener's stall timeout, whichever server answers it: the
/// gateway's own (a GET) or hyper (a request with a body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed() {
    const SIZE: usize = 64 << 20;
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while let Some(head) = c.head().await {
            if !c.skip_body(&head).await {
                return;
            }
            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n");
            if !c.write(answer.as_bytes()).await {
                return;
            }
            let block = vec![b'd'; 1 << 20];
            for _ in 0..SIZE / block.len() {
                if !c.write(&block).await {
                    return;
                }
            }
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with(LISTENER_STALL, &[upstream.address], "", ""));

    let requests: [&[u8]; 2] = [
        b"GET /big HTTP/1.1\r\nHost: x.test\r\n\r\n",
        b"POST /big HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1\r\n\r\nx",
    ];
    for request in requests {
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        stream.write_all(request).await.unwrap();
        // Read nothing for well past the clock, then everything there is.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut received = 0usize;
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await;
            match read.expect("the connection should end, not hang") {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        assert!(received > 0, "the response should have begun");
        assert!(received < SIZE, "the whole response came: the stalled client was not closed");
    }
}

/// A body that sends one frame and then nothing, never ending.
struct OneFrameThenSilence(bool);

impl hyper::body::Body for OneFrameThenSilence {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.0, true) {
            return std::task::Poll::Pending;
        }
        let frame = hyper::body::Frame::data(bytes::Bytes::from_static(b"the first half"));
        std::task::Poll::Ready(Some(Ok(frame)))
    }
}

/// An HTTP/2 pool has the same clock: an upstream that sends no head is a
/// 504, and one whose body stops fails the body, both at the stall timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pools_have_the_stall_clock_too() {
    let (address, server) = h2c::serve(|request: Request<Incoming>| async move {
        if request.uri().path() == "/no-head" {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        hyper::Response::new(OneFrameThenSilence(false))
    })
    .await;
    let pool = format!("{POOL_STALL}    protocol: http2\n");
    let gateway = Gateway::start(&spec_with("", &[address], &pool, ""));

    let started = Instant::now();
    let failed = get_body(&gateway, "/no-head").await;
    let elapsed = started.elapsed();
    let (status, body) = failed.expect("a 504 is a whole response");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body:?}");
    assert!(at_the_clock(elapsed), "answered after {elapsed:?}");

    let started = Instant::now();
    let error = get_body(&gateway, "/half").await.expect_err("a stalled body must fail");
    let elapsed = started.elapsed();
    assert!(error.starts_with("200 OK"), "the head should have come through: {error}");
    assert!(at_the_clock(elapsed), "gave up after {elapsed:?}");
    server.abort();
}

/// An HTTP/2 pool keeps the clock while a request body goes out: an
/// upstream that reads the whole body and never answers, or that takes
/// none of a large one, is a 504 at the stall timeout; an upload that
/// trickles from the client for a whole second is not the upstream's
/// stall, and is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pools_keep_the_clock_while_a_body_goes_out() {
    use http_body_util::BodyExt;

    let (address, server) = h2c::serve(|request: Request<Incoming>| async move {
        let path = request.uri().path().to_owned();
        if path == "/take-nothing" {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        if path == "/read-then-nothing" {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        hyper::Response::new(format!("got {}", body.map_or(0, |b| b.len())))
    })
    .await;
    let pool = format!("{POOL_STALL}    protocol: http2\n");
    let gateway = Gateway::start(&spec_with("", &[address], &pool, ""));

    for (path, length) in [("/read-then-nothing", 10), ("/take-nothing", 4 << 20)] {
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x.test\r\nContent-Length: {length}\r\n\r\n");
        let started = Instant::now();
        stream.write_all(head.as_bytes()).await.unwrap();
        // The gateway stops reading once the upstream takes no more, so the
        // body goes out from a task of its own while the answer is awaited.
        let (mut reader, mut writer) = stream.into_split();
        let upload = tokio::spawn(async move {
            let _ = writer.write_all(&vec![b'x'; length]).await;
            writer
        });
        let mut response = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut response))
            .await
            .expect("the gateway must answer")
            .unwrap();
        let elapsed = started.elapsed();
        let response = String::from_utf8_lossy(&response[..n]);
        assert!(response.starts_with("HTTP/1.1 504"), "{path}: {response}");
        assert!(at_the_clock(elapsed), "{path}: answered after {elapsed:?}");
        upload.abort();
    }

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nHost: x.test\r\nContent-Length: 10\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let response = trickle_body_then_read(&mut stream).await;
    assert!(started.elapsed() >= Duration::from_millis(1000), "the trickle was not slow");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("got 10"), "{response}");
    server.abort();
}

/// An upgraded tunnel whose upstream stops taking bytes ends at the pool's
/// stall timeout, releasing the client's connection, while the listener's
/// clock is left at its minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_whose_upstream_stops_reading_ends_at_the_pool_stall_timeout() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        if c.head().await.is_some() {
            let switch = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\
                          Upgrade: websocket\r\n\r\n";
            let _ = c.write(switch.as_bytes()).await;
            // Reads nothing more, and holds the connection open.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], POOL_STALL, ""));
    let stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let upgrade =
        "GET /ws HTTP/1.1\r\nHost: x.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    writer.write_all(upgrade.as_bytes()).await.unwrap();
    let mut status = [0u8; 12];
    reader.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 101");

    // The client sends until the buffers on the way fill up and past that.
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        while writer.write_all(&chunk).await.is_ok() {}
    });
    let (_, elapsed) = until_closed(&mut reader, Duration::from_secs(10)).await;
    assert!(elapsed < Duration::from_secs(5), "the tunnel stayed open {elapsed:?}");
    assert!(started.elapsed() >= Duration::from_millis(280));
    flood.abort();
}

/// An HTTP/2 client that grants no flow-control window takes nothing, though
/// its socket takes every byte the gateway writes: at the listener's stall
/// timeout the response is given up, and the upstream connection that was
/// sending it is closed rather than held for as long as the client stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_grants_no_window_releases_the_upstream() {
    use support::h2raw;

    let upstream = RawUpstream::start(|mut c: Conn| async move {
        if c.head().await.is_some() {
            let size = 8 << 20;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
            if c.write(head.as_bytes()).await {
                // Until the gateway stops reading and drops the connection.
                let _ = c.write(&vec![b'x'; size]).await;
            }
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with(LISTENER_STALL, &[upstream.address], "", ""));
    let mut client = TcpStream::connect(gateway.addr("public")).await.unwrap();
    // SETTINGS_INITIAL_WINDOW_SIZE (4) of 0, then a GET that ends its stream.
    let mut bytes = h2raw::preface(&[(4, 0)]);
    bytes.extend(h2raw::frame(h2raw::HEADERS, 0x5, 1, &h2raw::get("/big")));
    client.write_all(&bytes).await.unwrap();

    let started = Instant::now();
    while upstream.finished() < 1 {
        assert!(started.elapsed() < Duration::from_secs(5), "the upstream connection is held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(280), "gave up too early");
    // The client still got its response head.
    let frames = h2raw::frames(&mut client, Duration::from_millis(300)).await;
    assert!(frames.iter().any(|&(kind, id, _)| kind == h2raw::HEADERS && id == 1), "{frames:?}");
}

/// An HTTP/2 client that grants no window never gets a byte of a body, so
/// hyper never polls the body and its clocks never run: the stream is
/// reset at the listener's stall timeout all the same, whether the body is
/// a short one from the upstream or one the gateway wrote (a 502 here). The
/// connection then counts as idle and closes after the idle timeout (and
/// the grace its GOAWAY gets), so the
/// one place under `max_connections` is free for the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_held_by_a_closed_window_is_reset_and_frees_its_place() {
    use support::h2raw::{self, RST_STREAM};

    let upstream = RawUpstream::start(|mut c: Conn| async move {
        while c.head().await.is_some() {
            if !c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!").await {
                return;
            }
        }
    })
    .await;
    let listener = format!(
        "{LISTENER_STALL}    max_connections: 1\n    idle_timeout: 500ms\n    head_timeout: 300ms\n"
    );
    let served = Gateway::start(&spec_with(&listener, &[upstream.address], "", ""));
    let refused = Gateway::start(&spec_with(&listener, &[support::closed_port()], "", ""));
    // Held open, so that only the gateway can close them.
    let mut clients = Vec::new();
    for gateway in [&served, &refused] {
        clients.push(TcpStream::connect(gateway.addr("public")).await.unwrap());
        let client = clients.last_mut().expect("just pushed");
        let mut bytes = h2raw::preface(&[(4, 0)]);
        bytes.extend(h2raw::frame(h2raw::HEADERS, 0x5, 1, &h2raw::get("/short")));
        client.write_all(&bytes).await.unwrap();
        let started = Instant::now();
        let mut reset = None;
        while let Some(frame) = h2raw::next(client, Duration::from_secs(5)).await {
            if frame.kind == RST_STREAM && frame.stream == 1 {
                reset = Some(started.elapsed());
                break;
            }
        }
        let reset = reset.expect("the stream held by its window is reset");
        assert!(at_the_clock(reset), "reset after {reset:?}");
    }
    // The held connection went idle and closed, freeing the only place.
    let next = tokio::time::timeout(Duration::from_secs(5), get_body(&served, "/next")).await;
    let (status, body) = next.expect("the next client was served").expect("a whole response");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello world!"[..]));
}

/// An upstream that answers every request with `size` bytes.
async fn sized_upstream(size: usize) -> RawUpstream {
    RawUpstream::start(move |mut c: Conn| async move {
        while c.head().await.is_some() {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
            if !(c.write(head.as_bytes()).await && c.write(&vec![b'x'; size]).await) {
                return;
            }
        }
    })
    .await
}

/// An HTTP/2 GET of `path` from a client that grants its streams no
/// window (the connection a large one).
fn without_window(path: &str) -> Vec<u8> {
    use support::h2raw;
    let mut bytes = h2raw::preface(&[(4, 0)]);
    bytes.extend(h2raw::window_update(0, 16 << 20));
    bytes.extend(h2raw::frame(h2raw::HEADERS, 0x5, 1, &h2raw::get(path)));
    bytes
}

/// GET `path` over HTTP/2 granting `grant` bytes of stream window every
/// `every`, until the response ends or 15 s pass: the bytes received, and
/// whether the stream ended. A reset fails the test.
async fn download_granting(
    gateway: &Gateway,
    path: &str,
    grant: u32,
    every: Duration,
) -> (usize, bool) {
    use support::h2raw::{self, DATA, END_STREAM, RST_STREAM};
    let mut client = TcpStream::connect(gateway.addr("public")).await.unwrap();
    client.write_all(&without_window(path)).await.unwrap();
    let (mut received, mut ended) = (0, false);
    let started = Instant::now();
    while !ended && started.elapsed() < Duration::from_secs(15) {
        client.write_all(&h2raw::window_update(1, grant)).await.unwrap();
        let deadline = Instant::now() + every;
        while let Some(frame) = h2raw::next(&mut client, deadline - Instant::now()).await {
            assert_ne!(frame.kind, RST_STREAM, "a moving download was reset at {received}");
            if frame.kind == DATA && frame.stream == 1 {
                received += frame.payload.len();
                ended = frame.flags & END_STREAM != 0;
            }
            if ended || Instant::now() >= deadline {
                break;
            }
        }
    }
    (received, ended)
}

/// An HTTP/2 client that reads slowly but steadily, granting 8 KiB every
/// 100 ms, gets the whole of a 400 KiB response however long each of the
/// upstream's frames takes it; one that grants nothing until after the
/// stall timeout gets a reset stream, never a short body that ends as if
/// it were whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_downloads_that_move_slowly_finish_and_given_up_ones_are_reset() {
    use support::h2raw::{self, DATA, END_STREAM, RST_STREAM};

    const SIZE: usize = 400 << 10;
    let upstream = sized_upstream(SIZE).await;
    let gateway = Gateway::start(&spec_with(LISTENER_STALL, &[upstream.address], "", ""));
    let slow = download_granting(&gateway, "/slow", 8 << 10, Duration::from_millis(100)).await;
    assert_eq!(slow, (SIZE, true));

    let mut late = TcpStream::connect(gateway.addr("public")).await.unwrap();
    late.write_all(&without_window("/late")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    late.write_all(&h2raw::window_update(1, 16 << 20)).await.unwrap();
    let (mut received, mut reset) = (0, false);
    while let Some(frame) = h2raw::next(&mut late, Duration::from_secs(3)).await {
        if frame.stream != 1 {
            continue;
        }
        assert!(frame.kind != DATA || frame.flags & END_STREAM == 0, "ended as whole");
        received += if frame.kind == DATA { frame.payload.len() } else { 0 };
        if frame.kind == RST_STREAM {
            reset = true;
            break;
        }
    }
    assert!(reset && received < SIZE, "received {received} bytes, reset: {reset}");
}

/// An HTTP/2 client that opens its window a little at a time, 6 KiB every
/// 200 ms against a 300 ms stall clock, keeps moving and gets the whole
/// response, although it never takes a full 16 KiB frame within the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_reader_taking_a_few_kib_at_a_time_is_not_cut() {
    const SIZE: usize = 48 << 10;
    let upstream = sized_upstream(SIZE).await;
    let gateway = Gateway::start(&spec_with(LISTENER_STALL, &[upstream.address], "", ""));
    let trickle = download_granting(&gateway, "/trickle", 6 << 10, Duration::from_millis(200));
    assert_eq!(trickle.await, (SIZE, true));
}

/// An HTTP/2 client that resets its stream in the middle of a response
/// whose upstream has gone quiet releases that upstream connection at
/// once, not at the pool's stall timeout (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_reset_mid_response_releases_the_upstream() {
    use support::h2raw::{self, RST_STREAM};

    let upstream = RawUpstream::start(|mut c: Conn| async move {
        if c.head().await.is_some() {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
            if c.write(head.as_bytes()).await && c.write(&[b'x'; 1000]).await {
                // Quiet, until the gateway closes the connection.
                c.closed_within(Duration::from_secs(30)).await;
            }
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let mut client = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let mut bytes = h2raw::preface(&[]);
    bytes.extend(h2raw::frame(h2raw::HEADERS, 0x5, 1, &h2raw::get("/quiet")));
    client.write_all(&bytes).await.unwrap();
    while let Some(frame) = h2raw::next(&mut client, Duration::from_secs(3)).await {
        if frame.kind == h2raw::DATA && frame.stream == 1 {
            break;
        }
    }
    client.write_all(&h2raw::frame(RST_STREAM, 0, 1, &[0, 0, 0, 0x8])).await.unwrap();
    let reset = Instant::now();
    while upstream.finished() < 1 {
        assert!(reset.elapsed() < Duration::from_secs(3), "the upstream connection is held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that closes its connection in the middle of a response whose
/// upstream has gone quiet frees that upstream connection at once, on the
/// gateway's own HTTP/1.1 server (a GET) as on hyper's (a POST), not at the
/// pool's stall timeout (a minute here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_response_releases_the_upstream() {
    let upstream = RawUpstream::start(|mut c: Conn| async move {
        if let Some(head) = c.head().await {
            let length = header(&head, "content-length").and_then(|v| v.parse().ok());
            if c.body(length.unwrap_or(0)).await.is_none() {
                return;
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
            if c.write(head.as_bytes()).await && c.write(&[b'x'; 1000]).await {
                // Quiet, until the gateway closes the connection.
                c.closed_within(Duration::from_secs(30)).await;
            }
        }
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let requests: [&[u8]; 2] = [
        b"GET /quiet HTTP/1.1\r\nHost: x.test\r\n\r\n",
        b"POST /quiet HTTP/1.1\r\nHost: x.test\r\nContent-Length: 1\r\n\r\nx",
    ];
    for (n, request) in requests.into_iter().enumerate() {
        let mut client = TcpStream::connect(gateway.addr("public")).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut first = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(3), client.read(&mut first)).await;
        assert!(matches!(read, Ok(Ok(n)) if n > 0), "no response began");
        drop(client);
        let left = Instant::now();
        while upstream.finished() < n + 1 {
            assert!(left.elapsed() < Duration::from_secs(3), "request {n}: the upstream is held");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
