//! Header rewriting between the client and the upstream.
//!
//! Hop-by-hop headers (RFC 9110, section 7.6.1) describe one connection, not
//! the message, so the gateway drops them in both directions: the fixed list
//! below and every header the `Connection` header names. hyper then frames
//! each side's body itself (`Content-Length` or chunked).
//!
//! Towards the upstream the gateway adds the de facto `X-Forwarded-*` trio:
//! `X-Forwarded-For` gets the client IP appended to whatever the client sent,
//! `X-Forwarded-Proto` is `http`, and `X-Forwarded-Host` is the `Host` the
//! client asked for. The `Host` header itself is passed through unchanged.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};

/// Headers that are hop-by-hop whatever `Connection` says.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Remove hop-by-hop headers. `Host` survives even when `Connection` names
/// it, since routing and the upstream both depend on it.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .filter(|name| *name != HOST)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Add the `X-Forwarded-*` headers for a request from `client`.
pub(crate) fn add_forwarded(headers: &mut HeaderMap, client: IpAddr) {
    let client = client.to_string();
    let mut chain: Vec<u8> = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if !chain.is_empty() {
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(value.as_bytes());
    }
    if !chain.is_empty() {
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(client.as_bytes());
    // Every part is a valid header value already, so this cannot fail; fall
    // back to the client address alone rather than trust that blindly.
    let forwarded_for = HeaderValue::from_bytes(&chain).unwrap_or_else(|_| {
        HeaderValue::from_str(&client).expect("an IP address is a valid header value")
    });
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);

    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    match headers.get(HOST).cloned() {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped() {
        let mut headers = map(&[
            ("connection", "close, x-secret, host"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-secret", "1"),
            ("host", "api.example.test"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "host"]);
    }

    #[test]
    fn forwarded_for_appends_the_client_to_every_earlier_hop() {
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
            ("host", "api.example.test:8080"),
        ]);
        add_forwarded(&mut headers, "127.0.0.1".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 198.51.100.2, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "api.example.test:8080");
    }

    #[test]
    fn a_request_without_host_gets_no_forwarded_host() {
        let mut headers = map(&[("x-forwarded-host", "spoofed.example.test")]);
        add_forwarded(&mut headers, "::1".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "::1");
        assert!(!headers.contains_key("x-forwarded-host"));
    }
}
