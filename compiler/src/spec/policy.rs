//! The traffic policies of pools and routes, as written: health checks,
//! outlier detection, panic threshold, slow start, circuit breakers, the
//! consistent-hash key, retries and retry budgets.
//!
//! As elsewhere in the spec, durations stay strings here; `validate` checks
//! them and `lower` turns them into the settings structs of `sluice_traffic`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Endpoints compared per pick by `least_request` and `peak_ewma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Choices {
    /// This many distinct random endpoints (2 is the power of two choices).
    Count(#[schemars(range(min = 1, max = 1000))] u32),
    /// `all`: compare every endpoint (join the shortest queue).
    All(AllChoices),
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllChoices {
    All,
}

/// The part of a request that `consistent_hash` keys on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    /// The value of this request header.
    Header(String),
    /// The value of this cookie.
    Cookie(String),
    /// The value of this query parameter, as sent.
    Query(String),
    /// The value of this parameter of the route's path template.
    PathParam(String),
    /// The client's IP address.
    ClientAddress,
}

/// Active health checks: the gateway probes every endpoint of the pool with
/// `GET PATH`, on a new connection each time, in the pool's protocol (HTTP/2
/// with prior knowledge for an `http2` pool), and takes an endpoint out of
/// rotation after `unhealthy_threshold` consecutive failed probes, back after
/// `healthy_threshold` consecutive passes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path probed, such as `/healthz`.
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Statuses that pass: codes such as `204` and ranges such as `"200-399"`.
    /// Any other status, a timeout or a refused connection fails. Default: 200 to 299.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<StatusSpec>,
    /// Time between the end of one probe and the start of the next. Default: `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,
    /// Up to this much random time is added to each interval, so probes from many
    /// gateways spread out. `0ms` for none. Default: a tenth of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub jitter: Option<String>,
    /// Time a probe may take before it counts as failed. Default: `2s`, or the
    /// interval when that is shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub timeout: Option<String>,
    /// Consecutive passes that bring an unhealthy endpoint back. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures that take a healthy endpoint out. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub unhealthy_threshold: Option<u32>,
}

/// An expected status: a code, or a range written `"LOW-HIGH"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusSpec {
    /// One status code.
    Code(#[schemars(range(min = 100, max = 599))] u16),
    /// A range of codes, both ends included, such as `"200-399"`.
    Range(#[schemars(regex(pattern = r"^[1-5][0-9][0-9]-[1-5][0-9][0-9]$"))] String),
}

/// Passive outlier detection: an endpoint that fails real requests several times in a
/// row is ejected for a while. Runs are consecutive, not windowed: any response below
/// 500 resets them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Failed tries in a row (5xx, reset, timeout or failed connection) that eject; 0
    /// turns this trigger off. Default: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub consecutive_failures: Option<u32>,
    /// Failed connection attempts in a row that eject; 0 turns this trigger off.
    /// Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub consecutive_connect_failures: Option<u32>,
    /// Length of a first ejection; each further ejection of the same endpoint lasts
    /// this much longer. Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub base_ejection: Option<String>,
    /// Longest ejection. Default: `300s`, or `base_ejection` when that is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub max_ejection: Option<String>,
    /// Most of the pool ejected at once, in percent, rounded down to whole
    /// endpoints. Default: 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub max_ejection_percent: Option<u8>,
}

/// A linear weight ramp for endpoints that come back into rotation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowStart {
    /// How long the ramp to full weight lasts, such as `30s`.
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub window: String,
    /// Share of the weight at the start of the ramp, in percent. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub initial_percent: Option<u8>,
}

/// Hard limits on what the pool may have outstanding; beyond one, a request gets an
/// immediate 503 that names the limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Upstream connections open at once, busy or idle. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<u32>,
    /// Upstream connections being opened at once, which are the requests
    /// waiting for one (a request that finds an idle connection takes it at
    /// once; over HTTP/2, requests share the connect under way). Default:
    /// no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_pending: Option<u32>,
    /// Requests in flight to the pool. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests: Option<u32>,
}

/// When a failed try is tried again, on another endpoint when the pool has one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Tries in all, the first included.
    #[schemars(range(min = 1, max = 10))]
    pub attempts: u32,
    /// What is retried: `connect_failure` (nothing was sent), `reset` (the connection
    /// broke before a response), `timeout` (the per-try timeout fired) and status codes
    /// such as `503`. Default: `[connect_failure, reset]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub on: Option<Vec<RetryOn>>,
    /// Time each try has to receive a response head. Default: only the route's `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub per_try_timeout: Option<String>,
    /// Wait before each retry: a random time up to `base`, doubling per retry up to `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Also retry methods that are not idempotent (POST, PATCH) after they were sent.
    /// Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_idempotent: bool,
    /// Largest request body kept in memory while it streams upstream, so that a retry
    /// after the body was sent, or the resend after a reused connection turned out
    /// closed, can send it again, such as `64KiB`. A larger body is never sent whole
    /// twice; a try that ends before the client has sent all of it is retried with
    /// what was kept and then the rest, while what was sent fits. `0B` keeps none.
    /// Routes without `retries` keep `64KiB`. Default: `64KiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(B|KiB|MiB|GiB)$"))]
    pub replay_body_limit: Option<String>,
}

/// A retry condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetryOn {
    /// A named failure.
    Failure(RetryFailure),
    /// An upstream response with this status.
    Status(#[schemars(range(min = 100, max = 599))] u16),
}

/// A failure that no response status describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryFailure {
    /// The connection could not be opened, so nothing was sent.
    ConnectFailure,
    /// The connection broke after the request was sent, before a response head.
    Reset,
    /// The per-try timeout fired.
    Timeout,
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Cap of the first wait. Default: `25ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub base: Option<String>,
    /// Largest cap. Default: `250ms`, or `base` when that is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub max: Option<String>,
}

/// A bound on retries across all of a route's requests, so that retries cannot turn a
/// brown-out into an outage.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed per 100 requests received in the window.
    #[schemars(range(max = 1000))]
    pub percent: u32,
    /// Retries allowed per second whatever the traffic, so a quiet route can still
    /// retry. Default: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100_000))]
    pub min_per_second: Option<u32>,
    /// How far back requests and retries count. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub window: Option<String>,
}
