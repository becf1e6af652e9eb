//! HTTP/2 pools and an endpoint's own limit on concurrent streams
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`). An endpoint whose connection is at
//! its limit is busy, not failing: the gateway opens another connection to
//! it (within the pool's `max_connections`), and a request that could get
//! no stream within its try's time was never sent, so it is not held
//! against the endpoint.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use support::{eventually, Gateway, Reply};

/// How long the upstream holds its answer to `/hold`.
const HOLD: Duration = Duration::from_millis(700);

/// An h2c upstream on `127.0.0.1:0` that lets each connection carry at
/// most `streams` streams at once. It answers `/hold` after [`HOLD`] and
/// any other path at once, with `c{N}` as the body, N the connection's
/// number in accept order (from 1).
struct Busy {
    address: SocketAddr,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
    /// Requests that arrived so far, on any connection.
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Busy {
    async fn start(streams: u32) -> Busy {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
        let address = socket.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (accepted, arrived) = (Arc::clone(&connections), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else { continue };
                let number = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let arrived = Arc::clone(&arrived);
                let service = service_fn(move |request: Request<Incoming>| {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if request.uri().path() == "/hold" {
                            tokio::time::sleep(HOLD).await;
                        }
                        let body = Full::new(Bytes::from(format!("c{number}")));
                        Ok::<_, Infallible>(Response::new(body))
                    }
                });
                tokio::spawn(async move {
                    let serving = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(streams)
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = serving.await;
                });
            }
        });
        Busy { address, connections, requests, task }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Wait, at most 5 s, until `n` requests have arrived.
    async fn wait_for(&self, n: usize) {
        let arrived = || self.requests.load(Ordering::SeqCst) >= n;
        assert!(eventually(Duration::from_secs(5), arrived).await, "{n} requests never arrived");
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// GET `path` through `gateway`, within 5 s.
async fn get(gateway: &Gateway, path: &str) -> Reply {
    let request = support::request("GET", gateway.addr("public"), "x.test", path);
    let client = support::client();
    let exchange = support::send(&client, request);
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path} within 5 s"))
}

/// GET `/hold` through `gateway` on a task of its own.
fn hold(gateway: &Arc<Gateway>) -> tokio::task::JoinHandle<Reply> {
    let gateway = Arc::clone(gateway);
    tokio::spawn(async move { get(&gateway, "/hold").await })
}

/// A pool of one endpoint, `busy`, speaking HTTP/2, whose outlier
/// detection ejects it on its first failure: any try held against it is
/// logged.
fn spec(busy: &Busy, pool_extra: &str) -> String {
    let pool = format!(
        "    protocol: http2\n    outlier_detection: {{ consecutive_failures: 1, base_ejection: 10s, max_ejection_percent: 100 }}\n{pool_extra}"
    );
    support::spec_with("", &[busy.address], &pool, "    timeout: 300ms\n")
        + "  - name: held
    match: { path: /hold }
    to: backend
    timeout: 5s
"
}

/// The endpoint allows one stream per connection and holds the first
/// request: the second does not wait for the first to end (which would
/// take it past its route's 300 ms and count as the endpoint's timeout),
/// but goes at once on a second connection to the same endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_at_its_stream_limit_is_joined_by_another() {
    let busy = Busy::start(1).await;
    let gateway = Arc::new(Gateway::start(&spec(&busy, "")));

    let first = hold(&gateway);
    busy.wait_for(1).await;
    let second = get(&gateway, "/quick").await;
    assert_eq!((second.status, second.body.as_str()), (StatusCode::OK, "c2"), "{second:?}");
    let first = first.await.unwrap();
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "c1"), "{first:?}");
    assert_eq!(busy.connections(), 2);

    // With both connections idle, the next request takes one of them.
    let third = get(&gateway, "/quick").await;
    assert_eq!(third.status, StatusCode::OK, "{third:?}");
    assert_eq!(busy.connections(), 2);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains("endpoint ejected"), "{stderr}");
}

/// With `max_connections: 1` no second connection may open: the second
/// request waits for a stream for its route's 300 ms, gets none, and is
/// answered 503 `upstream_busy`. It was never sent, so the endpoint is not
/// ejected, and takes the next request once its stream is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_got_no_stream_is_not_the_endpoints_failure() {
    let busy = Busy::start(1).await;
    let breaker = "    circuit_breaker: { max_connections: 1 }\n";
    let gateway = Arc::new(Gateway::start(&spec(&busy, breaker)));

    let first = hold(&gateway);
    busy.wait_for(1).await;
    let second = get(&gateway, "/quick").await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE, "{second:?}");
    assert_eq!(second.json()["error"], "upstream_busy", "{second:?}");
    let first = first.await.unwrap();
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "c1"), "{first:?}");

    let third = get(&gateway, "/quick").await;
    assert_eq!((third.status, third.body.as_str()), (StatusCode::OK, "c1"), "{third:?}");
    assert_eq!(busy.connections(), 1);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains("endpoint ejected"), "{stderr}");

    // The access log says why, naming the endpoint that had no stream.
    let logged = || gateway.stdout().iter().any(|line| line.contains("\"status\":503"));
    assert!(eventually(Duration::from_secs(2), logged).await, "{:?}", gateway.stdout());
    let record = gateway.stdout().into_iter().find(|line| line.contains("\"status\":503")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["endpoint"], busy.address.to_string(), "{record}");
    let reason = record["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stream"), "{record}");
}

/// A request that got no stream fails over, as one whose connect failed
/// does: with `max_connections: 2` taken by one connection to each
/// endpoint, the third request goes (in round robin) to the busy endpoint,
/// waits out its 200 ms try there, and is answered by the other endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_got_no_stream_fails_over_to_another_endpoint() {
    let busy = Busy::start(1).await;
    let free = Busy::start(100).await;
    let pool = "    balance: round_robin
    protocol: http2
    circuit_breaker: { max_connections: 2 }
    outlier_detection: { consecutive_failures: 1, base_ejection: 10s, max_ejection_percent: 100 }
";
    let route = "    timeout: 3s\n    retries: { attempts: 2, per_try_timeout: 200ms }\n";
    let spec = support::spec_with("", &[busy.address, free.address], pool, route)
        + "  - name: held
    match: { path: /hold }
    to: backend
    timeout: 5s
";
    let gateway = Arc::new(Gateway::start(&spec));

    let first = hold(&gateway);
    busy.wait_for(1).await;
    let second = get(&gateway, "/quick").await;
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    let third = get(&gateway, "/quick").await;
    assert_eq!(third.status, StatusCode::OK, "{third:?}");
    assert_eq!(first.await.unwrap().status, StatusCode::OK);

    assert_eq!(busy.requests.load(Ordering::SeqCst), 1, "the busy endpoint was sent a request");
    assert_eq!(free.requests.load(Ordering::SeqCst), 2);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains("endpoint ejected"), "{stderr}");
}

/// An endpoint that allows no stream at all (`SETTINGS_MAX_CONCURRENT_STREAMS`
/// 0) on its connection is busy, and another connection, which it would
/// answer the same way, is not a way to a stream: without a
/// `max_connections`, requests waiting for a stream must not open one
/// connection after another for as long as they wait (they opened
/// thousands in 300 ms), and are answered 503 `upstream_busy`, not 504,
/// without the endpoint being ejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_allows_no_stream_is_not_sent_a_storm_of_connections() {
    let busy = Busy::start(0).await;
    let gateway = Arc::new(Gateway::start(&spec(&busy, "")));

    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let gateway = Arc::clone(&gateway);
            tokio::spawn(async move { get(&gateway, "/quick").await })
        })
        .collect();
    for reply in waiting {
        let reply = reply.await.unwrap();
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
        assert_eq!(reply.json()["error"], "upstream_busy", "{reply:?}");
    }
    assert!(busy.connections() <= 2, "{} connections opened", busy.connections());
    assert_eq!(busy.requests.load(Ordering::SeqCst), 0);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains("endpoint ejected"), "{stderr}");
}

/// With `max_connections: 1`, a connection closed for being idle gives its
/// place back as the pool lets it go: a request that comes after the
/// connection's `idle_timeout`, and finds it expired before the pool's
/// periodic sweep has, opens the next one, and is not refused 503 because
/// the old one, which carries nothing, had not finished closing yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_for_idleness_gives_its_place_back_at_once() {
    let busy = Busy::start(100).await;
    let pool = "    circuit_breaker: { max_connections: 1 }\n    idle_timeout: 300ms\n";
    let gateway = Gateway::start(&spec(&busy, pool));

    // Idle a little longer each time, so that some requests come between
    // a connection's expiry and the sweep that would have closed it.
    for round in 0..8u64 {
        let reply = get(&gateway, "/quick").await;
        assert_eq!(reply.status, StatusCode::OK, "round {round}: {reply:?}");
        tokio::time::sleep(Duration::from_millis(310 + round * 40)).await;
    }
    assert!(busy.connections() >= 2, "no connection was closed for idleness");
}

/// An h2c upstream, written frame by frame, that allows one stream per
/// connection and answers each request 200 as soon as its HEADERS come,
/// without waiting for its body and without resetting its stream: the
/// stream stays open until the gateway has sent the whole body (RFC 9113,
/// section 8.1), and counts against the limit until then.
async fn early_answerer() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use support::h2raw::{frame, next, ACK, END_HEADERS, END_STREAM, HEADERS, SETTINGS};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
    let address = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = socket.accept().await else { continue };
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if stream.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let limit = [0, 3, 0, 0, 0, 1];
                if stream.write_all(&frame(SETTINGS, 0, 0, &limit)).await.is_err() {
                    return;
                }
                while let Some(read) = next(&mut stream, Duration::from_secs(30)).await {
                    let answer = match read.kind {
                        SETTINGS if read.flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
                        // `:status: 200`, indexed.
                        HEADERS => frame(HEADERS, END_HEADERS | END_STREAM, read.stream, &[0x88]),
                        _ => continue,
                    };
                    if stream.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, task)
}

/// A stream whose answer came while its request body was still on its way
/// is still open, and still takes the endpoint's one stream: with
/// `max_connections: 1` the next request waits for it and is answered 503
/// `upstream_busy`, not sent past the endpoint's limit to time out there
/// (504, and the endpoint ejected). Once the first body has gone, the
/// stream is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_answered_before_its_body_was_sent_holds_its_place_until_it_is() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (address, task) = early_answerer().await;
    let pool = "    protocol: http2
    circuit_breaker: { max_connections: 1 }
    outlier_detection: { consecutive_failures: 1, base_ejection: 10s, max_ejection_percent: 100 }
";
    let spec = support::spec_with("", &[address], pool, "    timeout: 300ms\n");
    let gateway = Gateway::start(&spec);

    let mut upload = tokio::net::TcpStream::connect(gateway.addr("public")).await.unwrap();
    let head = "POST /up HTTP/1.1\r\nhost: x.test\r\ncontent-length: 20\r\n\r\n0123456789";
    upload.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(2), upload.read(&mut answer)).await;
    let read = read.expect("no answer to the upload").unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&answer));

    let second = get(&gateway, "/quick").await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE, "{second:?}");
    assert_eq!(second.json()["error"], "upstream_busy", "{second:?}");

    // The rest of the body goes, and ends the stream.
    upload.write_all(b"0123456789").await.unwrap();
    let freed = || async { get(&gateway, "/quick").await.status == StatusCode::OK };
    assert!(support::eventually_async(Duration::from_secs(2), freed).await);
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains("endpoint ejected"), "{stderr}");
    task.abort();
}
