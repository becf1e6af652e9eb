//! The spec as written: plain serde types that mirror the YAML, with no
//! source spans. `deny_unknown_fields` everywhere, so the derived JSON Schema
//! says `additionalProperties: false` and a misspelt key is a finding.
//!
//! Values that need more than a type to be valid (durations, addresses, path
//! templates) stay strings here; `validate` checks them and `lower` turns them
//! into typed plan values. Keeping them as strings lets every finding point at
//! the exact value that is wrong instead of stopping at the first.

mod policy;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::policy::{
    AllChoices, Backoff, Choices, CircuitBreaker, HashOn, HealthCheck, OutlierDetection, Retries,
    RetryBudget, RetryFailure, RetryOn, SlowStart, StatusSpec,
};

/// A Sluice gateway spec, format version 1.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Sluice gateway spec", extend("$id" = "https://sluice.dev/schemas/spec.schema.json"))]
pub struct Spec {
    /// Spec format version. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Addresses the gateway accepts connections on.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Groups of upstream endpoints that routes send requests to.
    #[serde(default)]
    pub pools: Vec<Pool>,
    /// Which requests go to which pool. Precedence does not depend on order.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Files (or glob patterns, relative to this file) whose `listeners`, `pools` and
    /// `routes` join this spec's, so that each team can own its own file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

/// A file named by `include:`: more listeners, pools and routes for the spec
/// that includes it. It has no `version` and includes nothing itself.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Sluice spec fragment")]
pub struct Fragment {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A socket the gateway accepts HTTP/1.1 connections on.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique listener name, referenced by routes.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"), length(max = 64))]
    pub name: String,
    /// `IP:PORT` to bind, for example `127.0.0.1:8080` or `[::1]:8080`. Port 0 picks a free port.
    pub bind: String,
    /// How request paths are normalised before matching and forwarding.
    #[serde(default)]
    pub normalize: crate::normalize::Normalization,
    /// Peers whose `X-Forwarded-For`, `-Proto` and `-Host` are believed, as CIDR blocks
    /// such as `10.0.0.0/8` or `fd00::/8` (a bare IP is one address). For a request from
    /// such a peer the gateway appends the peer to `X-Forwarded-For` and keeps the other
    /// two when present; from any other peer it replaces all three. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Client connections served at once. Further clients wait in the kernel's accept
    /// queue until a connection closes. Default: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: Option<u32>,
    /// Most header fields a request head may carry; more gets 431. Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_headers: Option<u32>,
    /// Largest request head (request line and header fields), such as `16KiB`; larger gets
    /// 431. Also caps the trailer section of a chunked body. Default: `64KiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(B|KiB|MiB)$"))]
    pub max_head_size: Option<String>,
    /// Time a client has to finish sending a request head once its first byte arrived;
    /// after it the connection is closed. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub head_timeout: Option<String>,
    /// Time a keep-alive connection may sit idle between requests (or before its first
    /// one) before the gateway closes it. Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub idle_timeout: Option<String>,
    /// Time a request may wait on its client without a byte moving: for the next bytes
    /// of the request body, or for room to send the next bytes of the response. A client
    /// that stalls mid-body is answered 408; one that stops reading is closed. Default:
    /// `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub stall_timeout: Option<String>,
    /// Limits for clients that speak HTTP/2 (cleartext, with prior knowledge).
    #[serde(default)]
    pub http2: Http2Limits,
    /// What the gateway does with `X-Request-Id`. `preserve` keeps the id a client sent
    /// when it is well formed (1 to 128 visible ASCII characters) and otherwise makes a
    /// new one; `generate` always makes a new one; `off` leaves the field alone. With
    /// `preserve` or `generate`, the upstream receives the id and the client gets it
    /// back in the response. Default: `off`.
    #[serde(default, skip_serializing_if = "RequestId::is_default")]
    pub request_id: RequestId,
    /// The host an HTTP/1.0 request without a `Host` header is for, such as
    /// `api.example.test`: it is routed as if it had sent that `Host`, and the upstream
    /// receives it as its `Host`. Without this setting such a request is for the empty
    /// host, which only routes without a `host` match. An HTTP/1.1 request without
    /// `Host` is refused with 400 either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub http10_default_host: Option<String>,
}

/// What a listener does with the `X-Request-Id` of each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestId {
    /// Keep a well-formed id the client sent; give a request without one (or with a
    /// malformed one) a new id. The id is forwarded and echoed in the response.
    Preserve,
    /// Give every request a new id, whatever the client sent; forwarded and echoed.
    Generate,
    /// Pass `X-Request-Id` through untouched, and add none. The default.
    #[default]
    Off,
}

impl RequestId {
    fn is_default(&self) -> bool {
        *self == RequestId::Off
    }
}

/// Self-protection for HTTP/2 client connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http2Limits {
    /// Streams (requests) one connection may have open at once. Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_concurrent_streams: Option<u32>,
    /// Streams the client may reset before the gateway has served them, at once, before
    /// the connection is closed with `ENHANCE_YOUR_CALM` (the rapid-reset attack,
    /// CVE-2023-44487). Default: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_pending_resets: Option<u32>,
}

/// Default for [`Http2Limits::max_concurrent_streams`].
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default for [`Http2Limits::max_pending_resets`].
pub const DEFAULT_H2_MAX_PENDING_RESETS: u32 = 20;

/// Default for [`Listener::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
/// Default for [`Listener::max_headers`], the same as hyper's.
pub const DEFAULT_MAX_HEADERS: u32 = 100;
/// Default for [`Listener::max_head_size`]: 64 KiB, about Envoy's 60 KiB.
pub const DEFAULT_MAX_HEAD_SIZE: u64 = 64 * 1024;
/// Default for [`Listener::head_timeout`], as HAProxy's usual `timeout http-request`.
pub const DEFAULT_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Default for [`Listener::idle_timeout`].
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Default for [`Listener::stall_timeout`] and [`Pool::stall_timeout`], as nginx's
/// `client_body_timeout`, `send_timeout` and `proxy_read_timeout`.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Default for [`Pool::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Default for [`Pool::idle_timeout`]: below the shortest common upstream keep-alive
/// (Node.js closes idle connections after 5 s; nginx after 75 s), so the gateway drops an
/// idle connection before the upstream can close it under a request.
pub const DEFAULT_POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// A set of upstream endpoints and the algorithm that spreads requests over them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Unique pool name, referenced by a route's `to`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"), length(max = 64))]
    pub name: String,
    /// Balancing algorithm. Default: `round_robin`.
    #[serde(default)]
    pub balance: Balance,
    /// The endpoints of the pool; at least one.
    #[schemars(length(min = 1))]
    pub endpoints: Vec<Endpoint>,
    /// Time allowed to open a TCP connection to an endpoint. When it passes, or the
    /// connection is refused, the request goes to another endpoint of the pool, since
    /// nothing was sent. Default: `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub connect_timeout: Option<String>,
    /// How long an idle upstream connection is kept for reuse. Keep it below the
    /// upstream's own keep-alive timeout. Default: `4s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub idle_timeout: Option<String>,
    /// Time an exchange may wait on an endpoint without a byte moving, once the endpoint
    /// has the request: for the next bytes of the response head or body, or for the
    /// endpoint to take the next bytes of the request body. A stalled head is a timeout
    /// (504, and a `timeout` retry condition); a stalled body ends the response early.
    /// Default: `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub stall_timeout: Option<String>,
    /// The protocol spoken to the endpoints. Default: `http1`.
    #[serde(default)]
    pub protocol: Protocol,
    /// For `least_request` and `peak_ewma`: how many distinct random endpoints each
    /// pick compares, or `all`. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Choices>,
    /// For `peak_ewma`: the time over which an endpoint's latency estimate forgets
    /// what it saw, so that an endpoint that was slow is tried again once that
    /// time has passed. Shorter follows changes faster; longer smooths over
    /// noise. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub ewma_window: Option<String>,
    /// For `consistent_hash` (required there): the request key, `{ header: NAME }`,
    /// `{ cookie: NAME }`, `{ query: NAME }`, `{ path_param: NAME }` or `client_address`.
    /// A request without the key goes to a random endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// Active health checks of every endpoint. Default: none (every endpoint is healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Ejection of endpoints that fail real requests. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// When fewer than this percentage of the endpoints are healthy and not ejected,
    /// spread requests over all of them rather than overload the few left. Default: 0
    /// (never; with no endpoint left, requests get 503 at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub panic_threshold_percent: Option<u8>,
    /// Ramp an endpoint that comes back into rotation up to its full weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
    /// Limits on connections, waiting and in-flight requests. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// How often endpoints named by DNS are looked up again. A failed lookup keeps
    /// the addresses of the last one that worked. Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub resolve_interval: Option<String>,
}

/// How often endpoints named by DNS are looked up again, unless a pool says.
pub const DEFAULT_RESOLVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// The protocol a pool's endpoints speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 over keep-alive connections; upgrades such as WebSocket pass through.
    #[default]
    Http1,
    /// HTTP/2 in cleartext with prior knowledge (h2c), many requests on one connection;
    /// what gRPC services speak.
    Http2,
}

/// A balancing algorithm, as named in a spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each endpoint in turn, ignoring weights.
    #[default]
    RoundRobin,
    /// Each endpoint in proportion to its weight, interleaved smoothly.
    WeightedRoundRobin,
    /// A uniformly random endpoint, ignoring weights.
    Random,
    /// The less loaded (requests in flight divided by weight) of `choices` random
    /// endpoints (two by default).
    LeastRequest,
    /// The lowest peak moving average of latency times load, per weight, of `choices`
    /// random endpoints; failures count as slow.
    PeakEwma,
    /// The endpoint that owns the request's `hash_on` key on a weighted hash ring, so
    /// a key keeps its endpoint while the pool stays the same.
    ConsistentHash,
}

impl Balance {
    /// Every algorithm, in the order the documentation lists them.
    pub const ALL: [Balance; 6] = [
        Balance::RoundRobin,
        Balance::WeightedRoundRobin,
        Balance::Random,
        Balance::LeastRequest,
        Balance::PeakEwma,
        Balance::ConsistentHash,
    ];

    /// The name used in specs and scenarios.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::WeightedRoundRobin => "weighted_round_robin",
            Balance::Random => "random",
            Balance::LeastRequest => "least_request",
            Balance::PeakEwma => "peak_ewma",
            Balance::ConsistentHash => "consistent_hash",
        }
    }

    /// Whether endpoint weights set shares under the algorithm (weight 0
    /// drains an endpoint under every one).
    pub fn is_weighted(self) -> bool {
        !matches!(self, Balance::RoundRobin | Balance::Random)
    }

    /// Whether the algorithm reads `choices`.
    pub fn samples(self) -> bool {
        matches!(self, Balance::LeastRequest | Balance::PeakEwma)
    }
}

/// One upstream server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `IP:PORT` or `HOST:PORT` of the upstream server, for example `127.0.0.1:9101`
    /// or `orders.internal:8080`. A name is looked up when the plan loads and every
    /// `resolve_interval`; each address it resolves to is an endpoint with this weight.
    pub address: String,
    /// Relative share of traffic for weighted algorithms. `0` drains the endpoint
    /// under every algorithm: it receives no requests. Default: 1.
    #[serde(default = "default_weight")]
    #[schemars(range(max = 10000))]
    pub weight: u32,
}

/// The largest endpoint weight a spec may give.
pub const MAX_WEIGHT: u32 = 10_000;

fn default_weight() -> u32 {
    1
}

/// A rule that sends matching requests to a pool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique route name, shown in logs, `explain` and simulation reports.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"), length(max = 128))]
    pub name: String,
    /// Listeners this route serves. Default: every listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub listeners: Option<Vec<String>>,
    /// Conditions a request must meet.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// The pool that serves matching requests, or a weighted split over several
    /// pools (a canary release): `[{ pool: orders, weight: 95 }, { pool: orders-v2, weight: 5 }]`.
    pub to: Target,
    /// For a split, what keeps a client on one side while the weights stay the same:
    /// `{ header: NAME }`, `{ cookie: NAME }` or `client_address`. A request without the
    /// key is split at random. Default: every request is split at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Time allowed for the upstream to start its response, such as `250ms`, `5s` or `1m`.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub timeout: Option<String>,
    /// Largest request body accepted, such as `512KiB` or `10MiB`. A larger declared
    /// `Content-Length` gets 413 before anything is sent upstream; a streamed body is
    /// counted as it passes and cut off with 413 when it goes over. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(B|KiB|MiB|GiB)$"))]
    pub max_body_size: Option<String>,
    /// The path the upstream receives: `normalized` (the default: the path the route
    /// matched), or `original`, byte for byte as the client sent it, for a service that
    /// must see its own spelling. Matching always uses the normalised path.
    #[serde(default, skip_serializing_if = "ForwardPath::is_normalized")]
    pub forward_path: ForwardPath,
    /// Retries of failed tries. Without it, a request whose connection could not be
    /// opened (so nothing was sent) still goes to another endpoint, once per endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// The most retries may add to the route's traffic. Default: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// Where a route sends its requests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Target {
    /// One pool, by name.
    Pool(String),
    /// Several pools, each taking a share in proportion to its weight.
    Split(#[schemars(length(min = 1))] Vec<WeightedPool>),
}

impl Target {
    /// `(pool name, weight, pointer below the route's `to`)` of every side.
    pub fn sides(&self) -> Vec<(&str, u32, String)> {
        match self {
            Target::Pool(name) => vec![(name.as_str(), 1, String::new())],
            Target::Split(sides) => sides
                .iter()
                .enumerate()
                .map(|(i, s)| (s.pool.as_str(), s.weight, format!("/{i}/pool")))
                .collect(),
        }
    }
}

/// One side of a weighted split.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedPool {
    /// The pool's name.
    pub pool: String,
    /// Relative share of the route's requests.
    #[schemars(range(max = 10000))]
    pub weight: u32,
}

/// The request key that pins a client to one side of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Sticky {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// The client's IP address.
    ClientAddress,
}

/// The request conditions of a route. All given conditions must hold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Host to match: `api.example.test`, or `*.example.test` for one or more labels
    /// before the suffix. Case and a trailing dot are ignored, and so is a port in the
    /// Host header. Default: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path template: literal segments, `{name}` for one non-empty segment, `{name:regex}`
    /// for one segment the regex matches whole, and a final `{*name}` for the rest of the
    /// path, possibly empty. Give `path` or `path_regex`, not both.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// A regex the whole normalised path must match, for the rare route a template
    /// cannot express. Such routes come after every template route of the same host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// Methods to match. Default: every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub methods: Option<Vec<MethodName>>,
    /// Whether `/teams` and `/teams/` are different paths (`strict`, the default) or
    /// the same (`ignore`: the route matches both, whichever way its template is written).
    #[serde(default, skip_serializing_if = "TrailingSlash::is_strict")]
    pub trailing_slash: TrailingSlash,
    /// Whether literal path segments compare with case (`sensitive`, the default) or
    /// without ASCII case (`insensitive`). An exact-case literal of another route
    /// still outranks a case-insensitive one.
    #[serde(default, skip_serializing_if = "PathCase::is_sensitive")]
    pub case: PathCase,
    /// Header conditions, all of which must hold. Names ignore case; a repeated header
    /// matches when any of its values does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query-parameter conditions, all of which must hold. Names and values are
    /// compared percent-decoded; a repeated parameter matches when any value does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,
    /// Cookie conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<ValueMatch>,
}

/// How a route compares literal path segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathCase {
    /// `/Users` and `/users` are different paths.
    #[default]
    Sensitive,
    /// Literal segments match regardless of ASCII case.
    Insensitive,
}

impl PathCase {
    fn is_sensitive(&self) -> bool {
        *self == PathCase::Sensitive
    }
}

impl TrailingSlash {
    fn is_strict(&self) -> bool {
        *self == TrailingSlash::Strict
    }
}

/// Which spelling of the path a route forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardPath {
    /// The normalised path, the one routing matched.
    #[default]
    Normalized,
    /// The path exactly as the client sent it.
    Original,
}

impl ForwardPath {
    fn is_normalized(&self) -> bool {
        *self == ForwardPath::Normalized
    }
}

/// How a route treats a trailing slash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrailingSlash {
    /// `/teams` and `/teams/` are different paths.
    #[default]
    Strict,
    /// The route matches the path with and without a trailing slash.
    Ignore,
}

/// A condition on one header, query parameter or cookie: give `name` and exactly
/// one of `exact`, `prefix`, `regex` or `present`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    /// The header, parameter or cookie name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The value must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The whole value must match this regular expression (`regex` crate syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `true`: the name must appear; `false`: it must not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// An HTTP method a route can match. `CONNECT` is not among them: its target
/// is an authority, not a path, so no route template can match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum MethodName {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    PATCH,
    OPTIONS,
    TRACE,
}

/// Parse a duration as written in specs: a whole number followed by `ms`,
/// `s`, `m` or `h`, such as `250ms`. `None` when it does not parse or is too
/// long; [`duration`] says which.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    duration(text).ok()
}

/// Why a spec duration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not a whole number followed by a unit.
    Syntax,
    /// More nanoseconds than 64 bits hold (about 584 years), the limit of
    /// the clocks that time it.
    TooLong,
}

/// The longest duration a spec may give: 2^64 - 1 nanoseconds, about 584
/// years.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_nanos(u64::MAX);

/// Parse a duration as written in specs, saying why one is refused.
pub fn duration(text: &str) -> Result<std::time::Duration, DurationError> {
    use std::time::Duration;
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or(DurationError::Syntax)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(DurationError::Syntax);
    }
    let unit_ms: u128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError::Syntax),
    };
    // Only digits are left, so a number that does not parse is too large.
    let n: u128 = number.parse().map_err(|_| DurationError::TooLong)?;
    let ms = n.checked_mul(unit_ms).ok_or(DurationError::TooLong)?;
    let ns = ms.checked_mul(1_000_000).ok_or(DurationError::TooLong)?;
    u64::try_from(ns).map(Duration::from_nanos).map_err(|_| DurationError::TooLong)
}

/// Parse a size as written in specs: a whole number of bytes followed by `B`,
/// `KiB`, `MiB` or `GiB`, such as `64KiB`. `None` when it does not parse or
/// overflows.
pub fn parse_size(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Parse a CIDR block such as `10.0.0.0/8` or `fd00::/8` into its network
/// address and prefix length; a bare address is a block of one. `None` when
/// it does not parse, the prefix is too long for the family, or the address
/// has bits set beyond the prefix (`10.0.0.1/8`).
pub fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    use std::net::IpAddr;
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let bits: u8 = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    if prefix > bits {
        return None;
    }
    let host_bits = match address {
        IpAddr::V4(v4) => {
            u128::from(u32::from(v4)) & u128::MAX.checked_shr(96 + u32::from(prefix)).unwrap_or(0)
        }
        IpAddr::V6(v6) => u128::from(v6) & u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0),
    };
    (host_bits == 0).then_some((address, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_by_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "5", "s", "5 s", "5sec", "-1s", "1.5s", "99999999999999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        // Up to 2^64 - 1 nanoseconds, the limit of the clocks that time it.
        assert_eq!(duration("5124095h"), Ok(Duration::from_secs(5_124_095 * 3600)));
        assert_eq!(duration("18446744073709ms"), Ok(Duration::from_millis(18_446_744_073_709)));
        for long in ["5124096h", "18446744073710ms", "99999999999999h", "99999999999999999999999s"]
        {
            assert_eq!(duration(long), Err(DurationError::TooLong), "{long}");
        }
        assert_eq!(duration("5 s"), Err(DurationError::Syntax));
    }

    #[test]
    fn sizes_parse_by_unit() {
        assert_eq!(parse_size("0B"), Some(0));
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        for bad in ["", "5", "KiB", "5 KiB", "5kb", "1.5MiB", "99999999999999999GiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn cidr_blocks_parse_and_refuse_host_bits() {
        let v4 = |s: &str| parse_cidr(s).map(|(a, p)| (a.to_string(), p));
        assert_eq!(v4("10.0.0.0/8"), Some(("10.0.0.0".into(), 8)));
        assert_eq!(v4("127.0.0.1"), Some(("127.0.0.1".into(), 32)));
        assert_eq!(v4("0.0.0.0/0"), Some(("0.0.0.0".into(), 0)));
        assert_eq!(v4("fd00::/8"), Some(("fd00::".into(), 8)));
        assert_eq!(v4("::1"), Some(("::1".into(), 128)));
        assert_eq!(v4("::/0"), Some(("::".into(), 0)));
        for bad in ["", "10.0.0.1/8", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/+8", "x/8"] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }
}
