//! Listeners and connections: accept, serve HTTP/1.1 and HTTP/2, swap plans
//! on reload, drain on shutdown.
//!
//! Each listener serves at most its `max_connections` at once. At the limit
//! its accept loop waits for a connection to close, so further clients wait
//! in the kernel's accept queue (and are refused by the kernel once that is
//! full) instead of being accepted and dropped. Each connection is served by
//! [`crate::connection`], which tells HTTP/2 from HTTP/1, checks HTTP/1
//! framing and keeps the connection's clocks.
//!
//! # Reload
//!
//! The plan in force lives in an [`ArcSwap`]. Each request takes a full
//! `Arc` of it when it starts and keeps it until it ends, so a reload never
//! changes the plan under a request in flight, and the request path takes
//! no lock. A reload builds the new plan's state (taking over the balancers
//! and upstream connections of unchanged pools, see
//! [`Shared::reloaded`](crate::proxy::Shared)), binds the listeners that are
//! new, swaps the plan in, and only then closes the listeners it no longer
//! has. Listeners are known by the address the spec binds, so one whose
//! address did not change keeps its socket, and no connection is refused
//! around a reload. When a new listener cannot be bound, nothing changes.
//! The connections a closed listener had accepted are stopped as a drain
//! stops them (see below): each finishes the request it has in flight and
//! closes, so none goes on serving a plan that is no longer in force.
//!
//! The plan in force is the loaded plan with its DNS names resolved (see
//! [`crate::resolve`]); when a periodic lookup changes a name's addresses,
//! the newly resolved plan goes through the same reload.
//!
//! # Shutdown
//!
//! Shutdown has two phases. First every accept loop ends, which closes the
//! listening sockets, so new connections are refused. Then every open
//! connection is told to stop: one that is mid-request finishes that request
//! and closes, an idle keep-alive connection closes at once, and so does one
//! that has not sent a request yet (hyper alone would wait for that first
//! request, and clients that pre-connect would hold the drain open). Upgraded
//! connections (WebSocket tunnels) count as open until they close or the
//! drain gives up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hyper::header::UPGRADE;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sluice_compiler::plan::ListenerPlan;
use sluice_compiler::Plan;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::access_log::{AccessLogSender, Record};
use crate::connection::{
    self, ClientStream, ConnectionState, Limits, OwnServer, Protocol, Rewind, StopSignal, Stopped,
};
use crate::exchange::ResponseBody;
use crate::proxy::{self, Shared};
use crate::request_body::ClientBody;
use crate::resolve::Resolver;
use crate::server1::{self, Ended};
use crate::streams::StreamExecutor;
use crate::workers::{OpenConnection, Workers};
use crate::ServeError;

/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections the kernel may hold for a listener until they are accepted.
const ACCEPT_BACKLOG: u32 = 4096;

/// The number of header fields hyper accepts when not told otherwise.
const HYPER_MAX_HEADERS: usize = 100;

/// The plan in force, swapped whole on reload.
type Current = Arc<ArcSwap<Shared>>;

/// A listener's accept loop, and what tells the connections it accepted
/// that the listener is gone.
struct AcceptLoop {
    task: JoinHandle<()>,
    stop: StopSignal,
}

impl AcceptLoop {
    fn spawn(
        bound: Bound,
        current: &Current,
        stopping: &watch::Receiver<()>,
        workers: &Workers,
    ) -> (ListenerKey, AcceptLoop) {
        let stop = StopSignal::default();
        let task = accept(
            bound.socket,
            bound.key.clone(),
            Arc::clone(current),
            (stop.clone(), stopping.clone()),
            workers.clone(),
        );
        (bound.key, AcceptLoop { task: tokio::spawn(task), stop })
    }
}

/// What names a listener across reloads: the address the spec binds, and
/// for port 0 (any free port, so one address can stand for several
/// listeners) its name too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ListenerKey {
    bind: SocketAddr,
    name: Option<Arc<str>>,
}

impl ListenerKey {
    fn of(listener: &ListenerPlan) -> ListenerKey {
        let name = (listener.bind.port() == 0).then(|| Arc::from(listener.name.as_str()));
        ListenerKey { bind: listener.bind, name }
    }

    /// Whether `listener` is the one this key names.
    pub(crate) fn matches(&self, listener: &ListenerPlan) -> bool {
        listener.bind == self.bind && self.name.as_deref().is_none_or(|n| n == listener.name)
    }
}

/// A plan with every listener bound, ready to [`run`](Gateway::run).
pub struct Gateway {
    current: Current,
    log: AccessLogSender,
    listeners: Vec<Bound>,
    workers: Workers,
    /// The plan as loaded, with its DNS names unresolved.
    source: Arc<Plan>,
    resolver: Resolver,
}

struct Bound {
    key: ListenerKey,
    name: String,
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

/// What an upgraded connection holds on to while it tunnels: the
/// connection's place in the drain and in its listener's connection limit.
#[derive(Clone)]
pub(crate) struct ConnectionHold {
    _stopping: watch::Receiver<()>,
    _slot: Arc<Slot>,
}

/// A connection's place under its listener's `max_connections`, and in the
/// count of open connections the drain reports. Shared by the connection
/// and, once it is upgraded, its tunnel; given back when both are done.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    _counted: OpenConnection,
}

impl Gateway {
    /// Bind every listener of the plan. Call from within a tokio runtime.
    pub async fn bind(plan: Arc<Plan>, log: AccessLogSender) -> Result<Gateway, ServeError> {
        let mut listeners = Vec::with_capacity(plan.listeners.len());
        for listener in &plan.listeners {
            listeners.push(bind(listener).await?);
        }
        let mut resolver = Resolver::default();
        let served = resolver.load(&plan).await;
        let current = Arc::new(ArcSwap::from_pointee(Shared::new(served, log.clone())));
        Ok(Gateway { current, log, listeners, workers: Workers::default(), source: plan, resolver })
    }

    /// Serve accepted connections on `workers` rather than on the runtime
    /// that runs the gateway.
    pub(crate) fn serve_on(&mut self, workers: Workers) {
        self.workers = workers;
    }

    /// Each listener's name and the address it is bound to (with the real
    /// port when the plan asked for port 0).
    pub fn listeners(&self) -> impl Iterator<Item = (&str, SocketAddr)> + '_ {
        self.listeners.iter().map(|b| (b.name.as_str(), b.address))
    }

    /// Serve until `shutdown` completes, then close the listeners and let
    /// in-flight requests finish until they all have or `give_up` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        give_up: impl Future<Output = ()>,
    ) -> Drain {
        let (_, reloads) = mpsc::channel(1);
        self.run_with_reloads(shutdown, give_up, reloads).await
    }

    /// Like [`run`](Gateway::run), and put each plan that arrives on
    /// `reloads` in force (see the module doc).
    pub async fn run_with_reloads(
        self,
        shutdown: impl Future<Output = ()>,
        give_up: impl Future<Output = ()>,
        mut reloads: mpsc::Receiver<Plan>,
    ) -> Drain {
        // Every connection task holds a receiver; the drain ends when all are
        // gone. Nothing is sent on it: each listener's signal stops its
        // connections.
        let (connections, stopping) = watch::channel(());
        let mut loops: HashMap<ListenerKey, AcceptLoop> = HashMap::new();
        for bound in self.listeners {
            let (key, accept_loop) =
                AcceptLoop::spawn(bound, &self.current, &stopping, &self.workers);
            loops.insert(key, accept_loop);
        }

        let (mut source, mut resolver) = (self.source, self.resolver);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let due = resolver.next_due();
            let lookup = async move {
                match due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                Some(plan) = reloads.recv() => {
                    source = Arc::new(plan);
                    let served = resolver.load(&source).await;
                    reload(&self.current, &self.log, served, &mut loops, &stopping, &self.workers).await;
                }
                () = lookup => {
                    if let Some(served) = resolver.refresh(&source).await {
                        let served = Arc::new(served);
                        reload(&self.current, &self.log, served, &mut loops, &stopping, &self.workers).await;
                    }
                }
            }
        }
        drop(stopping);

        // Stop accepting: end the loops, which drops (closes) the sockets and
        // their receivers, so that only connections count from here on.
        for accept_loop in loops.values() {
            accept_loop.task.abort();
        }
        let mut signals = Vec::with_capacity(loops.len());
        for (_, accept_loop) in loops {
            let _ = accept_loop.task.await;
            signals.push(accept_loop.stop);
        }

        let open = self.workers.open_connections();
        tracing::info!(connections = open, "draining connections");
        for signal in &signals {
            signal.send(Stopped::Shutdown);
        }
        tokio::select! {
            () = connections.closed() => Drain::Complete,
            () = give_up => Drain::Abandoned { connections: self.workers.open_connections() },
        }
    }
}

async fn bind(listener: &ListenerPlan) -> Result<Bound, ServeError> {
    let bind_error = |source| ServeError::Bind {
        listener: listener.name.clone(),
        address: listener.bind,
        source,
    };
    let socket = listen(listener.bind).map_err(bind_error)?;
    let address = socket.local_addr().map_err(bind_error)?;
    Ok(Bound { key: ListenerKey::of(listener), name: listener.name.clone(), socket, address })
}

/// A listening socket on `address`. Its accept queue is deep enough for a
/// burst of thousands of new connections (the system's `somaxconn` caps
/// it): a full queue drops the client's SYN, and the client waits a second
/// or more to try again.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Put `plan` in force: bind its new listeners, swap it in, close the
/// listeners it dropped. A listener that cannot be bound leaves the old plan
/// serving, unchanged.
async fn reload(
    current: &Current,
    log: &AccessLogSender,
    plan: Arc<Plan>,
    loops: &mut HashMap<ListenerKey, AcceptLoop>,
    stopping: &watch::Receiver<()>,
    workers: &Workers,
) {
    let mut opened = Vec::new();
    for listener in plan.listeners.iter().filter(|l| !loops.contains_key(&ListenerKey::of(l))) {
        match bind(listener).await {
            Ok(bound) => opened.push(bound),
            Err(error) => {
                tracing::error!(%error, "reload failed; the previous plan keeps serving");
                return;
            }
        }
    }

    let previous = current.load_full();
    let shared = Shared::reloaded(plan, log.clone(), Some(&previous));
    let (listeners, routes, pools) =
        (shared.plan.listeners.len(), shared.plan.routes.len(), shared.plan.pools.len());
    let kept: Vec<ListenerKey> = shared.plan.listeners.iter().map(ListenerKey::of).collect();
    current.store(Arc::new(shared));

    let opened_count = opened.len();
    for bound in opened {
        eprintln!("listening listener={} addr={}", bound.name, bound.address);
        let (key, accept_loop) = AcceptLoop::spawn(bound, current, stopping, workers);
        loops.insert(key, accept_loop);
    }
    let mut closed = 0;
    loops.retain(|key, accept_loop| {
        let keep = kept.contains(key);
        if !keep {
            accept_loop.task.abort();
            // Its connections finish their requests in flight and close.
            accept_loop.stop.send(Stopped::ListenerRemoved);
            closed += 1;
        }
        keep
    });
    tracing::info!(listeners, routes, pools, opened = opened_count, closed, "plan reloaded");
}

async fn accept(
    socket: TcpListener,
    key: ListenerKey,
    current: Current,
    (stop, stopping): (StopSignal, watch::Receiver<()>),
    workers: Workers,
) {
    // Connections beyond the limit wait in the kernel's accept queue. The
    // limit follows the plan in force.
    let slots = Arc::new(Semaphore::new(0));
    let mut permits = 0usize;

    loop {
        let shared = current.load_full();
        let Some(index) = shared.listener_at(&key) else { return };
        let wanted = shared.plan.listeners[index].max_connections.max(1) as usize;
        if wanted > permits {
            slots.add_permits(wanted - permits);
            permits = wanted;
        } else if wanted < permits {
            permits -= slots.forget_permits(permits - wanted);
        }
        drop(shared);

        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, address = %key.bind, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let shared = current.load_full();
        let Some(index) = shared.listener_at(&key) else { return };
        tracing::debug!(%peer, listener = index, "connection accepted");
        let connection = Connection {
            peer,
            key: key.clone(),
            accepted: shared,
            index,
            current: Arc::clone(&current),
            stop: stop.subscribe(stopping.clone()),
            slot: Arc::new(Slot { _permit: permit, _counted: workers.count_connection() }),
        };
        workers.serve(stream, move |stream| connection.serve(stream));
    }
}

/// One accepted client connection.
struct Connection {
    peer: SocketAddr,
    /// Finds the connection's listener in later plans.
    key: ListenerKey,
    /// The plan in force when the connection was accepted, and the
    /// listener's index there.
    accepted: Arc<Shared>,
    index: usize,
    current: Current,
    stop: connection::Stop,
    slot: Arc<Slot>,
}

impl Connection {
    async fn serve(mut self, mut stream: TcpStream) {
        let listener = &self.accepted.plan.listeners[self.index];
        let limits = Limits { head: listener.head_timeout, idle: listener.idle_timeout };
        let stall = listener.stall_timeout;
        let max_head = usize::try_from(listener.max_head_size).unwrap_or(usize::MAX);
        let max_headers = usize::try_from(listener.max_headers).unwrap_or(usize::MAX);
        let (streams, resets) =
            (listener.h2_max_concurrent_streams, listener.h2_max_pending_resets);
        let peer = self.peer;

        // Which protocol: the first bytes tell. A client that sends nothing
        // is idle; a stop closes it at once.
        let sniffed = tokio::select! {
            sniffed = connection::sniff(&mut stream) => sniffed,
            () = tokio::time::sleep(limits.idle) => return,
            _ = self.stop.signalled() => return,
        };
        let (protocol, prefix) = match sniffed {
            Ok(Some(sniffed)) => sniffed,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(side = "client", %peer, %error, "connection failed before a request");
                return;
            }
        };
        let (stream, prefix) = match protocol {
            Protocol::Http1 => {
                // The gateway's own server first, hyper from the first
                // request it does not serve (see `server1`).
                let state = ConnectionState::own_server();
                let answer = self.answer(&state);
                let settings = server1::Settings { max_head, max_headers, stall };
                let serving =
                    server1::serve(stream, prefix, Arc::clone(&state), settings, move |r| {
                        answer.call(r)
                    });
                let serving = OwnServer::new(serving, Arc::clone(&state));
                let ended =
                    connection::drive(serving, state, limits, self.stop.clone(), peer).await;
                match ended {
                    Some(Ended::Handover { stream, read }) => (stream, read),
                    Some(Ended::Closed) | None => return,
                }
            }
            Protocol::Http2 => (stream, prefix),
        };
        let io = Rewind::new(prefix, stream, stall);
        let state = ConnectionState::new(protocol == Protocol::Http1);
        let service = {
            let answer = self.answer(&state);
            let hold = ConnectionHold {
                _stopping: self.stop.shutdown.clone(),
                _slot: Arc::clone(&self.slot),
            };
            // See `ResponseBody::pumped`.
            let pump = (protocol == Protocol::Http2).then_some(stall);
            service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                if request.headers().contains_key(UPGRADE) {
                    request.extensions_mut().insert(hold.clone());
                }
                let body = |body| ClientBody::hyper(body, stall, max_headers);
                let answered = answer.call(Box::new(request.map(body)));
                async move {
                    let response = answered.await?;
                    Ok::<_, Infallible>(match pump {
                        Some(stall) => response.map(|body| body.pumped(stall)),
                        None => response,
                    })
                }
            })
        };

        let ended = match protocol {
            Protocol::Http1 => {
                let mut http = http1::Builder::new();
                // The head and idle clocks are the connection driver's.
                http.timer(TokioTimer::new()).header_read_timeout(None).max_header_size(max_head);
                // Given a limit, hyper fills an index array of that size
                // for every head it parses; its default needs no filling.
                if max_headers != HYPER_MAX_HEADERS {
                    http.max_headers(max_headers);
                }
                let stream = ClientStream::new(io, Arc::clone(&state), max_head, max_headers);
                let serving = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
                connection::drive(serving, Arc::clone(&state), limits, self.stop.clone(), peer)
                    .await
            }
            Protocol::Http2 => {
                let mut http = http2::Builder::new(StreamExecutor);
                http.timer(TokioTimer::new())
                    .max_concurrent_streams(streams)
                    .max_pending_accept_reset_streams(resets as usize)
                    .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX));
                let serving = http.serve_connection(TokioIo::new(io), service);
                connection::drive(serving, Arc::clone(&state), limits, self.stop.clone(), peer)
                    .await
            }
        };
        if let Some(Err(error)) = ended {
            tracing::debug!(side = "client", %peer, %error, "connection ended with an error");
            self.log_refusal(&state, &error);
        }
    }

    /// What answers the requests of this connection, counted in `state`.
    fn answer(&self, state: &Arc<ConnectionState>) -> Answer {
        Answer {
            state: Arc::clone(state),
            current: Arc::clone(&self.current),
            accepted: Arc::clone(&self.accepted),
            key: self.key.clone(),
            index: self.index,
            client: proxy::Peer::new(self.peer),
        }
    }

    /// Log a request that hyper refused before the gateway saw it (a head
    /// it could not parse, or one too large), with the reason.
    fn log_refusal(&self, state: &ConnectionState, error: &hyper::Error) {
        let shared = &self.accepted;
        if !error.is_parse() || !shared.log.enabled() {
            return;
        }
        let status = if error.is_parse_too_large() { 431 } else { 400 };
        let reason = state.refusal().map_or_else(|| error.to_string(), str::to_owned);
        shared.log.send(Record {
            plan: Arc::clone(&shared.plan),
            time: SystemTime::now(),
            client: self.peer,
            listener: self.index,
            method: None,
            path: String::new(),
            route: None,
            endpoint: None,
            status,
            duration: Duration::ZERO,
            reason: Some(reason),
        });
    }
}

/// Answers the requests of one connection, on the plan in force.
struct Answer {
    state: Arc<ConnectionState>,
    current: Current,
    accepted: Arc<Shared>,
    key: ListenerKey,
    index: usize,
    client: proxy::Peer,
}

impl Answer {
    fn call(
        &self,
        request: Box<hyper::Request<ClientBody>>,
    ) -> impl Future<Output = Result<hyper::Response<ResponseBody>, Infallible>> + Send + 'static
    {
        let (in_flight, refused) = self.state.begin_request();
        let (shared, listener) = generation(&self.current, &self.key, &self.accepted, self.index);
        proxy::handle(shared, listener, self.client.clone(), request, in_flight, refused)
    }
}

/// The plan a new request on a connection runs on: the one in force, unless
/// it no longer has the connection's listener, then the one the connection
/// was accepted under (a request that raced the reload; the connection
/// closes once it is answered). Also the listener's index in that plan.
fn generation(
    current: &ArcSwap<Shared>,
    key: &ListenerKey,
    accepted: &Arc<Shared>,
    index: usize,
) -> (Arc<Shared>, usize) {
    let shared = current.load_full();
    if Arc::ptr_eq(&shared, accepted) {
        return (shared, index);
    }
    match shared.listener_at(key) {
        Some(index) => (shared, index),
        None => (Arc::clone(accepted), index),
    }
}
