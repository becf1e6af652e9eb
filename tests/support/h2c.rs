//! Upstreams that speak only HTTP/2 with prior knowledge (h2c), as gRPC
//! services do: a connection that opens with anything but the HTTP/2
//! preface (an HTTP/1.1 request, say) is closed unanswered.
//!
//! [`serve`] answers each request as a test says; [`H2Recorder`] keeps
//! every request, body and trailers included; [`H2cUpstream`] keeps the
//! path of each and answers with a status for it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::eventually;

/// An h2c server on `127.0.0.1:0` that answers every request with what
/// `answer` makes of it: its address, and the task that accepts its
/// connections (abort it to stop taking new ones).
pub async fn serve<F, Fut, B>(answer: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
    let address = socket.local_addr().expect("a bound socket has an address");
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = socket.accept().await else { continue };
            let answer = Arc::clone(&answer);
            let service = service_fn(move |request| {
                let answering = answer(request);
                async move { Ok::<_, Infallible>(answering.await) }
            });
            tokio::spawn(async move {
                let serving = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service);
                let _ = serving.await;
            });
        }
    });
    (address, task)
}

/// A request as an [`H2Recorder`] read it, its body to the end.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    /// The body's data, up to its end or the first error.
    pub body: Vec<u8>,
    /// Its trailer fields, when it ended with some.
    pub trailers: Option<HeaderMap>,
}

/// An h2c upstream on `127.0.0.1:0` that reads each request's body to its
/// end, records the request, then answers with what `answer` makes of it.
pub struct H2Recorder {
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl H2Recorder {
    pub async fn start<B>(answer: impl Fn(&Recorded) -> Response<B> + Send + Sync + 'static) -> Self
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, answer) = (Arc::clone(&seen), Arc::new(answer));
        let (address, task) = serve(move |request: Request<Incoming>| {
            let (log, answer) = (Arc::clone(&log), Arc::clone(&answer));
            async move {
                let (parts, mut body) = request.into_parts();
                let mut got = Recorded {
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body: Vec::new(),
                    trailers: None,
                };
                while let Some(Ok(frame)) = body.frame().await {
                    match frame.into_data() {
                        Ok(data) => got.body.extend_from_slice(&data),
                        Err(frame) => got.trailers = frame.into_trailers().ok(),
                    }
                }
                let response = answer(&got);
                log.lock().unwrap().push(got);
                response
            }
        })
        .await;
        H2Recorder { address, seen, task }
    }

    /// Requests recorded so far, in the order their bodies ended.
    pub fn seen(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    /// The first request recorded for `path`; fails the test if none was.
    pub fn request(&self, path: &str) -> Recorded {
        let seen = self.seen.lock().unwrap();
        let found = seen.iter().find(|r| r.path == path).cloned();
        found.unwrap_or_else(|| panic!("no request for {path} reached the upstream"))
    }
}

impl Drop for H2Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The status an [`H2cUpstream`] answers a path with.
pub type StatusFor = fn(&str) -> u16;

/// A request as an [`H2cUpstream`] received it.
#[derive(Debug, Clone)]
pub struct H2cSeen {
    pub path: String,
    pub user_agent: Option<String>,
    /// `Some(n)` once a body of `n` bytes ended cleanly, `None` when it
    /// broke off (or is still coming).
    pub body_len: Option<usize>,
}

/// An h2c-only upstream on `127.0.0.1:0`. Each request has its body read
/// whole, then is answered with the status `status` gives for its path
/// (read when the request comes, so a test can change it) and the
/// upstream's name as the body.
pub struct H2cUpstream {
    pub name: String,
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<H2cSeen>>>,
    status: Arc<Mutex<StatusFor>>,
    task: tokio::task::JoinHandle<()>,
}

impl H2cUpstream {
    /// An upstream that answers every request 200.
    pub async fn start(name: &str) -> H2cUpstream {
        H2cUpstream::answering(name, |_| 200).await
    }

    pub async fn answering(name: &str, status: StatusFor) -> H2cUpstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(status));
        let (log, answer, label) = (Arc::clone(&seen), Arc::clone(&status), name.to_owned());
        let (address, task) = serve(move |request| {
            respond(Arc::clone(&log), *answer.lock().unwrap(), label.clone(), request)
        })
        .await;
        H2cUpstream { name: name.to_owned(), address, seen, status, task }
    }

    /// Answer from now on with the status `status` gives for each path.
    pub fn answer_with(&self, status: StatusFor) {
        *self.status.lock().unwrap() = status;
    }

    /// Requests received so far, in arrival order.
    pub fn seen(&self) -> Vec<H2cSeen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests received so far for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|seen| seen.path == path).count()
    }

    /// Wait, at most `limit`, until `n` requests for `path` have come.
    pub async fn wait_for(&self, path: &str, n: usize, limit: Duration) {
        assert!(
            eventually(limit, || self.count(path) >= n).await,
            "upstream {} saw {} requests for {path} in {limit:?}, not {n}",
            self.name,
            self.count(path)
        );
    }
}

impl Drop for H2cUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(
    log: Arc<Mutex<Vec<H2cSeen>>>,
    status: StatusFor,
    name: String,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let user_agent =
        parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let index = {
        let mut log = log.lock().unwrap();
        log.push(H2cSeen { path: path.clone(), user_agent, body_len: None });
        log.len() - 1
    };
    let body = body.collect().await.ok().map(|body| body.to_bytes().len());
    log.lock().unwrap()[index].body_len = body;
    let mut response = Response::new(Full::new(Bytes::from(name)));
    *response.status_mut() = StatusCode::from_u16(status(&path)).unwrap_or(StatusCode::OK);
    response
}
