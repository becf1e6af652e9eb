//! Trailer sections pass through the gateway only without the fields that
//! may not travel in one (RFC 9110, section 6.5.1) or that the gateway's
//! header rules govern: request trailers on their way to an HTTP/2 pool,
//! and response trailers on their way to any client.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};

use support::h2c::H2Recorder;
use support::{raw, spec_with, statuses, Answer, Frames, Gateway, ScriptedUpstream};

/// Fields no trailer may carry through the gateway, as a client or an
/// upstream might try: framing, routing, authentication, the request id
/// and the forwarding fields, and hop-by-hop ones.
const BARRED: &[(&str, &str)] = &[
    ("authorization", "Bearer forged"),
    ("cookie", "session=forged"),
    ("set-cookie", "session=forged"),
    ("x-request-id", "forged"),
    ("host", "admin.example.test"),
    ("content-length", "1"),
    ("te", "trailers"),
    ("trailer", "x-checksum"),
    ("keep-alive", "timeout=5"),
    ("forwarded", "for=198.51.100.9"),
    ("x-forwarded-for", "198.51.100.9"),
    ("x-forwarded-host", "admin.example.test"),
    ("www-authenticate", "Basic"),
    ("if-match", "*"),
];

/// Fields a trailer may carry, which pass.
const KEPT: &[(&str, &str)] = &[("grpc-status", "0"), ("x-checksum", "abc")];

fn trailer_map(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The names of `map`, sorted.
fn names(map: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = map.keys().map(|n| n.as_str().to_owned()).collect();
    names.sort();
    names
}

fn kept_names() -> Vec<String> {
    let mut names: Vec<String> = KEPT.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    names
}

/// An HTTP/2 (h2c) upstream that keeps every request, trailers and all,
/// and answers `ok` with [`KEPT`] and every field of [`BARRED`] that
/// HTTP/2 can carry as trailers.
async fn h2_upstream() -> H2Recorder {
    H2Recorder::start(|_| {
        let h2_can_carry = BARRED
            .iter()
            .filter(|(n, _)| !matches!(*n, "te" | "keep-alive"))
            .copied()
            .chain(KEPT.iter().copied())
            .collect::<Vec<_>>();
        let frames = Frames::new(vec![
            Frame::data(Bytes::from_static(b"ok")),
            Frame::trailers(trailer_map(&h2_can_carry)),
        ]);
        // A `Trailer` field naming every one, so that an
        // HTTP/1.1 client that accepts trailers is sent them.
        let named: Vec<&str> = h2_can_carry.iter().map(|(n, _)| *n).collect();
        let mut response = Response::new(frames);
        let named = HeaderValue::from_str(&named.join(", ")).unwrap();
        response.headers_mut().insert("trailer", named);
        response
    })
    .await
}

/// GET `uri` from the gateway at `public` over HTTP/2: the head fields
/// and the trailers of its `200`.
async fn h2_get(public: SocketAddr, uri: &str) -> (HeaderMap, HeaderMap) {
    let mut sender = support::h2c_sender(public).await;
    let request = Request::get(uri).body(Frames::new(vec![])).unwrap();
    let response = sender.send_request(request).await.expect("an answer over HTTP/2");
    assert_eq!(response.status(), 200);
    let (head, body) = response.into_parts();
    let collected = body.collect().await.expect("a whole body");
    (head.headers, collected.trailers().cloned().expect("trailers arrive"))
}

/// The names the `Trailer` fields of `headers` list, lowercase and sorted.
fn listed_in_trailer(headers: &HeaderMap) -> Vec<String> {
    let values = headers.get_all("trailer").iter().map(|v| v.to_str().unwrap().to_owned());
    listed(values)
}

/// The names the `Trailer` fields of the first response head in an
/// HTTP/1.1 `response` list, lowercase and sorted.
fn listed_in_trailer_line(response: &str) -> Vec<String> {
    let (head, _) = response.split_once("\r\n\r\n").expect("a whole head");
    let values = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("trailer"))
        .map(|(_, value)| value.to_owned());
    listed(values)
}

fn listed(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = values
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names
}

/// Listener `public` that generates request ids, and pool `h2` (HTTP/2)
/// for every path.
fn spec(h2: SocketAddr) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
    request_id: generate
pools:
  - name: h2
    protocol: http2
    endpoints: [{{ address: \"{h2}\" }}]
routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: h2
"
    )
}

/// The request trailers an HTTP/2 pool receives: from a chunked HTTP/1.1
/// body and from an HTTP/2 client's trailers alike, only the fields that
/// may travel there; the forged request id in particular never arrives
/// beside the gateway's. A request's `Trailer` field is not passed on at
/// all, so it cannot announce a dropped field to the pool either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_reach_an_http2_pool_without_barred_fields() {
    let h2 = h2_upstream().await;
    let gateway = Gateway::start(&spec(h2.address));
    let public = gateway.addr("public");

    let fields: String = BARRED
        .iter()
        .chain(KEPT)
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .chain(["connection: x-named\r\nx-named: 1\r\n".to_owned()])
        .collect();
    let request = format!(
        "POST /chunked HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\
         Trailer: authorization, x-checksum\r\nTransfer-Encoding: chunked\r\n\r\n\
         2\r\nhi\r\n0\r\n{fields}\r\n"
    );
    let response = raw(public, request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "{response}");

    // The same from an HTTP/2 client.
    let mut sender = support::h2c_sender(public).await;
    let h2_can_carry: Vec<(&str, &str)> = BARRED
        .iter()
        .filter(|(n, _)| !matches!(*n, "te" | "keep-alive"))
        .chain(KEPT)
        .copied()
        .collect();
    let body = Frames::new(vec![
        Frame::data(Bytes::from_static(b"hi")),
        Frame::trailers(trailer_map(&h2_can_carry)),
    ]);
    let request = Request::post("http://api.example.test/h2")
        .header("trailer", "authorization, x-checksum")
        .body(body)
        .unwrap();
    let response = sender.send_request(request).await.expect("an answer over HTTP/2");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();

    for path in ["/chunked", "/h2"] {
        let trailers = h2.request(path).trailers.expect("the kept trailers arrive");
        assert_eq!(names(&trailers), kept_names(), "{path}: {trailers:?}");
        let headers = h2.request(path).headers;
        assert!(!headers.contains_key("trailer"), "{path}: {headers:?}");
    }
}

/// The response trailers of an HTTP/2 upstream reach an HTTP/2 client,
/// and an HTTP/1.1 client that sent `TE: trailers`, only without the
/// barred fields, and the response's `Trailer` field names only those
/// that arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_reach_clients_without_barred_fields() {
    let h2 = h2_upstream().await;
    let gateway = Gateway::start(&spec(h2.address));
    let public = gateway.addr("public");

    let (head, trailers) = h2_get(public, "http://api.example.test/get").await;
    assert_eq!(names(&trailers), kept_names(), "{trailers:?}");
    assert_eq!(listed_in_trailer(&head), kept_names(), "{head:?}");

    // An HTTP/1.1 client that asked for trailers; the upstream's `Trailer`
    // field would name them all, were it sent.
    let response = raw(
        public,
        b"GET /get HTTP/1.1\r\nHost: api.example.test\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&response), [200], "{response}");
    assert_eq!(listed_in_trailer_line(&response), kept_names(), "{response}");
    let (_, section) = response.rsplit_once("\r\n0\r\n").expect("a chunked body");
    let mut sent: Vec<String> = section
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    sent.sort();
    assert_eq!(sent, kept_names(), "{response}");
}

/// A field the request head's `Connection` names is hop-by-hop for the
/// whole message (RFC 9110, section 7.6.1): sent again in the trailer
/// section, it still stays on the client's hop and never reaches an
/// HTTP/2 pool, whatever its case there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_lose_the_fields_the_request_head_names_in_connection() {
    let h2 = h2_upstream().await;
    let gateway = Gateway::start(&spec(h2.address));
    let public = gateway.addr("public");

    let request = "POST /named HTTP/1.1\r\nHost: api.example.test\r\n\
                   Connection: close, X-Hop, x-other-hop\r\nTransfer-Encoding: chunked\r\n\r\n\
                   2\r\nhi\r\n0\r\nx-hop: 1\r\nX-Other-Hop: 2\r\n\
                   grpc-status: 0\r\nx-checksum: abc\r\n\r\n";
    let response = raw(public, request.as_bytes()).await;
    assert_eq!(statuses(&response), [200], "{response}");

    let trailers = h2.request("/named").trailers.expect("the kept trailers arrive");
    assert_eq!(names(&trailers), kept_names(), "{trailers:?}");
}

/// A gateway in front of an upstream that sends `response`, as it is, to
/// every request.
async fn answering(response: &'static [u8]) -> (ScriptedUpstream, Gateway) {
    let upstream = ScriptedUpstream::start(None, move |_| Answer::Send(response.to_vec())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    (upstream, gateway)
}

/// A field the response head's `Connection` names stays on the upstream's
/// hop when the upstream sends it again as a trailer field: neither an
/// HTTP/1.1 client that accepts trailers (served by either HTTP/1.1
/// server) nor an HTTP/2 client receives it, nor sees it in the
/// response's `Trailer` field, while the other trailer fields arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_lose_the_fields_the_response_head_names_in_connection() {
    let (_upstream, gateway) = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: X-Hop\r\n\
          Trailer: x-checksum, x-hop\r\n\r\n2\r\nok\r\n0\r\nx-checksum: abc\r\nx-hop: 1\r\n\r\n",
    )
    .await;
    let public = gateway.addr("public");

    for request in support::TAKING_TRAILERS {
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{response}");
        let lower = response.to_ascii_lowercase();
        assert!(lower.ends_with("\r\n2\r\nok\r\n0\r\nx-checksum: abc\r\n\r\n"), "{response}");
        assert_eq!(listed_in_trailer_line(&response), ["x-checksum"], "{response}");
    }

    let (head, trailers) = h2_get(public, "http://x.test/t").await;
    assert_eq!(names(&trailers), ["x-checksum"], "{trailers:?}");
    assert_eq!(listed_in_trailer(&head), ["x-checksum"], "{head:?}");
}

/// A response whose `Trailer` field names only fields that the gateway
/// drops from its trailers (barred ones, and one the head's `Connection`
/// names) reaches the client with no `Trailer` field at all, over either
/// HTTP/1.1 server and over HTTP/2; the trailer fields do not arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailer_field_naming_only_dropped_fields_is_not_sent() {
    let (_upstream, gateway) = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: X-Hop\r\n\
          Trailer: Set-Cookie, x-hop\r\nTrailer: content-type\r\n\r\n\
          2\r\nok\r\n0\r\nset-cookie: a=b\r\nx-hop: 1\r\ncontent-type: text/plain\r\n\r\n",
    )
    .await;
    let public = gateway.addr("public");

    for request in support::TAKING_TRAILERS {
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{response}");
        assert_eq!(listed_in_trailer_line(&response), Vec::<String>::new(), "{response}");
        assert!(response.ends_with("\r\n2\r\nok\r\n0\r\n\r\n"), "{response}");
    }

    let mut sender = support::h2c_sender(public).await;
    let request = Request::get("http://x.test/t").body(Frames::new(vec![])).unwrap();
    let response = sender.send_request(request).await.expect("an answer over HTTP/2");
    assert_eq!(response.status(), 200);
    let (head, body) = response.into_parts();
    assert!(!head.headers.contains_key("trailer"), "{head:?}");
    let collected = body.collect().await.expect("a whole body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert!(trailers.is_empty(), "{trailers:?}");
}

/// An HTTP/2 client's trailer field whose value is padded with whitespace
/// makes its request malformed (RFC 9113, section 8.2.1), as a padded
/// header field does: the request is refused, and the HTTP/2 pool never
/// receives the padded field, which an HTTP/1.1 reader would have trimmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_trailer_value_from_an_http2_client_goes_nowhere() {
    let h2 = h2_upstream().await;
    let gateway = Gateway::start(&spec(h2.address));
    let mut sender = support::h2c_sender(gateway.addr("public")).await;
    for value in ["padded ", "\tpadded"] {
        let body = Frames::new(vec![
            Frame::data(Bytes::from_static(b"abc")),
            Frame::trailers(trailer_map(&[("x-t", value), ("x-checksum", "abc")])),
        ]);
        let request = Request::post("http://api.example.test/h2").body(body).unwrap();
        match sender.send_request(request).await {
            Ok(response) => assert_eq!(response.status(), 400, "{value:?}"),
            // A reset stream refuses it as well.
            Err(error) => assert!(!error.is_closed(), "{value:?}: the connection went: {error}"),
        }
    }
    let request = Request::post("http://api.example.test/h2").body(Frames::new(vec![
        Frame::data(Bytes::from_static(b"abc")),
        Frame::trailers(trailer_map(&[("x-t", "plain")])),
    ]));
    let response = sender.send_request(request.unwrap()).await.expect("the connection serves on");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    // What reached the pool: the plain trailer, never a padded one.
    let values: Vec<Vec<u8>> = h2
        .seen()
        .iter()
        .filter_map(|r| r.trailers.as_ref()?.get("x-t").map(|v| v.as_bytes().to_vec()))
        .collect();
    assert_eq!(values, [b"plain".to_vec()]);
}
