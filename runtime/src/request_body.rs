//! The client's request body on its way to the upstream.
//!
//! [`RequestBody`] streams the client's body through without buffering and
//! does three things on the way:
//! - it counts the bytes and fails the body, which aborts the upstream
//!   request, once they pass the route's `max_body_size`; the proxy then
//!   answers 413 (a declared `Content-Length` that is already too large is
//!   refused before anything is sent);
//! - it drops the trailer section of a chunked body, so that no field can
//!   reach the upstream without passing the gateway's header rules (a trailer
//!   `X-Forwarded-For` or `Content-Length` would otherwise bypass them);
//! - it takes the client's body from a shared [`BodySlot`] only when the
//!   upstream client first asks for data. If an attempt fails before that
//!   (a refused connection, or a reused connection that turned out closed),
//!   the body is still whole in the slot and the request can be sent again.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// Why the body sent upstream ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    #[error("request body is larger than the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("request body could not be read from the client: {0}")]
    Client(#[source] hyper::Error),
}

/// The client's body, until an attempt to send it upstream starts reading it.
pub(crate) struct BodySlot {
    body: Mutex<Option<Incoming>>,
    end_stream: bool,
    size_hint: SizeHint,
    too_large: AtomicBool,
    limit: Option<u64>,
}

impl BodySlot {
    pub(crate) fn new(body: Incoming, limit: Option<u64>) -> Arc<BodySlot> {
        Arc::new(BodySlot {
            end_stream: body.is_end_stream(),
            size_hint: body.size_hint(),
            body: Mutex::new(Some(body)),
            too_large: AtomicBool::new(false),
            limit,
        })
    }

    /// A body for one attempt. It is the client's whole body when
    /// [`BodySlot::is_whole`] holds, and empty otherwise.
    pub(crate) fn attempt(self: &Arc<Self>) -> RequestBody {
        RequestBody { slot: Arc::clone(self), body: None, seen: 0 }
    }

    /// Whether no attempt has started reading the client's body (or it is
    /// empty), so it can still be sent in full.
    pub(crate) fn is_whole(&self) -> bool {
        self.end_stream || self.body.lock().is_ok_and(|b| b.is_some())
    }

    /// The route's body size limit.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether the body was cut off for passing the route's limit.
    pub(crate) fn was_too_large(&self) -> bool {
        self.too_large.load(Ordering::Acquire)
    }
}

/// One attempt's view of the client's body. See the module doc.
pub struct RequestBody {
    slot: Arc<BodySlot>,
    body: Option<Incoming>,
    seen: u64,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.body.is_none() {
            this.body = this.slot.body.lock().ok().and_then(|mut b| b.take());
        }
        let Some(body) = this.body.as_mut() else { return Poll::Ready(None) };
        loop {
            let frame = match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Some(Err(BodyError::Client(error))))
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let Some(data) = frame.data_ref() else {
                // A trailer section: dropped (see the module doc).
                continue;
            };
            this.seen += data.len() as u64;
            if let Some(limit) = this.slot.limit.filter(|&limit| this.seen > limit) {
                this.slot.too_large.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(BodyError::TooLarge { limit })));
            }
            return Poll::Ready(Some(Ok(frame)));
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(body) => body.is_end_stream(),
            None => self.slot.end_stream,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => self.slot.size_hint,
        }
    }
}
