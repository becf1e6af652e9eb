//! A request body that fails on the client's side (the client left, sent
//! a malformed body, stalled, or sent too much) is the client's failure
//! towards an HTTP/2 pool as towards an HTTP/1.1 one: the client gets 400,
//! 408 or 413 (499 in the access log when it left), and the endpoint is not
//! blamed, so outlier detection ejects nothing and every endpoint goes on
//! serving.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::h2c::H2cUpstream;
use support::{h2raw, statuses, Gateway};

/// A gateway with one HTTP/2 pool over `a` and `b`, whose outlier detection
/// ejects an endpoint after three failures in a row; clients that send
/// nothing for 300 ms are given up on, and bodies over 200 bytes refused.
fn gateway(a: SocketAddr, b: SocketAddr) -> Gateway {
    Gateway::start(&format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\", stall_timeout: 300ms }}
pools:
  - name: g
    protocol: http2
    balance: round_robin
    endpoints: [{{ address: \"{a}\" }}, {{ address: \"{b}\" }}]
    outlier_detection: {{ consecutive_failures: 3, base_ejection: 30s, max_ejection_percent: 100 }}
routes:
  - name: r
    match: {{ path: \"/h2/{{*rest}}\" }}
    to: g
    max_body_size: 200B
"
    ))
}

/// Write `bytes` on a new connection to `address`, and close it 50 ms later.
async fn send_and_leave(address: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(address).await.expect("connect on loopback");
    stream.write_all(bytes).await.expect("write the request");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A chunked POST of `path` whose body is `body`, as sent.
fn chunked(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_body_failures_towards_an_http2_pool_never_count_against_endpoints() {
    use h2raw::{DATA, END_STREAM, HEADERS, RST_STREAM};

    let a = H2cUpstream::start("a").await;
    let b = H2cUpstream::start("b").await;
    let mut gateway = gateway(a.address, b.address);
    let address = gateway.addr("public");

    // HTTP/1.1 clients that leave in the middle of their bodies: three
    // times as many as would eject both endpoints if each were blamed.
    let mut expected: Vec<(String, u64)> = Vec::new();
    for n in 0..6 {
        let path = format!("/h2/left-{n}");
        let head = format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc");
        send_and_leave(address, head.as_bytes()).await;
        expected.push((path, 499));
    }
    send_and_leave(address, &chunked("/h2/left-chunked", "5\r\nhello\r\n7\r\nab")).await;
    expected.push(("/h2/left-chunked".into(), 499));

    // Malformed bodies, each after a first chunk that is well formed.
    let malformed = [
        ("/h2/bad-size", "5\r\nhello\r\nzz\r\n"),
        ("/h2/long-chunk", "3\r\nhello\r\n0\r\n\r\n"),
        ("/h2/bad-trailer", "5\r\nhello\r\n0\r\n:path: /admin\r\n\r\n"),
    ];
    for (path, body) in malformed {
        let answer = support::raw(address, &chunked(path, body)).await;
        assert_eq!(statuses(&answer), [400], "{path}: {answer}");
        assert!(answer.contains("client_body_failed"), "{path}: {answer}");
        expected.push((path.into(), 400));
    }

    // A client that stops sending its body, and one that sends too much.
    let stalled = b"POST /h2/stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc";
    let answer = support::raw(address, stalled).await;
    assert_eq!(statuses(&answer), [408], "{answer}");
    expected.push(("/h2/stalled".into(), 408));
    let large =
        chunked("/h2/large", &format!("5\r\nhello\r\n12c\r\n{}\r\n0\r\n\r\n", "x".repeat(300)));
    let answer = support::raw(address, &large).await;
    assert_eq!(statuses(&answer), [413], "{answer}");
    expected.push(("/h2/large".into(), 413));

    // HTTP/2 clients: one closes its connection mid-body, one resets its
    // stream, one ends its stream short of its content-length. The last is
    // malformed, a 400, but the gateway's HTTP/2 server resets that stream
    // itself and may drop the request before the body's failure reaches it
    // through the upstream's stream, which logs 499 (0 below: either).
    let post = |path: &str| h2raw::frame(HEADERS, 0x4, 1, &h2raw::post(path, 100));
    let cases: [(&str, Vec<u8>, u64); 3] = [
        ("/h2/h2-closed", Vec::new(), 499),
        ("/h2/h2-reset", h2raw::frame(RST_STREAM, 0, 1, &[0, 0, 0, 0x8]), 499),
        ("/h2/h2-short", h2raw::frame(DATA, END_STREAM, 1, b"def"), 0),
    ];
    for (path, then, status) in cases {
        let mut stream = TcpStream::connect(address).await.expect("connect on loopback");
        let mut bytes = h2raw::preface(&[]);
        bytes.extend(post(path));
        bytes.extend(h2raw::frame(DATA, 0, 1, b"abc"));
        stream.write_all(&bytes).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !then.is_empty() {
            stream.write_all(&then).await.unwrap();
            h2raw::frames(&mut stream, Duration::from_millis(100)).await;
        }
        expected.push((path.into(), status));
    }

    // The failed bodies reached both endpoints as streams, which is what
    // could have blamed them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let broken = |upstream: &H2cUpstream| {
        upstream.seen().iter().filter(|seen| seen.body_len.is_none()).count()
    };
    assert!(broken(&a) >= 3 && broken(&b) >= 3, "{:?}\n{:?}", a.seen(), b.seen());

    // Neither endpoint was ejected: both still answer.
    let mut answered = Vec::new();
    for _ in 0..4 {
        let get = b"GET /h2/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let answer = support::raw(address, get).await;
        assert_eq!(statuses(&answer), [200], "{answer}");
        answered.push(answer.rsplit("\r\n\r\n").next().unwrap_or("").to_owned());
    }
    answered.sort();
    assert_eq!(answered, ["a", "a", "b", "b"]);
    assert_eq!(gateway.count_stderr("endpoint ejected"), 0, "{}", gateway.stderr().join("\n"));

    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));
    let lines = gateway.stdout();
    for (path, status) in expected {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{path}\"")));
        let line: serde_json::Value = serde_json::from_str(line.expect(&path)).unwrap();
        let logged = line["status"].as_u64();
        match status {
            0 => assert!(matches!(logged, Some(400 | 499)), "{path}: {line}"),
            _ => assert_eq!(logged, Some(status), "{path}: {line}"),
        }
    }
}
