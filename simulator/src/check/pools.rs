//! Pool models: names resolved against the plan, and service laws checked
//! field by field.

use sluice_compiler::Diagnostic;

use super::{child, codes, known, list, Checker};
use crate::random::ServiceTime;
use crate::scenario::{DistributionName, PoolModel, Scenario};
use crate::time::{Human, Nanos};
use crate::workload::PoolLoad;

impl Checker<'_> {
    /// Resolve pool models by pool index, and check every reached pool has one.
    pub(super) fn pools(&mut self, s: &Scenario) -> Vec<Option<PoolLoad>> {
        let models: Vec<(&String, Option<PoolLoad>)> =
            s.pools.iter().map(|(name, model)| (name, self.pool_model(name, model))).collect();
        let Some(topology) = self.topology else { return Vec::new() };

        let mut pools = vec![None; topology.pools.len()];
        for (name, load) in models {
            match topology.pool_index(name) {
                Some(p) => pools[p] = load,
                None => {
                    let names = topology.pools.iter().map(|p| p.name.as_str());
                    let help = known("pools", name, names);
                    let pointer = child("/pools", name);
                    let message = format!("unknown pool `{name}`");
                    let finding = Diagnostic::error(codes::UNKNOWN_POOL, message).with_help(help);
                    self.push_at_key(finding, &pointer);
                }
            }
        }

        // Every pool the traffic reaches needs a model; a model nothing reaches is suspicious.
        let mut reached = vec![false; topology.pools.len()];
        for (i, share) in s.traffic.iter().enumerate() {
            let Some(r) = topology.route_index(&share.route) else { continue };
            let p = topology.routes[r].pool;
            let pool = &topology.pools[p].name;
            if !reached[p] && !s.pools.contains_key(pool) {
                let message = format!(
                    "route `{}` sends to pool `{pool}`, which has no service model",
                    share.route
                );
                let model = "{ workers: 4, service: { distribution: exponential, mean: 20ms } }";
                let help = format!("add `{pool}: {model}` under `pools`");
                let finding = Diagnostic::error(codes::NO_SERVICE_MODEL, message).with_help(help);
                self.push(finding, &format!("/traffic/{i}/route"));
            }
            reached[p] = true;
        }
        for name in s.pools.keys() {
            if topology.pool_index(name).is_some_and(|p| !reached[p]) {
                let message =
                    format!("no route in `traffic` sends to pool `{name}`; its model is unused");
                let pointer = child("/pools", name);
                self.push_at_key(Diagnostic::warning(codes::UNUSED_POOL_MODEL, message), &pointer);
            }
        }
        pools
    }

    fn pool_model(&mut self, name: &str, model: &PoolModel) -> Option<PoolLoad> {
        let here = child("/pools", name);
        if model.workers == 0 {
            let message = format!("pool `{name}` has 0 workers");
            let help = "an endpoint needs at least 1 worker to serve anything";
            let finding = Diagnostic::error(codes::NO_WORKERS, message).with_help(help);
            self.push(finding, &format!("{here}/workers"));
        }
        let service = self.service(&format!("{here}/service"), model)?;
        Some(PoolLoad { workers: model.workers.max(1), service })
    }

    fn service(&mut self, here: &str, model: &PoolModel) -> Option<ServiceTime> {
        let m = &model.service;
        let kind = m.distribution;
        let fields =
            [("value", &m.value), ("mean", &m.mean), ("median", &m.median), ("p99", &m.p99)];
        let wanted: &[&str] = match kind {
            DistributionName::Constant => &["value"],
            DistributionName::Exponential => &["mean"],
            DistributionName::Lognormal => &["median", "p99"],
        };

        // Report fields that do not belong, and missing ones, then parse the rest.
        let mut ok = true;
        for (field, value) in fields {
            let belongs = wanted.contains(&field);
            if value.is_some() && !belongs {
                let message = format!("the {} distribution takes no `{field}`", kind.as_str());
                let help = format!("the {} distribution takes {}", kind.as_str(), list(wanted));
                let finding = Diagnostic::error(codes::SERVICE_FIELDS, message).with_help(help);
                self.push_at_key(finding, &format!("{here}/{field}"));
                ok = false;
            }
            if value.is_none() && belongs {
                let message = format!("the {} distribution needs `{field}`", kind.as_str());
                self.push(Diagnostic::error(codes::SERVICE_FIELDS, message), here);
                ok = false;
            }
        }
        let mut time = |field: &str, value: &Option<String>| -> Option<Nanos> {
            let pointer = format!("{here}/{field}");
            let ns = self.duration(&pointer, value.as_deref()?)?;
            if ns == 0 {
                let message = format!("service `{field}` must be positive");
                self.push(Diagnostic::error(codes::BAD_DURATION, message), &pointer);
                return None;
            }
            Some(ns)
        };
        let service = match kind {
            DistributionName::Constant => ServiceTime::Constant { value: time("value", &m.value)? },
            DistributionName::Exponential => {
                ServiceTime::Exponential { mean: time("mean", &m.mean)? }
            }
            DistributionName::Lognormal => {
                let (median, p99) = (time("median", &m.median), time("p99", &m.p99));
                let (median, p99) = (median?, p99?);
                if p99 < median {
                    let message =
                        format!("`p99` {} is below the median {}", Human(p99), Human(median));
                    self.push(
                        Diagnostic::error(codes::SERVICE_FIELDS, message),
                        &format!("{here}/p99"),
                    );
                    return None;
                }
                ServiceTime::log_normal(median, p99)
            }
        };
        ok.then_some(service)
    }
}
