//! Upstream connections: one pooled client per pool, speaking the pool's
//! `protocol` (HTTP/1.1, or HTTP/2 with prior knowledge), with the pool's
//! `connect_timeout` and `idle_timeout`, and the two resends that are
//! safe without any retry policy.
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
//!
//! A request that was sent on a fresh connection, or whose body has started
//! to flow, is never sent again, and an upstream's response, whatever its
//! status, is passed through. Configurable retries come with the retry
//! policies of `sluice_traffic`.
//!
//! To tell a reused connection from a new one, the connector stamps every
//! connection with the time it was opened; a connection opened before the
//! attempt began was reused.
//!
//! The connector also enforces the pool's circuit breaker limits on
//! connections. `max_connections` bounds the upstream connections the pool
//! holds open, busy or idle, over all its endpoints; `max_pending` bounds
//! the requests waiting for a connection, which, since an idle pooled
//! connection is taken at once, are those whose new connection is still
//! being opened. A request that needs a new connection beyond either limit
//! is not queued: the connector refuses it with [`BreakerRefusal`] and the
//! proxy answers 503 at once, naming the limit.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_compiler::plan::PoolPlan;
use sluice_traffic::circuit::OwnedPermit;
use sluice_traffic::{CircuitBreaker, Limit, Rejection};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::request_body::RequestBody;

/// The upstream clients of one pool.
pub(crate) struct PoolClient {
    /// Keep-alive connections, reused while idle for less than `idle_timeout`.
    pub(crate) pooled: Client<StampingConnector, RequestBody>,
    /// New connections only, closed after one exchange: for resends after a
    /// stale pooled connection.
    pub(crate) fresh: Client<StampingConnector, RequestBody>,
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

        let pooled = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(pool.idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(http2)
            .build(connector.clone());
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .retry_canceled_requests(false)
            .timer(TokioTimer::new())
            .http2_only(http2)
            .build(connector);
        PoolClient { pooled, fresh }
    }
}

/// Whether a failed attempt ran on a connection opened before `attempt_began`.
pub(crate) fn on_reused_connection(
    error: &hyper_util::client::legacy::Error,
    attempt_began: Instant,
) -> bool {
    let Some(connected) = error.connect_info() else { return false };
    let mut extensions = hyper::http::Extensions::new();
    connected.get_extras(&mut extensions);
    extensions.get::<OpenedAt>().is_some_and(|opened| opened.0 < attempt_began)
}

/// Whether an upstream failure happened before any response came back: the
/// connection was closed or reset under the request.
pub(crate) fn closed_before_response(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
            if hyper_error.is_incomplete_message() || hyper_error.is_canceled() {
                return true;
            }
        }
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io_error.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

/// When a connection was opened.
#[derive(Debug, Clone, Copy)]
struct OpenedAt(Instant);

/// Why the connector opened no connection: a circuit breaker limit of the
/// pool is reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BreakerRefusal(pub(crate) Rejection);

/// The breaker refusal behind a failed request, if that is why it failed.
pub(crate) fn breaker_refusal(error: &hyper_util::client::legacy::Error) -> Option<Rejection> {
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
        // Take both slots before dialling, so a refusal costs no connect.
        let slots = match &self.breaker {
            None => None,
            Some(breaker) => {
                let taken = breaker
                    .try_acquire_owned(Limit::Connections)
                    .and_then(|open| Ok((open, breaker.try_acquire_owned(Limit::Pending)?)));
                match taken {
                    Ok(slots) => Some(slots),
                    Err(rejection) => {
                        return Box::pin(std::future::ready(Err(BreakerRefusal(rejection).into())))
                    }
                }
            }
        };
        let connecting = self.http.call(destination);
        Box::pin(async move {
            let io = connecting.await?;
            // Open now: no longer waiting, still counted as a connection.
            let slot = slots.map(|(open, _pending)| open);
            Ok(Stamped { io, opened: OpenedAt(Instant::now()), _slot: slot })
        })
    }
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
