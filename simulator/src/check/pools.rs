//! Pool models: names resolved against the plan, and service laws checked
//! field by field.

use sluice_compiler::Diagnostic;

use super::{child, codes, known, list, Checker};
use crate::random::ServiceTime;
use crate::scenario::{DistributionName, PoolModel, Scenario, ServiceModel};
use crate::time::{Human, Nanos};
use crate::workload::{EndpointLoad, PoolLoad, RouteShare};

/// Most samples an empirical distribution may hold.
const MAX_SAMPLES: usize = 10_000_000;

impl Checker<'_> {
    /// Resolve pool models by pool index, and check every reached pool has one.
    pub(super) fn pools(&mut self, s: &Scenario, traffic: &[RouteShare]) -> Vec<Option<PoolLoad>> {
        let models: Vec<(&String, Option<PoolLoad>)> =
            s.pools.iter().map(|(name, model)| (name, self.pool_model(name, model))).collect();
        let Some(topology) = self.topology else { return Vec::new() };

        let mut pools = vec![None; topology.pools.len()];
        let mut default = None;
        for (name, load) in models {
            if name == "*" {
                default = load;
                continue;
            }
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
        // Shares and entries pair up unless a share was left out for an error.
        let paired = traffic.len() == s.traffic.len();
        for (i, share) in traffic.iter().enumerate() {
            let route = &topology.routes[share.route];
            let sides = std::iter::once(route.pool).chain(route.split.iter().map(|s| s.0));
            for p in sides {
                if pools[p].is_none() && default.is_some() {
                    pools[p] = default.clone();
                }
                let pool = &topology.pools[p].name;
                if !reached[p] && pools[p].is_none() && !s.pools.contains_key(pool) {
                    let message = format!(
                        "route `{}` sends to pool `{pool}`, which has no service model",
                        route.name
                    );
                    let model =
                        "{ workers: 4, service: { distribution: exponential, mean: 20ms } }";
                    let help = format!("add `{pool}: {model}` under `pools`");
                    let finding =
                        Diagnostic::error(codes::NO_SERVICE_MODEL, message).with_help(help);
                    let pointer = match s.traffic.get(i).filter(|_| paired) {
                        Some(entry) if entry.route.is_some() => format!("/traffic/{i}/route"),
                        Some(_) => format!("/traffic/{i}/path"),
                        None => "/pools".to_owned(),
                    };
                    self.push(finding, &pointer);
                }
                reached[p] = true;
            }
        }
        for name in s.pools.keys() {
            if topology.pool_index(name).is_some_and(|p| !reached[p]) {
                let message =
                    format!("no route in `traffic` sends to pool `{name}`; its model is unused");
                let pointer = child("/pools", name);
                self.push_at_key(Diagnostic::warning(codes::UNUSED_POOL_MODEL, message), &pointer);
            }
        }

        // Endpoint overrides, now that pools are known.
        for (name, model) in &s.pools {
            let Some(p) = topology.pool_index(name) else { continue };
            let Some(load) = &mut pools[p] else { continue };
            if model.endpoints.is_empty() {
                continue;
            }
            let mut endpoints = vec![None; topology.pools[p].endpoints.len()];
            let mut load = load.clone();
            for (key, e) in &model.endpoints {
                let here = child(&child("/pools", name), "endpoints");
                let pointer = child(&here, key);
                let Some(i) = self.endpoint_index(p, key, &pointer, false) else { continue };
                if e.workers == Some(0) {
                    let message = format!("endpoint `{key}` has 0 workers");
                    self.push(
                        Diagnostic::error(codes::NO_WORKERS, message),
                        &format!("{pointer}/workers"),
                    );
                }
                let service = match &e.service {
                    Some(m) => self.service(&format!("{pointer}/service"), m, 0),
                    None => Some(load.service.clone()),
                };
                self.queue_limit(&format!("{pointer}/queue_limit"), e.queue_limit);
                endpoints[i] = Some(EndpointLoad {
                    workers: e.workers.unwrap_or(load.workers).max(1),
                    service: service.unwrap_or_else(|| load.service.clone()),
                    queue_limit: e.queue_limit.or(load.queue_limit),
                });
            }
            load.endpoints = endpoints;
            pools[p] = Some(load);
        }
        pools
    }

    fn queue_limit(&mut self, pointer: &str, limit: Option<u32>) {
        if limit == Some(0) {
            let message = "`queue_limit: 0` would refuse every request that finds the workers busy";
            let help = "give at least 1, or remove it for no limit";
            self.push(Diagnostic::error(codes::BAD_SETTING, message).with_help(help), pointer);
        }
    }

    fn pool_model(&mut self, name: &str, model: &PoolModel) -> Option<PoolLoad> {
        let here = child("/pools", name);
        if model.workers == 0 {
            let message = format!("pool `{name}` has 0 workers");
            let help = "an endpoint needs at least 1 worker to serve anything";
            let finding = Diagnostic::error(codes::NO_WORKERS, message).with_help(help);
            self.push(finding, &format!("{here}/workers"));
        }
        self.queue_limit(&format!("{here}/queue_limit"), model.queue_limit);
        let service = self.service(&format!("{here}/service"), &model.service, 0)?;
        Some(PoolLoad {
            workers: model.workers.max(1),
            service,
            queue_limit: model.queue_limit,
            endpoints: Vec::new(),
        })
    }

    fn service(&mut self, here: &str, m: &ServiceModel, depth: u32) -> Option<ServiceTime> {
        let kind = m.distribution;
        let fields = [
            ("value", m.value.is_some()),
            ("mean", m.mean.is_some()),
            ("median", m.median.is_some()),
            ("p99", m.p99.is_some()),
            ("scale", m.scale.is_some()),
            ("shape", m.shape.is_some()),
            ("fast", m.fast.is_some()),
            ("slow", m.slow.is_some()),
            ("slow_share", m.slow_share.is_some()),
            ("file", m.file.is_some()),
        ];
        let wanted: &[&str] = match kind {
            DistributionName::Constant => &["value"],
            DistributionName::Exponential => &["mean"],
            DistributionName::Lognormal => &["median", "p99"],
            DistributionName::Pareto => &["scale", "shape"],
            DistributionName::Bimodal => &["fast", "slow", "slow_share"],
            DistributionName::Empirical => &["file"],
        };

        // Report fields that do not belong, and missing ones, then parse the rest.
        let mut ok = true;
        for (field, set) in fields {
            let belongs = wanted.contains(&field);
            if set && !belongs {
                let message = format!("the {} distribution takes no `{field}`", kind.as_str());
                let help = format!("the {} distribution takes {}", kind.as_str(), list(wanted));
                let finding = Diagnostic::error(codes::SERVICE_FIELDS, message).with_help(help);
                self.push_at_key(finding, &format!("{here}/{field}"));
                ok = false;
            }
            if !set && belongs {
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
            DistributionName::Pareto => {
                let scale = time("scale", &m.scale);
                let shape = m.shape?;
                if !(shape.is_finite() && shape > 1.0) {
                    let message = format!("Pareto `shape` {shape} is not above 1");
                    let help = "at 1 or below the mean is infinite; heavy tails are 1.1 to 3";
                    let finding = Diagnostic::error(codes::OUT_OF_RANGE, message).with_help(help);
                    self.push(finding, &format!("{here}/shape"));
                    return None;
                }
                ServiceTime::Pareto { scale: scale?, shape }
            }
            DistributionName::Bimodal => {
                if depth > 0 {
                    let message = "a bimodal mode cannot itself be bimodal";
                    self.push(Diagnostic::error(codes::SERVICE_FIELDS, message), here);
                    return None;
                }
                let fast = self.service(&format!("{here}/fast"), m.fast.as_deref()?, depth + 1);
                let slow = self.service(&format!("{here}/slow"), m.slow.as_deref()?, depth + 1);
                let share = m.slow_share?;
                if !(0.0..=1.0).contains(&share) {
                    let message = format!("`slow_share` {share} is not between 0 and 1");
                    let pointer = format!("{here}/slow_share");
                    self.push(Diagnostic::error(codes::OUT_OF_RANGE, message), &pointer);
                    return None;
                }
                ServiceTime::Bimodal {
                    fast: Box::new(fast?),
                    slow: Box::new(slow?),
                    slow_share: share,
                }
            }
            DistributionName::Empirical => {
                self.samples(&format!("{here}/file"), m.file.as_deref()?)?
            }
        };
        ok.then_some(service)
    }

    /// Read a file of observed service times.
    fn samples(&mut self, pointer: &str, file: &str) -> Option<ServiceTime> {
        let path = match &self.base {
            Some(base) => base.join(file),
            None => std::path::PathBuf::from(file),
        };
        let fail = |why: String| Diagnostic::error(codes::SAMPLES_FILE, why);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                let help = "the path is relative to the scenario file";
                self.push(fail(format!("cannot read `{file}`: {e}")).with_help(help), pointer);
                return None;
            }
        };
        let mut samples = Vec::new();
        // (A byte-order mark, as some editors and exports write, is no sample.)
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match crate::time::parse_duration(line) {
                Ok(ns) => samples.push(ns),
                Err(e) => {
                    self.push(fail(format!("`{file}` line {}: {e}", n + 1)), pointer);
                    return None;
                }
            }
            if samples.len() > MAX_SAMPLES {
                self.push(fail(format!("`{file}` has more than {MAX_SAMPLES} samples")), pointer);
                return None;
            }
        }
        if samples.is_empty() {
            let help = "write one observed service time per line, such as `12.5ms`";
            self.push(fail(format!("`{file}` holds no service times")).with_help(help), pointer);
            return None;
        }
        // As a constant service time must be: with no time to serve, clients
        // without think time would send without end at one instant.
        if samples.iter().all(|&ns| ns == 0) {
            let help = "a service takes some time; record the times in finer units";
            self.push(
                fail(format!("every service time in `{file}` is 0")).with_help(help),
                pointer,
            );
            return None;
        }
        samples.sort_unstable();
        Some(ServiceTime::Empirical { sorted: samples.into() })
    }
}
