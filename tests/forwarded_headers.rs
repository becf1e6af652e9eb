//! Hop-by-hop headers and the X-Forwarded-* trio, end to end (fault kind K5:
//! B22, B23).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::h2c::H2Recorder;
use support::{raw, spec_with, statuses, Answer, Gateway, ScriptedUpstream};

/// T5.2: hop-by-hop headers, and every header the client names in
/// `Connection`, are removed before the gateway adds its own, so naming
/// `X-Forwarded-For` or `X-Forwarded-Host` cannot remove the gateway's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_named_headers_go_and_gateway_headers_stay() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let request = "GET /t HTTP/1.1\r\nHost: api.example.test\r\n\
                   Connection: close, x-hop, X-Forwarded-Host, X-Forwarded-For\r\n\
                   x-hop: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nProxy-Connection: keep-alive\r\n\
                   TE: trailers\r\nUpgrade: websocket\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n";
    let response = raw(gateway.addr("public"), request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "the connection closes after the response");

    let seen = &upstream.requests()[0];
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(seen.header(gone).is_none(), "{gone} reached the upstream:\n{}", seen.head);
    }
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-host"), Some("api.example.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
}

/// Hop-by-hop headers of the response, and those its `Connection` names, do
/// not reach the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_hop_by_hop_headers_are_removed() {
    let upstream = ScriptedUpstream::start(None, |_| {
        Answer::Send(
            b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\
              Proxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let response =
        raw(gateway.addr("public"), b"GET / HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n")
            .await;
    let lower = response.to_ascii_lowercase();
    assert_eq!(statuses(&response), [200]);
    assert!(lower.contains("x-kept: yes"), "{response}");
    for gone in ["x-secret", "keep-alive", "proxy-authenticate"] {
        assert!(!lower.contains(gone), "{gone} reached the client: {response}");
    }
}

/// B23 and T5.3: X-Forwarded-For is appended to only when the peer is a
/// trusted proxy, and replaced otherwise; the same for -Proto and -Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let trusting = Gateway::start(&spec_with(
        "    trusted_proxies: [127.0.0.0/8, \"::1\"]\n",
        &[upstream.address],
        "",
        "",
    ));
    let wary = Gateway::start(&spec_with(
        "    trusted_proxies: [10.0.0.0/8]\n",
        &[upstream.address],
        "",
        "",
    ));

    let request = "GET / HTTP/1.1\r\nHost: internal.example.test\r\nConnection: close\r\n\
                   X-Forwarded-For: 1.2.3.4, 198.51.100.9\r\nX-Forwarded-Proto: https\r\n\
                   X-Forwarded-Host: public.example.test\r\n\r\n";
    for gateway in [&trusting, &wary] {
        let response = raw(gateway.addr("public"), request.as_bytes()).await;
        assert_eq!(statuses(&response), [StatusCode::OK.as_u16()], "{response}");
    }
    let seen = upstream.requests();
    assert_eq!(seen[0].header("x-forwarded-for"), Some("1.2.3.4, 198.51.100.9, 127.0.0.1"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen[0].header("x-forwarded-host"), Some("public.example.test"));
    assert_eq!(seen[1].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen[1].header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen[1].header("x-forwarded-host"), Some("internal.example.test"));
    // Each field once: nothing the client sent survives beside the gateway's.
    for request in &seen {
        for name in ["x-forwarded-for:", "x-forwarded-proto:", "x-forwarded-host:"] {
            let count = request.head.to_ascii_lowercase().matches(name).count();
            assert_eq!(count, 1, "{name} {}", request.head);
        }
    }
}

/// `Connection` over several field lines names hop-by-hop fields from all
/// of them; naming `Host` removes nothing; naming a framing field cannot
/// break the body, which the gateway frames again (chunked) for the
/// upstream, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_across_lines_and_naming_framing_fields_keeps_requests_whole() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let requests = [
        "GET /lines HTTP/1.1\r\nHost: x.test\r\nConnection: x-a\r\nConnection: x-b, close\r\n\
         X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n",
        "GET /host HTTP/1.1\r\nHost: x.test\r\nConnection: host, close\r\n\r\n",
        "POST /length HTTP/1.1\r\nHost: x.test\r\nConnection: content-length, close\r\n\
         Content-Length: 5\r\n\r\nhello",
        "POST /chunks HTTP/1.1\r\nHost: x.test\r\nConnection: transfer-encoding, close\r\n\
         Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for request in requests {
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{request:?}: {response}");
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 4);
    let lines = &seen[0];
    assert_eq!((lines.header("x-a"), lines.header("x-b")), (None, None), "{}", lines.head);
    assert_eq!(lines.header("x-c"), Some("3"));
    assert_eq!(seen[1].header("host"), Some("x.test"));
    for framed in &seen[2..] {
        assert_eq!(framed.header("transfer-encoding"), Some("chunked"), "{}", framed.head);
        assert_eq!(framed.header("content-length"), None);
        assert_eq!(framed.body, b"5\r\nhello\r\n0\r\n\r\n", "{}", framed.target());
    }
}

/// An HTTP/2 (h2c) upstream that answers `200` and keeps every request.
async fn h2_recorder() -> H2Recorder {
    H2Recorder::start(|_| Response::new(Full::new(Bytes::from_static(b"ok")))).await
}

/// Listener `public` with `trusted_proxies: [trusted]`; pool `h2` (HTTP/2)
/// on `h2` for `/h2/...`, pool `backend` (HTTP/1.1) on `http1` for the rest.
fn two_protocol_spec(trusted: &str, http1: SocketAddr, h2: SocketAddr) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
    trusted_proxies: [{trusted}]
pools:
  - name: backend
    endpoints: [{{ address: \"{http1}\" }}]
  - name: h2
    protocol: http2
    endpoints: [{{ address: \"{h2}\" }}]
routes:
  - name: h2
    match: {{ path: \"/h2/{{*rest}}\" }}
    to: h2
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: backend
"
    )
}

/// The values of `X-Forwarded-For`, `-Proto` and `-Host` an upstream
/// received, each field line on its own, in order.
type ForwardedSeen = [Vec<String>; 3];

fn forwarded_in_head(head: &str) -> ForwardedSeen {
    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"].map(|name| {
        head.lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    })
}

fn forwarded_in_map(headers: &HeaderMap) -> ForwardedSeen {
    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
        .map(|name| headers.get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect())
}

/// Send `GET path` over HTTP/2 with prior knowledge, with `:authority`
/// `host` and the given fields in order; the status.
async fn h2c_get(gateway: SocketAddr, host: &str, path: &str, fields: &[(&str, &str)]) -> u16 {
    let mut sender = support::h2c_sender(gateway).await;
    let mut request = Request::get(format!("http://{host}{path}"));
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let response = sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()).await;
    let response = response.expect("the gateway answers over HTTP/2");
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// A way through the gateway, by the code that reads the client's request
/// and the code that writes it to the upstream.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// HTTP/1.1 without a body: the gateway's own server and client.
    Own,
    /// HTTP/1.1 with a body: hyper's server, the gateway's own client.
    Body,
    /// HTTP/1.1 asking to upgrade: hyper's server and client.
    Upgrade,
    /// HTTP/2 from the client: hyper's server, the gateway's own client.
    H2c,
    /// To the HTTP/2 pool: the gateway's own server, hyper's client.
    H2Pool,
}

impl Way {
    fn path(self, rest: &str) -> String {
        match self {
            Way::H2Pool => format!("/h2/{rest}"),
            other => format!("/{other:?}/{rest}").to_lowercase(),
        }
    }

    /// Send `GET` (`POST` for [`Way::Body`]) `path` with Host `host` and
    /// `fields` in order; the response's status.
    async fn send(
        self,
        gateway: SocketAddr,
        host: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> u16 {
        if let Way::H2c = self {
            return h2c_get(gateway, host, path, fields).await;
        }
        let (method, framing, body) = match self {
            Way::Body => ("POST", "Connection: close\r\nContent-Length: 2\r\n", "hi"),
            Way::Upgrade => ("GET", "Connection: upgrade, close\r\nUpgrade: websocket\r\n", ""),
            _ => ("GET", "Connection: close\r\n", ""),
        };
        let fields: String = fields.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{framing}{fields}\r\n{body}");
        let response = raw(gateway, request.as_bytes()).await;
        statuses(&response).first().copied().unwrap_or(0)
    }
}

/// T5.3 and B23 on every [`Way`] a request goes through the gateway. Trust
/// is set per address: `127.0.0.1/32` (beside another trusted block)
/// trusts the test's peer, `127.0.0.2/32` does not.
///
/// `X-Forwarded-For` sent as two field lines, in different case and with
/// another field between them, whose last hops (10.0.0.5, 10.0.0.6) are
/// themselves in the trusted set: from the trusted peer the upstream gets
/// one field, the lines joined in order with the peer appended; the
/// client's `-Proto` and `-Host` are kept when sent and set (`http`, the
/// request's host) when not. From the untrusted peer all three are the
/// gateway's own, each once, whatever the client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_chains_from_several_lines_on_every_path() {
    let http1 = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let h2 = h2_recorder().await;
    let trusting =
        Gateway::start(&two_protocol_spec("10.0.0.0/8, 127.0.0.1/32", http1.address, h2.address));
    let wary =
        Gateway::start(&two_protocol_spec("127.0.0.2/32, 10.0.0.0/8", http1.address, h2.address));

    let host = "internal.example.test";
    let full: &[(&str, &str)] = &[
        ("X-Forwarded-For", "203.0.113.7"),
        ("Accept", "*/*"),
        ("x-forwarded-for", "10.0.0.5, 10.0.0.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "public.example.test"),
    ];
    let bare: &[(&str, &str)] = &[("X-Forwarded-For", "203.0.113.7")];
    let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();

    for (gateway, label, trusted) in [(&trusting, "trusting", true), (&wary, "wary", false)] {
        for (case, fields) in [("full", full), ("bare", bare)] {
            for way in [Way::Own, Way::Body, Way::Upgrade, Way::H2c, Way::H2Pool] {
                let path = way.path(&format!("{label}/{case}"));
                let status = way.send(gateway.addr("public"), host, &path, fields).await;
                assert_eq!(status, 200, "{path} over {way:?}");

                let seen = match way {
                    Way::H2Pool => forwarded_in_map(&h2.request(&path).headers),
                    _ => {
                        let requests = http1.requests();
                        let request = requests.iter().find(|r| r.target() == path).expect("seen");
                        forwarded_in_head(&request.head)
                    }
                };
                let expected = match (trusted, case) {
                    (true, "full") => [
                        owned(&["203.0.113.7, 10.0.0.5, 10.0.0.6, 127.0.0.1"]),
                        owned(&["https"]),
                        owned(&["public.example.test"]),
                    ],
                    (true, _) => {
                        [owned(&["203.0.113.7, 127.0.0.1"]), owned(&["http"]), owned(&[host])]
                    }
                    (false, _) => [owned(&["127.0.0.1"]), owned(&["http"]), owned(&[host])],
                };
                assert_eq!(seen, expected, "{path} over {way:?}");
            }
        }
    }
}

/// Read one response with a `Content-Length` body from `stream`; its head.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
        assert_eq!(read.expect("a response within 5 s").unwrap(), 1, "the connection closed");
        received.push(byte[0]);
    }
    let head = String::from_utf8(received).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head
}

/// Trust follows the plan in force: a reload that takes the peer out of
/// `trusted_proxies` applies to the next request on a connection that was
/// kept alive across it, which then has its chain replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_drops_trust_applies_to_a_kept_alive_connection() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let spec = |trusted: &str| {
        spec_with(&format!("    trusted_proxies: [{trusted}]\n"), &[upstream.address], "", "")
    };
    let gateway = Gateway::start(&spec("127.0.0.1/32"));
    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    let ask = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x.test\r\nX-Forwarded-For: 203.0.113.7\r\n\
             X-Forwarded-Proto: https\r\n\r\n"
        )
    };

    stream.write_all(ask("/before").as_bytes()).await.unwrap();
    assert_eq!(statuses(&read_response(&mut stream).await), [200]);
    std::fs::write(gateway.spec_path(), spec("127.0.0.2/32")).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 1);
    stream.write_all(ask("/after").as_bytes()).await.unwrap();
    assert_eq!(statuses(&read_response(&mut stream).await), [200]);

    let seen = upstream.requests();
    let [before, after] = ["/before", "/after"]
        .map(|path| forwarded_in_head(&seen.iter().find(|r| r.target() == path).unwrap().head));
    assert_eq!(before[0], ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(before[1], ["https"]);
    assert_eq!(after[0], ["127.0.0.1"]);
    assert_eq!(after[1], ["http"]);
}

/// The standard `Forwarded` field (RFC 7239) follows the trust of the
/// `X-Forwarded-*` trio on every [`Way`]: from a trusted peer it reaches
/// the upstream as sent, every line of it; from any other peer, whatever
/// its spelling, none of it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_field_is_believed_only_from_trusted_proxies() {
    let http1 = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let h2 = h2_recorder().await;
    let trusting = Gateway::start(&two_protocol_spec("127.0.0.1/32", http1.address, h2.address));
    let wary = Gateway::start(&two_protocol_spec("127.0.0.2/32", http1.address, h2.address));

    let fields: &[(&str, &str)] = &[
        ("Forwarded", "for=198.51.100.9;proto=https;host=admin.example.test"),
        ("Accept", "*/*"),
        ("FORWARDED", "for=\"[2001:db8::1]\""),
    ];
    let sent = ["for=198.51.100.9;proto=https;host=admin.example.test", "for=\"[2001:db8::1]\""];
    for (gateway, label, trusted) in [(&trusting, "trusting", true), (&wary, "wary", false)] {
        for way in [Way::Own, Way::Body, Way::Upgrade, Way::H2c, Way::H2Pool] {
            let path = way.path(&format!("{label}/forwarded"));
            let status = way.send(gateway.addr("public"), "x.test", &path, fields).await;
            assert_eq!(status, 200, "{path} over {way:?}");
            let seen: Vec<String> = match way {
                Way::H2Pool => {
                    let headers = h2.request(&path).headers;
                    let values = headers.get_all("forwarded").iter();
                    values.map(|v| v.to_str().unwrap().to_owned()).collect()
                }
                _ => {
                    let requests = http1.requests();
                    let request = requests.iter().find(|r| r.target() == path).expect("seen");
                    let lines = request.head.lines().skip(1).filter_map(|l| l.split_once(':'));
                    lines
                        .filter(|(n, _)| n.eq_ignore_ascii_case("forwarded"))
                        .map(|(_, v)| v.trim().to_owned())
                        .collect()
                }
            };
            let expected: Vec<String> =
                if trusted { sent.iter().map(|v| (*v).to_owned()).collect() } else { Vec::new() };
            assert_eq!(seen, expected, "{path} over {way:?}");
        }
    }
}
