//! Upstream connections: one pooled client per pool, speaking the pool's
//! `protocol` (HTTP/1.1, or HTTP/2 with prior knowledge), with the pool's
//! `connect_timeout` and `idle_timeout`, and the resends that are safe
//! without any retry policy.
//!
//! - **Connect failover**: when a connection attempt fails (refused, or not
//!   open within `connect_timeout`), nothing was sent, so the request goes to
//!   another endpoint of the pool that has not been tried, whatever its
//!   method, as nginx and HAProxy do by default.
//! - **Stale connection**: a pooled connection can be closed by the upstream
//!   just as a request is written to it. When a request of an idempotent
//!   method fails on a reused connection before any response arrived, and
//!   its body was never read (so it is whole), it is sent once more, to the
//!   same endpoint, on a new connection. Idle connections also leave the pool
//!   after the pool's `idle_timeout` (4 s by default), before a typical
//!   upstream keep-alive timeout closes them, which makes this race rare.
//! - **Unprocessed HTTP/2 stream**: a stream the upstream refused
//!   (`REFUSED_STREAM`), or left above the last stream id of its GOAWAY,
//!   was not processed, and goes once more, whatever the method, when its
//!   body can be sent whole again (see [`crate::http2`]).
//!
//! Apart from an unprocessed HTTP/2 stream, a request that was sent on a
//! fresh connection, or whose body has started to flow (and was not kept
//! whole for retries), is never sent again here; an upstream's response,
//! whatever its status, is passed through.
//! Configurable retries come with the retry policies of `sluice_traffic`.
//!
//! # HTTP/1.1 exchanges in the request's own task
//!
//! An ordinary HTTP/1.1 exchange (no upgrade, not `CONNECT`) goes through
//! the gateway's own client, [`crate::http1`], not through a client with a
//! task per connection. [`Http1Pool`] keeps, per endpoint, a stack of idle
//! keep-alive connections, and the request that takes one drives it itself:
//! it writes the request and reads the response head while the request's
//! future is polled, and the rest of the body is read as the client-side
//! connection polls the [`UpstreamBody`]. When the body has ended and the
//! connection can serve another request, it goes back on the stack;
//! otherwise it is closed. Upgrades and `CONNECT` use hyper-util's pooled
//! client, whose connections each run in a task of their own, as an
//! upgraded tunnel must.
//!
//! # HTTP/2 pools
//!
//! An ordinary exchange with an HTTP/2 pool goes through [`Http2Pool`] (see
//! [`crate::http2`]): connections in tasks of their own, shared by every
//! request to their endpoint (one, unless the endpoint's limit of
//! concurrent streams calls for more), each of which names in
//! `:authority` the host its client asked for. hyper-util's client would name the endpoint
//! there instead, as it picks a connection by the URI's authority.
//!
//! An idle connection is not read while it waits, so an upstream that
//! closes it is noticed when the connection is next taken: the socket's
//! readiness says the peer has closed, and the connection is dropped for the
//! next one. One taken just as the upstream closes it is the stale case
//! above.
//!
//! To tell a reused connection from a new one, the connector stamps every
//! connection with the time it was opened (and the HTTP/2 pool notes it); a
//! connection opened before the attempt began was reused.
//!
//! The connector (and the HTTP/2 pool) also enforces the pool's circuit
//! breaker limits on connections. `max_connections` bounds the upstream connections the pool
//! holds open, busy or idle, over all its endpoints; `max_pending` bounds
//! the requests waiting for a connection, which, since an idle pooled
//! connection is taken at once, are those whose new connection is still
//! being opened. A request that needs a new connection beyond either limit
//! is not queued: the connector refuses it with [`BreakerRefusal`] and the
//! proxy answers 503 at once, naming the limit.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::http::uri::{Authority, Scheme};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Response, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_compiler::plan::PoolPlan;
use sluice_traffic::circuit::{Connecting, OwnedPermit};
use sluice_traffic::{CircuitBreaker, Rejection};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::http1::{
    Conn, ExchangeError, HeadLimit, Http1Body, Http1Response, PumpedBody, MAX_FIELDS, MAX_HEAD,
};
use crate::http2::{Http2Pool, OpenStream, MAX_HEAD_LIST};
use crate::proxy::UpstreamHead;
use crate::request_body::{BodyError, BodySlot, ClientFailure, ClientFault, RequestBody};
use crate::stall::{unless_stuck, Stall};

/// The upstream clients of one pool.
pub(crate) struct PoolClient {
    /// Keep-alive connections, reused while idle for less than `idle_timeout`.
    pooled: Client<StampingConnector, RequestBody>,
    /// New connections only, closed after one exchange: for resends after a
    /// stale pooled connection.
    fresh: Client<StampingConnector, RequestBody>,
    /// Ordinary exchanges of an HTTP/1.1 pool.
    http1: Option<Arc<Http1Pool>>,
    /// Ordinary exchanges of an HTTP/2 pool.
    http2: Option<Arc<Http2Pool>>,
    /// The pool's `stall_timeout`.
    stall: Duration,
}

impl PoolClient {
    /// The clients of `pool`, counting their connections on `breaker`.
    pub(crate) fn new(pool: &PoolPlan, breaker: Arc<CircuitBreaker>) -> PoolClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(pool.connect_timeout));
        let limits = breaker.limits();
        let limited = limits.max_connections != u32::MAX || limits.max_pending != u32::MAX;
        let connector = StampingConnector { http, breaker: limited.then_some(breaker) };
        // HTTP/2 in cleartext with prior knowledge: one connection per
        // endpoint carries every request at once.
        let http2 = pool.protocol == sluice_compiler::spec::Protocol::Http2;

        // Upgrades and `CONNECT` take response heads within the limits of
        // the gateway's own clients, as far as hyper lets them be set (see
        // `head_limits`).
        let pooled = head_limits(Client::builder(TokioExecutor::new()))
            .pool_idle_timeout(pool.idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(http2)
            .build(connector.clone());
        let http1 = (!http2).then(|| Http1Pool::start(pool, connector.breaker.clone()));
        let http2_pool = http2.then(|| Http2Pool::start(pool, connector.breaker.clone()));
        let fresh = head_limits(Client::builder(TokioExecutor::new()))
            .pool_max_idle_per_host(0)
            .retry_canceled_requests(false)
            .timer(TokioTimer::new())
            .http2_only(http2)
            .build(connector);
        PoolClient { pooled, fresh, http1, http2: http2_pool, stall: pool.stall_timeout }
    }

    /// Send `request` to `endpoint` (the pool's endpoint of that index, at
    /// `address`): on a new connection when `fresh`, else on an idle one
    /// when there is one.
    ///
    /// `request` is in origin form; `authority` names the endpoint as the
    /// request's `Host` when it has none, and in the absolute form that
    /// hyper-util's client wants. `waiting` is set while the request waits
    /// for a stream of an HTTP/2 endpoint at its limit (see
    /// [`crate::http2`]), and left set if it is given up there: it was not
    /// sent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        endpoint: usize,
        address: SocketAddr,
        authority: &Authority,
        head: &UpstreamHead,
        body: RequestBody,
        fresh: bool,
        waiting: &AtomicBool,
    ) -> Result<Response<UpstreamBody>, SendError> {
        if let Some(http1) = &self.http1 {
            if is_plain_exchange(head) {
                return http1.send(endpoint, address, authority, head, body, fresh).await;
            }
        }
        let stall = self.stall;
        let slot = (!body.is_end_stream()).then(|| Arc::clone(body.slot()));
        let blame = slot.clone();
        if let Some(http2) = self.http2.as_ref().filter(|_| is_plain_exchange(head)) {
            let exchange = async move {
                let sent =
                    http2.send(endpoint, address, authority, head, body, fresh, waiting).await?;
                let (response, stream) = sent;
                // HTTP/2 bounds the header list's size (see
                // `crate::http2::MAX_HEAD_LIST`), not its fields.
                if let Some(limit) = over_head_limits(&response) {
                    return Err(SendError::HeadTooLarge(limit));
                }
                Ok(response.map(|body| UpstreamBody::detached(body, stall, stream)))
            };
            let sent = Box::pin(head_within_stall(exchange, stall, slot)).await;
            return sent.map_err(|error| blame_client_body(error, blame.as_deref()));
        }
        let mut request = head.request(body);
        let mut target = std::mem::take(request.uri_mut()).into_parts();
        target.scheme = Some(Scheme::HTTP);
        target.authority = Some(authority.clone());
        *request.uri_mut() = Uri::from_parts(target).map_err(|error| {
            let error =
                io::Error::new(io::ErrorKind::InvalidInput, format!("upstream URI: {error}"));
            SendError::Connect(error)
        })?;
        let client = if fresh { &self.fresh } else { &self.pooled };
        let exchange = async move {
            match client.request(request).await {
                Ok(response) => match over_head_limits(&response) {
                    Some(limit) => Err(SendError::HeadTooLarge(limit)),
                    None => Ok(response.map(|body| UpstreamBody::detached(body, stall, None))),
                },
                Err(error) => Err(SendError::Pooled(error)),
            }
        };
        // Boxed: kept inline, this rarer path would make every request's
        // future as large as its own.
        let sent = Box::pin(head_within_stall(exchange, stall, slot)).await;
        sent.map_err(|error| blame_client_body(error, blame.as_deref()))
    }
}

/// hyper-util's `builder` with the response head limits of the gateway's
/// own HTTP/1.1 client ([`MAX_FIELDS`] fields, [`MAX_HEAD`] bytes) and of
/// its HTTP/2 pool (a header list of [`MAX_HEAD_LIST`] as HTTP/2 sizes it).
/// hyper bounds an HTTP/1.1 head's bytes only through its read buffer,
/// which refuses a head once that many bytes have arrived without its end
/// but can take in up to about as much again in one read, so what it
/// passes is measured again (see [`over_head_limits`]).
fn head_limits(
    mut builder: hyper_util::client::legacy::Builder,
) -> hyper_util::client::legacy::Builder {
    builder
        .http1_max_headers(MAX_FIELDS)
        .http1_max_buf_size(MAX_HEAD)
        .http2_max_header_list_size(MAX_HEAD_LIST);
    builder
}

/// The limit of the gateway's HTTP/1.1 client that a response head which
/// hyper's client took is over, if any: an HTTP/1.1 head over [`MAX_HEAD`]
/// bytes, measured as its status line and field lines would be written
/// (`name: value`, each line ending in CRLF, and the empty line after
/// them), which is what was sent less any optional whitespace; an HTTP/2
/// head (held to [`MAX_HEAD_LIST`] already) with over [`MAX_FIELDS`]
/// fields, which hyper holds an HTTP/1.1 head to itself.
fn over_head_limits<B>(response: &Response<B>) -> Option<HeadLimit> {
    if response.version() == hyper::Version::HTTP_2 {
        return (response.headers().len() > MAX_FIELDS).then_some(HeadLimit::Fields);
    }
    let reason = match response.extensions().get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => reason.as_bytes().len(),
        None => response.status().canonical_reason().map_or(0, str::len),
    };
    // `HTTP/1.1 200 ` and the reason, CRLF; the empty line.
    let mut size = 13 + reason + 2 + 2;
    for (name, value) in response.headers() {
        size += name.as_str().len() + 2 + value.len() + 2;
        if size > MAX_HEAD {
            return Some(HeadLimit::Size);
        }
    }
    None
}

/// `error`, the failure of an exchange whose connection sends the request
/// body from a task of its own, as the client's when the client's side of
/// the body failed (see [`ClientFailure`]): that failure is what ended the
/// exchange, which then says only that its stream was reset. An error that
/// already carries the body's own, or a connection that was never opened,
/// stays as it is.
fn blame_client_body(error: SendError, slot: Option<&BodySlot>) -> SendError {
    if error.is_connect() || error.body_error().is_some() {
        return error;
    }
    match slot.and_then(BodySlot::client_failure) {
        Some(failure) => SendError::ClientBody(failure.clone()),
        None => error,
    }
}

/// `exchange`, given up as stalled when the upstream keeps the gateway
/// waiting for `stall` with nothing moving. Without a body, that is any
/// wait for the head. A body goes out in the connection's own task, out of
/// sight, so its progress is read off `slot` (see [`unless_stuck`]): every
/// frame handed on starts the clock again, and while the body waits on the
/// client the clock is the listener's, not the pool's.
async fn head_within_stall<F, T>(
    exchange: F,
    stall: Duration,
    slot: Option<Arc<BodySlot>>,
) -> Result<T, SendError>
where
    F: Future<Output = Result<T, SendError>>,
{
    let stuck = Err(SendError::Stalled(stall));
    let Some(slot) = slot else {
        return tokio::time::timeout(stall, exchange).await.unwrap_or(stuck);
    };
    let mut last = slot.progress().0;
    let moved = move || {
        let (moved, on_client) = slot.progress();
        on_client || std::mem::replace(&mut last, moved) != moved
    };
    unless_stuck(exchange, stall, moved).await.unwrap_or(stuck)
}

/// Whether a request is an ordinary exchange, which ends with its response
/// body, rather than one that may turn its connection into a tunnel.
fn is_plain_exchange(head: &UpstreamHead) -> bool {
    head.method != hyper::Method::CONNECT && !head.upgrade
}

/// Why a try got no response head from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// hyper-util's pooled client (upgrades, `CONNECT`) failed.
    #[error(transparent)]
    Pooled(hyper_util::client::legacy::Error),
    /// The exchange failed on an HTTP/2 pool's connection, opened at `opened`.
    #[error("{error}")]
    Http2 {
        #[source]
        error: hyper::Error,
        opened: Instant,
    },
    /// No connection could be opened.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The pool's circuit breaker allows no further connection.
    #[error(transparent)]
    Refused(BreakerRefusal),
    /// The exchange failed on an open HTTP/1.1 connection; `reused` when the
    /// connection had served an earlier request.
    #[error("{error}")]
    Exchange { error: ExchangeError, reused: bool },
    /// An HTTP/2 or upgrade exchange sent no response head for the pool's
    /// `stall_timeout`.
    #[error("the upstream sent nothing for {0:?}")]
    Stalled(Duration),
    /// An HTTP/2 or upgrade exchange failed because the client's side of
    /// the request body failed (see [`ClientFailure`]).
    #[error("{0}")]
    ClientBody(ClientFailure),
    /// An HTTP/2 or upgrade exchange got a response head over a limit of
    /// the gateway's HTTP/1.1 client, which hyper's client does not hold it
    /// to itself (see [`head_limits`]); the response was dropped.
    #[error("response head too large: {0}")]
    HeadTooLarge(HeadLimit),
}

impl SendError {
    /// Whether no connection could be opened, so nothing was sent.
    pub(crate) fn is_connect(&self) -> bool {
        match self {
            SendError::Pooled(error) => error.is_connect(),
            SendError::Connect(_) | SendError::Refused(_) => true,
            SendError::Exchange { .. }
            | SendError::Http2 { .. }
            | SendError::Stalled(_)
            | SendError::ClientBody(_)
            | SendError::HeadTooLarge(_) => false,
        }
    }

    /// The pool's `stall_timeout`, when the upstream stalled before its
    /// response head: a timeout rather than a failure.
    pub(crate) fn stalled(&self) -> Option<Duration> {
        match self {
            SendError::Exchange { error: ExchangeError::Stalled(limit), .. }
            | SendError::Stalled(limit) => Some(*limit),
            _ => None,
        }
    }

    /// The listener's `stall_timeout`, when the client stalled mid-body.
    pub(crate) fn client_stalled(&self) -> Option<Duration> {
        match self.client_fault()? {
            ClientFault::Stalled(limit) => Some(limit),
            _ => None,
        }
    }

    /// Whether the client went away in the middle of its request body: its
    /// connection ended or was reset before the body was whole.
    pub(crate) fn client_left(&self) -> bool {
        self.client_fault() == Some(ClientFault::Left)
    }

    /// How the client's side of the request body failed, if that is what
    /// ended the exchange.
    fn client_fault(&self) -> Option<ClientFault> {
        match self {
            SendError::ClientBody(failure) => Some(failure.fault),
            _ => self.body_error()?.client_fault(),
        }
    }

    /// The failure of the client's request body behind this one, if any.
    fn body_error(&self) -> Option<&BodyError> {
        let mut source = match self {
            SendError::Exchange { error: ExchangeError::Body(error), .. } => return Some(error),
            SendError::Pooled(error) => std::error::Error::source(error),
            SendError::Http2 { error, .. } => Some(error as &(dyn std::error::Error + 'static)),
            SendError::Exchange { .. }
            | SendError::Connect(_)
            | SendError::Refused(_)
            | SendError::Stalled(_)
            | SendError::ClientBody(_)
            | SendError::HeadTooLarge(_) => None,
        };
        while let Some(cause) = source {
            if let Some(error) = cause.downcast_ref::<BodyError>() {
                return Some(error);
            }
            source = cause.source();
        }
        None
    }

    /// The limit the upstream's response head went over, when that is
    /// what failed: the head was never passed on.
    pub(crate) fn head_too_large(&self) -> Option<HeadLimit> {
        match self {
            SendError::Exchange { error: ExchangeError::HeadTooLarge(limit), .. }
            | SendError::HeadTooLarge(limit) => Some(*limit),
            SendError::Pooled(error) => std::error::Error::source(error)
                .and_then(|e| e.downcast_ref::<hyper::Error>())
                .is_some_and(hyper::Error::is_parse_too_large)
                .then_some(HeadLimit::Either),
            _ => None,
        }
    }

    /// Whether the request's own body is what failed (the client stopped
    /// sending it, or sent a malformed chunk). A body that an earlier
    /// attempt had taken is the gateway's failure, not the client's.
    pub(crate) fn is_client_body_error(&self) -> bool {
        if matches!(self.body_error(), Some(BodyError::Spent)) {
            return false;
        }
        match self {
            SendError::Pooled(error) => std::error::Error::source(error)
                .and_then(|e| e.downcast_ref::<hyper::Error>())
                .is_some_and(hyper::Error::is_user),
            SendError::Http2 { error, .. } => error.is_user(),
            SendError::Exchange { error, .. } => error.is_client_body(),
            SendError::ClientBody(_) => true,
            SendError::Connect(_)
            | SendError::Refused(_)
            | SendError::Stalled(_)
            | SendError::HeadTooLarge(_) => false,
        }
    }
}

/// Whether a failed attempt ran on a connection opened before `attempt_began`.
pub(crate) fn on_reused_connection(error: &SendError, attempt_began: Instant) -> bool {
    let error = match error {
        SendError::Pooled(error) => error,
        SendError::Exchange { reused, .. } => return *reused,
        SendError::Http2 { opened, .. } => return *opened < attempt_began,
        SendError::Connect(_)
        | SendError::Refused(_)
        | SendError::Stalled(_)
        | SendError::ClientBody(_)
        | SendError::HeadTooLarge(_) => return false,
    };
    let Some(connected) = error.connect_info() else { return false };
    let mut extensions = hyper::http::Extensions::new();
    connected.get_extras(&mut extensions);
    extensions.get::<OpenedAt>().is_some_and(|opened| opened.0 < attempt_began)
}

/// Whether an upstream failure happened before any response came back: the
/// connection was closed or reset under the request.
pub(crate) fn closed_before_response(error: &SendError) -> bool {
    let mut source = match error {
        SendError::Pooled(error) => std::error::Error::source(error),
        SendError::Http2 { error, .. } => Some(error as &(dyn std::error::Error + 'static)),
        SendError::Exchange { error, .. } => return error.is_closed(),
        SendError::Connect(_)
        | SendError::Refused(_)
        | SendError::Stalled(_)
        | SendError::ClientBody(_)
        | SendError::HeadTooLarge(_) => return false,
    };
    while let Some(cause) = source {
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
            if hyper_error.is_incomplete_message() || hyper_error.is_canceled() {
                return true;
            }
        }
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return is_cut_off(io_error);
        }
        source = cause.source();
    }
    false
}

/// Whether a socket error means the peer closed or reset the connection.
pub(crate) fn is_cut_off(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// When a connection was opened.
#[derive(Debug, Clone, Copy)]
struct OpenedAt(Instant);

/// Why the connector opened no connection: a circuit breaker limit of the
/// pool is reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BreakerRefusal(pub(crate) Rejection);

/// The breaker refusal behind a failed request, if that is why it failed.
pub(crate) fn breaker_refusal(error: &SendError) -> Option<Rejection> {
    let error = match error {
        SendError::Pooled(error) => error,
        SendError::Refused(refusal) => return Some(refusal.0),
        SendError::Connect(_)
        | SendError::Exchange { .. }
        | SendError::Http2 { .. }
        | SendError::Stalled(_)
        | SendError::ClientBody(_)
        | SendError::HeadTooLarge(_) => return None,
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<BreakerRefusal>() {
            return Some(refusal.0);
        }
        source = cause.source();
    }
    None
}

/// hyper-util's TCP connector, stamping each connection with [`OpenedAt`]
/// and, when the pool has connection limits, holding a slot of its breaker
/// for as long as the connection is open.
#[derive(Clone)]
pub(crate) struct StampingConnector {
    http: HttpConnector,
    breaker: Option<Arc<CircuitBreaker>>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<Stamped, BoxError>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for StampingConnector {
    type Response = Stamped;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: Uri) -> ConnectFuture {
        let slots = match take_slots(self.breaker.as_ref()) {
            Ok(slots) => slots,
            Err(refusal) => return Box::pin(std::future::ready(Err(refusal.into()))),
        };
        let connecting = self.http.call(destination);
        Box::pin(async move {
            let io = connecting.await?;
            // Open now: no longer waiting, still counted as a connection.
            let slot = slots.map(Connecting::opened);
            Ok(Stamped { io, opened: OpenedAt(Instant::now()), _slot: slot })
        })
    }
}

/// A connection's place under the breaker's `max_connections` and, while it
/// is being opened, under `max_pending`; none when the pool has no limits.
/// Both are taken before dialling, so a refusal costs no connect.
pub(crate) fn take_slots(
    breaker: Option<&Arc<CircuitBreaker>>,
) -> Result<Option<Connecting>, BreakerRefusal> {
    let Some(breaker) = breaker else { return Ok(None) };
    breaker.try_connect().map(Some).map_err(BreakerRefusal)
}

/// An upstream connection that knows when it was opened.
pub(crate) struct Stamped {
    io: TokioIo<TcpStream>,
    opened: OpenedAt,
    /// The connection's place under `max_connections`, given back on close.
    _slot: Option<OwnedPermit>,
}

impl Connection for Stamped {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.opened)
    }
}

impl Read for Stamped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Stamped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Idle HTTP/1.1 keep-alive connections of one pool, a stack per endpoint
/// (see the module doc).
pub(crate) struct Http1Pool {
    /// One stack per worker and endpoint, at `lane * endpoints + endpoint`;
    /// the most recently idle last. Each connection goes back to the stack
    /// of the worker that opened it, whose runtime drives its socket.
    idle: Vec<Mutex<VecDeque<Idle>>>,
    endpoints: usize,
    connect_timeout: Duration,
    idle_timeout: Duration,
    stall_timeout: Duration,
    breaker: Option<Arc<CircuitBreaker>>,
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// Where a connection goes back to once its response body has ended.
pub(crate) struct Home {
    pool: Arc<Http1Pool>,
    endpoint: usize,
}

impl Home {
    pub(crate) fn give_back(self, conn: Box<Conn>) {
        self.pool.put(self.endpoint, conn);
    }

    /// How long the pool keeps a connection idle.
    pub(crate) fn idle_timeout(&self) -> Duration {
        self.pool.idle_timeout
    }
}

impl Http1Pool {
    /// The HTTP/1.1 connections of `plan`, with a task that closes those
    /// left idle for its `idle_timeout` (when there is a runtime to run it).
    fn start(plan: &PoolPlan, breaker: Option<Arc<CircuitBreaker>>) -> Arc<Http1Pool> {
        let endpoints = plan.endpoints.len();
        let stacks = endpoints * crate::workers::lanes();
        let pool = Arc::new(Http1Pool {
            idle: (0..stacks).map(|_| Mutex::new(VecDeque::new())).collect(),
            endpoints,
            connect_timeout: plan.connect_timeout,
            idle_timeout: plan.idle_timeout,
            stall_timeout: plan.stall_timeout,
            breaker,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(&pool), plan.idle_timeout));
        }
        pool
    }

    async fn send(
        self: &Arc<Self>,
        endpoint: usize,
        address: SocketAddr,
        authority: &Authority,
        head: &UpstreamHead,
        body: RequestBody,
        fresh: bool,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let taken = if fresh { None } else { self.take(endpoint) };
        let reused = taken.is_some();
        let mut conn = match taken {
            Some(conn) => conn,
            None => Box::pin(self.connect(address)).await?,
        };

        let mut stall = Stall::new(self.stall_timeout);
        match conn.exchange(head, authority, body, &mut stall).await {
            Ok(mut head) => {
                let home = Home { pool: Arc::clone(self), endpoint };
                let body = match Http1Body::start(conn, &mut head, home, stall) {
                    Http1Response::Direct(body) => Inner::Http1(body),
                    Http1Response::Pumped(body) => Inner::Pumped(body),
                };
                Ok(Response::from_parts(head.parts, UpstreamBody(body)))
            }
            Err(error) => Err(SendError::Exchange { error, reused }),
        }
    }

    /// The most recently idle connection to `endpoint` that can take a
    /// request, closing on the way those that expired or that the upstream
    /// has closed.
    ///
    /// The calling worker's own connections come first; without one, it
    /// borrows another worker's rather than open a new connection (which
    /// `max_connections` may not allow). A borrowed connection still
    /// answers to its own worker's reactor, and goes back to that worker's
    /// stack.
    fn take(&self, endpoint: usize) -> Option<Box<Conn>> {
        if endpoint >= self.endpoints {
            return None;
        }
        let lanes = self.idle.len() / self.endpoints.max(1);
        let own = crate::workers::lane();
        (0..lanes).find_map(|k| self.take_from(((own + k) % lanes) * self.endpoints + endpoint))
    }

    fn take_from(&self, at: usize) -> Option<Box<Conn>> {
        let stack = self.idle.get(at)?;
        loop {
            let idle = lock(stack).pop_back()?;
            if crate::clock::recent().saturating_duration_since(idle.since) >= self.idle_timeout {
                // Everything below it has been idle longer.
                lock(stack).clear();
                return None;
            }
            let mut conn = idle.conn;
            if conn.can_take_another() {
                return Some(conn);
            }
        }
    }

    /// Give back a connection whose exchange has ended, if it can take
    /// another request.
    fn put(&self, endpoint: usize, mut conn: Box<Conn>) {
        if !conn.can_take_another() {
            return;
        }
        if endpoint >= self.endpoints {
            return;
        }
        let lane = conn.lane as usize;
        let Some(stack) = self.idle.get(lane * self.endpoints + endpoint) else { return };
        let now = crate::clock::recent();
        let mut stack = lock(stack);
        self.drop_expired(&mut stack, now);
        stack.push_back(Idle { conn, since: now });
    }

    /// Close the connections of `stack` idle for `idle_timeout` by `now`:
    /// the oldest, at its bottom.
    fn drop_expired(&self, stack: &mut VecDeque<Idle>, now: Instant) {
        while stack.front().is_some_and(|idle| now - idle.since >= self.idle_timeout) {
            stack.pop_front();
        }
    }

    /// Close the idle connections, of every endpoint, that expired or that
    /// the upstream has closed, giving back their places under the
    /// breaker's limits; how many.
    fn close_dead(&self) -> usize {
        let now = Instant::now();
        let mut closed = 0;
        for stack in &self.idle {
            let mut stack = lock(stack);
            let before = stack.len();
            stack.retain_mut(|idle| {
                now - idle.since < self.idle_timeout && idle.conn.can_take_another()
            });
            closed += before - stack.len();
        }
        closed
    }

    /// A new connection, boxed once for its life: it moves between the
    /// idle stacks and response bodies as a pointer.
    async fn connect(&self, address: SocketAddr) -> Result<Box<Conn>, SendError> {
        let slots = match take_slots(self.breaker.as_ref()) {
            // Idle connections the upstream has closed keep their places
            // until they are next looked at: look at them now.
            Err(_) if self.close_dead() > 0 => take_slots(self.breaker.as_ref()),
            taken => taken,
        }
        .map_err(SendError::Refused)?;
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(SendError::Connect(error)),
            Err(_) => {
                let message = format!("not connected within {:?}", self.connect_timeout);
                return Err(SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, message)));
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(side = "upstream", %address, %error, "cannot set TCP_NODELAY");
        }
        // Open now: no longer waiting, still counted as a connection.
        let slot = slots.map(Connecting::opened);
        let lane = u32::try_from(crate::workers::lane()).unwrap_or(u32::MAX);
        Ok(Box::new(Conn::new(stream, slot, lane)))
    }
}

fn lock(stack: &Mutex<VecDeque<Idle>>) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
    // A panic while holding the lock leaves a usable stack: at worst a
    // connection is missing from it.
    stack.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Close, every `period`, the connections of `pool` left idle that long,
/// until the pool is gone.
async fn reap(pool: Weak<Http1Pool>, period: Duration) {
    let period = period.max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        for stack in &pool.idle {
            pool.drop_expired(&mut lock(stack), now);
        }
    }
}

/// An upstream response body: read by the gateway's own HTTP/1.1 client
/// from the connection it travels with, or by hyper-util's client, whose
/// connection runs in a task of its own.
pub struct UpstreamBody(Inner);

enum Inner {
    Http1(Http1Body),
    /// A body whose connection runs in a task of its own, the pool's stall
    /// clock for it, and its stream's place among those in flight on a
    /// shared HTTP/2 connection, given up when the body ends.
    Detached(Incoming, Stall, Option<OpenStream>),
    /// An HTTP/1.1 body read while its upload goes on.
    Pumped(PumpedBody),
}

/// Why an upstream response body failed.
pub type BodyFailure = Box<dyn std::error::Error + Send + Sync>;

impl UpstreamBody {
    /// A body whose connection runs in a task of its own, which may make
    /// its reader wait at most `stall` at a time, and that holds `stream`
    /// until it ends or is dropped.
    fn detached(body: Incoming, stall: Duration, stream: Option<OpenStream>) -> UpstreamBody {
        UpstreamBody(Inner::Detached(body, Stall::new(stall), stream))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        match &mut self.0 {
            Inner::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Inner::Pumped(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Inner::Detached(body, stall, stream) => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(frame) => {
                    stall.progress();
                    // The stream is over once its body has ended or failed.
                    if !matches!(frame, Some(Ok(_))) {
                        stream.take();
                    }
                    Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
                }
                Poll::Pending => stall.poll_expired(cx).map(|()| {
                    stream.take();
                    let error = ExchangeError::Stalled(stall.limit());
                    Some(Err(error.into()))
                }),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Http1(body) => body.is_end_stream(),
            Inner::Pumped(body) => body.is_end_stream(),
            Inner::Detached(body, ..) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Http1(body) => body.size_hint(),
            Inner::Pumped(body) => body.size_hint(),
            Inner::Detached(body, ..) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response whose head, written as HTTP/1.1, is `size` bytes long:
    /// `HTTP/1.1 200 OK`, one field `x-big` and as many fields `x-n` as it
    /// takes to make up the rest, and the empty line.
    fn head_of(size: usize, version: hyper::Version) -> Response<()> {
        let mut response = Response::new(());
        *response.version_mut() = version;
        // `HTTP/1.1 200 OK` CRLF, and CRLF.
        let mut left = size - 17 - 2;
        while left > 1000 {
            response.headers_mut().append("x-n", "v".repeat(1000 - 7).parse().unwrap());
            left -= 1000;
        }
        // `x-n: ` and CRLF around each value, `x-big: ` and CRLF around its.
        response.headers_mut().insert("x-big", "v".repeat(left - 9).parse().unwrap());
        response
    }

    /// An HTTP/1.1 head that hyper took is held to 64 KiB as written, its
    /// reason phrase included; an HTTP/2 one, to 100 fields.
    #[test]
    fn a_head_from_hyper_is_held_to_the_gateways_limits() {
        use hyper::Version;
        assert_eq!(over_head_limits(&head_of(MAX_HEAD, Version::HTTP_11)), None);
        let over = head_of(MAX_HEAD + 1, Version::HTTP_11);
        assert_eq!(over_head_limits(&over), Some(HeadLimit::Size));

        let mut reason = head_of(MAX_HEAD, Version::HTTP_11);
        reason.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"OKAY"));
        assert_eq!(over_head_limits(&reason), Some(HeadLimit::Size));

        // 66 fields: HTTP/2 held the list's size already.
        assert_eq!(over_head_limits(&head_of(MAX_HEAD + 1, Version::HTTP_2)), None);
        let fields = |n: usize| {
            let mut response = Response::new(());
            *response.version_mut() = Version::HTTP_2;
            for i in 0..n {
                response.headers_mut().insert(
                    format!("x-{i}").parse::<hyper::header::HeaderName>().unwrap(),
                    "v".parse().unwrap(),
                );
            }
            response
        };
        assert_eq!(over_head_limits(&fields(MAX_FIELDS)), None);
        assert_eq!(over_head_limits(&fields(MAX_FIELDS + 1)), Some(HeadLimit::Fields));
    }
}
