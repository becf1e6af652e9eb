//! What an upgrade may offer the upstream and what a 101 may switch to:
//! HTTP itself (`h2c` and the like) is never offered, since its tunnel
//! would carry requests for any path past the routes, and a 101 to a
//! protocol the client did not offer opens no tunnel (RFC 9110, section 7.8).

mod support;

use std::time::Duration;

use support::{raw, spec_with, statuses, Answer, RawRequest, ScriptedUpstream};

/// An upstream that switches protocols whenever it is asked to, answering
/// `101` with the `Upgrade` value that the request's target names after
/// `/switch/` (`-` for none), and `200` otherwise.
async fn switching_upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(None, |request: &RawRequest| {
        let target = request.target();
        let Some(protocol) = target.split_once("/switch/").map(|(_, p)| p.replace("%20", " "))
        else {
            return Answer::ok(target);
        };
        let upgrade = match protocol.as_str() {
            "-" => String::new(),
            named => format!("Upgrade: {named}\r\n"),
        };
        Answer::Send(
            format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n{upgrade}\r\n")
                .into_bytes(),
        )
    })
    .await
}

/// A request for `target` with the given extra fields, and after it a
/// plain request for `/next` that closes the connection.
fn with_next(target: &str, fields: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: api.example.test\r\n{fields}\r\n\
         GET /next HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n"
    )
}

/// `Upgrade: h2c` alone is no upgrade request: the upstream gets neither
/// `Upgrade` nor `HTTP2-Settings`, its 101 is refused (502) as one nobody
/// asked for, and what the client sends next is a request of its own.
/// Offered beside another protocol, h2c is left out of the offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_is_never_offered_upstream() {
    let upstream = switching_upstream().await;
    let gateway = support::Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let cases = [
        ("/a/switch/h2c", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"),
        (
            "/b/switch/h2c",
            "Upgrade: H2C\r\nConnection: upgrade\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
        ),
        ("/c/switch/h2c", "Upgrade: HTTP/2.0, h2\r\nConnection: upgrade\r\n"),
        ("/d/switch/h2c", "Upgrade: TLS/1.2\r\nConnection: upgrade\r\n"),
    ];
    for (target, fields) in cases {
        let fields = format!("{fields}HTTP2-Settings: AAMAAABkAAQAAP__\r\n");
        let response = raw(public, with_next(target, &fields).as_bytes()).await;
        assert_eq!(statuses(&response), [502, 200], "{target}: {response}");
        assert!(response.contains("upstream_invalid_response"), "{response}");
        let requests = upstream.requests();
        let seen = requests.iter().find(|r| r.target() == target).expect("forwarded");
        for gone in ["upgrade", "http2-settings"] {
            assert_eq!(seen.header(gone), None, "{target}: {}", seen.head);
        }
        assert!(!seen.head.to_ascii_lowercase().contains("upgrade"), "{}", seen.head);
        let next = requests.iter().find(|r| r.target() == "/next").expect("a request of its own");
        assert_eq!(next.header("x-forwarded-for"), Some("127.0.0.1"), "{}", next.head);
    }

    // Beside another protocol, only that one is offered.
    let request = "GET /e/switch/websocket HTTP/1.1\r\nHost: api.example.test\r\n\
                   Upgrade: h2c, websocket\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let head = first_head(public, request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let requests = upstream.requests();
    let seen = requests.iter().find(|r| r.target() == "/e/switch/websocket").expect("forwarded");
    assert_eq!(seen.header("upgrade"), Some("websocket"), "{}", seen.head);
    assert_eq!(seen.header("http2-settings"), None, "{}", seen.head);
}

/// A 101 may switch only to a protocol the client offered, names compared
/// without regard to case: `WebSocket` for `websocket` opens the tunnel;
/// `h2c`, another protocol beside the offered one, a version the client did
/// not offer, or no `Upgrade` at all is a 502, and the client's next bytes
/// are read as a request, never tunnelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_must_switch_to_an_offered_protocol() {
    let upstream = switching_upstream().await;
    let gateway = support::Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for (target, offer) in [
        ("/1/switch/h2c", "websocket"),
        ("/2/switch/websocket,%20h2c", "websocket"),
        ("/3/switch/-", "websocket"),
        ("/4/switch/foo/3", "foo/2, websocket"),
        ("/5/switch/websocketx", "websocket"),
    ] {
        let fields = format!("Upgrade: {offer}\r\nConnection: Upgrade\r\n");
        let response = raw(public, with_next(target, &fields).as_bytes()).await;
        assert_eq!(statuses(&response), [502, 200], "{target}: {response}");
        assert!(response.contains("upstream_invalid_response"), "{response}");
        let requests = upstream.requests();
        let seen = requests.iter().find(|r| r.target() == target).expect("forwarded");
        assert_eq!(seen.header("upgrade"), Some(offer), "{}", seen.head);
    }

    for (target, offer) in
        [("/6/switch/WebSocket", "websocket"), ("/7/switch/websocket", "WebSocket/13")]
    {
        let fields = format!("Upgrade: {offer}\r\nConnection: Upgrade\r\n");
        let head =
            first_head(public, &format!("GET {target} HTTP/1.1\r\nHost: a.test\r\n{fields}\r\n"))
                .await;
        assert!(head.starts_with("HTTP/1.1 101"), "{target}: {head}");
    }
}

/// Send `request` on a new connection and read the head of the first
/// response (the connection may stay open, as a tunnel does).
async fn first_head(gateway: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
        if read.expect("a response head within 5 s").unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A 101 the request cannot take is the endpoint's error, and counts
/// against it like a malformed head: three in a row (one to a request that
/// asked for no upgrade, one to a protocol the client did not offer, one
/// naming none) each get a 502 and eject the endpoint, so that its pool,
/// which has no other, then answers 503 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_101s_count_against_the_endpoint() {
    let upstream = switching_upstream().await;
    let outlier = "    outlier_detection: { consecutive_failures: 3, base_ejection: 30s, \
                   max_ejection_percent: 100 }\n";
    let mut gateway = support::Gateway::start(&spec_with("", &[upstream.address], outlier, ""));
    let public = gateway.addr("public");

    let offer = "Upgrade: websocket\r\nConnection: Upgrade, close\r\n";
    for (target, fields) in [
        ("/unasked/switch/websocket", "Connection: close\r\n"),
        ("/unoffered/switch/h2c", offer),
        ("/unnamed/switch/-", offer),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: api.example.test\r\n{fields}\r\n");
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [502], "{target}: {response}");
        assert!(response.contains("upstream_invalid_response"), "{target}: {response}");
    }
    gateway.wait_stderr("endpoint ejected after consecutive failures", 1, Duration::from_secs(5));
    let ejection = gateway.stderr().into_iter().find(|l| l.contains("endpoint ejected"));
    assert!(ejection.is_some_and(|l| l.contains(&upstream.address.to_string())));

    let request = "GET /after HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n";
    let response = raw(public, request.as_bytes()).await;
    assert_eq!(statuses(&response), [503], "{response}");
    assert!(response.contains("no_endpoint"), "{response}");
    assert!(upstream.requests().iter().all(|r| r.target() != "/after"));

    gateway.interrupt();
    assert_eq!(gateway.wait(Duration::from_secs(5)).code(), Some(0));
    let lines = gateway.stdout();
    for target in ["/unasked/switch/websocket", "/unoffered/switch/h2c", "/unnamed/switch/-"] {
        let line = lines.iter().find(|l| l.contains(&format!("\"path\":\"{target}\"")));
        let line: serde_json::Value = serde_json::from_str(line.expect(target)).unwrap();
        assert_eq!(line["status"], 502, "{target}: {line}");
        assert_eq!(line["endpoint"], upstream.address.to_string(), "{target}: {line}");
    }
}

/// A route that retries on `reset` tries another endpoint after a 101
/// that the request cannot take, as it does after a malformed head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_retries_on_reset_retries_a_refused_101() {
    let switching = switching_upstream().await;
    let fine =
        ScriptedUpstream::start(None, |request: &RawRequest| Answer::ok(request.target())).await;
    let route = "    retries: { attempts: 2, on: [reset] }\n";
    let endpoints = [switching.address, fine.address];
    let gateway = support::Gateway::start(&spec_with("", &endpoints, "", route));
    let public = gateway.addr("public");

    // Round robin: whichever endpoint comes first, one request of the two
    // meets the switching one first.
    for i in 0..2 {
        let target = format!("/{i}/switch/websocket");
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n");
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{target}: {response}");
        assert!(response.ends_with(&target), "{target}: {response}");
    }
    assert!(!switching.requests().is_empty(), "round robin skipped an endpoint");
    assert_eq!(fine.requests().len(), 2, "{:?}", fine.requests());
}
