//! HTTP/1.0 clients: a response whose length is unknown can only be ended
//! by closing the connection, so it says `Connection: close` and never
//! `keep-alive`, on the gateway's own server and on hyper's alike; and an
//! HTTP/1.0 request's `Expect` is ignored, not passed on (RFC 9110,
//! section 10.1.1).

mod support;

use support::{raw, spec_with, Answer, Gateway, ScriptedUpstream};

/// An upstream that answers `/unframed...` with a body ended by its close,
/// `/chunked...` with a chunked body, and anything else with a length.
async fn upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(None, |request| {
        let target = request.target();
        if target.starts_with("/unframed") {
            Answer::SendAndClose(b"HTTP/1.1 200 OK\r\n\r\nhello".to_vec())
        } else if target.starts_with("/chunked") {
            Answer::Send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    .to_vec(),
            )
        } else {
            Answer::ok("hello")
        }
    })
    .await
}

/// The heads of the HTTP/1.0 responses in `text`, lowercased.
fn heads(text: &str) -> Vec<String> {
    text.match_indices("HTTP/1.0 ")
        .filter_map(|(at, _)| text[at..].split_once("\r\n\r\n").map(|(h, _)| h.to_lowercase()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unframed_response_to_http10_says_close() {
    let upstream = upstream().await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for target in ["/unframed", "/chunked"] {
        // Without a body (the gateway's own server) and with one (hyper's).
        for (method, body) in [("GET", ""), ("POST", "Content-Length: 2\r\n\r\nhi")] {
            let end = if body.is_empty() { "\r\n" } else { "" };
            let request = format!(
                "{method} {target} HTTP/1.0\r\nHost: x.test\r\nConnection: keep-alive\r\n{body}{end}"
            );
            // `raw` also shows that the connection closed.
            let response = raw(public, request.as_bytes()).await;
            let heads = heads(&response);
            assert_eq!(heads.len(), 1, "{request:?}: {response}");
            let head = &heads[0];
            assert!(head.starts_with("http/1.0 200"), "{request:?}: {response}");
            assert!(head.contains("\r\nconnection: close"), "{request:?}: {response}");
            assert!(!head.contains("keep-alive"), "{request:?}: {response}");
            assert!(!head.contains("content-length"), "{request:?}: {response}");
            assert!(response.ends_with("\r\n\r\nhello"), "{request:?}: {response}");
        }
    }

    // A response of known length keeps the connection the client asked to keep.
    let request = "GET /sized HTTP/1.0\r\nHost: x.test\r\nConnection: keep-alive\r\n\r\n\
                   GET /sized HTTP/1.0\r\nHost: x.test\r\n\r\n";
    let response = raw(public, request.as_bytes()).await;
    let heads = heads(&response);
    assert_eq!(heads.len(), 2, "{response}");
    assert!(heads[0].contains("connection: keep-alive"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_expectation_is_not_passed_on() {
    let upstream = upstream().await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let request = "POST /expect HTTP/1.0\r\nHost: x.test\r\nExpect: 100-continue\r\n\
                   Content-Length: 2\r\n\r\nhi";
    let response = raw(gateway.addr("public"), request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(!response.contains("100 Continue"), "{response}");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("expect"), None, "{}", seen[0].head);
    assert_eq!(seen[0].body, b"hi");

    // HTTP/1.1 still passes it on.
    let request = "POST /expect11 HTTP/1.1\r\nHost: x.test\r\nExpect: 100-continue\r\n\
                   Content-Length: 2\r\nConnection: close\r\n\r\nhi";
    raw(gateway.addr("public"), request.as_bytes()).await;
    let seen = upstream.requests();
    let expect11 = seen.iter().find(|r| r.target() == "/expect11").expect("forwarded");
    assert_eq!(expect11.header("expect"), Some("100-continue"), "{}", expect11.head);
}
