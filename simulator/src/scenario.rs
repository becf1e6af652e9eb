//! The scenario as written: plain serde types mirroring the YAML.
//!
//! Like the spec types, these deny unknown keys, so the derived JSON Schema
//! says `additionalProperties: false` and a misspelt key is a finding.
//! Durations stay strings and numbers stay unconstrained here; [`crate::check`]
//! checks them and resolves names against the plan, so that every bad value
//! is reported with its own location and code rather than as a generic
//! schema mismatch.

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
    pub requests: Option<u64>,
    /// Virtual time at the start whose arrivals are served but left out of
    /// every statistic, so results describe the steady state rather than an
    /// empty system filling up. Default: `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    /// How requests arrive at the gateway.
    pub arrivals: Arrivals,
    /// How arriving requests split over the spec's routes. At least one entry.
    #[schemars(length(min = 1))]
    pub traffic: Vec<TrafficShare>,
    /// Service model of each pool, by the pool's name in the spec. Every pool
    /// that the traffic reaches needs one; all endpoints of a pool share it.
    pub pools: BTreeMap<String, PoolModel>,
    /// Balancing variants to compare. Each is a full run over the same
    /// arrivals and service times. `spec` keeps each pool's own algorithm;
    /// any other name applies that algorithm to every pool.
    /// Default: `[spec]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancers: Option<Vec<VariantName>>,
}

/// The arrival process.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    /// Mean arrival rate of a Poisson process (independent, exponentially
    /// spaced arrivals), in requests per second of virtual time. Positive.
    pub rate: f64,
}

/// A share of the arriving requests that a route receives.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficShare {
    /// Name of a route in the spec.
    pub route: String,
    /// Relative share: a route with weight 2 receives twice the requests of a
    /// route with weight 1. Positive. Default: 1.
    #[serde(default = "one")]
    pub weight: f64,
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
    pub workers: u32,
    /// How long a worker takes per request.
    pub service: ServiceModel,
}

fn one_worker() -> u32 {
    1
}

/// A service-time distribution. Which durations it needs depends on
/// `distribution`: `constant` takes `value`, `exponential` takes `mean`,
/// and `lognormal` takes `median` and `p99`.
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
}

impl DistributionName {
    pub fn as_str(self) -> &'static str {
        match self {
            DistributionName::Constant => "constant",
            DistributionName::Exponential => "exponential",
            DistributionName::Lognormal => "lognormal",
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
}

impl VariantName {
    pub fn variant(self) -> Variant {
        match self {
            VariantName::Spec => Variant::Spec,
            VariantName::RoundRobin => Variant::All(Balance::RoundRobin),
            VariantName::WeightedRoundRobin => Variant::All(Balance::WeightedRoundRobin),
            VariantName::Random => Variant::All(Balance::Random),
            VariantName::LeastRequest => Variant::All(Balance::LeastRequest),
        }
    }
}

/// The scenario JSON Schema, pretty-printed with a final newline, as
/// committed in `schemas/scenario.schema.json`.
pub fn schema_text() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut text =
        serde_json::to_string_pretty(&schema).expect("a derived schema serialises to JSON");
    text.push('\n');
    text
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
            assert_eq!(name.variant(), Variant::All(balance));
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
