//! A request's host must name a host: an empty name (`Host: :80`, `Host:`,
//! `GET http://:80/...`, `:authority: :80`) is refused with 400, and so is
//! an absolute-form target of a scheme other than `http` or `https`.

mod support;

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::h2raw;
use support::{raw, spec_with, statuses, Answer, Gateway, ScriptedUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_host_names_and_other_schemes_are_refused() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let public = gateway.addr("public");

    let refused = [
        ("/public/h", "Host: :80"),
        ("/public/h", "Host: :"),
        ("/public/h", "Host:"),
        ("/public/h", "Host:  "),
        ("/public/h", "Host: []:80"),
        ("http://:80/public/x", "Host: api.example.test"),
        ("http://:/public/x", "Host: api.example.test"),
        ("ftp://api.example.test/public/x", "Host: api.example.test"),
        ("ws://api.example.test/public/x", "Host: api.example.test"),
    ];
    for (target, host) in refused {
        // Without a body (the gateway's own server) and with one (hyper's).
        for body in ["", "Content-Length: 2\r\n\r\nhi"] {
            let end = if body.is_empty() { "\r\n" } else { "" };
            let request =
                format!("GET {target} HTTP/1.1\r\n{host}\r\nConnection: close\r\n{body}{end}");
            let response = raw(public, request.as_bytes()).await;
            assert_eq!(statuses(&response), [400], "{request:?}: {response}");
        }
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    // What is still fine.
    for (target, host) in [
        ("/ok/1", "Host: api.example.test:80"),
        ("HTTP://api.example.test/ok/2", "Host: x.test"),
        ("https://api.example.test:8443/ok/3", "Host: x.test"),
        ("/ok/4", "Host: [::1]:80"),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\n{host}\r\nConnection: close\r\n\r\n");
        let response = raw(public, request.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{request:?}: {response}");
    }

    // HTTP/2: `:authority: :80`, and a `host` field that names no host.
    for (block, what) in [
        (get_with_authority("/public/h2", ":80"), ":authority :80"),
        (h2raw::get_with_host_field("/public/h2", ":80"), "host :80"),
    ] {
        let mut stream = TcpStream::connect(public).await.unwrap();
        stream.write_all(&h2raw::preface(&[])).await.unwrap();
        let headers =
            h2raw::frame(h2raw::HEADERS, h2raw::END_STREAM | h2raw::END_HEADERS, 1, &block);
        stream.write_all(&headers).await.unwrap();
        let status = loop {
            let Some(frame) = h2raw::next(&mut stream, Duration::from_secs(5)).await else {
                panic!("{what}: no response");
            };
            match (frame.kind, frame.stream) {
                (h2raw::HEADERS, 1) => break h2raw::status(&frame.payload),
                (h2raw::SETTINGS, 0) if frame.flags & h2raw::ACK == 0 => {
                    let ack = h2raw::frame(h2raw::SETTINGS, h2raw::ACK, 0, &[]);
                    stream.write_all(&ack).await.unwrap();
                }
                _ => {}
            }
        };
        assert_eq!(status, Some(400), "{what}");
    }
    assert!(upstream.requests().iter().all(|r| !r.target().contains("/public/")));
}

/// A GET of `path` with `:authority` `authority`, in HPACK (`:authority`
/// is entry 1 of the static table), nothing added to the table.
fn get_with_authority(path: &str, authority: &str) -> Vec<u8> {
    let mut fields = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    fields.extend(path.as_bytes());
    fields.extend([0x01, u8::try_from(authority.len()).unwrap()]);
    fields.extend(authority.as_bytes());
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_without_a_host_is_told_so_in_http2_terms() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let gateway = Gateway::start(&spec_with("", &[upstream.address], "", ""));
    let mut stream = TcpStream::connect(gateway.addr("public")).await.unwrap();
    stream.write_all(&h2raw::preface(&[])).await.unwrap();
    // GET, http, `:path`, and neither `:authority` nor `host`.
    let path = "/public/x";
    let mut block = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    block.extend(path.as_bytes());
    let headers = h2raw::frame(h2raw::HEADERS, h2raw::END_STREAM | h2raw::END_HEADERS, 1, &block);
    stream.write_all(&headers).await.unwrap();
    let (mut status, mut body) = (None, Vec::new());
    while let Some(frame) = h2raw::next(&mut stream, Duration::from_secs(5)).await {
        match (frame.kind, frame.stream) {
            (h2raw::HEADERS, 1) => status = h2raw::status(&frame.payload),
            (h2raw::DATA, 1) => {
                body.extend(&frame.payload);
                if frame.flags & h2raw::END_STREAM != 0 {
                    break;
                }
            }
            (h2raw::SETTINGS, 0) if frame.flags & h2raw::ACK == 0 => {
                let ack = h2raw::frame(h2raw::SETTINGS, h2raw::ACK, 0, &[]);
                stream.write_all(&ack).await.unwrap();
            }
            _ => {}
        }
    }
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, Some(400), "{body}");
    assert!(body.contains("HTTP/2 request without :authority or a Host header"), "{body}");
    assert!(upstream.requests().is_empty());
}
