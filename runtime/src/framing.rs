//! Request framing checks that hyper leaves to its user.
//!
//! hyper 1.x already answers 400 to a request with differing or malformed
//! `Content-Length` values (empty, signed, hex, a comma list), a
//! `Transfer-Encoding` whose last coding is not `chunked`, `Transfer-Encoding`
//! on HTTP/1.0, an obsolete folded header line, an empty header name, and a CR
//! or NUL in a header name or value. Two ambiguous framings get through: a
//! request with both `Content-Length` and `Transfer-Encoding` (hyper lets
//! chunked win, drops `Content-Length` and closes after the response, so the
//! handler cannot even see that both were sent), and a coding list such as
//! `gzip, chunked`, which the gateway would forward as a plain chunked body.
//! The first is a request-smuggling shape (RFC 9112, section 6.3), refused
//! with 400. The second is refused too: with 501 when the list is well
//! formed, since the gateway implements no coding but `chunked` (RFC 9112,
//! section 6.1), and with 400 when it is not (an empty element, `chunked`
//! twice or with parameters, or whitespace after the value, which the HTTP
//! parser would silently drop).
//!
//! Since hyper hides the raw head, the [`FramingScanner`] reads the same bytes
//! as hyper, just before it: it finds each request head, checks it, and then
//! follows the body's framing (a length, or chunks and trailers) to the next
//! head, so that every pipelined request on a connection is checked, in
//! order. Once it meets a head it cannot follow (a malformed one, or
//! `CONNECT`), it stops, and every later request on the connection is refused.
//!
//! The scanner also reports when a head starts and ends, which is what the
//! request-head and idle timeouts need (see [`crate::connection`]).

use std::mem::MaybeUninit;

/// What the scanner noticed in a run of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The first byte of a request head arrived.
    HeadStarted,
    /// A request head is complete: `Ok` when it may be served, `Err` with the
    /// reason when the gateway must refuse it.
    Head(Result<(), &'static str>),
}

/// Follows the request stream of one client connection. See the module doc.
#[derive(Debug)]
pub(crate) struct FramingScanner {
    state: State,
    /// The head read so far, when it arrived in more than one piece.
    partial: Vec<u8>,
    max_head: usize,
    max_headers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests, or inside a head (`partial` holds what came so far).
    Head,
    /// This many body bytes are still to come.
    Fixed(u64),
    /// Hex digits of a chunk size; `digits` counts them.
    ChunkSize { size: u64, digits: u8 },
    /// The rest of a chunk-size line (extensions, CR) up to its LF.
    ChunkLine { size: u64 },
    /// This many bytes of chunk data are still to come.
    ChunkData(u64),
    /// The CR LF after chunk data.
    ChunkEnd,
    /// The trailer section; `line` counts the bytes of the current line.
    Trailers { line: usize },
    /// The stream can no longer be followed; nothing more is checked.
    Stopped,
}

/// The reason given for every request after one the scanner could not follow.
pub(crate) const UNFOLLOWABLE: &str = "an earlier request on this connection was malformed";

impl FramingScanner {
    /// A scanner with the listener's limits, which must match hyper's so that
    /// both read a head the same way.
    pub(crate) fn new(max_head: usize, max_headers: usize) -> FramingScanner {
        FramingScanner { state: State::Head, partial: Vec::new(), max_head, max_headers }
    }

    /// Whether a head has started and not yet ended.
    #[cfg(test)]
    fn in_head(&self) -> bool {
        self.state == State::Head && !self.partial.is_empty()
    }

    /// Follow `bytes`, the next bytes the client sent, reporting to `on`.
    pub(crate) fn scan(&mut self, mut bytes: &[u8], on: &mut impl FnMut(Event)) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Head => self.head(bytes, on),
                State::Stopped => return,
                _ => self.body(bytes),
            };
            bytes = &bytes[used..];
        }
    }

    /// Take head bytes from the front of `bytes`; returns how many were used.
    fn head(&mut self, bytes: &[u8], on: &mut impl FnMut(Event)) -> usize {
        if self.partial.is_empty() {
            // Empty lines before a request line are ignored (RFC 9112, section 2.2).
            let skip = bytes.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if skip > 0 {
                return skip;
            }
            on(Event::HeadStarted);
            match self.parse(bytes) {
                Parsed::Complete { len, verdict } => {
                    on(Event::Head(verdict));
                    return len;
                }
                Parsed::Partial => {
                    let keep = bytes.len().min(self.max_head + 1);
                    self.partial.extend_from_slice(&bytes[..keep]);
                    return self.partial_overflow(keep, on);
                }
                Parsed::Invalid(reason) => {
                    self.state = State::Stopped;
                    on(Event::Head(Err(reason)));
                    return bytes.len();
                }
            }
        }

        // The head arrived in pieces: parse what there is so far.
        let before = self.partial.len();
        let room = (self.max_head + 1).saturating_sub(before);
        let take = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..take]);
        let partial = std::mem::take(&mut self.partial);
        let parsed = self.parse(&partial);
        self.partial = partial;
        match parsed {
            Parsed::Complete { len, verdict } => {
                self.partial.clear();
                on(Event::Head(verdict));
                len - before
            }
            Parsed::Partial => self.partial_overflow(take, on),
            Parsed::Invalid(reason) => {
                self.state = State::Stopped;
                self.partial.clear();
                on(Event::Head(Err(reason)));
                bytes.len()
            }
        }
    }

    /// After an incomplete head: stop once it has outgrown the limit (hyper
    /// answers 431 to it). Returns `used`.
    fn partial_overflow(&mut self, used: usize, on: &mut impl FnMut(Event)) -> usize {
        if self.partial.len() > self.max_head {
            self.state = State::Stopped;
            self.partial = Vec::new();
            on(Event::Head(Err("request head too large")));
        }
        used
    }

    /// Parse one head at the start of `bytes` and set the body state after it.
    fn parse(&mut self, bytes: &[u8]) -> Parsed {
        const ON_STACK: usize = 128;
        let mut stack = [const { MaybeUninit::uninit() }; ON_STACK];
        let mut heap;
        let headers: &mut [MaybeUninit<httparse::Header<'_>>] = if self.max_headers <= ON_STACK {
            &mut stack[..self.max_headers]
        } else {
            heap = Vec::with_capacity(self.max_headers);
            heap.resize_with(self.max_headers, MaybeUninit::uninit);
            &mut heap
        };
        let mut request = httparse::Request::new(&mut []);
        let len = match request.parse_with_uninit_headers(bytes, headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Parsed::Partial,
            Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid("too many headers"),
            Err(_) => return Parsed::Invalid("malformed request head"),
        };
        if len > self.max_head {
            self.state = State::Stopped;
            return Parsed::Complete { len, verdict: Err("request head too large") };
        }

        // A fragment is the client's own business and never part of a request;
        // the HTTP parser would drop it silently, so it is refused here.
        let framing = body_framing(&request, bytes).and_then(|framing| {
            match request.path.is_some_and(|target| target.contains('#')) {
                true => Err("request target holds a `#` fragment"),
                false => Ok(framing),
            }
        });
        self.state = match framing {
            Ok(Framing::Length(0)) => State::Head,
            Ok(Framing::Length(n)) => State::Fixed(n),
            Ok(Framing::Chunked) => State::ChunkSize { size: 0, digits: 0 },
            // After a tunnel request the stream is no longer HTTP to follow.
            Ok(Framing::Tunnel) | Err(_) => State::Stopped,
        };
        Parsed::Complete { len, verdict: framing.map(|_| ()) }
    }

    /// Take body bytes from the front of `bytes`; returns how many were used.
    fn body(&mut self, bytes: &[u8]) -> usize {
        match self.state {
            State::Fixed(left) | State::ChunkData(left) => {
                let used = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let left = left - used as u64;
                self.state = match (self.state, left) {
                    (State::Fixed(_), 0) => State::Head,
                    (State::Fixed(_), _) => State::Fixed(left),
                    (_, 0) => State::ChunkEnd,
                    _ => State::ChunkData(left),
                };
                used
            }
            State::ChunkSize { size, digits } => {
                let byte = bytes[0];
                match (byte as char).to_digit(16) {
                    Some(d) if digits < 16 => {
                        let size = size * 16 + u64::from(d);
                        self.state = State::ChunkSize { size, digits: digits + 1 };
                    }
                    // More than 16 hex digits overflows; hyper refuses it too.
                    Some(_) => self.state = State::Stopped,
                    None if digits == 0 => self.state = State::Stopped,
                    None => {
                        self.state = State::ChunkLine { size };
                        return 0;
                    }
                }
                1
            }
            State::ChunkLine { size } => match bytes.iter().position(|&b| b == b'\n') {
                None => bytes.len(),
                Some(at) => {
                    self.state = if size == 0 {
                        State::Trailers { line: 0 }
                    } else {
                        State::ChunkData(size)
                    };
                    at + 1
                }
            },
            State::ChunkEnd => match bytes.iter().position(|&b| b == b'\n') {
                None => bytes.len(),
                Some(at) => {
                    self.state = State::ChunkSize { size: 0, digits: 0 };
                    at + 1
                }
            },
            State::Trailers { line } => {
                let mut line = line;
                for (i, &byte) in bytes.iter().enumerate() {
                    match byte {
                        b'\n' if line == 0 => {
                            self.state = State::Head;
                            return i + 1;
                        }
                        b'\n' => line = 0,
                        b'\r' => {}
                        _ => line += 1,
                    }
                }
                self.state = State::Trailers { line };
                bytes.len()
            }
            State::Head | State::Stopped => bytes.len(),
        }
    }
}

enum Parsed {
    Complete { len: usize, verdict: Result<(), &'static str> },
    Partial,
    Invalid(&'static str),
}

enum Framing {
    Length(u64),
    Chunked,
    Tunnel,
}

/// The reason given to a request whose transfer codings are well formed,
/// with `chunked` last, but include one the gateway does not implement
/// (any but `chunked`): answered 501, not 400 (RFC 9112, section 6.1).
pub(crate) const UNKNOWN_CODING: &str = "a transfer coding other than chunked";

/// Whether a refusal's reason is [`UNKNOWN_CODING`].
pub(crate) fn is_unknown_coding(reason: &str) -> bool {
    reason == UNKNOWN_CODING
}

/// The transfer codings of a request so far, over all its
/// `Transfer-Encoding` lines in order.
#[derive(Debug, Clone, Copy, Default)]
struct Codings {
    /// Whether the last coding so far is `chunked`.
    last_chunked: bool,
    /// Whether a coding other than `chunked` came.
    others: bool,
}

/// Add the codings of one `Transfer-Encoding` value to `seen`: a
/// comma-separated list of codings, each a token with optional `;name=value`
/// parameters (the value a token or a quoted string, which may hold commas
/// and semicolons), with optional spaces or tabs around each element, name,
/// `=` and value. An empty element,
/// a coding that is not a token, `chunked` with parameters, or `chunked`
/// anywhere but last (it may be applied only once, as the final coding) is
/// malformed: 400. Whether a coding other than `chunked` is refused with 501
/// or 400 depends on what comes last, so that is left to the caller.
fn te_codings(value: &[u8], mut seen: Codings) -> Result<Codings, &'static str> {
    const MALFORMED: &str = "malformed Transfer-Encoding";
    for element in split_unquoted(value, b',') {
        if seen.last_chunked {
            return Err(MALFORMED);
        }
        let mut parts = split_unquoted(trim_ows(element), b';');
        let name = trim_ows(parts.next().unwrap_or_default());
        if !is_token(name) {
            return Err(MALFORMED);
        }
        let chunked = name.eq_ignore_ascii_case(b"chunked");
        for parameter in parts {
            let parameter = trim_ows(parameter);
            let (key, value) = match parameter.iter().position(|&b| b == b'=') {
                Some(at) => (trim_ows(&parameter[..at]), trim_ows(&parameter[at + 1..])),
                None => return Err(MALFORMED),
            };
            if chunked || !is_token(key) || !(is_token(value) || is_quoted_string(value)) {
                return Err(MALFORMED);
            }
        }
        seen = Codings { last_chunked: chunked, others: seen.others || !chunked };
    }
    Ok(seen)
}

/// The pieces of `bytes` between the `separator`s that are not inside a
/// quoted string (where a backslash escapes the byte after it). An
/// unclosed quote runs to the end, and the piece then fails as malformed.
fn split_unquoted(bytes: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let (mut quoted, mut escaped) = (false, false);
    bytes.split(move |&b| {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else {
            return !quoted && b == separator;
        }
        false
    })
}

/// Whether `bytes` is one quoted string (RFC 9110, section 5.6.4): quotes
/// at both ends, and inside only text, with a backslash escaping the next
/// byte.
fn is_quoted_string(bytes: &[u8]) -> bool {
    let [b'"', inner @ .., b'"'] = bytes else { return false };
    let mut escaped = false;
    for &b in inner {
        let text = b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
        if !text {
            return false;
        }
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return false;
        }
    }
    !escaped
}

/// `bytes` without spaces and tabs at either end.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |at| at + 1);
    &bytes[start..end.max(start)]
}

/// Whether `bytes` is an HTTP token (RFC 9110, section 5.6.2).
fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The offset in `raw` just past `part`, a slice the parser took from it
/// (or `raw.len()` if it is not one).
fn end_of(raw: &[u8], part: &[u8]) -> usize {
    let start = (part.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if start <= raw.len() && end <= raw.len() => end,
        _ => raw.len(),
    }
}

/// How the body of a parsed head is framed, or why its framing is refused;
/// `raw` is the bytes the head was parsed from.
fn body_framing(request: &httparse::Request<'_, '_>, raw: &[u8]) -> Result<Framing, &'static str> {
    let mut length: Option<u64> = None;
    let mut lengths = 0;
    let mut codings = 0;
    let mut verdict: Result<Codings, &'static str> = Ok(Codings::default());
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let value = header.value;
            let valid = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
            let n = std::str::from_utf8(value).ok().filter(|_| valid).and_then(|v| v.parse().ok());
            match (n, length) {
                (None, _) => return Err("malformed Content-Length"),
                (Some(n), Some(seen)) if n != seen => {
                    return Err("conflicting Content-Length values")
                }
                (Some(n), _) => length = Some(n),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            // The parser drops whitespace at the end of a value, which would
            // make `chunked<TAB>` read as `chunked`; it is refused instead.
            let ends_clean =
                raw.get(end_of(raw, header.value)).is_none_or(|b| *b == b'\r' || *b == b'\n');
            verdict = verdict.and_then(|seen| {
                if !ends_clean {
                    return Err("malformed Transfer-Encoding");
                }
                te_codings(header.value, seen)
            });
        }
    }

    if codings > 0 && lengths > 0 {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if codings > 0 {
        if request.version != Some(1) {
            return Err("Transfer-Encoding on an HTTP/1.0 request");
        }
        return match verdict? {
            Codings { last_chunked: true, others: false } => Ok(Framing::Chunked),
            // Chunked last but after other codings: well framed, but the
            // gateway cannot undo them and must not pass them on unmarked.
            Codings { last_chunked: true, others: true } => Err(UNKNOWN_CODING),
            Codings { last_chunked: false, .. } => Err("Transfer-Encoding other than chunked"),
        };
    }
    if request.method.is_some_and(|m| m.eq_ignore_ascii_case("CONNECT")) {
        return Ok(Framing::Tunnel);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scan `input` in pieces of `piece` bytes; return the verdict of each head.
    fn verdicts(input: &str, piece: usize) -> Vec<Result<(), &'static str>> {
        let mut scanner = FramingScanner::new(8 * 1024, 100);
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(piece) {
            scanner.scan(chunk, &mut |event| {
                if let Event::Head(verdict) = event {
                    out.push(verdict);
                }
            });
        }
        out
    }

    fn all_pieces(input: &str) -> Vec<Result<(), &'static str>> {
        let whole = verdicts(input, input.len().max(1));
        for piece in [1, 2, 3, 7, 64] {
            assert_eq!(verdicts(input, piece), whole, "in pieces of {piece}: {input:?}");
        }
        whole
    }

    #[test]
    fn pipelined_requests_with_each_framing_are_followed_to_the_next_head() {
        let stream = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                      POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /\
                      \r\nPOST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5;ext=1\r\nGET /\r\n0\r\nX-Trailer: 1\r\n\r\n\
                      GET /d HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(all_pieces(stream), [Ok(()), Ok(()), Ok(()), Ok(())]);
    }

    #[test]
    fn ambiguous_framing_is_refused_and_stops_the_scan() {
        let both = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\
                    Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(all_pieces(both), [Err("both Content-Length and Transfer-Encoding")]);

        for (head, reason) in [
            ("Content-Length: 10\r\nContent-Length: 20", "conflicting Content-Length values"),
            ("Content-Length:\r\nContent-Length: 5", "malformed Content-Length"),
            ("Content-Length: +5", "malformed Content-Length"),
            ("Content-Length: 0x10", "malformed Content-Length"),
            ("Content-Length: 5, 5", "malformed Content-Length"),
            ("Transfer-Encoding: gzip, chunked", UNKNOWN_CODING),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                "malformed Transfer-Encoding",
            ),
            ("Content-Length: 5\r\n folded", "malformed request head"),
            (": empty-name", "malformed request head"),
            ("X-Nul: a\0b", "malformed request head"),
        ] {
            let request =
                format!("POST / HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\nGET / HTTP/1.1\r\n\r\n");
            assert_eq!(all_pieces(&request), [Err(reason)], "{head:?}");
        }
    }

    /// Codings other than chunked, well formed and followed by a final
    /// chunked, are the gateway's to implement (501); anything else that
    /// is not a single chunked is malformed (400). Neither is followed.
    #[test]
    fn transfer_codings_are_unknown_or_malformed() {
        const MALFORMED: &str = "malformed Transfer-Encoding";
        const NOT_LAST: &str = "Transfer-Encoding other than chunked";
        for (value, verdict) in [
            ("chunked", Ok(())),
            ("Chunked", Ok(())),
            ("gzip, chunked", Err(UNKNOWN_CODING)),
            ("br,chunked", Err(UNKNOWN_CODING)),
            ("x-custom ,\tchunked", Err(UNKNOWN_CODING)),
            ("gzip;level=9, deflate; a=\"b c\" , chunked", Err(UNKNOWN_CODING)),
            ("gzip ; level = 9 , chunked", Err(UNKNOWN_CODING)),
            ("gzip; a=\"x, y; z\", chunked", Err(UNKNOWN_CODING)),
            ("gzip; a=\"say \\\"hi\\\"\", chunked", Err(UNKNOWN_CODING)),
            ("gzip; a=\"open, chunked", Err(MALFORMED)),
            ("gzip; a=\"bad\"x, chunked", Err(MALFORMED)),
            ("gzip; a=\"ends in \\\", chunked", Err(MALFORMED)),
            ("gzip; a=, chunked", Err(MALFORMED)),
            ("gzip\r\nTransfer-Encoding: chunked", Err(UNKNOWN_CODING)),
            ("identity, chunked", Err(UNKNOWN_CODING)),
            ("gzip", Err(NOT_LAST)),
            ("identity", Err(NOT_LAST)),
            ("chunked\r\nTransfer-Encoding: gzip", Err(MALFORMED)),
            ("chunked, gzip", Err(MALFORMED)),
            ("chunked, chunked", Err(MALFORMED)),
            ("chunked,", Err(MALFORMED)),
            (", chunked", Err(MALFORMED)),
            ("gzip,, chunked", Err(MALFORMED)),
            ("chunked\t", Err(MALFORMED)),
            ("chunked ", Err(MALFORMED)),
            ("chunked;x=1", Err(MALFORMED)),
            ("gzip;, chunked", Err(MALFORMED)),
            ("gzip;q, chunked", Err(MALFORMED)),
            ("gz ip, chunked", Err(MALFORMED)),
            ("gzip/1, chunked", Err(MALFORMED)),
            ("\"gzip\", chunked", Err(MALFORMED)),
        ] {
            let request = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {value}\r\n\r\n\
                 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
            );
            let expected = match verdict {
                Ok(()) => vec![Ok(()), Ok(())],
                Err(reason) => vec![Err(reason)],
            };
            assert_eq!(all_pieces(&request), expected, "{value:?}");
        }
    }

    #[test]
    fn identical_content_lengths_are_one_length() {
        let request = "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc\
                       GET / HTTP/1.1\r\n\r\n";
        assert_eq!(all_pieces(request), [Ok(()), Ok(())]);
    }

    #[test]
    fn a_head_over_the_limit_is_reported_once() {
        let mut scanner = FramingScanner::new(64, 100);
        let mut events = Vec::new();
        let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(100));
        for piece in long.as_bytes().chunks(10) {
            scanner.scan(piece, &mut |e| events.push(e));
        }
        assert_eq!(events, [Event::HeadStarted, Event::Head(Err("request head too large"))]);
    }

    #[test]
    fn leading_empty_lines_do_not_start_a_head() {
        let mut scanner = FramingScanner::new(1024, 100);
        let mut events = Vec::new();
        scanner.scan(b"\r\n\r\n", &mut |e| events.push(e));
        assert!(events.is_empty() && !scanner.in_head());
        scanner.scan(b"GE", &mut |e| events.push(e));
        assert!(scanner.in_head());
        scanner.scan(b"T / HTTP/1.1\r\n\r\n", &mut |e| events.push(e));
        assert_eq!(events, [Event::HeadStarted, Event::Head(Ok(()))]);
        assert!(!scanner.in_head());
    }

    #[test]
    fn after_connect_nothing_more_is_followed() {
        let stream = "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(all_pieces(stream), [Ok(())]);
    }
}
