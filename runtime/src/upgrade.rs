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
        let protocol = request.headers().get(UPGRADE)?.clone();
        if !connection_names_upgrade(request.headers()) {
            return None;
        }
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
    /// `Upgrade` value to send the client, when it did. The tunnel ends
    /// when the upstream takes none of what it is sent for `stall` (the
    /// pool's stall timeout); the client's side has the listener's clock
    /// already.
    pub(crate) fn on_response<B>(
        self,
        response: &mut Response<B>,
        stall: Duration,
    ) -> Option<HeaderValue> {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        let protocol = response.headers().get(UPGRADE).cloned().unwrap_or(self.protocol);
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
        Some(protocol)
    }
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
