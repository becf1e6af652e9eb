//! The upstream connections of an HTTP/2 pool, for ordinary exchanges.
//!
//! HTTP/2 carries many requests to an endpoint on one connection, so
//! [`Http2Pool`] shares its connections: a request takes a stream on the
//! oldest open connection to its endpoint that has room for one more. Room
//! is the upstream's own limit, the `SETTINGS_MAX_CONCURRENT_STREAMS` it
//! sent on that connection, which the pool reads off the frames as they
//! arrive (hyper does not tell it), less the streams in flight there. A
//! connection is not used before its upstream has sent its first SETTINGS
//! (within `connect_timeout`, like the connect itself), so that no request
//! goes out on it before its limit is known.
//!
//! When every connection to the endpoint is at its limit, the request opens
//! another one (one at a time per endpoint: requests that come meanwhile
//! wait for it and take its room), within the circuit breaker's
//! `max_connections`, unless the endpoint allows no stream at all (a limit
//! of 0) on every connection it has open. When that is not allowed, or
//! fails, the request waits for a stream to end on any of the endpoint's
//! connections, as long as its caller lets it; the caller's `waiting` flag is set for as long as it
//! waits, so that a try whose time ran out there is known to have sent
//! nothing (see `crate::proxy`). A busy endpoint is not a failing one.
//!
//! Requests that find no connection while one is being opened wait for it
//! rather than each open their own, and fail over at once, as a connect
//! failure, when that attempt fails. A connection is closed (once its
//! streams have ended) when the upstream closes it, or once it has had no
//! stream in flight for the pool's `idle_timeout`: the clock starts when
//! its last stream ends (its response body ended or was dropped, or the
//! exchange failed), so a stream that outlasts `idle_timeout` neither has
//! its connection closed under it nor leaves the next request to open
//! another.
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
//! - one whose stream the upstream reset with `REFUSED_STREAM` goes on a
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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper::header::HOST;
use hyper::http::uri::{Authority, Scheme};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sluice_compiler::plan::PoolPlan;
use sluice_traffic::circuit::{Connecting, OwnedPermit};
use sluice_traffic::CircuitBreaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
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

/// The HTTP/2 connections of one pool, shared per endpoint.
pub(crate) struct Http2Pool {
    endpoints: Vec<Endpoint>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    breaker: Option<Arc<CircuitBreaker>>,
    builder: Builder<TokioExecutor>,
}

#[derive(Default)]
struct Endpoint {
    /// The connections requests share, the oldest first.
    open: Mutex<Vec<Shared>>,
    /// Held while a connection is being opened.
    opening: tokio::sync::Mutex<()>,
    /// When the latest attempt to open one failed, and how.
    failed: Mutex<Option<(Instant, std::io::ErrorKind, String)>>,
    /// Told when a stream may have become free: one ended, a connection
    /// closed, or an upstream changed its limit.
    freed: Arc<Notify>,
}

/// A connection that requests share.
struct Shared {
    sender: SendRequest<Sent>,
    opened: Instant,
    /// What its upstream said of its limits.
    peer: Arc<Peer>,
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
    /// The endpoint's, told when one ends.
    freed: Arc<Notify>,
}

/// What the upstream of one connection said in its SETTINGS frames.
struct Peer {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` as it last said it: no limit until
    /// it says one (RFC 9113, section 6.5.2).
    max_streams: AtomicU32,
    /// Whether its first SETTINGS frame has come.
    settled: AtomicBool,
    /// Told when a SETTINGS frame has come.
    said: Notify,
    /// The endpoint's, told when the limit changes.
    freed: Option<Arc<Notify>>,
    /// The connection's place under the breaker's `max_connections`, held
    /// until its task ends, or the pool lets it go idle (see
    /// [`Shared::give_back`]), whichever comes first.
    place: Mutex<Option<OwnedPermit>>,
}

impl Peer {
    fn new(freed: Option<Arc<Notify>>) -> Peer {
        Peer {
            max_streams: AtomicU32::new(u32::MAX),
            settled: AtomicBool::new(false),
            said: Notify::new(),
            freed,
            place: Mutex::new(None),
        }
    }

    /// A SETTINGS frame (not an acknowledgement) has been read whole.
    fn settings_read(&self) {
        self.settled.store(true, Ordering::Release);
        self.said.notify_waiters();
        if let Some(freed) = &self.freed {
            freed.notify_waiters();
        }
    }

    /// The most streams it takes at once.
    fn max_streams(&self) -> usize {
        usize::try_from(self.max_streams.load(Ordering::Acquire)).unwrap_or(usize::MAX)
    }
}

impl Shared {
    /// A connection that `sender` sends on, opened at `opened`, whose
    /// upstream's limits `peer` holds, with no stream in flight yet.
    fn opened(
        sender: SendRequest<Sent>,
        opened: Instant,
        peer: Arc<Peer>,
        freed: Arc<Notify>,
    ) -> Shared {
        let streams = Streams { in_flight: 0, idle_since: opened, freed };
        Shared { sender, opened, peer, streams: Arc::new(Mutex::new(streams)) }
    }

    /// Whether the pool keeps sharing the connection at `now`; one it lets
    /// go gives its place back (see [`Shared::give_back`]).
    fn keep(&self, now: Instant, idle_timeout: Duration) -> bool {
        let done = self.is_done(now, idle_timeout);
        if done {
            self.give_back();
        }
        !done
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

    /// Give back the connection's place under `max_connections` as the
    /// pool lets it go, when nothing is in flight on it: the connection
    /// closes once its last sender is dropped, but its task may take a
    /// while to end, and a request that found it expired must be able to
    /// open the next one meanwhile.
    fn give_back(&self) {
        if lock(&self.streams).in_flight == 0 {
            drop(lock(&self.peer.place).take());
        }
    }

    /// Whether the upstream allows no stream at all on the connection (it
    /// set its limit to 0) and the connection is still open.
    fn allows_none(&self) -> bool {
        !self.sender.is_closed() && self.peer.max_streams() == 0
    }

    /// Count one more stream in flight until the returned value is dropped,
    /// if the upstream's limit leaves room for it.
    fn begin(&self) -> Option<OpenStream> {
        let mut streams = lock(&self.streams);
        if streams.in_flight >= self.peer.max_streams() {
            return None;
        }
        streams.in_flight += 1;
        Some(OpenStream { _count: Arc::new(Counted(Arc::clone(&self.streams))) })
    }
}

/// One stream in flight on a shared connection: from when its request took
/// the connection until both its response body and its request body have
/// ended or been dropped, or the exchange has failed, whichever way (the
/// client may leave, or the request time out, at any point). An upstream
/// may answer before it has the whole request body, and the stream stays
/// open, under the upstream's limit, until the body has gone (or the
/// stream is reset), so the request body holds a clone (see
/// [`Sent`]). Dropping the last clone ends the stream's
/// count, once, and tells the requests waiting for a stream.
#[derive(Clone)]
pub(crate) struct OpenStream {
    _count: Arc<Counted>,
}

/// The count of one stream among those in flight on its connection.
struct Counted(Arc<Mutex<Streams>>);

impl Drop for Counted {
    fn drop(&mut self) {
        let freed = {
            let mut streams = lock(&self.0);
            streams.in_flight = streams.in_flight.saturating_sub(1);
            if streams.in_flight == 0 {
                streams.idle_since = crate::clock::recent();
            }
            Arc::clone(&streams.freed)
        };
        freed.notify_waiters();
    }
}

/// A request body as an HTTP/2 pool sends it, with the count of the stream
/// it goes on, held until the HTTP/2 library drops the body (once it has
/// sent it whole, or the stream has ended). Kept apart from
/// [`RequestBody`], which every exchange moves and which stays small.
pub(crate) struct Sent {
    body: RequestBody,
    stream: Option<OpenStream>,
}

impl From<RequestBody> for Sent {
    fn from(body: RequestBody) -> Sent {
        Sent { body, stream: None }
    }
}

impl Sent {
    /// Keep `stream` counted until this body is dropped, letting go of any
    /// stream held before.
    fn hold(&mut self, stream: Option<OpenStream>) {
        self.stream = stream;
    }
}

impl hyper::body::Body for Sent {
    type Data = bytes::Bytes;
    type Error = crate::request_body::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A stream taken for a request: the connection's sender, when the
/// connection was opened, and the stream's place among those in flight
/// there (none on a connection of the request's own).
type Taken = (SendRequest<Sent>, Instant, Option<OpenStream>);

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
    /// else on a shared one, for which the response comes with the
    /// stream's place among those in flight there. `waiting` is set while
    /// the request waits for a stream to become free (see the module doc).
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
    ) -> Result<(Response<Incoming>, Option<OpenStream>), SendError> {
        let slot = Arc::clone(body.slot());
        let mut request = upstream_request(head, body, authority)?.map(Sent::from);
        // A header list that the upstream may take for abuse goes on a
        // connection of its own, every time it is sent (see `SHARED_HEAD_LIST`).
        let fresh = fresh || header_list_size(&request) > SHARED_HEAD_LIST;
        let began = Instant::now();
        let (mut sender, opened, stream) =
            self.stream(endpoint, address, fresh, began, waiting).await?;
        request.body_mut().hold(stream.clone());
        let mut error = match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, stream)),
            Err(error) => error,
        };
        drop(stream);
        let mut request = match error.take_message() {
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
                upstream_request(head, body, authority)?.map(Sent::from)
            }
        };
        // The request given back still holds the failed stream's count.
        request.body_mut().hold(None);
        let (mut sender, opened, stream) =
            self.stream(endpoint, address, fresh, Instant::now(), waiting).await?;
        request.body_mut().hold(stream.clone());
        match sender.send_request(request).await {
            Ok(response) => Ok((response, stream)),
            Err(error) => Err(SendError::Http2 { error, opened }),
        }
    }

    /// A stream for a request to `endpoint` (at `address`): on a new
    /// connection of its own when `fresh`, else on a shared one (see
    /// [`Http2Pool::shared`]).
    async fn stream(
        &self,
        endpoint: usize,
        address: SocketAddr,
        fresh: bool,
        began: Instant,
        waiting: &AtomicBool,
    ) -> Result<Taken, SendError> {
        match fresh {
            true => self.own(address).await,
            false => self.shared(endpoint, address, began, waiting).await,
        }
    }

    /// A new connection to `address` for one request alone, counted in no
    /// endpoint's streams.
    async fn own(&self, address: SocketAddr) -> Result<Taken, SendError> {
        self.open(address, None).await.map(|(sender, opened, _)| (sender, opened, None))
    }

    /// A stream on a shared connection to `endpoint`: on the oldest with
    /// room for it, or on a new one when none has room, or else, when none
    /// can be opened beside those at their limit, on the first to free a
    /// stream, while `waiting` says so. A request that `began` waiting
    /// before an attempt to open a connection failed fails with it, when
    /// there is no connection to wait on.
    async fn shared(
        &self,
        endpoint: usize,
        address: SocketAddr,
        began: Instant,
        waiting: &AtomicBool,
    ) -> Result<Taken, SendError> {
        let Some(slot) = self.endpoints.get(endpoint) else { return self.own(address).await };
        loop {
            // Listening from before the look, so that no stream that ends
            // after it is missed.
            let freed = slot.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(found) = self.take(slot) {
                return Ok(found);
            }
            if let Some(found) = self.open_another(slot, address, began).await? {
                return Ok(found);
            }
            waiting.store(true, Ordering::Relaxed);
            freed.await;
            waiting.store(false, Ordering::Relaxed);
        }
    }

    /// Open another connection to the endpoint of `slot`, one at a time,
    /// and take a stream on it; or take one that a connection opened
    /// meanwhile has. `None` when there is no room to be had that way, but
    /// a connection to wait on: the breaker allows no other connection, or
    /// opening one failed (since `began`, for a request that waited for
    /// that attempt), or the new one has no room either.
    async fn open_another(
        &self,
        slot: &Endpoint,
        address: SocketAddr,
        began: Instant,
    ) -> Result<Option<Taken>, SendError> {
        let _opening = slot.opening.lock().await;
        if let Some(found) = self.take(slot) {
            return Ok(Some(found));
        }
        let (busy, shut) = {
            let open = lock(&slot.open);
            (!open.is_empty(), !open.is_empty() && open.iter().all(Shared::allows_none))
        };
        // An endpoint that allows no stream on any of its connections would
        // answer another the same way: opening one would only lead every
        // request that waits to open one more whenever a stream or a
        // connection ends, or a SETTINGS frame comes.
        if shut {
            return Ok(None);
        }
        if let Some((at, kind, message)) = &*lock(&slot.failed) {
            if *at >= began {
                if busy {
                    return Ok(None);
                }
                return Err(SendError::Connect(std::io::Error::new(*kind, message.clone())));
            }
        }
        match self.open(address, Some(Arc::clone(&slot.freed))).await {
            Ok((sender, opened, peer)) => {
                let shared = Shared::opened(sender.clone(), opened, peer, Arc::clone(&slot.freed));
                let stream = shared.begin();
                lock(&slot.open).push(shared);
                if busy {
                    tracing::debug!(side = "upstream", %address, "every HTTP/2 connection is at its stream limit; opened another");
                }
                Ok(stream.map(|stream| (sender, opened, Some(stream))))
            }
            Err(SendError::Connect(error)) => {
                *lock(&slot.failed) = Some((Instant::now(), error.kind(), error.to_string()));
                if busy {
                    tracing::debug!(side = "upstream", %address, %error, "no other HTTP/2 connection; waiting for a stream");
                    return Ok(None);
                }
                Err(SendError::Connect(error))
            }
            Err(SendError::Refused(_)) if busy => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A stream on the oldest shared connection of `slot` that has room for
    /// it, closing on the way those that are closed or have been idle for
    /// `idle_timeout`.
    fn take(&self, slot: &Endpoint) -> Option<Taken> {
        let now = Instant::now();
        let mut open = lock(&slot.open);
        open.retain(|shared| shared.keep(now, self.idle_timeout));
        open.iter().find_map(|shared| {
            let stream = shared.begin()?;
            Some((shared.sender.clone(), shared.opened, Some(stream)))
        })
    }

    /// Stop sharing the connection of `endpoint` opened at `opened`.
    fn forget(&self, endpoint: usize, opened: Instant) {
        let Some(slot) = self.endpoints.get(endpoint) else { return };
        lock(&slot.open).retain(|shared| shared.opened != opened);
    }

    /// A new connection to `address`, driven by a task of its own that
    /// holds its place under the breaker's `max_connections` until it ends
    /// (and then tells `freed`), once its upstream has sent its first
    /// SETTINGS; with what the upstream says of its limits there.
    async fn open(
        &self,
        address: SocketAddr,
        freed: Option<Arc<Notify>>,
    ) -> Result<(SendRequest<Sent>, Instant, Arc<Peer>), SendError> {
        let slots = take_slots(self.breaker.as_ref()).map_err(SendError::Refused)?;
        let dialled = Instant::now();
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
        let peer = Arc::new(Peer::new(freed.clone()));
        let io = Watched { stream, frames: FrameReader::default(), peer: Arc::clone(&peer) };
        let (sender, connection) =
            self.builder.handshake(TokioIo::new(io)).await.map_err(|error| {
                SendError::Connect(std::io::Error::other(format!("HTTP/2 handshake: {error}")))
            })?;
        *lock(&peer.place) = slots.map(Connecting::opened);
        let settled = peer.said.notified();
        let ended = Arc::clone(&peer);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(side = "upstream", %address, %error, "HTTP/2 connection failed");
            }
            drop(lock(&ended.place).take());
            // Whoever waits on this connection looks again.
            ended.said.notify_waiters();
            if let Some(freed) = freed {
                freed.notify_waiters();
            }
        });
        // The upstream's SETTINGS come first (RFC 9113, section 3.4): wait
        // for them, within what is left of the connect timeout.
        if !peer.settled.load(Ordering::Acquire) {
            let until = dialled + self.connect_timeout;
            let timed_out = tokio::time::timeout_at(until, settled).await.is_err();
            if !peer.settled.load(Ordering::Acquire) {
                let message = match timed_out {
                    true => {
                        format!("no SETTINGS from the upstream within {:?}", self.connect_timeout)
                    }
                    false => "the upstream closed the connection before its SETTINGS".to_owned(),
                };
                let kind = match timed_out {
                    true => std::io::ErrorKind::TimedOut,
                    false => std::io::ErrorKind::ConnectionReset,
                };
                let error = std::io::Error::new(kind, format!("HTTP/2 handshake: {message}"));
                return Err(SendError::Connect(error));
            }
        }
        Ok((sender, opened, Arc::clone(&peer)))
    }

    /// Close the shared connections idle for `idle_timeout`, or closed by
    /// the upstream, giving back their places under the breaker's limits.
    fn close_idle(&self) {
        let now = Instant::now();
        for slot in &self.endpoints {
            lock(&slot.open).retain(|shared| shared.keep(now, self.idle_timeout));
        }
    }
}

/// An upstream connection's socket, whose incoming frames are read on the
/// way past for the SETTINGS they carry (see [`FrameReader`]).
struct Watched {
    stream: TcpStream,
    frames: FrameReader,
    peer: Arc<Peer>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            this.frames.read(&buf.filled()[before..], &this.peer);
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The frame type of SETTINGS, and the identifier of its
/// `SETTINGS_MAX_CONCURRENT_STREAMS` parameter (RFC 9113, section 6.5).
const SETTINGS: u8 = 0x4;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// Follows the frames an upstream sends, as they are read, to pick out its
/// SETTINGS: each frame's 9-byte header says its length, type and flags;
/// the payload of a SETTINGS frame that is not an acknowledgement is a run
/// of 6-byte parameters (a 16-bit identifier, a 32-bit value). Everything
/// else is skipped by its length. The HTTP/2 library reads the same bytes
/// and refuses what is malformed; this only watches.
#[derive(Debug, Default)]
struct FrameReader {
    /// The header of the frame being read, and how much of it has come (9
    /// once it is whole and its payload is being read).
    head: [u8; 9],
    head_read: usize,
    /// Payload bytes of the current frame still to come.
    left: usize,
    /// Whether the current frame is SETTINGS to be read.
    settings: bool,
    /// The parameter being read, and how much of it has come.
    parameter: [u8; 6],
    parameter_read: usize,
}

impl FrameReader {
    fn read(&mut self, mut bytes: &[u8], peer: &Peer) {
        while !bytes.is_empty() {
            if self.head_read < self.head.len() {
                let take = (self.head.len() - self.head_read).min(bytes.len());
                self.head[self.head_read..self.head_read + take].copy_from_slice(&bytes[..take]);
                self.head_read += take;
                bytes = &bytes[take..];
                if self.head_read == self.head.len() {
                    let [a, b, c, kind, flags, ..] = self.head;
                    self.left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                    self.settings = kind == SETTINGS && flags & 0x1 == 0;
                    self.parameter_read = 0;
                    if self.left == 0 {
                        self.frame_read(peer);
                    }
                }
                continue;
            }
            let take = self.left.min(bytes.len());
            if self.settings {
                for &byte in &bytes[..take] {
                    self.parameter[self.parameter_read] = byte;
                    self.parameter_read += 1;
                    if self.parameter_read == self.parameter.len() {
                        self.parameter_read = 0;
                        let [i, j, v @ ..] = self.parameter;
                        if u16::from_be_bytes([i, j]) == MAX_CONCURRENT_STREAMS {
                            peer.max_streams.store(u32::from_be_bytes(v), Ordering::Release);
                        }
                    }
                }
            }
            self.left -= take;
            bytes = &bytes[take..];
            if self.left == 0 {
                self.frame_read(peer);
            }
        }
    }

    /// The current frame has been read whole; the next header follows.
    fn frame_read(&mut self, peer: &Peer) {
        if self.settings {
            peer.settings_read();
        }
        self.settings = false;
        self.head_read = 0;
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

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = length[1..].to_vec();
        frame.extend([kind, flags, 0, 0, 0, 0]);
        frame.extend(payload);
        frame
    }

    fn parameter(id: u16, value: u32) -> Vec<u8> {
        [&id.to_be_bytes()[..], &value.to_be_bytes()].concat()
    }

    /// The limit is read from the SETTINGS frames among others, however
    /// the bytes are cut into reads; an acknowledgement carries none, and
    /// a later SETTINGS replaces the limit.
    #[test]
    fn the_stream_limit_is_read_off_the_frames_in_any_pieces() {
        let first = [parameter(0x4, 65_535), parameter(0x3, 2)].concat();
        let bytes = [
            frame(SETTINGS, 0, &first),
            frame(0x0, 0, b"some data that is not settings"),
            frame(SETTINGS, 0x1, &[]),
            frame(0x8, 0, &[0, 0, 1, 0]),
        ]
        .concat();
        for piece in [1, 2, 5, 9, 13, bytes.len()] {
            let peer = Peer::new(None);
            assert!(!peer.settled.load(Ordering::Acquire));
            let mut reader = FrameReader::default();
            for chunk in bytes.chunks(piece) {
                reader.read(chunk, &peer);
            }
            assert!(peer.settled.load(Ordering::Acquire), "pieces of {piece}");
            assert_eq!(peer.max_streams(), 2, "pieces of {piece}");
            reader.read(&frame(SETTINGS, 0, &parameter(0x3, 7)), &peer);
            assert_eq!(peer.max_streams(), 7, "pieces of {piece}");
        }
        let peer = Peer::new(None);
        FrameReader::default().read(&frame(SETTINGS, 0, &[]), &peer);
        assert!(peer.settled.load(Ordering::Acquire));
        assert_eq!(peer.max_streams(), u32::MAX as usize, "no limit until one is said");
    }
}
