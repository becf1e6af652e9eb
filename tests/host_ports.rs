//! The port of a request's host is a number from 0 to 65535, the same in
//! routing, in the HTTP/2 check of `Host` against `:authority`, and in
//! `sluice explain`: leading zeros change nothing, an empty port is 80, and
//! a larger port is refused with 400.

mod support;

use std::net::SocketAddr;

use assert_cmd::Command;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;

use support::{raw, statuses, Gateway, Upstream};

/// Routes `a.test:8443` and `b.test:80` to `p1`, `a.test` to `p2`.
fn spec(p1: SocketAddr, p2: SocketAddr) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
pools:
  - name: p1
    endpoints: [{{ address: \"{p1}\" }}]
  - name: p2
    endpoints: [{{ address: \"{p2}\" }}]
routes:
  - name: a-8443
    match: {{ host: \"a.test:8443\", path: \"/{{*rest}}\" }}
    to: p1
  - name: a
    match: {{ host: a.test, path: \"/{{*rest}}\" }}
    to: p2
  - name: b-80
    match: {{ host: \"b.test:80\", path: \"/{{*rest}}\" }}
    to: p1
"
    )
}

/// The status and body of `GET /x` with `Host: host` over HTTP/1.1.
async fn get(gateway: SocketAddr, host: &str) -> (u16, String) {
    let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let response = raw(gateway, request.as_bytes()).await;
    let status = statuses(&response).first().copied().unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The status and body of `GET /x` over HTTP/2 with `:authority`
/// `authority` and, when given, a `Host` field.
async fn h2_get(gateway: SocketAddr, authority: &str, host: Option<&str>) -> (u16, String) {
    let mut sender = support::h2c_sender(gateway).await;
    let mut request = Request::get(format!("http://{authority}/x"));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()).await;
    let response = response.expect("an answer over HTTP/2");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_numbers_in_routing_and_the_h2_host_check() {
    let (p1, p2) = (Upstream::start("p1").await, Upstream::start("p2").await);
    let gateway = Gateway::start(&spec(p1.address, p2.address));
    let public = gateway.addr("public");

    for (host, status, body) in [
        ("a.test:8443", 200, "p1"),
        ("a.test:08443", 200, "p1"),
        ("A.test.:0008443", 200, "p1"),
        ("a.test", 200, "p2"),
        ("a.test:80", 200, "p2"),
        ("b.test:80", 200, "p1"),
        ("b.test:080", 200, "p1"),
        ("b.test:", 200, "p1"),
        ("b.test", 200, "p1"),
        ("b.test:0000000000000080", 200, "p1"),
        ("b.test:8080", 404, ""),
    ] {
        let (got, text) = get(public, host).await;
        assert_eq!(got, status, "Host: {host}: {text}");
        if status == 200 {
            assert_eq!(text, body, "Host: {host}");
        }
    }
    for host in ["a.test:65536", "a.test:99999", "a.test:0065536", "a.test:99999999999999999999"] {
        assert_eq!(get(public, host).await.0, 400, "Host: {host}");
    }

    // HTTP/2: routed by :authority the same way, and a Host that names the
    // same port in other digits is the same host.
    for (authority, host, status, body) in [
        ("a.test:08443", None, 200, "p1"),
        ("b.test:080", None, 200, "p1"),
        ("a.test:8443", Some("a.test:08443"), 200, "p1"),
        ("b.test:080", Some("b.test"), 200, "p1"),
        ("b.test", Some("b.test:0080"), 200, "p1"),
        ("a.test:8443", Some("a.test:8444"), 400, ""),
        ("a.test:65616", Some("a.test:80"), 400, ""),
        ("a.test:65536", None, 400, ""),
    ] {
        let (got, text) = h2_get(public, authority, host).await;
        assert_eq!(got, status, ":authority {authority}, Host {host:?}: {text}");
        if status == 200 {
            assert_eq!(text, body, ":authority {authority}, Host {host:?}");
        }
    }
}

/// `sluice explain` reads ports as `serve` does: `08443` is 8443, and a
/// port above 65535 is a request the gateway refuses.
#[test]
fn explain_reads_ports_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    let free = "127.0.0.1:9";
    std::fs::write(&path, spec(free.parse().unwrap(), free.parse().unwrap())).unwrap();
    let explain = |url: &str, host: Option<&str>| {
        let mut command = Command::cargo_bin("sluice").unwrap();
        command.arg("explain").arg(&path).args(["GET", url]);
        if let Some(host) = host {
            command.args(["-H", &format!("Host: {host}")]);
        }
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = explain("http://a.test:08443/x", None);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("route     a-8443"), "{text}");
    let (code, text) = explain("/x", Some("b.test:080"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("route     b-80"), "{text}");
    for (url, host) in [("http://a.test:65536/x", None), ("/x", Some("a.test:99999"))] {
        let (code, text) = explain(url, host);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("answers 400"), "{text}");
    }
}
