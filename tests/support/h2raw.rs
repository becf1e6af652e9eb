//! Raw HTTP/2 frames, for tests that must send what no well-behaved
//! client would (resets at once, no window, unfinished header blocks) and
//! see exactly what the gateway answers.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;

/// The client preface, then a SETTINGS frame with `settings` (pairs of
/// identifier and value).
pub fn preface(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend(id.to_be_bytes());
        payload.extend(value.to_be_bytes());
    }
    [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &frame(SETTINGS, 0, 0, &payload)].concat()
}

/// A GET of `path` for host x.test, in HPACK: three indexed fields and two
/// literals, none of them added to the table.
pub fn get(path: &str) -> Vec<u8> {
    let mut fields = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    fields.extend(path.as_bytes());
    fields.extend([0x01, 6]);
    fields.extend(b"x.test");
    fields
}

/// One raw HTTP/2 frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = length[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// Reads frames until the connection closes or `wait` passes, and gives
/// each one's type, stream and first eight payload bytes.
pub async fn frames(stream: &mut TcpStream, wait: Duration) -> Vec<(u8, u32, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut frames = Vec::new();
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    while let Some(frame) = next(stream, left()).await {
        frames.push((frame.kind, frame.stream, frame.payload.into_iter().take(8).collect()));
    }
    frames
}

pub const DATA: u8 = 0x0;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const END_STREAM: u8 = 0x1;

/// One frame as read: type, flags, stream and payload.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// The next whole frame, or `None` when the connection closes or `wait`
/// passes first.
pub async fn next(stream: &mut TcpStream, wait: Duration) -> Option<Frame> {
    let read = async {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.ok()?;
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).await.ok()?;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame { kind: head[3], flags: head[4], stream: id, payload })
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}

/// A WINDOW_UPDATE granting `bytes` more on `stream` (0: the connection).
pub fn window_update(stream: u32, bytes: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &bytes.to_be_bytes())
}

pub const PING: u8 = 0x6;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

/// A POST of `path` for host x.test that declares `content_length`, in
/// HPACK: two indexed fields and three literals, none of them added to the
/// table.
pub fn post(path: &str, content_length: u64) -> Vec<u8> {
    let mut fields = vec![0x83, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    fields.extend(path.as_bytes());
    fields.extend([0x01, 6]);
    fields.extend(b"x.test");
    // `content-length` is entry 28 of the static table: 15 + 13.
    let length = content_length.to_string();
    fields.extend([0x0f, 13, u8::try_from(length.len()).unwrap()]);
    fields.extend(length.as_bytes());
    fields
}

/// A GET of `path` without `:authority`, naming its host in a `host` field
/// instead (entry 38 of the static table: 15 + 23), as a request
/// translated from HTTP/1.1 may.
pub fn get_with_host_field(path: &str, host: &str) -> Vec<u8> {
    let mut fields = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    fields.extend(path.as_bytes());
    fields.extend([0x0f, 23, u8::try_from(host.len()).unwrap()]);
    fields.extend(host.as_bytes());
    fields
}

/// The `:status` of a response header block that opens with it, as servers
/// write it: an entry of the static table, or a literal whose value is
/// plain or Huffman-coded digits. `None` for anything else (such as an
/// entry of the dynamic table, which only a later response can use).
pub fn status(block: &[u8]) -> Option<u16> {
    const INDEXED: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let (&first, rest) = block.split_first()?;
    if first & 0x80 != 0 {
        let index = usize::from(first & 0x7f);
        return index.checked_sub(8).and_then(|i| INDEXED.get(i)).copied();
    }
    // A literal whose name is entry 8, `:status`: with incremental
    // indexing, without indexing, or never indexed.
    if first != 0x48 && first != 0x08 && first != 0x18 {
        return None;
    }
    let (&length, rest) = rest.split_first()?;
    let value = rest.get(..usize::from(length & 0x7f))?;
    let digits = if length & 0x80 == 0 { value.to_vec() } else { huffman_digits(value)? };
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Three decimal digits, Huffman-coded as RFC 7541 (appendix B) codes
/// them: `0` to `2` in five bits, `3` to `9` in six.
fn huffman_digits(coded: &[u8]) -> Option<Vec<u8>> {
    let bits: Vec<u8> =
        coded.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
    let read = |at: usize, n: usize| -> Option<u8> {
        bits.get(at..at + n).map(|b| b.iter().fold(0, |acc, bit| acc << 1 | bit))
    };
    let (mut at, mut digits) = (0, Vec::new());
    while digits.len() < 3 {
        let five = read(at, 5)?;
        if five <= 2 {
            digits.push(b'0' + five);
            at += 5;
        } else {
            let six = read(at, 6)?;
            if !(0b011001..=0b011111).contains(&six) {
                return None;
            }
            digits.push(b'3' + (six - 0b011001));
            at += 6;
        }
    }
    Some(digits)
}

/// A PING acknowledging `ping` (its eight bytes).
pub fn ping_ack(payload: &[u8]) -> Vec<u8> {
    frame(PING, ACK, 0, payload)
}

/// A header block of `fields` (pseudo-header fields included, in the
/// order given), each an HPACK literal without indexing and without
/// Huffman coding, so that any bytes at all can be sent as a name or a
/// value, and none is added to the table.
pub fn literals(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    // An HPACK integer with a 7-bit prefix (RFC 7541, section 5.1).
    fn length(out: &mut Vec<u8>, n: usize) {
        if n < 0x7f {
            out.push(u8::try_from(n).unwrap());
            return;
        }
        out.push(0x7f);
        let mut rest = n - 0x7f;
        while rest >= 0x80 {
            out.push(u8::try_from(rest % 0x80).unwrap() | 0x80);
            rest /= 0x80;
        }
        out.push(u8::try_from(rest).unwrap());
    }
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        length(&mut block, name.len());
        block.extend_from_slice(name);
        length(&mut block, value.len());
        block.extend_from_slice(value);
    }
    block
}

/// What an HTTP/2 client saw of stream 1: its response status, if a
/// response head came, whether the stream ended normally, and the error
/// code of a RST_STREAM, if one came.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    pub status: Option<u16>,
    pub ended: bool,
    pub reset: Option<u32>,
    pub goaway: bool,
}

/// Read frames until stream 1 ends or is reset, or the connection closes,
/// or 5 s pass; acknowledge every PING on the way.
pub async fn stream_outcome(stream: &mut TcpStream) -> StreamOutcome {
    let mut outcome = StreamOutcome::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = next(stream, left).await else { return outcome };
        match (frame.kind, frame.stream) {
            (PING, 0) if frame.flags & ACK == 0 => {
                let _ = stream.write_all(&ping_ack(&frame.payload)).await;
            }
            (GOAWAY, 0) => outcome.goaway = true,
            (HEADERS, 1) => {
                outcome.status = outcome.status.or(status(&frame.payload));
                outcome.ended |= frame.flags & END_STREAM != 0;
            }
            (DATA, 1) => outcome.ended |= frame.flags & END_STREAM != 0,
            (RST_STREAM, 1) => {
                outcome.reset =
                    frame.payload.get(..4).map(|b| u32::from_be_bytes(b.try_into().unwrap()));
            }
            _ => {}
        }
        if outcome.ended || outcome.reset.is_some() {
            return outcome;
        }
    }
}
