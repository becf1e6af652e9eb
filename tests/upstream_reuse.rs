//! Upstream connection reuse and the resends that are safe by default (fault
//! kind K8: B34, B35), end to end with scripted upstreams on loopback.

mod support;

use std::time::Duration;

use hyper::StatusCode;

use bytes::Bytes;
use http_body_util::Full;

use support::{client, request, send, spec_with, Answer, Gateway, ScriptedUpstream, Upstream};

/// An upstream that answers the first request on each connection and closes
/// the connection, without answering, on any later one: the race of a
/// keep-alive connection that the upstream closes just as it is reused. Its
/// answer has the target as the body, or, to a HEAD, as `X-Target`.
async fn closes_reused_connections() -> ScriptedUpstream {
    ScriptedUpstream::start(None, |r| {
        if r.index_on_connection > 0 {
            Answer::Close
        } else if r.method() == "HEAD" {
            let head =
                format!("HTTP/1.1 200 OK\r\nX-Target: {}\r\nContent-Length: 7\r\n\r\n", r.target());
            Answer::Send(head.into_bytes())
        } else {
            Answer::ok(r.target())
        }
    })
    .await
}

/// `PUT /document` with `body`, to the gateway at `address`.
fn put_document(address: std::net::SocketAddr, body: &Bytes) -> hyper::Request<Full<Bytes>> {
    hyper::Request::put(format!("http://{address}/document"))
        .header("host", "x.test")
        .body(Full::new(body.clone()))
        .unwrap()
}

/// B34: an idempotent request that dies on a reused connection before any
/// response is sent once more on a new connection, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_on_a_stale_connection_is_resent_on_a_new_one() {
    let upstream = closes_reused_connections().await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let http = client();

    for i in 0..5 {
        let reply =
            send(&http, request("GET", gateway.addr("public"), "x.test", &format!("/{i}"))).await;
        assert_eq!(
            (reply.status, reply.body.clone()),
            (StatusCode::OK, format!("/{i}")),
            "request {i}"
        );
    }
    // Every request after the first hit a pooled connection that died, and
    // was sent again on a new one.
    let requests = upstream.requests();
    let answered = requests.iter().filter(|r| r.index_on_connection == 0).count();
    assert_eq!(answered, 5, "{requests:?}");
}

/// B34 for the other idempotent methods: a PUT, a DELETE and a HEAD that die
/// on a reused connection before any response are each sent once more on a
/// new connection, and succeed; so does a PUT with a body on a route that
/// keeps a copy of it for retries, whose resend carries the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_delete_and_head_on_a_stale_connection_are_resent_on_a_new_one() {
    let upstream = closes_reused_connections().await;
    let retries = "    retries: { attempts: 2, on: [502] }\n";
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", retries));
    let address = gateway.addr("public");
    let http = client();

    let first = send(&http, request("GET", address, "x.test", "/warm")).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "/warm"));
    for method in ["PUT", "DELETE", "HEAD"] {
        for i in 0..2 {
            let path = format!("/{method}/{i}");
            let reply = send(&http, request(method, address, "x.test", &path)).await;
            assert_eq!(reply.status, StatusCode::OK, "{method} {path}: {}", reply.body);
            if method == "HEAD" {
                assert_eq!(reply.body, "");
                let target = reply.headers.get("x-target").map(|v| v.to_str().unwrap());
                assert_eq!(target, Some(path.as_str()));
            } else {
                assert_eq!(reply.body, path);
            }
        }
    }
    let body = Bytes::from_static(b"the whole document");
    let reply = send(&http, put_document(address, &body)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "/document"));

    // Each request after the first met a connection that died and went
    // again, whole, on a new one, which answered it.
    let requests = upstream.requests();
    assert_eq!(upstream.connections(), 8, "{requests:?}");
    for (stale, resent) in requests
        .iter()
        .filter(|r| r.index_on_connection > 0)
        .zip(requests.iter().filter(|r| r.index_on_connection == 0).skip(1))
    {
        assert_eq!((stale.method(), stale.target()), (resent.method(), resent.target()));
        assert_eq!(stale.body, resent.body);
    }
    let document: Vec<_> = requests.iter().filter(|r| r.target() == "/document").collect();
    assert_eq!(document.len(), 2, "{requests:?}");
    assert!(document.iter().all(|r| r.body == body), "{document:?}");
}

/// B35 and T8.2 for PATCH: a route that retries on 502 without
/// `non_idempotent` retries a GET to the other endpoint, but never sends a
/// PATCH twice: the client gets the upstream's own 502, and the other
/// endpoint receives only the PATCHes sent to it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_answered_502_is_not_retried_without_non_idempotent() {
    let failing = ScriptedUpstream::start(None, |_| {
        Answer::Send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 9\r\n\r\nu1 failed".to_vec())
    })
    .await;
    let other = Upstream::start("u2").await;
    let retries = "    retries: { attempts: 2, on: [502] }\n";
    let gateway = Gateway::start(&spec_with("", &[failing.address, other.address], "", retries));
    let address = gateway.addr("public");
    let http = client();

    for _ in 0..4 {
        let reply = send(&http, request("GET", address, "x.test", "/orders")).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "u2"), "GET is retried");
    }
    let before = other.seen().len();
    let mut from_u1 = 0;
    for _ in 0..4 {
        let reply = send(&http, request("PATCH", address, "x.test", "/orders/7")).await;
        if reply.status == StatusCode::BAD_GATEWAY {
            assert_eq!(reply.body, "u1 failed", "the upstream's own 502 body");
            from_u1 += 1;
        } else {
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "u2"));
        }
    }
    assert_eq!(from_u1, 2, "round robin sends half the PATCHes to u1");
    let patches = failing.requests().iter().filter(|r| r.method() == "PATCH").count();
    assert_eq!(patches, 2, "u1 saw each of its PATCHes once");
    let to_u2 = other.seen()[before..].iter().filter(|s| s.method == "PATCH").count();
    assert_eq!(to_u2, 2, "u2 never receives u1's PATCHes");
}

/// B34 with a body, on a route without retries: a PUT whose reused
/// connection turns out closed after it was sent goes again, body and all,
/// on a new connection, from the copy kept while it streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_a_body_on_a_stale_connection_is_resent_whole() {
    let upstream = closes_reused_connections().await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let address = gateway.addr("public");
    let http = client();

    let first = send(&http, request("GET", address, "x.test", "/warm")).await;
    assert_eq!(first.status, StatusCode::OK);
    let body = Bytes::from_static(b"the whole document, twice if need be");
    let reply = send(&http, put_document(address, &body)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "/document"));
    let puts: Vec<_> = upstream.requests().into_iter().filter(|r| r.method() == "PUT").collect();
    assert_eq!(puts.len(), 2, "sent on the stale connection, then again");
    assert!(puts.iter().all(|r| r.body == body), "{puts:?}");
}

/// B35: a non-idempotent request is never sent twice once it was sent: the
/// stale connection gives 502 and the upstream saw the POST exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_on_a_stale_connection_is_not_resent() {
    let upstream = closes_reused_connections().await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let http = client();

    let first = send(&http, request("POST", gateway.addr("public"), "x.test", "/orders")).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = send(&http, request("POST", gateway.addr("public"), "x.test", "/orders")).await;
    assert_eq!(second.status, StatusCode::BAD_GATEWAY, "{}", second.body);
    let posts = upstream.requests().iter().filter(|r| r.method() == "POST").count();
    assert_eq!(posts, 2, "the failed POST must not be sent a second time");
}

/// B35 and T8.2: an upstream's 502 to a POST passes through unchanged, and
/// the POST goes nowhere else; a refused connection (nothing sent) moves even
/// a POST to another endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_statuses_pass_through_and_only_unsent_posts_move() {
    let failing = ScriptedUpstream::start(None, |_| {
        Answer::Send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 9\r\n\r\nu1 failed".to_vec())
    })
    .await;
    let other = Upstream::start("u2").await;
    let gateway = Gateway::start(&spec_with("", &[failing.address, other.address], "", ""));
    let http = client();

    let mut from_u1 = 0;
    for _ in 0..4 {
        let reply = send(&http, request("POST", gateway.addr("public"), "x.test", "/orders")).await;
        if reply.status == StatusCode::BAD_GATEWAY {
            assert_eq!(reply.body, "u1 failed", "the upstream's own 502 body");
            from_u1 += 1;
        } else {
            assert_eq!(reply.body, "u2");
        }
    }
    assert_eq!(from_u1, 2, "round robin sends half the POSTs to u1");
    assert_eq!(other.seen().len(), 2, "u2 never receives u1's POSTs");

    let refused = support::closed_port();
    let gateway = Gateway::start(&spec_with("", &[refused, other.address], "", ""));
    for _ in 0..4 {
        let reply = send(&http, request("POST", gateway.addr("public"), "x.test", "/orders")).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "u2"));
    }
}

/// T8.1, scaled down: the upstream closes connections idle for 300 ms; the
/// pool drops them after 100 ms, so requests every 350 ms never meet a
/// closed connection (and no resend is needed: one connection per request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_expire_before_the_upstream_closes_them() {
    let upstream =
        ScriptedUpstream::start(Some(Duration::from_millis(300)), |r| Answer::ok(r.target())).await;
    let gateway =
        Gateway::start(&spec_with("", &[upstream.address], "    idle_timeout: 100ms\n", ""));
    let http = client();

    for i in 0..6 {
        let reply =
            send(&http, request("POST", gateway.addr("public"), "x.test", &format!("/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    assert_eq!(upstream.requests().len(), 6);
}

/// T8.1 as the case has it, scaled down: the pool keeps idle connections
/// far longer (60 s) than the upstream does (200 ms), and GETs come every
/// 1.0 to 1.1 times the upstream's timeout, so each one meets a connection
/// the upstream is closing or has just closed. None fails: a closed one is
/// noticed before it is used, and one that closes as it is used is resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_the_upstream_idle_timeout_never_fail() {
    let upstream =
        ScriptedUpstream::start(Some(Duration::from_millis(200)), |r| Answer::ok(r.target())).await;
    let gateway =
        Gateway::start(&spec_with("", &[upstream.address], "    idle_timeout: 60s\n", ""));
    let http = client();
    let mut failed = Vec::new();
    for i in 0..30u64 {
        let reply =
            send(&http, request("GET", gateway.addr("public"), "x.test", &format!("/{i}"))).await;
        if reply.status != StatusCode::OK {
            failed.push((i, reply.status));
        }
        tokio::time::sleep(Duration::from_millis(200 + (i * 7) % 21)).await;
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
    assert_eq!(upstream.requests().len(), 30);
}

/// A kept-alive upstream connection goes back to the pool whatever framed
/// the response: a length, chunks with trailers, or no body at all; one the
/// upstream marked `Connection: close` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_after_every_kind_of_response_body() {
    let upstream = ScriptedUpstream::start(None, |r| match r.target() {
        "/chunked" => Answer::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 5\r\n\r\n"
                .to_vec(),
        ),
        "/empty" => Answer::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/close" => Answer::SendAndClose(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast".to_vec(),
        ),
        target => Answer::ok(target),
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let http = client();

    let expected = [
        ("/length", StatusCode::OK, "/length"),
        ("/chunked", StatusCode::OK, "abcde"),
        ("/empty", StatusCode::NO_CONTENT, ""),
        ("/length", StatusCode::OK, "/length"),
    ];
    for (path, status, body) in expected {
        let reply = send(&http, request("GET", gateway.addr("public"), "x.test", path)).await;
        assert_eq!((reply.status, reply.body.as_str()), (status, body), "{path}");
    }
    assert_eq!(upstream.connections(), 1, "{:?}", upstream.requests());

    for path in ["/close", "/after-close"] {
        let reply = send(&http, request("GET", gateway.addr("public"), "x.test", path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
    assert_eq!(upstream.connections(), 2, "a closed connection is not reused");
    let requests = upstream.requests();
    assert!(
        requests.iter().all(|r| r.index_on_connection == 0 || r.connection == 0),
        "{requests:?}"
    );
}

/// An idle pooled connection that the upstream closed is noticed when it is
/// next taken, so even a POST, which is never sent twice, goes out on a live
/// connection and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    let upstream =
        ScriptedUpstream::start(Some(Duration::from_millis(100)), |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let http = client();

    for i in 0..3 {
        let reply =
            send(&http, request("POST", gateway.addr("public"), "x.test", &format!("/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(upstream.requests().len(), 3);
    assert_eq!(upstream.connections(), 3);
}
