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
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use sluice_compiler::{Balance, Captures, Plan};
use sluice_traffic::{Algorithm, Balancer};

use crate::access_log::AccessLogSender;
use crate::error::ProxyError;
use crate::exchange::{Exchange, ResponseBody};
use crate::headers;

/// How long a TCP connect to an endpoint may take when the route sets no
/// timeout of its own.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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
    client: Client<HttpConnector, Incoming>,
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

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);

        Shared { plan, balancers, authorities, client, log }
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
) -> Result<Response<ResponseBody>, Infallible> {
    let mut exchange = Exchange::new(Arc::clone(&shared), listener, client, &request);
    match forward(&shared, &mut exchange, listener, client, request).await {
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
    let path = request.uri().path();
    let route = CAPTURES.with(|captures| {
        plan.lookup_parts(listener, host, method, path, &mut captures.borrow_mut())
    });
    let Some(route) = route.map(|r| r as usize) else {
        return Err(ProxyError::NoRoute {
            method: request.method().to_string(),
            path: path.to_owned(),
            listener: plan.listeners[listener].name.clone(),
        });
    };
    exchange.route = Some(route);

    // Pick an endpoint and count the request there until the exchange ends.
    let route_plan = &plan.routes[route];
    let pool = route_plan.pool;
    let endpoint = shared.balancers[pool]
        .pick(&mut rand::rng())
        .ok_or_else(|| ProxyError::NoEndpoint { pool: plan.pools[pool].name.clone() })?;
    exchange.begin(pool, endpoint);
    let address = plan.pools[pool].endpoints[endpoint].address;
    tracing::trace!(route = %route_plan.name, %address, "routed");

    // Rewrite the request for the upstream.
    let target = upstream_uri(&shared.authorities[pool][endpoint], request.uri())?;
    *request.uri_mut() = target;
    *request.version_mut() = Version::HTTP_11;
    headers::strip_hop_by_hop(request.headers_mut());
    headers::add_forwarded(request.headers_mut(), client.ip());

    // Send, within the route's time limit for response headers.
    let sent = shared.client.request(request);
    let result = match route_plan.timeout {
        Some(timeout) => tokio::time::timeout(timeout, sent)
            .await
            .map_err(|_| ProxyError::Timeout { endpoint: address, timeout })?,
        None => sent.await,
    };
    let mut response = result.map_err(|source| ProxyError::from_client(address, source))?;
    headers::strip_hop_by_hop(response.headers_mut());
    Ok(response)
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

/// The host a request is for: its `Host` header, or empty when it has none
/// (matched only by routes without a host).
fn request_host<B>(request: &Request<B>) -> Result<&str, ProxyError> {
    let mut hosts = request.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadRequest { reason: "more than one Host header" }),
        (Some(value), None) => value
            .to_str()
            .map_err(|_| ProxyError::BadRequest { reason: "Host header is not visible ASCII" }),
        (None, _) => Ok(""),
    }
}

/// `http://ENDPOINT` followed by the request's path and query, unchanged.
fn upstream_uri(endpoint: &Authority, original: &Uri) -> Result<Uri, ProxyError> {
    let path_and_query =
        original.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(endpoint.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ProxyError::BadRequest { reason: "request target cannot be forwarded" })
}
