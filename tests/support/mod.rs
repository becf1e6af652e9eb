//! Shared harness for the end-to-end tests: upstream HTTP servers on
//! ephemeral loopback ports, the `sluice` binary as a child process, and an
//! HTTP client. Everything listens on and talks to 127.0.0.1 only.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod h2c;
pub mod h2raw;
pub mod node;
pub mod raw;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// How long to wait for the gateway to announce its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A request as an upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body_len: u64,
    pub body_fnv: u64,
    /// The trailer section of a chunked body, when one arrived.
    pub trailers: Option<HeaderMap>,
}

/// An HTTP/1.1 server on `127.0.0.1:0` that records every request and
/// answers `200` with its own name as the body, after an optional delay.
pub struct Upstream {
    pub name: String,
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Upstream::with_delay(name, Duration::ZERO).await
    }

    /// An upstream that waits `delay` after reading a request before answering.
    pub async fn with_delay(name: &str, delay: Duration) -> Upstream {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
        let address = socket.local_addr().expect("a bound socket has an address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, label) = (Arc::clone(&seen), name.to_owned());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else { continue };
                let (log, label) = (Arc::clone(&log), label.clone());
                let service = service_fn(move |request| {
                    answer(Arc::clone(&log), label.clone(), delay, request)
                });
                tokio::spawn(async move {
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Upstream { name: name.to_owned(), address, seen, task }
    }

    /// Requests received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until at least `n` requests have arrived (bodies may still be streaming).
    pub async fn wait_for(&self, n: usize) {
        let arrived = || self.seen.lock().unwrap().len() >= n;
        let arrived = eventually(Duration::from_secs(10), arrived).await;
        assert!(arrived, "upstream {} never saw {n} requests", self.name);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    log: Arc<Mutex<Vec<Seen>>>,
    name: String,
    delay: Duration,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, mut body) = request.into_parts();
    let index = {
        let mut log = log.lock().unwrap();
        log.push(Seen {
            method: parts.method.to_string(),
            target: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            headers: parts.headers.clone(),
            body_len: 0,
            body_fnv: FNV_OFFSET,
            trailers: None,
        });
        log.len() - 1
    };

    // Hash the body as it streams in.
    let (mut len, mut hash, mut trailers) = (0u64, FNV_OFFSET, None);
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            len += data.len() as u64;
            hash = fnv1a(hash, data);
        }
        if let Some(fields) = frame.trailers_ref() {
            trailers = Some(fields.clone());
        }
    }
    {
        let mut log = log.lock().unwrap();
        log[index].body_len = len;
        log[index].body_fnv = hash;
        log[index].trailers = trailers;
    }

    tokio::time::sleep(delay).await;
    Ok(Response::new(Full::new(Bytes::from(name))))
}

/// How often [`eventually`] tries its check again.
const POLL: Duration = Duration::from_millis(5);

/// Try `check` every few milliseconds until it holds or `limit` has passed;
/// whether it held. A caller asserts on the answer, with a message that can
/// show the state it found when time ran out.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    eventually_async(limit, || std::future::ready(check())).await
}

/// [`eventually`] for a check that has to wait for its answer (a request
/// through the gateway, say).
pub async fn eventually_async<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Send with `send` again while the answer is a 503 and `deadline` has not
/// passed; the last answer. For a gateway whose breaker slot comes back a
/// moment after the connection that held it has closed.
pub async fn retry_503<F, Fut>(deadline: Instant, mut send: F) -> (StatusCode, String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, String)>,
{
    let last = Mutex::new(None);
    let limit = deadline.saturating_duration_since(Instant::now());
    eventually_async(limit, || {
        let (reply, last) = (send(), &last);
        async move {
            let reply = reply.await;
            let unavailable = reply.0 == StatusCode::SERVICE_UNAVAILABLE;
            *last.lock().unwrap() = Some(reply);
            !unavailable
        }
    })
    .await;
    last.into_inner().unwrap().expect("eventually checks at least once")
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `hash` over `data`.
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for &byte in data {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A loopback port that was free a moment ago (bound, then released), for
/// a server to bind later. Another test may take it meanwhile; for a port
/// that must refuse connections, use [`closed_port`].
pub fn free_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    socket.local_addr().expect("a bound socket has an address")
}

/// A loopback port that refuses connections: bound and never listened on.
/// The socket stays open for the rest of the test process, so that no
/// other test's server, binding an ephemeral port meanwhile, can take the
/// port and answer (or hang) in its place.
pub fn closed_port() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind on loopback");
    let address = socket.local_addr().expect("a bound socket has an address");
    std::mem::forget(socket);
    address
}

/// `sluice serve` running as a child process on a spec written to a temporary directory.
pub struct Gateway {
    child: Child,
    listeners: HashMap<String, SocketAddr>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Gateway {
    /// Write `spec` to a file and serve it with two workers and the access log on stdout.
    pub fn start(spec: &str) -> Gateway {
        Gateway::start_with(spec, &["--access-log", "stdout"])
    }

    /// Like [`Gateway::start`], with extra `sluice serve` options; two
    /// workers unless they say `--workers`.
    pub fn start_with(spec: &str, options: &[&str]) -> Gateway {
        Gateway::start_under(&[], spec, options)
    }

    /// Like [`Gateway::start_with`], run by the program and arguments of
    /// `wrapper`, which end by running the command line that follows them.
    pub fn start_under(wrapper: &[&str], spec: &str, options: &[&str]) -> Gateway {
        let dir = temp_dir();
        let path = dir.join("spec.yaml");
        std::fs::write(&path, spec).expect("write the spec");
        Gateway::launch(wrapper, dir, &path, spec.matches("bind:").count(), options)
    }

    /// Serve the spec at `path`, laid out by the caller in `dir` (a
    /// [`temp_dir`], removed with the gateway), which binds `listeners`
    /// listeners, with extra `sluice serve` options.
    pub fn serve_file(dir: PathBuf, path: &Path, listeners: usize, options: &[&str]) -> Gateway {
        Gateway::launch(&[], dir, path, listeners, options)
    }

    fn launch(
        wrapper: &[&str],
        dir: PathBuf,
        path: &Path,
        listeners: usize,
        options: &[&str],
    ) -> Gateway {
        let workers: &[&str] =
            if options.contains(&"--workers") { &[] } else { &["--workers", "2"] };
        let sluice = env!("CARGO_BIN_EXE_sluice");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(sluice);
                command
            }
            None => Command::new(sluice),
        };
        let mut child = command
            .arg("serve")
            .args(workers)
            .args(options)
            .arg(path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the sluice binary");

        // Collect both streams on threads so the child never blocks on a full pipe.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines_rx) = mpsc::channel();
        collect(child.stdout.take().expect("stdout is piped"), Arc::clone(&stdout), None);
        collect(child.stderr.take().expect("stderr is piped"), Arc::clone(&stderr), Some(lines_tx));

        let mut gateway = Gateway { child, listeners: HashMap::new(), stdout, stderr, dir };
        gateway.await_listeners(listeners, lines_rx);
        gateway
    }

    fn await_listeners(&mut self, expected: usize, lines: mpsc::Receiver<String>) {
        let deadline = Instant::now() + START_TIMEOUT;
        while self.listeners.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some((name, address)) = parse_listening(&line) {
                        self.listeners.insert(name, address);
                    }
                }
                Err(_) => panic!(
                    "sluice did not announce {expected} listeners; stderr:\n{}",
                    self.stderr().join("\n")
                ),
            }
        }
    }

    /// The bound address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGINT to the child, by its process id.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Send SIGTERM to the child, by its process id.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Send SIGHUP (reload) to the child, by its process id.
    pub fn hangup(&self) {
        self.signal("HUP");
    }

    /// The spec file the gateway serves, for rewriting before a reload.
    pub fn spec_path(&self) -> PathBuf {
        self.dir.join("spec.yaml")
    }

    /// Stderr lines so far that contain `text`.
    pub fn count_stderr(&self, text: &str) -> usize {
        self.stderr.lock().unwrap().iter().filter(|l| l.contains(text)).count()
    }

    /// Wait until stderr has at least `n` lines containing `text`.
    pub fn wait_stderr(&self, text: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count_stderr(text) < n {
            assert!(
                Instant::now() < deadline,
                "stderr never had {n} lines with {text:?}:\n{}",
                self.stderr().join("\n")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// [`Gateway::wait_stderr`] from a test on tokio's multi-threaded
    /// runtime, for up to 10 s: the wait blocks this worker thread only,
    /// and the tasks on it (the test's upstreams) move to another meanwhile.
    pub fn wait_log(&self, text: &str, n: usize) {
        self.wait_log_within(text, n, Duration::from_secs(10));
    }

    /// [`Gateway::wait_log`] for up to `limit`.
    pub fn wait_log_within(&self, text: &str, n: usize, limit: Duration) {
        tokio::task::block_in_place(|| self.wait_stderr(text, n, limit));
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait for the child to exit, failing the test after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit within {timeout:?}; stderr:\n{}",
                self.stderr().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lines written to stdout so far (the access log).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Kill by the child handle (its PID), then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    forward: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(forward) = &forward {
                let _ = forward.send(line.clone());
            }
            into.lock().unwrap().push(line);
        }
    });
}

/// Parse `listening listener=NAME addr=IP:PORT`.
fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let rest = line.strip_prefix("listening ")?;
    let mut name = None;
    let mut address = None;
    for field in rest.split_whitespace() {
        if let Some(v) = field.strip_prefix("listener=") {
            name = Some(v.to_owned());
        } else if let Some(v) = field.strip_prefix("addr=") {
            address = v.parse().ok();
        }
    }
    Some((name?, address?))
}

/// A fresh directory under cargo's scratch space for integration tests.
pub fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sluice-e2e-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// An HTTP/1.1 client with a keep-alive pool, for bodies of type `B`.
pub fn client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 client connection to `address`, with prior knowledge; the
/// connection is driven on a task of its own.
pub async fn h2c_sender<B>(address: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(address).await.expect("connect on loopback");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// Send `request` and read the whole response.
pub async fn send<B>(client: &Client<HttpConnector, B>, request: Request<B>) -> Reply
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = client.request(request).await.expect("the gateway answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("read the response body").to_bytes();
    Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

/// A bodiless request to `gateway` with the given method, Host and path.
pub fn request(method: &str, gateway: SocketAddr, host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{gateway}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// A request body of `total` bytes of a repeating pattern, produced in
/// `chunk`-sized frames with no declared length, so it travels chunked.
pub struct PatternBody {
    sent: usize,
    total: usize,
    chunk: usize,
}

impl PatternBody {
    pub fn new(total: usize, chunk: usize) -> PatternBody {
        PatternBody { sent: 0, total, chunk }
    }

    /// The bytes this body produces, for computing the expected checksum.
    pub fn byte(at: usize) -> u8 {
        (at % 251) as u8
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent == self.total {
            return Poll::Ready(None);
        }
        let end = (self.sent + self.chunk).min(self.total);
        let data: Vec<u8> = (self.sent..end).map(PatternBody::byte).collect();
        self.sent = end;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Send `bytes` on a new connection to `address` and read until the peer
/// closes it. Returns what came back, lossily as text. Panics when the
/// connection is still open after 5 s, so that every caller also shows the
/// connection was closed (a request that would keep it open says
/// `Connection: close`).
pub async fn raw(address: SocketAddr, bytes: &[u8]) -> String {
    let (response, closed) = raw_for(address, bytes, Duration::from_secs(5)).await;
    assert!(closed, "the connection was still open after 5 s; it sent {response:?}");
    response
}

/// What came back within `limit`, and whether the peer closed by then.
async fn raw_for(address: SocketAddr, bytes: &[u8], limit: Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect on loopback");
    stream.write_all(bytes).await.expect("write the raw request");
    let mut response = Vec::new();
    let closed = tokio::time::timeout(limit, stream.read_to_end(&mut response)).await.is_ok();
    (String::from_utf8_lossy(&response).into_owned(), closed)
}

/// Read `stream` until the gateway closes it; what arrived, lossily as
/// text, and how long that took. Panics when it is still open after `limit`.
pub async fn until_closed<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    limit: Duration,
) -> (String, Duration) {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
            Err(_) => panic!("the connection was still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

/// Two requests for `/t` on `x.test` from a client that takes trailers
/// (`TE: trailers`), each on a connection of its own: a GET, which the
/// gateway's own HTTP/1.1 server serves, and a POST with a body, which
/// hyper's serves.
pub const TAKING_TRAILERS: [&str; 2] = [
    "GET /t HTTP/1.1\r\nHost: x.test\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    "POST /t HTTP/1.1\r\nHost: x.test\r\nTE: trailers\r\nConnection: close\r\n\
     Content-Length: 1\r\n\r\nx",
];

/// The status codes of every response head in `text`, in order.
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// A request as a [`ScriptedUpstream`] read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request line and header fields, as received.
    pub head: String,
    pub body: Vec<u8>,
    /// Which connection it came on (0 for the first accepted), and its place there.
    pub connection: usize,
    pub index_on_connection: usize,
}

impl RawRequest {
    pub fn method(&self) -> &str {
        self.head.split(' ').next().unwrap_or("")
    }

    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    /// The first value of header `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What a [`ScriptedUpstream`] does with a request.
pub enum Answer {
    /// Write these bytes and keep the connection open.
    Send(Vec<u8>),
    /// Write these bytes, then close.
    SendAndClose(Vec<u8>),
    /// Close the connection without answering.
    Close,
}

impl Answer {
    /// `200 OK` with `body` and a Content-Length, keeping the connection.
    pub fn ok(body: &str) -> Answer {
        Answer::Send(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes(),
        )
    }
}

type Script = dyn Fn(&RawRequest) -> Answer + Send + Sync;

/// An upstream over raw TCP on `127.0.0.1:0` that answers each request as a
/// script says, for misbehaviour a real server would not produce. It reads
/// bodies framed by Content-Length, and chunked bodies up to their last chunk.
pub struct ScriptedUpstream {
    pub address: SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedUpstream {
    /// Start it; with `idle_close`, a connection idle that long is closed.
    pub async fn start(
        idle_close: Option<Duration>,
        script: impl Fn(&RawRequest) -> Answer + Send + Sync + 'static,
    ) -> ScriptedUpstream {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
        let address = socket.local_addr().expect("a bound socket has an address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (log, count) = (Arc::clone(&requests), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else { continue };
                let connection = count.fetch_add(1, Ordering::SeqCst);
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                tokio::spawn(scripted_connection(stream, connection, idle_close, log, script));
            }
        });
        ScriptedUpstream { address, requests, connections, task }
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted_connection(
    mut stream: tokio::net::TcpStream,
    connection: usize,
    idle_close: Option<Duration>,
    log: Arc<Mutex<Vec<RawRequest>>>,
    script: Arc<Script>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer: Vec<u8> = Vec::new();
    let mut index = 0;
    loop {
        // Read one request: a head, then its body.
        let head_end = loop {
            if let Some(at) = find(&buffer, b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let read = match idle_close {
                Some(idle) if buffer.is_empty() => {
                    match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                        Ok(read) => read,
                        Err(_) => return,
                    }
                }
                _ => stream.read(&mut chunk).await,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut request =
            RawRequest { head, body: Vec::new(), connection, index_on_connection: index };
        let body_end = loop {
            let rest = &buffer[head_end..];
            let end = if request.header("transfer-encoding").is_some() {
                find(rest, b"0\r\n\r\n").map(|at| at + 5)
            } else {
                let length: usize =
                    request.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                (rest.len() >= length).then_some(length)
            };
            if let Some(end) = end {
                break head_end + end;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        request.body = buffer[head_end..body_end].to_vec();
        buffer.drain(..body_end);
        index += 1;
        log.lock().unwrap().push(request.clone());

        match script(&request) {
            Answer::Send(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Answer::SendAndClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
            Answer::Close => return,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A loopback address whose accept queue is full, so connecting to it hangs
/// until the connector gives up. Keep the returned guard alive while in use.
pub fn blackhole() -> (SocketAddr, Vec<std::net::TcpStream>, tokio::net::TcpListener) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind on loopback");
    let listener = socket.listen(0).expect("listen with a backlog of 0");
    let address = listener.local_addr().expect("a bound socket has an address");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => return (address, fillers, listener),
        }
    }
    panic!("the accept queue of {address} never filled up");
}

/// A spec with listener `public` on an ephemeral port, pool `backend` over
/// `endpoints`, and route `all` for every path. Each `*_extra` is YAML lines
/// (indented by four spaces) added to the listener, pool or route.
pub fn spec_with(
    listener_extra: &str,
    endpoints: &[SocketAddr],
    pool_extra: &str,
    route_extra: &str,
) -> String {
    let endpoints: String =
        endpoints.iter().map(|a| format!("      - address: \"{a}\"\n")).collect();
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
{listener_extra}pools:
  - name: backend
    endpoints:
{endpoints}{pool_extra}routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: backend
{route_extra}"
    )
}

/// A body that yields the given frames (data and trailers) in order.
pub struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl Frames {
    pub fn new(frames: Vec<Frame<Bytes>>) -> Frames {
        Frames(frames.into())
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}
