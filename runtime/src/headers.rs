//! Header rewriting between the client and the upstream.
//!
//! Hop-by-hop headers (RFC 9110, section 7.6.1) describe one connection, not
//! the message, so the gateway drops them in both directions: the fixed list
//! below and every header the `Connection` header names, from the head and
//! from any trailer section the message ends with. hyper then frames each
//! side's body itself (`Content-Length` or chunked).
//!
//! Towards the upstream the gateway sets the de facto `X-Forwarded-*` trio,
//! after the hop-by-hop headers are gone, so that `Connection:
//! X-Forwarded-For` cannot remove what the gateway adds. What the client sent
//! is believed only when the peer is in the listener's `trusted_proxies`:
//! - from a trusted peer, `X-Forwarded-For` gets the peer appended to the
//!   chain it sent, and its `X-Forwarded-Proto` and `X-Forwarded-Host` are
//!   kept (set as below when absent);
//! - from any other peer, `X-Forwarded-For` is replaced by the peer's IP,
//!   `X-Forwarded-Proto` by `http`, and `X-Forwarded-Host` by the `Host` the
//!   client asked for (removed when there is none).
//!
//! The standard `Forwarded` field (RFC 7239) carries the same facts, so it
//! follows the same trust: from a trusted peer it is passed on as sent, and
//! from any other peer it is removed (the gateway adds none of its own; the
//! `X-Forwarded-*` fields say what it knows).
//!
//! The `Host` header itself is passed through unchanged.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};

/// Headers that are hop-by-hop whatever `Connection` says.
static HOP_BY_HOP: [HeaderName; 10] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    hyper::header::TE,
    hyper::header::TRAILER,
    hyper::header::TRANSFER_ENCODING,
    hyper::header::UPGRADE,
    hyper::header::PROXY_AUTHENTICATE,
    hyper::header::PROXY_AUTHORIZATION,
    // The settings of an h2c upgrade, which the gateway never offers
    // upstream (see `crate::upgrade`); specific to a connection (RFC 7540,
    // section 3.2.1).
    HeaderName::from_static("http2-settings"),
];

/// Whether `name` is one of [`HOP_BY_HOP`], by its text, which is quicker
/// than comparing header names one by one.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_name(name.as_str())
}

/// [`is_hop_by_hop`] of a lowercase name.
fn is_hop_by_hop_name(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "http2-settings"
    )
}

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Remove hop-by-hop headers. `Host` survives even when `Connection` names
/// it, since routing and the upstream both depend on it.
///
/// Returns the fields `Connection` named (but those of the fixed list),
/// which stay hop-by-hop for the whole message: the same names in its
/// trailer section are removed too (see [`strip_trailer_fields`]).
///
/// Most messages carry none, so one pass over the names present decides
/// whether anything needs removing before any removal hashes a name.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) -> Vec<HeaderName> {
    strip(headers, false)
}

/// [`strip_hop_by_hop`] for a response, which keeps `Trailer`: it is not
/// hop-by-hop (RFC 9110, section 6.6.2), and it names the trailer fields
/// that an HTTP/1.1 client which sent `TE: trailers` receives; those the
/// trailer section will lose are taken out of it (see
/// [`prune_trailer_field`]).
pub(crate) fn strip_hop_by_hop_response(headers: &mut HeaderMap) -> Vec<HeaderName> {
    strip(headers, true)
}

fn strip(headers: &mut HeaderMap, keep_trailer: bool) -> Vec<HeaderName> {
    if !headers.keys().any(is_hop_by_hop) {
        return Vec::new();
    }
    let mut named = Vec::new();
    if headers.contains_key(CONNECTION) {
        named = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .filter(|name| *name != HOST)
            .collect();
        for name in &named {
            headers.remove(name);
        }
        // Those always hop-by-hop go from a trailer section anyway.
        named.retain(|name| !is_hop_by_hop(name));
    }
    for name in &HOP_BY_HOP {
        if !(keep_trailer && name == hyper::header::TRAILER) {
            headers.remove(name);
        }
    }
    if keep_trailer && headers.contains_key(hyper::header::TRAILER) {
        prune_trailer_field(headers, &named);
    }
    named
}

/// Remove from a head's `Trailer` field the names of the fields that
/// [`strip_trailer_fields`] takes out of its trailer section, given the
/// fields its `Connection` named (`named`), so that the field announces
/// only what may still arrive; with none left, the field goes. Tokens that
/// are no field name at all are left as sent. A field with nothing to
/// remove is left untouched.
fn prune_trailer_field(headers: &mut HeaderMap, named: &[HeaderName]) {
    let dropped = |token: &[u8]| {
        HeaderName::from_bytes(token.trim_ascii())
            .is_ok_and(|name| barred_from_trailers(&name) || named.contains(&name))
    };
    let values = headers.get_all(hyper::header::TRAILER);
    if !values.iter().flat_map(|v| v.as_bytes().split(|&b| b == b',')).any(dropped) {
        return;
    }
    let kept: Vec<&[u8]> = values
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty() && !dropped(token))
        .collect();
    // Pieces of a valid value joined by `, ` make a valid value; should
    // that ever fail, announcing nothing is the safe side.
    let value = (!kept.is_empty()).then(|| HeaderValue::from_bytes(&kept.join(&b", "[..])));
    match value {
        Some(Ok(value)) => {
            headers.insert(hyper::header::TRAILER, value);
        }
        _ => {
            headers.remove(hyper::header::TRAILER);
        }
    }
}

/// Whether a comma-separated field value holds `token`, in any case.
pub(crate) fn list_has(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Join several `Cookie` fields into one, `; `-separated, as HTTP/1.1 wants
/// and as RFC 9113 (section 8.2.3) asks when an HTTP/2 request, which may
/// split its cookies, goes on over HTTP/1.1; an upstream that reads only the
/// first field then sees every cookie the routing saw.
pub(crate) fn join_cookies(headers: &mut HeaderMap) {
    let cookie = hyper::header::COOKIE;
    if headers.get_all(&cookie).iter().nth(1).is_none() {
        return;
    }
    let parts: Vec<Vec<u8>> =
        headers.get_all(&cookie).iter().map(|v| v.as_bytes().to_vec()).collect();
    let joined = parts.join(&b"; "[..]);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(cookie, value);
    }
}

/// Leave one `Content-Length` field in a request's head when it has
/// several. A client may repeat the field with the same number (RFC 9110,
/// section 8.6, lets a recipient read that as the one number): hyper's
/// HTTP/1.1 server passes one copy on, but the HTTP/2 layer checks only
/// that the copies of `content-length` agree and passes them all, and a
/// recipient may not forward the field repeated; an HTTP/1.1 upstream
/// such as Node's refuses it. Returns `false`, leaving the map as it was,
/// when the copies are not all the same decimal number, which the layers
/// in front are to have refused already.
pub(crate) fn one_content_length(headers: &mut HeaderMap) -> bool {
    let mut values = headers.get_all(hyper::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else { return true };
    let length = crate::http1::parse_length(first.as_bytes());
    let mut repeated = false;
    for value in values {
        if length.is_none() || crate::http1::parse_length(value.as_bytes()) != length {
            return false;
        }
        repeated = true;
    }
    if repeated {
        let first = first.clone();
        headers.insert(hyper::header::CONTENT_LENGTH, first);
    }
    true
}

/// Whether the client said it accepts trailers (`TE: trailers`), which an
/// HTTP/2 upstream such as a gRPC service may require to hear.
pub(crate) fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(hyper::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("trailers"))
}

/// Remove from a trailer section (of a request or a response) the fields
/// that may not travel in one (RFC 9110, section 6.5.1), and those that the
/// gateway's own header rules govern, which a trailer must not be able to
/// set behind their back: hop-by-hop fields and those `Connection` names,
/// framing (`Content-Length`, `Transfer-Encoding`, `Trailer`), routing
/// (`Host`), request modifiers (`TE`, `Expect`, `Max-Forwards`, `Range`,
/// conditionals), authentication (`Authorization`, `Cookie`, `Set-Cookie`,
/// `WWW-Authenticate`), response control and `Content-*` metadata, the
/// gateway's request id, and `Forwarded` with the `X-Forwarded-*` trio.
/// (Pseudo-header fields cannot reach a map of fields at all.) Most
/// trailers, such as gRPC's `grpc-status`, are none of these and are kept.
///
/// `named` are the fields the message head's `Connection` named (what
/// [`strip_hop_by_hop`] returned for it): hop-by-hop for the whole
/// message, so a trailer section cannot carry them on either.
pub(crate) fn strip_trailer_fields(trailers: &mut HeaderMap, named: &[HeaderName]) {
    strip_hop_by_hop(trailers);
    for name in named {
        trailers.remove(name);
    }
    if !trailers.keys().any(barred_from_trailers) {
        return;
    }
    let barred: Vec<HeaderName> =
        trailers.keys().filter(|n| barred_from_trailers(n)).cloned().collect();
    for name in barred {
        trailers.remove(name);
    }
}

/// Whether a field is one that [`strip_trailer_fields`] removes, apart
/// from those `Connection` names.
fn barred_from_trailers(name: &HeaderName) -> bool {
    let name = name.as_str();
    is_hop_by_hop_name(name)
        || name.starts_with("if-")
        || name.starts_with("content-")
        || matches!(
            name,
            "host"
                | "authorization"
                | "www-authenticate"
                | "authentication-info"
                | "proxy-authentication-info"
                | "cookie"
                | "set-cookie"
                | "expect"
                | "max-forwards"
                | "range"
                | "cache-control"
                | "pragma"
                | "age"
                | "expires"
                | "date"
                | "location"
                | "retry-after"
                | "vary"
                | "x-request-id"
                | "forwarded"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
        )
}

/// Whether `peer` lies in one of the `(network, prefix length)` blocks.
pub(crate) fn is_trusted(blocks: &[(IpAddr, u8)], peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    blocks.iter().any(|&(network, prefix)| match (network, peer) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    })
}

/// A client address as the `X-Forwarded-For` value it adds, built once per
/// connection rather than once per request.
pub(crate) fn forwarded_value(client: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value")
}

/// Set the `X-Forwarded-*` headers for a request from the client whose
/// address [`forwarded_value`] gave as `client`; `trusted` says whether the
/// client is a trusted proxy (see the module doc).
pub(crate) fn add_forwarded(headers: &mut HeaderMap, client: &HeaderValue, trusted: bool) {
    // Room for the three fields at once: a map parsed to fit its fields
    // would otherwise grow, and rehash, more than once.
    headers.reserve(3);
    if !trusted {
        // `insert` replaces every earlier value of the name.
        headers.insert(X_FORWARDED_FOR.clone(), client.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
        match headers.get(HOST).cloned() {
            Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host),
            None => headers.remove(&X_FORWARDED_HOST),
        };
        return;
    }

    let mut chain: Vec<u8> = Vec::new();
    for hops in headers.get_all(&X_FORWARDED_FOR).iter().filter_map(hops) {
        chain.extend_from_slice(hops);
        chain.extend_from_slice(b", ");
    }
    let forwarded_for = if chain.is_empty() {
        client.clone()
    } else {
        chain.extend_from_slice(client.as_bytes());
        // Every part is a valid header value already, so this cannot fail;
        // fall back to the client address alone rather than trust that blindly.
        HeaderValue::from_bytes(&chain).unwrap_or_else(|_| client.clone())
    };
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);

    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(host) = headers.get(HOST).cloned() {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
    }
}

/// The hops an `X-Forwarded-For` field line lists, without the blanks and
/// commas at its ends (so `1.2.3.4,` adds no empty hop to the chain), or
/// `None` when it lists none.
fn hops(value: &HeaderValue) -> Option<&[u8]> {
    let blank = |b: &u8| b.is_ascii_whitespace() || *b == b',';
    let bytes = value.as_bytes();
    let start = bytes.iter().position(|b| !blank(b))?;
    let end = bytes.iter().rposition(|b| !blank(b))?;
    Some(&bytes[start..=end])
}

/// Write `headers` into `out` as HTTP/1.1 field lines, with the
/// `X-Forwarded-*` fields that [`add_forwarded`] would set, for a request
/// from `client` (trusted or not), without changing the map. Fields for
/// which `keep` says no are left out.
pub(crate) fn write_with_forwarded(
    headers: &HeaderMap,
    client: &HeaderValue,
    trusted: bool,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&HeaderName, &HeaderValue) -> bool,
) {
    let line = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    let mut host = None;
    let mut chain = Vec::new();
    let (mut has_proto, mut has_host) = (false, false);
    for (name, value) in headers {
        if *name == HOST {
            host = Some(value);
        } else if *name == X_FORWARDED_FOR {
            if let Some(hops) = hops(value).filter(|_| trusted) {
                chain.push(hops);
            }
            continue;
        } else if *name == X_FORWARDED_PROTO || *name == X_FORWARDED_HOST {
            if !trusted {
                continue;
            }
            has_proto |= *name == X_FORWARDED_PROTO;
            has_host |= *name == X_FORWARDED_HOST;
        }
        if keep(name, value) {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for earlier in chain {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !has_proto {
        line(out, b"x-forwarded-proto", b"http");
    }
    if let Some(host) = host.filter(|_| !has_host) {
        line(out, b"x-forwarded-host", host.as_bytes());
    }
}

/// Whether a field value begins or ends with whitespace (SP or HTAB), in
/// one pass over the fields. HTTP/1.1 parsers strip such whitespace as
/// optional; HTTP/2 has no optional whitespace, and such a value makes the
/// request malformed (RFC 9113, section 8.2.1). Routed as sent, `internal `
/// would miss a route that asks for `internal`, and reach an HTTP/1.1
/// service that reads it as `internal` all the same.
pub(crate) fn has_padded_value(headers: &HeaderMap) -> bool {
    let padding = |byte: Option<&u8>| matches!(byte, Some(b' ' | b'\t'));
    headers.values().any(|value| {
        let bytes = value.as_bytes();
        padding(bytes.first()) || padding(bytes.last())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    /// The fields written straight to an HTTP/1.1 upstream are those that
    /// `add_forwarded` puts in the map for the other paths.
    #[test]
    fn written_forwarded_fields_match_the_map() {
        let client = HeaderValue::from_static("192.0.2.7");
        let cases = [
            map(&[("host", "a.test"), ("accept", "*/*")]),
            map(&[("accept", "*/*")]),
            map(&[
                ("host", "a.test"),
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "5.6.7.8, 9.9.9.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "b.test"),
            ]),
            map(&[("host", "a.test"), ("x-forwarded-proto", "https")]),
            map(&[("x-forwarded-host", "b.test"), ("x-forwarded-for", "1.2.3.4")]),
            map(&[("x-forwarded-for", ""), ("x-forwarded-for", " , ")]),
            map(&[
                ("x-forwarded-for", ",1.2.3.4 ,"),
                ("x-forwarded-for", ""),
                ("x-forwarded-for", "5.6.7.8"),
            ]),
        ];
        for headers in cases {
            for trusted in [false, true] {
                let mut expected = headers.clone();
                add_forwarded(&mut expected, &client, trusted);
                let mut expected: Vec<(String, String)> = expected
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect();
                let mut out = Vec::new();
                write_with_forwarded(&headers, &client, trusted, &mut out, |_, _| true);
                let text = String::from_utf8(out).unwrap();
                let mut written: Vec<(String, String)> = text
                    .split_terminator("\r\n")
                    .map(|line| {
                        let (name, value) = line.split_once(": ").unwrap();
                        (name.to_owned(), value.to_owned())
                    })
                    .collect();
                expected.sort();
                written.sort();
                assert_eq!(written, expected, "trusted {trusted}: {headers:?}");
            }
        }
    }

    /// Blank lines and stray commas at the ends of a line add no empty hop.
    #[test]
    fn a_trusted_chain_has_no_empty_hops() {
        let client = HeaderValue::from_static("192.0.2.7");
        for (lines, want) in [
            (&[""][..], "192.0.2.7"),
            (&[" , ", "\t"][..], "192.0.2.7"),
            (&["1.2.3.4,", "", " 5.6.7.8, 9.9.9.9 "][..], "1.2.3.4, 5.6.7.8, 9.9.9.9, 192.0.2.7"),
        ] {
            let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("x-forwarded-for", *l)).collect();
            let mut headers = map(&pairs);
            add_forwarded(&mut headers, &client, true);
            let got: Vec<&HeaderValue> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
            assert_eq!(got, [want], "{lines:?}");
        }
    }

    #[test]
    fn the_quick_hop_by_hop_check_knows_every_listed_name() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["host", "accept", "x-forwarded-for", "content-length", "cookie", "tee"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
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
    fn a_response_keeps_trailer_unless_connection_names_it() {
        let fields = [("trailer", "x-checksum"), ("te", "trailers"), ("accept", "*/*")];
        let mut request = map(&fields);
        strip_hop_by_hop(&mut request);
        assert_eq!(request.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);

        let mut response = map(&fields);
        strip_hop_by_hop_response(&mut response);
        let mut names: Vec<&str> = response.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "trailer"]);

        let mut named = map(&[("connection", "trailer"), ("trailer", "x-checksum")]);
        strip_hop_by_hop_response(&mut named);
        assert!(named.is_empty(), "{named:?}");
    }

    #[test]
    fn forwarded_for_appends_the_client_to_every_earlier_hop() {
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
            ("host", "api.example.test:8080"),
        ]);
        add_forwarded(&mut headers, &forwarded_value("127.0.0.1".parse().unwrap()), true);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 198.51.100.2, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "api.example.test:8080");
    }

    #[test]
    fn an_untrusted_peer_has_every_forwarded_header_replaced() {
        let mut headers = map(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed.example.test"),
            ("host", "api.example.test"),
        ]);
        add_forwarded(&mut headers, &forwarded_value("203.0.113.7".parse().unwrap()), false);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "api.example.test");
    }

    #[test]
    fn a_trusted_peer_keeps_its_proto_and_host() {
        let mut headers = map(&[
            ("x-forwarded-for", "198.51.100.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example.test"),
            ("host", "internal.example.test"),
        ]);
        add_forwarded(&mut headers, &forwarded_value("10.0.0.5".parse().unwrap()), true);
        assert_eq!(headers["x-forwarded-for"], "198.51.100.9, 10.0.0.5");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "public.example.test");
    }

    #[test]
    fn a_request_without_host_gets_no_forwarded_host() {
        let mut headers = map(&[("x-forwarded-host", "spoofed.example.test")]);
        add_forwarded(&mut headers, &forwarded_value("::1".parse().unwrap()), false);
        assert_eq!(headers["x-forwarded-for"], "::1");
        assert!(!headers.contains_key("x-forwarded-host"));
    }

    #[test]
    fn trust_follows_cidr_blocks() {
        let blocks = [("10.0.0.0".parse().unwrap(), 8), ("fd00::".parse().unwrap(), 8)];
        for (peer, trusted) in [
            ("10.0.0.5", true),
            ("10.255.255.255", true),
            ("11.0.0.1", false),
            ("::ffff:10.1.2.3", true),
            ("fd12::1", true),
            ("fe80::1", false),
        ] {
            assert_eq!(is_trusted(&blocks, peer.parse().unwrap()), trusted, "{peer}");
        }
        assert!(is_trusted(&[("0.0.0.0".parse().unwrap(), 0)], "203.0.113.7".parse().unwrap()));
        assert!(!is_trusted(&[], "127.0.0.1".parse().unwrap()));
    }
}

#[cfg(test)]
mod trailer_tests {
    use super::tests::map;
    use super::*;

    #[test]
    fn trailers_keep_only_fields_that_may_travel_in_them() {
        let mut trailers = HeaderMap::new();
        for (name, value) in [
            ("grpc-status", "0"),
            ("x-checksum", "abc"),
            ("connection", "x-named"),
            ("x-named", "1"),
            ("x-head-named", "1"),
            ("authorization", "Bearer x"),
            ("cookie", "a=b"),
            ("set-cookie", "a=b"),
            ("x-request-id", "forged"),
            ("host", "admin.test"),
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("keep-alive", "1"),
            ("upgrade", "h2c"),
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-host", "a.test"),
            ("x-forwarded-proto", "https"),
            ("if-none-match", "*"),
            ("content-type", "text/plain"),
        ] {
            trailers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let mut head = map(&[("connection", "close, X-Head-Named"), ("accept", "*/*")]);
        let named = strip_hop_by_hop(&mut head);
        strip_trailer_fields(&mut trailers, &named);
        let mut kept: Vec<&str> = trailers.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["grpc-status", "x-checksum"]);
        assert!(HeaderName::from_bytes(b":path").is_err(), "no pseudo-header in a map");
    }

    /// A response's `Trailer` field names only the fields its trailer
    /// section may still carry, and goes when it names none of them.
    #[test]
    fn a_response_trailer_field_loses_the_names_its_trailers_lose() {
        let mut head = map(&[
            ("connection", "X-Hop"),
            ("trailer", "grpc-status, Content-Length, X-Hop"),
            ("trailer", ",x-checksum ,set-cookie"),
        ]);
        let named = strip_hop_by_hop_response(&mut head);
        assert_eq!(named, ["x-hop"]);
        let listed: Vec<&HeaderValue> = head.get_all("trailer").iter().collect();
        assert_eq!(listed, ["grpc-status, x-checksum"]);

        let mut none_left = map(&[("trailer", "content-type, x-hop"), ("connection", "x-hop")]);
        strip_hop_by_hop_response(&mut none_left);
        assert!(!none_left.contains_key("trailer"), "{none_left:?}");

        // Nothing to remove: the field stays as it came, odd tokens and all.
        let mut untouched = map(&[("trailer", "X-Checksum,,grpc-status, a b")]);
        strip_hop_by_hop_response(&mut untouched);
        assert_eq!(untouched["trailer"], "X-Checksum,,grpc-status, a b");
    }
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    #[test]
    fn several_cookie_fields_become_one() {
        let mut headers = HeaderMap::new();
        headers.append(hyper::header::COOKIE, HeaderValue::from_static("x=1"));
        headers.append(hyper::header::COOKIE, HeaderValue::from_static("role=admin"));
        join_cookies(&mut headers);
        let all: Vec<_> = headers.get_all(hyper::header::COOKIE).iter().collect();
        assert_eq!(all, ["x=1; role=admin"]);

        let mut one = HeaderMap::new();
        one.append(hyper::header::COOKIE, HeaderValue::from_static("a=b"));
        join_cookies(&mut one);
        assert_eq!(one.get(hyper::header::COOKIE).unwrap(), "a=b");
    }
}

#[cfg(test)]
mod length_tests {
    use super::tests::map;
    use super::*;

    #[test]
    fn a_repeated_content_length_becomes_one_field() {
        let mut twice = map(&[("content-length", "5"), ("accept", "*/*"), ("content-length", "5")]);
        assert!(one_content_length(&mut twice));
        let values: Vec<_> = twice.get_all("content-length").iter().collect();
        assert_eq!(values, ["5"]);
        assert!(twice.contains_key("accept"));

        for pairs in [&[("content-length", "5")][..], &[("accept", "*/*")][..]] {
            let mut once = map(pairs);
            assert!(one_content_length(&mut once));
            assert_eq!(once, map(pairs));
        }
        for (a, b) in [("5", "6"), ("x", "x"), ("5", "+5"), ("5", "5, 5")] {
            let mut differ = map(&[("content-length", a), ("content-length", b)]);
            assert!(!one_content_length(&mut differ), "{a} {b}");
            assert_eq!(differ.get_all("content-length").iter().count(), 2);
        }
    }
}
