//! Shared harness for the end-to-end tests: upstream HTTP servers on
//! ephemeral loopback ports, the `sluice` binary as a child process, and an
//! HTTP client. Everything listens on and talks to 127.0.0.1 only.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.seen.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "upstream {} never saw {n} requests", self.name);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
        });
        log.len() - 1
    };

    // Hash the body as it streams in.
    let (mut len, mut hash) = (0u64, FNV_OFFSET);
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            len += data.len() as u64;
            hash = fnv1a(hash, data);
        }
    }
    {
        let mut log = log.lock().unwrap();
        log[index].body_len = len;
        log[index].body_fnv = hash;
    }

    tokio::time::sleep(delay).await;
    Ok(Response::new(Full::new(Bytes::from(name))))
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

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    socket.local_addr().expect("a bound socket has an address")
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

    /// Like [`Gateway::start`], with extra `sluice serve` options.
    pub fn start_with(spec: &str, options: &[&str]) -> Gateway {
        let dir = temp_dir();
        let path = dir.join("spec.yaml");
        std::fs::write(&path, spec).expect("write the spec");

        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--workers", "2"])
            .args(options)
            .arg(&path)
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
        gateway.await_listeners(spec.matches("bind:").count(), lines_rx);
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
