//! A controllable upstream for the traffic tests: its status and delay can
//! change, it counts requests, and it can be stopped and started again on
//! the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{client, request, send};

/// An upstream whose status and delay can change, that counts the requests
/// of each method, and that can be stopped (every connection closed) and
/// started again on the same port.
pub struct Node {
    pub address: SocketAddr,
    pub state: Arc<NodeState>,
    server: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct NodeState {
    /// Data-path requests (not health probes).
    pub requests: AtomicUsize,
    pub posts: AtomicUsize,
    pub probes: AtomicUsize,
    pub status: AtomicU16,
    pub delay_ms: AtomicU64,
    /// The status health probes get; 0 is 200.
    pub probe_status: AtomicU16,
    /// How many of the next probes get a 404 whatever `probe_status` says.
    pub failing_probes: AtomicUsize,
}

impl Node {
    pub async fn start() -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(NodeState::default());
        state.status.store(200, Ordering::Relaxed);
        let server = Some(tokio::spawn(serve(listener, Arc::clone(&state))));
        Node { address, state, server }
    }

    /// Close the listener and every open connection.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        self.server = Some(tokio::spawn(serve(listener, Arc::clone(&self.state))));
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, state: Arc<NodeState>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    // Connections live in this set, so aborting the server closes them too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move {
                    let probe = request.uri().path() == "/health";
                    if probe {
                        state.probes.fetch_add(1, Ordering::Relaxed);
                    } else {
                        state.requests.fetch_add(1, Ordering::Relaxed);
                        if request.method() == hyper::Method::POST {
                            state.posts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = request.into_body().collect().await;
                    let delay = state.delay_ms.load(Ordering::Relaxed);
                    if delay > 0 && !probe {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let failing = probe
                        && state
                            .failing_probes
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok();
                    let status = match state.probe_status.load(Ordering::Relaxed) {
                        _ if !probe => state.status.load(Ordering::Relaxed),
                        _ if failing => 404,
                        0 => 200,
                        status => status,
                    };
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    response.headers_mut().insert("x-node", port.into());
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// A spec with one listener, a pool `p` over `nodes` with `pool` settings
/// added, and a route `/{*rest}` with `route` settings added.
pub fn spec(nodes: &[&Node], weights: &[u32], pool: &str, route: &str) -> String {
    let mut endpoints = String::new();
    for (i, node) in nodes.iter().enumerate() {
        let weight = weights.get(i).copied().unwrap_or(1);
        endpoints
            .push_str(&format!("      - {{ address: \"{}\", weight: {weight} }}\n", node.address));
    }
    format!(
        "version: 1\nlisteners:\n  - {{ name: public, bind: \"127.0.0.1:0\" }}\npools:\n  - name: p\n{pool}    endpoints:\n{endpoints}routes:\n  - name: all\n    match: {{ path: \"/{{*rest}}\" }}\n    to: p\n{route}"
    )
}

pub async fn get(gateway: SocketAddr, path: &str) -> u16 {
    let reply = send(&client(), request("GET", gateway, "x.test", path)).await;
    reply.status.as_u16()
}
