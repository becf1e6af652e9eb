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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, COOKIE, HOST, MAX_FORWARDS};
use hyper::http::uri::{Authority, PathAndQuery};
use hyper::{Method, Request, Response, Uri, Version};
use sluice_compiler::condition::RequestFields;
use sluice_compiler::normalize::{normalize, PathError};
use sluice_compiler::plan::key::KeySource;
use sluice_compiler::plan::{ListenerPlan, RoutePlan};
use sluice_compiler::spec::HashOn;
use sluice_compiler::spec::Protocol;
use sluice_compiler::{Captures, Plan};
use sluice_traffic::deadline::TryBudget;
use sluice_traffic::retry::{self, RetryDecision};
use sluice_traffic::{split, Balancer, Deadline, Nanos, Outcome, Pick, TryFacts};

use crate::access_log::AccessLogSender;
use crate::connection::{InFlight, InterimSink};
use crate::error::ProxyError;
use crate::exchange::{Exchange, ResponseBody};
use crate::framing;
use crate::headers;
use crate::pool_state::{self, PoolState};
use crate::request_body::{self, BodyError, BodySlot, ClientBody, RequestBody};
use crate::request_id;
use crate::stall::unless_stuck;
use crate::upgrade;
use crate::upstream::{self, PoolClient, SendError, UpstreamBody};

thread_local! {
    /// Route captures, reused by every request handled on this thread.
    static CAPTURES: RefCell<Captures> = RefCell::new(Captures::new());
}

/// Everything requests share: the plan, one balancer per pool, the upstream
/// connection pool and the access log.
pub(crate) struct Shared {
    pub(crate) plan: Arc<Plan>,
    /// Indexed like `plan.pools`. Shared with the next plan when a reload
    /// leaves the pool's endpoints as they were.
    pub(crate) balancers: Vec<Arc<Balancer>>,
    /// Indexed like `plan.pools`: the state a reload carries over for a pool
    /// that did not change (see [`PoolState`]).
    pub(crate) pools: Vec<Arc<PoolState>>,
    /// Indexed like `plan.routes`: each route's retry budget, if it has one.
    budgets: Vec<Option<Arc<sluice_traffic::RetryBudget>>>,
    /// Indexed like `plan.pools[p].endpoints`.
    authorities: Vec<Vec<Authority>>,
    /// Indexed like `authorities`: each endpoint's socket address.
    pub(crate) addresses: Vec<Vec<SocketAddr>>,
    /// Indexed like `plan.pools`; shared across reloads like `balancers`.
    clients: Vec<Arc<PoolClient>>,
    pub(crate) log: AccessLogSender,
}

impl Shared {
    pub(crate) fn new(plan: Arc<Plan>, log: AccessLogSender) -> Shared {
        Shared::reloaded(plan, log, None)
    }

    /// The state for `plan`, taking over from `previous` (the plan it
    /// replaces) the balancer and the upstream connections of every pool of
    /// the same name whose protocol, algorithm and endpoints (addresses and
    /// weights, in order) did not change. Requests still in flight on the
    /// old plan then end their count on the same balancer the new plan picks
    /// with.
    ///
    /// A pool of the same name that changed gets new state, which takes
    /// over from the old the health, outlier and latency state of each
    /// endpoint address it kept (see [`PoolState::start`]).
    pub(crate) fn reloaded(
        plan: Arc<Plan>,
        log: AccessLogSender,
        previous: Option<&Shared>,
    ) -> Shared {
        // Each pool's namesake in the previous plan, if any, and whether
        // its state and connections carry over whole.
        let namesakes: Vec<Option<(&Shared, usize, bool)>> = plan
            .pools
            .iter()
            .map(|pool| {
                let old = previous?;
                let index = old.plan.pools.iter().position(|p| p.name == pool.name)?;
                let before = &old.plan.pools[index];
                let whole = before.balance == pool.balance
                    && PoolState::carries_over(before, pool)
                    && before.protocol == pool.protocol
                    && before.connect_timeout == pool.connect_timeout
                    && before.idle_timeout == pool.idle_timeout
                    && before.stall_timeout == pool.stall_timeout;
                Some((old, index, whole))
            })
            .collect();

        // Balancer, breaker, health and outlier state: carried as a whole,
        // or started afresh from what the changed pool kept.
        let pools: Vec<Arc<PoolState>> = plan
            .pools
            .iter()
            .zip(&namesakes)
            .map(|(pool, namesake)| match *namesake {
                Some((old, index, true)) => Arc::clone(&old.pools[index]),
                Some((old, index, false)) => {
                    PoolState::start(pool, Some((&old.pools[index], &old.plan.pools[index])))
                }
                None => PoolState::start(pool, None),
            })
            .collect();
        // The old states that were not carried over stop probing.
        for old in previous.iter().flat_map(|old| &old.pools) {
            if !pools.iter().any(|new| Arc::ptr_eq(new, old)) {
                old.retire();
            }
        }
        let balancers = pools.iter().map(|p| Arc::clone(&p.balancer)).collect();
        // A route keeps its retry budget, and what it has counted, while the
        // budget's settings stay the same: a budget spent in a brown-out
        // stays spent across a reload. Any other starts afresh.
        let budgets = plan
            .routes
            .iter()
            .map(|route| {
                let settings = route.budget_settings()?;
                let kept = previous.and_then(|old| {
                    let index = old.plan.routes.iter().position(|r| r.name == route.name)?;
                    let budget = old.budgets[index].as_ref()?;
                    (budget.settings() == settings).then(|| Arc::clone(budget))
                });
                Some(kept.unwrap_or_else(|| Arc::new(sluice_traffic::RetryBudget::new(settings))))
            })
            .collect();
        let addresses: Vec<Vec<SocketAddr>> = plan
            .pools
            .iter()
            .map(|pool| {
                pool.endpoints
                    .iter()
                    .map(|e| e.address.ip().expect("a served plan has its DNS names resolved"))
                    .collect()
            })
            .collect();
        let authorities = addresses
            .iter()
            .map(|pool| {
                pool.iter()
                    .map(|address| {
                        Authority::try_from(address.to_string())
                            .expect("a socket address is a valid URI authority")
                    })
                    .collect()
            })
            .collect();

        // A new client counts its connections on the pool's new breaker.
        let clients = plan
            .pools
            .iter()
            .zip(&namesakes)
            .zip(&pools)
            .map(|((pool, namesake), state)| match *namesake {
                Some((old, index, true)) => Arc::clone(&old.clients[index]),
                _ => Arc::new(PoolClient::new(pool, Arc::clone(&state.breaker))),
            })
            .collect();

        Shared { plan, balancers, pools, budgets, authorities, addresses, clients, log }
    }
}

impl Shared {
    /// The index of the listener `key` names, if this plan has one.
    pub(crate) fn listener_at(&self, key: &crate::gateway::ListenerKey) -> Option<usize> {
        self.plan.listeners.iter().position(|l| key.matches(l))
    }
}

/// The client end of a connection, as every request on it sees it.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) address: SocketAddr,
    /// The address's IP as the value it adds to `X-Forwarded-For`.
    pub(crate) forwarded_for: HeaderValue,
}

impl Peer {
    pub(crate) fn new(address: SocketAddr) -> Peer {
        Peer { address, forwarded_for: headers::forwarded_value(address.ip()) }
    }
}

/// Serve one request that arrived on `listener` from `peer`.
///
/// (A function returning an `async` block rather than an `async fn`: the
/// block uses its captured arguments in place, where an `async fn` would
/// move each into a local of its own, and the request's future, which
/// lives as long as its exchange, would hold both copies: 4,000 bytes
/// against 3,632.)
#[allow(clippy::manual_async_fn)] // on purpose, as said above
pub(crate) fn handle(
    shared: Arc<Shared>,
    listener: usize,
    peer: Peer,
    request: Box<Request<ClientBody>>,
    in_flight: InFlight,
    refused: Option<&'static str>,
) -> impl std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> {
    async move {
        let client = peer.address;
        let mut exchange =
            Exchange::new(Arc::clone(&shared), listener, client, &request, in_flight);
        // Decided on the fields as the client sent them, before any is dropped
        // as hop-by-hop; echoed in every response, the gateway's own included.
        let request_id =
            request_id::for_request(shared.plan.listeners[listener].request_id, request.headers());
        let http10 = request.version() == Version::HTTP_10;
        let bodiless = request.method() == Method::HEAD;
        // Whether an HTTP/1.x request's body is left unread when it is
        // answered: until `forward` says otherwise, whether it has one.
        let mut unread = request.version() != Version::HTTP_2
            && !hyper::body::Body::is_end_stream(request.body());
        let max_fields =
            usize::try_from(shared.plan.listeners[listener].max_headers).unwrap_or(usize::MAX);
        let forwarded = match refused {
            Some(reason) if framing::is_unknown_coding(reason) => {
                Err(ProxyError::UnsupportedCoding)
            }
            Some(reason) => Err(ProxyError::BadRequest { reason }),
            // The HTTP/1.1 parsers hold a head to the limit themselves;
            // HTTP/2 has only a limit on the fields' size.
            None if request.headers().len() > max_fields => {
                Err(ProxyError::TooManyFields { limit: max_fields })
            }
            None => {
                let id = request_id.as_ref();
                forward(&shared, &mut exchange, (listener, &peer), request, id, &mut unread).await
            }
        };
        let echo = |headers: &mut HeaderMap| {
            if let Some(id) = &request_id {
                headers.insert(request_id::X_REQUEST_ID.clone(), id.clone());
            }
        };
        // The server cannot tell where the next request on the connection
        // begins, and closes it after this answer: the answer says so
        // (RFC 9110, section 10.1.1; RFC 9112, section 9.6).
        let closing = |status: hyper::StatusCode, headers: &mut HeaderMap| {
            if unread && status != hyper::StatusCode::SWITCHING_PROTOCOLS {
                headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            }
        };
        match forwarded {
            Ok(Answer::Upstream(mut response)) => {
                echo(response.headers_mut());
                closing(response.status(), response.headers_mut());
                if http10 && !bodiless {
                    close_when_unframed(&mut response);
                }
                exchange.status = Some(response.status().as_u16());
                Ok(response.map(|body| ResponseBody::upstream(body, exchange)))
            }
            Ok(Answer::Own(mut response)) => {
                echo(response.headers_mut());
                closing(response.status(), response.headers_mut());
                exchange.status = Some(response.status().as_u16());
                Ok(response.map(|body| ResponseBody::local(body, exchange)))
            }
            Err(error) => {
                tracing::debug!(
                    side = error.side().as_str(),
                    retry_safe = error.retry_safe(),
                    %client,
                    %error,
                    "request answered by the gateway"
                );
                exchange.answered_with(&error);
                let mut response = error.response();
                echo(response.headers_mut());
                closing(response.status(), response.headers_mut());
                // Logged as 499, as a request the client left before any answer.
                exchange.status = (!error.client_left()).then(|| response.status().as_u16());
                Ok(response.map(|body| ResponseBody::local(body, exchange)))
            }
        }
    }
}

/// Mark a response to an HTTP/1.0 client as the connection's last when
/// its body has no known length: HTTP/1.0 has no chunked coding, so only
/// the close can end such a body, and a `Connection: keep-alive` beside it
/// would promise what cannot be kept. (Both servers then close after it and
/// claim no keep-alive; a response that says HTTP/1.0 makes hyper's add none.)
fn close_when_unframed(response: &mut Response<UpstreamBody>) {
    let status = response.status();
    let body = response.body();
    let unframed = !hyper::body::Body::is_end_stream(body)
        && hyper::body::Body::size_hint(body).exact().is_none()
        && !status.is_informational()
        && status != hyper::StatusCode::NO_CONTENT
        && status != hyper::StatusCode::NOT_MODIFIED;
    if unframed {
        *response.version_mut() = Version::HTTP_10;
        response.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// What a request that was routed is answered with.
enum Answer {
    /// The upstream's response.
    Upstream(Response<UpstreamBody>),
    /// One the gateway wrote as the request's final recipient (see
    /// [`final_recipient`]).
    Own(Response<Bytes>),
}

/// Route `request` and send it upstream. `unread`, true for an HTTP/1.x
/// request with a body, is left true when that body is not read to its
/// end and will not be now (see [`BodySlot::left_unread`]).
async fn forward(
    shared: &Shared,
    exchange: &mut Exchange,
    (listener, peer): (usize, &Peer),
    mut request: Box<Request<ClientBody>>,
    request_id: Option<&HeaderValue>,
    unread: &mut bool,
) -> Result<Answer, ProxyError> {
    let plan = &shared.plan;
    let client = peer.address;

    if request.version() == Version::HTTP_2 {
        http2_whole(&mut request).await?;
    }

    // Route.
    absolute_form_host(&mut request)?;
    if request.version() == Version::HTTP_10 {
        http10_default_host(&mut request, &plan.listeners[listener]);
    }
    let host = request_host(&request)?;
    let method = request.method().as_str().as_bytes();
    // Match and forward the same, normalised, path.
    let path = match normalize(request.uri().path(), &plan.listeners[listener].normalize) {
        Ok(path) => path,
        // `OPTIONS *` with `Max-Forwards: 0` is for the gateway itself.
        Err(_) if asks_the_gateway(&request) => {
            let mut answer = Response::new(Bytes::new());
            let allow = HeaderValue::from_static(crate::error::ALLOWED_BY_DEFAULT);
            answer.headers_mut().insert(hyper::header::ALLOW, allow);
            return Ok(Answer::Own(answer));
        }
        Err(e) => return Err(ProxyError::BadRequest { reason: target_refused(&request, e) }),
    };
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
    let route_plan = &plan.routes[route];
    let mut max_forwards = None;
    if matches!(*request.method(), Method::TRACE | Method::OPTIONS) || is_trace_variant(&request) {
        match final_recipient(&request, route_plan)? {
            Hop::Last(answer) => return Ok(Answer::Own(answer)),
            Hop::Fewer(left) => max_forwards = Some(left),
            Hop::On => {}
        }
    }

    // Refuse a body the route does not take, before anything is sent.
    let limit = route_plan.max_body_size;
    if let Some(limit) = limit {
        if declared_length(request.headers()).is_some_and(|length| length > limit) {
            return Err(ProxyError::BodyTooLarge { limit });
        }
    }

    // Pick the pool (a side of the route's split, if it has one), admit the
    // request under its circuit breaker, then pick an endpoint and count the
    // request there until the exchange ends.
    let pool = pick_pool(route_plan, &request, client);
    let pool_plan = &plan.pools[pool];
    let permit = shared.pools[pool]
        .admit()
        .map_err(|rejection| ProxyError::Overloaded { pool: pool_plan.name.clone(), rejection })?;
    exchange.permit = Some(permit);
    let hash =
        pool_plan.hash_key().and_then(|key| hash_point(plan, key, &request, client, route, &path));
    // One reading of the clock serves the pick, the deadline and the first
    // try's start.
    let picked = crate::clock::now();
    let picked_at = pool_state::at(picked.into_std());
    let pick = Pick { now: picked_at, hash, avoid: &[] };
    let endpoint = shared.pools[pool]
        .balancer
        .pick_with(&mut rand::rng(), &pick)
        .ok_or_else(|| ProxyError::NoEndpoint { pool: pool_plan.name.clone() })?;
    exchange.begin(pool, endpoint);
    let address = shared.addresses[pool][endpoint];
    tracing::trace!(route = %route_plan.name, %address, "routed");

    // Rewrite the request for the upstream, in the pool's protocol.
    let forwarded = if route_plan.forward_original_path { request.uri().path() } else { &path };
    // The target as sent, unless the path changed, costs no copy. (An
    // absolute-form target with an empty path reads as `/` but is sent
    // without it, so it is rebuilt.)
    let target = match request.uri().path_and_query() {
        Some(sent) if sent.path() == forwarded && sent.as_str().starts_with(forwarded) => {
            sent.clone()
        }
        _ => upstream_target(forwarded, request.uri().query())?,
    };
    let protocol = plan.pools[pool].protocol;
    let mut notable = Notable::of(request.headers());
    if notable.expect && request.version() == Version::HTTP_10 {
        // An HTTP/1.0 client cannot take a `100 Continue`, so its
        // expectation is ignored (RFC 9110, section 10.1.1), not passed on.
        request.headers_mut().remove(hyper::header::EXPECT);
        notable.expect = false;
    }
    let upgrade =
        if notable.upgrade { upgrade::Requested::take(&mut request, protocol) } else { None };
    let te_trailers = protocol == Protocol::Http2 && headers::accepts_trailers(request.headers());
    // Taken apart in place, where the box keeps it (see `server1::Parsed`).
    let body = std::mem::replace(request.body_mut(), ClientBody::Empty);
    let fields = request.headers_mut();
    if let Some(left) = max_forwards {
        fields.insert(MAX_FORWARDS, left);
    }
    // What `Connection` named is hop-by-hop in the trailers too.
    let named = headers::strip_hop_by_hop(fields);
    if notable.content_length && !headers::one_content_length(fields) {
        return Err(ProxyError::BadRequest { reason: "conflicting Content-Length values" });
    }
    if let Some(id) = request_id {
        fields.insert(request_id::X_REQUEST_ID.clone(), id.clone());
    }
    if protocol != Protocol::Http2 && notable.cookie {
        headers::join_cookies(fields);
    }
    if let Some(upgrade) = &upgrade {
        upgrade.restore(fields);
    }
    if te_trailers {
        fields.insert(hyper::header::TE, HeaderValue::from_static("trailers"));
    }
    let trusted = headers::is_trusted(&plan.listeners[listener].trusted_proxies, client.ip());
    if notable.forwarded && !trusted {
        // The standard field says what the `X-Forwarded-*` trio says, and is
        // believed only from the same peers (see `headers`).
        fields.remove(hyper::header::FORWARDED);
    }
    let forwarded = Forwarded { client: peer.forwarded_for.clone(), trusted };
    // An HTTP/1.1 upstream may refuse early what expects `100 Continue`.
    let (continued, gate) = match protocol {
        Protocol::Http1 if notable.expect => request_body::continue_gate(fields).unzip(),
        _ => (None, None),
    };
    let version = match protocol {
        Protocol::Http1 => Version::HTTP_11,
        Protocol::Http2 => Version::HTTP_2,
    };
    // Interim responses reach an HTTP/1.1 client, never an HTTP/1.0 one
    // (RFC 9110, section 15.2), from an HTTP/1.1 pool, on a connection whose
    // server can send them.
    let interim = match protocol {
        Protocol::Http1 if request.version() == Version::HTTP_11 => exchange.interim(),
        _ => None,
    };
    let head = UpstreamHead {
        method: std::mem::take(request.method_mut()),
        target,
        headers: std::mem::take(request.headers_mut()),
        has_host: notable.host,
        upgrade: upgrade.is_some(),
        forwarded,
        version,
        continued,
        interim,
    };
    // A copy of a small body lets a retry, or the resend after a reused
    // connection turned out closed, send it again; neither sends a request
    // that is not idempotent twice unless the route allows it.
    let retries = &route_plan.retries;
    let replay_limit = match hyper::body::Body::is_end_stream(&body) {
        true => 0,
        false if retry::is_idempotent(head.method.as_str()) || retries.settings.non_idempotent => {
            retries.replay_body_limit
        }
        false => 0,
    };
    // Only an HTTP/2 pool is sent the request's trailers (see `request_body`).
    let trailers = (protocol == Protocol::Http2).then(|| named.into_boxed_slice());
    let slot = BodySlot::with(body, limit, trailers, gate, replay_limit);

    let sent =
        send(shared, exchange, (pool, endpoint), hash, &head, &slot, (picked, picked_at)).await;
    if *unread {
        *unread = slot.left_unread(sent.is_ok());
    }
    let mut response = sent?;
    // `send` refused every 101 the request cannot take; these checks stay
    // so that no 101 reaches a tunnel unchecked.
    let switched = match upgrade {
        None if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS => {
            let (pool, endpoint) = exchange.endpoint().unwrap_or((pool, endpoint));
            return Err(ProxyError::UnaskedUpgrade { endpoint: shared.addresses[pool][endpoint] });
        }
        None => None,
        Some(upgrade) => {
            let (pool, endpoint) = exchange.endpoint().unwrap_or((pool, endpoint));
            let stall = shared.plan.pools[pool].stall_timeout;
            upgrade.on_response(&mut response, stall).map_err(|_| ProxyError::UnofferedUpgrade {
                endpoint: shared.addresses[pool][endpoint],
            })?
        }
    };
    // What `Connection` named stays off the trailers too (see `ResponseBody`).
    exchange.named = headers::strip_hop_by_hop_response(response.headers_mut()).into_boxed_slice();
    if let Some(upgraded_to) = switched {
        upgrade::restore_response(response.headers_mut(), upgraded_to);
    }
    Ok(Answer::Upstream(response))
}

/// What the gateway does with a TRACE or OPTIONS request.
enum Hop {
    /// Pass it on as it is.
    On,
    /// Pass it on with this `Max-Forwards`.
    Fewer(HeaderValue),
    /// Answer it so: the gateway is its final recipient.
    Last(Response<Bytes>),
}

/// TRACE and OPTIONS, as an intermediary treats them (RFC 9110, section
/// 7.6.2).
///
/// TRACE is refused with 405 on a route that does not name it among its
/// `methods`: its answer reflects the request back to the client, cookies
/// and credentials included, which a script on another site could read
/// (cross-site tracing). A route that names it passes it on.
///
/// A `Max-Forwards` of 0 makes the gateway the final recipient, which
/// answers OPTIONS with 200 and the route's methods in `Allow`, and TRACE
/// with the request it received, as `message/http` (RFC 9110, section
/// 9.3.8), less the fields that carry credentials. A larger value is
/// passed on one less; one that is not a number is refused with 400.
fn final_recipient<B>(request: &Request<B>, route: &RoutePlan) -> Result<Hop, ProxyError> {
    // Another spelling of TRACE is an extension method no route can list,
    // but an upstream that folds case would answer it as TRACE.
    if is_trace_variant(request) {
        return Err(ProxyError::TraceRefused);
    }
    let trace = request.method() == Method::TRACE;
    if trace && route.refuses_trace() {
        return Err(ProxyError::TraceRefused);
    }
    let mut values = request.headers().get_all(MAX_FORWARDS).iter();
    let Some(value) = values.next() else { return Ok(Hop::On) };
    if values.next().is_some() {
        return Err(ProxyError::BadRequest { reason: "more than one Max-Forwards header" });
    }
    let Some(left) = hops(value.as_bytes()) else {
        return Err(ProxyError::BadRequest { reason: "Max-Forwards is not a decimal number" });
    };
    if left > 0 {
        return Ok(Hop::Fewer(HeaderValue::from(left - 1)));
    }
    let mut response = Response::new(Bytes::new());
    if trace {
        *response.body_mut() = reflection(request);
        let message = HeaderValue::from_static("message/http");
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, message);
    } else {
        let allow = match route.methods.is_any() {
            true => HeaderValue::from_static(crate::error::ALLOWED_BY_DEFAULT),
            false => {
                let names: Vec<&str> = route.methods.names().collect();
                // Method names are tokens, which a field value can always hold.
                HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static(""))
            }
        };
        response.headers_mut().insert(hyper::header::ALLOW, allow);
    }
    Ok(Hop::Last(response))
}

/// Whether the method is TRACE spelt in another case (`trace`, `Trace`).
fn is_trace_variant<B>(request: &Request<B>) -> bool {
    let method = request.method().as_str();
    method.len() == 5 && method != "TRACE" && method.eq_ignore_ascii_case("TRACE")
}

/// Whether the request is `OPTIONS *` with a `Max-Forwards` of 0: a
/// question about the gateway itself, which it answers (RFC 9110, sections
/// 7.6.2 and 9.3.7).
fn asks_the_gateway<B>(request: &Request<B>) -> bool {
    let mut values = request.headers().get_all(MAX_FORWARDS).iter();
    request.method() == Method::OPTIONS
        && request.uri().path() == "*"
        && matches!((values.next(), values.next()), (Some(value), None) if hops(value.as_bytes()) == Some(0))
}

/// The hops a `Max-Forwards` value allows (`1*DIGIT`), a value beyond 64
/// bits taken as the largest; `None` when it is not a number.
fn hops(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hops = digits
        .iter()
        .fold(0u64, |hops, digit| hops.saturating_mul(10).saturating_add(u64::from(digit - b'0')));
    Some(hops)
}

/// A request head as the gateway received it, as the body of a TRACE
/// answer: the request line, then each field but those that carry
/// credentials, which RFC 9110 (section 9.3.8) asks a final recipient to
/// leave out.
fn reflection<B>(request: &Request<B>) -> Bytes {
    let secret = [hyper::header::AUTHORIZATION, hyper::header::PROXY_AUTHORIZATION, COOKIE];
    let mut head = Vec::new();
    let target = request.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let version = match request.version() {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    };
    for part in [request.method().as_str(), " ", target, " ", version, "\r\n"] {
        head.extend_from_slice(part.as_bytes());
    }
    for (name, value) in request.headers() {
        if !secret.contains(name) {
            for part in [name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                head.extend_from_slice(part);
            }
        }
    }
    head.extend_from_slice(b"\r\n");
    Bytes::from(head)
}

/// Which of the fields that forwarding acts on a request head has, found in
/// one pass over its names: most requests have none of them, and looking up
/// each would hash its name every time. A field found here may still be
/// removed as hop-by-hop; what acts on it looks again.
#[derive(Debug, Clone, Copy, Default)]
struct Notable {
    host: bool,
    upgrade: bool,
    expect: bool,
    cookie: bool,
    forwarded: bool,
    content_length: bool,
}

impl Notable {
    fn of(headers: &HeaderMap) -> Notable {
        let mut notable = Notable::default();
        for name in headers.keys() {
            notable.host |= name == HOST;
            notable.upgrade |= name == hyper::header::UPGRADE;
            notable.expect |= name == hyper::header::EXPECT;
            notable.cookie |= name == hyper::header::COOKIE;
            notable.forwarded |= name == hyper::header::FORWARDED;
            notable.content_length |= name == CONTENT_LENGTH;
        }
        notable
    }
}

/// Who the request came from, for its `X-Forwarded-*` fields (see
/// [`headers::add_forwarded`]).
pub(crate) struct Forwarded {
    /// The client's address, as `X-Forwarded-For` names it.
    pub(crate) client: HeaderValue,
    /// Whether the client is a trusted proxy, whose fields are kept.
    pub(crate) trusted: bool,
}

/// What every attempt sends upstream, apart from the body.
pub(crate) struct UpstreamHead {
    pub(crate) method: Method,
    /// The normalised path and the query as sent, in origin form.
    pub(crate) target: PathAndQuery,
    /// The headers as the client sent them, less the hop-by-hop ones; the
    /// `X-Forwarded-*` fields are set as each request is written.
    pub(crate) headers: HeaderMap,
    /// Whether `headers` has `Host`.
    pub(crate) has_host: bool,
    /// Whether the request asks the upstream to switch protocols (and its
    /// `Upgrade` field is in `headers`).
    pub(crate) upgrade: bool,
    pub(crate) forwarded: Forwarded,
    /// The pool's protocol version.
    version: Version,
    /// Told when the upstream answers `100 Continue`, for a request that expects it.
    pub(crate) continued: Option<Arc<tokio::sync::Notify>>,
    /// Where the interim responses other than `100 Continue` and `101` go,
    /// for a client that takes them; without it they are dropped.
    pub(crate) interim: Option<InterimSink>,
}

impl UpstreamHead {
    /// The protocols the request offers to switch to, as sent upstream;
    /// `None` when it asks for no upgrade.
    fn offer(&self) -> Option<&HeaderValue> {
        self.upgrade.then(|| self.headers.get(hyper::header::UPGRADE)).flatten()
    }

    /// The request for one try, in origin form: the pool's client names
    /// the endpoint (see [`PoolClient::send`]).
    pub(crate) fn request(&self, body: RequestBody) -> Request<RequestBody> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = Uri::from(self.target.clone());
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        let forwarded = &self.forwarded;
        headers::add_forwarded(request.headers_mut(), &forwarded.client, forwarded.trusted);
        if let Some(continued) = &self.continued {
            let continued = Arc::clone(continued);
            hyper::ext::on_informational(&mut request, move |response| {
                if response.status() == hyper::StatusCode::CONTINUE {
                    continued.notify_one();
                }
            });
        }
        request
    }
}

/// Send a request to `endpoint` of `pool`, and try again as the route's
/// retry policy allows: on an endpoint not tried yet whenever the pool has
/// one (else on one other than the last), after a jittered backoff, within
/// the route's deadline and retry budget; once the request's body has
/// started to stream, only if the slot kept a copy of all of it (see
/// [`crate::request_body`]). Each try teaches the pool's balancer (latency)
/// and outlier detector (outcome).
///
/// A route without `retries` still sends a request whose connection failed
/// (so nothing was sent) to another endpoint, up to once per endpoint; see
/// `RetryPlan::failover`.
///
/// The first try starts at `began` (and, as the traffic state machines
/// read the clock, at `began_at`), when its endpoint was picked.
#[allow(clippy::too_many_arguments)]
async fn send(
    shared: &Shared,
    exchange: &mut Exchange,
    (pool, mut endpoint): (usize, usize),
    hash: Option<u64>,
    head: &UpstreamHead,
    slot: &Arc<BodySlot>,
    (mut began, mut began_at): (tokio::time::Instant, Nanos),
) -> Result<Response<UpstreamBody>, ProxyError> {
    let plan = &shared.plan;
    let route = exchange.route.unwrap_or_default();
    let route_plan = &plan.routes[route];
    let policy = &route_plan.retries.settings;
    let state = &shared.pools[pool];
    let budget = shared.budgets[route].as_deref();
    let mut now = began_at;
    let deadline = Deadline::new(route_plan.deadline_settings(), now);
    if let Some(budget) = budget {
        budget.record_request(now);
    }
    let idempotent = retry::is_idempotent(head.method.as_str());
    let mut tries = 0;
    // The endpoints tried so far, the latest last (kept once a retry needs them).
    let mut tried = Vec::new();

    loop {
        let address = shared.addresses[pool][endpoint];
        let limit = match deadline.next_try(now) {
            TryBudget::Unbounded => None,
            TryBudget::Bounded { timeout, .. } => Some(timeout),
            TryBudget::Expired => {
                let timeout = route_plan.timeout.unwrap_or_default();
                return Err(ProxyError::Timeout { endpoint: address, timeout });
            }
        };
        tries += 1;
        let mut result =
            try_once(shared, pool, endpoint, head, slot, idempotent, limit, began).await;
        // A 101 the request cannot take is the endpoint's error, like a
        // malformed head, not a response (`forward` opens the tunnel).
        if let Ok(response) = &result {
            if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                if let Err(bad) = upgrade::check_switch(head.offer(), response.headers()) {
                    result = Err(TryError::BadSwitch(bad));
                }
            }
        }
        if slot.was_too_large() {
            return Err(ProxyError::BodyTooLarge { limit: slot.limit().unwrap_or(0) });
        }
        // A pool at its connection limits: the endpoint did nothing wrong,
        // and another try would meet the same limits.
        if let Err(TryError::Failed(error)) = &result {
            if let Some(rejection) = upstream::breaker_refusal(error) {
                // Nothing went to this endpoint: the log names the one
                // tried last, if a try went anywhere.
                match tried.last() {
                    Some(&last) => exchange.switch(pool, last),
                    None => exchange.forget(),
                }
                let pool = plan.pools[pool].name.clone();
                return Err(ProxyError::Overloaded { pool, rejection });
            }
        }

        // Time that ran out while the client was still sending its body is
        // the client's slowness: answered 408, and neither held against the
        // endpoint nor retried (another try would wait on the same client).
        if let Err(TryError::TimedOut(timeout)) = &result {
            if slot.awaits_client() {
                return Err(ProxyError::ClientTooSlow { endpoint: address, timeout: *timeout });
            }
        }

        // Learn from the try, unless the client's body is what failed, or
        // the endpoint was sent nothing because it was busy at its own
        // limit of streams: that is not a failure of the endpoint, but may
        // fail over to another as a failed connection does.
        let outcome = match &result {
            Ok(response) => Outcome::Response(response.status().as_u16()),
            Err(TryError::TimedOut(_)) => Outcome::Timeout,
            Err(TryError::NoStream(_)) => Outcome::ConnectFailure,
            Err(TryError::Failed(error)) if error.is_connect() => Outcome::ConnectFailure,
            Err(TryError::Failed(_) | TryError::BadSwitch(_)) => Outcome::Reset,
        };
        let client_fault = matches!(&result, Err(TryError::Failed(e)) if e.is_client_body_error());
        let busy = matches!(&result, Err(TryError::NoStream(_)));
        let ended = crate::clock::now();
        now = pool_state::at(ended.into_std());
        if !client_fault && !busy {
            state.record(endpoint, now.since(began_at), outcome, now);
        }
        if let Ok(response) = &result {
            if !policy.on.statuses.contains(&response.status().as_u16()) {
                return result.map_err(|_| unreachable_error(address));
            }
        }

        // A try that ended before the client's body was all read (an early
        // 503, a reset mid-upload) holds that body until its upload ends: a
        // retry the policy wants waits for the copy to take in the rest of
        // it, or for the body to come back, within the request's deadline
        // and while the body keeps moving.
        let mut replayable = slot.is_whole();
        if !replayable && !client_fault {
            let wanted = TryFacts { tries, outcome, idempotent, replayable: true };
            if policy.allows(&wanted).is_ok() {
                let stall = plan.pools[pool].stall_timeout;
                let mut seen = slot.progress().0;
                let moved = || {
                    let frames = slot.progress().0;
                    let moved = frames != seen;
                    seen = frames;
                    moved
                };
                let wait = unless_stuck(slot.whole(), stall, moved);
                replayable = match deadline.remaining(now) {
                    Some(left) => tokio::time::timeout(left, wait).await.ok().flatten(),
                    None => wait.await,
                }
                .unwrap_or(false);
                now = pool_state::at(crate::clock::now().into_std());
            }
        }

        // Retry, on another endpoint when there is one, or stop here.
        let facts = TryFacts { tries, outcome, idempotent, replayable };
        let decision = if client_fault {
            RetryDecision::Stop(retry::NoRetry::NotRetryable)
        } else {
            retry::decide(policy, &deadline, budget, &facts, now, &mut rand::rng())
        };
        let next = match decision {
            RetryDecision::Retry { backoff, .. } => {
                tried.push(endpoint);
                let pick = Pick { now, hash, avoid: &tried };
                state.balancer.pick_with(&mut rand::rng(), &pick).map(|next| (next, backoff))
            }
            RetryDecision::Stop(why) => {
                tracing::trace!(%address, ?outcome, ?why, "not retried");
                None
            }
        };
        let Some((next, backoff)) = next else {
            return match result {
                Ok(response) => Ok(response),
                Err(TryError::TimedOut(timeout)) => {
                    Err(ProxyError::Timeout { endpoint: address, timeout })
                }
                Err(TryError::NoStream(waited)) => {
                    Err(ProxyError::Busy { endpoint: address, waited })
                }
                Err(TryError::Failed(error)) => Err(ProxyError::from_client(address, error)),
                Err(TryError::BadSwitch(upgrade::BadSwitch::Unasked)) => {
                    Err(ProxyError::UnaskedUpgrade { endpoint: address })
                }
                Err(TryError::BadSwitch(upgrade::BadSwitch::Unoffered)) => {
                    Err(ProxyError::UnofferedUpgrade { endpoint: address })
                }
            };
        };
        tracing::debug!(side = "upstream", %address, ?outcome, tries, ?backoff, "retrying");
        drop(result);
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
        exchange.switch(pool, next);
        endpoint = next;
        began = crate::clock::now();
        began_at = pool_state::at(began.into_std());
        now = began_at;
    }
}

/// How a try ended without a response head.
enum TryError {
    /// The try's time (per-try or what was left of the route's) ran out.
    TimedOut(Duration),
    /// The try's time, or the pool's `stall_timeout`, ran out while it
    /// waited for a stream of an HTTP/2 endpoint whose connections were all
    /// at the limit the endpoint set, and no other could be opened: nothing
    /// was sent (see `crate::http2`).
    NoStream(Duration),
    Failed(SendError),
    /// A response head came, but a 101 that the request cannot take (see
    /// [`upgrade::check_switch`]); its connection is closed with it.
    BadSwitch(upgrade::BadSwitch),
}

/// Never built: `send` maps only an `Ok` through it.
fn unreachable_error(endpoint: SocketAddr) -> ProxyError {
    ProxyError::Timeout { endpoint, timeout: Duration::ZERO }
}

/// One try against `endpoint`, begun at `began`, within `limit`. A pooled
/// connection that the upstream had closed is not the endpoint's failure:
/// an idempotent request whose body is whole is sent once more, to the same
/// endpoint, on a new connection, within the same try (see
/// [`crate::upstream`]).
#[allow(clippy::too_many_arguments)]
async fn try_once(
    shared: &Shared,
    pool: usize,
    endpoint: usize,
    head: &UpstreamHead,
    slot: &Arc<BodySlot>,
    idempotent: bool,
    limit: Option<Duration>,
    began: tokio::time::Instant,
) -> Result<Response<UpstreamBody>, TryError> {
    let authority = &shared.authorities[pool][endpoint];
    let address = shared.addresses[pool][endpoint];
    let client = &shared.clients[pool];
    // Pinned where it is made: moved into either `await` below, the whole
    // future (nearly a kilobyte) would be copied first.
    // Set while the try waits for a stream of an HTTP/2 endpoint at its
    // limit: a try that ends there was never sent (see `crate::http2`).
    let waiting = AtomicBool::new(false);
    let attempt = std::pin::pin!(async {
        let mut resent = false;
        let mut began = began;
        loop {
            let body = slot.attempt();
            let sent = client.send(endpoint, address, authority, head, body, resent, &waiting);
            let error = match sent.await {
                Ok(response) => return Ok(response),
                Err(error) if error.stalled().is_some() && waiting.load(Ordering::Relaxed) => {
                    return Err(TryError::NoStream(error.stalled().unwrap_or_default()));
                }
                Err(error) => error,
            };
            let resend = !resent
                && idempotent
                && slot.is_whole()
                && upstream::on_reused_connection(&error, began)
                && upstream::closed_before_response(&error);
            if !resend {
                return Err(match error.stalled() {
                    Some(limit) => TryError::TimedOut(limit),
                    None => TryError::Failed(error),
                });
            }
            tracing::debug!(side = "upstream", %authority, %error, "reused connection closed; resending");
            resent = true;
            began = crate::clock::now();
        }
    });
    match limit {
        // (From `began`, which saves reading the clock again.)
        Some(limit) => match tokio::time::timeout_at(began + limit, attempt).await {
            Ok(result) => result,
            Err(_) if waiting.load(Ordering::Relaxed) => Err(TryError::NoStream(limit)),
            Err(_) => Err(TryError::TimedOut(limit)),
        },
        None => attempt.await,
    }
}

/// The consistent-hash point of a request: the hash of its key, or `None`
/// when the request does not carry the key.
fn hash_point<B>(
    plan: &Plan,
    key: &HashOn,
    request: &Request<B>,
    client: SocketAddr,
    route: usize,
    path: &str,
) -> Option<u64> {
    let source = KeyView { request, client, route: Some((plan, route, path)) };
    sluice_compiler::plan::key::hash_point(key, &source)
}

/// A request as the shared key reader sees it.
struct KeyView<'r, B> {
    request: &'r Request<B>,
    client: SocketAddr,
    /// The plan, the matched route and its normalised path, for path parameters.
    route: Option<(&'r Plan, usize, &'r str)>,
}

impl<B> KeySource for KeyView<'_, B> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.request.headers().get(name).map(HeaderValue::as_bytes)
    }

    fn cookie_headers(&self, each: &mut dyn FnMut(&str) -> bool) -> bool {
        Fields { request: self.request }.any_header("cookie", each)
    }

    fn query(&self) -> Option<&str> {
        self.request.uri().query()
    }

    fn path_param(&self, name: &str, found: &mut dyn FnMut(&str)) {
        let Some((plan, route, path)) = self.route else { return };
        let Ok(route) = u32::try_from(route) else { return };
        // The captures of this request's lookup, which no await has come between.
        CAPTURES.with(|captures| {
            let captures = captures.borrow();
            let value = plan.params(route, path, &captures).find(|(n, _)| *n == name);
            if let Some((_, value)) = value {
                found(value);
            }
        });
    }

    fn client(&self) -> Option<std::net::IpAddr> {
        Some(self.client.ip())
    }
}

/// The request's `Content-Length`, when it declares one (the framing check
/// has made sure that every copy agrees).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Refuse an HTTP/2 request that is malformed in ways HTTP/1.1 cannot be
/// (a padded field value), and wait until one that declared an empty body
/// is whole: its stream may still carry DATA, which would make it
/// malformed, and an HTTP/1.1 upstream takes the head alone as the whole
/// request, so it would answer before that DATA came. Nothing is
/// forwarded until its stream has ended, within the listener's stall
/// clock.
async fn http2_whole(request: &mut Request<ClientBody>) -> Result<(), ProxyError> {
    if headers::has_padded_value(request.headers()) {
        return Err(ProxyError::BadRequest {
            reason: "HTTP/2 field value begins or ends with whitespace",
        });
    }
    if request.body().awaits_empty_end() {
        request.body_mut().empty_end().await.map_err(|error| match error {
            Some(BodyError::Stalled(limit)) => ProxyError::ClientStalled { limit },
            _ => ProxyError::BadRequest {
                reason: "HTTP/2 request with content-length 0 did not end as declared",
            },
        })?;
    }
    Ok(())
}

/// When the target names its authority, that authority replaces any `Host`
/// header, so routing and the upstream both see that host: for an
/// absolute-form target (`GET http://host/path`), as RFC 9112 (section
/// 3.2.2) asks, and for an HTTP/2 request's `:authority`. An HTTP/2 request
/// that also has a `Host` field naming another host is malformed (RFC 9113,
/// section 8.3.1) and refused, rather than routed by one host while a
/// service that reads the other would believe it was asked for that.
fn absolute_form_host<B>(request: &mut Request<B>) -> Result<(), ProxyError> {
    // The gateway serves `http` and `https` resources only; another scheme
    // (`ftp://...`) is not one it can route as if it were.
    if let Some(scheme) = request.uri().scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ProxyError::BadRequest { reason: "request target scheme is not http" });
        }
    }
    let Some(authority) = request.uri().authority() else { return Ok(()) };
    if authority.as_str().contains('@') {
        return Err(ProxyError::BadRequest { reason: "request target carries user information" });
    }
    // The port a `Host` without one means: the scheme's (RFC 9110, section
    // 4.2), which every HTTP/2 request names.
    let default_port = match request.uri().scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => 443,
        _ => 80,
    };
    if request.version() == Version::HTTP_2
        && request
            .headers()
            .get_all(HOST)
            .iter()
            .any(|host| !same_host(host, authority.as_str(), default_port))
    {
        return Err(ProxyError::BadRequest {
            reason: "Host header names another host than :authority",
        });
    }
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|_| ProxyError::BadRequest { reason: "request target host is not valid" })?;
    request.headers_mut().insert(HOST, host);
    Ok(())
}

/// Whether a `Host` field names the same host as `authority`, compared as
/// RFC 9113 (section 8.3.1) asks, after the normalisation of RFC 3986
/// (section 6.2.3) for the request's scheme: letter case, an empty port and
/// the scheme's default port (`default_port`: 80 for `http`, 443 for
/// `https`) make no difference. Neither does one trailing dot, which no
/// route tells apart either.
fn same_host(host: &HeaderValue, authority: &str, default_port: u16) -> bool {
    /// The name without one trailing dot, and the port (`default_port`
    /// when none or an empty one is given, `None` when it is not a valid
    /// port; leading zeros change nothing, as in routing).
    fn parts(text: &str, default_port: u16) -> (&str, Option<u16>) {
        let text = text.trim_matches([' ', '\t']);
        let end = match text.rfind(']') {
            Some(bracket) => bracket + 1,
            None => text.find(':').unwrap_or(text.len()),
        };
        let (name, port) = text.split_at(end);
        let port = match port {
            "" | ":" => Some(default_port),
            _ => sluice_compiler::router::host_port(text),
        };
        (name.strip_suffix('.').unwrap_or(name), port)
    }
    let Ok(host) = host.to_str() else { return false };
    let ((name, port), (other, other_port)) =
        (parts(host, default_port), parts(authority, default_port));
    name.eq_ignore_ascii_case(other) && port.is_some() && port == other_port
}

/// Give an HTTP/1.0 request that sent no `Host` the listener's
/// `http10_default_host`, if it has one, so that routing and the upstream
/// both see that host.
fn http10_default_host<B>(request: &mut Request<B>, listener: &ListenerPlan) {
    let Some(host) = &listener.http10_default_host else { return };
    if request.headers().contains_key(HOST) {
        return;
    }
    // `validate` accepted it as a host name, so it is a valid value.
    if let Ok(value) = HeaderValue::from_str(host) {
        request.headers_mut().insert(HOST, value);
    }
}

/// The host a request is for: its `Host` header without surrounding
/// whitespace. An HTTP/1.1 request must have exactly one (RFC 9112, section
/// 3.2); an HTTP/1.0 request without one is for the empty host, matched only
/// by routes without a host.
fn request_host<B>(request: &Request<B>) -> Result<&str, ProxyError> {
    let bad = |reason| Err(ProxyError::BadRequest { reason });
    // A pass over the few fields of a head costs less than hashing a name.
    let mut hosts =
        request.headers().iter().filter(|(name, _)| *name == HOST).map(|(_, value)| value);
    let value = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return bad("more than one Host header"),
        (Some(value), None) => value,
        (None, _) if request.version() == Version::HTTP_10 => return Ok(""),
        // (Over HTTP/2 the host comes in `:authority`, which stands in
        // for `Host`.)
        (None, _) if request.version() == Version::HTTP_2 => {
            return bad("HTTP/2 request without :authority or a Host header")
        }
        (None, _) => return bad("HTTP/1.1 request without a Host header"),
    };
    let Ok(host) = value.to_str() else { return bad("Host header is not visible ASCII") };
    sluice_compiler::router::check_host_header(host)
        .map_err(|reason| ProxyError::BadRequest { reason })
}

/// Why a request's target was refused, in words for the target's form:
/// a `CONNECT` (authority form) or an `OPTIONS *` (asterisk form) is not a
/// path gone wrong, and is not one a gateway of routes can serve.
fn target_refused<B>(request: &Request<B>, error: PathError) -> &'static str {
    match error {
        PathError::NotAbsolute if request.method() == Method::CONNECT => {
            "CONNECT (a tunnel to an authority) is not served"
        }
        PathError::NotAbsolute if request.uri().path() == "*" => {
            "a request for * (the server as a whole) is not served"
        }
        error => error.reason(),
    }
}

/// The normalised path followed by the query as sent.
fn upstream_target(path: &str, query: Option<&str>) -> Result<PathAndQuery, ProxyError> {
    match query {
        Some(query) => PathAndQuery::try_from(format!("{path}?{query}")),
        None => PathAndQuery::try_from(path),
    }
    .map_err(|_| ProxyError::BadRequest { reason: "request target cannot be forwarded" })
}

/// The headers and query of a request, as route conditions read them.
struct Fields<'r, B> {
    request: &'r Request<B>,
}

impl<B> RequestFields for Fields<'_, B> {
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
        // Routing sees what the upstream will: a header the client named in
        // `Connection` is removed before forwarding, so it is absent here too.
        let headers = self.request.headers();
        let hop_by_hop = headers.get_all(hyper::header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(name)))
        });
        if hop_by_hop {
            return false;
        }
        // A value that is not visible ASCII can satisfy nothing but `present`,
        // which sees it as an empty string.
        headers.get_all(name).iter().any(|v| each(v.to_str().unwrap_or("")))
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
    let source = KeyView { request, client, route: None };
    let key = route.sticky.as_deref();
    let point = key.and_then(|key| sluice_compiler::plan::key::sticky_point(key, &source));
    let point = point.unwrap_or_else(|| rand::RngExt::random::<u64>(&mut rand::rng()));
    split::choose(&route.split_weights(), point).map_or(route.pool, |side| route.split[side].pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_authority_compare_after_normalisation() {
        let same = [
            ("api.example.test", "api.example.test"),
            ("API.Example.TEST", "api.example.test"),
            ("api.example.test:80", "api.example.test"),
            ("api.example.test:", "api.example.test:80"),
            ("api.example.test.", "api.example.test"),
            ("api.example.test:8443", "API.example.test.:8443"),
            ("[::1]:80", "[::1]"),
            (" api.example.test ", "api.example.test"),
            ("api.example.test:080", "api.example.test"),
            ("api.example.test:00008443", "api.example.test:8443"),
        ];
        for (host, authority) in same {
            assert!(
                same_host(&HeaderValue::from_static(host), authority, 80),
                "{host} {authority}"
            );
        }
        let different = [
            ("admin.example.test", "api.example.test"),
            ("api.example.test:8080", "api.example.test"),
            ("api.example.test:0", "api.example.test"),
            ("api.example.test..", "api.example.test"),
            ("api.example.test:x", "api.example.test:x"),
            ("[::1]:80", "[::2]"),
            ("api.example.test:65616", "api.example.test"),
            ("api.example.test:+80", "api.example.test"),
        ];
        for (host, authority) in different {
            let host = HeaderValue::from_static(host);
            assert!(!same_host(&host, authority, 80), "{host:?} {authority}");
        }
    }

    #[test]
    fn the_default_port_of_a_host_is_the_schemes() {
        let https = [
            ("api.example.test", "api.example.test:443", true),
            ("api.example.test:443", "api.example.test", true),
            ("api.example.test:", "api.example.test:0443", true),
            ("[::1]", "[::1]:443", true),
            ("api.example.test", "api.example.test:80", false),
            ("api.example.test:80", "api.example.test:443", false),
        ];
        for (host, authority, same) in https {
            let host = HeaderValue::from_static(host);
            assert_eq!(same_host(&host, authority, 443), same, "https {host:?} {authority}");
        }
        let host = HeaderValue::from_static("api.example.test");
        assert!(!same_host(&host, "api.example.test:443", 80));
    }
}
