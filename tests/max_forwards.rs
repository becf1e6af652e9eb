//! TRACE, OPTIONS and `Max-Forwards` (RFC 9110, sections 7.6.2, 9.3.7 and
//! 9.3.8): TRACE is refused unless a route names it, and a `Max-Forwards`
//! of 0 makes the gateway answer OPTIONS (and a TRACE it passes on)
//! itself, while a larger one is passed on one less.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};

use support::{raw, statuses, Answer, Gateway, ScriptedUpstream};

/// What `Allow` lists for a route without a method condition.
const ALLOWED: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

/// A spec whose routes all go to `upstream`: `/listed/...` for the methods
/// `listed`, and every other path for any method.
fn spec(upstream: &ScriptedUpstream, listed: &str) -> String {
    spec_for(&upstream.address.to_string(), listed)
}

/// [`spec`] with the pool's one endpoint at `address`.
fn spec_for(address: &str, listed: &str) -> String {
    format!(
        "version: 1
listeners:
  - name: public
    bind: \"127.0.0.1:0\"
pools:
  - name: backend
    endpoints: [{{ address: \"{address}\" }}]
routes:
  - {{ name: any, match: {{ path: \"/{{*rest}}\" }}, to: backend }}
  - {{ name: listed, match: {{ path: \"/listed/{{*rest}}\", methods: [{listed}] }}, to: backend }}
"
    )
}

/// `METHOD path` on a connection of its own, with `fields` (whole lines);
/// the raw response.
async fn ask(gateway: &Gateway, method: &str, path: &str, fields: &str) -> String {
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: x.test\r\n{fields}Connection: close\r\n\r\n");
    raw(gateway.addr("public"), request.as_bytes()).await
}

/// The value of field `name` in the head of a raw response.
fn field<'r>(response: &'r str, name: &str) -> Option<&'r str> {
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The status and `Allow` field of `METHOD path` over HTTP/2, with `fields`.
async fn ask_h2(
    gateway: &Gateway,
    method: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Option<String>) {
    let mut sender = support::h2c_sender::<Empty<Bytes>>(gateway.addr("public")).await;
    let mut request = Request::builder().method(method).uri(format!("http://x.test{path}"));
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    let response = sender.send_request(request.body(Empty::new()).unwrap()).await.unwrap();
    let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    let status = response.status();
    response.into_body().collect().await.expect("the whole body");
    (status, allow)
}

/// TRACE reflects the request back, cookies and credentials included, which
/// a script on another site could read (cross-site tracing): the gateway
/// answers it 405, with the methods it serves in `Allow`, whatever its
/// `Max-Forwards` and over either protocol, unless the route names TRACE.
/// Such a route passes it on, with `Max-Forwards` one less, and at 0 the
/// gateway answers it as its final recipient, with the request it got as
/// `message/http`, less the fields that carry credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_is_refused_unless_a_route_names_it() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec(&upstream, "GET, TRACE"));

    for fields in ["", "Max-Forwards: 0\r\n", "Max-Forwards: 5\r\n", "Max-Forwards: x\r\n"] {
        let response = ask(&gateway, "TRACE", "/open", fields).await;
        assert_eq!(statuses(&response), [405], "{fields:?}: {response}");
        assert_eq!(field(&response, "allow"), Some(ALLOWED), "{response}");
    }
    let (status, allow) = ask_h2(&gateway, "TRACE", "/open", &[]).await;
    assert_eq!((status, allow.as_deref()), (StatusCode::METHOD_NOT_ALLOWED, Some(ALLOWED)));
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    // A route that names TRACE passes it on.
    let response = ask(&gateway, "TRACE", "/listed/plain", "").await;
    assert_eq!(statuses(&response), [200], "{response}");
    let response = ask(&gateway, "TRACE", "/listed/hops", "Max-Forwards: 3\r\n").await;
    assert_eq!(statuses(&response), [200], "{response}");
    let requests = upstream.requests();
    let seen: Vec<_> = requests.iter().map(|r| (r.method(), r.target())).collect();
    assert_eq!(seen, [("TRACE", "/listed/plain"), ("TRACE", "/listed/hops")]);
    assert_eq!(requests[0].header("max-forwards"), None, "{}", requests[0].head);
    assert_eq!(requests[1].header("max-forwards"), Some("2"), "{}", requests[1].head);

    // At 0 the gateway is the last hop, and reflects what it got.
    let fields = "Max-Forwards: 0\r\nX-Probe: 1\r\nCookie: session=secret\r\n\
                  Authorization: Bearer secret\r\n";
    let response = ask(&gateway, "TRACE", "/listed/last?q=1", fields).await;
    assert_eq!(statuses(&response), [200], "{response}");
    assert_eq!(field(&response, "content-type"), Some("message/http"), "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    assert!(body.starts_with("TRACE /listed/last?q=1 HTTP/1.1\r\n"), "{body}");
    assert!(body.contains("\r\nx-probe: 1\r\n") && body.ends_with("\r\n\r\n"), "{body}");
    assert!(body.contains("max-forwards: 0\r\n"), "{body}");
    assert!(!body.contains("secret"), "{body}");
    assert_eq!(upstream.requests().len(), 2, "the last TRACE went on");
}

/// TRACE in another case is an extension method to HTTP, but an upstream
/// that folds case would reflect credentials all the same: refused with
/// 405 on every route, over either protocol, and never passed on. And
/// `OPTIONS *` with `Max-Forwards: 0` asks about the gateway itself, which
/// answers it; without one it is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_in_any_case_is_refused_and_options_star_at_0_is_answered() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec(&upstream, "GET, TRACE"));
    for (method, path) in [("trace", "/open"), ("Trace", "/listed/a"), ("tRACE", "/open")] {
        let response = ask(&gateway, method, path, "Cookie: session=secret\r\n").await;
        assert_eq!(statuses(&response), [405], "{method} {path}: {response}");
        assert!(!response.contains("secret"), "{response}");
    }
    let (status, _) = ask_h2(&gateway, "trace", "/open", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    let response = ask(&gateway, "OPTIONS", "*", "Max-Forwards: 0\r\n").await;
    assert_eq!(statuses(&response), [200], "{response}");
    assert_eq!(field(&response, "allow"), Some(ALLOWED), "{response}");
    for fields in ["", "Max-Forwards: 1\r\n", "Max-Forwards: 0\r\nMax-Forwards: 0\r\n"] {
        let response = ask(&gateway, "OPTIONS", "*", fields).await;
        assert_eq!(statuses(&response), [400], "{fields:?}: {response}");
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
}

/// OPTIONS with `Max-Forwards: 0` is the gateway's to answer: 200, with
/// the methods the matched route serves in `Allow` (for a route without a
/// method condition, every method but TRACE and CONNECT), over either
/// protocol. A larger value is passed on one less, a value that is not a
/// number is refused, and without one the request goes on as it came.
/// Other methods carry `Max-Forwards` through untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_with_max_forwards_0_is_answered_by_the_gateway() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec(&upstream, "GET, POST, OPTIONS"));

    for (path, allow) in [("/any", ALLOWED), ("/listed/x", "GET, POST, OPTIONS")] {
        let response = ask(&gateway, "OPTIONS", path, "Max-Forwards: 0\r\n").await;
        assert_eq!(statuses(&response), [200], "{path}: {response}");
        assert_eq!(field(&response, "allow"), Some(allow), "{path}: {response}");
        assert_eq!(field(&response, "content-length"), Some("0"), "{path}: {response}");
        let (status, allowed) = ask_h2(&gateway, "OPTIONS", path, &[("max-forwards", "0")]).await;
        assert_eq!((status, allowed.as_deref()), (StatusCode::OK, Some(allow)), "{path}");
    }
    for value in ["x", "-1", "1 2", "0x1", ""] {
        let response =
            ask(&gateway, "OPTIONS", "/any", &format!("Max-Forwards: {value}\r\n")).await;
        assert_eq!(statuses(&response), [400], "{value:?}: {response}");
    }
    let response = ask(&gateway, "OPTIONS", "/any", "Max-Forwards: 1\r\nMax-Forwards: 1\r\n").await;
    assert_eq!(statuses(&response), [400], "two values: {response}");
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    let passed = [
        ("OPTIONS", "/one", "Max-Forwards: 1\r\n", Some("0")),
        ("OPTIONS", "/ten", "Max-Forwards: 10\r\n", Some("9")),
        (
            "OPTIONS",
            "/huge",
            "Max-Forwards: 99999999999999999999999\r\n",
            Some("18446744073709551614"),
        ),
        ("OPTIONS", "/none", "", None),
        ("GET", "/get", "Max-Forwards: 0\r\n", Some("0")),
    ];
    for (method, path, fields, _) in passed {
        let response = ask(&gateway, method, path, fields).await;
        assert_eq!(statuses(&response), [200], "{method} {path}: {response}");
    }
    let requests = upstream.requests();
    for (request, (method, path, _, forwarded)) in requests.iter().zip(passed) {
        assert_eq!((request.method(), request.target()), (method, path));
        assert_eq!(request.header("max-forwards"), forwarded, "{}", request.head);
    }
    assert_eq!(requests.len(), passed.len());
}

/// `sluice explain` refuses TRACE where `serve` does, with the same rule:
/// a route that does not list TRACE matches it, and the answer is 405;
/// one that lists it explains as usual.
#[test]
fn explain_refuses_trace_where_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.yaml");
    let free = "127.0.0.1:9";
    std::fs::write(&path, spec_for(free, "TRACE, GET")).unwrap();
    let explain = |method: &str, url: &str| {
        let out = assert_cmd::Command::cargo_bin("sluice")
            .unwrap()
            .arg("explain")
            .arg(&path)
            .args([method, url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = explain("TRACE", "http://x.test/other");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("answers 405 to TRACE /other: route `any`"), "{text}");
    let (code, text) = explain("TRACE", "http://x.test/listed/a");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("route     listed"), "{text}");
    let (code, text) = explain("GET", "http://x.test/other");
    assert_eq!((code, text.starts_with("route     any")), (Some(0), true), "{text}");
}
