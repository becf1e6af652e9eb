//! The spec as written: plain serde types that mirror the YAML, with no
//! source spans. `deny_unknown_fields` everywhere, so the derived JSON Schema
//! says `additionalProperties: false` and a misspelt key is a finding.
//!
//! Values that need more than a type to be valid (durations, addresses, path
//! templates) stay strings here; `validate` checks them and `lower` turns them
//! into typed plan values. Keeping them as strings lets every finding point at
//! the exact value that is wrong instead of stopping at the first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
}

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
    /// The less loaded (requests in flight divided by weight) of two random endpoints.
    LeastRequest,
}

impl Balance {
    /// Every algorithm, in the order the documentation lists them.
    pub const ALL: [Balance; 4] =
        [Balance::RoundRobin, Balance::WeightedRoundRobin, Balance::Random, Balance::LeastRequest];

    /// The name used in specs and scenarios.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::WeightedRoundRobin => "weighted_round_robin",
            Balance::Random => "random",
            Balance::LeastRequest => "least_request",
        }
    }
}

/// One upstream server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `IP:PORT` of the upstream server, for example `127.0.0.1:9101`.
    pub address: String,
    /// Relative share of traffic for weighted algorithms. Default: 1.
    #[serde(default = "default_weight")]
    #[schemars(range(max = 10000))]
    pub weight: u32,
}

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
    #[schemars(length(min = 1))]
    pub listeners: Option<Vec<String>>,
    /// Conditions a request must meet.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// Name of the pool that serves matching requests.
    pub to: String,
    /// Time allowed for the upstream to start its response, such as `250ms`, `5s` or `1m`.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub timeout: Option<String>,
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
    /// Path template: literal segments, `{name}` for one non-empty segment, and a final
    /// `{*name}` for the rest of the path, possibly empty.
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Methods to match. Default: every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub methods: Option<Vec<MethodName>>,
}

/// An HTTP method a route can match.
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
    CONNECT,
}

/// Parse a duration as written in specs and scenarios: a whole number followed
/// by `ms`, `s`, `m` or `h`, such as `250ms`. `None` when it does not parse or
/// overflows.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
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
    }
}
