//! One request's bookkeeping, tied to the life of its response body.
//!
//! An [`Exchange`] is created when a request arrives and travels with the
//! response body. When the body ends, fails, or is dropped because the client
//! went away, the exchange drops with it, and its `Drop` does the two things
//! that must happen exactly once however a request ends: it tells the pool's
//! balancer that the endpoint has one request fewer in flight, and it hands
//! the access log its record.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::HeaderName;
use tokio::sync::{mpsc, oneshot};

use crate::access_log::Record;
use crate::connection::{InFlight, InterimSink};
use crate::error::ProxyError;
use crate::headers::strip_trailer_fields;
use crate::proxy::Shared;
use crate::request_body::ClientBody;
use crate::stall::unless_stuck;
use crate::streams::StreamTask;
use crate::upstream::{BodyFailure, UpstreamBody};

/// Status logged for a request whose client left before any response existed,
/// as nginx does.
const CLIENT_CLOSED: u16 = 499;

/// Status logged for a request the gateway abandoned, before any response
/// existed, when its drain was cut short.
const SHUT_DOWN: u16 = 503;

/// Bookkeeping for one request.
pub(crate) struct Exchange {
    shared: Arc<Shared>,
    /// What only the access log needs, kept only when it is on (the
    /// exchange moves with every response, so it stays small without it).
    logged: Option<Box<Logged>>,
    pub(crate) route: Option<usize>,
    /// `(pool, endpoint)` once [`Exchange::begin`] has counted the request.
    endpoint: Option<(usize, usize)>,
    pub(crate) status: Option<u16>,
    /// The pool's circuit-breaker slot for this request, given back when
    /// the exchange ends.
    pub(crate) permit: Option<sluice_traffic::circuit::OwnedPermit>,
    /// Whether the response body was read to its end (or failed), rather
    /// than dropped with the exchange.
    ended: bool,
    /// Keeps the connection busy (its idle clock stopped) until the exchange ends.
    in_flight: InFlight,
    /// The fields the upstream's response head named in `Connection`,
    /// which its trailers may not carry on either.
    pub(crate) named: Box<[HeaderName]>,
}

/// The parts of an exchange that only its access log record needs.
struct Logged {
    started: Instant,
    client: SocketAddr,
    listener: usize,
    method: hyper::Method,
    path: String,
    /// Why the gateway answered the request itself, when it did.
    reason: Option<String>,
}

impl Exchange {
    pub(crate) fn new(
        shared: Arc<Shared>,
        listener: usize,
        client: SocketAddr,
        request: &hyper::Request<ClientBody>,
        in_flight: InFlight,
    ) -> Exchange {
        let logged = shared.log.enabled().then(|| {
            Box::new(Logged {
                started: Instant::now(),
                client,
                listener,
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
                reason: None,
            })
        });
        Exchange {
            shared,
            logged,
            route: None,
            endpoint: None,
            status: None,
            permit: None,
            ended: false,
            in_flight,
            named: Box::new([]),
        }
    }

    /// Where the request's interim responses go, when its client takes them
    /// (see [`InterimSink`]).
    pub(crate) fn interim(&self) -> Option<InterimSink> {
        self.in_flight.interim()
    }

    /// Count a request in flight to `endpoint` of `pool` until this exchange ends.
    pub(crate) fn begin(&mut self, pool: usize, endpoint: usize) {
        debug_assert!(self.endpoint.is_none(), "an exchange uses one endpoint");
        self.shared.balancers[pool].begin(endpoint);
        self.endpoint = Some((pool, endpoint));
    }

    /// The `(pool, endpoint)` the request is counted at, once it is.
    pub(crate) fn endpoint(&self) -> Option<(usize, usize)> {
        self.endpoint
    }

    /// Note, for the access log, the error the gateway answered with.
    pub(crate) fn answered_with(&mut self, error: &ProxyError) {
        if let Some(logged) = &mut self.logged {
            logged.reason = Some(error.to_string());
        }
    }

    /// Count the request at no endpoint any more: it was sent to none (the
    /// circuit breaker refused it a connection), and its log says so.
    pub(crate) fn forget(&mut self) {
        if let Some((pool, endpoint)) = self.endpoint.take() {
            self.shared.balancers[pool].end(endpoint);
        }
    }

    /// Count the request at `endpoint` of `pool` instead of where it was.
    pub(crate) fn switch(&mut self, pool: usize, endpoint: usize) {
        if let Some((old_pool, old)) = self.endpoint.take() {
            self.shared.balancers[old_pool].end(old);
        }
        self.begin(pool, endpoint);
    }
}

impl Exchange {
    /// Note a response body that broke off after its headers were sent on:
    /// the upstream's (it closed, reset, stalled or framed it wrongly), or
    /// the client's, which took none of it for the stall timeout. The access
    /// log says so in `reason`, since the status alone reads as an answer
    /// that arrived whole.
    fn body_failed(&mut self, error: &BodyFailure) {
        let endpoint = self.endpoint.map(|(p, e)| self.shared.addresses[p][e]);
        let why = if error.is::<ClientStalled>() {
            error.to_string()
        } else {
            let endpoint = endpoint.map_or_else(String::new, |a| format!(" {a}"));
            format!("upstream{endpoint} failed after sending response headers: {error}")
        };
        tracing::debug!(side = "upstream", %why, "response body failed after the headers were sent");
        if let Some(logged) = &mut self.logged {
            // After the gateway's own answer, if that failed too.
            add_reason(&mut logged.reason, why);
        }
    }
}

/// Add `why` to a record's reason, after the one it had.
fn add_reason(reason: &mut Option<String>, why: String) {
    *reason = Some(match reason.take() {
        Some(before) => format!("{before}; then {why}"),
        None => why,
    });
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some((pool, endpoint)) = self.endpoint {
            self.shared.balancers[pool].end(endpoint);
        }
        if let Some(mut logged) = self.logged.take() {
            // A request the drain gave up on is the gateway's doing: one that
            // had no response yet is not a client that left (499), and one
            // whose body was still on its way did not end whole.
            let mut status = self.status.unwrap_or(CLIENT_CLOSED);
            if let Some(why) = self.shared.log.cut_short() {
                if self.status.is_none() {
                    status = SHUT_DOWN;
                }
                if self.status.is_none() || !self.ended {
                    add_reason(&mut logged.reason, why.to_owned());
                }
            }
            // When the request arrived, on the wall clock; read here, so a
            // request costs no wall-clock reading when nothing is logged.
            let duration = logged.started.elapsed();
            let time = SystemTime::now().checked_sub(duration).unwrap_or(SystemTime::UNIX_EPOCH);
            self.shared.log.send(Record {
                plan: Arc::clone(&self.shared.plan),
                time,
                client: logged.client,
                listener: logged.listener,
                method: Some(logged.method),
                path: logged.path,
                route: self.route,
                endpoint: self.endpoint,
                status,
                duration,
                reason: logged.reason,
            });
        }
    }
}

/// The body the gateway sends to a client: an upstream's body streamed
/// through, or a small one the gateway wrote itself.
pub struct ResponseBody {
    inner: Inner,
    exchange: Option<Exchange>,
}

enum Inner {
    Upstream(UpstreamBody),
    Local(Option<Bytes>),
    /// Frames a pump task reads from the upstream ahead (see
    /// [`ResponseBody::pumped`]).
    Pumped(Box<Pumped>),
}

/// The client's side of a pumped body.
struct Pumped {
    frames: mpsc::Receiver<Result<Frame<Bytes>, BodyFailure>>,
    pump: Arc<Pump>,
    hint: SizeHint,
    /// What is left of the data frame being handed on.
    rest: Bytes,
    /// Dropped with the body, which tells the pump the client's side is
    /// done with it.
    _alive: oneshot::Sender<()>,
}

/// What the two sides of a pumped body share.
struct Pump {
    /// Pieces the client's protocol has taken so far.
    taken: AtomicU64,
    /// Whether the pump read the upstream body to its end.
    ended: AtomicBool,
}

/// The most a pumped body hands on at once. The pump sees the client's
/// progress only as pieces taken (hyper takes the next once the last has
/// gone out under the client's window), so this is the least a client must
/// take per stall timeout not to be cut: a quarter of HTTP/2's default
/// frame size, which a client that opens its window a little at a time
/// still passes.
const PIECE: usize = 4 * 1024;

/// Why a pumped body ends early when the client, not the upstream, stopped.
#[derive(Debug, thiserror::Error)]
#[error("the client took none of its response for the stall timeout")]
struct ClientStalled;

/// What a pump reads: an upstream's body, or one the gateway wrote.
enum Source {
    Upstream(UpstreamBody),
    Local(Option<Bytes>),
}

impl Source {
    async fn frame(&mut self) -> Option<Result<Frame<Bytes>, BodyFailure>> {
        match self {
            Source::Upstream(body) => body.frame().await,
            Source::Local(data) => data.take().map(|data| Ok(Frame::data(data))),
        }
    }
}

/// Read `source` into `frames` until it ends, the client's side is gone, or
/// the client has taken nothing for `stall` while the pump waited for room;
/// then, until the client's side has taken everything, keep the same watch
/// on it. A client that stalls has its `stream` task ended (see
/// [`crate::streams`]), since a stream held back by its flow-control window
/// never polls its body and would not see the pump give up.
async fn run_pump(
    mut source: Source,
    frames: mpsc::Sender<Result<Frame<Bytes>, BodyFailure>>,
    pump: Arc<Pump>,
    stall: Duration,
    stream: Option<Arc<StreamTask>>,
    alive: oneshot::Receiver<()>,
) {
    let mut seen = pump.taken.load(Ordering::Relaxed);
    let mut moved = || {
        let taken = pump.taken.load(Ordering::Relaxed);
        std::mem::replace(&mut seen, taken) != taken
    };
    loop {
        let frame = tokio::select! {
            frame = source.frame() => frame,
            () = frames.closed() => return,
        };
        let Some(frame) = frame else {
            pump.ended.store(true, Ordering::Release);
            break;
        };
        let room = match unless_stuck(frames.reserve(), stall, &mut moved).await {
            Some(Ok(room)) => room,
            // The client's side is gone.
            Some(Err(_)) => return,
            None => {
                tracing::debug!(?stall, "the client took none of its response; giving up");
                if let Some(stream) = &stream {
                    stream.cancel();
                }
                return;
            }
        };
        let failed = frame.is_err();
        room.send(frame);
        if failed {
            pump.ended.store(true, Ordering::Release);
            break;
        }
    }
    // All of it is queued (and the end, once the channel closes here); the
    // client's side is dropped once it has taken the last piece and the end.
    drop(frames);
    if unless_stuck(alive, stall, moved).await.is_none() {
        tracing::debug!(?stall, "the client took none of the rest of its response; giving up");
        if let Some(stream) = &stream {
            stream.cancel();
        }
    }
}

impl Pumped {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        if self.rest.is_empty() {
            match self.frames.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) if self.pump.ended.load(Ordering::Acquire) => {
                    return Poll::Ready(None)
                }
                Poll::Ready(None) => return Poll::Ready(Some(Err(Box::new(ClientStalled)))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.rest = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
            }
        }
        let piece = self.rest.split_to(self.rest.len().min(PIECE));
        self.pump.taken.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }
}

impl ResponseBody {
    pub(crate) fn upstream(body: UpstreamBody, exchange: Exchange) -> ResponseBody {
        ResponseBody { inner: Inner::Upstream(body), exchange: Some(exchange) }
    }

    pub(crate) fn local(body: Bytes, exchange: Exchange) -> ResponseBody {
        let data = if body.is_empty() { None } else { Some(body) };
        ResponseBody { inner: Inner::Local(data), exchange: Some(exchange) }
    }

    /// For an HTTP/2 client, whose flow control can hold a stream back
    /// without its socket ever refusing a byte: the body (an upstream's, or
    /// one the gateway wrote) moves to a task of its own that reads it one
    /// frame ahead of the client, and gives up (dropping the body, which
    /// closes its upstream connection, and resetting the stream) once the
    /// client has taken none of it for `stall`, the listener's stall
    /// timeout. The client is handed data in pieces of at most
    /// [`PIECE`] bytes, each of which counts as progress, so a slow reader
    /// that keeps reading is never cut; a response given up ends with an
    /// error (a reset stream), never as if it were whole. The exchange stays
    /// with the client's side, and ends when the client has the last piece.
    pub(crate) fn pumped(self, stall: Duration) -> ResponseBody {
        if self.is_end_stream() {
            return self;
        }
        let hint = self.size_hint();
        let source = match self.inner {
            Inner::Upstream(body) => Source::Upstream(body),
            Inner::Local(data) => Source::Local(data),
            Inner::Pumped(_) => return self,
        };
        let exchange = self.exchange;
        let (frames, taken) = mpsc::channel(1);
        let pump = Arc::new(Pump { taken: AtomicU64::new(0), ended: AtomicBool::new(false) });
        let stream = crate::streams::current();
        let (alive, watched) = oneshot::channel();
        tokio::spawn(run_pump(source, frames, Arc::clone(&pump), stall, stream, watched));
        let pumped = Pumped { frames: taken, pump, hint, rest: Bytes::new(), _alive: alive };
        ResponseBody { inner: Inner::Pumped(Box::new(pumped)), exchange }
    }

    /// End the exchange as soon as the body is complete rather than when
    /// hyper gets round to dropping it.
    fn finish(&mut self) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.ended = true;
        }
    }
}

/// A trailers frame without the fields [`strip_trailer_fields`] removes,
/// `named` (those the response head's `Connection` named) among them.
fn clean_trailers(frame: Frame<Bytes>, named: &[HeaderName]) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            strip_trailer_fields(&mut trailers, named);
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        let this = &mut *self;
        let frame = match &mut this.inner {
            Inner::Upstream(body) => match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            },
            Inner::Local(data) => data.take().map(|d| Ok(Frame::data(d))),
            Inner::Pumped(pumped) => match pumped.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            },
        };
        // Trailers pass only without the fields that may not travel in
        // them, whichever protocols the upstream and the client speak.
        let frame = match frame {
            Some(Ok(frame)) if frame.is_trailers() => {
                let named = this.exchange.as_ref().map_or(&[][..], |exchange| &exchange.named);
                Some(Ok(clean_trailers(frame, named)))
            }
            other => other,
        };
        match &frame {
            None => this.finish(),
            Some(Err(error)) => {
                if let Some(exchange) = &mut this.exchange {
                    exchange.body_failed(error);
                }
                this.finish();
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream(body) => body.is_end_stream(),
            Inner::Local(data) => data.is_none(),
            Inner::Pumped(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream(body) => body.size_hint(),
            Inner::Local(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Pumped(pumped) => pumped.hint,
        }
    }
}
