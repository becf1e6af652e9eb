//! The compiled plan: what `serve` and `simulate` execute.
//!
//! A plan is immutable once built and cheap to share behind an `Arc`. Names
//! are resolved to indices, durations and addresses are parsed, and routes
//! are lowered into the [`Router`] trie.
//!
//! On disk a plan is one header line, `sluice-plan <format> sha256:<hex>`,
//! followed by the plan in a compact binary encoding (see `file`). The
//! checksum covers that body, so a truncated or edited file is refused, and
//! the format number lets a newer Sluice say plainly that an old plan must
//! be recompiled.

mod address;
mod file;
pub mod key;
mod policy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::condition::{NoFields, RequestFields};
use crate::method::{Method, MethodSet};
use crate::router::{Captures, HostPattern, RequestFacts, RouteId, Router};
use crate::spec::Balance;

pub use self::address::{AddressError, EndpointAddress};
pub use self::policy::{
    algorithm, probe_target, HealthCheckPlan, ProbePathError, RetryPlan, DEFAULT_REPLAY_BODY_LIMIT,
    EVERY_ENDPOINT,
};

/// The plan file format this build reads and writes.
pub const PLAN_FORMAT: u32 = 5;
const MAGIC: &str = "sluice-plan";

/// A compiled, validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub listeners: Vec<ListenerPlan>,
    pub pools: Vec<PoolPlan>,
    pub routes: Vec<RoutePlan>,
    pub router: Router,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerPlan {
    pub name: String,
    pub bind: SocketAddr,
    pub normalize: crate::normalize::Normalization,
    /// Peers whose `X-Forwarded-*` headers are kept: `(network, prefix length)`.
    pub trusted_proxies: Vec<(std::net::IpAddr, u8)>,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: u32,
    /// Most header fields in a request head (431 beyond).
    pub max_headers: u32,
    /// Largest request head in bytes (431 beyond).
    pub max_head_size: u64,
    /// Time to finish a request head once its first byte arrived.
    pub head_timeout: Duration,
    /// Time a connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Time a request may wait on its client without a byte moving.
    #[serde(default = "default_stall")]
    pub stall_timeout: Duration,
    /// Streams one HTTP/2 client connection may have open at once.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// Streams an HTTP/2 client may reset before they are served, at once.
    #[serde(default = "default_h2_resets")]
    pub h2_max_pending_resets: u32,
    /// What the listener does with `X-Request-Id`.
    #[serde(default)]
    pub request_id: crate::spec::RequestId,
    /// The `Host` given to an HTTP/1.0 request that sent none.
    #[serde(default)]
    pub http10_default_host: Option<String>,
}

fn default_stall() -> Duration {
    crate::spec::DEFAULT_STALL_TIMEOUT
}

fn default_h2_streams() -> u32 {
    crate::spec::DEFAULT_H2_MAX_CONCURRENT_STREAMS
}

fn default_h2_resets() -> u32 {
    crate::spec::DEFAULT_H2_MAX_PENDING_RESETS
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolPlan {
    pub name: String,
    pub balance: Balance,
    pub endpoints: Vec<EndpointPlan>,
    /// Time allowed to open a connection to an endpoint.
    pub connect_timeout: Duration,
    /// How long an idle upstream connection stays pooled.
    pub idle_timeout: Duration,
    /// Time an exchange may wait on an endpoint without a byte moving.
    #[serde(default = "default_stall")]
    pub stall_timeout: Duration,
    /// The protocol spoken to the endpoints.
    #[serde(default)]
    pub protocol: crate::spec::Protocol,
    /// Endpoints compared per pick by sampling algorithms; `None` is two.
    #[serde(default)]
    pub choices: Option<usize>,
    /// Time over which `peak_ewma`'s latency estimates decay; `None` is
    /// the algorithm's default.
    #[serde(default)]
    pub ewma_window: Option<Duration>,
    /// The request key of `consistent_hash`.
    #[serde(default)]
    pub hash_on: Option<crate::spec::HashOn>,
    /// Panic threshold, slow start and endpoint identities for the balancer.
    #[serde(default)]
    pub balance_settings: sluice_traffic::BalanceSettings,
    /// Active health checks.
    #[serde(default)]
    pub health_check: Option<HealthCheckPlan>,
    /// Passive outlier detection.
    #[serde(default)]
    pub outlier_detection: Option<sluice_traffic::OutlierSettings>,
    /// Circuit breaker limits (`u32::MAX` is none).
    #[serde(default)]
    pub circuit_breaker: sluice_traffic::CircuitLimits,
    /// How often the runtime looks up the endpoints named by DNS again.
    #[serde(default = "default_resolve_interval")]
    pub resolve_interval: Duration,
}

fn default_resolve_interval() -> Duration {
    crate::spec::DEFAULT_RESOLVE_INTERVAL
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointPlan {
    /// An IP address and port, or a DNS name and port that the runtime resolves.
    pub address: EndpointAddress,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct RoutePlan {
    pub name: String,
    /// Index into [`Plan::pools`]: the route's pool, or the first side of its split.
    pub pool: usize,
    /// For a weighted split, each side's pool index and weight; empty otherwise.
    pub split: Vec<SplitSide>,
    /// What pins a client to one side of the split (boxed: few routes have one).
    pub sticky: Option<Box<crate::spec::Sticky>>,
    /// Time the upstream has to start its response.
    pub timeout: Option<Duration>,
    /// Largest request body in bytes (413 beyond).
    pub max_body_size: Option<u64>,
    /// Forward the path as the client sent it rather than normalised.
    pub forward_original_path: bool,
    /// Retry policy and per-try timeout, shared by the routes that have the same.
    pub retries: Arc<RetryPlan>,
    /// Bound on retries across the route's requests.
    pub retry_budget: Option<sluice_traffic::BudgetSettings>,
    /// The host pattern, shared by the routes that have the same.
    pub host: Arc<HostPattern>,
    /// The path template as written, for logs and `explain` (empty for a
    /// `path_regex` route), shared by the routes that have the same.
    pub path: Arc<str>,
    /// The whole-path regex of a `path_regex` route (boxed: few routes have one).
    pub path_regex: Option<Box<crate::condition::Pattern>>,
    pub methods: MethodSet,
    /// Bit `i` set when the route serves listener `i`.
    pub listeners: u64,
}

/// One side of a route's weighted split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSide {
    pub pool: usize,
    pub weight: u32,
}

impl RoutePlan {
    /// Whether `serve` refuses a TRACE this route matched (405): it does
    /// unless the route lists TRACE among its methods, since a TRACE answer
    /// reflects the request, cookies and credentials included, back to the
    /// client.
    pub fn refuses_trace(&self) -> bool {
        self.methods.is_any()
    }

    /// The pools this route can send to, with their weights: its one pool with
    /// weight 1, or the sides of its split.
    pub fn sides(&self) -> Vec<SplitSide> {
        if self.split.is_empty() {
            vec![SplitSide { pool: self.pool, weight: 1 }]
        } else {
            self.split.clone()
        }
    }

    /// Names of the captures, in the order [`Captures`] holds them.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        crate::template::Template::param_names_in(&self.path)
    }

    /// The weights of the split's sides, in order, for `sluice_traffic::split::choose`.
    pub fn split_weights(&self) -> Vec<u32> {
        self.split.iter().map(|s| s.weight).collect()
    }
}

/// Why a plan file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("not a sluice plan file (it does not start with `{MAGIC}`)")]
    NotAPlan,
    #[error("plan file format {found} is not supported by this sluice, which reads format {PLAN_FORMAT}; compile the spec again")]
    Format { found: String },
    #[error("plan file is corrupt: its checksum does not match its contents")]
    Checksum,
    #[error("plan file is corrupt: {0}")]
    Corrupt(String),
}

impl Plan {
    /// The best route for a request, with its captures written to `captures`.
    pub fn lookup(&self, request: &RequestFacts<'_>, captures: &mut Captures) -> Option<RouteId> {
        self.router.lookup(request, captures)
    }

    /// [`Plan::lookup`] for a request whose headers, query and cookies
    /// routes may also match on.
    pub fn lookup_with(
        &self,
        request: &RequestFacts<'_>,
        fields: &dyn RequestFields,
        captures: &mut Captures,
    ) -> Option<RouteId> {
        self.router.lookup_with(request, fields, captures)
    }

    /// Convenience over [`Plan::lookup`] for callers that hold raw request parts.
    pub fn lookup_parts(
        &self,
        listener: usize,
        host: &str,
        method: &[u8],
        path: &str,
        captures: &mut Captures,
    ) -> Option<RouteId> {
        self.lookup_parts_with(listener, host, method, path, &NoFields, captures)
    }

    /// [`Plan::lookup_parts`] with access to headers, query and cookies.
    pub fn lookup_parts_with(
        &self,
        listener: usize,
        host: &str,
        method: &[u8],
        path: &str,
        fields: &dyn RequestFields,
        captures: &mut Captures,
    ) -> Option<RouteId> {
        let facts = RequestFacts {
            listener,
            host: crate::router::host_name(host),
            method: Method::from_bytes(method),
            path,
        };
        self.lookup_with(&facts, fields, captures)
    }

    /// The `(name, value)` pairs a lookup captured from `path`.
    pub fn params<'p>(
        &'p self,
        route: RouteId,
        path: &'p str,
        captures: &'p Captures,
    ) -> impl Iterator<Item = (&'p str, &'p str)> + 'p {
        let names = self.routes[route as usize].param_names();
        names
            .zip(captures.ranges())
            .map(move |(n, &(s, e))| (n, path.get(s as usize..e as usize).unwrap_or("")))
    }

    /// Index of the listener with this name.
    pub fn listener_index(&self, name: &str) -> Option<usize> {
        self.listeners.iter().position(|l| l.name == name)
    }

    /// Index of the route with this name.
    pub fn route_index(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.name == name)
    }

    /// Index of the pool with this name.
    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// Serialise to the plan file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = file::write(self);
        let digest = hex(&Sha256::digest(&body));
        let mut out = format!("{MAGIC} {PLAN_FORMAT} sha256:{digest}\n").into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Read a plan file, checking its format, checksum and every index in it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Plan, PlanError> {
        let newline = bytes.iter().position(|&b| b == b'\n').ok_or(PlanError::NotAPlan)?;
        let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| PlanError::NotAPlan)?;
        let body = &bytes[newline + 1..];

        let mut fields = header.split(' ');
        if fields.next() != Some(MAGIC) {
            return Err(PlanError::NotAPlan);
        }
        let format = fields.next().unwrap_or("");
        if format != PLAN_FORMAT.to_string() {
            return Err(PlanError::Format { found: format.to_owned() });
        }
        let digest = fields.next().and_then(|f| f.strip_prefix("sha256:"));
        if digest != Some(hex(&Sha256::digest(body)).as_str()) {
            return Err(PlanError::Checksum);
        }

        let plan = file::read(body).map_err(PlanError::Corrupt)?;
        plan.validate().map_err(PlanError::Corrupt)?;
        Ok(plan)
    }

    /// Whether `bytes` look like a plan file rather than a spec.
    pub fn is_plan_file(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC.as_bytes())
    }

    fn validate(&self) -> Result<(), String> {
        if self.listeners.len() > 64 {
            return Err("more than 64 listeners".into());
        }
        for route in &self.routes {
            if route.split.iter().any(|s| s.pool >= self.pools.len()) {
                return Err(format!("route `{}` splits to a pool that does not exist", route.name));
            }
            if route.pool >= self.pools.len() {
                return Err(format!("route `{}` points at a pool that does not exist", route.name));
            }
        }
        if let Some(pool) = self.pools.iter().find(|p| p.endpoints.is_empty()) {
            return Err(format!("pool `{}` has no endpoints", pool.name));
        }

        // The rules `check` enforces on a spec hold for a plan from any source.
        let mut names = std::collections::HashSet::new();
        if let Some(l) = self.listeners.iter().find(|l| !names.insert(l.name.as_str())) {
            return Err(format!("listener name `{}` is used twice", l.name));
        }
        for pool in &self.pools {
            if pool.endpoints.iter().any(|e| e.weight > crate::spec::MAX_WEIGHT) {
                return Err(format!(
                    "pool `{}` has a weight above {}",
                    pool.name,
                    crate::spec::MAX_WEIGHT
                ));
            }
            let weighted =
                matches!(pool.balance, Balance::WeightedRoundRobin | Balance::LeastRequest);
            if weighted && pool.endpoints.iter().all(|e| e.weight == 0) {
                return Err(format!("every endpoint of pool `{}` has weight 0", pool.name));
            }
        }
        for route in &self.routes {
            if route.timeout.is_some_and(|t| t.is_zero()) {
                return Err(format!("route `{}` has a zero timeout", route.name));
            }
        }
        self.router.validate(self.routes.len())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, SourceFile};

    fn plan() -> Plan {
        let spec = "version: 1\nlisteners: [{ name: a, bind: 127.0.0.1:0 }]\n\
                    pools: [{ name: p, endpoints: [{ address: 127.0.0.1:9 }] }]\n\
                    routes: [{ name: r, match: { path: \"/x/{id}\" }, to: p }]\n";
        check(SourceFile::new("t.yaml", spec)).plan.unwrap()
    }

    #[test]
    fn round_trips_through_the_file_format() {
        let p = plan();
        let back = Plan::from_bytes(&p.to_bytes()).unwrap();
        let mut caps = Captures::new();
        let r = back.lookup_parts(0, "h", b"GET", "/x/7", &mut caps).unwrap();
        assert_eq!(back.params(r, "/x/7", &caps).collect::<Vec<_>>(), [("id", "7")]);
    }

    #[test]
    fn every_route_field_survives_the_file_format() {
        let spec = "version: 1
listeners: [{ name: a, bind: 127.0.0.1:0 }, { name: b, bind: 127.0.0.1:1 }]
pools:
  - { name: p, endpoints: [{ address: 127.0.0.1:9 }, { address: 127.0.0.1:10 }] }
  - { name: q, endpoints: [{ address: 127.0.0.1:11 }] }
routes:
  - name: split
    listeners: [b]
    match: { host: \"*.example.test\", path: \"/orders/{id:[0-9]+}/{*rest}\", methods: [GET] }
    to: [{ pool: p, weight: 80 }, { pool: q, weight: 20 }]
    sticky: { header: x-user }
    timeout: 1500ms
    max_body_size: 1MiB
    forward_path: original
    retries: { attempts: 3, on: [connect_failure, reset, 503], per_try_timeout: 500ms }
    retry_budget: { percent: 20, min_per_second: 10 }
  - name: legacy
    match: { host: api.example.test:8443, path_regex: \"/legacy/[0-9]+\" }
    to: q
  - name: folded
    match: { path: \"/Teams/{team}/\", case: insensitive, trailing_slash: ignore,
             headers: [{ name: x-v, exact: \"2\" }] }
    to: p
";
        let checked = check(SourceFile::new("t.yaml", spec));
        let plan = checked.plan.unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
        let back = Plan::from_bytes(&plan.to_bytes()).unwrap();
        assert_eq!(format!("{:?}", back.routes), format!("{:?}", plan.routes));
        assert_eq!(format!("{:?}", back.router), format!("{:?}", plan.router));
        assert_eq!(back.to_bytes(), plan.to_bytes());
    }

    /// A plan file with a good checksum over `body`.
    fn file_of(body: &[u8]) -> Vec<u8> {
        let digest = hex(&Sha256::digest(body));
        let mut file = format!("{MAGIC} {PLAN_FORMAT} sha256:{digest}\n").into_bytes();
        file.extend_from_slice(body);
        file
    }

    /// The body of a plan file.
    fn body_of(bytes: &[u8]) -> &[u8] {
        &bytes[bytes.iter().position(|&b| b == b'\n').unwrap() + 1..]
    }

    #[test]
    fn refuses_a_route_that_points_past_a_shared_table() {
        let plan = plan();
        let edits: [fn(&mut file::Tables<'_>); 3] =
            [|t| t.routes[0].host = 7, |t| t.routes[0].retries = 7, |t| t.routes[0].path = 7];
        for edit in edits {
            let mut tables = file::tables(&plan);
            edit(&mut tables);
            let err = Plan::from_bytes(&file_of(&file::encode(&plan, &tables))).unwrap_err();
            assert!(err.to_string().contains("does not exist"), "{err}");
        }
    }

    #[test]
    fn refuses_a_route_count_past_the_end_of_the_body() {
        let plan = plan();
        let mut tables = file::tables(&plan);
        tables.routes.clear();
        let mut body = file::encode(&Plan { routes: Vec::new(), ..plan.clone() }, &tables);
        // Each table is a count and then its entries; the route count is the
        // byte after the listeners, pools, hosts, retry policies and paths, which
        // this plan's tables leave at their encoded sizes.
        let before = [
            postcard::to_allocvec(&plan.listeners).unwrap().len(),
            postcard::to_allocvec(&plan.pools).unwrap().len(),
            postcard::to_allocvec(&tables.hosts).unwrap().len(),
            postcard::to_allocvec(&tables.retry_policies).unwrap().len(),
            postcard::to_allocvec(&tables.paths).unwrap().len(),
        ];
        let at: usize = before.iter().sum();
        assert_eq!(body[at], 0, "no routes");
        body.splice(at..=at, postcard::to_allocvec(&1_000_000_usize).unwrap());
        let err = Plan::from_bytes(&file_of(&body)).unwrap_err();
        assert!(err.to_string().contains("claims 1000000 routes"), "{err}");
    }

    #[test]
    fn refuses_trie_counts_that_do_not_add_up() {
        let plan = plan();
        let body = body_of(&plan.to_bytes()).to_vec();
        // The router comes last: no exact hosts (0), no wildcards (0), a
        // root for any host (1, 0), then the node count and each node's
        // six counts and its parameter child.
        let router = postcard::to_allocvec(&plan.router).unwrap();
        let at = body.len() - router.len();
        assert_eq!(body[at..at + 5], [0, 0, 1, 0, 3], "`/`, `x` and `{{id}}`");
        // The root's literal count: `x` is its one literal child.
        assert_eq!(body[at + 5], 1);
        for (count, says) in [(2, "claim more entries"), (0, "no node claims")] {
            let mut body = body.clone();
            body[at + 5] = count;
            let err = Plan::from_bytes(&file_of(&body)).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
        let mut body = body.clone();
        body.splice(at + 4..at + 5, postcard::to_allocvec(&1_000_000_usize).unwrap());
        // Read as nodes, what follows the claimed count runs out or stops
        // making sense long before a million nodes.
        let err = Plan::from_bytes(&file_of(&body)).unwrap_err();
        assert!(matches!(err, PlanError::Corrupt(_)), "{err}");
    }

    #[test]
    fn refuses_a_body_cut_short_or_with_bytes_left_over() {
        let body = body_of(&plan().to_bytes()).to_vec();
        for cut in [0, 1, body.len() / 2, body.len() - 1] {
            let err = Plan::from_bytes(&file_of(&body[..cut])).unwrap_err();
            assert!(matches!(err, PlanError::Corrupt(_)), "{err}");
            assert!(err.to_string().contains("ends early"), "{cut}: {err}");
        }
        let mut longer = body.clone();
        longer.push(0);
        let err = Plan::from_bytes(&file_of(&longer)).unwrap_err();
        assert!(err.to_string().contains("1 bytes follow the plan"), "{err}");
    }

    #[test]
    fn refuses_an_old_json_plan_with_the_recompile_error() {
        let file = "sluice-plan 2 sha256:00\n{\"listeners\":[]}";
        let err = Plan::from_bytes(file.as_bytes()).unwrap_err();
        assert!(matches!(err, PlanError::Format { .. }), "{err}");
        assert!(err.to_string().contains("compile the spec again"), "{err}");
    }

    #[test]
    fn refuses_a_format_3_plan_with_the_recompile_error() {
        // Format 3 held each trie node's children in nested lists.
        let file = "sluice-plan 3 sha256:00\n\0\0";
        let err = Plan::from_bytes(file.as_bytes()).unwrap_err();
        assert!(matches!(err, PlanError::Format { .. }), "{err}");
        assert!(err.to_string().contains("format 3 is not supported"), "{err}");
    }

    #[test]
    fn refuses_foreign_corrupt_and_newer_files() {
        assert!(matches!(Plan::from_bytes(b"version: 1\n"), Err(PlanError::NotAPlan)));
        assert!(matches!(Plan::from_bytes(b""), Err(PlanError::NotAPlan)));
        let mut bytes = plan().to_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(Plan::from_bytes(&bytes), Err(PlanError::Checksum)));
        let bytes = plan().to_bytes();
        // From the space after the format number on: the checksum and the body.
        let rest = &bytes[format!("{MAGIC} {PLAN_FORMAT}").len()..];
        for other in [PLAN_FORMAT - 1, PLAN_FORMAT + 1] {
            let mut file = format!("{MAGIC} {other}").into_bytes();
            file.extend_from_slice(rest);
            let err = Plan::from_bytes(&file).unwrap_err();
            assert!(matches!(err, PlanError::Format { .. }), "{err}");
            assert!(err.to_string().contains("compile the spec again"), "{err}");
        }
    }

    #[test]
    fn refuses_well_checksummed_plans_with_bad_indices() {
        let mut p = plan();
        p.routes[0].pool = 5;
        assert!(matches!(Plan::from_bytes(&p.to_bytes()), Err(PlanError::Corrupt(_))));

        let mut p = plan();
        p.pools[0].endpoints.clear();
        assert!(matches!(Plan::from_bytes(&p.to_bytes()), Err(PlanError::Corrupt(_))));

        let mut p = plan();
        p.routes.clear();
        let err = Plan::from_bytes(&p.to_bytes()).unwrap_err();
        assert!(err.to_string().contains("malformed route entry"), "{err}");
    }
}
