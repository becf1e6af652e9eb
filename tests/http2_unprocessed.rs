//! HTTP/2 pools and the streams an upstream says it did not process (RFC
//! 9113, section 8.7): a stream reset with `REFUSED_STREAM`, or left above
//! the last stream id of a GOAWAY, goes once more, whatever its method, when
//! its body can be sent whole again; a stream reset for any other reason is
//! not sent again. The upstream is the h2 crate's server, so that the test
//! decides, stream by stream, what the gateway's client is told.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use support::{eventually, h2raw, Gateway, Reply};

/// A request as the upstream received it, body and all.
#[derive(Debug, Clone)]
struct Seen {
    /// Which connection it came on, counted from 1 in accept order.
    connection: usize,
    /// Its stream's id on that connection.
    stream: u32,
    method: String,
    path: String,
    body: Vec<u8>,
}

/// What the upstream does with a stream, once it has read the request's
/// body.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Answer `200` after the delay, with `c{connection}` as the body.
    Answer(Duration),
    /// Reset the stream with this reason.
    Reset(Reason),
    /// Wait until another stream has opened on the connection, send a
    /// GOAWAY whose last stream id is this stream's (so the other one is
    /// above it), then answer as [`Plan::Answer`] does.
    AnswerAfterGoAway,
    /// Never answer.
    Hold,
}

/// An HTTP/2 upstream (the h2 crate's server, with prior knowledge) on
/// `127.0.0.1:0`. `script` picks the plan for each stream from its request
/// and its rank on its connection (1 for the first).
///
/// What the server writes goes through a relay that passes it on frame by
/// frame, so that a frame the server would never send by itself (a GOAWAY
/// with a chosen last stream id) can go between two of them.
struct H2Upstream {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// One connection of an [`H2Upstream`]: the streams opened on it so far, and
/// where frames go to be sent between the server's.
struct Connection {
    number: usize,
    streams: AtomicUsize,
    frames: mpsc::UnboundedSender<Vec<u8>>,
}

impl H2Upstream {
    async fn start(script: fn(&Seen, usize) -> Plan) -> H2Upstream {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream on loopback");
        let address = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (Arc::clone(&seen), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = socket.accept().await else { continue };
                let number = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, number, script, Arc::clone(&log)));
            }
        });
        H2Upstream { address, seen, connections, task }
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests whose bodies have been read, in that order.
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `n` requests have been read.
    async fn wait_for(&self, n: usize) {
        let arrived = || self.seen.lock().unwrap().len() >= n;
        assert!(
            eventually(Duration::from_secs(5), arrived).await,
            "the upstream never saw {n} requests"
        );
    }
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve one accepted connection, through a relay (see [`H2Upstream`]).
async fn serve(
    socket: TcpStream,
    number: usize,
    script: fn(&Seen, usize) -> Plan,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let (server_side, relay_side) = tokio::io::duplex(64 * 1024);
    let (mut from_client, mut to_client) = socket.into_split();
    let (mut from_server, mut to_server) = tokio::io::split(relay_side);
    let (frames, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
        let _ = to_server.shutdown().await;
    });
    let server_frames = frames.clone();
    tokio::spawn(async move {
        loop {
            let mut head = [0u8; 9];
            if from_server.read_exact(&mut head).await.is_err() {
                return;
            }
            let length =
                usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut frame = vec![0u8; 9 + length];
            frame[..9].copy_from_slice(&head);
            if from_server.read_exact(&mut frame[9..]).await.is_err() {
                return;
            }
            if server_frames.send(frame).is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if to_client.write_all(&frame).await.is_err() {
                return;
            }
        }
    });

    let Ok(mut connection) = h2::server::handshake(server_side).await else { return };
    let shared = Arc::new(Connection { number, streams: AtomicUsize::new(0), frames });
    while let Some(Ok((request, respond))) = connection.accept().await {
        let rank = shared.streams.fetch_add(1, Ordering::SeqCst) + 1;
        let (shared, log) = (Arc::clone(&shared), Arc::clone(&log));
        tokio::spawn(async move {
            let (parts, mut body) = request.into_parts();
            let mut seen = Seen {
                connection: shared.number,
                stream: respond.stream_id().as_u32(),
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                body: Vec::new(),
            };
            while let Some(Ok(data)) = body.data().await {
                let _ = body.flow_control().release_capacity(data.len());
                seen.body.extend_from_slice(&data);
            }
            let plan = script(&seen, rank);
            log.lock().unwrap().push(seen.clone());
            respond_by(plan, &seen, &shared, respond).await;
        });
    }
}

async fn respond_by(
    plan: Plan,
    seen: &Seen,
    connection: &Connection,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let delay = match plan {
        Plan::Reset(reason) => return respond.send_reset(reason),
        Plan::Hold => {
            // Keep the stream open, unanswered, as long as the connection.
            std::future::poll_fn(|cx| respond.poll_reset(cx)).await.ok();
            return;
        }
        Plan::Answer(delay) => delay,
        Plan::AnswerAfterGoAway => {
            let opened = || connection.streams.load(Ordering::SeqCst) >= 2;
            assert!(eventually(Duration::from_secs(5), opened).await, "no second stream opened");
            let payload = [seen.stream.to_be_bytes(), 0u32.to_be_bytes()].concat();
            let _ = connection.frames.send(h2raw::frame(h2raw::GOAWAY, 0, 0, &payload));
            Duration::ZERO
        }
    };
    tokio::time::sleep(delay).await;
    let Ok(mut body) = respond.send_response(hyper::Response::new(()), false) else { return };
    let _ = body.send_data(Bytes::from(format!("c{}", seen.connection)), true);
}

/// A gateway with one HTTP/2 pool over `upstream`, for every path.
fn gateway(upstream: &H2Upstream) -> Gateway {
    Gateway::start(&support::spec_with("", &[upstream.address], "    protocol: http2\n", ""))
}

/// Send `method` of `path`, with `body`, through `gateway`, within 5 s.
async fn send(gateway: &Gateway, method: &str, path: &str, body: &'static str) -> Reply {
    let address = gateway.addr("public");
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("host", "x.test")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let client = support::client();
    let exchange = support::send(&client, request);
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} within 5 s"))
}

/// The first stream on each connection is reset with `REFUSED_STREAM`,
/// after its body has been read whole; later ones are answered. GET, POST
/// and PUT with a body (which the gateway keeps, as PUT may be sent twice)
/// are sent again, on the same connection, which the upstream kept open,
/// and answered; a POST whose body was sent and not kept is not sent again,
/// and is answered 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_sent_again_when_its_body_can_be() {
    fn refuse_first(_: &Seen, rank: usize) -> Plan {
        match rank {
            1 => Plan::Reset(Reason::REFUSED_STREAM),
            _ => Plan::Answer(Duration::ZERO),
        }
    }
    for (method, body) in [("GET", ""), ("POST", ""), ("PUT", "kept whole")] {
        let upstream = H2Upstream::start(refuse_first).await;
        let gateway = gateway(&upstream);
        let reply = send(&gateway, method, "/refused", body).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "c1"), "{method}");
        let seen = upstream.seen();
        assert_eq!(seen.len(), 2, "{method}: {seen:?}");
        for (got, stream) in seen.iter().zip([1, 3]) {
            assert_eq!((got.connection, got.stream), (1, stream), "{method}: {seen:?}");
            assert_eq!((got.method.as_str(), got.path.as_str()), (method, "/refused"));
            assert_eq!(got.body, body.as_bytes(), "{method}: {seen:?}");
        }
    }

    let upstream = H2Upstream::start(refuse_first).await;
    let gateway = gateway(&upstream);
    let reply = send(&gateway, "POST", "/refused", "sent, not kept").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "a body that was not kept was sent again: {seen:?}");
    assert_eq!(seen[0].body, b"sent, not kept");
}

/// A stream reset for any other reason than `REFUSED_STREAM` may have been
/// processed: a POST is not sent again, and is answered 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_for_another_reason_is_not_sent_again() {
    fn fail_first(_: &Seen, rank: usize) -> Plan {
        match rank {
            1 => Plan::Reset(Reason::INTERNAL_ERROR),
            _ => Plan::Answer(Duration::ZERO),
        }
    }
    let upstream = H2Upstream::start(fail_first).await;
    let gateway = gateway(&upstream);
    let reply = send(&gateway, "POST", "/failed", "").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.seen().len(), 1, "{:?}", upstream.seen());
}

/// Two requests share the first connection; the upstream sends GOAWAY with
/// the first one's stream as the last it will process, then answers that
/// one. The second, a POST, was above the GOAWAY's last stream id: it goes
/// again, on a new connection, and is answered there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_above_the_last_stream_id_of_a_goaway_is_sent_again() {
    fn go_away(seen: &Seen, rank: usize) -> Plan {
        match (seen.connection, rank) {
            (1, 1) => Plan::AnswerAfterGoAway,
            (1, _) => Plan::Hold,
            _ => Plan::Answer(Duration::ZERO),
        }
    }
    let upstream = H2Upstream::start(go_away).await;
    let gateway = Arc::new(gateway(&upstream));
    let first = {
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move { send(&gateway, "GET", "/first", "").await })
    };
    upstream.wait_for(1).await;
    let second = send(&gateway, "POST", "/second", "").await;
    assert_eq!((second.status, second.body.as_str()), (StatusCode::OK, "c2"), "{second:?}");
    let first = first.await.unwrap();
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "c1"), "{first:?}");

    let seen = upstream.seen();
    let on = |connection: usize| -> Vec<(u32, &str, &str)> {
        seen.iter()
            .filter(|got| got.connection == connection)
            .map(|got| (got.stream, got.method.as_str(), got.path.as_str()))
            .collect()
    };
    assert_eq!(on(1), [(1, "GET", "/first"), (3, "POST", "/second")], "{seen:?}");
    assert_eq!(on(2), [(1, "POST", "/second")], "{seen:?}");
    assert_eq!(upstream.connections(), 2);
}
