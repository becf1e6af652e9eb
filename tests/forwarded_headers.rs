//! Hop-by-hop headers and the X-Forwarded-* trio, end to end (fault kind K5:
//! B22, B23).

mod support;

use hyper::StatusCode;

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
