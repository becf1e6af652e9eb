//! `X-Request-Id` end to end: the listener's `request_id` setting decides
//! the id, the upstream receives it, and the client gets the same id back,
//! over HTTP/1.1 (both of the gateway's servers) and HTTP/2.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use support::{closed_port, raw, send, spec_with, statuses, Answer, Gateway, ScriptedUpstream};

const PRESERVE: &str = "    request_id: preserve\n";

/// The value of `name` in a raw response head, case-insensitively.
fn response_header<'r>(response: &'r str, name: &str) -> Option<&'r str> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Send `extra` header lines on a GET (the gateway's own server) and on a
/// POST with a body (hyper's server); return each response and what the
/// upstream saw of it.
async fn both_servers(
    gateway: &Gateway,
    upstream: &ScriptedUpstream,
    extra: &str,
) -> Vec<(String, support::RawRequest)> {
    let before = upstream.requests().len();
    let mut responses = Vec::new();
    for request in [
        format!("GET /get HTTP/1.1\r\nHost: a.test\r\n{extra}Connection: close\r\n\r\n"),
        format!(
            "POST /post HTTP/1.1\r\nHost: a.test\r\n{extra}Content-Length: 2\r\n\
             Connection: close\r\n\r\nhi"
        ),
    ] {
        let response = raw(gateway.addr("public"), request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{response}");
        responses.push(response);
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), before + 2);
    responses.into_iter().zip(seen[before..].iter().cloned()).collect()
}

/// `preserve`: a well-formed client id reaches the upstream
/// and comes back; a malformed, over-long or repeated one is replaced by a
/// new id, the same at the upstream and in the response; a request without
/// one gets a new one, different for each request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_keeps_a_clients_id_and_replaces_a_malformed_one() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with(PRESERVE, &[upstream.address], "", ""));

    // Kept, also when the client names the field in `Connection`.
    for extra in [
        "X-Request-Id: 7f3c-client_42.a:b\r\n",
        "X-Request-Id: 7f3c-client_42.a:b\r\nConnection: x-request-id\r\n",
    ] {
        for (response, seen) in both_servers(&gateway, &upstream, extra).await {
            assert_eq!(seen.header("x-request-id"), Some("7f3c-client_42.a:b"), "{}", seen.head);
            assert_eq!(response_header(&response, "x-request-id"), Some("7f3c-client_42.a:b"));
        }
    }

    // Replaced: a space, a control character's neighbour (tab), too long, twice.
    let long = "a".repeat(129);
    let mut generated = Vec::new();
    for extra in [
        "X-Request-Id: has space\r\n".to_owned(),
        "X-Request-Id: tab\there\r\n".to_owned(),
        format!("X-Request-Id: {long}\r\n"),
        "X-Request-Id: one\r\nX-Request-Id: two\r\n".to_owned(),
        String::new(),
    ] {
        for (response, seen) in both_servers(&gateway, &upstream, &extra).await {
            let sent = seen.header("x-request-id").unwrap_or_default().to_owned();
            assert!(is_generated(&sent), "{extra:?} reached the upstream as {sent:?}");
            assert_eq!(seen.head.to_ascii_lowercase().matches("x-request-id:").count(), 1);
            assert_eq!(response_header(&response, "x-request-id"), Some(sent.as_str()));
            generated.push(sent);
        }
    }
    let distinct: std::collections::HashSet<_> = generated.iter().collect();
    assert_eq!(distinct.len(), generated.len(), "{generated:?}");

    // The gateway's own answers carry the id too.
    let dead = Gateway::start(&spec_with(PRESERVE, &[closed_port()], "", ""));
    let response = raw(
        dead.addr("public"),
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: mine\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&response), [502], "{response}");
    assert_eq!(response_header(&response, "x-request-id"), Some("mine"));
}

/// `generate` replaces even a well-formed client id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_always_replaces_the_clients_id() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway =
        Gateway::start(&spec_with("    request_id: generate\n", &[upstream.address], "", ""));
    for (response, seen) in both_servers(&gateway, &upstream, "X-Request-Id: mine\r\n").await {
        let sent = seen.header("x-request-id").unwrap_or_default().to_owned();
        assert!(is_generated(&sent), "{}", seen.head);
        assert_eq!(response_header(&response, "x-request-id"), Some(sent.as_str()));
    }
}

/// `off`, the default, passes the client's field through untouched and
/// adds none; the upstream's own id, if it sends one, reaches the client as
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_passes_through_and_adds_nothing() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    for listener in ["    request_id: off\n", ""] {
        let gateway = Gateway::start(&spec_with(listener, &[upstream.address], "", ""));
        let sent = "X-Request-Id: has space\r\n";
        for (response, seen) in both_servers(&gateway, &upstream, sent).await {
            assert_eq!(seen.header("x-request-id"), Some("has space"), "{}", seen.head);
            assert_eq!(response_header(&response, "x-request-id"), None, "{response}");
        }
        for (response, seen) in both_servers(&gateway, &upstream, "").await {
            assert_eq!(seen.header("x-request-id"), None, "{}", seen.head);
            assert_eq!(response_header(&response, "x-request-id"), None, "{response}");
        }
    }
}

/// An HTTP/2 client gets the same treatment: its id kept and echoed, or a
/// new one that the upstream saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_their_id_back() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with(PRESERVE, &[upstream.address], "", ""));
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let address = gateway.addr("public");

    let request = |id: Option<&str>| {
        let mut builder = Request::builder().uri(format!("http://{address}/h2"));
        if let Some(id) = id {
            builder = builder.header("x-request-id", id);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    };
    let kept = send(&client, request(Some("h2-client-id"))).await;
    assert_eq!(kept.status, 200);
    assert_eq!(kept.headers["x-request-id"], "h2-client-id");
    assert_eq!(upstream.requests()[0].header("x-request-id"), Some("h2-client-id"));

    let fresh = send(&client, request(None)).await;
    let id = fresh.headers["x-request-id"].to_str().unwrap();
    assert!(is_generated(id), "{id}");
    assert_eq!(upstream.requests()[1].header("x-request-id"), Some(id));
}
