//! Stub upstreams: tiny HTTP servers that describe the request they received.
//!
//! `sluice demo` starts one on every endpoint address of a plan, so a spec can
//! be tried without its real services. Each answers `200` with a JSON object:
//!
//! ```json
//! {"pool":"contacts","endpoint":"127.0.0.1:9101","method":"GET",
//!  "path":"/v1/contacts/7?full=1","host":"api.example.test",
//!  "x_forwarded_for":"127.0.0.1","x_forwarded_proto":"http",
//!  "x_forwarded_host":"api.example.test","body_bytes":0}
//! ```
//!
//! A `delay_ms=N` query parameter (at most 60000) makes the stub wait that
//! long before answering, to try out route timeouts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Longest delay a stub accepts.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// What a stub reports about the request it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// Name the stub was started with: the pool (or pools) it stands in for.
    pub pool: String,
    /// The stub's own address.
    pub endpoint: String,
    pub method: String,
    /// Path and query as received.
    pub path: String,
    pub host: Option<String>,
    pub x_forwarded_for: Option<String>,
    pub x_forwarded_proto: Option<String>,
    pub x_forwarded_host: Option<String>,
    /// Length of the request body.
    pub body_bytes: u64,
}

/// A running stub upstream. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct Stub {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Stub {
    /// Bind `address` and answer every request with an [`Echo`] naming `pool`.
    /// Call from within a tokio runtime.
    pub async fn start(address: SocketAddr, pool: impl Into<String>) -> std::io::Result<Stub> {
        let socket = TcpListener::bind(address).await?;
        let address = socket.local_addr()?;
        let identity = Arc::new((pool.into(), address.to_string()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let identity = Arc::clone(&identity);
                let service = service_fn(move |request| answer(Arc::clone(&identity), request));
                tokio::spawn(async move {
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Stub { address, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    identity: Arc<(String, String)>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut echo = Echo {
        pool: identity.0.clone(),
        endpoint: identity.1.clone(),
        method: request.method().to_string(),
        path: request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        host: header("host"),
        x_forwarded_for: header("x-forwarded-for"),
        x_forwarded_proto: header("x-forwarded-proto"),
        x_forwarded_host: header("x-forwarded-host"),
        body_bytes: 0,
    };
    let delay = delay(request.uri().query());

    // Count the body as it streams in, without keeping it.
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                echo.body_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Err(_) => break,
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let json = serde_json::to_vec(&echo).expect("an echo holds only strings and numbers");
    let mut response = Response::new(Full::new(Bytes::from(json)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The `delay_ms` query parameter, capped at [`MAX_DELAY`].
fn delay(query: Option<&str>) -> Duration {
    let millis = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("delay_ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_millis(millis).min(MAX_DELAY)
}
