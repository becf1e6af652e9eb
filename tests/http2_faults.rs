//! HTTP/2 variants of fault kinds covered for HTTP/1.1: host and
//! `:authority` matching (K4, B15 to B17), request trailers (K5, B24), a
//! `content-length` that disagrees with the DATA sent (K6), 204 and 304
//! responses (K7, B32), route and per-try timeouts, connections the
//! upstream closes and connections left idle (K8, B34 and B37), and reload
//! and drain with a stream in flight (K13, B51 and B54). Each runs with an
//! HTTP/2 client (prior knowledge, cleartext), an HTTP/2 pool, or both.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use support::h2raw::stream_outcome;
use support::{eventually, h2raw, raw, statuses, Answer, Frames, Gateway, ScriptedUpstream};

/// Which protocol a pool, or a test's client, speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
}

impl Proto {
    /// The pool's `protocol` line, if it needs one.
    fn pool_line(self) -> &'static str {
        match self {
            Proto::Http1 => "",
            Proto::Http2 => "    protocol: http2\n",
        }
    }
}

/// A request as a [`Backend`] received it.
#[derive(Debug, Clone, Default)]
struct Got {
    /// The target's authority: HTTP/2's `:authority`, or none for an
    /// origin-form HTTP/1.1 target.
    authority: Option<String>,
    /// Every `Host` field.
    hosts: Vec<String>,
    path: String,
    body: Vec<u8>,
    /// `Some(true)` once the body ended as its framing says it should,
    /// `Some(false)` when it broke off, `None` while it is still coming.
    ended: Option<bool>,
    trailers: Option<HeaderMap>,
}

impl Got {
    /// The host the upstream would serve the request for: `:authority`
    /// when there is one, as HTTP/2 servers read it, else `Host`.
    fn effective_host(&self) -> Option<&str> {
        self.authority.as_deref().or(self.hosts.first().map(String::as_str))
    }
}

/// An upstream on `127.0.0.1:0`, HTTP/1.1 or HTTP/2 (prior knowledge), that
/// records every request and, once it has read the body, answers:
/// - `/status/NNN...`: status NNN with no body (and an `ETag` for 304),
///   ended after the head when the path ends in `/late`;
/// - `/held...`: `200` with its name, once the test releases it;
/// - anything else: `200` with its name.
struct Backend {
    address: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    release: Arc<Semaphore>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// Requests in flight on one upstream connection, and when the last ended.
struct Activity {
    active: AtomicUsize,
    since: Mutex<Instant>,
}

impl Backend {
    async fn start(proto: Proto, name: &'static str) -> Backend {
        Backend::start_with(proto, name, None).await
    }

    /// With `idle_close`, an HTTP/2 connection without a request in flight
    /// for that long is shut down gracefully (GOAWAY, then closed).
    async fn start_with(proto: Proto, name: &'static str, idle_close: Option<Duration>) -> Backend {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
        let address = socket.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Semaphore::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, gate, count) = (Arc::clone(&got), Arc::clone(&release), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (log, gate) = (Arc::clone(&log), Arc::clone(&gate));
                let activity = Arc::new(Activity {
                    active: AtomicUsize::new(0),
                    since: Mutex::new(Instant::now()),
                });
                let counted = Arc::clone(&activity);
                let service = service_fn(move |request| {
                    let (log, gate, counted) =
                        (Arc::clone(&log), Arc::clone(&gate), Arc::clone(&counted));
                    counted.active.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let answer = backend_answer(name, log, gate, request).await;
                        *counted.since.lock().unwrap() = Instant::now();
                        counted.active.fetch_sub(1, Ordering::SeqCst);
                        answer
                    }
                });
                let io = TokioIo::new(stream);
                tokio::spawn(async move {
                    if proto == Proto::Http1 {
                        let serving = hyper::server::conn::http1::Builder::new();
                        let _ = serving.serve_connection(io, service).await;
                        return;
                    }
                    let serving = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service);
                    let mut serving = std::pin::pin!(serving);
                    let Some(idle) = idle_close else {
                        let _ = serving.await;
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = serving.as_mut() => return,
                            () = tokio::time::sleep(idle / 4) => {}
                        }
                        let quiet = activity.active.load(Ordering::SeqCst) == 0
                            && activity.since.lock().unwrap().elapsed() >= idle;
                        if quiet {
                            serving.as_mut().graceful_shutdown();
                            let _ = serving.await;
                            return;
                        }
                    }
                });
            }
        });
        Backend { address, got, release, connections, task }
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until `n` requests have arrived (their bodies may still be coming).
    async fn wait_for(&self, n: usize) {
        let arrived = || self.got.lock().unwrap().len() >= n;
        assert!(
            eventually(Duration::from_secs(5), arrived).await,
            "the upstream never saw {n} requests"
        );
    }

    /// Let `n` held requests be answered.
    fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn backend_answer(
    name: &'static str,
    log: Arc<Mutex<Vec<Got>>>,
    release: Arc<Semaphore>,
    request: Request<Incoming>,
) -> Result<Response<Either<Full<Bytes>, Frames>>, Infallible> {
    let (parts, mut body) = request.into_parts();
    let got = Got {
        authority: parts.uri.authority().map(ToString::to_string),
        hosts: parts.headers.get_all("host").iter().map(|v| v.to_str().unwrap().into()).collect(),
        path: parts.uri.path().to_owned(),
        ..Got::default()
    };
    let index = {
        let mut log = log.lock().unwrap();
        log.push(got);
        log.len() - 1
    };
    let ended = loop {
        match body.frame().await {
            None => break true,
            Some(Err(_)) => break false,
            Some(Ok(frame)) => {
                let mut log = log.lock().unwrap();
                match frame.into_data() {
                    Ok(data) => log[index].body.extend_from_slice(&data),
                    Err(frame) => log[index].trailers = frame.into_trailers().ok(),
                }
            }
        }
    };
    log.lock().unwrap()[index].ended = Some(ended);

    let path = parts.uri.path();
    if path.starts_with("/held") {
        release.acquire().await.expect("the semaphore stays open").forget();
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code[..3].parse().unwrap()).unwrap();
        // A body that says it has ended goes in the head's frame (HTTP/2:
        // HEADERS with END_STREAM); one that does not is ended after it.
        let body = match code.ends_with("/late") {
            true => Either::Right(Frames::new(Vec::new())),
            false => Either::Left(Full::new(Bytes::new())),
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        if status == StatusCode::NOT_MODIFIED {
            response.headers_mut().insert("etag", HeaderValue::from_static("\"v1\""));
        }
        return Ok(response);
    }
    Ok(Response::new(Either::Left(Full::new(Bytes::from(name)))))
}

/// A spec with listener `public` and the given pools and routes (YAML
/// list items, each line indented by two spaces).
fn spec(pools: &str, routes: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
pools:
{pools}routes:
{routes}"
    )
}

/// A pool item named `name` over `endpoints`, with `extra` lines.
fn pool(name: &str, endpoints: &[SocketAddr], extra: &str) -> String {
    let endpoints: Vec<String> =
        endpoints.iter().map(|a| format!("{{ address: \"{a}\" }}")).collect();
    format!("  - name: {name}\n    endpoints: [{}]\n{extra}", endpoints.join(", "))
}

/// One HTTP/2 connection to the gateway, with prior knowledge; requests on
/// it name their authority in their URI.
async fn h2_connect(address: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(address).await.expect("connect to the gateway");
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/2 handshake with the gateway");
    tokio::spawn(connection);
    sender
}

/// A response over HTTP/2, read to its end.
#[derive(Debug)]
struct H2Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl H2Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("(not UTF-8)")
    }
}

/// A bodiless GET of `http://{authority}{path}` on `sender`, with the
/// extra header fields `fields`, read to its end within 5 s.
async fn h2_get(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> H2Reply {
    h2_get_in("http", sender, authority, path, fields).await
}

/// [`h2_get`] with `:scheme` `scheme` (on the same cleartext connection).
async fn h2_get_in(
    scheme: &str,
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> H2Reply {
    let target = format!("{scheme}://{authority}{path}");
    let mut request = Request::get(target).version(Version::HTTP_2);
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let exchange = async {
        sender.ready().await.expect("the connection takes another stream");
        let response = sender.send_request(request).await.expect("the gateway answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the whole response body").to_bytes();
        H2Reply { status: parts.status, headers: parts.headers, body }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {authority}{path} within 5 s"))
}

// K4 -------------------------------------------------------------------

/// K4 (B15 to B17) over HTTP/2: `:authority` matches a route's host as
/// `Host` does for HTTP/1.1, whatever its letter case, with the default or
/// another port, and with one trailing dot; two dots or another name match
/// nothing. The upstream is asked for the host the client named, as it was
/// written, in `Host` from an HTTP/1.1 pool and in both `:authority` and
/// any `Host` from an HTTP/2 pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authority_matches_hosts_across_case_port_and_trailing_dot() {
    for proto in [Proto::Http1, Proto::Http2] {
        let api = Backend::start(proto, "api").await;
        let other = Backend::start(proto, "other").await;
        let pools = pool("api", &[api.address], proto.pool_line())
            + &pool("other", &[other.address], proto.pool_line());
        let routes =
            "  - { name: api, match: { host: api.example.test, path: \"/who/{n}\" }, to: api }
  - { name: wild, match: { host: \"*.wild.example.test\", path: \"/who/{n}\" }, to: other }
";
        let gateway = Gateway::start(&spec(&pools, routes));
        let mut h2 = h2_connect(gateway.addr("public")).await;

        let matching = [
            ("api.example.test", "api"),
            ("API.Example.TEST", "api"),
            ("api.example.test:80", "api"),
            ("api.example.test.", "api"),
            ("Api.Example.Test.:8443", "api"),
            ("a.b.WILD.example.test.", "other"),
        ];
        for (n, (authority, backend)) in matching.iter().enumerate() {
            let reply = h2_get(&mut h2, authority, &format!("/who/{n}"), &[]).await;
            assert_eq!(reply.status, StatusCode::OK, "{proto:?} {authority}");
            assert_eq!(reply.text(), *backend, "{proto:?} {authority}");
            let got = if *backend == "api" { api.got() } else { other.got() };
            let got = got.iter().find(|g| g.path == format!("/who/{n}")).expect("forwarded");
            assert_eq!(got.effective_host(), Some(*authority), "{proto:?}: {got:?}");
            assert!(got.hosts.iter().all(|h| h == authority), "{proto:?}: {got:?}");
        }
        for authority in
            ["api.example.test..", "api.example.test.x", "example.test", "wild.example.test"]
        {
            let reply = h2_get(&mut h2, authority, "/who/x", &[]).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{proto:?} {authority}");
        }
        assert_eq!(api.got().len() + other.got().len(), matching.len());
    }
}

/// RFC 9113, section 8.3.1: an HTTP/2 request whose `Host` field names
/// another host than its `:authority` is malformed. The gateway refuses it
/// with 400 rather than route on one and forward the other; a `Host` that
/// names the same host in another spelling (case, the default port, a
/// trailing dot) is the same request. A request without `:authority` (as a
/// translated HTTP/1.1 request may come) is routed by its `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_field_that_contradicts_the_authority_is_refused() {
    for proto in [Proto::Http1, Proto::Http2] {
        let api = Backend::start(proto, "api").await;
        let admin = Backend::start(proto, "admin").await;
        let pools = pool("api", &[api.address], proto.pool_line())
            + &pool("admin", &[admin.address], proto.pool_line());
        let routes =
            "  - { name: api, match: { host: api.example.test, path: \"/{*rest}\" }, to: api }
  - { name: admin, match: { host: admin.example.test, path: \"/{*rest}\" }, to: admin }
";
        let gateway = Gateway::start(&spec(&pools, routes));
        let mut h2 = h2_connect(gateway.addr("public")).await;

        for (authority, host) in
            [("api.example.test", "admin.example.test"), ("admin.example.test", "api.example.test")]
        {
            let reply = h2_get(&mut h2, authority, "/x", &[("host", host)]).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{proto:?} {authority} {host}");
        }
        assert!(api.got().is_empty() && admin.got().is_empty(), "{proto:?}: forwarded");

        for (authority, host) in [
            ("api.example.test", "api.example.test"),
            ("api.example.test", "API.example.test:80"),
            ("api.example.test:80", "api.example.test."),
        ] {
            let reply = h2_get(&mut h2, authority, "/same", &[("host", host)]).await;
            assert_eq!((reply.status, reply.text()), (StatusCode::OK, "api"), "{host}");
            let got = api.got().pop().unwrap();
            assert_eq!(got.effective_host(), Some(authority), "{proto:?}: {got:?}");
            assert!(got.hosts.iter().all(|h| h == authority), "{proto:?}: {got:?}");
        }
        assert!(admin.got().is_empty());

        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        let fields = h2raw::get_with_host_field("/no-authority", "admin.example.test");
        let open = h2raw::frame(h2raw::HEADERS, h2raw::END_HEADERS | h2raw::END_STREAM, 1, &fields);
        stream.write_all(&[h2raw::preface(&[]), open].concat()).await.unwrap();
        let outcome = stream_outcome(&mut stream).await;
        assert_eq!((outcome.status, outcome.ended), (Some(200), true), "{proto:?}: {outcome:?}");
        let got = admin.got().pop().expect("routed by its Host");
        assert_eq!(got.effective_host(), Some("admin.example.test"), "{proto:?}: {got:?}");
    }
}

/// The port a `Host` field without one names is its scheme's default
/// (RFC 9110, section 4.2): 443 for `https`, 80 for `http`. So `:scheme
/// https` with `:authority api.example.test:443` and `host:
/// api.example.test` (as a client that fills in both may send) is one
/// host, and is served; a `host` without a port beside `:authority` port
/// 80 under `https`, or port 443 under `http`, names another and is
/// refused, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_a_port_means_the_default_port_of_the_scheme() {
    let api = Backend::start(Proto::Http1, "api").await;
    let routes =
        "  - { name: api, match: { host: api.example.test, path: \"/{*rest}\" }, to: api }\n";
    let gateway = Gateway::start(&spec(&pool("api", &[api.address], ""), routes));
    let mut h2 = h2_connect(gateway.addr("public")).await;

    let cases = [
        ("https", "api.example.test:443", "api.example.test", StatusCode::OK),
        ("https", "api.example.test", "api.example.test:443", StatusCode::OK),
        ("https", "api.example.test:0443", "api.example.test:", StatusCode::OK),
        ("https", "api.example.test:8443", "api.example.test:8443", StatusCode::OK),
        ("https", "api.example.test:80", "api.example.test", StatusCode::BAD_REQUEST),
        ("https", "api.example.test", "api.example.test:80", StatusCode::BAD_REQUEST),
        ("http", "api.example.test:80", "api.example.test", StatusCode::OK),
        ("http", "api.example.test", "api.example.test:80", StatusCode::OK),
        ("http", "api.example.test:443", "api.example.test", StatusCode::BAD_REQUEST),
        ("http", "api.example.test", "api.example.test:443", StatusCode::BAD_REQUEST),
    ];
    for (n, (scheme, authority, host, status)) in cases.into_iter().enumerate() {
        let path = format!("/{n}");
        let reply = h2_get_in(scheme, &mut h2, authority, &path, &[("host", host)]).await;
        let case = format!("{scheme}, :authority {authority}, host {host}");
        assert_eq!(reply.status, status, "{case}: {}", reply.text());
        let got = api.got().into_iter().find(|g| g.path == path);
        match status {
            StatusCode::OK => {
                assert_eq!(reply.text(), "api", "{case}");
                let got = got.unwrap_or_else(|| panic!("{case}: not forwarded"));
                assert_eq!(got.hosts, [authority], "{case}");
            }
            _ => assert!(got.is_none(), "{case}: forwarded: {got:?}"),
        }
    }
}

/// RFC 9113, section 8.2.1: an HTTP/2 field value with whitespace (SP or
/// HTAB) at either end is malformed. Over HTTP/1.1 the parser strips it as
/// optional whitespace, so `x-tenant: internal ` meets the route condition
/// `exact: internal`; over HTTP/2 the same value would miss it, fall to
/// another route, and still reach an HTTP/1.1 service that reads it as
/// `internal`. The gateway answers such a stream 400, whichever field
/// carries the padding (`host` too), forwards nothing, and serves the next
/// streams of the connection as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_field_values_padded_with_whitespace_are_refused() {
    let internal = Backend::start(Proto::Http1, "internal").await;
    let public = Backend::start(Proto::Http1, "public").await;
    let pools = pool("internal", &[internal.address], "") + &pool("public", &[public.address], "");
    let routes = "  - name: internal
    match: { path: \"/{*rest}\", headers: [{ name: x-tenant, exact: internal }] }
    to: internal
  - { name: public, match: { path: \"/{*rest}\" }, to: public }
";
    let gateway = Gateway::start(&spec(&pools, routes));

    // HTTP/1.1 strips the padding, and the condition holds.
    let request = "GET /h1 HTTP/1.1\r\nHost: x.test\r\nx-tenant: internal \r\n\
                   Connection: close\r\n\r\n";
    let response = raw(gateway.addr("public"), request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "{response}");
    assert!(response.ends_with("internal"), "{response}");

    let mut h2 = h2_connect(gateway.addr("public")).await;
    let padded: [&[(&str, &str)]; 6] = [
        &[("x-tenant", "internal ")],
        &[("x-tenant", "\tinternal")],
        &[("x-tenant", " internal\t")],
        &[("x-tenant", "internal"), ("x-other", "value ")],
        &[("x-tenant", "internal"), ("host", " x.test")],
        &[("host", "x.test\t")],
    ];
    for fields in padded {
        let reply = h2_get(&mut h2, "x.test", "/padded", fields).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{fields:?}: {}", reply.text());
        assert!(reply.text().contains("whitespace"), "{fields:?}: {}", reply.text());
    }
    // The connection goes on: the same fields without padding are served.
    let reply = h2_get(&mut h2, "x.test", "/plain", &[("x-tenant", "internal")]).await;
    assert_eq!((reply.status, reply.text()), (StatusCode::OK, "internal"));
    let reply = h2_get(&mut h2, "x.test", "/other", &[("x-tenant", "in ternal")]).await;
    assert_eq!((reply.status, reply.text()), (StatusCode::OK, "public"));

    let paths = |backend: &Backend| backend.got().into_iter().map(|g| g.path).collect::<Vec<_>>();
    assert_eq!(paths(&internal), ["/h1", "/plain"]);
    assert_eq!(paths(&public), ["/other"]);
}

// K5 -------------------------------------------------------------------

/// B24 across protocols: an HTTP/1.1 client's chunked trailer section
/// reaches an HTTP/2 pool as HTTP/2 trailers, less the fields the
/// gateway's header rules govern; an HTTP/2 client's trailers do not reach
/// an HTTP/1.1 pool at all (the gateway drops them there, as it drops an
/// HTTP/1.1 client's), while its body arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_cross_protocols_as_the_pool_allows() {
    // HTTP/1.1 client, HTTP/2 pool.
    let h2_pool = Backend::start(Proto::Http2, "h2").await;
    let gateway = Gateway::start(&spec(
        &pool("h2", &[h2_pool.address], Proto::Http2.pool_line()),
        "  - { name: all, match: { path: \"/{*rest}\" }, to: h2 }\n",
    ));
    let request = "POST /t HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\
                   Trailer: x-checksum, x-forwarded-for\r\nConnection: close\r\n\r\n\
                   5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\
                   x-forwarded-for: 198.51.100.1\r\ncontent-length: 1\r\n\r\n";
    let response = raw(gateway.addr("public"), request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "{response}");
    let got = &h2_pool.got()[0];
    assert_eq!((&got.body[..], got.ended), (&b"hello world"[..], Some(true)), "{got:?}");
    let trailers = got.trailers.as_ref().expect("the trailers reach the HTTP/2 pool");
    assert_eq!(trailers["x-checksum"], "abc");
    assert!(!trailers.contains_key("x-forwarded-for"), "{trailers:?}");
    assert!(!trailers.contains_key("content-length"), "{trailers:?}");

    // HTTP/2 client, HTTP/1.1 pool.
    let h1_pool = Backend::start(Proto::Http1, "h1").await;
    let gateway = Gateway::start(&spec(
        &pool("h1", &[h1_pool.address], ""),
        "  - { name: all, match: { path: \"/{*rest}\" }, to: h1 }\n",
    ));
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    trailers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
    let frames = vec![
        Frame::data(Bytes::from_static(b"hello")),
        Frame::data(Bytes::from_static(b" world")),
        Frame::trailers(trailers),
    ];
    let request = Request::post("http://x.test/t")
        .version(Version::HTTP_2)
        .header("te", "trailers")
        .body(Frames::new(frames))
        .unwrap();
    let stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("an answer within 5 s")
        .expect("the gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    let got = &h1_pool.got()[0];
    assert_eq!((&got.body[..], got.ended), (&b"hello world"[..], Some(true)), "{got:?}");
    assert!(got.trailers.is_none(), "trailers reached the HTTP/1.1 pool: {got:?}");
}

// K6 -------------------------------------------------------------------

/// K6 over HTTP/2 (RFC 9113, section 8.1.1): a request whose
/// `content-length` disagrees with the DATA it carries is malformed and is
/// never forwarded as if whole. More DATA than declared, in one frame or
/// after the declared length was reached (even with a pause between, while
/// the upstream waits), and less, ending early in a frame of its own or
/// with the last data: the upstream never sees a complete body (what
/// reached it is broken off, not left waiting), and the client gets a
/// stream error (its connection goes on) or 400, never the upstream's
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_that_disagrees_with_the_data_is_not_forwarded_whole() {
    use h2raw::{DATA, END_HEADERS, END_STREAM, HEADERS};
    type Step = (u8, &'static [u8], u64);
    // Each case: the declared length, then DATA frames (flags, payload,
    // pause in ms after it).
    let cases: [(&str, u64, &[Step]); 5] = [
        ("more in one frame", 5, &[(END_STREAM, b"helloworld", 0)]),
        ("more after the length", 5, &[(0, b"hello", 0), (END_STREAM, b"world", 0)]),
        ("more after a pause", 5, &[(0, b"hello", 300), (END_STREAM, b"world", 0)]),
        ("fewer, then an empty end", 10, &[(0, b"hello", 300), (END_STREAM, b"", 0)]),
        ("fewer, ending with the data", 10, &[(END_STREAM, b"hello", 0)]),
    ];
    for proto in [Proto::Http1, Proto::Http2] {
        let backend = Backend::start(proto, "upstream").await;
        let gateway = Gateway::start(&spec(
            &pool("backend", &[backend.address], proto.pool_line()),
            "  - { name: all, match: { path: \"/{*rest}\" }, to: backend }\n",
        ));
        for (case, declared, steps) in cases {
            let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
            let path = format!("/{}", case.replace([' ', ','], "-"));
            let head = h2raw::frame(HEADERS, END_HEADERS, 1, &h2raw::post(&path, declared));
            stream.write_all(&[h2raw::preface(&[]), head].concat()).await.unwrap();
            for &(flags, payload, pause) in steps {
                stream.write_all(&h2raw::frame(DATA, flags, 1, payload)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let outcome = stream_outcome(&mut stream).await;
            let refused = outcome.reset.is_some() || outcome.status == Some(400);
            assert!(
                refused,
                "{proto:?}, {case}: the client saw {outcome:?}; upstream: {:?}",
                backend.got()
            );
            assert_ne!(outcome.status, Some(200), "{proto:?}, {case}: {outcome:?}");
            assert!(!outcome.goaway, "{proto:?}, {case}: a connection error: {outcome:?}");

            // What reached the upstream, if anything, was broken off.
            let seen = || backend.got().into_iter().filter(|g| g.path == path);
            eventually(Duration::from_secs(5), || seen().all(|g| g.ended.is_some())).await;
            for got in seen() {
                assert_eq!(got.ended, Some(false), "{proto:?}, {case}: {got:?}");
            }
        }
    }
}

/// K6 for a declared length of 0 (RFC 9113, section 8.1.1): a request
/// whose HEADERS say `content-length: 0` without ending the stream is not
/// whole until the stream ends, since DATA may still follow and make it
/// malformed. The gateway waits for the end before it forwards anything:
/// DATA that comes instead, at once or after a pause, is answered 400 (or
/// the stream is reset) and nothing reaches the upstream, so the client
/// never sees a 200 for a request that a retry would then send again. A
/// stream that ends with an empty DATA frame, or with trailers, is served;
/// one that never ends is given up after the listener's `stall_timeout`,
/// also without reaching the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_declared_body_is_forwarded_only_once_its_stream_ends() {
    use h2raw::{DATA, END_HEADERS, END_STREAM, HEADERS};
    // `x-checksum: abc`, a literal without indexing and with a new name.
    let trailers: Vec<u8> = [&[0x00, 10][..], b"x-checksum", &[3], b"abc"].concat();
    for proto in [Proto::Http1, Proto::Http2] {
        let backend = Backend::start(proto, "upstream").await;
        let listener = "    stall_timeout: 400ms\n";
        let gateway = Gateway::start(&support::spec_with(
            listener,
            &[backend.address],
            proto.pool_line(),
            "",
        ));
        let open = |path: &str| {
            let head = h2raw::frame(HEADERS, END_HEADERS, 1, &h2raw::post(path, 0));
            [h2raw::preface(&[]), head].concat()
        };

        for delay in [0, 50, 200] {
            let path = format!("/data-after-{delay}ms");
            let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
            stream.write_all(&open(&path)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(delay)).await;
            stream.write_all(&h2raw::frame(DATA, END_STREAM, 1, b"hello")).await.unwrap();
            let outcome = stream_outcome(&mut stream).await;
            let refused = outcome.reset.is_some() || outcome.status == Some(400);
            assert!(refused, "{proto:?}, {path}: {outcome:?}");
            assert_ne!(outcome.status, Some(200), "{proto:?}, {path}: {outcome:?}");
            assert!(!outcome.goaway, "{proto:?}, {path}: a connection error: {outcome:?}");
        }

        // A stream that never ends is given up on the listener's clock.
        let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
        stream.write_all(&open("/never-ends")).await.unwrap();
        let began = Instant::now();
        let outcome = stream_outcome(&mut stream).await;
        assert_eq!(outcome.status, Some(408), "{proto:?}: {outcome:?}");
        assert!(began.elapsed() < Duration::from_secs(3), "{proto:?}: {:?}", began.elapsed());

        // Streams that end with nothing more are served, whole.
        let endings = [
            ("/empty-data", h2raw::frame(DATA, END_STREAM, 1, b"")),
            ("/trailers", h2raw::frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers)),
        ];
        for (path, end) in endings {
            let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
            stream.write_all(&open(path)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.write_all(&end).await.unwrap();
            let outcome = stream_outcome(&mut stream).await;
            assert_eq!((outcome.status, outcome.ended), (Some(200), true), "{proto:?}, {path}");
        }

        // Only those reached the upstream, with an empty body that ended.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = backend.got();
        let paths: Vec<&str> = got.iter().map(|g| g.path.as_str()).collect();
        assert_eq!(paths, ["/empty-data", "/trailers"], "{proto:?}: {got:?}");
        for got in &got {
            assert_eq!((got.body.len(), got.ended), (0, Some(true)), "{proto:?}: {got:?}");
        }
    }
}

// K7 -------------------------------------------------------------------

/// K7 (B32, T7.2) to an HTTP/2 client from an HTTP/1.1 upstream: 204 (no
/// length), 304 (with the representation's length, and no body) and a 204
/// followed by stray bytes each end at once, with no body, and the next
/// stream on the same connection gets its own answer intact; the upstream
/// connection that sent stray bytes is not used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_statuses_reach_http2_clients_without_a_body_from_http1_upstreams() {
    let upstream = ScriptedUpstream::start(None, |request| match request.target() {
        "/204" => Answer::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/304" => Answer::Send(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 42\r\n\r\n".to_vec(),
        ),
        "/204-stray" => Answer::Send(b"HTTP/1.1 204 No Content\r\n\r\nJUNK".to_vec()),
        other => Answer::ok(other),
    })
    .await;
    let gateway = Gateway::start(&support::spec_with("", &[upstream.address], "", ""));
    let mut h2 = h2_connect(gateway.addr("public")).await;

    for (path, status) in [("/204", 204), ("/304", 304), ("/204-stray", 204)] {
        let reply = h2_get(&mut h2, "x.test", path, &[]).await;
        assert_eq!(reply.status.as_u16(), status, "{path}");
        assert!(reply.body.is_empty(), "{path}: a body leaked: {:?}", reply.body);
        if status == 304 {
            assert_eq!(reply.headers["etag"], "\"v1\"");
        }
        let after = format!("/after{path}");
        let reply = h2_get(&mut h2, "x.test", &after, &[]).await;
        assert_eq!((reply.status, reply.text()), (StatusCode::OK, after.as_str()), "{path}");
    }
    let requests = upstream.requests();
    let on = |target: &str| requests.iter().find(|r| r.target() == target).unwrap().connection;
    assert_ne!(
        on("/204-stray"),
        on("/after/204-stray"),
        "a connection with stray bytes was reused"
    );
}

/// K7 (B32) from an HTTP/2 upstream: 204 and 304, whether the upstream
/// ends the stream with the head or in a DATA frame after it, reach an
/// HTTP/2 client with no body and at once, and an HTTP/1.1 client without a
/// body or chunk framing, so that its next response on the connection
/// reads true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_statuses_from_http2_upstreams_reach_both_kinds_of_client() {
    let backend = Backend::start(Proto::Http2, "h2").await;
    let gateway =
        Gateway::start(&support::spec_with("", &[backend.address], Proto::Http2.pool_line(), ""));
    let mut h2 = h2_connect(gateway.addr("public")).await;
    let paths = ["/status/204", "/status/204/late", "/status/304", "/status/304/late"];
    for path in paths {
        let reply = h2_get(&mut h2, "x.test", path, &[]).await;
        assert_eq!(reply.status.as_str(), &path[8..11]);
        assert!(reply.body.is_empty(), "{path}: {:?}", reply.body);
        let reply = h2_get(&mut h2, "x.test", "/next", &[]).await;
        assert_eq!((reply.status, reply.text()), (StatusCode::OK, "h2"));
    }

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let mut requests: String =
        paths.iter().map(|path| format!("GET {path} HTTP/1.1\r\nHost: x.test\r\n\r\n")).collect();
    requests.push_str("GET /last HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n");
    stream.write_all(requests.as_bytes()).await.unwrap();
    let (response, _) = support::until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(statuses(&response), [204, 204, 304, 304, 200], "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(!lower.contains("transfer-encoding"), "{response}");
    // Each bodiless head is followed straight by the next response.
    assert!(response.contains("\r\n\r\nHTTP/1.1 304"), "{response}");
    assert!(response.contains("\r\n\r\nHTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nh2"), "{response}");
}

// K8 -------------------------------------------------------------------

/// Send a bodiless GET for `path` over `client` (HTTP/1.1 on a new
/// connection, or on the HTTP/2 connection `h2`); the status and body.
async fn get_over(
    client: Proto,
    h2: &mut SendRequest<Full<Bytes>>,
    gateway: SocketAddr,
    path: &str,
) -> (StatusCode, String) {
    match client {
        Proto::Http2 => {
            let reply = h2_get(h2, "x.test", path, &[]).await;
            (reply.status, reply.text().to_owned())
        }
        Proto::Http1 => {
            let request = support::request("GET", gateway, "x.test", path);
            let http = support::client();
            let exchange = support::send(&http, request);
            let reply = tokio::time::timeout(Duration::from_secs(5), exchange)
                .await
                .unwrap_or_else(|_| panic!("no answer to {path} within 5 s"));
            (reply.status, reply.body)
        }
    }
}

/// K8 (B37) with HTTP/2 on either side: a route's `timeout` answers 504
/// when the upstream never does, and a try that outlasts
/// `retries.per_try_timeout` is given up and retried on the other
/// endpoint, which answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_and_per_try_timeouts_hold_over_http2() {
    let combinations =
        [(Proto::Http2, Proto::Http1), (Proto::Http1, Proto::Http2), (Proto::Http2, Proto::Http2)];
    for (client, pool_proto) in combinations {
        let stuck = Backend::start(pool_proto, "stuck").await;
        let live = Backend::start(pool_proto, "live").await;
        let pools = pool("stuck", &[stuck.address], pool_proto.pool_line())
            + &pool("pair", &[stuck.address, live.address], pool_proto.pool_line());
        let routes = "  - name: timed
    match: { path: \"/held/timed\" }
    to: stuck
    timeout: 300ms
  - name: retried
    match: { path: \"/held/{n}\" }
    to: pair
    timeout: 4s
    retries: { attempts: 2, on: [timeout], per_try_timeout: 500ms, backoff: { base: 0ms, max: 0ms } }
    retry_budget: { percent: 100 }
";
        let gateway = Gateway::start(&spec(&pools, routes));
        let address = gateway.addr("public");
        let mut h2 = h2_connect(address).await;
        let case = format!("{client:?} client, {pool_proto:?} pool");

        let (status, body) = get_over(client, &mut h2, address, "/held/timed").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{case}: {body:?}");
        assert_eq!(stuck.got().len(), 1, "{case}");

        // Round robin sends every other first try to the stuck endpoint.
        live.release(4);
        for n in 0..4 {
            let (status, body) = get_over(client, &mut h2, address, &format!("/held/{n}")).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "live"), "{case}, {n}");
        }
        let retried = stuck.got().len() - 1;
        assert!(retried >= 1, "{case}: the stuck endpoint was never tried");
        assert_eq!(live.got().len(), 4, "{case}");
    }
}

/// K8 (B34) with an HTTP/2 pool, and how it holds its connections:
/// requests in flight to an endpoint at once share one connection; an
/// endpoint that refuses connections is failed over, at once for the
/// requests that waited on the refused attempt; a connection idle for the
/// pool's `idle_timeout` is closed and the next request opens another; and
/// when the upstream closes its idle connections (GOAWAY) long before the
/// pool would, each next request, POST as well as GET, goes on a new one
/// and none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pools_share_connections_and_replace_idle_and_closed_ones() {
    let backend = Backend::start(Proto::Http2, "shared").await;
    let refused = support::closed_port();
    let gateway = Gateway::start(&spec(
        &pool("p", &[refused, backend.address], "    protocol: http2\n    idle_timeout: 300ms\n"),
        "  - { name: all, match: { path: \"/{*rest}\" }, to: p }\n",
    ));
    let address = gateway.addr("public");
    let sends: Vec<_> = (0..4)
        .map(|n| {
            let request = support::request("GET", address, "x.test", &format!("/held/{n}"));
            tokio::spawn(async move { support::send(&support::client(), request).await })
        })
        .collect();
    backend.wait_for(4).await;
    assert_eq!(backend.connections(), 1, "requests at once share one connection");
    backend.release(4);
    for send in sends {
        let reply = tokio::time::timeout(Duration::from_secs(5), send).await.unwrap().unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "shared"));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reply =
        support::send(&support::client(), support::request("GET", address, "x.test", "/idle"))
            .await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "shared"));
    assert_eq!(backend.connections(), 2, "a connection idle for idle_timeout is not used again");

    let closing =
        Backend::start_with(Proto::Http2, "closing", Some(Duration::from_millis(100))).await;
    let gateway =
        Gateway::start(&support::spec_with("", &[closing.address], Proto::Http2.pool_line(), ""));
    let address = gateway.addr("public");
    for n in 0..4 {
        let method = if n % 2 == 0 { "GET" } else { "POST" };
        let request = support::request(method, address, "x.test", &format!("/{n}"));
        let reply = support::send(&support::client(), request).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "closing"),
            "{method} {n}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(closing.connections(), 4, "each request after a GOAWAY opens a connection");
}

/// K8 with an HTTP/2 pool whose streams outlast its `idle_timeout`: the
/// clock counts from when the connection's last stream ended, not from
/// when a request last took it. A stream answered after 500 ms, against an
/// `idle_timeout` of 200 ms, keeps its connection, which the next request
/// uses; once no stream has been in flight for 400 ms, the next request
/// opens a new connection. Streams that end otherwise, given up at the
/// route's timeout or reset by their client, end as well, and leave their
/// connection to idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_idles_only_once_its_last_stream_has_ended() {
    let backend = Backend::start(Proto::Http2, "long").await;
    let routes = "  - { name: timed, match: { path: \"/held/timed\" }, to: p, timeout: 100ms }
  - { name: all, match: { path: \"/{*rest}\" }, to: p }
";
    let gateway = Gateway::start(&spec(
        &pool("p", &[backend.address], "    protocol: http2\n    idle_timeout: 200ms\n"),
        routes,
    ));
    let address = gateway.addr("public");
    let get = move |path: &str| {
        let request = support::request("GET", address, "x.test", path);
        async move {
            let client = support::client();
            tokio::time::timeout(Duration::from_secs(5), support::send(&client, request))
                .await
                .expect("an answer within 5 s")
        }
    };

    let long = tokio::spawn(get("/held/long"));
    backend.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    backend.release(1);
    let reply = long.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "long"));
    let reply = get("/right-after").await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "long"));
    assert_eq!(backend.connections(), 1, "the connection of a long stream was not used again");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = get("/after-idle").await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "long"));
    assert_eq!(backend.connections(), 2, "a connection idle for idle_timeout was used again");

    let reply = get("/held/timed").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    let mut h2 = h2_connect(address).await;
    let left = tokio::spawn(async move { h2_get(&mut h2, "x.test", "/held/left", &[]).await });
    backend.wait_for(5).await;
    left.abort();
    assert_eq!(backend.connections(), 2, "{:?}", backend.got());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reply = get("/after-errors").await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "long"));
    assert_eq!(backend.connections(), 3, "a stream that failed was still counted in flight");
}

// K13 ------------------------------------------------------------------

/// K13 (B51) with an HTTP/2 client: while one stream waits on its
/// upstream, a reload (SIGHUP) moves the route to another pool and drops
/// the pool the stream went to. The stream in flight finishes on the plan
/// it started with; a new stream on the same connection is routed by the
/// new plan. With HTTP/1.1 pools and with HTTP/2 pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_leaves_http2_streams_in_flight_and_routes_new_ones_by_the_new_plan() {
    for proto in [Proto::Http1, Proto::Http2] {
        let old = Backend::start(proto, "old").await;
        let new = Backend::start(proto, "new").await;
        let old_pool = pool("old", &[old.address], proto.pool_line());
        let new_pool = pool("new", &[new.address], proto.pool_line());
        let route = |to: &str| {
            format!("  - {{ name: all, match: {{ path: \"/{{*rest}}\" }}, to: {to} }}\n")
        };
        let gateway = Gateway::start(&spec(&(old_pool + &new_pool), &route("old")));
        let mut h2 = h2_connect(gateway.addr("public")).await;

        let mut first = h2.clone();
        let in_flight =
            tokio::spawn(async move { h2_get(&mut first, "x.test", "/held/1", &[]).await });
        old.wait_for(1).await;

        std::fs::write(gateway.spec_path(), spec(&new_pool, &route("new"))).unwrap();
        gateway.hangup();
        gateway.wait_log_within("plan reloaded", 1, Duration::from_secs(5));

        let reply = h2_get(&mut h2, "x.test", "/after", &[]).await;
        assert_eq!((reply.status, reply.text()), (StatusCode::OK, "new"), "{proto:?}");
        assert!(!in_flight.is_finished(), "{proto:?}: the held stream was answered early");
        old.release(1);
        let reply = in_flight.await.unwrap();
        assert_eq!((reply.status, reply.text()), (StatusCode::OK, "old"), "{proto:?}");
        assert_eq!(old.got().len(), 1, "{proto:?}");
    }
}

/// K13 (B54) with an HTTP/2 client: on SIGTERM the client is told GOAWAY
/// at once, while its stream is still in flight; the connection stays open
/// for that stream (held here by its upstream for half a second), which
/// then finishes with the upstream's answer; the connection closes, and the
/// process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_goaway_and_lets_the_http2_stream_in_flight_finish() {
    let backend = Backend::start(Proto::Http1, "drained").await;
    let mut gateway = Gateway::start(&support::spec_with("", &[backend.address], "", ""));

    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let open = h2raw::frame(
        h2raw::HEADERS,
        h2raw::END_HEADERS | h2raw::END_STREAM,
        1,
        &h2raw::get("/held"),
    );
    stream.write_all(&[h2raw::preface(&[]), open].concat()).await.unwrap();
    backend.wait_for(1).await;
    gateway.terminate();

    // GOAWAY comes while the stream waits on its upstream.
    let mut before = Vec::new();
    let goaway = loop {
        let frame = h2raw::next(&mut stream, Duration::from_secs(5))
            .await
            .expect("a GOAWAY within 5 s of SIGTERM");
        if frame.kind == h2raw::PING && frame.flags & h2raw::ACK == 0 {
            stream.write_all(&h2raw::ping_ack(&frame.payload)).await.unwrap();
        }
        if frame.kind == h2raw::GOAWAY {
            break frame;
        }
        before.push((frame.kind, frame.stream));
    };
    let last_stream = u32::from_be_bytes(goaway.payload[..4].try_into().unwrap()) & 0x7fff_ffff;
    assert!(last_stream >= 1, "the GOAWAY gives up stream 1: {goaway:?}");
    let held = tokio::time::Instant::now() + Duration::from_millis(500);
    let left = || held.saturating_duration_since(tokio::time::Instant::now());
    while let Some(frame) = h2raw::next(&mut stream, left()).await {
        if frame.kind == h2raw::PING && frame.flags & h2raw::ACK == 0 {
            stream.write_all(&h2raw::ping_ack(&frame.payload)).await.unwrap();
        }
        before.push((frame.kind, frame.stream));
    }
    assert!(before.iter().all(|&(_, id)| id != 1), "stream 1 was answered early: {before:?}");

    backend.release(1);
    let outcome = stream_outcome(&mut stream).await;
    assert_eq!((outcome.status, outcome.ended, outcome.reset), (Some(200), true, None));
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = h2raw::next(&mut stream, Duration::from_secs(10)).await {
            if frame.kind == h2raw::PING && frame.flags & h2raw::ACK == 0 {
                let _ = stream.write_all(&h2raw::ping_ack(&frame.payload)).await;
            }
        }
    });
    closed.await.expect("the gateway closes the connection within 5 s");
    let status = gateway.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", gateway.stderr().join("\n"));
}
