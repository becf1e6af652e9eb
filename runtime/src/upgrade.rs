//! Protocol upgrades (WebSocket and the like) on HTTP/1.1 connections.
//!
//! A request asks for an upgrade with `Upgrade: PROTOCOL` and `Connection:
//! upgrade`. Both are hop-by-hop, so the gateway removes them like every
//! other, then puts them back for the upstream when the request asked for an
//! upgrade and its pool speaks HTTP/1.1 (HTTP/2 has no such header). The
//! connection becomes a tunnel only once the upstream has answered
//! `101 Switching Protocols`: hyper hands over both connections after the
//! 101 is written, and the gateway copies bytes both ways until either side
//! closes. When the upstream answers anything else, that answer is an
//! ordinary response and the bytes that follow on the client's connection
//! are read as new requests, framing checks and all (Pingora's
//! CVE-2026-2833 tunnelled them unchecked).
//!
//! Two rules keep a tunnel from carrying requests past the routes:
//! - the upstream is never offered HTTP itself (`h2c`, `h2`, `HTTP/...`) or
//!   `TLS/...` (RFC 2817), whose tunnel would carry requests for any path of
//!   the service; those offers are dropped from `Upgrade`, and a request that
//!   offered nothing else is no upgrade request at all;
//! - a 101 must name in its `Upgrade` only protocols the request offered
//!   (RFC 9110, section 7.8); any other 101, and any to a request that
//!   asked for no upgrade, is refused with 502 and its connection closed,
//!   and counts against the endpoint as a malformed head does (see
//!   [`check_switch`], which the proxy applies before it judges a try).
//!
//! A tunnel keeps its place in the listener's connection limit and in the
//! drain, so shutdown waits for it up to the drain timeout and no longer.

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use sluice_compiler::spec::Protocol;

use crate::gateway::ConnectionHold;
use crate::stall::StallingWriter;

/// The client's side of a requested upgrade.
pub(crate) struct Requested {
    protocol: HeaderValue,
    client: OnUpgrade,
    hold: Option<ConnectionHold>,
}

impl Requested {
    /// Take the upgrade a request asks for, when it asks for one that the
    /// pool can pass on (see the module doc).
    pub(crate) fn take<B>(request: &mut Request<B>, pool: Protocol) -> Option<Requested> {
        if request.version() != Version::HTTP_11 || pool != Protocol::Http1 {
            return None;
        }
        if !connection_names_upgrade(request.headers()) {
            return None;
        }
        let protocol = offered(request.headers())?;
        let hold = request.extensions_mut().remove::<ConnectionHold>();
        let client = hyper::upgrade::on(&mut *request);
        Some(Requested { protocol, client, hold })
    }

    /// Put the upgrade headers back, after the hop-by-hop headers went.
    pub(crate) fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, self.protocol.clone());
    }

    /// Given the upstream's response (its hop-by-hop headers not yet
    /// removed), start the tunnel if it switched protocols. Returns the
    /// `Upgrade` value to send the client, when it did, and `Err` when it
    /// switched to a protocol the request did not offer (or named none),
    /// so that no tunnel opens. The tunnel ends when the upstream takes
    /// none of what it is sent for `stall` (the pool's stall timeout); the
    /// client's side has the listener's clock already.
    pub(crate) fn on_response<B>(
        self,
        response: &mut Response<B>,
        stall: Duration,
    ) -> Result<Option<HeaderValue>, UnofferedProtocol> {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(None);
        }
        let protocol = match check_switch(Some(&self.protocol), response.headers()) {
            Ok(protocol) => protocol.clone(),
            Err(_) => return Err(UnofferedProtocol),
        };
        let upstream = hyper::upgrade::on(&mut *response);
        let (client, hold) = (self.client, self.hold);
        tokio::spawn(async move {
            let _hold = hold;
            let (client, upstream) = match tokio::join!(client, upstream) {
                (Ok(client), Ok(upstream)) => (client, upstream),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::debug!(%error, "upgrade did not complete");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = StallingWriter::new(TokioIo::new(upstream), stall);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((sent, received)) => tracing::debug!(sent, received, "tunnel closed"),
                Err(error) => tracing::debug!(%error, "tunnel ended with an error"),
            }
        });
        Ok(Some(protocol))
    }
}

/// A 101 that names a protocol the request did not offer, or none.
#[derive(Debug)]
pub(crate) struct UnofferedProtocol;

/// Why a 101 cannot be passed on: the upstream's error, as much as a
/// malformed response head would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadSwitch {
    /// The request asked for no upgrade (RFC 9110, section 15.2.2).
    Unasked,
    /// It switched to a protocol the request did not offer, or named none
    /// or several lines of them (RFC 9110, section 7.8).
    Unoffered,
}

/// Whether a 101 with the fields `answer` may switch the connection of a
/// request that offered `offer` (its `Upgrade` as sent upstream; `None`
/// when it asked for no upgrade): the protocol it switches to, or why not.
pub(crate) fn check_switch<'a>(
    offer: Option<&HeaderValue>,
    answer: &'a HeaderMap,
) -> Result<&'a HeaderValue, BadSwitch> {
    let offer = offer.ok_or(BadSwitch::Unasked)?;
    let mut lines = answer.get_all(UPGRADE).iter();
    match (lines.next(), lines.next()) {
        (Some(protocol), None) if switches_to_offered(offer.as_bytes(), protocol.as_bytes()) => {
            Ok(protocol)
        }
        _ => Err(BadSwitch::Unoffered),
    }
}

/// The protocols of a request's `Upgrade` fields that the gateway passes
/// on, as one value: every offer but HTTP itself and TLS (see the module
/// doc); `None` when none is left. A value with nothing to drop is kept as
/// it is, without a copy.
fn offered(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut lines = headers.get_all(UPGRADE).iter();
    let first = lines.next()?;
    let single = lines.next().is_none();
    let all = || headers.get_all(UPGRADE).iter().flat_map(|line| protocols(line.as_bytes()));
    if single && all().all(|protocol| !carries_requests(protocol)) {
        return all().next().is_some().then(|| first.clone());
    }
    let kept: Vec<&[u8]> = all().filter(|protocol| !carries_requests(protocol)).collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&kept.join(&b", "[..])).ok()
}

/// The protocols of an `Upgrade` field line, without blanks and empty items.
fn protocols(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|p| !p.is_empty())
}

/// The name and version (if any) of a protocol, `name/version`.
fn name_and_version(protocol: &[u8]) -> (&[u8], Option<&[u8]>) {
    match protocol.iter().position(|&b| b == b'/') {
        Some(slash) => (protocol[..slash].trim_ascii(), Some(protocol[slash + 1..].trim_ascii())),
        None => (protocol, None),
    }
}

/// Whether switching to `protocol` would let the tunnel carry HTTP requests
/// that no route looked at: HTTP in any version (`h2c`, `h2`, `HTTP/2.0`),
/// or TLS, which carries HTTP once set up (RFC 2817).
fn carries_requests(protocol: &[u8]) -> bool {
    let (name, _) = name_and_version(protocol);
    [&b"h2c"[..], b"h2", b"http", b"tls"].iter().any(|http| name.eq_ignore_ascii_case(http))
}

/// Whether every protocol a 101's `Upgrade` names is one the request
/// offered (RFC 9110, section 7.8), and it names at least one. Names compare
/// without regard to case (`WebSocket` is `websocket`); so do versions, and
/// an offer or answer without a version matches any version of its name.
fn switches_to_offered(offer: &[u8], answer: &[u8]) -> bool {
    let mut named = protocols(answer).peekable();
    named.peek().is_some()
        && named.all(|chosen| {
            let (name, version) = name_and_version(chosen);
            protocols(offer).map(name_and_version).any(|(offered, offered_version)| {
                offered.eq_ignore_ascii_case(name)
                    && match (version, offered_version) {
                        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                        _ => true,
                    }
            })
        })
}

/// Put `Connection: upgrade` and `Upgrade` on a 101 response after the
/// hop-by-hop headers went.
pub(crate) fn restore_response(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

fn connection_names_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(lines: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(UPGRADE, HeaderValue::from_str(line).unwrap());
        }
        offered(&headers).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn http_and_tls_are_never_offered() {
        assert_eq!(offer(&["websocket"]).as_deref(), Some("websocket"));
        assert_eq!(offer(&["h2c"]), None);
        assert_eq!(offer(&[" H2C , HTTP/2.0,tls/1.2, h2"]), None);
        assert_eq!(offer(&["h2c, websocket"]).as_deref(), Some("websocket"));
        assert_eq!(offer(&["h2c", "WebSocket/13, x"]).as_deref(), Some("WebSocket/13, x"));
        assert_eq!(offer(&["a", "b"]).as_deref(), Some("a, b"));
        assert_eq!(offer(&[""]), None);
        assert_eq!(offer(&[" , "]), None);
        assert_eq!(offer(&[]), None);
    }

    #[test]
    fn a_101_may_switch_only_to_what_was_offered() {
        for (offer, answer) in [
            ("websocket", "websocket"),
            ("websocket", "WebSocket"),
            ("WEBSOCKET/13", "websocket"),
            ("websocket", "websocket/13"),
            ("foo/2, websocket", "Foo/2"),
            ("a, b", "b, a"),
        ] {
            assert!(switches_to_offered(offer.as_bytes(), answer.as_bytes()), "{offer} {answer}");
        }
        for (offer, answer) in [
            ("websocket", "h2c"),
            ("websocket", ""),
            ("websocket", " , "),
            ("websocket", "websocket, h2c"),
            ("foo/2", "foo/3"),
            ("websocketx", "websocket"),
            ("web", "websocket"),
        ] {
            assert!(!switches_to_offered(offer.as_bytes(), answer.as_bytes()), "{offer} {answer}");
        }
    }
}
