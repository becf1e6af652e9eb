//! Checking a scenario against a plan, and resolving it into a [`Workload`].
//!
//! The compiler's located-YAML loader parses the file and applies the
//! scenario's JSON Schema; the rules here are the ones a schema cannot
//! express: names that must exist in the spec, numbers that must be
//! positive, durations, which fields a distribution takes, and limits that
//! keep a run finite. Every finding of a file is collected in one pass and
//! located by JSON pointer, so it reports line and column.

use sluice_compiler::diagnostic::Code;
use sluice_compiler::document::{self, Document, SourceFile};
use sluice_compiler::{Diagnostic, Plan, Severity};

use crate::scenario::Scenario;
use crate::time::{parse_duration, Human, Nanos, SECOND};
use crate::workload::{Arrivals, Length, PoolLoad, RouteShare, Topology, Variant, Workload};

/// The finding codes of scenario checks.
pub mod codes {
    use super::Code;

    pub const UNKNOWN_ROUTE: Code = Code { id: "S0401", name: "unknown-route" };
    pub const UNKNOWN_POOL: Code = Code { id: "S0402", name: "unknown-pool" };
    pub const NO_SERVICE_MODEL: Code = Code { id: "S0403", name: "no-service-model" };
    pub const BAD_RATE: Code = Code { id: "S0404", name: "bad-rate" };
    pub const BAD_WEIGHT: Code = Code { id: "S0405", name: "bad-weight" };
    pub const BAD_DURATION: Code = Code { id: "S0406", name: "bad-duration" };
    pub const RUN_LENGTH: Code = Code { id: "S0407", name: "run-length" };
    pub const SERVICE_FIELDS: Code = Code { id: "S0408", name: "service-fields" };
    pub const NO_WORKERS: Code = Code { id: "S0409", name: "no-workers" };
    pub const TOO_MANY_REQUESTS: Code = Code { id: "S0410", name: "too-many-requests" };
    pub const DUPLICATE_VARIANT: Code = Code { id: "S0411", name: "duplicate-variant" };
    pub const UNUSED_POOL_MODEL: Code = Code { id: "S0412", name: "unused-pool-model" };
    pub const DUPLICATE_ROUTE: Code = Code { id: "S0413", name: "duplicate-route" };
    pub const OVERLOADED_POOL: Code = Code { id: "S0414", name: "overloaded-pool" };
    pub const BAD_ARRIVALS: Code = Code { id: "S0415", name: "bad-arrivals" };
    pub const UNKNOWN_ENDPOINT: Code = Code { id: "S0416", name: "unknown-endpoint" };
    pub const OUT_OF_RANGE: Code = Code { id: "S0417", name: "out-of-range" };
    pub const SAMPLES_FILE: Code = Code { id: "S0418", name: "samples-file" };
    pub const EVENT_FIELDS: Code = Code { id: "S0419", name: "event-fields" };
    pub const BAD_SETTING: Code = Code { id: "S0420", name: "bad-setting" };
    pub const LATE_EVENT: Code = Code { id: "S0421", name: "late-event" };
    pub const REPLAY_LOG: Code = Code { id: "S0422", name: "replay-log" };
    pub const AMBIGUOUS_POOL: Code = Code { id: "S0423", name: "ambiguous-pool" };
    pub const BAD_TEMPLATE: Code = Code { id: "S0424", name: "bad-request-template" };
    pub const NO_MATCHING_ROUTE: Code = Code { id: "S0425", name: "no-matching-route" };
    pub const BAD_KEYS: Code = Code { id: "S0426", name: "bad-key-distribution" };
    pub const UNUSED_KEY: Code = Code { id: "S0427", name: "unused-key" };
    pub const MISSING_KEY: Code = Code { id: "S0428", name: "missing-key" };
    pub const EMPTY_LIST: Code = Code { id: "S0430", name: "empty-list" };
}

/// Most requests one run may simulate, warm-up included, all its variants
/// and replications together, so that a typo in a rate or a duration
/// cannot start a run that never ends.
pub const MAX_REQUESTS: f64 = 100_000_000.0;

/// The outcome of checking one scenario file.
#[derive(Debug)]
pub struct CheckedScenario {
    /// Every finding, errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The parsed document, when the YAML could be read.
    pub document: Option<Document>,
    /// The scenario as written, when it deserialised.
    pub scenario: Option<Scenario>,
    /// The resolved workload: present only when a plan was given and there
    /// is no error.
    pub workload: Option<Workload>,
}

impl CheckedScenario {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Check a scenario and, given the plan it runs against, resolve it.
///
/// Without a plan (because the spec itself has errors) only the checks that
/// need no spec run, and no workload is produced.
pub fn check_scenario(source: SourceFile, plan: Option<&Plan>) -> CheckedScenario {
    let topology = plan.map(Topology::from_plan);
    check_against(source, topology.as_ref(), plan)
}

/// [`check_scenario`] against a topology; with the plan it came from, request
/// paths of the traffic are routed too.
fn check_against(
    source: SourceFile,
    topology: Option<&Topology>,
    plan: Option<&Plan>,
) -> CheckedScenario {
    let base = std::path::Path::new(&source.name).parent().map(std::path::Path::to_path_buf);
    let parsed = document::parse::<Scenario>(source, document::Kind::Scenario);
    let mut diagnostics = parsed.diagnostics;
    let mut workload = None;
    if let (Some(doc), Some(scenario)) = (&parsed.document, &parsed.value) {
        let mut checker = Checker { doc, topology, plan, found: Vec::new(), base };
        let resolved = checker.resolve(scenario);
        let clean = !checker.found.iter().any(|d| d.severity == Severity::Error);
        diagnostics.extend(checker.found);
        let no_errors = clean && !diagnostics.iter().any(|d| d.severity == Severity::Error);
        workload = resolved.filter(|_| no_errors && topology.is_some());
    }
    sluice_compiler::diagnostic::sort(&mut diagnostics);
    CheckedScenario { diagnostics, document: parsed.document, scenario: parsed.value, workload }
}

struct Checker<'a> {
    doc: &'a Document,
    topology: Option<&'a Topology>,
    /// The plan, which routes request paths.
    plan: Option<&'a Plan>,
    found: Vec<Diagnostic>,
    /// The scenario file's folder, which sample files are relative to.
    base: Option<std::path::PathBuf>,
}

impl Checker<'_> {
    /// Record a finding about the value at `pointer`.
    fn push(&mut self, finding: Diagnostic, pointer: &str) {
        self.found.push(finding.at(self.doc, pointer));
    }

    /// Record a finding about the key of `pointer`.
    fn push_at_key(&mut self, finding: Diagnostic, pointer: &str) {
        self.found.push(finding.at_key(self.doc, pointer));
    }

    /// Check everything and build the workload; a placeholder stands in for
    /// anything that failed, so later checks still run.
    fn resolve(&mut self, s: &Scenario) -> Option<Workload> {
        let replaying = s.arrivals.replay.is_some();
        let (length, warmup) = self.run_length(s, replaying);
        let arrivals = self.arrivals(&s.arrivals);
        let (arrivals, traffic) = match (&s.arrivals.replay, self.topology) {
            (Some(file), Some(topology)) => {
                let (replay, traffic) = self.replay(s, file, topology);
                (replay.map_or(arrivals, Arrivals::Replay), traffic)
            }
            (Some(_), None) => (arrivals, Vec::new()),
            (None, _) => (arrivals, self.traffic(s)),
        };
        // A replay without a length lasts as long as its log.
        let length = match (&arrivals, length) {
            (Arrivals::Replay(r), None) if s.duration.is_none() && s.requests.is_none() => {
                Some(Length::Duration(r.times.last().map_or(1, |&t| t + 1).max(warmup + 1)))
            }
            (_, length) => length,
        };
        let pools = self.pools(s, &traffic);
        let gateway = self.gateway(s.gateway.as_ref());
        let variants = self.variants(s);
        self.unused_keys(s, &traffic, &variants);
        let late = length.and_then(|length| late_from(length, warmup, &arrivals));
        let events = self.events(s, late.as_ref(), &traffic);
        if let Some(length) = length {
            let run = Run { length, warmup, arrivals: &arrivals, traffic: &traffic, pools: &pools };
            self.limits(s, &run, variants.len());
        }
        // Load figures built on wrong numbers would only add noise.
        if !self.found.iter().any(|d| d.severity == Severity::Error) {
            self.overload(s, &arrivals, length, &traffic, &pools);
        }
        Some(Workload {
            seed: s.seed,
            length: length?,
            warmup,
            arrivals,
            traffic,
            pools,
            gateway,
            events,
            variants,
        })
    }

    fn duration(&mut self, pointer: &str, text: &str) -> Option<Nanos> {
        match parse_duration(text) {
            Ok(ns) => Some(ns),
            Err(e) => {
                self.push(Diagnostic::error(codes::BAD_DURATION, e.to_string()), pointer);
                None
            }
        }
    }

    fn run_length(&mut self, s: &Scenario, replaying: bool) -> (Option<Length>, Nanos) {
        let warmup = match &s.warmup {
            Some(text) => self.duration("/warmup", text).unwrap_or(0),
            None => 0,
        };
        let length = match (&s.duration, s.requests) {
            (Some(_), Some(_)) => {
                let message = "give `duration` or `requests`, not both";
                self.found.push(
                    Diagnostic::error(codes::RUN_LENGTH, message)
                        .with_label(self.doc, "/duration", "`duration` is here")
                        .at(self.doc, "/requests"),
                );
                None
            }
            (None, None) if replaying => None,
            (None, None) => {
                let message = "the scenario needs `duration` or `requests`";
                let help = "add `duration: 60s` or `requests: 100000`";
                self.push(Diagnostic::error(codes::RUN_LENGTH, message).with_help(help), "");
                None
            }
            (Some(text), None) => match self.duration("/duration", text) {
                None => None,
                Some(0) => {
                    let message = "`duration` must be positive";
                    self.push(Diagnostic::error(codes::BAD_DURATION, message), "/duration");
                    None
                }
                Some(end) if end <= warmup => {
                    let message = format!(
                        "`duration` {text} leaves nothing to measure after a warm-up of {}",
                        Human(warmup)
                    );
                    let help = "`duration` includes the warm-up; make it longer";
                    self.push(
                        Diagnostic::error(codes::RUN_LENGTH, message).with_help(help),
                        "/duration",
                    );
                    None
                }
                Some(end) => Some(Length::Duration(end)),
            },
            (None, Some(0)) => {
                let message = "`requests` must be at least 1";
                self.push(Diagnostic::error(codes::RUN_LENGTH, message), "/requests");
                None
            }
            (None, Some(n)) => Some(Length::Requests(n)),
        };
        (length, warmup)
    }

    /// Lists written empty, which change nothing, are warnings: an empty
    /// `traffic` sends to every route as if it were left out, an empty
    /// `balancers` runs `spec`, and an empty grid list compares nothing.
    fn empty_lists(&mut self, replaying: bool) {
        let doc = self.doc;
        let empty = |pointer: &str| match doc.value.pointer(pointer) {
            Some(serde_json::Value::Array(items)) => items.is_empty(),
            Some(serde_json::Value::Object(map)) => map.is_empty(),
            _ => false,
        };
        // (Where, what it means, what to do.)
        let mut found: Vec<(String, String, String)> = Vec::new();
        let mut note = |pointer: &str, message: &str, help: &str| {
            found.push((pointer.to_owned(), message.to_owned(), help.to_owned()));
        };
        if empty("/traffic") && replaying {
            let message = "`traffic: []` lists no share; a replay takes its mix from the log";
            note("/traffic", message, "leave `traffic` out");
        } else if empty("/traffic") {
            let message = "`traffic: []` lists no share, so every route of the spec gets \
                           weight 1, as when `traffic` is left out";
            note("/traffic", message, "list the routes to send to, or leave `traffic` out");
        }
        if empty("/balancers") {
            let message = "`balancers: []` lists no balancer, so only `spec` runs, as when \
                           `balancers` is left out";
            note("/balancers", message, "list the balancers to compare, or leave it out");
        }
        if empty("/grid") {
            let message = "`grid: {}` lists no setting, so it compares nothing";
            note("/grid", message, "list the settings to compare, or leave it out");
        }
        if let Some(serde_json::Value::Object(axes)) = doc.value.pointer("/grid") {
            for name in axes.keys() {
                let pointer = child("/grid", name);
                if empty(&pointer) {
                    let message =
                        format!("`grid.{name}: []` lists no value, so it compares nothing");
                    note(&pointer, &message, "list the values to compare, or leave it out");
                }
            }
        }
        for (pointer, message, help) in found {
            let finding = Diagnostic::warning(codes::EMPTY_LIST, message).with_help(help);
            self.push(finding, &pointer);
        }
    }

    fn variants(&mut self, s: &Scenario) -> Vec<Variant> {
        self.empty_lists(s.arrivals.replay.is_some());
        let mut balancers = Vec::new();
        for (i, name) in s.balancers.iter().flatten().enumerate() {
            let variant = name.variant();
            if balancers.contains(&variant) {
                let message = format!("variant `{}` is listed more than once", variant.name());
                let finding = Diagnostic::warning(codes::DUPLICATE_VARIANT, message);
                self.push(finding, &format!("/balancers/{i}"));
            } else {
                balancers.push(variant);
            }
        }
        if balancers.is_empty() {
            balancers.push(Variant::spec());
        }
        self.grid(s.grid.as_ref(), balancers)
    }

    /// Refuse a run larger than [`MAX_REQUESTS`], all its variants together
    /// (`--replications` multiplies it further; `simulate` checks that).
    fn limits(&mut self, s: &Scenario, run: &Run, variants: usize) {
        let Some(per_run) = requests_per_run(self.topology, run) else { return };
        let total = per_run * variants as f64;
        if total <= MAX_REQUESTS {
            return;
        }
        let pointer = match run.length {
            Length::Duration(_) => "/duration",
            Length::Requests(_) => "/requests",
        };
        let closed = match run.arrivals {
            Arrivals::Closed { clients, .. } if pointer == "/duration" => Some(clients),
            _ => None,
        };
        let mut message = match closed {
            Some(_) => format!("the run could simulate up to about {per_run:.0} requests"),
            None => format!("the run would simulate about {per_run:.0} requests"),
        };
        if variants > 1 {
            message.push_str(&format!(" for each of its {variants} variants, {total:.0} in all"));
        }
        message.push_str(&format!(", more than the limit of {MAX_REQUESTS:.0}"));
        if let Some(clients) = closed {
            message.push_str(&format!(
                " ({clients} clients at their best-case throughput: every request answered in \
                 its mean service time, none waiting)"
            ));
        }
        let help = if variants > 1 {
            "shorten the run, lower the rate or the clients, or compare fewer variants; \
             a few million requests give tight percentiles"
        } else {
            "shorten the run, or lower the rate or the clients; \
             a few million requests give tight percentiles"
        };
        let mut finding = Diagnostic::error(codes::TOO_MANY_REQUESTS, message).with_help(help);
        if variants > 1 {
            let at = if s.grid.is_some() { "/grid" } else { "/balancers" };
            finding = finding.with_key_label(self.doc, at, "the variants");
        }
        self.push(finding, pointer);
    }

    /// Warn about pools offered more work than their workers can do, at the
    /// highest rate of the run (the peak of its changes, bursts and daily
    /// curve).
    fn overload(
        &mut self,
        s: &Scenario,
        arrivals: &Arrivals,
        length: Option<Length>,
        traffic: &[RouteShare],
        pools: &[Option<PoolLoad>],
    ) {
        let Some(topology) = self.topology else { return };
        let Arrivals::Open { profile, .. } = arrivals else { return };
        let end = match length {
            Some(Length::Duration(end)) => Some(end),
            _ => None,
        };
        let (rate, when) = profile.highest(end);
        let total: f64 = traffic.iter().map(|t| t.weight).sum();
        if total <= 0.0 {
            return;
        }
        let offered: Vec<f64> = pool_shares(topology, traffic)
            .iter()
            .zip(pools)
            .map(|(weight, load)| {
                load.as_ref()
                    .map_or(0.0, |l| rate * weight / total * l.service.mean() / SECOND as f64)
            })
            .collect();
        for (p, pool) in topology.pools.iter().enumerate() {
            let Some(load) = &pools[p] else { continue };
            let capacity: f64 = (0..pool.endpoints.len())
                .map(|e| {
                    let m = load.endpoint(e);
                    f64::from(m.workers) * load.service.mean() / m.service.mean().max(1.0)
                })
                .sum();
            let utilisation = offered[p] / capacity;
            if utilisation >= 1.0 && s.pools.contains_key(&pool.name) {
                let message = if profile.is_flat() {
                    format!(
                        "pool `{}` is offered {:.0}% of its capacity; \
                         its queues grow for as long as the run lasts",
                        pool.name,
                        100.0 * utilisation
                    )
                } else {
                    format!(
                        "pool `{}` is offered {:.0}% of its capacity at the peak arrival rate \
                         of {rate:.0}/s (reached at {}); its queues grow while the rate stays \
                         that high",
                        pool.name,
                        100.0 * utilisation,
                        Human(when)
                    )
                };
                let help = "add workers or endpoints, or lower the rate, to see a steady state";
                let finding = Diagnostic::warning(codes::OVERLOADED_POOL, message).with_help(help);
                self.push(finding, &child("/pools", &pool.name));
            }
        }
    }
}

/// What decides the size of a run.
struct Run<'a> {
    length: Length,
    warmup: Nanos,
    arrivals: &'a Arrivals,
    traffic: &'a [RouteShare],
    pools: &'a [Option<PoolLoad>],
}

/// The requests one run of one variant simulates, warm-up included: the
/// expected number for open-loop arrivals and a replay, and for a closed
/// loop, its most (see [`closed_throughput`]). `None` when it cannot be
/// told (a closed loop without a spec to find its pools in).
pub fn run_requests(topology: &Topology, workload: &Workload) -> Option<f64> {
    let run = Run {
        length: workload.length,
        warmup: workload.warmup,
        arrivals: &workload.arrivals,
        traffic: &workload.traffic,
        pools: &workload.pools,
    };
    requests_per_run(Some(topology), &run)
}

fn requests_per_run(topology: Option<&Topology>, run: &Run) -> Option<f64> {
    let by = |end: Nanos| -> Option<f64> {
        Some(match run.arrivals {
            Arrivals::Open { profile, .. } => profile.expected(end),
            Arrivals::Closed { clients, think } => {
                let rate = closed_throughput(topology?, *clients, *think, run.traffic, run.pools)?;
                rate * end as f64 / SECOND as f64
            }
            Arrivals::Replay(r) => r.times.partition_point(|&t| t < end) as f64,
        })
    };
    match run.length {
        Length::Duration(end) => by(end),
        Length::Requests(n) => Some(n as f64 + by(run.warmup).unwrap_or(0.0)),
    }
}

/// The most requests per second a closed loop can send: each client's next
/// request follows its think time and the answer to its last, which takes
/// at least the mean service time when nothing waits (the response time
/// law), and no pool serves more than its workers can.
fn closed_throughput(
    topology: &Topology,
    clients: u32,
    think: Nanos,
    traffic: &[RouteShare],
    pools: &[Option<PoolLoad>],
) -> Option<f64> {
    let shares = pool_shares(topology, traffic);
    let total: f64 = shares.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return None;
    }
    let mut service = 0.0; // The mean service time of a request, seconds.
    let mut most = f64::INFINITY; // Requests per second the pools allow.
    for (p, pool) in topology.pools.iter().enumerate() {
        let share = shares[p] / total;
        let Some(load) = pools.get(p).and_then(Option::as_ref).filter(|_| share > 0.0) else {
            continue;
        };
        service += share * load.service.mean() / SECOND as f64;
        let capacity: f64 = (0..pool.endpoints.len())
            .map(|e| {
                let m = load.endpoint(e);
                f64::from(m.workers) * SECOND as f64 / m.service.mean().max(1.0)
            })
            .sum();
        most = most.min(capacity / share);
    }
    let cycle = think as f64 / SECOND as f64 + service;
    let clients = f64::from(clients);
    Some(if cycle > 0.0 { (clients / cycle).min(most) } else { most })
        .filter(|rate| rate.is_finite())
}

/// From when an event comes after arrivals have stopped, and what to say
/// about it.
pub(crate) struct LateFrom {
    pub at: Nanos,
    pub message: String,
}

/// When arrivals stop, where that is known before the run: the `duration`;
/// with `requests`, the time of the last measured arrival of a replayed log,
/// or for an open loop the time by which the requests have all arrived
/// beyond any likely spread of the arrival process. A closed loop's pace
/// depends on its latencies, so its end is not foretold.
fn late_from(length: Length, warmup: Nanos, arrivals: &Arrivals) -> Option<LateFrom> {
    let n = match length {
        Length::Duration(end) => {
            let message = "this event happens after arrivals stop".to_owned();
            return Some(LateFrom { at: end, message });
        }
        Length::Requests(n) => n,
    };
    match arrivals {
        Arrivals::Closed { .. } => None,
        Arrivals::Replay(r) => {
            let first = r.times.partition_point(|&t| t < warmup);
            let last = first.saturating_add(usize::try_from(n).ok()?).min(r.times.len());
            let end = r.times.get(last.checked_sub(1)?).copied()?.saturating_add(1);
            let message = format!(
                "this event happens after arrivals stop: the last of the log's requests \
                 the run takes arrives at {}",
                Human(end - 1)
            );
            Some(LateFrom { at: end, message })
        }
        Arrivals::Open { profile, .. } => {
            // Measured arrivals by `t` number `expected(t) - expected(warmup)`
            // on average, with a spread of about its square root (a Poisson
            // count); the margin also covers the estimate's own error.
            let before = profile.expected(warmup);
            let by = |count: f64| -> Option<Nanos> {
                let reached = |t: Nanos| profile.expected(t) - before >= count;
                let mut high = warmup.max(SECOND);
                while !reached(high) {
                    high = high.checked_mul(2)?;
                }
                let mut low = warmup;
                while high - low > (high / 1_000_000).max(1_000) {
                    let mid = low + (high - low) / 2;
                    if reached(mid) {
                        high = mid;
                    } else {
                        low = mid;
                    }
                }
                Some(high)
            };
            let n = n as f64;
            let end = by(n)?;
            let at = by(n + 6.0 * n.sqrt() + 0.01 * n + 6.0)?;
            let message = format!(
                "this event happens after arrivals stop: at the scenario's arrival rate, the \
                 {n} measured requests have all arrived by about {}",
                Human(end)
            );
            Some(LateFrom { at, message })
        }
    }
}

/// Per pool of `topology`, the traffic weight it receives: a route's share
/// goes to its pool, or to the sides of its split in proportion to their
/// weights.
fn pool_shares(topology: &Topology, traffic: &[RouteShare]) -> Vec<f64> {
    let mut shares = vec![0.0f64; topology.pools.len()];
    for share in traffic {
        let Some(route) = topology.routes.get(share.route) else { continue };
        let total: u64 = route.split.iter().map(|s| u64::from(s.1)).sum();
        if total == 0 {
            shares[route.pool] += share.weight;
        } else {
            for &(pool, weight) in &route.split {
                shares[pool] += share.weight * f64::from(weight) / total as f64;
            }
        }
    }
    shares
}

/// `pointer` extended by one key, escaped as RFC 6901 asks.
fn child(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// `"a", "b" and "c"` for a help text.
fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// A help text suggesting the nearest name the spec defines, or else listing
/// them, or saying it has none.
fn known<'n>(kind: &str, wanted: &str, names: impl Iterator<Item = &'n str>) -> String {
    let names: Vec<String> = names.map(str::to_owned).collect();
    if let Some(best) = sluice_compiler::schema::nearest(wanted, &names) {
        return format!("did you mean `{best}`?");
    }
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match names.len() {
        0 => format!("the spec defines no {kind}"),
        n if n <= 12 => format!("the spec's {kind} are {}", names.join(", ")),
        n => format!("the spec's {kind} include {} and {} more", names[..10].join(", "), n - 10),
    }
}

mod gateway;
mod pools;
mod replay;
#[cfg(test)]
mod tests;
mod traffic;
