//! Why a request could not be proxied, which side is to blame, and the
//! response the client gets for it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::http1::HeadLimit;
use crate::upstream::SendError;

/// The methods a route without a method condition serves, as `Allow`
/// lists them: every method RFC 9110 defines but TRACE, which the gateway
/// refuses, and CONNECT, which no route serves.
pub(crate) const ALLOWED_BY_DEFAULT: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

/// The party whose failure ended a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something the gateway cannot serve, or went away.
    Client,
    /// The upstream endpoint could not be reached or misbehaved.
    Upstream,
    /// The gateway itself, for example a pool with nothing to send to.
    Gateway,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Gateway => "gateway",
        }
    }
}

/// A request the gateway answered itself instead of with an upstream response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("bad request: {reason}")]
    BadRequest { reason: &'static str },
    /// More header fields than the listener's `max_headers`. Answered 431
    /// with no body, as the HTTP/1.1 parser answers such a head.
    #[error("the request has more header fields than the listener's limit of {limit}")]
    TooManyFields { limit: usize },
    /// A request body in a transfer coding the gateway does not implement
    /// (RFC 9112, section 6.1, asks for 501); never forwarded.
    #[error("the request's Transfer-Encoding names a coding other than chunked, which this gateway does not implement; send the body chunked only, or with Content-Length")]
    UnsupportedCoding,
    /// A TRACE request on a route that does not name TRACE among its
    /// methods: answered 405, as the gateway refuses TRACE unless asked to
    /// pass it on (see [`crate::proxy`]).
    #[error(
        "TRACE is not served here: its answer would reflect the request's cookies and credentials"
    )]
    TraceRefused,
    #[error("no route matches {method} {path} on listener {listener}")]
    NoRoute { method: String, path: String, listener: String },
    #[error("pool {pool} has no endpoint to send to")]
    NoEndpoint { pool: String },
    #[error("pool {pool}: {rejection}")]
    Overloaded { pool: String, rejection: sluice_traffic::Rejection },
    #[error("upstream {endpoint} unreachable: {source}")]
    Connect { endpoint: SocketAddr, source: SendError },
    #[error("upstream {endpoint} failed before sending response headers: {source}")]
    Upstream { endpoint: SocketAddr, source: SendError },
    /// The upstream's response head went over a limit of the gateway's
    /// client (see [`HeadLimit`]); none of it is passed on.
    #[error("upstream {endpoint} sent a response head too large to pass on ({limit})")]
    UpstreamHeadTooLarge { endpoint: SocketAddr, limit: HeadLimit },
    #[error("client request body failed while sending it to upstream {endpoint}: {source}")]
    ClientBody { endpoint: SocketAddr, source: SendError },
    #[error("client sent no more of its request body for {limit:?}, the listener's stall_timeout")]
    ClientStalled { limit: Duration },
    #[error("upstream {endpoint} sent no response headers within {timeout:?}")]
    Timeout { endpoint: SocketAddr, timeout: Duration },
    /// Every HTTP/2 connection to the endpoint was at the limit of streams
    /// the endpoint set, no other could be opened, and no stream became
    /// free within the try's time: the request was never sent.
    #[error("upstream {endpoint} had no free stream within {waited:?}: its HTTP/2 connections were all at the limit of concurrent streams it set, and no other could be opened; the request was not sent")]
    Busy { endpoint: SocketAddr, waited: Duration },
    /// The route's (or the try's) time ran out while the client was still
    /// sending its request body: the client's slowness, not the endpoint's.
    #[error("the client was still sending its request body to upstream {endpoint} when the time its try had ({timeout:?}, the per-try timeout or what was left of the route's) ran out")]
    ClientTooSlow { endpoint: SocketAddr, timeout: Duration },
    #[error("request body is larger than the route's limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    /// The upstream switched protocols (101) on a request that asked for no
    /// upgrade, which RFC 9110 (section 15.2.2) forbids; what follows on its
    /// connection is not HTTP and is not passed on.
    #[error("upstream {endpoint} switched protocols on a request that asked for no upgrade")]
    UnaskedUpgrade { endpoint: SocketAddr },
    /// The upstream switched protocols (101) to a protocol the request did
    /// not offer, or named none (RFC 9110, section 7.8); no tunnel opens.
    #[error("upstream {endpoint} switched to a protocol the request did not offer")]
    UnofferedUpgrade { endpoint: SocketAddr },
}

impl ProxyError {
    /// Classify a failure of the upstream client.
    pub(crate) fn from_client(endpoint: SocketAddr, source: SendError) -> Self {
        if source.is_connect() {
            return ProxyError::Connect { endpoint, source };
        }
        if let Some(limit) = source.client_stalled() {
            return ProxyError::ClientStalled { limit };
        }
        if let Some(limit) = source.head_too_large() {
            return ProxyError::UpstreamHeadTooLarge { endpoint, limit };
        }
        // A failing request body is the client's doing (it stopped sending
        // or sent a malformed chunk); hyper reports it as a user error.
        if source.is_client_body_error() {
            ProxyError::ClientBody { endpoint, source }
        } else {
            ProxyError::Upstream { endpoint, source }
        }
    }

    /// Which side failed.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::BadRequest { .. }
            | ProxyError::TooManyFields { .. }
            | ProxyError::UnsupportedCoding
            | ProxyError::TraceRefused
            | ProxyError::NoRoute { .. }
            | ProxyError::ClientBody { .. }
            | ProxyError::ClientStalled { .. }
            | ProxyError::ClientTooSlow { .. }
            | ProxyError::BodyTooLarge { .. } => Side::Client,
            ProxyError::NoEndpoint { .. } | ProxyError::Overloaded { .. } => Side::Gateway,
            ProxyError::Busy { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamHeadTooLarge { .. }
            | ProxyError::UnaskedUpgrade { .. }
            | ProxyError::UnofferedUpgrade { .. }
            | ProxyError::Timeout { .. } => Side::Upstream,
        }
    }

    /// Whether the upstream may have acted on the request, so that sending
    /// it again could apply it twice.
    pub fn retry_safe(&self) -> bool {
        match self {
            ProxyError::BadRequest { .. }
            | ProxyError::TooManyFields { .. }
            | ProxyError::UnsupportedCoding
            | ProxyError::TraceRefused
            | ProxyError::NoRoute { .. }
            | ProxyError::NoEndpoint { .. }
            | ProxyError::Overloaded { .. }
            | ProxyError::Busy { .. }
            | ProxyError::Connect { .. } => true,
            // Part of an over-long body may have reached the upstream.
            ProxyError::Upstream { .. }
            | ProxyError::UpstreamHeadTooLarge { .. }
            | ProxyError::UnaskedUpgrade { .. }
            | ProxyError::UnofferedUpgrade { .. }
            | ProxyError::ClientBody { .. }
            | ProxyError::ClientStalled { .. }
            | ProxyError::ClientTooSlow { .. }
            | ProxyError::Timeout { .. }
            | ProxyError::BodyTooLarge { .. } => false,
        }
    }

    /// Whether the client went away mid-body, so that the answer the
    /// gateway writes most likely reaches no one (logged as 499).
    pub fn client_left(&self) -> bool {
        matches!(self, ProxyError::ClientBody { source, .. } if source.client_left())
    }

    /// The status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest { .. } | ProxyError::ClientBody { .. } => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
            ProxyError::TooManyFields { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::TraceRefused => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::ClientStalled { .. } | ProxyError::ClientTooSlow { .. } => {
                StatusCode::REQUEST_TIMEOUT
            }
            ProxyError::NoEndpoint { .. }
            | ProxyError::Overloaded { .. }
            | ProxyError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamHeadTooLarge { .. }
            | ProxyError::UnaskedUpgrade { .. }
            | ProxyError::UnofferedUpgrade { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadRequest { .. } => "bad_request",
            ProxyError::UnsupportedCoding => "unsupported_transfer_coding",
            ProxyError::TooManyFields { .. } => "too_many_header_fields",
            ProxyError::NoRoute { .. } => "no_route",
            ProxyError::TraceRefused => "method_not_allowed",
            ProxyError::NoEndpoint { .. } => "no_endpoint",
            ProxyError::Overloaded { .. } => "pool_overloaded",
            ProxyError::Connect { .. } => "upstream_unreachable",
            ProxyError::Upstream { .. } => "upstream_failed",
            ProxyError::UpstreamHeadTooLarge { .. } => "upstream_head_too_large",
            ProxyError::ClientBody { .. } => "client_body_failed",
            ProxyError::ClientStalled { .. } | ProxyError::ClientTooSlow { .. } => "client_timeout",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::Busy { .. } => "upstream_busy",
            ProxyError::UnaskedUpgrade { .. } | ProxyError::UnofferedUpgrade { .. } => {
                "upstream_invalid_response"
            }
            ProxyError::BodyTooLarge { .. } => "body_too_large",
        }
    }

    /// The message for the client. Upstream details (addresses, socket
    /// errors) stay in the gateway's own logs.
    fn public_message(&self) -> String {
        match self {
            ProxyError::BadRequest { .. }
            | ProxyError::UnsupportedCoding
            | ProxyError::TooManyFields { .. }
            | ProxyError::TraceRefused
            | ProxyError::NoRoute { .. }
            | ProxyError::BodyTooLarge { .. } => self.to_string(),
            ProxyError::NoEndpoint { .. } => {
                "the service has no healthy endpoint available; try again later".into()
            }
            ProxyError::Overloaded { rejection, .. } => {
                format!("the service is overloaded: {rejection}; try again later")
            }
            ProxyError::Connect { .. } => "the upstream service could not be reached".into(),
            ProxyError::Upstream { .. } => "the upstream service failed to respond".into(),
            ProxyError::UpstreamHeadTooLarge { .. } => {
                "the upstream service sent a response head too large to pass on".into()
            }
            ProxyError::UnaskedUpgrade { .. } | ProxyError::UnofferedUpgrade { .. } => {
                "the upstream service sent a response that cannot be passed on".into()
            }
            ProxyError::ClientBody { .. } => "the request body could not be read".into(),
            ProxyError::ClientStalled { .. } | ProxyError::ClientTooSlow { .. } => {
                "the rest of the request body did not come in time".into()
            }
            ProxyError::Timeout { .. } => "the upstream service did not respond in time".into(),
            ProxyError::Busy { .. } => {
                "the upstream service is busy: no request slot became free in time; try again later"
                    .into()
            }
        }
    }

    /// The JSON response for this error:
    /// `{"error":"no_route","message":"no route matches GET /x on listener public"}`.
    pub fn response(&self) -> Response<Bytes> {
        if let ProxyError::TooManyFields { .. } = self {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = self.status();
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        let mut response = error_response(self.status(), self.code(), &self.public_message());
        if let ProxyError::TraceRefused = self {
            // A 405 lists the methods that are served (RFC 9110, section 15.5.6).
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(ALLOWED_BY_DEFAULT));
        }
        // The rest of such a request cannot be trusted to frame the next one,
        // or was never read.
        if matches!(
            self,
            ProxyError::BadRequest { .. }
                | ProxyError::UnsupportedCoding
                | ProxyError::ClientBody { .. }
                | ProxyError::ClientStalled { .. }
                | ProxyError::BodyTooLarge { .. }
        ) {
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// A small JSON error response.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Bytes> {
    let body = serde_json::to_vec(&ErrorBody { error: code, message })
        .expect("an error body holds only strings");
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
