//! A raw-socket upstream for tests that need exact bytes and timing from
//! the upstream side: each accepted connection goes to a handler that reads
//! heads and bodies and writes whatever the test wants. It listens on
//! 127.0.0.1 only.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{client, request, send, spec_with, Gateway};

/// One upstream connection as a [`RawUpstream`] handler sees it.
pub struct Conn {
    pub stream: TcpStream,
    pub buffer: Vec<u8>,
    /// Which connection this is (0 for the first accepted).
    index: usize,
    log: Arc<Mutex<Vec<String>>>,
}

impl Conn {
    /// Read the next request head (request line and fields); `None` once
    /// the gateway closed the connection.
    pub async fn head(&mut self) -> Option<String> {
        loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..at + 4]).into_owned();
                self.buffer.drain(..at + 4);
                self.log.lock().unwrap().push(format!("{} {}", self.index, target(&head)));
                return Some(head);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Read `n` body bytes; `None` if the connection ended first.
    pub async fn body(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buffer.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buffer.drain(..n).collect())
    }

    /// Read a chunked body up to its last chunk and empty trailer section,
    /// returning the raw chunked bytes.
    pub async fn chunked(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = find(&self.buffer, b"\r\n0\r\n\r\n") {
                return Some(self.buffer.drain(..at + 7).collect());
            }
            if self.buffer.starts_with(b"0\r\n\r\n") {
                return Some(self.buffer.drain(..5).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Write `200 OK` with `body` and its length.
    pub async fn ok(&mut self, body: &str) -> bool {
        self.write(&ok(body)).await
    }

    /// Wait until the gateway closes the connection (reading and dropping
    /// anything it still sends), for at most `limit`; whether it did.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Answer with a `2 * half`-byte body: the first half at once, the rest
    /// 150 ms later and ending in bytes that would read as a response if the
    /// connection were reused; then wait up to 2 s for the gateway to close
    /// the connection. Whether it did, or `None` when the first write failed.
    pub async fn big_in_halves(&mut self, half: usize) -> Option<bool> {
        let mut answer =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 2 * half).into_bytes();
        answer.extend(std::iter::repeat_n(b'B', half));
        if !self.write(&answer).await {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let rest = ok("WRONG: the rest of /big");
        let _ = self.write(&vec![b'B'; half - rest.len()]).await;
        let _ = self.write(&rest).await;
        Some(self.closed_within(Duration::from_secs(2)).await)
    }

    /// Read and drop a request body framed by Content-Length (none when
    /// absent); whether it came whole.
    pub async fn skip_body(&mut self, head: &str) -> bool {
        let length: usize =
            header(head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while self.buffer.len() < length {
            if !self.fill().await {
                return false;
            }
        }
        self.buffer.drain(..length);
        true
    }

    /// Write `bytes` in pieces of `step`, each sent on its own.
    pub async fn write_in_pieces(&mut self, bytes: &[u8], step: usize) -> bool {
        for piece in bytes.chunks(step) {
            if !self.write(piece).await {
                return false;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        true
    }
}

pub fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

pub fn target(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An upstream over raw TCP on `127.0.0.1:0` that hands each accepted
/// connection to a handler, for misbehaviour with exact timing.
pub struct RawUpstream {
    pub address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections whose handler has returned.
    finished: Arc<AtomicUsize>,
    /// `"CONNECTION TARGET"` for each request head read, in order.
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start<F, Fut>(handler: F) -> RawUpstream
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind on loopback");
        let address = socket.local_addr().expect("a bound socket has an address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (count, done, requests) =
            (Arc::clone(&accepted), Arc::clone(&finished), Arc::clone(&log));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else { continue };
                let index = count.fetch_add(1, Ordering::SeqCst);
                let conn = Conn { stream, buffer: Vec::new(), index, log: Arc::clone(&requests) };
                let served = handler(conn);
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    served.await;
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        RawUpstream { address, accepted, finished, log, task }
    }

    /// An upstream that answers a request for `/NAME...` with the canned
    /// bytes of `NAME` and keeps the connection open (so that a gateway
    /// that reused it out of step would read what follows), and any other
    /// request with `200` and its target.
    pub async fn canned(answers: Vec<(&'static str, Vec<u8>)>) -> RawUpstream {
        let answers: Arc<HashMap<&'static str, Vec<u8>>> = Arc::new(answers.into_iter().collect());
        RawUpstream::start(move |mut c: Conn| {
            let answers = Arc::clone(&answers);
            async move {
                while let Some(head) = c.head().await {
                    if !c.skip_body(&head).await {
                        return;
                    }
                    let path = target(&head).to_owned();
                    let name = path.trim_start_matches('/').split('/').next().unwrap_or("");
                    let answer = answers.get(name).cloned().unwrap_or_else(|| ok(&path));
                    if !c.write(&answer).await {
                        return;
                    }
                }
            }
        })
        .await
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// GET `path` through the gateway with a fresh client and read the whole reply.
pub async fn get(gateway: &Gateway, path: &str) -> (StatusCode, String) {
    let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", path)).await;
    (reply.status, reply.body)
}

/// GET `path` and read the response, which may fail before its head or in
/// its body.
pub async fn get_body(gateway: &Gateway, path: &str) -> Result<(StatusCode, Bytes), String> {
    let http = client::<Full<Bytes>>();
    let response = http
        .request(request("GET", gateway.addr("public"), "x.test", path))
        .await
        .map_err(|e| format!("no response: {e:?}"))?;
    let status = response.status();
    let body = response.into_body().collect().await;
    body.map(|b| (status, b.to_bytes()))
        .map_err(|e| format!("{status}, then the body failed: {e:?}"))
}

pub fn gateway_for(upstream: &RawUpstream, pool_extra: &str, route_extra: &str) -> Gateway {
    Gateway::start(&spec_with("", &[upstream.address], pool_extra, route_extra))
}
