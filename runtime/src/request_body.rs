//! The client's request body on its way to the upstream.
//!
//! [`RequestBody`] streams the client's body through without buffering and
//! does three things on the way:
//! - it counts the bytes and fails the body, which aborts the upstream
//!   request, once they pass the route's `max_body_size`; the proxy then
//!   answers 413 (a declared `Content-Length` that is already too large is
//!   refused before anything is sent);
//! - towards an HTTP/1.1 pool it drops the trailer section of a chunked
//!   body, so that no field can reach the upstream without passing the
//!   gateway's header rules (a trailer `X-Forwarded-For` or `Content-Length`
//!   would otherwise bypass them); towards an HTTP/2 pool, where trailers
//!   carry meaning (gRPC), it passes them on without the fields those rules
//!   govern, nor those the request head's `Connection` named (see
//!   [`crate::headers::strip_trailer_fields`]);
//! - for a request that sent `Expect: 100-continue`, it waits before reading
//!   the client's body (which is what makes hyper send the client its
//!   `100 Continue`) until the upstream has sent its own 100, or a short
//!   while has passed without an answer. An upstream that refuses the
//!   request early (413, 401...) is thus answered through, and the client
//!   never sends a body nobody wants;
//! - it takes the client's body from a shared [`BodySlot`] only when the
//!   upstream client first asks for data. If an attempt fails before that
//!   (a refused connection, or a reused connection that turned out closed),
//!   the body is still whole in the slot and the request can be sent again;
//! - for a request that may be sent twice (an idempotent one, or any where
//!   the route retries the others), it keeps a copy of a body of up to the
//!   route's `replay_body_limit` (64 KiB by default) as it streams (the data
//!   frames share the client's buffers), so that once the client has sent
//!   all of it a retry, or the resend after a reused connection turned out
//!   closed, can send it again. A body that outgrows the limit drops its
//!   copy at once. An attempt that ends with the body read only in part (an
//!   early answer whose upload stopped, a reset) gives the body back to the
//!   slot while the copy holds all it read, and the next attempt sends the
//!   copy and then the rest as the client sends it, so a retry within the
//!   limit need not give up on a body still on its way.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::stall::Stall;

/// Why the body sent upstream ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    #[error("request body is larger than the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("request body could not be read from the client: {0}")]
    Client(#[source] hyper::Error),
    #[error("the client sent no more of its request body for {0:?}")]
    Stalled(Duration),
    #[error("the request body went to an earlier attempt, and no whole copy was kept")]
    Spent,
    #[error("the request's trailer section has more fields than the listener's limit of {limit}")]
    TooManyTrailerFields { limit: usize },
    /// An HTTP/2 trailer field whose value begins or ends with whitespace,
    /// which makes the request malformed (RFC 9113, section 8.2.1).
    #[error("a field of the request's trailer section has a value padded with whitespace")]
    PaddedTrailerValue,
}

impl BodyError {
    /// What the client did wrong, when this failure is on the client's
    /// side of the body: every failure but [`BodyError::Spent`], which is
    /// the gateway's.
    pub(crate) fn client_fault(&self) -> Option<ClientFault> {
        match self {
            BodyError::TooLarge { limit } => Some(ClientFault::TooLarge { limit: *limit }),
            BodyError::Stalled(limit) => Some(ClientFault::Stalled(*limit)),
            BodyError::Client(error) if client_left(error) => Some(ClientFault::Left),
            BodyError::Client(_)
            | BodyError::TooManyTrailerFields { .. }
            | BodyError::PaddedTrailerValue => Some(ClientFault::Malformed),
            BodyError::Spent => None,
        }
    }
}

/// Whether a failure to read the client's body means the client went away:
/// its connection ended or was reset before the body was whole, or (over
/// HTTP/2) it reset its stream, rather than sent something malformed.
fn client_left(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            );
        }
        // HTTP/2: the client reset the stream or closed the connection,
        // rather than the gateway refusing what it sent.
        if let Some(e) = cause.downcast_ref::<h2::Error>() {
            return e.is_remote() || e.is_io();
        }
        source = cause.source();
    }
    false
}

/// How the client's side of a request body failed, whoever reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The client went away before the body was whole.
    Left,
    /// The body was malformed: a bad chunk or trailer, say.
    Malformed,
    /// The client sent nothing more for the listener's `stall_timeout`.
    Stalled(Duration),
    /// The body passed the route's `max_body_size`.
    TooLarge { limit: u64 },
}

/// The first failure on the client's side of a request body, as its
/// [`BodySlot`] keeps it.
///
/// A connection that sends the body from a task of its own (HTTP/2, and
/// hyper-util's client for upgrades) does not always hand the body's error
/// back: hyper's HTTP/2 client resets the stream and fails the exchange
/// with an error of its own, which says only that the stream was reset.
/// The slot keeps what happened, so the exchange's failure can be told
/// apart from the endpoint's.
#[derive(Debug, Clone)]
pub struct ClientFailure {
    pub(crate) fault: ClientFault,
    message: String,
}

impl std::fmt::Display for ClientFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A request's body as the client sends it: read by hyper, within the
/// listener's `stall_timeout` for each wait on the client, or none at all
/// (a request the gateway's own HTTP/1.1 server took, which has no body).
///
/// An HTTP/2 body that declares its length can reach it and still go on:
/// its stream has not ended, and more DATA would make the request
/// malformed (RFC 9113, section 8.1.1), which h2 finds only when that DATA
/// comes. The frame that completes the declared length is therefore held
/// back until the stream ends: an HTTP/1.1 upstream framed by that length
/// never holds a whole body, and answers, for a request that then turns
/// out to be malformed (the stream is reset, and the upstream connection
/// with it). A body that ends with its last DATA frame, as clients send
/// it, is never held; nor is an HTTP/1.1 client's, which ends at its length.
///
/// A trailer section with more fields than the listener's `max_headers`
/// fails the body, as hyper's HTTP/1.1 parser fails such a chunked body.
pub enum ClientBody {
    /// The body, its stall clock, a frame held back (see above), and the
    /// most fields its trailers may have.
    Hyper(Incoming, Stall, Option<Box<Frame<Bytes>>>, usize),
    Empty,
}

impl ClientBody {
    /// `body`, whose client may leave it waiting for at most `stall` at a
    /// time, and send at most `max_fields` trailer fields.
    pub(crate) fn hyper(body: Incoming, stall: Duration, max_fields: usize) -> ClientBody {
        ClientBody::Hyper(body, Stall::new(stall), None, max_fields)
    }

    /// Whether the body declares a length of 0 and has not ended: an
    /// HTTP/2 stream whose HEADERS said `content-length: 0` without
    /// END_STREAM. Nothing is left to hold back (see above) when DATA
    /// follows, so such a request is not whole until its stream ends.
    pub(crate) fn awaits_empty_end(&self) -> bool {
        !self.is_end_stream() && self.size_hint().exact() == Some(0)
    }

    /// Wait, within the body's stall clock, for the end of a body that
    /// [awaits its empty end](Self::awaits_empty_end). `Ok` once the stream
    /// has ended with nothing, empty DATA frames or trailers (which are kept
    /// for the upstream); `Err(None)` when data came instead (h2 resets such
    /// a stream itself, so this is seldom seen), and `Err` with the body's
    /// failure otherwise.
    pub(crate) async fn empty_end(&mut self) -> Result<(), Option<BodyError>> {
        std::future::poll_fn(|cx| loop {
            let frame = match Pin::new(&mut *self).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(Some(error))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(_) => return Poll::Ready(Err(None)),
                Err(trailers) => {
                    if let ClientBody::Hyper(_, _, held, _) = self {
                        *held = Some(Box::new(trailers));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        })
        .await
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let ClientBody::Hyper(body, stall, held, max_fields) = self.get_mut() else {
            return Poll::Ready(None);
        };
        loop {
            // A held frame goes on once the stream has ended as declared.
            if held.is_some() && body.is_end_stream() {
                return Poll::Ready(held.take().map(|frame| Ok(*frame)));
            }
            let frame = match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => {
                    let limit = stall.limit();
                    return stall.poll_expired(cx).map(|()| Some(Err(BodyError::Stalled(limit))));
                }
                Poll::Ready(None) => {
                    stall.progress();
                    return Poll::Ready(held.take().map(|frame| Ok(*frame)));
                }
                Poll::Ready(Some(Err(error))) => {
                    // The stream failed: what was held never goes on.
                    *held = None;
                    return Poll::Ready(Some(Err(BodyError::Client(error))));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            stall.progress();
            if frame.trailers_ref().is_some_and(|trailers| trailers.len() > *max_fields) {
                *held = None;
                let limit = *max_fields;
                return Poll::Ready(Some(Err(BodyError::TooManyTrailerFields { limit })));
            }
            // (HTTP/1.1 parsers take the whitespace off; HTTP/2 keeps it.)
            if frame.trailers_ref().is_some_and(crate::headers::has_padded_value) {
                *held = None;
                return Poll::Ready(Some(Err(BodyError::PaddedTrailerValue)));
            }
            if let Some(earlier) = held.take() {
                // An empty frame adds nothing; trailers go after the held data.
                if frame.data_ref().is_some_and(Bytes::is_empty) {
                    *held = Some(earlier);
                    continue;
                }
                *held = Some(Box::new(frame));
                return Poll::Ready(Some(Ok(*earlier)));
            }
            let completes =
                frame.is_data() && body.size_hint().exact() == Some(0) && !body.is_end_stream();
            if completes {
                *held = Some(Box::new(frame));
                continue;
            }
            return Poll::Ready(Some(Ok(frame)));
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(body, _, held, _) => held.is_none() && body.is_end_stream(),
            ClientBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(_, _, Some(held), _) => {
                SizeHint::with_exact(held.data_ref().map_or(0, |data| data.len() as u64))
            }
            ClientBody::Hyper(body, _, None, _) => body.size_hint(),
            ClientBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The client's body, until an attempt to send it upstream starts reading it.
pub(crate) struct BodySlot {
    body: Mutex<Option<ClientBody>>,
    end_stream: bool,
    size_hint: SizeHint,
    too_large: AtomicBool,
    limit: Option<u64>,
    /// Whether the body keeps its trailers (see [`BodySlot::with`]).
    trailers: Option<Box<[hyper::header::HeaderName]>>,
    /// Resolves when the body may be read; see the module doc.
    gate: Mutex<Option<Gate>>,
    /// Frames handed on so far, by any attempt.
    moved: AtomicU64,
    /// Whether the reader last found the client had nothing to give.
    on_client: AtomicBool,
    /// The copy of the body kept to send it again.
    replay: Mutex<Replay>,
    /// Whether a copy was wanted at all (most bodies skip the lock).
    keeping: bool,
    /// The first failure on the client's side of the body, once one came.
    failure: OnceLock<ClientFailure>,
    /// Whether an attempt read the client's body to its end.
    finished: AtomicBool,
    /// Told when the body may have become whole, or never will: the copy
    /// was completed or dropped, the client's side failed, or an attempt
    /// gave the body back (see [`BodySlot::whole`]).
    changed: tokio::sync::Notify,
}

/// The copy of a body that [`BodySlot`] keeps so that a retry or a resend
/// can send it again.
enum Replay {
    /// No copy is kept: the request is never sent twice, its body is empty
    /// or larger than the limit, or it outgrew the limit.
    Off,
    /// The body so far, while it is still within `limit` bytes.
    Recording { pieces: Vec<Piece>, bytes: u64, limit: u64 },
    /// The whole body, as the client sent it.
    Complete(Arc<[Piece]>),
}

/// One frame of a kept body.
#[derive(Clone)]
enum Piece {
    Data(Bytes),
    Trailers(hyper::HeaderMap),
}

impl Piece {
    fn frame(self) -> Frame<Bytes> {
        match self {
            Piece::Data(data) => Frame::data(data),
            Piece::Trailers(trailers) => Frame::trailers(trailers),
        }
    }
}

/// What reading a body waits for first.
pub(crate) type Gate = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a request that expects `100 Continue` holds its body back when
/// the upstream says nothing, as curl waits for a server.
const CONTINUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// For a request that sent `Expect: 100-continue`, a gate that opens when
/// the returned [`Notify`] is told the upstream sent `100 Continue`, or
/// after [`CONTINUE_WAIT`].
pub(crate) fn continue_gate(
    headers: &hyper::HeaderMap,
) -> Option<(Arc<tokio::sync::Notify>, Gate)> {
    let expect = headers.get(hyper::header::EXPECT)?;
    if !expect.as_bytes().eq_ignore_ascii_case(b"100-continue") {
        return None;
    }
    let continued = Arc::new(tokio::sync::Notify::new());
    let told = Arc::clone(&continued);
    let gate: Gate = Box::pin(async move {
        tokio::select! {
            () = told.notified() => {}
            () = tokio::time::sleep(CONTINUE_WAIT) => {}
        }
    });
    Some((continued, gate))
}

impl BodySlot {
    /// A slot whose body keeps its trailers when `trailers` is `Some`,
    /// less the fields that may not travel in them and those it lists
    /// (the fields the request head's `Connection` named), is read only
    /// once `gate` resolves, and is kept for retries while it is no larger
    /// than `replay_limit` bytes (0: not kept).
    pub(crate) fn with(
        body: ClientBody,
        limit: Option<u64>,
        trailers: Option<Box<[hyper::header::HeaderName]>>,
        gate: Option<Gate>,
        replay_limit: u64,
    ) -> Arc<BodySlot> {
        let replay = if replay_limit == 0
            || body.is_end_stream()
            || body.size_hint().exact().is_some_and(|n| n > replay_limit)
        {
            Replay::Off
        } else {
            Replay::Recording { pieces: Vec::new(), bytes: 0, limit: replay_limit }
        };
        Arc::new(BodySlot {
            keeping: matches!(replay, Replay::Recording { .. }),
            replay: Mutex::new(replay),
            trailers,
            gate: Mutex::new(gate),
            end_stream: body.is_end_stream(),
            size_hint: body.size_hint(),
            body: Mutex::new(Some(body)),
            too_large: AtomicBool::new(false),
            limit,
            moved: AtomicU64::new(0),
            on_client: AtomicBool::new(false),
            failure: OnceLock::new(),
            finished: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// A body for one attempt. It is the client's whole body when
    /// [`BodySlot::is_whole`] holds. An earlier attempt whose exchange
    /// failed may still read the body after that was checked (an HTTP/2
    /// body goes out from a task of its own, which learns of the failure
    /// only when next polled): this attempt then sends the whole copy, if
    /// one was kept meanwhile, and otherwise fails at its first read rather
    /// than send part of the body, or none of it, as if that were all.
    pub(crate) fn attempt(self: &Arc<Self>) -> RequestBody {
        let replay = self.has_copy().then_some(0);
        RequestBody { slot: Arc::clone(self), body: None, seen: 0, replay }
    }

    /// Whether the client's body can still be sent in full: no attempt holds
    /// it (it is empty, was never read, or an attempt gave it back with a
    /// copy of all it had read), or a copy of all of it was kept.
    pub(crate) fn is_whole(&self) -> bool {
        self.end_stream || self.body.lock().is_ok_and(|b| b.is_some()) || self.has_copy()
    }

    /// Wait until the body can be sent in full again ([`BodySlot::is_whole`],
    /// then `true`), or never can (`false`): its copy outgrew the replay
    /// limit, or the client's side failed. A try that ended before the body
    /// was all sent (an early answer, a reset) holds it until its upload
    /// finishes, which completes the copy, or ends, which gives the body
    /// back to the slot; the caller bounds the wait.
    pub(crate) async fn whole(&self) -> bool {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.is_whole() {
                return true;
            }
            if !self.recording() || self.failure.get().is_some() || self.was_too_large() {
                return false;
            }
            changed.await;
        }
    }

    /// Whether a copy of the body is still being kept as it streams.
    fn recording(&self) -> bool {
        self.keeping && matches!(self.replay.lock().as_deref(), Ok(Replay::Recording { .. }))
    }

    /// The pieces and bytes of the copy kept so far, while it is recorded.
    fn recorded(&self) -> (usize, u64) {
        match self.replay.lock().as_deref() {
            Ok(Replay::Recording { pieces, bytes, .. }) => (pieces.len(), *bytes),
            _ => (0, 0),
        }
    }

    /// Whether a copy of the whole body was kept.
    fn has_copy(&self) -> bool {
        self.keeping && matches!(self.replay.lock().as_deref(), Ok(Replay::Complete(_)))
    }

    /// Keep `piece` in the copy for retries, if one is being kept.
    fn keep(&self, piece: impl FnOnce() -> Piece, len: u64) {
        if !self.keeping {
            return;
        }
        let Ok(mut replay) = self.replay.lock() else { return };
        if let Replay::Recording { pieces, bytes, limit } = &mut *replay {
            *bytes += len;
            if *bytes > *limit {
                *replay = Replay::Off;
                self.changed.notify_waiters();
            } else {
                pieces.push(piece());
            }
        }
    }

    /// Piece `n` of the kept copy, whole or still recorded, if it is that long.
    fn kept(&self, n: usize) -> Option<Piece> {
        match &*self.replay.lock().ok()? {
            Replay::Complete(pieces) => pieces.get(n).cloned(),
            Replay::Recording { pieces, .. } => pieces.get(n).cloned(),
            Replay::Off => None,
        }
    }

    /// Pieces in the whole kept copy (0 without one).
    fn kept_len(&self) -> usize {
        match self.replay.lock().as_deref() {
            Ok(Replay::Complete(pieces)) => pieces.len(),
            _ => 0,
        }
    }

    /// The client's body has ended: it was read whole, and so is a copy
    /// kept so far.
    fn kept_all(&self) {
        self.finished.store(true, Ordering::Release);
        if !self.keeping {
            return;
        }
        let Ok(mut replay) = self.replay.lock() else { return };
        if let Replay::Recording { pieces, .. } = &mut *replay {
            *replay = Replay::Complete(std::mem::take(pieces).into());
        }
        drop(replay);
        self.changed.notify_waiters();
    }

    /// Whether the client's body, not yet read to its end, never will be
    /// now that the exchange has its answer (`answered`: an upstream
    /// response) or has failed: no attempt holds the body any more (this
    /// is the caller's only reference), or, after a failure, the attempt
    /// that still does is about to drop it. The server of an HTTP/1.1
    /// connection then cannot find where the next request begins, and
    /// closes the connection after the response.
    pub(crate) fn left_unread(self: &Arc<Self>, answered: bool) -> bool {
        !self.end_stream
            && !self.finished.load(Ordering::Acquire)
            && (!answered || Arc::strong_count(self) == 1)
    }

    /// The route's body size limit.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether the body was cut off for passing the route's limit.
    pub(crate) fn was_too_large(&self) -> bool {
        self.too_large.load(Ordering::Acquire)
    }

    /// The first failure on the client's side of the body, if there was
    /// one (see [`ClientFailure`]).
    pub(crate) fn client_failure(&self) -> Option<&ClientFailure> {
        self.failure.get()
    }

    /// Remember `error`, when it is the client's and the first.
    fn failed(&self, error: &BodyError) {
        if let Some(fault) = error.client_fault() {
            let _ = self.failure.set(ClientFailure { fault, message: error.to_string() });
        }
        if self.keeping {
            self.changed.notify_waiters();
        }
    }

    /// Whether the body is still on its way from the client, and was last
    /// waited for there: a try whose time runs out now ran out on the
    /// client's slowness, not the endpoint's.
    pub(crate) fn awaits_client(&self) -> bool {
        !self.end_stream
            && !self.finished.load(Ordering::Acquire)
            && self.on_client.load(Ordering::Relaxed)
    }

    /// How far sending the body has got: the frames handed on so far, and
    /// whether the reader last waited on the client (whose wait is the
    /// listener's stall clock's, not the pool's).
    pub(crate) fn progress(&self) -> (u64, bool) {
        (self.moved.load(Ordering::Relaxed), self.on_client.load(Ordering::Relaxed))
    }
}

/// One attempt's view of the client's body. See the module doc.
pub struct RequestBody {
    slot: Arc<BodySlot>,
    body: Option<ClientBody>,
    seen: u64,
    /// For an attempt that sends the slot's kept copy: the next piece of
    /// it to send.
    replay: Option<u32>,
}

impl RequestBody {
    /// The slot this attempt reads from.
    pub(crate) fn slot(&self) -> &Arc<BodySlot> {
        &self.slot
    }

    /// Whether this attempt has started reading the client's body (or
    /// sending its kept copy).
    pub(crate) fn has_started(&self) -> bool {
        self.body.is_some() || self.replay.is_some_and(|next| next > 0)
    }
}

/// An attempt that ends with the client's body read only in part gives it
/// back to the slot while the copy holds all it read, so that a retry can
/// send that copy and then the rest; otherwise the body goes with it.
impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else { return };
        let slot = &self.slot;
        if !slot.keeping {
            return;
        }
        let unread = !slot.finished.load(Ordering::Acquire) && !body.is_end_stream();
        if unread && slot.recording() && slot.failure.get().is_none() && !slot.was_too_large() {
            if let Ok(mut held) = slot.body.lock() {
                if held.is_none() {
                    *held = Some(body);
                }
            }
        }
        slot.changed.notify_waiters();
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.replay.is_none() && this.body.is_none() {
            // The gate is polled where it lies, in the slot (it is rare, and
            // every field here is moved with each request).
            if let Ok(mut gate) = this.slot.gate.lock() {
                if let Some(open) = gate.as_mut() {
                    if open.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *gate = None;
                }
            }
            this.body = this.slot.body.lock().ok().and_then(|mut b| b.take());
            // An earlier attempt read part of it and gave it back: send
            // what it read from the copy first, then the rest as it comes.
            let (pieces, bytes) = if this.body.is_some() { this.slot.recorded() } else { (0, 0) };
            if pieces > 0 {
                this.replay = Some(0);
                this.seen = bytes;
            }
            // An earlier attempt took it (see `BodySlot::attempt`).
            if this.body.is_none() {
                if this.slot.has_copy() {
                    this.replay = Some(0);
                } else if !this.slot.end_stream {
                    return Poll::Ready(Some(Err(BodyError::Spent)));
                }
            }
        }
        if let Some(next) = &mut this.replay {
            if let Some(piece) = this.slot.kept(*next as usize) {
                *next += 1;
                this.slot.moved.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(Some(Ok(piece.frame())));
            }
            if this.body.is_none() {
                return Poll::Ready(None);
            }
            // What the earlier attempt read is sent; the rest is the client's.
            this.replay = None;
        }
        let Some(body) = this.body.as_mut() else { return Poll::Ready(None) };
        loop {
            let polled = Pin::new(&mut *body).poll_frame(cx);
            this.slot.on_client.store(polled.is_pending(), Ordering::Relaxed);
            let frame = match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.slot.kept_all();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(error))) => {
                    this.slot.failed(&error);
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let Some(data) = frame.data_ref() else {
                // A trailer section (see the module doc).
                let Some(named) = &this.slot.trailers else { continue };
                let Ok(mut trailers) = frame.into_trailers() else { continue };
                crate::headers::strip_trailer_fields(&mut trailers, named);
                this.slot.keep(|| Piece::Trailers(trailers.clone()), 0);
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            };
            this.seen += data.len() as u64;
            this.slot.moved.fetch_add(1, Ordering::Relaxed);
            if let Some(limit) = this.slot.limit.filter(|&limit| this.seen > limit) {
                this.slot.too_large.store(true, Ordering::Release);
                let error = BodyError::TooLarge { limit };
                this.slot.failed(&error);
                return Poll::Ready(Some(Err(error)));
            }
            this.slot.keep(|| Piece::Data(data.clone()), data.len() as u64);
            // A sender that knows the length stops polling at its end.
            if body.is_end_stream() {
                this.slot.kept_all();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
    }

    fn is_end_stream(&self) -> bool {
        match (&self.replay, &self.body) {
            // The rest of a body given back is still to come.
            (Some(_), Some(_)) => false,
            (Some(next), None) => *next as usize >= self.slot.kept_len(),
            (None, Some(body)) => body.is_end_stream(),
            (None, None) => self.slot.end_stream,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.replay, &self.body) {
            (Some(_), _) | (None, None) => self.slot.size_hint,
            (None, Some(body)) => body.size_hint(),
        }
    }
}
