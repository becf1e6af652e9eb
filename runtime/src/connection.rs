//! One client connection: which protocol it speaks, the framing check on its
//! bytes, its request-head and idle timeouts, and closing it gently on shutdown.
//!
//! A connection whose first bytes are the HTTP/2 connection preface
//! (RFC 9113, section 3.4) is served as HTTP/2 with prior knowledge; any
//! other is HTTP/1.1. [`sniff`] reads just enough to tell, and [`Rewind`]
//! hands those bytes back to whichever server reads the connection. The
//! framing scanner is for HTTP/1 only: HTTP/2 frames every message itself.
//!
//! hyper's own header-read timer also runs while a keep-alive connection
//! waits for its next request, so it cannot tell a slow client from an idle
//! one. The gateway turns it off and keeps both clocks itself, from what the
//! [`FramingScanner`] sees and from the requests in flight:
//! - **idle**: no request in flight and no head begun. It ends the connection
//!   (gracefully, so a request racing the close still completes) after the
//!   listener's `idle_timeout`. A connection that never sends a byte is idle
//!   from the moment it was accepted.
//! - **head**: a head has begun but not ended, and nothing is in flight. It
//!   ends the connection after the listener's `head_timeout`, counted from
//!   the later of the head's first byte and the end of the previous response
//!   (a pipelined head waits its turn without its clock running).
//! - **busy**: a request is in flight. The route's `timeout` and the pool's
//!   stall clock bound the wait for the upstream, and the listener's stall
//!   clock (see [`crate::stall`]) a client that stops sending its body or
//!   taking its response; the connection itself has no clock.
//!
//! The clocks are kept as times in [`ConnectionState`], which requests and
//! the scanner update without waking anyone. The driver holds one timer and
//! looks at the clocks when it fires: it never sleeps past the deadline of a
//! running clock, nor longer than the shorter of the two timeouts, so a
//! clock that starts while it sleeps is looked at before it can run out.
//! A request thus costs the driver nothing; an open connection costs it a
//! wake-up per timeout period.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::{Buf, Bytes};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::framing::{Event, FramingScanner, UNFOLLOWABLE};
use crate::stall::StallingWriter;
use crate::streams::StreamExecutor;

/// "No time recorded" in the microsecond clocks of [`ConnectionState`].
const NONE: u64 = u64::MAX;

/// What a connection's reader, its requests and its driver share.
pub(crate) struct ConnectionState {
    epoch: Instant,
    /// Whether heads pass the framing scanner (HTTP/1) before being served.
    scanned: bool,
    /// Heads that passed the framing checks, in order from the first.
    verified: AtomicU64,
    /// Why the first refused head was refused.
    refused: OnceLock<&'static str>,
    /// Requests handed to the service so far.
    requests: AtomicU64,
    in_flight: AtomicU32,
    /// Microseconds after `epoch` when the current head began, or [`NONE`].
    head_started: AtomicU64,
    /// Microseconds after `epoch` when the connection last became idle, or [`NONE`].
    idle_since: AtomicU64,
    /// Whether any request has started, for the drain.
    used: AtomicBool,
    /// Whether the gateway's own server should close the connection once
    /// no request is in flight (a stop while it serves).
    closing: AtomicBool,
    /// Interim responses on their way to the client, on a connection that
    /// the gateway's own HTTP/1.1 server serves (see [`Interim`]).
    interim: Option<Interim>,
}

/// The most interim (1xx) responses one request passes on to its client;
/// the upstream's further ones are dropped.
pub(crate) const MAX_INTERIM: u8 = 10;

/// The interim (1xx) responses of the request in flight, written for the
/// client by the exchange that reads them from the upstream and sent by the
/// gateway's own HTTP/1.1 server, which polls that exchange in its own task
/// (see [`crate::server1`]). One per connection, made with it: a request
/// that gets no interim response costs a load of `pending` each time the
/// server finds it still waiting for its response, and one of `count` once
/// it has it; the lock is taken only when an upstream sends one.
struct Interim {
    /// Whether `heads` holds bytes not yet sent.
    pending: AtomicBool,
    /// Interim responses the request in flight has had passed on (up to
    /// [`MAX_INTERIM`]).
    count: AtomicU8,
    /// Their heads, as written to the client; empty until the first.
    heads: Mutex<Vec<u8>>,
}

/// Beyond this, the memory of a request's interim heads is given back
/// once they have been sent, rather than kept for the connection's next.
const KEPT_INTERIM: usize = 4 * 1024;

impl ConnectionState {
    /// State for a connection; `scanned` when its heads go through the
    /// framing scanner (HTTP/1).
    pub(crate) fn new(scanned: bool) -> Arc<ConnectionState> {
        Arc::new(ConnectionState::with(scanned, None))
    }

    /// State for a connection that the gateway's own HTTP/1.1 server
    /// serves, which passes interim responses on.
    pub(crate) fn own_server() -> Arc<ConnectionState> {
        let interim = Interim {
            pending: AtomicBool::new(false),
            count: AtomicU8::new(0),
            heads: Mutex::new(Vec::new()),
        };
        Arc::new(ConnectionState::with(false, Some(interim)))
    }

    fn with(scanned: bool, interim: Option<Interim>) -> ConnectionState {
        ConnectionState {
            epoch: Instant::now(),
            scanned,
            verified: AtomicU64::new(0),
            refused: OnceLock::new(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            used: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            interim,
        }
    }

    /// Whether interim responses wait to be sent to the client.
    #[inline]
    pub(crate) fn interim_pending(&self) -> bool {
        self.interim.as_ref().is_some_and(|i| i.pending.load(Ordering::Acquire))
    }

    /// Move the interim heads waiting to be sent to the end of `out`.
    pub(crate) fn take_interim(&self, out: &mut Vec<u8>) {
        let Some(interim) = &self.interim else { return };
        let mut heads = interim.heads.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend_from_slice(&heads);
        heads.clear();
        interim.pending.store(false, Ordering::Release);
    }

    /// End the interim responses of the request whose final response is
    /// about to be written: those still waiting go to the end of `out`, to
    /// be sent ahead of it, and the next request may have its own.
    #[inline]
    pub(crate) fn end_interim(&self, out: &mut Vec<u8>) {
        let Some(interim) = &self.interim else { return };
        if interim.count.load(Ordering::Acquire) == 0 {
            return;
        }
        self.take_interim(out);
        interim.count.store(0, Ordering::Release);
        let mut heads = interim.heads.lock().unwrap_or_else(PoisonError::into_inner);
        if heads.capacity() > KEPT_INTERIM {
            *heads = Vec::new();
        }
    }

    /// Ask the gateway's own server to close the connection once the
    /// request in flight, if any, is answered.
    pub(crate) fn close_soon(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The time since the connection began, in microseconds. An exact
    /// reading: the time the worker read last may be long past on a busy
    /// worker (see [`crate::clock`]), and a clock started from it would
    /// close the connection that much early.
    fn now(&self) -> u64 {
        let since = crate::clock::now().saturating_duration_since(self.epoch);
        u64::try_from(since.as_micros()).unwrap_or(NONE - 1)
    }

    /// Why the framing scanner refused a head on this connection, if it did.
    pub(crate) fn refusal(&self) -> Option<&'static str> {
        self.refused.get().copied()
    }

    fn at(&self, micros: u64) -> Instant {
        self.epoch + Duration::from_micros(micros)
    }

    /// Count a request that hyper hands to the service. Returns its guard,
    /// which must live until the response ends, and the reason to refuse it
    /// when its head failed the framing checks.
    pub(crate) fn begin_request(self: &Arc<Self>) -> (InFlight, Option<&'static str>) {
        self.used.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.idle_since.store(NONE, Ordering::Release);
        let index = self.requests.fetch_add(1, Ordering::AcqRel);
        let refused = if !self.scanned || index < self.verified.load(Ordering::Acquire) {
            None
        } else {
            Some(self.refused.get().copied().unwrap_or(UNFOLLOWABLE))
        };
        (InFlight(Arc::clone(self)), refused)
    }

    pub(crate) fn on_scan(&self, event: Event) {
        match event {
            Event::HeadStarted => {
                self.head_started.store(self.now(), Ordering::Release);
            }
            Event::Head(verdict) => {
                match verdict {
                    Ok(()) => {
                        self.verified.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(reason) => {
                        let _ = self.refused.set(reason);
                    }
                }
                self.head_started.store(NONE, Ordering::Release);
            }
        }
    }

    /// When the connection's current clock runs out, if one is running.
    fn deadline(&self, limits: Limits) -> Option<(Instant, Clock)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        let idle = self.idle_since.load(Ordering::Acquire);
        if head != NONE {
            let start = if idle == NONE { head } else { head.max(idle) };
            Some((self.at(start) + limits.head, Clock::Head))
        } else if idle != NONE {
            Some((self.at(idle) + limits.idle, Clock::Idle))
        } else {
            None
        }
    }

    /// When the driver should next look at the clocks, `now`: at the
    /// running clock's deadline, and no later than `period` from now, which
    /// is as soon as any clock that starts after now can run out.
    fn next_check(&self, limits: Limits, now: Instant) -> Instant {
        let soonest = now + limits.period();
        self.deadline(limits).map_or(soonest, |(at, _)| at.min(soonest))
    }
}

/// Counts one request in flight on its connection until dropped.
pub(crate) struct InFlight(Arc<ConnectionState>);

impl InFlight {
    /// Where the request's interim responses go, when its connection
    /// passes them on.
    pub(crate) fn interim(&self) -> Option<InterimSink> {
        self.0.interim.is_some().then(|| InterimSink(Arc::clone(&self.0)))
    }
}

/// Takes the interim (1xx) responses an upstream sends for one request,
/// for the client (see [`Interim`]).
pub(crate) struct InterimSink(Arc<ConnectionState>);

impl InterimSink {
    /// Pass on an interim response: its head is written for the client,
    /// without its hop-by-hop fields (those its `Connection` names too),
    /// unless the request has had [`MAX_INTERIM`] already. Its fields are
    /// as many and as large as a response head's may be (see
    /// [`crate::http1::MAX_HEAD`]).
    pub(crate) fn send(
        &self,
        status: hyper::StatusCode,
        reason: Option<&hyper::ext::ReasonPhrase>,
        headers: &mut hyper::HeaderMap,
    ) {
        let Some(interim) = &self.0.interim else { return };
        let count = interim.count.load(Ordering::Acquire);
        if count >= MAX_INTERIM {
            return;
        }
        interim.count.store(count + 1, Ordering::Release);
        crate::headers::strip_hop_by_hop(headers);
        // A server sends no Content-Length in a 1xx (RFC 9110, section 8.6).
        headers.remove(hyper::header::CONTENT_LENGTH);
        let mut heads = interim.heads.lock().unwrap_or_else(PoisonError::into_inner);
        crate::server1::encode_interim(status, reason, headers, &mut heads);
        interim.pending.store(true, Ordering::Release);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.idle_since.store(state.now(), Ordering::Release);
        }
    }
}

/// The client socket as hyper reads it, with every byte also shown to the
/// framing scanner first.
pub(crate) struct ClientStream {
    socket: Rewind,
    scanner: FramingScanner,
    state: Arc<ConnectionState>,
}

impl ClientStream {
    pub(crate) fn new(
        socket: Rewind,
        state: Arc<ConnectionState>,
        max_head: usize,
        max_headers: usize,
    ) -> ClientStream {
        ClientStream { socket, scanner: FramingScanner::new(max_head, max_headers), state }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.socket).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let state = &this.state;
            this.scanner.scan(&buf.filled()[before..], &mut |event| state.on_scan(event));
        }
        result
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// The HTTP/2 connection preface a client with prior knowledge opens with.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// Read the first bytes of `socket` until they either are the HTTP/2
/// preface or cannot become it. Returns the protocol and the bytes read,
/// which the server must see again (see [`Rewind`]); `None` when the client
/// closed before sending anything.
pub(crate) async fn sniff(socket: &mut TcpStream) -> io::Result<Option<(Protocol, Bytes)>> {
    let mut seen = Vec::with_capacity(PREFACE.len());
    loop {
        let mut chunk = [0u8; 1024];
        let want = if seen.is_empty() { chunk.len() } else { PREFACE.len() - seen.len() };
        let read = socket.read(&mut chunk[..want]).await?;
        if read == 0 {
            return Ok((!seen.is_empty()).then(|| (Protocol::Http1, Bytes::from(seen))));
        }
        seen.extend_from_slice(&chunk[..read]);
        let common = seen.len().min(PREFACE.len());
        if seen[..common] != PREFACE[..common] {
            return Ok(Some((Protocol::Http1, Bytes::from(seen))));
        }
        if seen.len() >= PREFACE.len() {
            return Ok(Some((Protocol::Http2, Bytes::from(seen))));
        }
    }
}

/// A client socket that first gives back the bytes [`sniff`] read, and
/// whose writes fail once the client has taken none for `stall`.
pub(crate) struct Rewind {
    prefix: Bytes,
    socket: StallingWriter<TcpStream>,
}

impl Rewind {
    pub(crate) fn new(prefix: Bytes, socket: TcpStream, stall: Duration) -> Rewind {
        Rewind { prefix, socket: StallingWriter::new(socket, stall) }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// The connection clocks of a listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) head: Duration,
    pub(crate) idle: Duration,
}

impl Limits {
    /// The longest the driver may sleep without looking at the clocks: the
    /// shorter timeout, and never under a millisecond so that it cannot spin.
    fn period(self) -> Duration {
        self.head.min(self.idle).max(Duration::from_millis(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    Head,
    Idle,
}

/// Which stop came. A shutdown outranks a removal: one that comes with a
/// removal is taken as the shutdown, whose drain timeout bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stopped {
    ListenerRemoved = 1,
    Shutdown = 2,
}

impl Stopped {
    fn from_code(code: u8) -> Option<Stopped> {
        match code {
            0 => None,
            1 => Some(Stopped::ListenerRemoved),
            _ => Some(Stopped::Shutdown),
        }
    }
}

/// A listener's side of its connections' stops: what tells each connection
/// it accepted to close once its requests in flight are answered. Dropping
/// the last handle stops them as a removal would.
///
/// A connection polls its [`Stop`] at every wake of its task, so that poll
/// is two atomic loads and a waker check; the cost of telling every
/// connection falls on the rare stop instead.
#[derive(Clone, Default)]
pub(crate) struct StopSignal {
    hub: Arc<Hub>,
}

#[derive(Default)]
struct Hub {
    /// The strongest stop sent so far, as a [`Stopped`] code (0: none), for
    /// connections that subscribe after it.
    sent: AtomicU8,
    /// The connections that subscribed, some of them closed since.
    flags: Mutex<Vec<Weak<Flag>>>,
}

#[derive(Default)]
struct Flag {
    stopped: AtomicU8,
    waker: AtomicWaker,
}

impl Flag {
    fn raise(&self, stopped: Stopped) {
        self.stopped.fetch_max(stopped as u8, Ordering::AcqRel);
        self.waker.wake();
    }
}

impl StopSignal {
    /// A connection's stop, raised by the next [`send`](Self::send) (or at
    /// once, if one was sent already). `shutdown` is held for the drain's
    /// count of open connections.
    pub(crate) fn subscribe(&self, shutdown: watch::Receiver<()>) -> Stop {
        let flag = Arc::new(Flag::default());
        let mut flags = self.hub.flags.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget closed connections once they could make up half the list,
        // so the list stays within twice the open connections.
        if flags.len() >= 64 && flags.len().is_power_of_two() {
            flags.retain(|flag| flag.strong_count() > 0);
        }
        flags.push(Arc::downgrade(&flag));
        drop(flags);
        if let Some(sent) = Stopped::from_code(self.hub.sent.load(Ordering::Acquire)) {
            flag.raise(sent);
        }
        Stop { flag, shutdown }
    }

    /// Tell every connection subscribed, and every one that subscribes from
    /// now on.
    pub(crate) fn send(&self, stopped: Stopped) {
        self.hub.send(stopped);
    }
}

impl Hub {
    fn send(&self, stopped: Stopped) {
        self.sent.fetch_max(stopped as u8, Ordering::AcqRel);
        let flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        for flag in flags.iter().filter_map(Weak::upgrade) {
            flag.raise(stopped);
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.send(Stopped::ListenerRemoved);
    }
}

/// What tells a connection to close once its requests in flight are
/// answered: the gateway shutting down, or a reload removing the listener
/// that accepted it. Clones share one flag and are polled by one task.
#[derive(Clone)]
pub(crate) struct Stop {
    flag: Arc<Flag>,
    /// Held while the connection is open, so the drain knows when the last
    /// has closed.
    pub(crate) shutdown: watch::Receiver<()>,
}

impl Stop {
    /// Wait for a stop.
    pub(crate) async fn signalled(&mut self) -> Stopped {
        std::future::poll_fn(|cx| {
            let raised = || Stopped::from_code(self.flag.stopped.load(Ordering::Acquire));
            if let Some(stopped) = raised() {
                return Poll::Ready(stopped);
            }
            self.flag.waker.register(cx.waker());
            raised().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }
}

/// Serve a connection until it ends, a clock runs out, or a stop is
/// signalled; then close it as gently as its state allows. Returns how the
/// serving future ended, or `None` when the connection was closed before it
/// did (a clock ran out on a head, or a stop came before any request).
///
/// After a shutdown the drain's own timeout bounds the wait. After its
/// listener was removed, a connection with no request in flight that has
/// not closed within `head_timeout` (an HTTP/2 client that never answers
/// the GOAWAY's PING) is closed.
pub(crate) async fn drive<F: GracefulFuture>(
    serving: F,
    state: Arc<ConnectionState>,
    limits: Limits,
    mut stop: Stop,
    peer: SocketAddr,
) -> Option<F::Output> {
    let mut serving = std::pin::pin!(serving);
    let mut timer =
        std::pin::pin!(tokio::time::sleep_until(state.next_check(limits, Instant::now())));
    loop {
        tokio::select! {
            biased;
            result = serving.as_mut() => return Some(result),
            stopped = stop.signalled() => {
                if !state.used.load(Ordering::Relaxed) {
                    return None;
                }
                serving.as_mut().shut_down();
                return match stopped {
                    Stopped::Shutdown => Some(serving.await),
                    Stopped::ListenerRemoved => {
                        tracing::debug!(%peer, "listener removed by a reload; closing the connection");
                        closed_within(serving, &state, limits.head).await
                    }
                };
            }
            () = timer.as_mut() => {
                let now = Instant::now();
                match state.deadline(limits) {
                    Some((at, Clock::Head)) if at <= now => {
                        tracing::debug!(side = "client", %peer, "request head not finished in time; closing");
                        return None;
                    }
                    Some((at, Clock::Idle)) if at <= now => {
                        tracing::debug!(%peer, "idle connection timed out; closing");
                        serving.as_mut().shut_down();
                        return closed_within(serving, &state, limits.head).await;
                    }
                    _ => timer.as_mut().reset(state.next_check(limits, now)),
                }
            }
        }
    }
}

/// Wait for a connection asked to shut down while idle to close, for
/// `grace` at a time while no request is in flight. An HTTP/2 shutdown
/// waits for the client to acknowledge a PING; a client that never does
/// would otherwise keep the connection, and its place under the
/// listener's connection limit, for ever. A request that arrived before
/// the client learnt of the shutdown is still finished.
async fn closed_within<F: Future>(
    mut serving: Pin<&mut F>,
    state: &ConnectionState,
    grace: Duration,
) -> Option<F::Output> {
    loop {
        match tokio::time::timeout(grace, serving.as_mut()).await {
            Ok(ended) => return Some(ended),
            Err(_) if state.in_flight.load(Ordering::Acquire) == 0 => return None,
            Err(_) => {}
        }
    }
}

/// A connection future that can be asked to finish its current exchange and close.
pub(crate) trait GracefulFuture: Future {
    fn shut_down(self: Pin<&mut Self>);
}

impl<S> GracefulFuture for http1::UpgradeableConnection<TokioIo<ClientStream>, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<S> GracefulFuture for http2::Connection<TokioIo<Rewind>, S, StreamExecutor>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The gateway's own HTTP/1.1 server (see [`crate::server1`]) as a
/// [`GracefulFuture`]: asked to shut down, it closes the connection once no
/// request is in flight.
pub(crate) struct OwnServer<F> {
    serving: Pin<Box<F>>,
    state: Arc<ConnectionState>,
}

impl<F: Future> OwnServer<F> {
    pub(crate) fn new(serving: F, state: Arc<ConnectionState>) -> OwnServer<F> {
        OwnServer { serving: Box::pin(serving), state }
    }
}

impl<F: Future> Future for OwnServer<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.serving.as_mut().poll(cx)
    }
}

impl<F: Future> GracefulFuture for OwnServer<F> {
    fn shut_down(self: Pin<&mut Self>) {
        self.state.close_soon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(signal: &StopSignal, count: usize) -> Vec<Stop> {
        let (_sender, receiver) = watch::channel(());
        (0..count).map(|_| signal.subscribe(receiver.clone())).collect()
    }

    /// The stop `stop` has been told of, without waiting.
    fn raised(stop: &mut Stop) -> Option<Stopped> {
        let mut signalled = std::pin::pin!(stop.signalled());
        match signalled.as_mut().poll(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(stopped) => Some(stopped),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn every_connection_hears_a_stop_and_a_waiting_one_is_woken() {
        let signal = StopSignal::default();
        let mut early = stops(&signal, 3);
        assert!(early.iter_mut().all(|stop| raised(stop).is_none()));
        let mut waiting = early.pop().expect("three stops");
        let woken = tokio::spawn(async move { waiting.signalled().await });
        tokio::task::yield_now().await;

        signal.send(Stopped::ListenerRemoved);
        assert_eq!(woken.await.expect("the waiting task ends"), Stopped::ListenerRemoved);
        assert!(early.iter_mut().all(|stop| raised(stop) == Some(Stopped::ListenerRemoved)));
        // One that subscribes after the stop hears it at once.
        assert_eq!(raised(&mut stops(&signal, 1)[0]), Some(Stopped::ListenerRemoved));
    }

    #[test]
    fn interim_heads_lose_hop_by_hop_fields_and_stop_at_the_bound() {
        let state = ConnectionState::own_server();
        let (in_flight, _) = state.begin_request();
        let sink = in_flight.interim().expect("the gateway's own server takes interim responses");
        let status = hyper::StatusCode::from_u16(103).expect("a status");
        for n in 0..u32::from(MAX_INTERIM) + 2 {
            let mut headers = hyper::HeaderMap::new();
            headers.insert("link", hyper::header::HeaderValue::from(n));
            headers.insert("x-hop", hyper::header::HeaderValue::from_static("1"));
            headers.insert("connection", hyper::header::HeaderValue::from_static("x-hop"));
            headers.insert("content-length", hyper::header::HeaderValue::from_static("0"));
            sink.send(status, None, &mut headers);
        }
        assert!(state.interim_pending());
        let mut out = Vec::new();
        state.take_interim(&mut out);
        assert!(!state.interim_pending());
        let expected: String = (0..MAX_INTERIM)
            .map(|n| format!("HTTP/1.1 103 Early Hints\r\nlink: {n}\r\n\r\n"))
            .collect();
        assert_eq!(String::from_utf8_lossy(&out), expected);

        // Still the same request: nothing more. The next one has its own.
        let mut link = hyper::HeaderMap::new();
        link.insert("link", hyper::header::HeaderValue::from_static("next"));
        sink.send(status, None, &mut link.clone());
        out.clear();
        state.end_interim(&mut out);
        assert!(out.is_empty());
        sink.send(status, None, &mut link);
        state.end_interim(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), "HTTP/1.1 103 Early Hints\r\nlink: next\r\n\r\n");

        // A connection that hyper's server serves takes none.
        let (in_flight, _) = ConnectionState::new(true).begin_request();
        assert!(in_flight.interim().is_none());
    }

    #[test]
    fn a_shutdown_outranks_a_removal_whichever_came_first() {
        let signal = StopSignal::default();
        let mut stop = stops(&signal, 1).remove(0);
        signal.send(Stopped::Shutdown);
        signal.send(Stopped::ListenerRemoved);
        assert_eq!(raised(&mut stop), Some(Stopped::Shutdown));

        let signal = StopSignal::default();
        let mut stop = stops(&signal, 1).remove(0);
        signal.send(Stopped::ListenerRemoved);
        signal.send(Stopped::Shutdown);
        assert_eq!(raised(&mut stop), Some(Stopped::Shutdown));
    }

    #[test]
    fn dropping_the_signal_stops_its_connections_as_a_removal() {
        let signal = StopSignal::default();
        let mut stop = stops(&signal, 1).remove(0);
        drop(signal);
        assert_eq!(raised(&mut stop), Some(Stopped::ListenerRemoved));
    }

    #[test]
    fn closed_connections_are_forgotten_and_open_ones_kept() {
        let signal = StopSignal::default();
        let mut kept = Vec::new();
        for round in 0..1_000 {
            let stop = stops(&signal, 1).remove(0);
            if round % 100 == 0 {
                kept.push(stop);
            }
        }
        let listed = signal.hub.flags.lock().expect("not poisoned").len();
        assert!(listed < 2 * 128, "{listed} flags listed for {} open connections", kept.len());
        signal.send(Stopped::Shutdown);
        assert!(kept.iter_mut().all(|stop| raised(stop) == Some(Stopped::Shutdown)));
    }

    /// The idle and head clocks of a connection served by a worker kept
    /// busy (see `crate::clock::sleep_on_a_busy_worker`) start when they
    /// start, not at the time the worker read last, which may be long past.
    #[test]
    fn clocks_started_on_a_busy_worker_run_their_whole_time() {
        let runtime = crate::clock::runtime().build().expect("a runtime");
        runtime.block_on(async {
            let limits =
                Limits { head: Duration::from_millis(300), idle: Duration::from_millis(400) };
            let state = ConnectionState::own_server();
            let (asleep, busy) = (Duration::from_millis(200), Duration::from_millis(400));
            crate::clock::sleep_on_a_busy_worker(asleep, busy).await;

            // A response ends: the idle clock starts.
            let (in_flight, _) = state.begin_request();
            let ended = Instant::now();
            drop(in_flight);
            let (at, clock) = state.deadline(limits).expect("the idle clock runs");
            assert_eq!(clock, Clock::Idle);
            let early = (ended + limits.idle).saturating_duration_since(at);
            assert!(early < Duration::from_millis(20), "the idle clock starts {early:?} early");

            // A head begins: the head clock starts.
            let begun = Instant::now();
            state.on_scan(Event::HeadStarted);
            let (at, clock) = state.deadline(limits).expect("the head clock runs");
            assert_eq!(clock, Clock::Head);
            let early = (begun + limits.head).saturating_duration_since(at);
            assert!(early < Duration::from_millis(20), "the head clock starts {early:?} early");
        });
    }
}
