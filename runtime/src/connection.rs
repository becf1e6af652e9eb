//! One client connection: the framing check on its bytes, its request-head
//! and idle timeouts, and closing it gently on shutdown.
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
//! - **busy**: a request is in flight. The route's `timeout` bounds the wait
//!   for the upstream; the connection itself has no clock.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::framing::{Event, FramingScanner, UNFOLLOWABLE};

/// "No time recorded" in the microsecond clocks of [`ConnectionState`].
const NONE: u64 = u64::MAX;

/// What a connection's reader, its requests and its driver share.
pub(crate) struct ConnectionState {
    epoch: Instant,
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
    /// Wakes the driver when a clock starts.
    wake: Notify,
}

impl ConnectionState {
    pub(crate) fn new() -> Arc<ConnectionState> {
        Arc::new(ConnectionState {
            epoch: Instant::now(),
            verified: AtomicU64::new(0),
            refused: OnceLock::new(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            used: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(NONE - 1)
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
        let refused = if index < self.verified.load(Ordering::Acquire) {
            None
        } else {
            Some(self.refused.get().copied().unwrap_or(UNFOLLOWABLE))
        };
        (InFlight(Arc::clone(self)), refused)
    }

    fn on_scan(&self, event: Event) {
        match event {
            Event::HeadStarted => {
                self.head_started.store(self.now(), Ordering::Release);
                self.wake.notify_one();
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
}

/// Counts one request in flight on its connection until dropped.
pub(crate) struct InFlight(Arc<ConnectionState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.idle_since.store(state.now(), Ordering::Release);
            state.wake.notify_one();
        }
    }
}

/// The client socket as hyper reads it, with every byte also shown to the
/// framing scanner first.
pub(crate) struct ClientStream {
    socket: TcpStream,
    scanner: FramingScanner,
    state: Arc<ConnectionState>,
}

impl ClientStream {
    pub(crate) fn new(
        socket: TcpStream,
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

/// The connection clocks of a listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) head: Duration,
    pub(crate) idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    Head,
    Idle,
}

/// Serve a connection until it ends, a clock runs out, or a stop is
/// signalled; then close it as gently as its state allows.
pub(crate) async fn drive<F: GracefulFuture>(
    serving: F,
    state: Arc<ConnectionState>,
    limits: Limits,
    mut stopping: watch::Receiver<()>,
    peer: SocketAddr,
) {
    let mut serving = std::pin::pin!(serving);
    let result = loop {
        let deadline = state.deadline(limits);
        let expiry = async {
            match deadline {
                Some((at, clock)) => {
                    tokio::time::sleep_until(at).await;
                    clock
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = serving.as_mut() => break result,
            () = state.wake.notified() => {}
            _ = stopping.changed() => {
                if !state.used.load(Ordering::Relaxed) {
                    break Ok(());
                }
                serving.as_mut().shut_down();
                break serving.await;
            }
            clock = expiry => {
                // The clock may have been superseded while the timer slept.
                if state.deadline(limits).is_some_and(|(at, c)| c == clock && at <= Instant::now()) {
                    match clock {
                        Clock::Head => {
                            tracing::debug!(side = "client", %peer, "request head not finished in time; closing");
                            break Ok(());
                        }
                        Clock::Idle => {
                            tracing::debug!(%peer, "idle connection timed out; closing");
                            serving.as_mut().shut_down();
                            break serving.await;
                        }
                    }
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(side = "client", %peer, %error, "connection ended with an error");
    }
}

/// A connection future that can be asked to finish its current exchange and close.
pub(crate) trait GracefulFuture: Future<Output = hyper::Result<()>> {
    fn shut_down(self: Pin<&mut Self>);
}

impl<S> GracefulFuture for http1::Connection<TokioIo<ClientStream>, S>
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
