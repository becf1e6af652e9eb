//! The upstream connections of an HTTP/2 pool, for ordinary exchanges.
//!
//! HTTP/2 carries every request to an endpoint on one connection, so
//! [`Http2Pool`] keeps at most one open per endpoint and shares it. Requests
//! that find none while one is being opened wait for it rather than each
//! open their own, and fail over at once, as a connect failure, when that
//! attempt fails. A connection is closed (once its streams have ended) when
//! the upstream closes it, or once it has had no stream in flight for the
//! pool's `idle_timeout`: the clock starts when its last stream ends (its
//! response body ended or was dropped, or the exchange failed), so a stream
//! that outlasts `idle_timeout` neither has its connection closed under it
//! nor leaves the next request to open another.
//!
//! Each request names, in `:authority`, the host its client asked for (its
//! `Host`), as an HTTP/1.1 pool receives it in `Host`, and not the address
//! of the endpoint: a connection is chosen by the endpoint, never by the
//! authority, which is why this pool is not hyper-util's, whose pool takes
//! both from the request's URI. A request without a host names the
//! endpoint.
//!
//! A request the upstream did not process goes once more, whatever its
//! method, since sending it again cannot apply it twice (RFC 9113, section
//! 8.7):
//! - one that never left because the shared connection had closed under
//!   it (the upstream sent GOAWAY, or closed it while idle) goes on a new
//!   connection;
//! - one whose stream the upstream reset with `REFUSED_STREAM` goes on the
//!   shared connection, which the upstream has kept open (a new one, if it
//!   has closed meanwhile);
//! - one whose stream is above the last stream id of a GOAWAY the upstream
//!   sent goes on a new connection, as the old one takes no new streams.
//!
//! The last two have sent their body, or begun to: they go again only when
//! it can be sent whole again (it was never read, or a copy of all of it
//! was kept, see [`crate::request_body`]), and otherwise fail as they did.
//! A request goes again at most once: when that fails too, its failure is
//! the answer. Every other failure is the caller's to handle, as for
//! HTTP/1.1 pools (see [`crate::upstream`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper::header::HOST;
use hyper::http::uri::{Authority, Scheme};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_compiler::plan::PoolPlan;
use sluice_traffic::circuit::Connecting;
use sluice_traffic::CircuitBreaker;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::proxy::UpstreamHead;
use crate::request_body::RequestBody;
use crate::upstream::{take_slots, SendError};

/// The largest response header list (or trailer section) an HTTP/2
/// endpoint may send, as HTTP/2 sizes it (RFC 9113, section 6.5.2: each
/// field's name and value, pseudo-header fields such as `:status`
/// included, and 32 bytes more): the byte limit of the gateway's HTTP/1.1
/// client ([`crate::http1::MAX_HEAD`]), in place of hyper's 16 KiB. A
/// larger one resets its stream, and its request fails; the connection's
/// other streams go on.
pub(crate) const MAX_HEAD_LIST: u32 = crate::http1::MAX_HEAD as u32;

/// The largest request header list, as HTTP/2 sizes it (see
/// [`header_list_size`]), that goes on an endpoint's shared connection:
/// the `SETTINGS_MAX_HEADER_LIST_SIZE` that hyper (and so tonic and other
/// servers built on the h2 library) announce by default, 16 KiB. Such a
/// server answers a larger list with 431 on its stream, but closes the
/// whole connection (GOAWAY) for one over four times its limit, which
/// would fail every other request in flight there, whoever sent it; a
/// client can send one, since the gateway takes heads of up to
/// `max_head_size` (64 KiB by default), and HTTP/2 counts each field 32
/// bytes more than its line over HTTP/1.1. A request over it is sent on a
/// connection of its own, so that whatever the upstream makes of it befalls
/// that request alone. (The limit the upstream announced is not known here:
/// hyper's client does not say.)
const SHARED_HEAD_LIST: usize = 16 * 1024;

/// The size of a request's header list as HTTP/2 counts it (RFC 9113,
/// section 6.5.2): the name and value of each field, the pseudo-header
/// fields that the request's method and URI become included, and 32 bytes
/// more for each.
fn header_list_size<B>(request: &Request<B>) -> usize {
    const EACH: usize = 32;
    let uri = request.uri();
    let pseudo = [
        ":method".len() + request.method().as_str().len(),
        ":scheme".len() + uri.scheme_str().map_or(0, str::len),
        ":authority".len() + uri.authority().map_or(0, |a| a.as_str().len()),
        ":path".len() + uri.path_and_query().map_or(1, |p| p.as_str().len()),
    ];
    let fields = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len().saturating_add(value.len()).saturating_add(EACH));
    pseudo.iter().map(|size| size + EACH).chain(fields).fold(0, usize::saturating_add)
}

/// The HTTP/2 connections of one pool: at most one open per endpoint.
pub(crate) struct Http2Pool {
    endpoints: Vec<Endpoint>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    breaker: Option<Arc<CircuitBreaker>>,
    builder: Builder<TokioExecutor>,
}

#[derive(Default)]
struct Endpoint {
    /// The connection requests share, once one is open.
    open: Mutex<Option<Shared>>,
    /// Held while a connection is being opened.
    opening: tokio::sync::Mutex<()>,
    /// When the latest attempt to open one failed, and how.
    failed: Mutex<Option<(Instant, std::io::ErrorKind, String)>>,
}

/// A connection that requests share.
struct Shared {
    sender: SendRequest<RequestBody>,
    opened: Instant,
    /// Its streams in flight.
    streams: Arc<Mutex<Streams>>,
}

/// The streams in flight on a shared connection.
struct Streams {
    /// Streams begun and not yet ended.
    in_flight: usize,
    /// When the last of them ended (when the connection opened, until one
    /// has).
    idle_since: Instant,
}

impl Shared {
    /// A connection that `sender` sends on, opened at `opened`, with one
    /// stream in flight: the request that opened it.
    fn opened(sender: SendRequest<RequestBody>, opened: Instant) -> (Shared, OpenStream) {
        let streams = Streams { in_flight: 1, idle_since: opened };
        let streams = Arc::new(Mutex::new(streams));
        (Shared { sender, opened, streams: Arc::clone(&streams) }, OpenStream(streams))
    }

    /// Whether the connection can take no more streams: the upstream
    /// closed it, or it has had none in flight for `idle_timeout` by `now`.
    fn is_done(&self, now: Instant, idle_timeout: Duration) -> bool {
        if self.sender.is_closed() {
            return true;
        }
        let streams = lock(&self.streams);
        streams.in_flight == 0 && now - streams.idle_since >= idle_timeout
    }

    /// Count one more stream in flight until the returned value is dropped.
    fn begin(&self) -> OpenStream {
        lock(&self.streams).in_flight += 1;
        OpenStream(Arc::clone(&self.streams))
    }
}

/// One stream in flight on a shared connection: from when its request took
/// the connection until its response body has ended or been dropped, or
/// the exchange has failed, whichever way (the client may leave, or the
/// request time out, at any point). Dropping it ends the stream's count,
/// once.
pub(crate) struct OpenStream(Arc<Mutex<Streams>>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut streams = lock(&self.0);
        streams.in_flight = streams.in_flight.saturating_sub(1);
        if streams.in_flight == 0 {
            streams.idle_since = crate::clock::recent();
        }
    }
}

impl Http2Pool {
    /// The connections of `plan`, with a task that closes those left idle
    /// for its `idle_timeout` (when there is a runtime to run it).
    pub(crate) fn start(plan: &PoolPlan, breaker: Option<Arc<CircuitBreaker>>) -> Arc<Http2Pool> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new()).max_header_list_size(MAX_HEAD_LIST);
        let pool = Arc::new(Http2Pool {
            endpoints: plan.endpoints.iter().map(|_| Endpoint::default()).collect(),
            connect_timeout: plan.connect_timeout,
            idle_timeout: plan.idle_timeout,
            breaker,
            builder,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(&pool), plan.idle_timeout));
        }
        pool
    }

    /// Send the request of `head` and `body` to `endpoint` (at `address`,
    /// named by `authority`): on a new connection of its own when `fresh`,
    /// else on the shared one, for which the response comes with the
    /// stream's place among those in flight there.
    pub(crate) async fn send(
        &self,
        endpoint: usize,
        address: SocketAddr,
        authority: &Authority,
        head: &UpstreamHead,
        body: RequestBody,
        fresh: bool,
    ) -> Result<(Response<Incoming>, Option<OpenStream>), SendError> {
        let slot = Arc::clone(body.slot());
        let request = upstream_request(head, body, authority)?;
        // A header list that the upstream may take for abuse goes on a
        // connection of its own, every time it is sent (see `SHARED_HEAD_LIST`).
        let fresh = fresh || header_list_size(&request) > SHARED_HEAD_LIST;
        let began = Instant::now();
        let (mut sender, opened, stream) = match fresh {
            true => self.open(address).await.map(|(sender, opened)| (sender, opened, None))?,
            false => self.shared(endpoint, address, began).await?,
        };
        let mut error = match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, stream)),
            Err(error) => error,
        };
        drop(stream);
        let request = match error.take_message() {
            Some(request) if !fresh && opened < began => {
                let message = "HTTP/2 connection closed; sending on a new one";
                tracing::debug!(side = "upstream", %address, "{message}");
                self.forget(endpoint, opened);
                request
            }
            _ => {
                let error = error.into_error();
                let Some(unprocessed) = Unprocessed::of(&error) else {
                    return Err(SendError::Http2 { error, opened });
                };
                // Taken before looking whether the body is whole, so that
                // what this attempt finds is what it sends (see
                // `BodySlot::attempt`).
                let body = slot.attempt();
                if !slot.is_whole() {
                    return Err(SendError::Http2 { error, opened });
                }
                let why = unprocessed.describe();
                tracing::debug!(side = "upstream", %address, %error, "{why}; sending again");
                if unprocessed == Unprocessed::GoneAway {
                    self.forget(endpoint, opened);
                }
                upstream_request(head, body, authority)?
            }
        };
        let (mut sender, opened, stream) = match fresh {
            true => self.open(address).await.map(|(sender, opened)| (sender, opened, None))?,
            false => self.shared(endpoint, address, Instant::now()).await?,
        };
        match sender.send_request(request).await {
            Ok(response) => Ok((response, stream)),
            Err(error) => Err(SendError::Http2 { error, opened }),
        }
    }

    /// The shared connection to `endpoint`, opened if there is none, when
    /// it was opened, and the place of the stream the caller begins there.
    /// A request that `began` waiting before an attempt to open one failed
    /// fails with it.
    async fn shared(
        &self,
        endpoint: usize,
        address: SocketAddr,
        began: Instant,
    ) -> Result<(SendRequest<RequestBody>, Instant, Option<OpenStream>), SendError> {
        let Some(slot) = self.endpoints.get(endpoint) else {
            return self.open(address).await.map(|(sender, opened)| (sender, opened, None));
        };
        if let Some(found) = self.take(slot) {
            return Ok(found);
        }
        let _opening = slot.opening.lock().await;
        if let Some(found) = self.take(slot) {
            return Ok(found);
        }
        if let Some((at, kind, message)) = &*lock(&slot.failed) {
            if *at >= began {
                return Err(SendError::Connect(std::io::Error::new(*kind, message.clone())));
            }
        }
        match self.open(address).await {
            Ok((sender, opened)) => {
                let (shared, stream) = Shared::opened(sender.clone(), opened);
                *lock(&slot.open) = Some(shared);
                Ok((sender, opened, Some(stream)))
            }
            Err(SendError::Connect(error)) => {
                *lock(&slot.failed) = Some((Instant::now(), error.kind(), error.to_string()));
                Err(SendError::Connect(error))
            }
            Err(error) => Err(error),
        }
    }

    /// The shared connection of `slot`, if it is open and has not been idle
    /// for `idle_timeout`, with a new stream counted in flight there; closes
    /// it otherwise.
    fn take(
        &self,
        slot: &Endpoint,
    ) -> Option<(SendRequest<RequestBody>, Instant, Option<OpenStream>)> {
        let mut open = lock(&slot.open);
        let shared = open.as_ref()?;
        if shared.is_done(Instant::now(), self.idle_timeout) {
            *open = None;
            return None;
        }
        Some((shared.sender.clone(), shared.opened, Some(shared.begin())))
    }

    /// Stop sharing the connection of `endpoint` opened at `opened`.
    fn forget(&self, endpoint: usize, opened: Instant) {
        let Some(slot) = self.endpoints.get(endpoint) else { return };
        let mut open = lock(&slot.open);
        if open.as_ref().is_some_and(|shared| shared.opened == opened) {
            *open = None;
        }
    }

    /// A new connection to `address`, driven by a task of its own that
    /// holds its place under the breaker's `max_connections` until it ends.
    async fn open(
        &self,
        address: SocketAddr,
    ) -> Result<(SendRequest<RequestBody>, Instant), SendError> {
        let slots = take_slots(self.breaker.as_ref()).map_err(SendError::Refused)?;
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(SendError::Connect(error)),
                Err(_) => {
                    let message = format!("not connected within {:?}", self.connect_timeout);
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, message);
                    return Err(SendError::Connect(error));
                }
            };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(side = "upstream", %address, %error, "cannot set TCP_NODELAY");
        }
        let opened = Instant::now();
        let (sender, connection) =
            self.builder.handshake(TokioIo::new(stream)).await.map_err(|error| {
                SendError::Connect(std::io::Error::other(format!("HTTP/2 handshake: {error}")))
            })?;
        let slot = slots.map(Connecting::opened);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(side = "upstream", %address, %error, "HTTP/2 connection failed");
            }
            drop(slot);
        });
        Ok((sender, opened))
    }

    /// Close the shared connections idle for `idle_timeout`, or closed by
    /// the upstream, giving back their places under the breaker's limits.
    fn close_idle(&self) {
        let now = Instant::now();
        for slot in &self.endpoints {
            let mut open = lock(&slot.open);
            if open.as_ref().is_some_and(|shared| shared.is_done(now, self.idle_timeout)) {
                *open = None;
            }
        }
    }
}

/// The request of `head` and `body` as an HTTP/2 pool sends it: with a
/// URI whose authority is the host the client asked for, or else
/// `authority`, the endpoint's.
fn upstream_request(
    head: &UpstreamHead,
    body: RequestBody,
    authority: &Authority,
) -> Result<Request<RequestBody>, SendError> {
    let mut request = head.request(body);
    let target = std::mem::take(request.uri_mut()).into_parts();
    let mut parts = hyper::http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(asked_for(&request).unwrap_or_else(|| authority.clone()));
    parts.path_and_query = target.path_and_query;
    *request.uri_mut() = Uri::from_parts(parts).map_err(|error| {
        let message = format!("upstream URI: {error}");
        SendError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, message))
    })?;
    Ok(request)
}

/// Why the upstream did not process a request it was sent, as RFC 9113
/// (section 8.7) lets it say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unprocessed {
    /// It reset the request's stream with `REFUSED_STREAM`.
    Refused,
    /// It sent GOAWAY with a last stream id below the request's stream, or
    /// before the request opened one.
    GoneAway,
}

impl Unprocessed {
    /// Whether `error` says the upstream did not process the request.
    ///
    /// h2 fails a stream the upstream reset with a remote reset error that
    /// carries the reset's code. When the upstream sends GOAWAY, h2 fails
    /// each stream above its last stream id, and each stream opened after
    /// it, with a remote GOAWAY error that carries the GOAWAY's code,
    /// whatever that code is; the streams at or below the id go on, and
    /// fail with an I/O error if the connection then closes under them. A
    /// remote GOAWAY error is therefore never a stream the upstream may
    /// have processed.
    fn of(error: &hyper::Error) -> Option<Unprocessed> {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if let Some(error) = cause.downcast_ref::<h2::Error>() {
                if !error.is_remote() {
                    return None;
                }
                if error.is_go_away() {
                    return Some(Unprocessed::GoneAway);
                }
                let refused =
                    error.is_reset() && error.reason() == Some(h2::Reason::REFUSED_STREAM);
                return refused.then_some(Unprocessed::Refused);
            }
            source = cause.source();
        }
        None
    }

    /// What the upstream did, for the log.
    fn describe(self) -> &'static str {
        match self {
            Unprocessed::Refused => "the upstream refused the stream",
            Unprocessed::GoneAway => "the upstream went away before the stream",
        }
    }
}

/// The host a request asks for, as its `:authority`: its `Host`, when that
/// is one.
fn asked_for(request: &Request<RequestBody>) -> Option<Authority> {
    let host = request.headers().get(HOST)?;
    Authority::try_from(host.as_bytes()).ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves usable state: at worst a
    // connection is not shared, or a failure not remembered.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Close, every `period`, the connections of `pool` left idle that long,
/// until the pool is gone.
async fn reap(pool: Weak<Http2Pool>, period: Duration) {
    let period = period.max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        pool.close_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sized as RFC 9113 (section 6.5.2) sizes it: 32 bytes more for each
    /// field, the four pseudo-header fields of a request included.
    #[test]
    fn a_header_list_is_sized_as_http2_counts_it() {
        let request = Request::get("http://x.test/a?b").header("x-one", "1").body(()).unwrap();
        let pseudo = (7 + 3) + (7 + 4) + (10 + 6) + (5 + 4) + 4 * 32;
        assert_eq!(header_list_size(&request), pseudo + 5 + 1 + 32);
    }
}
