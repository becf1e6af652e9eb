//! Raw HTTP/2 frames, for tests that must send what no well-behaved
//! client would (resets at once, no window, unfinished header blocks) and
//! see exactly what the gateway answers.

use std::time::Duration;

use tokio::io::AsyncReadExt;
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
