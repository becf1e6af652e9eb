//! The gateway's own HTTP/1.1 client, for ordinary exchanges (no upgrade,
//! not `CONNECT`) with an HTTP/1.1 pool.
//!
//! A [`Conn`] is a socket and its read buffer. [`Conn::exchange`] writes one
//! request and reads the response head in the calling task; the response
//! body is then read by [`Http1Body`] as the client-side connection asks for
//! it, straight from the socket into frames that share the read buffer's
//! memory. No task, channel or wake-up stands between the two sockets, which
//! is what a general-purpose client with a task per connection costs on
//! every request.
//!
//! # Framing, strictly
//!
//! The response's body length is decided as RFC 9112 (section 6.3) says,
//! and everything ambiguous is refused rather than guessed at, since a
//! proxy that reads a response differently from its upstream desynchronises
//! the connection for the next request:
//! - a response to `HEAD`, and any `1xx`, `204` or `304` response, has no
//!   body, whatever its `Content-Length` says (which is passed on);
//! - `Transfer-Encoding` whose last coding is `chunked` frames the body in
//!   chunks; any other coding means the body runs to the end of the
//!   connection;
//! - `Transfer-Encoding` together with `Content-Length`, or `Content-Length`
//!   values that differ or are not numbers, make the response invalid: the
//!   client gets 502 and the connection is closed;
//! - without either, the body runs to the end of the connection.
//!
//! Chunk sizes and lines end in CRLF, exactly; a bare LF, a size that
//! overflows, or a chunk without its CRLF fails the body.
//!
//! # When a connection is used again
//!
//! After the body's last byte, the connection goes back to its pool only
//! if the request was sent whole, the response did not ask to close
//! (`Connection: close`, or HTTP/1.0 without `keep-alive`), its body had a
//! length or chunks, and the upstream sent nothing beyond the response.
//!
//! # Request bodies
//!
//! A request body of known length is sent as it is and must match its
//! `Content-Length`; one of unknown length is sent in chunks. While the
//! body is sent, the response is read too: `100 Continue` opens the body
//! gate of a request that expects it (see [`crate::request_body`]), other
//! interim responses (but `101`) go to the client when it takes them (see
//! [`crate::connection::InterimSink`]) and are dropped otherwise, and a
//! final response that arrives before the body ends (an early 413, say) is
//! passed on at once. The upload then goes on, as RFC 9112 (section 9.3)
//! lets an upstream expect: while the response streams (read then by a task
//! that drives both directions, so that neither waits on the client), and
//! after it in a task of its own, for at most the pool's `idle_timeout`.
//! Both connections
//! then stay in step, and the upstream one is used again if the upload
//! finished. An upload that had not begun (a body held back for
//! `100 Continue`), or that the upstream stopped taking, ends there, and
//! the connection closes after the response.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::http::response::Parts;
use hyper::http::uri::Authority;
use hyper::{HeaderMap, Method, Response, StatusCode, Version};
use sluice_traffic::circuit::OwnedPermit;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::headers::list_has;
use crate::proxy::UpstreamHead;
use crate::request_body::{BodyError, RequestBody};
use crate::stall::Stall;
use crate::upstream::Home;

/// Most header fields a response head (or a trailer section) may have.
pub(crate) const MAX_FIELDS: usize = 100;
/// Header fields a response head rarely exceeds: a head is parsed with room
/// for this many first, which is cheaper, and again with room for
/// [`MAX_FIELDS`] only when they do not fit.
const USUAL_FIELDS: usize = 24;
/// Largest response head, and largest trailer section.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Spare room the read buffer has before each read.
const READ_ROOM: usize = 8 * 1024;
/// Largest read of a body whose remaining length is known.
const MAX_READ: usize = 64 * 1024;

/// Why an exchange on an HTTP/1.1 connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The upstream closed the connection before its response was complete.
    #[error("connection closed before the response was complete")]
    Closed,
    /// The upstream closed or reset the connection after an interim (1xx)
    /// response, so it had the request: unlike [`ExchangeError::Closed`],
    /// never taken for a pooled connection the upstream had closed before.
    #[error("connection closed after an interim response, before the final one")]
    ClosedAfterInterim,
    /// The upstream's response is not valid HTTP/1.1, or is ambiguous.
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    /// A section of fields (a trailer section, or a head parsed with
    /// room for fewer than [`MAX_FIELDS`]) has more than there was room for.
    #[error("invalid response: more than {MAX_FIELDS} header fields")]
    TooManyFields,
    /// The upstream's response head is over a limit of the gateway's.
    #[error("response head too large: {0}")]
    HeadTooLarge(HeadLimit),
    /// The client's request body failed while it was being sent.
    #[error("{0}")]
    Body(BodyError),
    /// The request body did not match its declared `Content-Length`.
    #[error("request body of {sent} bytes does not match its Content-Length of {declared}")]
    BodyLength { sent: u64, declared: u64 },
    /// No byte moved to or from the upstream for the pool's `stall_timeout`.
    #[error("the upstream sent and took nothing for {0:?}")]
    Stalled(Duration),
}

/// Which limit an upstream's response head went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLimit {
    /// Longer than [`MAX_HEAD`] bytes.
    Size,
    /// More than [`MAX_FIELDS`] fields.
    Fields,
    /// One of the limits of hyper's client, which carries upgrades and does
    /// not say which.
    Either,
}

impl std::fmt::Display for HeadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadLimit::Size => write!(f, "longer than {MAX_HEAD} bytes"),
            HeadLimit::Fields => write!(f, "more than {MAX_FIELDS} header fields"),
            HeadLimit::Either => f.write_str("more fields or bytes than the upgrade client takes"),
        }
    }
}

impl ExchangeError {
    /// Whether the connection was closed or reset before any response came
    /// back.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            ExchangeError::Closed => true,
            ExchangeError::Io(error) => crate::upstream::is_cut_off(error),
            _ => false,
        }
    }

    /// Whether the client's own body is what failed.
    pub(crate) fn is_client_body(&self) -> bool {
        matches!(self, ExchangeError::Body(_) | ExchangeError::BodyLength { .. })
    }
}

/// An open HTTP/1.1 connection to an upstream.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read from the socket and not yet used.
    read: BytesMut,
    /// How much of `read` was looked at for the end of a head.
    scanned: usize,
    /// Bytes to write, from `written` on.
    write: Vec<u8>,
    written: usize,
    /// The connection's place under `max_connections`, given back on close.
    _slot: Option<OwnedPermit>,
    /// The worker that opened it (narrow, with the flags below, so that
    /// the connection, moved at every take and give-back, stays small).
    pub(crate) lane: u32,
    /// Whether bytes were read or written since the stall clock last looked.
    moved: bool,
    /// Whether the request's upload waits on the client's body (whose
    /// stall clock is the listener's), not on the upstream.
    awaiting_client: bool,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    Empty,
    /// This many bytes are left.
    Length(u64),
    /// Chunked, at this point of a chunk.
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Close,
    /// The body has ended.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, before the trailer section and its empty
    /// line, having looked this far into it for that line.
    Trailers(usize),
}

/// What the request's head said about its body.
enum Sending {
    /// Write what is buffered, then poll the body for more.
    Body { chunked: bool, declared: Option<u64>, sent: u64 },
    /// Write what is buffered; the request is then complete.
    Last,
    /// Everything was written.
    Done,
}

impl Conn {
    /// A connection on `stream`, holding `slot`, opened by worker `lane`.
    pub(crate) fn new(stream: TcpStream, slot: Option<OwnedPermit>, lane: u32) -> Conn {
        let read = BytesMut::new();
        Conn {
            stream,
            read,
            scanned: 0,
            write: Vec::new(),
            written: 0,
            _slot: slot,
            lane,
            moved: false,
            awaiting_client: false,
        }
    }

    /// Whether an exchange that must wait has waited on the upstream for
    /// the whole of `stall`: its clock starts again whenever bytes moved.
    /// Before the response head, it does not run while the upload waits on
    /// the client (`heading`); the upstream may well wait for the body too.
    fn poll_stalled(
        &mut self,
        cx: &mut Context<'_>,
        stall: &mut Stall,
        heading: bool,
    ) -> Poll<ExchangeError> {
        let client_turn = heading && self.awaiting_client;
        if std::mem::take(&mut self.moved) || client_turn {
            stall.progress();
        }
        if client_turn {
            return Poll::Pending;
        }
        stall.poll_expired(cx).map(|()| ExchangeError::Stalled(stall.limit()))
    }

    /// Whether the connection, between exchanges, can take a request: the
    /// upstream has neither closed it nor sent anything unasked. Costs no
    /// system call when the socket has no news.
    pub(crate) fn can_take_another(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        // Would block means nothing to read: still open and quiet. (Tried
        // without a waker: when the socket is known to have nothing, as it
        // is after a response read whole, that costs no system call and no
        // registration.)
        let mut probe = [0u8; 8];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Send `request` and read the head of its response. The body follows
    /// through [`Http1Body::start`]. `stall` bounds every wait on the
    /// upstream.
    ///
    /// A request without `Host` (an HTTP/1.0 client's) names `authority`.
    pub(crate) async fn exchange(
        &mut self,
        request: &UpstreamHead,
        authority: &Authority,
        mut body: RequestBody,
        stall: &mut Stall,
    ) -> Result<Head, ExchangeError> {
        let continued = request.continued.as_ref();
        let head_request = request.method == Method::HEAD;
        let mut sending = self.write_head(request, authority, &body);
        let mut send_error = None;
        // Whether an interim response came, which shows the upstream had
        // the request.
        let mut interim_seen = false;

        let parsed = poll_fn(|cx| loop {
            if !matches!(sending, Sending::Done) && send_error.is_none() {
                match self.poll_send(cx, &mut sending, &mut body) {
                    Poll::Ready(Ok(())) => sending = Sending::Done,
                    // The client's body failed: nothing more to wait for.
                    Poll::Ready(Err(error)) if error.is_client_body() => {
                        return Poll::Ready(Err(error))
                    }
                    // The upstream may have answered before it stopped
                    // reading: look for its response before giving up.
                    Poll::Ready(Err(error)) => send_error = Some(error),
                    Poll::Pending => {}
                }
            }
            let mut parsed = match self.poll_head(cx) {
                Poll::Ready(Ok(parsed)) => parsed,
                Poll::Ready(Err(error)) => {
                    let error = send_error.take().unwrap_or(error);
                    if interim_seen && error.is_closed() {
                        return Poll::Ready(Err(ExchangeError::ClosedAfterInterim));
                    }
                    return Poll::Ready(Err(error));
                }
                Poll::Pending => return self.poll_stalled(cx, stall, true).map(Err),
            };
            if parsed.status.is_informational() && parsed.status != StatusCode::SWITCHING_PROTOCOLS
            {
                interim_seen = true;
            }
            if parsed.status == StatusCode::CONTINUE {
                if let Some(continued) = continued {
                    continued.notify_one();
                }
                continue;
            }
            if parsed.status.is_informational() && parsed.status != StatusCode::SWITCHING_PROTOCOLS
            {
                // Passed on to a client that takes it, dropped otherwise.
                if let Some(interim) = &request.interim {
                    interim.send(parsed.status, parsed.reason.as_ref(), &mut parsed.headers);
                }
                continue;
            }
            return Poll::Ready(Ok(parsed));
        })
        .await?;

        // A response before the whole request was sent: the upload goes on
        // while the response is read, if it had begun and the upstream
        // still takes it, so that the connection stays in step.
        let upload = match sending {
            Sending::Done => None,
            _ if send_error.is_none() && body.has_started() => {
                Some(Box::new(Upload { sending, body }))
            }
            _ => return Head::from_parsed(parsed, head_request, false, None),
        };
        Head::from_parsed(parsed, head_request, true, upload)
    }

    /// Serialise the request head into the write buffer, with the framing
    /// of its body.
    fn write_head(
        &mut self,
        request: &UpstreamHead,
        authority: &Authority,
        body: &RequestBody,
    ) -> Sending {
        let out = &mut self.write;
        out.clear();
        self.written = 0;
        out.extend_from_slice(request.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(request.target.as_str().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !request.has_host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(authority.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let mut declared = None;
        let forwarded = &request.forwarded;
        crate::headers::write_with_forwarded(
            &request.headers,
            &forwarded.client,
            forwarded.trusted,
            out,
            |name, value| {
                if *name == CONTENT_LENGTH {
                    declared = parse_length(value.as_bytes());
                }
                *name != TRANSFER_ENCODING
            },
        );
        let empty = body.is_end_stream();
        let chunked = declared.is_none() && !empty;
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if empty && declared.is_none_or(|length| length == 0) {
            Sending::Last
        } else {
            Sending::Body { chunked, declared, sent: 0 }
        }
    }

    /// Write the request: what is buffered, then the body as it comes.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        sending: &mut Sending,
        body: &mut RequestBody,
    ) -> Poll<Result<(), ExchangeError>> {
        self.awaiting_client = false;
        loop {
            while self.written < self.write.len() {
                let n =
                    ready!(Pin::new(&mut self.stream).poll_write(cx, &self.write[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                self.written += n;
                self.moved = true;
            }
            self.write.clear();
            self.written = 0;
            let Sending::Body { chunked, declared, sent } = sending else {
                return Poll::Ready(Ok(()));
            };
            self.awaiting_client = true;
            let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
            self.awaiting_client = false;
            let ended = match frame {
                Some(Ok(frame)) => {
                    // Trailers of a request body are not sent to an
                    // HTTP/1.1 upstream (see `crate::request_body`).
                    if let Ok(data) = frame.into_data() {
                        *sent += data.len() as u64;
                        if let Some(declared) = declared.filter(|&declared| *sent > declared) {
                            let sent = *sent;
                            return Poll::Ready(Err(ExchangeError::BodyLength { sent, declared }));
                        }
                        if *chunked && !data.is_empty() {
                            let size = format!("{:x}\r\n", data.len());
                            self.write.extend_from_slice(size.as_bytes());
                            self.write.extend_from_slice(&data);
                            self.write.extend_from_slice(b"\r\n");
                        } else {
                            self.write.extend_from_slice(&data);
                        }
                    }
                    // A body that knows it has ended may not say so again
                    // (hyper's does not, once its request was answered).
                    body.is_end_stream()
                }
                Some(Err(error)) => return Poll::Ready(Err(ExchangeError::Body(error))),
                None => true,
            };
            if ended {
                if let Some(declared) = declared.filter(|&declared| *sent != declared) {
                    let sent = *sent;
                    return Poll::Ready(Err(ExchangeError::BodyLength { sent, declared }));
                }
                if *chunked {
                    self.write.extend_from_slice(b"0\r\n\r\n");
                }
                *sending = Sending::Last;
            }
        }
    }

    /// Read until a whole response head is buffered, and parse it.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Parsed, ExchangeError>> {
        loop {
            if !self.read.is_empty() {
                // A head is parsed as its first bytes come (which may show
                // it is not HTTP/1.x at all) and then again only when a line
                // has ended: one arriving a byte at a time is parsed once a
                // line, at most `MAX_FIELDS` and a few times, not once a byte.
                let from = std::mem::replace(&mut self.scanned, self.read.len());
                if from == 0 || line_end_from(&self.read, from) {
                    if let Some(parsed) = self.parse_head()? {
                        self.scanned = 0;
                        return Poll::Ready(Ok(parsed));
                    }
                }
                if self.read.len() >= MAX_HEAD {
                    return Poll::Ready(Err(ExchangeError::HeadTooLarge(HeadLimit::Size)));
                }
            }
            if ready!(self.poll_fill(cx, READ_ROOM))? == 0 {
                return Poll::Ready(Err(ExchangeError::Closed));
            }
        }
    }

    /// Parse the head at the start of the read buffer and take it out, if
    /// it is all there.
    fn parse_head(&mut self) -> Result<Option<Parsed>, ExchangeError> {
        match self.parse_head_with::<USUAL_FIELDS>() {
            Err(ExchangeError::TooManyFields) => match self.parse_head_with::<MAX_FIELDS>() {
                Err(ExchangeError::TooManyFields) => {
                    Err(ExchangeError::HeadTooLarge(HeadLimit::Fields))
                }
                parsed => parsed,
            },
            parsed => parsed,
        }
    }

    /// [`Conn::parse_head`] with room for `N` header fields.
    fn parse_head_with<const N: usize>(&mut self) -> Result<Option<Parsed>, ExchangeError> {
        let mut fields = [httparse::EMPTY_HEADER; N];
        let mut response = httparse::Response::new(&mut fields);
        let length = match response.parse(&self.read) {
            Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD => length,
            Ok(httparse::Status::Complete(_)) => {
                return Err(ExchangeError::HeadTooLarge(HeadLimit::Size))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(ExchangeError::TooManyFields),
            Err(_) => return Err(ExchangeError::Invalid("malformed response head")),
        };
        let version = match response.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        let status = response
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or(ExchangeError::Invalid("bad status code"))?;
        let reason = response.reason.filter(|reason| Some(*reason) != status.canonical_reason());
        let reason =
            reason.and_then(|reason| hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).ok());
        // Where each name and value lies in the head (which is shorter than
        // `MAX_HEAD`), so that the values can share the head's memory once
        // it leaves the buffer.
        let start = self.read.as_ptr() as usize;
        let offset = |part: &[u8]| (part.as_ptr() as usize - start) as u32;
        let mut spans = [[0u32; 4]; N];
        let count = response.headers.len();
        for (field, span) in response.headers.iter().zip(&mut spans) {
            let (name, value) = (offset(field.name.as_bytes()), offset(field.value));
            *span = [name, name + field.name.len() as u32, value, value + field.value.len() as u32];
        }
        let head = self.read.split_to(length).freeze();
        let mut headers = HeaderMap::with_capacity(count);
        let mut seen = Seen::default();
        for &[name_from, name_to, from, to] in &spans[..count] {
            let name = HeaderName::from_bytes(&head[name_from as usize..name_to as usize])
                .map_err(|_| ExchangeError::Invalid("bad header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(from as usize..to as usize))
                .map_err(|_| ExchangeError::Invalid("bad header value"))?;
            seen.note(&name, &value);
            headers.append(name, value);
        }
        Ok(Some(Parsed { status, version, headers, seen, reason }))
    }

    /// Read what the socket has into the read buffer, with at least `room`
    /// bytes of space; how many bytes came (none: the upstream closed).
    fn poll_fill(&mut self, cx: &mut Context<'_>, room: usize) -> Poll<io::Result<usize>> {
        self.read.reserve(room);
        let filled = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read);
        self.moved |= filled.is_ready();
        filled
    }
}

/// Which fields that decide framing and keep-alive a head has, noted as
/// it is parsed so that a head without them costs no lookup.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    content_length: bool,
    /// Whether the head has one `Content-Length`, in plain digits, so
    /// that it goes on as it came.
    plain_length: bool,
    /// The length a plain `Content-Length` states (so only when
    /// `plain_length`).
    length: Option<u64>,
    transfer_encoding: bool,
    connection: bool,
}

impl Seen {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) {
        if name == CONTENT_LENGTH {
            let digits = value.as_bytes();
            let plain = !digits.is_empty()
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || digits.len() == 1);
            self.plain_length = plain && !self.content_length;
            self.length = if self.plain_length { parse_length(digits) } else { None };
            self.content_length = true;
        }
        self.transfer_encoding |= name == TRANSFER_ENCODING;
        self.connection |= name == CONNECTION;
    }
}

/// Pass `Content-Length` on as the one number it states (RFC 9110, section
/// 8.6, says a list or padded value is not to be forwarded as it came), or
/// not at all when it states none, which only a response without a body
/// gets this far with.
fn normalise_length(headers: &mut HeaderMap) {
    match content_length(headers) {
        Ok(Some(length)) => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        _ => {
            headers.remove(CONTENT_LENGTH);
        }
    }
}

/// The rest of a request body, still being sent after the response head
/// arrived.
struct Upload {
    sending: Sending,
    body: RequestBody,
}

/// A response head as read.
struct Parsed {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    seen: Seen,
    reason: Option<hyper::ext::ReasonPhrase>,
}

/// A final response head, and how its body is framed.
pub(crate) struct Head {
    pub(crate) parts: Parts,
    framing: Framing,
    /// Whether the connection can serve another request once the body ends
    /// (and the upload, if one goes on, has ended too).
    reusable: bool,
    upload: Option<Box<Upload>>,
}

impl Head {
    fn from_parsed(
        parsed: Parsed,
        head_request: bool,
        sent_whole: bool,
        upload: Option<Box<Upload>>,
    ) -> Result<Head, ExchangeError> {
        let Parsed { status, version, mut headers, seen, reason } = parsed;
        let framing = framing(status, &headers, seen, head_request)?;
        let keep_alive = keep_alive(version, &headers, seen);
        // An HTTP/1.0 message with Transfer-Encoding is faulty framing,
        // after which the connection must close (RFC 9112, section 6.1).
        let reusable = keep_alive
            && sent_whole
            && status != StatusCode::SWITCHING_PROTOCOLS
            && !matches!(framing, Framing::Close)
            && !(version == Version::HTTP_10 && seen.transfer_encoding);
        if seen.content_length && !seen.plain_length {
            normalise_length(&mut headers);
        }
        let mut response = Response::new(());
        *response.status_mut() = status;
        // The gateway answers in its own version, whatever the upstream's
        // (RFC 9112, section 2.3).
        *response.version_mut() = Version::HTTP_11;
        *response.headers_mut() = headers;
        if let Some(reason) = reason {
            response.extensions_mut().insert(reason);
        }
        let (parts, ()) = response.into_parts();
        Ok(Head { parts, framing, reusable, upload })
    }
}

/// How the body of a response with this status and these fields is framed.
fn framing(
    status: StatusCode,
    headers: &HeaderMap,
    seen: Seen,
    head_request: bool,
) -> Result<Framing, ExchangeError> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let length = match seen.length {
        Some(length) => Some(length),
        None if seen.content_length => content_length(headers)?,
        None => None,
    };
    if seen.transfer_encoding {
        if length.is_some() {
            return Err(ExchangeError::Invalid("both Transfer-Encoding and Content-Length"));
        }
        // Only `chunked`, once: the gateway removes the field on the way
        // to the client, so a body under any other coding (gzip, say)
        // would reach it undecoded and unmarked. Refused, as nginx does.
        let mut codings = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|coding| !coding.is_empty());
        return match (codings.next(), codings.next()) {
            (Some(coding), None) if coding.eq_ignore_ascii_case(b"chunked") => {
                Ok(Framing::Chunked(Chunk::Size))
            }
            _ => Err(ExchangeError::Invalid("Transfer-Encoding other than chunked")),
        };
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(length) => Framing::Length(length),
        None => Framing::Close,
    })
}

/// The one length that every `Content-Length` value states, if there is
/// any; values that differ or are not numbers are refused.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ExchangeError> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = parse_length(item.trim_ascii())
                .ok_or(ExchangeError::Invalid("Content-Length is not a number"))?;
            if length.is_some_and(|length| length != item) {
                return Err(ExchangeError::Invalid("Content-Length values differ"));
            }
            length = Some(item);
        }
    }
    Ok(length)
}

/// A decimal length, digits only.
pub(crate) fn parse_length(digits: &[u8]) -> Option<u64> {
    // Nineteen digits cannot overflow a u64.
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

/// Whether a response of `version` with these fields leaves the connection
/// open.
fn keep_alive(version: Version, headers: &HeaderMap, seen: Seen) -> bool {
    if !seen.connection {
        return version == Version::HTTP_11;
    }
    let says = |token: &[u8]| {
        headers.get_all(CONNECTION).iter().any(|value| list_has(value.as_bytes(), token))
    };
    if version == Version::HTTP_11 {
        !says(b"close")
    } else {
        says(b"keep-alive")
    }
}

/// A response body read from its connection (see the module doc).
pub(crate) struct Http1Body {
    conn: Option<Box<Conn>>,
    framing: Framing,
    reusable: bool,
    /// The request body, when it is still being sent (which is rare).
    upload: Option<Box<Upload>>,
    /// Where the connection goes when the body ends, if it can be reused.
    home: Option<Home>,
    /// How long a read may wait on the upstream.
    stall: Stall,
}

/// A response body: read from its connection as the client asks for it,
/// or, while its request is still being uploaded, by a task of its own.
pub(crate) enum Http1Response {
    Direct(Http1Body),
    Pumped(PumpedBody),
}

impl Http1Body {
    /// The body of `head`, read from `conn`, which `home` takes back at the
    /// body's end when it can serve another request; `stall` bounds each
    /// wait for the upstream's next bytes.
    ///
    /// A body that streams while its request is still being uploaded is
    /// read by a task of its own, which keeps the upload going whether or
    /// not the client reads: an upstream that answers as it reads (an echo,
    /// a transcoder) would otherwise wait for the rest of the upload while
    /// the client, still uploading, waits for room to send it.
    pub(crate) fn start(
        conn: Box<Conn>,
        head: &mut Head,
        home: Home,
        stall: Stall,
    ) -> Http1Response {
        let mut body = Http1Body {
            conn: Some(conn),
            framing: head.framing,
            reusable: head.reusable,
            upload: head.upload.take(),
            home: Some(home),
            stall,
        };
        if head.framing == Framing::Empty {
            body.release();
        }
        if body.upload.is_some() && body.conn.is_some() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                return Http1Response::Pumped(body.pump(&runtime));
            }
        }
        Http1Response::Direct(body)
    }

    /// Read this body in a task of `runtime` that also drives the upload,
    /// handing frames over as the client takes them, a few at a time.
    fn pump(mut self, runtime: &tokio::runtime::Handle) -> PumpedBody {
        let (frames, taken) = tokio::sync::mpsc::channel(PUMPED_FRAMES);
        let hint = self.size_hint();
        runtime.spawn(async move {
            loop {
                let next = poll_fn(|cx| {
                    self.poll_upload(cx);
                    self.poll_next(cx)
                });
                // At the end, `release` has given the connection back or
                // left the upload to finish.
                let Some(frame) = next.await else { return };
                let failed = frame.is_err();
                let mut room = std::pin::pin!(frames.reserve());
                let room = poll_fn(|cx| {
                    self.poll_upload(cx);
                    room.as_mut().poll(cx)
                });
                // Without a reader, the response and its connection go.
                let Ok(room) = room.await else { return };
                room.send(frame);
                if failed {
                    return;
                }
            }
        });
        PumpedBody { taken, hint, ended: false }
    }

    /// The body has ended: give the connection back, or close it. An
    /// upload that goes on after an early response is finished first, in a
    /// task of its own, so that both the client's connection and this one
    /// stay in step; for at most the time the pool keeps a connection idle,
    /// after which it is closed.
    fn release(&mut self) {
        self.framing = Framing::Done;
        let conn = self.conn.take();
        // An upload goes on only with its connection: one that closes here
        // ends it, and gives the request body up at once (a retry may be
        // waiting for it; see `BodySlot::whole`).
        let upload = self.upload.take();
        let (Some(mut conn), Some(home)) = (conn, self.home.take()) else { return };
        // Bytes beyond the response would be read as the next one.
        if !self.reusable || !conn.read.is_empty() {
            return;
        }
        let Some(mut upload) = upload else {
            home.give_back(conn);
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let limit = home.idle_timeout();
        runtime.spawn(async move {
            let send = poll_fn(|cx| conn.poll_send(cx, &mut upload.sending, &mut upload.body));
            match tokio::time::timeout(limit, send).await {
                Ok(Ok(())) => home.give_back(conn),
                Ok(Err(error)) => {
                    tracing::debug!(side = "upstream", %error, "upload after an early response failed");
                }
                Err(_) => {
                    tracing::debug!(side = "upstream", "upload after an early response did not finish");
                }
            }
        });
    }

    /// Send more of the request body, if it is still being sent. A failure
    /// ends the upload, and the connection closes after the response.
    fn poll_upload(&mut self, cx: &mut Context<'_>) {
        let (Some(upload), Some(conn)) = (self.upload.as_mut(), self.conn.as_mut()) else {
            return;
        };
        match conn.poll_send(cx, &mut upload.sending, &mut upload.body) {
            Poll::Pending => {}
            Poll::Ready(Ok(())) => self.upload = None,
            Poll::Ready(Err(error)) => {
                tracing::debug!(side = "upstream", %error, "upload after an early response ended");
                self.upload = None;
                self.reusable = false;
            }
        }
    }

    /// The next frame of the body, or a failure once the upstream has sent
    /// nothing for the pool's `stall_timeout`.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let next = self.poll_read(cx);
        if next.is_ready() {
            self.stall.progress();
            return next;
        }
        let Some(conn) = self.conn.as_mut() else { return next };
        conn.poll_stalled(cx, &mut self.stall, false).map(|stalled| Some(Err(stalled)))
    }

    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            match self.framing {
                Framing::Empty | Framing::Done | Framing::Length(0) => {
                    self.release();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if conn.read.is_empty() {
                        let room =
                            usize::try_from(left).unwrap_or(MAX_READ).clamp(READ_ROOM, MAX_READ);
                        if ready!(conn.poll_fill(cx, room))? == 0 {
                            return Poll::Ready(Some(Err(ExchangeError::Closed)));
                        }
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(conn.read.len());
                    let data = conn.read.split_to(take).freeze();
                    self.framing = Framing::Length(left - take as u64);
                    if self.framing == Framing::Length(0) {
                        // A reader may stop at the last byte without
                        // asking for the end.
                        self.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close => {
                    if conn.read.is_empty() && ready!(conn.poll_fill(cx, MAX_READ))? == 0 {
                        self.release();
                        return Poll::Ready(None);
                    }
                    let data = conn.read.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(chunk) => match decode_chunk(&mut conn.read, chunk)? {
                    Decoded::Need(chunk) => {
                        self.framing = Framing::Chunked(chunk);
                        if ready!(conn.poll_fill(cx, READ_ROOM))? == 0 {
                            return Poll::Ready(Some(Err(ExchangeError::Closed)));
                        }
                    }
                    Decoded::Next(chunk) => self.framing = Framing::Chunked(chunk),
                    Decoded::Data(data, chunk) => {
                        self.framing = Framing::Chunked(chunk);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Decoded::End(trailers) => {
                        // Trailers are the last frame: a reader may stop
                        // at them.
                        self.release();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                },
            }
        }
    }
}

/// Frames a pumped body may read ahead of the client.
const PUMPED_FRAMES: usize = 4;

/// A response body read by a task of its own (see [`Http1Body::start`]).
pub(crate) struct PumpedBody {
    taken: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, ExchangeError>>,
    hint: SizeHint,
    ended: bool,
}

impl Body for PumpedBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let frame = ready!(self.taken.poll_recv(cx));
        match &frame {
            None => self.ended = true,
            Some(Ok(frame)) => {
                if let (Some(data), Some(exact)) = (frame.data_ref(), self.hint.exact()) {
                    self.hint = SizeHint::with_exact(exact.saturating_sub(data.len() as u64));
                }
            }
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// One step of decoding a chunked body.
enum Decoded {
    /// More bytes are needed; go on from this point once they are there.
    Need(Chunk),
    /// Framing was read; go on from this point.
    Next(Chunk),
    /// Data, then go on from this point.
    Data(Bytes, Chunk),
    /// The body ended, with these trailers, if any.
    End(Option<HeaderMap>),
}

/// Decode what `read` holds from point `chunk` of a chunked body, taking
/// out what was decoded.
fn decode_chunk(read: &mut BytesMut, chunk: Chunk) -> Result<Decoded, ExchangeError> {
    match chunk {
        Chunk::Size => {
            let Some(end) = read.iter().position(|&b| b == b'\n') else {
                if read.len() > MAX_CHUNK_LINE {
                    return Err(ExchangeError::Invalid("chunk-size line too long"));
                }
                return Ok(Decoded::Need(chunk));
            };
            if end >= MAX_CHUNK_LINE {
                return Err(ExchangeError::Invalid("chunk-size line too long"));
            }
            let line = read.split_to(end + 1);
            let size = chunk_size(&line)?;
            Ok(Decoded::Next(if size == 0 { Chunk::Trailers(0) } else { Chunk::Data(size) }))
        }
        Chunk::Data(left) => {
            if read.is_empty() {
                return Ok(Decoded::Need(chunk));
            }
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(read.len());
            let data = read.split_to(take).freeze();
            let left = left - take as u64;
            Ok(Decoded::Data(data, if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) }))
        }
        Chunk::DataEnd => {
            if read.len() < 2 {
                return Ok(Decoded::Need(chunk));
            }
            if &read[..2] != b"\r\n" {
                return Err(ExchangeError::Invalid("chunk data not followed by CRLF"));
            }
            let _ = read.split_to(2);
            Ok(Decoded::Next(Chunk::Size))
        }
        // As for heads, the section is parsed again only when a line ended.
        Chunk::Trailers(from) if !line_end_from(read, from) => {
            if read.len() > MAX_HEAD {
                return Err(ExchangeError::Invalid("trailer section too large"));
            }
            Ok(Decoded::Need(Chunk::Trailers(read.len())))
        }
        Chunk::Trailers(_) => match trailers::<USUAL_FIELDS>(read) {
            Err(ExchangeError::TooManyFields) => trailers::<MAX_FIELDS>(read),
            decoded => decoded,
        },
    }
}

/// The trailer section at the start of `read`, with room for `N` fields,
/// taken out if it is all there.
fn trailers<const N: usize>(read: &mut BytesMut) -> Result<Decoded, ExchangeError> {
    let mut fields = [httparse::EMPTY_HEADER; N];
    let (length, count) = match httparse::parse_headers(read, &mut fields) {
        Ok(httparse::Status::Complete((length, _))) if length > MAX_HEAD => {
            return Err(ExchangeError::Invalid("trailer section too large"))
        }
        Ok(httparse::Status::Complete((length, parsed))) => (length, parsed.len()),
        Ok(httparse::Status::Partial) if read.len() > MAX_HEAD => {
            return Err(ExchangeError::Invalid("trailer section too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(Decoded::Need(Chunk::Trailers(read.len()))),
        Err(httparse::Error::TooManyHeaders) => return Err(ExchangeError::TooManyFields),
        Err(_) => return Err(ExchangeError::Invalid("malformed trailer section")),
    };
    if count == 0 {
        let _ = read.split_to(length);
        return Ok(Decoded::End(None));
    }
    let mut trailers = HeaderMap::with_capacity(count);
    for field in &fields[..count] {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| ExchangeError::Invalid("bad trailer name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| ExchangeError::Invalid("bad trailer value"))?;
        trailers.append(name, value);
    }
    let _ = read.split_to(length);
    Ok(Decoded::End(Some(trailers)))
}

/// Whether `bytes` has a line feed at or after `from`: a line ended since
/// the last look, which may end a head or show it malformed.
fn line_end_from(bytes: &[u8], from: usize) -> bool {
    bytes.get(from..).is_some_and(|new| new.contains(&b'\n'))
}

/// The size on a chunk-size line (ending in CRLF), ignoring extensions.
fn chunk_size(line: &[u8]) -> Result<u64, ExchangeError> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or(ExchangeError::Invalid("chunk-size line not ended by CRLF"))?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest = rest.trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest.starts_with(b";")) {
        return Err(ExchangeError::Invalid("bad chunk size"));
    }
    if rest.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ExchangeError::Invalid("bad chunk extension"));
    }
    let digits = std::str::from_utf8(&line[..digits])
        .map_err(|_| ExchangeError::Invalid("bad chunk size"))?;
    u64::from_str_radix(digits, 16).map_err(|_| ExchangeError::Invalid("bad chunk size"))
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        self.poll_upload(cx);
        let frame = self.poll_next(cx);
        if let Poll::Ready(Some(Err(_))) = &frame {
            // A failed body closes its connection.
            self.conn = None;
            self.framing = Framing::Done;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Empty | Framing::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty | Framing::Done => SizeHint::with_exact(0),
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Chunked(_) | Framing::Close => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_is_decimal_digits_and_fits_in_nineteen() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"0012"), Some(12));
        assert_eq!(parse_length(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        for refused in
            [&b""[..], b"12345678901234567890", b"+1", b"-1", b"1 ", b"0x1", b"1_0", b"\xd9\xa1"]
        {
            assert_eq!(parse_length(refused), None, "{:?}", String::from_utf8_lossy(refused));
        }
    }

    fn framing(
        status: StatusCode,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Framing, ExchangeError> {
        super::framing(status, headers, seen(headers), head)
    }

    fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
        super::keep_alive(version, headers, seen(headers))
    }

    fn seen(headers: &HeaderMap) -> Seen {
        let mut seen = Seen::default();
        headers.iter().for_each(|(name, value)| seen.note(name, value));
        seen
    }

    fn fields(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let ok = StatusCode::OK;
        let length = fields(&[("content-length", "5")]);
        assert_eq!(framing(ok, &length, false).unwrap(), Framing::Length(5));
        assert_eq!(framing(ok, &length, true).unwrap(), Framing::Empty);
        assert_eq!(framing(StatusCode::NO_CONTENT, &length, false).unwrap(), Framing::Empty);
        assert_eq!(framing(StatusCode::NOT_MODIFIED, &length, false).unwrap(), Framing::Empty);
        let repeated = fields(&[("content-length", "5, 5"), ("content-length", "5")]);
        assert_eq!(framing(ok, &repeated, false).unwrap(), Framing::Length(5));
        let chunked = fields(&[("transfer-encoding", " Chunked ")]);
        assert_eq!(framing(ok, &chunked, false).unwrap(), Framing::Chunked(Chunk::Size));
        assert_eq!(framing(ok, &HeaderMap::new(), false).unwrap(), Framing::Close);
        for bad in [
            fields(&[("content-length", "5"), ("content-length", "6")]),
            fields(&[("content-length", "5, 6")]),
            fields(&[("content-length", "+5")]),
            fields(&[("content-length", "0x5")]),
            fields(&[("content-length", "")]),
            fields(&[("content-length", "99999999999999999999")]),
            fields(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
            fields(&[("transfer-encoding", "gzip, chunked")]),
            fields(&[("transfer-encoding", "chunked, gzip")]),
            fields(&[("transfer-encoding", "chunked, chunked")]),
            fields(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]),
            fields(&[("transfer-encoding", "gzip")]),
            fields(&[("transfer-encoding", "identity")]),
            fields(&[("transfer-encoding", "")]),
        ] {
            assert!(framing(ok, &bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        assert!(keep_alive(Version::HTTP_11, &HeaderMap::new()));
        assert!(!keep_alive(Version::HTTP_11, &fields(&[("connection", "foo, Close")])));
        assert!(!keep_alive(Version::HTTP_10, &HeaderMap::new()));
        assert!(keep_alive(Version::HTTP_10, &fields(&[("connection", "Keep-Alive")])));
    }

    /// Decode a whole chunked body from `wire`, fed in pieces of `step`.
    fn decode_all(
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, usize), ExchangeError> {
        let mut read = BytesMut::new();
        let mut fed = 0;
        let mut chunk = Chunk::Size;
        let mut data = Vec::new();
        loop {
            match decode_chunk(&mut read, chunk)? {
                Decoded::Need(next) => {
                    chunk = next;
                    if fed == wire.len() {
                        return Err(ExchangeError::Closed);
                    }
                    let next = (fed + step).min(wire.len());
                    read.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
                Decoded::Next(next) => chunk = next,
                Decoded::Data(bytes, next) => {
                    data.extend_from_slice(&bytes);
                    chunk = next;
                }
                Decoded::End(trailers) => {
                    return Ok((data, trailers, read.len() + wire.len() - fed))
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let wire = b"5;name=value\r\nhello\r\n1 \r\n!\r\n0\r\nx-sum: 6\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, wire.len()] {
            let (data, trailers, left) = decode_all(wire, step).unwrap();
            assert_eq!(data, b"hello!");
            assert_eq!(trailers.unwrap()["x-sum"], "6");
            assert_eq!(left, 4, "the bytes after the body stay unread");
        }
        let (data, trailers, _) = decode_all(b"0\r\n\r\n", 1).unwrap();
        assert!(data.is_empty() && trailers.is_none());
    }

    #[test]
    fn trailer_sections_take_up_to_the_field_limit() {
        let section = |n: usize| {
            let fields: String = (0..n).map(|i| format!("x-t{i}: {i}\r\n")).collect();
            BytesMut::from(format!("{fields}\r\nNEXT").as_bytes())
        };
        for n in [1, USUAL_FIELDS + 1, MAX_FIELDS] {
            let mut read = section(n);
            let Ok(Decoded::End(Some(trailers))) = decode_chunk(&mut read, Chunk::Trailers(0))
            else {
                panic!("{n} trailer fields must decode");
            };
            assert_eq!(trailers.len(), n);
            assert_eq!(&read[..], b"NEXT");
        }
        let mut read = section(MAX_FIELDS + 1);
        assert!(matches!(
            decode_chunk(&mut read, Chunk::Trailers(0)),
            Err(ExchangeError::TooManyFields)
        ));
    }

    #[test]
    fn only_new_line_ends_are_looked_for() {
        assert!(line_end_from(b"HTTP/1.1 200 OK\r\n", 0));
        assert!(line_end_from(b"HTTP/1.1 200 OK\r\n", 16));
        assert!(!line_end_from(b"HTTP/1.1 200 OK\r\n", 17));
        assert!(!line_end_from(b"HTTP/1.1 200 OK\r\nA: b", 17));
        assert!(!line_end_from(b"", 5));
    }

    #[test]
    fn malformed_chunked_bodies_fail() {
        for wire in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"g\r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello",
        ] {
            assert!(decode_all(wire, 1).is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
        let long = format!("5;{}\r\n", "x".repeat(MAX_CHUNK_LINE));
        assert!(decode_all(long.as_bytes(), 512).is_err());
    }
}
/// The bodies of every proxied exchange are moved several times on their
/// way (into the request, the response, the exchange's future), and each
/// move copies them whole: the connection is boxed and rare parts live in
/// the shared slot so that they stay small. Keeping `Conn` inline in the
/// response body cost about 1,000 instructions per proxied request.
#[cfg(test)]
mod sizes {
    #[test]
    fn bodies_moved_with_every_exchange_stay_small() {
        use std::mem::size_of;
        let sizes = [
            ("Http1Body", size_of::<super::Http1Body>()),
            ("UpstreamBody", size_of::<crate::upstream::UpstreamBody>()),
            ("RequestBody", size_of::<crate::request_body::RequestBody>()),
        ];
        for (name, size) in sizes {
            assert!(size <= 96, "{name} is {size} bytes: {sizes:?}");
        }
    }
}
