//! Listeners and connections: accept, serve HTTP/1.1, drain on shutdown.
//!
//! Each listener serves at most its `max_connections` at once. At the limit
//! its accept loop waits for a connection to close, so further clients wait
//! in the kernel's accept queue (and are refused by the kernel once that is
//! full) instead of being accepted and dropped. Each connection is served by
//! [`crate::connection`], which checks its framing and keeps its clocks.
//!
//! Shutdown has two phases. First every accept loop ends, which closes the
//! listening sockets, so new connections are refused. Then every open
//! connection is told to stop: one that is mid-request finishes that request
//! and closes, an idle keep-alive connection closes at once, and so does one
//! that has not sent a request yet (hyper alone would wait for that first
//! request, and clients that pre-connect would hold the drain open).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sluice_compiler::Plan;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::access_log::AccessLogSender;
use crate::connection::{self, ClientStream, ConnectionState, Limits};
use crate::proxy::{self, Shared};
use crate::ServeError;

/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A plan with every listener bound, ready to [`run`](Gateway::run).
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Vec<Bound>,
}

struct Bound {
    index: usize,
    socket: TcpListener,
    address: SocketAddr,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished its in-flight requests and closed.
    Complete,
    /// The drain was cut short; this many connections were still open.
    Abandoned { connections: usize },
}

impl Gateway {
    /// Bind every listener of the plan. Call from within a tokio runtime.
    pub async fn bind(plan: Arc<Plan>, log: AccessLogSender) -> Result<Gateway, ServeError> {
        let mut listeners = Vec::with_capacity(plan.listeners.len());
        for (index, listener) in plan.listeners.iter().enumerate() {
            let bind_error = |source| ServeError::Bind {
                listener: listener.name.clone(),
                address: listener.bind,
                source,
            };
            let socket = TcpListener::bind(listener.bind).await.map_err(bind_error)?;
            let address = socket.local_addr().map_err(bind_error)?;
            listeners.push(Bound { index, socket, address });
        }
        Ok(Gateway { shared: Arc::new(Shared::new(plan, log)), listeners })
    }

    /// Each listener's name and the address it is bound to (with the real
    /// port when the plan asked for port 0).
    pub fn listeners(&self) -> impl Iterator<Item = (&str, SocketAddr)> + '_ {
        let plan = &self.shared.plan;
        self.listeners.iter().map(|b| (plan.listeners[b.index].name.as_str(), b.address))
    }

    /// Serve until `shutdown` completes, then close the listeners and let
    /// in-flight requests finish until they all have or `give_up` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        give_up: impl Future<Output = ()>,
    ) -> Drain {
        // Every connection task holds a receiver; the drain ends when all are gone.
        let (stop, stopping) = watch::channel(());
        let accept_loops: Vec<_> = self
            .listeners
            .into_iter()
            .map(|bound| tokio::spawn(accept(bound, Arc::clone(&self.shared), stopping.clone())))
            .collect();
        drop(stopping);

        shutdown.await;

        // Stop accepting: end the loops, which drops (closes) the sockets and
        // their receivers, so that only connections count from here on.
        for accept_loop in &accept_loops {
            accept_loop.abort();
        }
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }

        let open = stop.receiver_count();
        tracing::info!(connections = open, "draining connections");
        let _ = stop.send(());
        tokio::select! {
            () = stop.closed() => Drain::Complete,
            () = give_up => Drain::Abandoned { connections: stop.receiver_count() },
        }
    }
}

async fn accept(bound: Bound, shared: Arc<Shared>, stopping: watch::Receiver<()>) {
    let listener = &shared.plan.listeners[bound.index];
    let max_head = usize::try_from(listener.max_head_size).unwrap_or(usize::MAX);
    let max_headers = usize::try_from(listener.max_headers).unwrap_or(usize::MAX);
    let limits = Limits { head: listener.head_timeout, idle: listener.idle_timeout };
    let mut http = http1::Builder::new();
    // The head and idle clocks are the connection driver's (see `connection`).
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(max_headers)
        .max_header_size(max_head);
    // Connections beyond the limit wait in the kernel's accept queue.
    let slots = Arc::new(Semaphore::new(listener.max_connections.max(1) as usize));

    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let (stream, peer) = match bound.socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, address = %bound.address, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        tracing::debug!(%peer, listener = bound.index, "connection accepted");

        let state = ConnectionState::new();
        let stream = ClientStream::new(stream, Arc::clone(&state), max_head, max_headers);
        let shared = Arc::clone(&shared);
        let listener = bound.index;
        let requests = Arc::clone(&state);
        let service = service_fn(move |request| {
            let (in_flight, refused) = requests.begin_request();
            proxy::handle(Arc::clone(&shared), listener, peer, request, in_flight, refused)
        });
        let serving = http.serve_connection(TokioIo::new(stream), service);
        let stopping = stopping.clone();
        tokio::spawn(async move {
            connection::drive(serving, state, limits, stopping, peer).await;
            drop(slot);
        });
    }
}
