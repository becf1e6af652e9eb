//! The scenario as written: plain serde types mirroring the YAML.
//!
//! Like the spec types, these deny unknown keys, so the derived JSON Schema
//! says `additionalProperties: false` and a misspelt key is a finding.
//! Durations stay strings here, and whole numbers state only the range an
//! editor can show; [`crate::check`] checks every value and resolves names
//! against the plan, so that every bad value is reported with its own
//! location and code (its finding replaces the schema's about the same
//! value) rather than as a generic schema mismatch.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_compiler::Balance;

use crate::workload::Variant;

/// A Sluice simulation scenario, format version 1: a synthetic workload to
/// replay against a spec's routes and pools in virtual time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Sluice simulation scenario",
    extend("$id" = "https://sluice.dev/schemas/scenario.schema.json")
)]
pub struct Scenario {
    /// Scenario format version. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Seed of every random stream of the run; `--seed` overrides it. The same
    /// seed, spec and scenario always give the same results. Default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Virtual time during which requests arrive, warm-up included, such as
    /// `60s` or `10m`. Give exactly one of `duration` and `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Number of measured requests (arriving after the warm-up) after which
    /// arrivals stop. Give exactly one of `duration` and `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests: Option<u64>,
    /// Virtual time at the start whose arrivals are served but left out of
    /// every statistic, so results describe the steady state rather than an
    /// empty system filling up. Default: `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    /// How requests arrive at the gateway.
    pub arrivals: Arrivals,
    /// How arriving requests split over the spec's routes, and the values
    /// (headers, cookies, query and path parameters, client address) each
    /// share carries. Default: every route of the spec with weight 1, so a
    /// scenario can run against any spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficShare>,
    /// Service model of each pool, by the pool's name in the spec; the key
    /// `"*"` is the model of every pool not named. Every pool that the
    /// traffic reaches needs one.
    pub pools: BTreeMap<String, PoolModel>,
    /// Balancing variants to compare. Each is a full run over the same
    /// arrivals and service times. `spec` keeps each pool's own algorithm;
    /// any other name applies that algorithm to every pool.
    /// Default: `[spec]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancers: Option<Vec<VariantName>>,
    /// Gateway settings applied to every route and pool, over what the spec
    /// says: timeouts, retries, retry budget, circuit breaking, health checks,
    /// outlier detection, and the number of gateway instances. Each section
    /// changes only the settings it names; the others stay as each route or
    /// pool has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayModel>,
    /// Settings to compare, as a grid: every balancer runs with every
    /// combination of the values listed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<Grid>,
    /// Things that happen to endpoints at given times: crashes, slowdowns,
    /// errors, rolling deploys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventModel>,
}

/// The arrival process: open loop (`rate`), closed loop (`clients`), or a
/// replay of an access log (`replay`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    /// Mean arrival rate of an open-loop source, in requests per second of
    /// virtual time. Positive. Give `rate` or `clients`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// How open-loop arrivals are spaced: `poisson` (independent, the
    /// default) or `constant` (evenly, one every `1/rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<PatternName>,
    /// Changes of the open-loop rate over time: from `at`, the rate becomes
    /// `rate`, reached linearly over `ramp` (default `0s`, a step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<RateChange>,
    /// Bursts: from `at`, for `length`, the rate is multiplied by `factor`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bursts: Vec<Burst>,
    /// A daily traffic curve over the open-loop rate: `rate` (with its
    /// `changes` and `bursts`) is multiplied by the curve's multiplier at
    /// the time, a day of virtual time lasting `period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailyCurve>,
    /// Closed loop: this many clients, each sending its next request when
    /// the last one is answered, after a think time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub clients: Option<u32>,
    /// Mean think time of a closed-loop client (exponential), such as
    /// `100ms`. Default: `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<String>,
    /// Replay: a file written by `sluice serve --access-log FILE` (access
    /// log format version 1, one JSON object per line), relative to the
    /// scenario file. Each logged request that matched a route arrives at
    /// its logged time (relative to the first), on its logged route, from
    /// its logged client; lines without a route are left out. The traffic
    /// mix comes from the log, so `traffic` must be absent, and without
    /// `duration` or `requests` the run lasts as long as the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// With `replay`: how many times faster than logged the requests
    /// arrive, such as `2.0` for twice the rate. Positive. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// How open-loop arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatternName {
    /// Exponential gaps: a Poisson process (time-varying rates by thinning).
    Poisson,
    /// Even gaps of `1/rate`.
    Constant,
}

/// A change of the arrival rate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateChange {
    /// When the change starts, such as `30s`.
    pub at: String,
    /// The new rate, requests per second. Positive.
    pub rate: f64,
    /// How long the rate takes to move linearly to `rate`. Default: `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<String>,
}

/// A burst of extra traffic.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// When the burst starts.
    pub at: String,
    /// How long it lasts.
    pub length: String,
    /// What the rate is multiplied by meanwhile. Positive.
    pub factor: f64,
}

/// A day of traffic, as multipliers of the rate hour by hour, compressed
/// into `period` of virtual time and repeated for as long as the run lasts.
/// The run starts at midnight.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DailyCurve {
    /// How long one day lasts in virtual time, such as `24m` (an hour of the
    /// day a minute of the run) or `24h`. Positive. Default: `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// 24 multipliers of the rate, one per hour from midnight: the
    /// multiplier is the hour's value at the start of the hour and moves
    /// linearly to the next hour's value (after hour 23, hour 0's). Each
    /// positive and at most 10000, such as `0.3` at night and `2` at the
    /// evening peak.
    pub hours: Vec<f64>,
}

/// A share of the arriving requests: the route they go to (by name, or by
/// a request path routed as `serve` routes it) and the values they carry.
///
/// Values are what policies read: a `consistent_hash` pool hashes on its
/// `hash_on` key, and a sticky split pins on its `sticky` key, exactly as
/// `serve` reads them. Each value is a fixed text (or number) or a key drawn
/// per request, such as `{ zipf: { keys: 10000, exponent: 1.1 } }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficShare {
    /// Name of a route in the spec. Give `route` or `path`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The request path, such as `/v1/contacts/{id}`, routed by the spec's
    /// route table as `serve` routes a request, with `method`, `host` and
    /// the share's headers, cookies and query. `{name}` stands for the
    /// value of `params.name`; the route is looked up once, with each drawn
    /// value at its first key, and every request of the share takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With `path`: the request method. Default: `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// With `path`: the request's host, such as `api.example.test`.
    /// Default: none, which only routes without a host condition match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// With `path`: the listener the requests arrive on. Default: the first
    /// listener, in spec order, on which the path matches a route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// Relative share: a share with weight 2 receives twice the requests of a
    /// share with weight 1. Positive, and neither so large that the weights'
    /// sum overflows nor so small beside the others that adding it changes
    /// nothing. Default: 1.
    #[serde(default = "one")]
    pub weight: f64,
    /// Request headers by name, such as `x-api-key: { zipf: { keys: 1000,
    /// exponent: 1.1 } }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, KeyValue>,
    /// Cookies by name, sent in one `cookie` header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<String, KeyValue>,
    /// Query parameters by name, sent as written (not percent-encoded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, KeyValue>,
    /// Path parameters by name: with `route`, parameters of the route's
    /// path template; with `path`, the `{name}` placeholders of `path`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, KeyValue>,
    /// The client's IP address: a fixed address, or drawn keys, key `k`
    /// being the address `10.0.0.0` plus `k`. Default: none, so that a
    /// pool hashing on the client address picks at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<KeyValue>,
}

/// A value a request carries: fixed, or a key drawn per request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeyValue {
    /// The same text on every request.
    Text(String),
    /// The same number on every request, written in decimal.
    Number(i64),
    /// A key drawn per request.
    Drawn(DrawnKeys),
}

/// Keys drawn per request from a distribution: give `zipf` or `uniform`.
/// Keys are numbered from 1 and written after `prefix`; with Zipf's law key
/// 1 is the most frequent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrawnKeys {
    /// Zipf's law: key `k` of `keys` with probability proportional to
    /// `k^-exponent`, as API keys, users and tenants usually are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipf: Option<ZipfKeys>,
    /// Each of `keys` keys equally likely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform: Option<UniformKeys>,
    /// Text written before the key's number, such as `user-`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Zipf-distributed keys.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZipfKeys {
    /// How many distinct keys there are: 1 to 1,000,000.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub keys: u64,
    /// The law's exponent `s`: positive, at most 10; around 1 for real
    /// traffic, larger for a few very hot keys.
    pub exponent: f64,
}

/// Uniformly distributed keys.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UniformKeys {
    /// How many distinct keys there are: 1 to 1,000,000.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub keys: u64,
}

fn one() -> f64 {
    1.0
}

/// How each endpoint of a pool serves requests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolModel {
    /// Requests one endpoint serves at once, such as its worker threads or
    /// connection limit. Requests beyond that wait in a first-in, first-out
    /// queue at the endpoint. At least 1. Default: 1.
    #[serde(default = "one_worker")]
    #[schemars(range(min = 1))]
    pub workers: u32,
    /// How long a worker takes per request.
    pub service: ServiceModel,
    /// Most requests that may wait at one endpoint; an endpoint with this
    /// many waiting answers further requests with 503 at once. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub queue_limit: Option<u32>,
    /// Endpoints that differ from the pool's model, by address (as in the
    /// spec) or by position in the pool (`"0"`, `"1"`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, EndpointModel>,
}

/// An endpoint's own model; unset fields keep the pool's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointModel {
    /// Requests this endpoint serves at once. At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub workers: Option<u32>,
    /// This endpoint's service time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceModel>,
    /// Most requests that may wait at this endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub queue_limit: Option<u32>,
}

fn one_worker() -> u32 {
    1
}

/// A service-time distribution. Which fields it needs depends on
/// `distribution`: `constant` takes `value`, `exponential` takes `mean`,
/// `lognormal` takes `median` and `p99`, `pareto` takes `scale` and `shape`,
/// `bimodal` takes `fast`, `slow` and `slow_share`, and `empirical` takes `file`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceModel {
    /// The shape of the distribution.
    pub distribution: DistributionName,
    /// The service time of a `constant` distribution, such as `5ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The mean of an `exponential` distribution, such as `20ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<String>,
    /// The median of a `lognormal` distribution, such as `10ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<String>,
    /// The 99th percentile of a `lognormal` distribution, such as `80ms`;
    /// at least the median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<String>,
    /// The smallest value of a `pareto` distribution, such as `5ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    /// The tail index of a `pareto` distribution: above 1 (a finite mean);
    /// smaller is heavier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<f64>,
    /// The common mode of a `bimodal` distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<Box<ServiceModel>>,
    /// The rare mode of a `bimodal` distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<Box<ServiceModel>>,
    /// The share of requests, 0 to 1, that a `bimodal` distribution draws
    /// from `slow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_share: Option<f64>,
    /// An `empirical` distribution's file of observed service times, one
    /// duration per line (`12.5ms`); `#` starts a comment. The path is
    /// relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The shape of a service-time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DistributionName {
    /// Every request takes exactly `value`.
    Constant,
    /// Memoryless times with the given `mean`; the M/M/c model of queueing theory.
    Exponential,
    /// Skewed times with a long right tail, fixed by their `median` and `p99`;
    /// close to what real services measure.
    Lognormal,
    /// A power-law tail above `scale`: rare requests take very long.
    Pareto,
    /// Two modes, such as cache hits and misses.
    Bimodal,
    /// Observed service times read from a file, drawn with replacement.
    Empirical,
}

impl DistributionName {
    pub fn as_str(self) -> &'static str {
        match self {
            DistributionName::Constant => "constant",
            DistributionName::Exponential => "exponential",
            DistributionName::Lognormal => "lognormal",
            DistributionName::Pareto => "pareto",
            DistributionName::Bimodal => "bimodal",
            DistributionName::Empirical => "empirical",
        }
    }
}

/// A balancing variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VariantName {
    /// Each pool keeps the algorithm its spec names.
    Spec,
    /// Every pool sends to each endpoint in turn.
    RoundRobin,
    /// Every pool sends in proportion to endpoint weights, interleaved smoothly.
    WeightedRoundRobin,
    /// Every pool sends to a uniformly random endpoint.
    Random,
    /// Every pool sends to the less loaded of two random endpoints.
    LeastRequest,
    /// Every pool sends by peak EWMA latency times load.
    PeakEwma,
    /// Every pool hashes on its spec's `hash_on` key, which requests carry
    /// when their traffic share sets it; a request without the key (or a
    /// pool without `hash_on`) gets a random pick, as in `serve`.
    ConsistentHash,
}

impl VariantName {
    pub fn variant(self) -> Variant {
        match self {
            VariantName::Spec => Variant::spec(),
            VariantName::RoundRobin => Variant::all(Balance::RoundRobin),
            VariantName::WeightedRoundRobin => Variant::all(Balance::WeightedRoundRobin),
            VariantName::Random => Variant::all(Balance::Random),
            VariantName::LeastRequest => Variant::all(Balance::LeastRequest),
            VariantName::PeakEwma => Variant::all(Balance::PeakEwma),
            VariantName::ConsistentHash => Variant::all(Balance::ConsistentHash),
        }
    }
}

/// The `pool` of an event that stands for the pool receiving the largest
/// share of the traffic.
pub const BUSIEST: &str = "busiest";

mod gateway;
pub use self::gateway::{
    ActionName, BreakerModel, BudgetModel, EventModel, GatewayModel, Grid, HealthModel,
    OutlierModel, RetryModel,
};

/// The scenario JSON Schema, pretty-printed with a final newline, as
/// committed in `schemas/scenario.schema.json`.
pub fn schema_text() -> String {
    use sluice_compiler::schema::{pretty, schema_value};
    pretty(&schema_value::<Scenario>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_balance_has_a_variant_of_the_same_name() {
        // Guards against the spec gaining an algorithm the scenario cannot name.
        for balance in Balance::ALL {
            let name: VariantName = serde_json::from_value(balance.as_str().into())
                .unwrap_or_else(|e| panic!("no variant named {}: {e}", balance.as_str()));
            assert_eq!(name.variant(), Variant::all(balance));
        }
    }

    /// Every whole number of the schema, by pointer into the schema, with
    /// its `minimum` and `maximum`.
    fn bounds(schema: &serde_json::Value) -> Vec<(String, Option<i128>, Option<i128>)> {
        fn walk(
            v: &serde_json::Value,
            at: String,
            out: &mut Vec<(String, Option<i128>, Option<i128>)>,
        ) {
            let Some(map) = v.as_object() else {
                for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                    walk(item, format!("{at}/{i}"), out);
                }
                return;
            };
            let integer = match &map.get("type") {
                Some(serde_json::Value::String(t)) => t == "integer",
                Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                _ => false,
            };
            if integer {
                let n = |k: &str| {
                    map.get(k)
                        .and_then(|v| v.as_i64().map(i128::from).or(v.as_u64().map(i128::from)))
                };
                out.push((at.clone(), n("minimum"), n("maximum")));
            }
            for (key, item) in map {
                walk(item, format!("{at}/{key}"), out);
            }
        }
        let mut out = Vec::new();
        walk(schema, String::new(), &mut out);
        out
    }

    #[test]
    fn schema_states_the_range_of_every_whole_number() {
        let schema: serde_json::Value = serde_json::from_str(&schema_text()).unwrap();
        let found = bounds(&schema);
        for (at, low, high) in &found {
            assert!(low.is_some() && high.is_some(), "{at} lacks a bound: {low:?} {high:?}");
        }
        // Counts whose real minimum is 1 say so, and limits the check
        // enforces are the schema's maximum.
        let wanted = [
            ("/$defs/Arrivals/properties/clients", 1, 1_000_000),
            ("/$defs/BreakerModel/properties/max_connections", 1, u32::MAX.into()),
            ("/$defs/BreakerModel/properties/max_pending", 1, u32::MAX.into()),
            ("/$defs/BreakerModel/properties/max_requests", 1, u32::MAX.into()),
            ("/$defs/EndpointModel/properties/workers", 1, u32::MAX.into()),
            ("/$defs/EndpointModel/properties/queue_limit", 1, u32::MAX.into()),
            ("/$defs/GatewayModel/properties/instances", 1, 64),
            ("/$defs/Grid/properties/attempts/items", 1, 100),
            ("/$defs/Grid/properties/healthy_threshold/items", 1, u32::MAX.into()),
            ("/$defs/Grid/properties/unhealthy_threshold/items", 1, u32::MAX.into()),
            ("/$defs/Grid/properties/max_connections/items", 1, u32::MAX.into()),
            ("/$defs/Grid/properties/max_pending/items", 1, u32::MAX.into()),
            ("/$defs/Grid/properties/max_requests/items", 1, u32::MAX.into()),
            ("/$defs/HealthModel/properties/healthy_threshold", 1, u32::MAX.into()),
            ("/$defs/HealthModel/properties/unhealthy_threshold", 1, u32::MAX.into()),
            ("/$defs/OutlierModel/properties/max_ejection_percent", 0, 100),
            ("/$defs/PoolModel/properties/workers", 1, u32::MAX.into()),
            ("/$defs/PoolModel/properties/queue_limit", 1, u32::MAX.into()),
            ("/$defs/RetryModel/properties/attempts", 1, 100),
            ("/$defs/UniformKeys/properties/keys", 1, 1_000_000),
            ("/$defs/ZipfKeys/properties/keys", 1, 1_000_000),
            ("/properties/requests", 1, u64::MAX.into()),
            ("/properties/seed", 0, u64::MAX.into()),
        ];
        for (at, low, high) in wanted {
            let got = found.iter().find(|f| f.0 == at).unwrap_or_else(|| panic!("no {at}"));
            assert_eq!((got.1, got.2), (Some(low), Some(high)), "{at}");
        }
    }

    #[test]
    fn schema_documents_every_field() {
        let text = schema_text();
        assert!(text.contains("scenario.schema.json"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let props = value["properties"].as_object().unwrap();
        for (name, prop) in props {
            assert!(prop.get("description").is_some(), "`{name}` has no description");
        }
    }
}
