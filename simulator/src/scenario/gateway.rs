//! The gateway settings, the variant grid and the timed events of a
//! scenario, as written.
//!
//! Each gateway section changes only the settings it names, over every
//! route's and pool's own from the spec, as a grid value does; the result is
//! the matching `sluice_traffic` settings struct, so the simulated gateway
//! decides with the code `serve` runs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Gateway settings for every route and pool. Each section changes only
/// the settings it names; the others stay as each route or pool has them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayModel {
    /// Gateway replicas, each with its own balancer, breaker, budget, health
    /// and outlier state; arrivals spread evenly over them: 1 to 64.
    /// Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub instances: Option<u32>,
    /// Route timeout for every route, replacing the spec's: the client gets
    /// 504 when no response head arrived in time, while the endpoint keeps
    /// working on the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Changes to every route's retry policy: each field given replaces the
    /// route's own, the others stay. (A route without `retries` in the spec
    /// tries once more after a refused connection, as `serve` does.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryModel>,
    /// A retry budget for every route, per gateway instance: a route with
    /// its own budget keeps it with the fields given here changed; a route
    /// without one gets the default budget with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<BudgetModel>,
    /// Circuit-breaker limits per pool and gateway instance: each limit
    /// given replaces the pool's own, the others stay as the spec sets them
    /// (no limit unless it sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<BreakerModel>,
    /// Active health checks in every pool: a pool with its own keeps them
    /// with the fields given here changed; a pool without gets the default
    /// ones with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthModel>,
    /// Passive outlier detection in every pool: a pool with its own keeps it
    /// with the fields given here changed; a pool without gets the default
    /// one with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierModel>,
}

/// Changes to a retry policy; each field left out keeps the route's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryModel {
    /// Tries in all, the first included: 1 to 100. Default: the route's,
    /// or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub attempts: Option<u32>,
    /// What is retried: `connect_failure`, `reset`, `timeout`, or a 5xx
    /// status such as `503`. Default: the route's, or `[connect_failure]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<serde_json::Value>>,
    /// Time limit of each try, such as `200ms`; a try that runs out may be
    /// retried within the route timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Cap of the first backoff (full jitter). Default: the route's, or `25ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Largest backoff cap. Default: the route's, or `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
}

/// A retry budget; each field left out keeps the route's own, or the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetModel {
    /// Retries allowed per 100 original requests in the window. Default: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_percent: Option<u32>,
    /// Retries allowed per second regardless of traffic. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_second: Option<u32>,
    /// How far back requests and retries count. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// Circuit-breaker limits; each limit left out keeps the pool's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerModel {
    /// Most tries in flight to the pool from one gateway instance; beyond
    /// it the gateway answers 503 at once. At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests: Option<u32>,
    /// Most upstream connections, busy or idle, the pool may hold open
    /// from one gateway instance; a try that needs a new one beyond it is
    /// answered 503 at once. At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<u32>,
    /// Most connections being opened at once to the pool from one gateway
    /// instance; beyond it, 503 at once. At least 1. (Connecting takes time
    /// only to an endpoint that stopped accepting connections.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_pending: Option<u32>,
}

/// Active health-check settings; each field left out keeps the pool's own,
/// or the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthModel {
    /// Time between probes of one endpoint. Default: `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Random time up to this is added to each interval. Default: `500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// How long a probe may take. Default: `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Passes in a row that make an endpoint healthy. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub healthy_threshold: Option<u32>,
    /// Failures in a row that make an endpoint unhealthy. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: Option<u32>,
}

/// Outlier-detection settings; each field left out keeps the pool's own, or
/// the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierModel {
    /// Failed tries in a row that eject an endpoint. Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Refused connections in a row that eject an endpoint. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_connect_failures: Option<u32>,
    /// Length of a first ejection. Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection: Option<String>,
    /// Longest ejection. Default: `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection: Option<String>,
    /// Most of a pool ejected at once, in percent. Default: 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub max_ejection_percent: Option<u8>,
}

/// Settings to compare: each list's values, crossed with each other and
/// with the balancers. Each value changes that one setting over every
/// route's or pool's own, from the spec or the scenario's `gateway`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Retry attempts (tries in all) to compare, such as `[1, 3]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1, max = 100)))]
    pub attempts: Vec<u32>,
    /// Route timeouts to compare, such as `[250ms, 1s]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeout: Vec<String>,
    /// Circuit-breaker `max_requests` values to compare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub max_requests: Vec<u32>,
    /// Circuit-breaker `max_connections` values to compare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub max_connections: Vec<u32>,
    /// Circuit-breaker `max_pending` values to compare.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub max_pending: Vec<u32>,
    /// With and without the retry budget, such as `[false, true]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_budget: Vec<bool>,
    /// Retry budget `ratio_percent` values to compare, such as `[10, 50]`;
    /// a route without a budget gets the default one with each ratio (a
    /// variant with `retry_budget: false` has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratio_percent: Vec<u32>,
    /// Per-try timeouts to compare, such as `[100ms, 500ms]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_try_timeout: Vec<String>,
    /// Retry `on` lists to compare, such as
    /// `[[connect_failure], [connect_failure, timeout, 503]]`; `[]` retries
    /// nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<Vec<serde_json::Value>>,
    /// Health-check intervals to compare, such as `[1s, 5s]`; a pool
    /// without health checks gets the default ones at each interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_interval: Vec<String>,
    /// Health-check `healthy_threshold` values to compare (each at least 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub healthy_threshold: Vec<u32>,
    /// Health-check `unhealthy_threshold` values to compare (each at least 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub unhealthy_threshold: Vec<u32>,
}

/// Something that happens to endpoints at a time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventModel {
    /// When it happens, such as `20s`.
    pub at: String,
    /// What happens.
    pub action: ActionName,
    /// The pool it happens in, by name, or `busiest`: the pool that
    /// receives the largest share of the scenario's traffic (a split route's
    /// share divided by its weights), so that one scenario runs against any
    /// spec. A tie for the largest share is an error that asks for a name;
    /// a spec pool named `busiest` is that pool. Default: every pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The endpoint, by address or position in the pool (`"0"`). Default:
    /// every endpoint of the pool (for `rolling_deploy`, each in turn).
    /// Without `pool`, a pool that lacks the endpoint is skipped, and one
    /// pool at least must have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `slow`: what service times are multiplied by (above 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// `fail`: the share of requests, 0 to 1, answered 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// `rolling_deploy`: how long each endpoint is down. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
    /// `rolling_deploy`: time from one endpoint going down to the next.
    /// Default: `down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

/// What happens to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// It refuses connections: tries fail at once, and requests it held
    /// are reset.
    Crash,
    /// It is back to its model: no crash, slowdown, errors, black hole or
    /// refused accepts.
    Recover,
    /// Its service times are multiplied by `factor`.
    Slow,
    /// It answers a `share` of requests with 500, after serving them.
    Fail,
    /// It answers every request with 503 at once.
    FailFast,
    /// It accepts requests and never answers.
    BlackHole,
    /// It stops accepting connections, as a server whose accept queue is
    /// full or whose listener is gone while its workers still run: a new
    /// try's connect hangs until the pool's `connect_timeout` (5s unless
    /// the spec says), after which the gateway fails over to another
    /// endpoint as `serve` does, while the requests it already holds
    /// (queued or in service) finish normally, and a try that finds an idle
    /// kept-alive connection to it is served on that. `recover` makes it
    /// accept again.
    StopAccepting,
    /// Endpoints crash one after another, each down for `down`.
    RollingDeploy,
}

impl ActionName {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Crash => "crash",
            ActionName::Recover => "recover",
            ActionName::Slow => "slow",
            ActionName::Fail => "fail",
            ActionName::FailFast => "fail_fast",
            ActionName::BlackHole => "black_hole",
            ActionName::StopAccepting => "stop_accepting",
            ActionName::RollingDeploy => "rolling_deploy",
        }
    }
}
