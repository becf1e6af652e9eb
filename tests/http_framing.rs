//! Hostile and unusual HTTP/1.1 framing, end to end over raw sockets: what
//! the gateway refuses (and never forwards), and how responses are framed on
//! their way back (fault kinds K6 and K7).

mod support;

use std::time::{Duration, Instant};

use support::{raw, spec_with, statuses, Answer, Gateway, ScriptedUpstream, Upstream};

/// Regression for request smuggling (CL.TE): a request with both
/// Content-Length and Transfer-Encoding hides a second request in its body.
/// It must get 400 and a closed connection, and nothing may reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused_and_never_forwarded() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for (first, second) in [
        ("Content-Length: 13", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 13"),
    ] {
        let smuggled = format!(
            "POST / HTTP/1.1\r\nHost: x.test\r\n{first}\r\n{second}\r\n\r\n\
             0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x.test\r\n\r\n"
        );
        let response = raw(public, smuggled.as_bytes()).await;
        assert_eq!(statuses(&response), [400], "{response}");
        assert!(response.contains("both Content-Length and Transfer-Encoding"), "{response}");
    }
    assert!(upstream.seen().is_empty(), "the upstream saw {:?}", upstream.seen());
}

/// Every malformed framing of case T6.2, one per connection: 400, the
/// connection closes, and the upstream receives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_framing_gets_400_and_a_closed_connection() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let cases = [
        "Content-Length: 10\r\nContent-Length: 20",
        "Content-Length:\r\nContent-Length: 5",
        "Content-Length: +5",
        "Content-Length: 0x10",
        "Content-Length: -1",
        "Content-Length: 5, 6",
        "Content-Length: 5\r\n folded: continuation",
        "X-A: 1\r\n\tfolded",
        ": empty-name",
        "X-Nul: a\0b",
        "X-Cr: a\rb",
        "X\0Name: a",
        "Bad Name: a",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: chunked,",
        "Transfer-Encoding: , chunked",
        "Transfer-Encoding: gzip,, chunked",
        "Transfer-Encoding: chunked\t",
        "Transfer-Encoding: chunked ",
        "Transfer-Encoding: chunked;x=1",
        "Transfer-Encoding: gz ip, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
    ];
    for case in cases {
        let request = format!("POST /x HTTP/1.1\r\nHost: x.test\r\n{case}\r\n\r\nhello");
        let started = Instant::now();
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [400], "{case:?} got {response:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{case:?}: the connection stayed open");
    }
    let http10 = "POST /x HTTP/1.0\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(statuses(&raw(public, http10.as_bytes()).await), [400]);
    assert!(upstream.seen().is_empty(), "the upstream saw {:?}", upstream.seen());
}

/// A chunked body whose framing breaks (a size that is not plain hex, one
/// that overflows, a chunk longer or shorter than its size, a bare LF) gets
/// 400 and a closed connection, as does a `Content-Length` too large for 64
/// bits. The head of a chunked request has already gone upstream by then
/// (bodies stream), but the upstream never receives a whole request: its
/// exchange is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_get_400_and_never_complete_upstream() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for body in [
        "5\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhel\r\n0\r\n\r\n",
        "zz\r\nhello\r\n0\r\n\r\n",
    ] {
        let request =
            format!("POST /x HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let started = Instant::now();
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [400], "{body:?} got {response:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{body:?}: the connection stayed open");
    }
    let huge = "POST /x HTTP/1.1\r\nHost: x.test\r\nContent-Length: 99999999999999999999\r\n\r\nhi";
    assert_eq!(statuses(&raw(public, huge.as_bytes()).await), [400]);
    assert!(upstream.requests().is_empty(), "the upstream read {:?}", upstream.requests());

    // A well-formed chunked body still goes through, whole.
    let good = "POST /ok HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_eq!(statuses(&raw(public, good.as_bytes()).await), [200]);
    assert_eq!(upstream.requests().len(), 1);
}

/// RFC 9112, section 6.1: a well-formed Transfer-Encoding whose codings end
/// in chunked but include one the gateway does not implement is answered 501
/// with a JSON body and `Connection: close`, nothing reaches the upstream,
/// and nothing after it on the connection is read; plain chunked still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_transfer_codings_get_501_and_are_never_forwarded() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for codings in [
        "gzip, chunked",
        "br, chunked",
        "x-custom, chunked",
        "deflate;level=9 ,\tchunked",
        "gzip\r\nTransfer-Encoding: chunked",
    ] {
        let request = format!(
            "POST /coded HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: {codings}\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x.test\r\n\r\n"
        );
        let started = Instant::now();
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [501], "{codings:?} got {response:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{codings:?}: the connection stayed open"
        );
        let lower = response.to_ascii_lowercase();
        assert!(lower.contains("\r\nconnection: close\r\n"), "{response}");
        assert!(response.contains("\"error\":\"unsupported_transfer_coding\""), "{response}");
        assert!(response.contains("other than chunked"), "{response}");
    }
    assert!(upstream.requests().is_empty(), "the upstream saw {:?}", upstream.requests());

    for codings in ["chunked", "Chunked"] {
        let request = format!(
            "POST /plain HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: {codings}\r\n\
             Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        assert_eq!(statuses(&raw(public, request.as_bytes()).await), [200], "{codings}");
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.body == b"5\r\nhello\r\n0\r\n\r\n"), "{seen:?}");
}

/// Identical duplicate Content-Length values are one length (RFC 9110,
/// section 8.6), and a pipelined request after such a body is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_content_lengths_and_pipelined_requests_are_served_in_order() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let pipelined = "GET /one HTTP/1.1\r\nHost: x.test\r\n\r\n\
                     POST /two HTTP/1.1\r\nHost: x.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc\
                     POST /three HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                     3\r\nxyz\r\n0\r\n\r\n\
                     GET /four HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
    let response = raw(gateway.addr("public"), pipelined.as_bytes()).await;
    assert_eq!(statuses(&response), [200, 200, 200, 200], "{response}");
    let order: Vec<usize> = ["/one", "/two", "/three", "/four"]
        .iter()
        .map(|p| response.find(&format!("\r\n\r\n{p}")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "answered out of order: {response}");
    let bodies: Vec<Vec<u8>> = upstream.requests().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies[1], b"abc");
}

/// A valid request followed on the same connection by a smuggling attempt:
/// the first is served, the second refused, and nothing after it forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_after_a_good_one_on_a_connection_is_refused() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let pipelined = "GET /fine HTTP/1.1\r\nHost: x.test\r\n\r\n\
                     POST /bad HTTP/1.1\r\nHost: x.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
                     0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x.test\r\n\r\n";
    let response = raw(gateway.addr("public"), pipelined.as_bytes()).await;
    assert_eq!(statuses(&response), [200, 400], "{response}");
    let targets: Vec<String> = upstream.requests().iter().map(|r| r.target().to_owned()).collect();
    assert_eq!(targets, ["/fine"]);
}

/// B24: fields in a chunked request's trailer section never reach the
/// upstream, where they would bypass the header rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_are_dropped() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let request = "POST /t HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Forwarded-For\r\n\
                   Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n";
    let response = raw(gateway.addr("public"), request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "{response}");
    let seen = &upstream.seen()[0];
    assert_eq!(seen.body_len, 5);
    assert!(seen.trailers.is_none(), "trailers reached the upstream: {:?}", seen.trailers);
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}

/// B19: HTTP/1.1 without Host is refused; HTTP/1.0 without Host is routed
/// with the empty host, which only routes without a `host` match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_host_is_refused_on_http11_and_the_empty_host_on_http10() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let response = raw(public, b"GET /a HTTP/1.1\r\n\r\n").await;
    assert_eq!(statuses(&response), [400], "{response}");
    assert!(response.contains("without a Host header"), "{response}");

    let response = raw(public, b"GET /b HTTP/1.0\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert_eq!(upstream.seen().len(), 1);
    assert_eq!(upstream.seen()[0].target, "/b");
}

/// A listener's `http10_default_host`: an HTTP/1.0 request without Host is
/// routed as if it had sent that host, and the upstream receives it as its
/// Host, from the gateway's own server (GET) and from hyper's (a body); one
/// that sends a Host keeps it; HTTP/1.1 without Host is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_without_host_takes_the_listeners_default_host() {
    let legacy = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let other = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let spec = format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
    http10_default_host: legacy.example.test
  - name: plain
    bind: \"127.0.0.1:0\"
pools:
  - name: legacy
    endpoints: [{{ address: \"{}\" }}]
  - name: other
    endpoints: [{{ address: \"{}\" }}]
routes:
  - name: legacy
    match: {{ host: legacy.example.test, path: \"/{{*rest}}\" }}
    to: legacy
  - name: rest
    match: {{ path: \"/{{*rest}}\" }}
    to: other
",
        legacy.address, other.address
    );
    let gateway = Gateway::start(&spec);
    let public = gateway.addr("public");

    for request in
        [&b"GET /get HTTP/1.0\r\n\r\n"[..], b"POST /post HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"]
    {
        let response = raw(public, request).await;
        assert!(response.starts_with("HTTP/1.0 200 "), "{response}");
    }
    let seen = legacy.requests();
    assert_eq!(seen.iter().map(|r| r.target()).collect::<Vec<_>>(), ["/get", "/post"]);
    for request in &seen {
        assert_eq!(request.header("host"), Some("legacy.example.test"), "{}", request.head);
        assert_eq!(request.header("x-forwarded-host"), Some("legacy.example.test"));
    }

    // A Host sent is kept; HTTP/1.1 without one is refused and never forwarded.
    let response = raw(public, b"GET /sent HTTP/1.0\r\nHost: else.test\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.0 200 "), "{response}");
    let response = raw(public, b"GET /v11 HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(statuses(&response), [400], "{response}");
    assert!(response.contains("without a Host header"), "{response}");
    // A listener without the setting routes it with the empty host.
    let response = raw(gateway.addr("plain"), b"GET /plain HTTP/1.0\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.0 200 "), "{response}");

    assert_eq!(legacy.requests().len(), 2);
    let seen = other.requests();
    assert_eq!(seen.iter().map(|r| r.target()).collect::<Vec<_>>(), ["/sent", "/plain"]);
    assert_eq!(seen[0].header("host"), Some("else.test"));
    // (The upstream client names the endpoint when the request named no host.)
    assert_eq!(seen[1].header("host"), Some(other.address.to_string().as_str()));
}

/// B18: whitespace around the Host value is trimmed before matching; other
/// bytes that cannot be in a host are refused, and so is a port that is
/// not a number or comes twice; a numeric or empty port is ignored for
/// matching, as is an IPv6 literal's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_whitespace_is_trimmed_and_junk_in_host_refused() {
    let upstream = Upstream::start("api").await;
    let spec = spec_with("", &[upstream.address], "", "")
        .replace("match: { path:", "match: { host: api.example.test, path:");
    let gateway = Gateway::start(&spec);
    let public = gateway.addr("public");

    let response = raw(
        public,
        b"GET /a HTTP/1.1\r\nHost: \t api.example.test \t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&response), [200], "{response}");
    let junk = ["api.example.test x", "api.example.test/x", "user@api.example.test"];
    let ports = ["api.example.test:abc", "api.example.test:80:80", "api.example.test:123456"];
    let literals = ["[::1", "::1", "[::1]x", "[::1]:http"];
    for host in junk.into_iter().chain(ports).chain(literals) {
        let request = format!("GET /a HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(statuses(&raw(public, request.as_bytes()).await), [400], "{host}");
    }
    for host in ["api.example.test:8080", "api.example.test:"] {
        let request = format!("GET /a HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(statuses(&raw(public, request.as_bytes()).await), [200], "{host}");
    }
    assert_eq!(upstream.seen().len(), 3);
}

/// Header count and head size limits give 431 (defaults and listener settings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_headers_or_too_large_a_head_gets_431() {
    let upstream = Upstream::start("a").await;
    let default = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let strict = Gateway::start(&spec_with(
        "    max_headers: 5\n    max_head_size: 1KiB\n",
        &[upstream.address],
        "",
        "",
    ));

    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: x.test\r\n{many}\r\n");
    assert_eq!(statuses(&raw(default.addr("public"), request.as_bytes()).await), [431]);

    let six: String = (0..6).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: x.test\r\n{six}\r\n");
    assert_eq!(statuses(&raw(strict.addr("public"), request.as_bytes()).await), [431]);

    let request = format!("GET / HTTP/1.1\r\nHost: x.test\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    assert_eq!(statuses(&raw(strict.addr("public"), request.as_bytes()).await), [431]);
    let request =
        format!("GET / HTTP/1.1\r\nHost: x.test\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
    assert_eq!(statuses(&raw(default.addr("public"), request.as_bytes()).await), [431]);

    let fine = "GET / HTTP/1.1\r\nHost: x.test\r\nX-A: 1\r\nConnection: close\r\n\r\n";
    assert_eq!(statuses(&raw(strict.addr("public"), fine.as_bytes()).await), [200]);
    assert_eq!(upstream.seen().len(), 1);
}

/// B32: 204 and 304 have no body, so a keep-alive connection does not wait
/// for one; stray bytes after a 204 never leak into the next response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_statuses_complete_at_once_and_stray_bytes_do_not_leak() {
    let upstream = ScriptedUpstream::start(None, |r| match r.target() {
        "/no-content" => Answer::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/not-modified" => {
            Answer::Send(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec())
        }
        "/bad-204" => Answer::Send(b"HTTP/1.1 204 No Content\r\n\r\nJUNK".to_vec()),
        other => Answer::ok(other),
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    for first in ["/no-content", "/not-modified", "/bad-204"] {
        let pair = format!(
            "GET {first} HTTP/1.1\r\nHost: x.test\r\n\r\nGET /next HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n"
        );
        let started = Instant::now();
        let response = raw(public, pair.as_bytes()).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{first}: waited for a body");
        let expected = if first == "/not-modified" { 304 } else { 204 };
        assert_eq!(statuses(&response), [expected, 200], "{first}: {response:?}");
        assert!(response.ends_with("\r\n\r\n/next"), "{first}: {response:?}");
        assert!(!response.contains("JUNK"), "stray bytes leaked: {response:?}");
    }
}

/// B33: a HEAD response keeps the upstream's Content-Length and has no body;
/// an informational response before the final one is passed on ahead of it
/// (see `interim_responses.rs`), and takes none of its framing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_keeps_content_length_and_1xx_is_passed_on() {
    let upstream = ScriptedUpstream::start(None, |r| match r.method() {
        "HEAD" => Answer::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec()),
        _ => Answer::Send(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        ),
    })
    .await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));

    let pair = "HEAD /h HTTP/1.1\r\nHost: x.test\r\n\r\nGET /g HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n";
    let response = raw(gateway.addr("public"), pair.as_bytes()).await;
    let lower = response.to_ascii_lowercase();
    assert_eq!(statuses(&response), [200, 103, 200], "{response}");
    assert!(
        lower.contains("\r\n\r\nhttp/1.1 103 early hints\r\nlink: </a.css>\r\n\r\n"),
        "{response}"
    );
    assert!(lower.contains("content-length: 1234"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
}

/// `CONNECT` and `OPTIONS *` are not paths gone wrong: each is refused in
/// words for what it is, and neither reaches a pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_asterisk_requests_are_refused_for_what_they_are() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");
    for (request, said) in [
        (&b"CONNECT x.test:443 HTTP/1.1\r\nHost: x.test:443\r\n\r\n"[..], "CONNECT (a tunnel"),
        (&b"OPTIONS * HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n"[..], "for *"),
    ] {
        let response = raw(public, request).await;
        assert_eq!(statuses(&response), [400], "{response}");
        assert!(response.contains(said), "{response}");
    }
    assert!(upstream.seen().is_empty(), "the upstream saw {:?}", upstream.seen());
}
