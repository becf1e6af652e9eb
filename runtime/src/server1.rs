//! The gateway's own HTTP/1.1 server, for plain requests.
//!
//! Most requests through a gateway are plain: a head without a body (or with
//! `Content-Length: 0`), without `Expect` and without an upgrade. This
//! server reads such heads straight
//! from the client socket with httparse, hands each to the proxy, and writes
//! the response itself: no channel, task or dispatcher stands between the
//! connection and its requests.
//!
//! The first head that is not plain (one with a body, `Expect`, `Upgrade`,
//! `CONNECT`, a `#` in its target, anything malformed or over a limit) ends
//! this server's part. hyper's server then takes the connection, with the
//! bytes already read handed back first, and serves or refuses that head
//! and every later one as it would have from the start, framing checks
//! included (see [`crate::framing`]); only hyper no longer knows that earlier
//! requests were HTTP/1.0, so it refuses a malformed one in HTTP/1.1. A
//! connection thus moves at most once, from this server to hyper.
//!
//! Responses are written as hyper writes them, so that a client cannot tell
//! which server answered:
//! - the status line in the response's version, `HTTP/1.0` to an HTTP/1.0
//!   client, with the canonical reason phrase or the upstream's own;
//! - the fields in the order of the map, a `Date` field last unless the
//!   response has one;
//! - the body framed by its length when it is known, chunked to an HTTP/1.1
//!   client otherwise, and ended by closing the connection to an HTTP/1.0
//!   one; no body at all after `HEAD`, 204 and 304;
//! - `Connection: close` when this response is the connection's last, and
//!   `Connection: keep-alive` to an HTTP/1.0 client that asked for it;
//! - trailer fields only to a client that sent `TE: trailers`, and only
//!   those the response's `Trailer` field names.
//!
//! Unlike hyper's server, this one also sends the interim (1xx) responses
//! an HTTP/1.1 pool sends before its final one, to an HTTP/1.1 client (see
//! [`crate::connection::InterimSink`]): each as soon as it comes, its head
//! written as a final one's is but without framing or `Date`.
//!
//! While a request is in flight, a client that closes its connection
//! cancels it, as one that leaves does with hyper.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io::{self, Write};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::connection::ConnectionState;
use crate::exchange::ResponseBody;
use crate::framing::Event;
use crate::headers::list_has;
use crate::request_body::ClientBody;
use crate::stall::StallingWriter;

/// Header fields parsed without a second try; most heads have fewer.
const USUAL_FIELDS: usize = 24;
/// The most fields a head served here may have; more go to hyper.
const MAX_FIELDS: usize = 100;
/// The space made in the read buffer when it runs short...
const READ_ROOM: usize = 4 * 1024;
/// ...of this much.
const MIN_ROOM: usize = 512;
/// Response bytes gathered before they are written, for a body that keeps
/// giving data without waiting.
const WRITE_BATCH: usize = 64 * 1024;
/// A partial head up to this size is parsed again at every read.
const EAGER_PARSE: usize = 1024;
/// A longer target is hyper's to refuse (414).
const MAX_TARGET: usize = 65534;

/// The limits of the listener the connection came through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) max_head: usize,
    pub(crate) max_headers: usize,
    /// The longest the client may take none of a response.
    pub(crate) stall: Duration,
}

/// The client socket as responses are written to it.
type Writer<'a> = StallingWriter<&'a mut TcpStream>;

/// How this server's part of a connection ended.
pub(crate) enum Ended {
    /// The connection is over: either side closed it, or it failed.
    Closed,
    /// A head this server does not serve: hyper serves the connection from
    /// here, reading `read` first.
    Handover { stream: TcpStream, read: Bytes },
}

/// What the request said about its response.
#[derive(Debug, Clone, Copy)]
struct Asked {
    head: bool,
    http10: bool,
    keep_alive: bool,
    trailers: bool,
}

enum Parsed {
    /// Boxed, as it goes on to the proxy: the request moves through several
    /// futures, and each move of the whole head would copy it again, into
    /// memory of its connection that is cold by the next request.
    Plain(Box<Request<ClientBody>>, Asked),
    Partial,
    Other,
}

/// Serve plain requests on `stream` (after `prefix`, bytes already read from
/// it) until the connection ends or a head needs hyper. `service` answers
/// each request; a stop asked through `state` ends the connection once no
/// request is in flight.
pub(crate) async fn serve<S, F>(
    mut stream: TcpStream,
    prefix: Bytes,
    state: Arc<ConnectionState>,
    settings: Settings,
    mut service: S,
) -> Ended
where
    S: FnMut(Box<Request<ClientBody>>) -> F,
    F: Future<Output = Result<Response<ResponseBody>, Infallible>>,
{
    let mut read = BytesMut::with_capacity(READ_ROOM.max(prefix.len()));
    read.extend_from_slice(&prefix);
    let mut out = Vec::with_capacity(1024);
    loop {
        // A head.
        let mut begun = false;
        // How much of `read` is known to hold no line end. Past its first
        // kilobyte, a partial head is parsed again only once a line has
        // ended, so that one sent a byte at a time costs time in proportion
        // to its size; before, every read is parsed, so that bytes which
        // cannot start a request are refused as soon as they arrive.
        let mut scanned = 0;
        let (request, asked) = loop {
            if state.is_closing() {
                return Ended::Closed;
            }
            if !read.is_empty() {
                let parsed = if read.len() <= EAGER_PARSE || read[scanned..].contains(&b'\n') {
                    parse(&mut read, settings)
                } else {
                    Parsed::Partial
                };
                match parsed {
                    Parsed::Plain(request, asked) => break (request, asked),
                    Parsed::Partial if read.len() <= settings.max_head => {
                        // The head clock starts with the first read that
                        // leaves a head unfinished; a head that comes whole
                        // costs no clock reading.
                        if !begun {
                            state.on_scan(Event::HeadStarted);
                            begun = true;
                        }
                        scanned = read.len();
                    }
                    Parsed::Partial | Parsed::Other => {
                        return Ended::Handover { stream, read: read.freeze() }
                    }
                }
            }
            make_room(&mut read);
            let filled = poll_fn(|cx| {
                if state.is_closing() {
                    return Poll::Ready(Ok(0));
                }
                tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut stream), cx, &mut read)
            })
            .await;
            match filled {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            }
        };
        if begun {
            state.on_scan(Event::Head(Ok(())));
        }

        // Its response, while watching for the client leaving, and sending
        // on the interim responses that come first (which the exchange
        // writes for the client in this task, as it polls `answer`). The
        // response stays where it lands, in `answered`, until its body is
        // written: each move would copy it (288 bytes) again, into memory
        // of the connection that is cold by its next request.
        let mut answered: Option<Response<ResponseBody>> = None;
        {
            let mut answer = pin!(service(request));
            let mut watching = read.is_empty();
            loop {
                let waited = poll_fn(|cx| {
                    if let Poll::Ready(Ok(response)) = answer.as_mut().poll(cx) {
                        answered = Some(response);
                        return Poll::Ready(Waited::Answered);
                    }
                    if state.interim_pending() {
                        return Poll::Ready(Waited::Interim);
                    }
                    if watching {
                        make_room(&mut read);
                        let pinned = std::pin::Pin::new(&mut stream);
                        match tokio_util::io::poll_read_buf(pinned, cx, &mut read) {
                            Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Waited::Left),
                            // A pipelined head waits its turn.
                            Poll::Ready(Ok(_)) => watching = false,
                            Poll::Pending => {}
                        }
                    }
                    Poll::Pending
                })
                .await;
                match waited {
                    Waited::Answered => break,
                    Waited::Left => return Ended::Closed,
                    Waited::Interim => {
                        out.clear();
                        state.take_interim(&mut out);
                        let mut writer = StallingWriter::new(&mut stream, settings.stall);
                        if writer.write_all(&out).await.is_err() {
                            return Ended::Closed;
                        }
                    }
                }
            }
        }
        // (Set whenever the wait above ends in `Answered`.)
        let Some(response) = answered.as_mut() else { return Ended::Closed };

        let keep_alive = asked.keep_alive && !state.is_closing();
        out.clear();
        // Interim responses that came with this one go out just ahead of it.
        state.end_interim(&mut out);
        let (encoder, last) = encode_head(response, asked, keep_alive, &mut out);
        let mut writer = StallingWriter::new(&mut stream, settings.stall);
        let framed = frame_body(&mut writer, &mut out, response.body_mut(), encoder).await;
        // The body is dropped (in place) before the last bytes are written,
        // so its exchange is logged and counted as ended by the time the
        // client has the response, as with hyper.
        #[allow(unused_assignments)] // read by no one: the drop is the point
        {
            answered = None;
        }
        let written = match framed {
            Ok(whole) => writer.write_all(&out).await.map(|()| whole),
            Err(error) => Err(error),
        };
        match written {
            Ok(true) if !last => {}
            Ok(_) => {
                let _ = stream.shutdown().await;
                return Ended::Closed;
            }
            Err(_) => return Ended::Closed,
        }
    }
}

/// What ended a wait for a response.
enum Waited {
    /// The response is in.
    Answered,
    /// Interim responses are ready to be sent.
    Interim,
    /// The client closed its connection.
    Left,
}

/// Make room in `read` for what the socket has, unless it still has some:
/// the heads taken out of it share its memory while their requests last, so
/// growing it means a new allocation, which one per request would be.
fn make_room(read: &mut BytesMut) {
    if read.capacity() - read.len() < MIN_ROOM {
        read.reserve(READ_ROOM);
    }
}

/// Parse the head at the front of `read`, taking it out when it is plain.
fn parse(read: &mut BytesMut, settings: Settings) -> Parsed {
    match parse_with::<USUAL_FIELDS>(read, settings) {
        Err(httparse::Error::TooManyHeaders) if settings.max_headers > USUAL_FIELDS => {
            parse_with::<MAX_FIELDS>(read, settings).unwrap_or(Parsed::Other)
        }
        parsed => parsed.unwrap_or(Parsed::Other),
    }
}

/// [`parse`] with room for `N` fields.
fn parse_with<const N: usize>(
    read: &mut BytesMut,
    settings: Settings,
) -> Result<Parsed, httparse::Error> {
    let mut fields = [httparse::EMPTY_HEADER; N];
    let mut parsed = httparse::Request::new(&mut fields);
    let length = match parsed.parse(read)? {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial => return Ok(Parsed::Partial),
    };
    let count = parsed.headers.len();
    if length > settings.max_head || count > settings.max_headers {
        return Ok(Parsed::Other);
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Ok(Parsed::Other);
    };
    if target.len() >= MAX_TARGET || target.contains('#') {
        return Ok(Parsed::Other);
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Ok(Parsed::Other) };
    if method == Method::CONNECT {
        return Ok(Parsed::Other);
    }
    let http10 = version == 0;
    let mut asked =
        Asked { head: method == Method::HEAD, http10, keep_alive: !http10, trailers: false };
    let mut closing = false;
    let mut empty_said = false;

    // Where the target, and each name and value, lie in the head, so that
    // they can share its memory once it leaves the buffer.
    let start = read.as_ptr() as usize;
    let offset = |part: &[u8]| part.as_ptr() as usize - start;
    let target = (offset(target.as_bytes()), target.len());
    let mut spans = [(0usize, 0usize, 0usize, 0usize); N];
    for (field, span) in parsed.headers.iter().zip(&mut spans) {
        let name = field.name.as_bytes();
        // The fields that decide framing and keep-alive, found by length
        // first, since most fields are none of them.
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            14 if is(b"content-length") => {
                // An empty body said out loud is still no body; any other
                // length, or a second one, is hyper's to frame or refuse.
                if field.value != b"0" || empty_said {
                    return Ok(Parsed::Other);
                }
                empty_said = true;
            }
            17 if is(b"transfer-encoding") => return Ok(Parsed::Other),
            6 if is(b"expect") => return Ok(Parsed::Other),
            7 if is(b"upgrade") => return Ok(Parsed::Other),
            10 if is(b"connection") => {
                // One `close` anywhere wins over any `keep-alive`.
                if closing || list_has(field.value, b"close") {
                    closing = true;
                    asked.keep_alive = false;
                } else if !asked.keep_alive {
                    asked.keep_alive = list_has(field.value, b"keep-alive");
                }
            }
            2 if is(b"te") => asked.trailers |= list_has(field.value, b"trailers"),
            _ => {}
        }
        *span = (offset(name), name.len(), offset(field.value), field.value.len());
    }

    let head = read.split_to(length).freeze();
    let Some((uri, headers)) = target_and_fields(&head, target, &spans[..count]) else {
        // Put the head back for hyper to refuse.
        let mut back = BytesMut::from(head);
        back.extend_from_slice(read);
        *read = back;
        return Ok(Parsed::Other);
    };
    // Boxed first and filled in there: a request filled in and then boxed
    // is copied twice on the way.
    let mut request = Box::new(Request::new(ClientBody::Empty));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
    *request.headers_mut() = headers;
    Ok(Parsed::Plain(request, asked))
}

/// The target and fields of `head`, from where [`parse_with`] found them,
/// sharing its memory; `None` when `http` refuses one that httparse let by.
fn target_and_fields(
    head: &Bytes,
    (target, target_len): (usize, usize),
    spans: &[(usize, usize, usize, usize)],
) -> Option<(Uri, HeaderMap)> {
    let uri = Uri::from_maybe_shared(head.slice(target..target + target_len)).ok()?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    for &(name, name_len, value, value_len) in spans {
        let name = HeaderName::from_bytes(&head[name..name + name_len]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len)).ok()?;
        headers.append(name, value);
    }
    Some((uri, headers))
}

/// How a response body goes on the wire.
enum Encoder {
    /// Exactly this many bytes, then the next response.
    Length(u64),
    /// Chunks, then trailer fields among those named.
    Chunked { trailers: Option<Vec<HeaderName>> },
    /// Bytes until the connection closes.
    Close,
}

/// Write the response head into `out`; returns how the body goes and
/// whether the connection closes after this response.
fn encode_head(
    response: &mut Response<ResponseBody>,
    asked: Asked,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> (Encoder, bool) {
    // What hyper calls the body's length: none, known, or unknown.
    let body = response.body();
    let length = if body.is_end_stream() { None } else { Some(body.size_hint().exact()) };
    let status = response.status();
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut version = response.version();
    let headers = response.headers_mut();
    let says = |headers: &HeaderMap, token: &[u8]| {
        headers.get_all(header::CONNECTION).iter().any(|v| list_has(v.as_bytes(), token))
    };
    if asked.http10 {
        // A response that closes the connection (one the gateway wrote
        // itself, say) does not also promise to keep it.
        let (kept, closes) = (says(headers, b"keep-alive"), says(headers, b"close"));
        if !kept && !closes && version == Version::HTTP_11 && keep_alive {
            headers.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        version = Version::HTTP_10;
    } else if !keep_alive && !switching && !says(headers, b"close") {
        headers.append(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut last = switching || !keep_alive;

    status_line(out, version, status, response.extensions().get::<hyper::ext::ReasonPhrase>());
    let headers = response.headers();

    let may_chunk =
        !asked.head && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let may_have_length = !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut encoder = Encoder::Length(0);
    let mut wrote_length = false;
    let mut wrote_date = false;
    let mut trailer_names: Option<Vec<HeaderName>> = None;
    // A field written as one line of comma-separated values, still open.
    let mut open: Option<HeaderName> = None;
    let mut chunked_last = true;
    let close_open = |out: &mut Vec<u8>, open: &mut Option<HeaderName>, chunked_last: bool| {
        if let Some(name) = open.take() {
            if name == header::TRANSFER_ENCODING && !chunked_last {
                out.extend_from_slice(b", chunked");
            }
            out.extend_from_slice(b"\r\n");
        }
    };
    let line = |out: &mut Vec<u8>,
                open: &mut Option<HeaderName>,
                name: &HeaderName,
                value: &HeaderValue| {
        if open.as_ref() == Some(name) {
            out.extend_from_slice(b", ");
        } else {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            *open = Some(name.clone());
        }
        out.extend_from_slice(value.as_bytes());
    };
    for (name, value) in headers.iter() {
        if open.as_ref() != Some(name) {
            close_open(out, &mut open, chunked_last);
        }
        if *name == header::CONTENT_LENGTH {
            match length {
                Some(known) => {
                    // Further values of the field are the first one again.
                    if open.as_ref() == Some(name) {
                        continue;
                    }
                    let Some(n) = known.or_else(|| crate::http1::parse_length(value.as_bytes()))
                    else {
                        continue;
                    };
                    encoder = Encoder::Length(n);
                    wrote_length = true;
                    line(out, &mut open, name, value);
                }
                // A response to HEAD tells the length its GET would have.
                None if asked.head => {
                    wrote_length = true;
                    plain_line(out, name, value);
                }
                // No body: the length written below is zero.
                None => {}
            }
        } else if *name == header::TRANSFER_ENCODING {
            if version == Version::HTTP_10 || !may_chunk {
                continue;
            }
            wrote_length = true;
            encoder = Encoder::Chunked { trailers: None };
            chunked_last = is_chunked(value.as_bytes());
            line(out, &mut open, name, value);
        } else if *name == header::CONNECTION {
            if list_has(value.as_bytes(), b"close") {
                last = true;
            }
            line(out, &mut open, name, value);
        } else if *name == header::TRAILER {
            if version == Version::HTTP_10 || !may_chunk {
                continue;
            }
            if let Ok(listed) = value.to_str() {
                let names = listed
                    .split(',')
                    .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok());
                trailer_names.get_or_insert_with(Vec::new).extend(names);
            }
            line(out, &mut open, name, value);
        } else {
            wrote_date |= *name == header::DATE;
            plain_line(out, name, value);
        }
    }
    close_open(out, &mut open, chunked_last);

    if !wrote_length {
        encoder = match length {
            Some(None) if version == Version::HTTP_10 || !may_chunk => Encoder::Close,
            Some(None) => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Encoder::Chunked { trailers: None }
            }
            None | Some(Some(0)) => {
                if may_have_length && !asked.head {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Encoder::Length(0)
            }
            Some(Some(n)) => {
                if may_have_length {
                    // Writing to a vector cannot fail.
                    let _ = write!(out, "content-length: {n}\r\n");
                }
                Encoder::Length(n)
            }
        };
    }
    if !may_chunk {
        encoder = Encoder::Length(0);
    }
    if let Encoder::Chunked { trailers } = &mut encoder {
        if asked.trailers {
            *trailers = trailer_names;
        }
    }
    if let Encoder::Close = encoder {
        last = true;
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (encoder, last)
}

/// The status line, with the upstream's own reason phrase if it had one.
/// (Inlined: in `encode_head` its common case is one copy.)
#[inline(always)]
fn status_line(
    out: &mut Vec<u8>,
    version: Version,
    status: StatusCode,
    reason: Option<&hyper::ext::ReasonPhrase>,
) {
    if version == Version::HTTP_11 && status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(if version == Version::HTTP_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match reason {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// Write the head of an interim (1xx) response to an HTTP/1.1 client into
/// `out`: its status line and field lines as [`encode_head`] writes them,
/// and nothing of framing or `Date`, which are the final response's.
/// `headers` have lost their hop-by-hop fields already.
pub(crate) fn encode_interim(
    status: StatusCode,
    reason: Option<&hyper::ext::ReasonPhrase>,
    headers: &HeaderMap,
    out: &mut Vec<u8>,
) {
    status_line(out, Version::HTTP_11, status, reason);
    for (name, value) in headers {
        plain_line(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// One field line.
fn plain_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Whether the last coding of a `Transfer-Encoding` list is chunked.
fn is_chunked(list: &[u8]) -> bool {
    list.rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Write the head in `out` and then `body` as `encoder` frames it, all but
/// the last bytes, which stay in `out`. Returns whether the body ended as
/// framed (so the connection may go on).
async fn frame_body(
    stream: &mut Writer<'_>,
    out: &mut Vec<u8>,
    body: &mut ResponseBody,
    encoder: Encoder,
) -> io::Result<bool> {
    match encoder {
        Encoder::Length(0) => Ok(true),
        Encoder::Length(n) => gather(stream, out, body, Some(n), false, None).await,
        Encoder::Chunked { trailers } => gather(stream, out, body, None, true, trailers).await,
        Encoder::Close => gather(stream, out, body, None, false, None).await,
    }
}

/// Frame `body` into `out`, writing as it goes whenever the body has to
/// wait, and leave the last bytes in `out`. `left` is what a length still
/// allows; `allowed` the trailer fields a chunked body may end with.
async fn gather(
    stream: &mut Writer<'_>,
    out: &mut Vec<u8>,
    body: &mut ResponseBody,
    mut left: Option<u64>,
    chunked: bool,
    mut allowed: Option<Vec<HeaderName>>,
) -> io::Result<bool> {
    // Whether to notice a client that closes its connection while the body
    // keeps it waiting (not once the client has sent its next request).
    let mut watch_client = true;
    loop {
        // Gather what the body has ready, then write it.
        let frame = poll_fn(|cx| match std::pin::Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Gathered::Write),
            Poll::Pending if watch_client => match client_left(stream.get_ref(), cx) {
                Some(true) => Poll::Ready(Gathered::ClientLeft),
                Some(false) => {
                    watch_client = false;
                    Poll::Pending
                }
                None => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Gathered::Frame(frame)),
        })
        .await;
        let frame = match frame {
            Gathered::Write => {
                stream.write_all(out).await?;
                out.clear();
                continue;
            }
            // Dropping the body lets its upstream connection go now, not
            // when the upstream next sends something or its stall clock ends.
            Gathered::ClientLeft => {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the client left"))
            }
            Gathered::Frame(Some(Ok(frame))) => frame,
            // The upstream failed mid-body: the client learns it by the close.
            Gathered::Frame(Some(Err(_))) => return Ok(false),
            Gathered::Frame(None) => {
                return Ok(match left {
                    Some(left) => left == 0,
                    None => {
                        if chunked {
                            out.extend_from_slice(b"0\r\n\r\n");
                        }
                        true
                    }
                });
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if data.is_empty() {
                    continue;
                }
                if let Some(left) = &mut left {
                    let Some(rest) = left.checked_sub(data.len() as u64) else {
                        return Ok(false);
                    };
                    *left = rest;
                    out.extend_from_slice(&data);
                    if rest == 0 {
                        // All the body there is: what follows is not awaited.
                        return Ok(true);
                    }
                } else if chunked {
                    let _ = write!(out, "{:X}\r\n", data.len());
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(&data);
                }
            }
            Err(frame) => {
                let Ok(trailers) = frame.into_trailers() else { continue };
                if let Some(names) = allowed.take().filter(|_| chunked) {
                    let mut fields = Vec::new();
                    for (name, value) in &trailers {
                        if names.contains(name) && is_valid_trailer(name) {
                            plain_line(&mut fields, name, value);
                        }
                    }
                    if !fields.is_empty() {
                        out.extend_from_slice(b"0\r\n");
                        out.extend_from_slice(&fields);
                        out.extend_from_slice(b"\r\n");
                        return Ok(true);
                    }
                }
            }
        }
        if out.len() >= WRITE_BATCH {
            stream.write_all(out).await?;
            out.clear();
        }
    }
}

enum Gathered {
    Write,
    ClientLeft,
    Frame(Option<Result<Frame<Bytes>, crate::upstream::BodyFailure>>),
}

/// Whether the client closed its connection (`Some(true)`), sent more
/// (`Some(false)`: a pipelined request, left for later), or neither yet
/// (`None`, and `cx` is woken when it does). As hyper's server does, a
/// client that shuts its sending side is taken to have left.
fn client_left(socket: &TcpStream, cx: &mut Context<'_>) -> Option<bool> {
    let mut byte = [0u8; 1];
    let mut peeked = ReadBuf::new(&mut byte);
    match socket.poll_peek(cx, &mut peeked) {
        Poll::Ready(Ok(0) | Err(_)) => Some(true),
        Poll::Ready(Ok(_)) => Some(false),
        Poll::Pending => None,
    }
}

/// Fields that may not travel in a trailer section (RFC 9110, section 6.5.1).
fn is_valid_trailer(name: &HeaderName) -> bool {
    !matches!(
        *name,
        header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

thread_local! {
    /// The `Date` value of the current second, formatted once per second.
    static DATE: std::cell::RefCell<(u64, Bytes)> = const { std::cell::RefCell::new((0, Bytes::new())) };
}

/// Append the current time as an HTTP date (RFC 9110, section 5.6.7).
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != second || date.1.is_empty() {
            *date = (second, Bytes::from(httpdate::fmt_http_date(now)));
        }
        out.extend_from_slice(&date.1);
    });
}
