//! The request path: route, pick an endpoint, forward, stream back.
//!
//! For each request the proxy
//! 1. looks the route up in the plan's trie (listener, host, method, path);
//! 2. asks the route's pool [`Balancer`] for an endpoint and counts the
//!    request in flight there until its response body ends;
//! 3. rewrites the headers (see [`crate::headers`]) and sends the request to
//!    `http://ENDPOINT` with the path and query unchanged, over a pooled
//!    keep-alive connection, streaming the body;
//! 4. streams the upstream's response back, or answers itself with a small
//!    JSON error when there is no route (404), no endpoint (503), no upstream
//!    connection or response (502), or no response headers within the
//!    route's timeout (504).

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, HOST};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Method, Request, Response, Uri, Version};
use sluice_compiler::condition::RequestFields;
use sluice_compiler::normalize::normalize;
use sluice_compiler::plan::RoutePlan;
use sluice_compiler::spec::Sticky;
use sluice_compiler::{Balance, Captures, Plan};
use sluice_traffic::split;
use sluice_traffic::{Algorithm, Balancer};

use crate::access_log::AccessLogSender;
use crate::connection::InFlight;
use crate::error::ProxyError;
use crate::exchange::{Exchange, ResponseBody};
use crate::headers;
use crate::request_body::{BodySlot, RequestBody};
use crate::upstream::{self, PoolClient};

thread_local! {
    /// Route captures, reused by every request handled on this thread.
    static CAPTURES: RefCell<Captures> = RefCell::new(Captures::new());
}

/// Everything requests share: the plan, one balancer per pool, the upstream
/// connection pool and the access log.
pub(crate) struct Shared {
    pub(crate) plan: Arc<Plan>,
    /// Indexed like `plan.pools`.
    pub(crate) balancers: Vec<Balancer>,
    /// Indexed like `plan.pools[p].endpoints`.
    authorities: Vec<Vec<Authority>>,
    /// Indexed like `plan.pools`.
    clients: Vec<PoolClient>,
    pub(crate) log: AccessLogSender,
}

impl Shared {
    pub(crate) fn new(plan: Arc<Plan>, log: AccessLogSender) -> Shared {
        let balancers = plan
            .pools
            .iter()
            .map(|pool| {
                let weights: Vec<u32> = pool.endpoints.iter().map(|e| e.weight).collect();
                Balancer::new(algorithm(pool.balance), &weights)
            })
            .collect();
        let authorities = plan
            .pools
            .iter()
            .map(|pool| {
                pool.endpoints
                    .iter()
                    .map(|e| {
                        Authority::try_from(e.address.to_string())
                            .expect("a socket address is a valid URI authority")
                    })
                    .collect()
            })
            .collect();

        let clients = plan.pools.iter().map(PoolClient::new).collect();

        Shared { plan, balancers, authorities, clients, log }
    }
}

/// The traffic algorithm that implements a spec's balance setting.
pub(crate) fn algorithm(balance: Balance) -> Algorithm {
    match balance {
        Balance::RoundRobin => Algorithm::RoundRobin,
        Balance::WeightedRoundRobin => Algorithm::WeightedRoundRobin,
        Balance::Random => Algorithm::Random,
        Balance::LeastRequest => Algorithm::LeastRequest { choices: 2 },
    }
}

/// Serve one request that arrived on `listener` from `client`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    listener: usize,
    client: SocketAddr,
    request: Request<Incoming>,
    in_flight: InFlight,
    refused: Option<&'static str>,
) -> Result<Response<ResponseBody>, Infallible> {
    let mut exchange = Exchange::new(Arc::clone(&shared), listener, client, &request, in_flight);
    let forwarded = match refused {
        Some(reason) => Err(ProxyError::BadRequest { reason }),
        None => forward(&shared, &mut exchange, listener, client, request).await,
    };
    match forwarded {
        Ok(response) => {
            exchange.status = Some(response.status().as_u16());
            Ok(response.map(|body| ResponseBody::upstream(body, exchange)))
        }
        Err(error) => {
            tracing::debug!(
                side = error.side().as_str(),
                retry_safe = error.retry_safe(),
                %client,
                %error,
                "request answered by the gateway"
            );
            let response = error.response();
            exchange.status = Some(response.status().as_u16());
            Ok(response.map(|body| ResponseBody::local(body, exchange)))
        }
    }
}

async fn forward(
    shared: &Shared,
    exchange: &mut Exchange,
    listener: usize,
    client: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Incoming>, ProxyError> {
    let plan = &shared.plan;

    // Route.
    absolute_form_host(&mut request)?;
    let host = request_host(&request)?;
    let method = request.method().as_str().as_bytes();
    // Match and forward the same, normalised, path.
    let path = normalize(request.uri().path(), &plan.listeners[listener].normalize)
        .map_err(|e| ProxyError::BadRequest { reason: e.reason() })?;
    let fields = Fields { request: &request };
    let route = CAPTURES.with(|captures| {
        let captures = &mut captures.borrow_mut();
        plan.lookup_parts_with(listener, host, method, &path, &fields, captures)
    });
    let Some(route) = route.map(|r| r as usize) else {
        return Err(ProxyError::NoRoute {
            method: request.method().to_string(),
            path: path.into_owned(),
            listener: plan.listeners[listener].name.clone(),
        });
    };
    exchange.route = Some(route);

    // Refuse a body the route does not take, before anything is sent.
    let route_plan = &plan.routes[route];
    let limit = route_plan.max_body_size;
    if let Some(limit) = limit {
        if declared_length(request.headers()).is_some_and(|length| length > limit) {
            return Err(ProxyError::BodyTooLarge { limit });
        }
    }

    // Pick the pool (a side of the route's split, if it has one), then an
    // endpoint, and count the request there until the exchange ends.
    let pool = pick_pool(route_plan, &request, client);
    let endpoint = shared.balancers[pool]
        .pick(&mut rand::rng())
        .ok_or_else(|| ProxyError::NoEndpoint { pool: plan.pools[pool].name.clone() })?;
    exchange.begin(pool, endpoint);
    let address = plan.pools[pool].endpoints[endpoint].address;
    tracing::trace!(route = %route_plan.name, %address, "routed");

    // Rewrite the request for the upstream.
    let target = upstream_uri(&shared.authorities[pool][endpoint], &path, request.uri().query())?;
    let (mut head, body) = request.into_parts();
    headers::strip_hop_by_hop(&mut head.headers);
    let trusted = headers::is_trusted(&plan.listeners[listener].trusted_proxies, client.ip());
    headers::add_forwarded(&mut head.headers, client.ip(), trusted);
    let head = UpstreamHead { method: head.method, target, headers: head.headers };
    let slot = BodySlot::new(body, limit);

    let mut response = send(shared, exchange, pool, endpoint, &head, &slot).await?;
    headers::strip_hop_by_hop(response.headers_mut());
    Ok(response)
}

/// What every attempt sends upstream, apart from the body.
struct UpstreamHead {
    method: Method,
    /// `http://ENDPOINT/path?query` for the first endpoint picked.
    target: Uri,
    headers: HeaderMap,
}

impl UpstreamHead {
    fn request(&self, endpoint: &Authority, body: RequestBody) -> Request<RequestBody> {
        let mut target = self.target.clone().into_parts();
        target.authority = Some(endpoint.clone());
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = Uri::from_parts(target).unwrap_or_else(|_| self.target.clone());
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Send a request to `endpoint` of `pool`, moving to another endpoint when
/// the connection cannot be opened, and sending once more on a new
/// connection when a reused one was found closed (see [`crate::upstream`]).
/// The route's timeout covers every attempt together.
async fn send(
    shared: &Shared,
    exchange: &mut Exchange,
    pool: usize,
    mut endpoint: usize,
    head: &UpstreamHead,
    slot: &Arc<BodySlot>,
) -> Result<Response<Incoming>, ProxyError> {
    let plan = &shared.plan;
    let route_timeout = exchange.route.and_then(|r| plan.routes[r].timeout);
    let deadline = route_timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tried = vec![endpoint];
    let mut resent = false;

    loop {
        let address = plan.pools[pool].endpoints[endpoint].address;
        let client =
            if resent { &shared.clients[pool].fresh } else { &shared.clients[pool].pooled };
        let began = tokio::time::Instant::now();
        let sent =
            client.request(head.request(&shared.authorities[pool][endpoint], slot.attempt()));
        let result = match (deadline, route_timeout) {
            (Some(deadline), Some(timeout)) => tokio::time::timeout_at(deadline, sent)
                .await
                .map_err(|_| ProxyError::Timeout { endpoint: address, timeout })?,
            _ => sent.await,
        };
        let error = match result {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        if slot.was_too_large() {
            return Err(ProxyError::BodyTooLarge { limit: slot.limit().unwrap_or(0) });
        }

        // Nothing was sent: another endpoint may take it.
        if error.is_connect() && slot.is_whole() {
            if let Some(next) = untried(&shared.balancers[pool], &tried) {
                tracing::debug!(side = "upstream", %address, %error, "connect failed; trying another endpoint");
                exchange.switch(pool, next);
                tried.push(next);
                endpoint = next;
                continue;
            }
        }
        // A stale keep-alive connection: once more, on a new connection.
        let resend = !resent
            && is_idempotent(&head.method)
            && slot.is_whole()
            && upstream::on_reused_connection(&error, began)
            && upstream::closed_before_response(&error);
        if resend {
            tracing::debug!(side = "upstream", %address, %error, "reused connection closed; resending");
            resent = true;
            continue;
        }
        return Err(ProxyError::from_client(address, error));
    }
}

/// An endpoint the balancer would pick that is not in `tried`, if it offers
/// one within a few picks.
fn untried(balancer: &Balancer, tried: &[usize]) -> Option<usize> {
    let mut rng = rand::rng();
    (0..2 * balancer.len()).filter_map(|_| balancer.pick(&mut rng)).find(|e| !tried.contains(e))
}

/// Methods that RFC 9110 (section 9.2.2) defines as idempotent.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The request's `Content-Length`, when it declares one (the framing check
/// has made sure that every copy agrees).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// For an absolute-form target (`GET http://host/path`), the target's
/// authority replaces any `Host` header, as RFC 9112 (section 3.2.2) asks, so
/// routing and the upstream both see that host.
fn absolute_form_host<B>(request: &mut Request<B>) -> Result<(), ProxyError> {
    let Some(authority) = request.uri().authority() else { return Ok(()) };
    if authority.as_str().contains('@') {
        return Err(ProxyError::BadRequest { reason: "request target carries user information" });
    }
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|_| ProxyError::BadRequest { reason: "request target host is not valid" })?;
    request.headers_mut().insert(HOST, host);
    Ok(())
}

/// The host a request is for: its `Host` header without surrounding
/// whitespace. An HTTP/1.1 request must have exactly one (RFC 9112, section
/// 3.2); an HTTP/1.0 request without one is for the empty host, matched only
/// by routes without a host.
fn request_host<B>(request: &Request<B>) -> Result<&str, ProxyError> {
    let bad = |reason| Err(ProxyError::BadRequest { reason });
    let mut hosts = request.headers().get_all(HOST).iter();
    let value = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return bad("more than one Host header"),
        (Some(value), None) => value,
        (None, _) if request.version() == Version::HTTP_10 => return Ok(""),
        (None, _) => return bad("HTTP/1.1 request without a Host header"),
    };
    let Ok(host) = value.to_str() else { return bad("Host header is not visible ASCII") };
    let host = host.trim_matches([' ', '\t']);
    if !host.bytes().all(is_authority_byte) {
        return bad("Host header is not a host name or address");
    }
    Ok(host)
}

/// Bytes allowed in a URI authority (RFC 3986, section 3.2) without user
/// information: unreserved, sub-delims, `%`, `:` and the brackets of an IPv6
/// literal.
fn is_authority_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&byte)
}

/// `http://ENDPOINT` followed by the normalised path and the query as sent.
fn upstream_uri(endpoint: &Authority, path: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
    let path_and_query = match query {
        Some(query) => PathAndQuery::try_from(format!("{path}?{query}")),
        None => PathAndQuery::try_from(path),
    }
    .map_err(|_| ProxyError::BadRequest { reason: "request target cannot be forwarded" })?;
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(endpoint.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ProxyError::BadRequest { reason: "request target cannot be forwarded" })
}

/// The headers and query of a request, as route conditions read them.
struct Fields<'r, B> {
    request: &'r Request<B>,
}

impl<B> RequestFields for Fields<'_, B> {
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
        // A value that is not visible ASCII can satisfy nothing but `present`,
        // which sees it as an empty string.
        self.request.headers().get_all(name).iter().any(|v| each(v.to_str().unwrap_or("")))
    }

    fn query(&self) -> &str {
        self.request.uri().query().unwrap_or("")
    }
}

/// The route's pool, or the side of its split this request falls on: pinned
/// by the sticky key when the request carries one, at random otherwise.
fn pick_pool<B>(route: &RoutePlan, request: &Request<B>, client: SocketAddr) -> usize {
    if route.split.is_empty() {
        return route.pool;
    }
    let key: Option<Vec<u8>> = match &route.sticky {
        None => None,
        Some(Sticky::Header(name)) => {
            request.headers().get(name.as_str()).map(|v| v.as_bytes().to_vec())
        }
        Some(Sticky::Cookie(name)) => {
            let fields = Fields { request };
            let mut found = None;
            fields.any_header("cookie", &mut |header| {
                found = header.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    (k.trim() == name).then(|| v.trim().as_bytes().to_vec())
                });
                found.is_some()
            });
            found
        }
        Some(Sticky::ClientAddress) => Some(client.ip().to_string().into_bytes()),
    };
    let point = match key {
        Some(key) => sluice_traffic::key_hash(&key),
        None => rand::RngExt::random::<u64>(&mut rand::rng()),
    };
    split::choose(&route.split_weights(), point).map_or(route.pool, |side| route.split[side].pool)
}
