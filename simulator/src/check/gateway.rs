//! Arrivals, gateway settings, the variant grid and timed events: checked
//! field by field and lowered into the workload and `sluice_traffic` types.

use std::time::Duration;

/// Largest factor a burst or a slowdown may apply.
const MAX_FACTOR: f64 = 10_000.0;
/// Most closed-loop clients one run may simulate.
const MAX_CLIENTS: u32 = 1_000_000;
/// Most tries one request may take.
const MAX_ATTEMPTS: u32 = 100;

use sluice_compiler::Diagnostic;

use super::{codes, known, pool_shares, Checker, LateFrom};
use crate::scenario::{self, ActionName, EventModel, GatewayModel, Grid, PatternName, Scenario};
use crate::time::Nanos;
use crate::workload::{
    Arrivals, Burst, DailyCurve, Fault, FaultKind, Gateway, Pattern, RateChange, RateProfile,
    RetryConditions, RouteShare, Variant,
};

/// Most variants a grid may produce.
const MAX_VARIANTS: usize = 64;

impl Checker<'_> {
    fn positive(
        &mut self,
        pointer: &str,
        what: &str,
        x: f64,
        code: sluice_compiler::diagnostic::Code,
    ) -> bool {
        if x.is_finite() && x > 0.0 {
            return true;
        }
        self.push(Diagnostic::error(code, format!("{what} {x} is not positive")), pointer);
        false
    }

    /// A multiplying factor: positive and at most [`MAX_FACTOR`], beyond which
    /// virtual times overflow and the statistics stop meaning anything.
    fn factor(&mut self, pointer: &str, what: &str, x: f64) -> bool {
        if !self.positive(pointer, what, x, codes::OUT_OF_RANGE) {
            return false;
        }
        if x > MAX_FACTOR {
            let message = format!("{what} {x} is above the limit of {MAX_FACTOR}");
            self.push(Diagnostic::error(codes::OUT_OF_RANGE, message), pointer);
            return false;
        }
        true
    }

    fn optional_duration(&mut self, pointer: &str, text: &Option<String>) -> Option<Nanos> {
        text.as_deref().and_then(|t| self.duration(pointer, t))
    }

    fn span(&mut self, pointer: &str, text: &Option<String>) -> Option<Duration> {
        self.optional_duration(pointer, text).map(Duration::from_nanos)
    }

    pub(super) fn arrivals(&mut self, a: &scenario::Arrivals) -> Arrivals {
        let fallback =
            Arrivals::Open { pattern: Pattern::Poisson, profile: RateProfile::flat(1.0) };
        if a.replay.is_some() {
            let others = [
                ("rate", a.rate.is_some()),
                ("clients", a.clients.is_some()),
                ("think", a.think.is_some()),
                ("pattern", a.pattern.is_some()),
                ("changes", !a.changes.is_empty()),
                ("bursts", !a.bursts.is_empty()),
                ("daily", a.daily.is_some()),
            ];
            for (field, _) in others.iter().filter(|(_, set)| *set) {
                let message =
                    format!("`{field}` does not apply to a replay, which keeps the log's times");
                self.push_at_key(
                    Diagnostic::error(codes::BAD_ARRIVALS, message),
                    &format!("/arrivals/{field}"),
                );
            }
            return fallback;
        }
        if a.scale.is_some() {
            let message = "`scale` speeds up a replay; give `replay` too";
            self.push_at_key(Diagnostic::error(codes::BAD_ARRIVALS, message), "/arrivals/scale");
        }
        match (a.rate, a.clients) {
            (Some(_), Some(_)) => {
                let message = "give `rate` (open loop) or `clients` (closed loop), not both";
                self.push(Diagnostic::error(codes::BAD_ARRIVALS, message), "/arrivals/clients");
                fallback
            }
            (None, None) => {
                let message = "arrivals need `rate` (open loop) or `clients` (closed loop)";
                let help = "add `rate: 800` for 800 requests per second";
                let finding = Diagnostic::error(codes::BAD_ARRIVALS, message).with_help(help);
                self.push(finding, "/arrivals");
                fallback
            }
            (None, Some(clients)) => {
                let open_only = [
                    ("pattern", a.pattern.is_some()),
                    ("changes", !a.changes.is_empty()),
                    ("bursts", !a.bursts.is_empty()),
                    ("daily", a.daily.is_some()),
                ];
                for (field, set) in open_only {
                    if set {
                        let message =
                            format!("`{field}` shapes an open loop; closed-loop clients have none");
                        self.push_at_key(
                            Diagnostic::error(codes::BAD_ARRIVALS, message),
                            &format!("/arrivals/{field}"),
                        );
                    }
                }
                if clients == 0 {
                    let message = "`clients` must be at least 1";
                    self.push(Diagnostic::error(codes::BAD_ARRIVALS, message), "/arrivals/clients");
                }
                if clients > MAX_CLIENTS {
                    let message = format!(
                        "{clients} closed-loop clients are more than the limit of {MAX_CLIENTS}"
                    );
                    self.push(
                        Diagnostic::error(codes::TOO_MANY_REQUESTS, message),
                        "/arrivals/clients",
                    );
                }
                let think = self.optional_duration("/arrivals/think", &a.think).unwrap_or(0);
                Arrivals::Closed { clients: clients.max(1), think }
            }
            (Some(rate), None) => {
                if a.think.is_some() {
                    let message = "`think` is the pause of closed-loop clients; give `clients` too";
                    self.push_at_key(
                        Diagnostic::error(codes::BAD_ARRIVALS, message),
                        "/arrivals/think",
                    );
                }
                let base = if self.positive("/arrivals/rate", "arrival rate", rate, codes::BAD_RATE)
                {
                    rate
                } else {
                    1.0
                };
                let mut changes: Vec<RateChange> = Vec::new();
                for (i, c) in a.changes.iter().enumerate() {
                    let here = format!("/arrivals/changes/{i}");
                    let at = self.duration(&format!("{here}/at"), &c.at);
                    let ramp =
                        self.optional_duration(&format!("{here}/ramp"), &c.ramp).unwrap_or(0);
                    let ok = self.positive(
                        &format!("{here}/rate"),
                        "arrival rate",
                        c.rate,
                        codes::BAD_RATE,
                    );
                    let Some(at) = at else { continue };
                    if changes.last().is_some_and(|last| at < last.at + last.ramp) {
                        let message =
                            "rate changes must be in time order and not overlap their ramps";
                        self.push(
                            Diagnostic::error(codes::BAD_ARRIVALS, message),
                            &format!("{here}/at"),
                        );
                    }
                    if ok {
                        changes.push(RateChange { at, ramp, rate: c.rate });
                    }
                }
                let mut bursts = Vec::new();
                for (i, b) in a.bursts.iter().enumerate() {
                    let here = format!("/arrivals/bursts/{i}");
                    let at = self.duration(&format!("{here}/at"), &b.at);
                    let length = self.duration(&format!("{here}/length"), &b.length);
                    let mut ok = self.factor(&format!("{here}/factor"), "burst factor", b.factor);
                    if length == Some(0) {
                        let message = "a burst needs a positive `length`, such as `length: 5s`";
                        self.push(
                            Diagnostic::error(codes::OUT_OF_RANGE, message),
                            &format!("{here}/length"),
                        );
                        ok = false;
                    }
                    if let (Some(from), Some(length), true) = (at, length, ok) {
                        bursts.push(Burst {
                            from,
                            until: from.saturating_add(length),
                            factor: b.factor,
                        });
                    }
                }
                let pattern = match a.pattern {
                    Some(PatternName::Constant) => Pattern::Constant,
                    _ => Pattern::Poisson,
                };
                let daily = a.daily.as_ref().and_then(|d| self.daily(d));
                Arrivals::Open { pattern, profile: RateProfile { base, changes, bursts, daily } }
            }
        }
    }

    /// A daily curve, checked: a positive period and 24 multipliers, each a
    /// valid factor.
    fn daily(&mut self, d: &scenario::DailyCurve) -> Option<DailyCurve> {
        const HOURS: usize = 24;
        let here = "/arrivals/daily";
        let period = match self.optional_duration(&format!("{here}/period"), &d.period) {
            Some(0) => {
                let message = "a day's `period` must be positive, such as `period: 24m`";
                self.push(
                    Diagnostic::error(codes::OUT_OF_RANGE, message),
                    &format!("{here}/period"),
                );
                None
            }
            None if d.period.is_some() => None,
            None => Some(24 * 3_600 * 1_000_000_000),
            Some(p) => Some(p),
        };
        let mut ok = period.is_some();
        if d.hours.len() != HOURS {
            let message = format!(
                "a daily curve needs {HOURS} hourly multipliers, one per hour from midnight; \
                 this one has {}",
                d.hours.len()
            );
            self.push(Diagnostic::error(codes::BAD_ARRIVALS, message), &format!("{here}/hours"));
            ok = false;
        }
        for (i, &x) in d.hours.iter().enumerate() {
            ok &= self.factor(&format!("{here}/hours/{i}"), "hourly multiplier", x);
        }
        Some(DailyCurve { period: period?, hours: d.hours.clone() }).filter(|_| ok)
    }

    /// A count setting that must be at least 1.
    fn at_least_one(&mut self, pointer: &str, what: &str, n: Option<u32>) -> Option<u32> {
        match n {
            Some(0) => {
                let message = format!("`{what}` must be at least 1");
                self.push(Diagnostic::error(codes::BAD_SETTING, message), pointer);
                None
            }
            Some(n) if what == "attempts" && n > MAX_ATTEMPTS => {
                let message = format!("`attempts` {n} is above the limit of {MAX_ATTEMPTS}");
                self.push(Diagnostic::error(codes::BAD_SETTING, message), pointer);
                None
            }
            n => n,
        }
    }

    pub(super) fn gateway(&mut self, g: Option<&GatewayModel>) -> Gateway {
        let mut out = Gateway::default();
        let Some(g) = g else { return out };
        out.instances =
            self.at_least_one("/gateway/instances", "instances", g.instances).unwrap_or(1);
        if out.instances > 64 {
            let message = format!(
                "{} gateway instances is more than the 64 simulated at most",
                out.instances
            );
            self.push(Diagnostic::error(codes::BAD_SETTING, message), "/gateway/instances");
            out.instances = 1;
        }
        out.timeout = self.nonzero_span("/gateway/timeout", &g.timeout);

        // Each section changes only the settings it names, over each
        // route's or pool's own, as a grid value does.
        let o = &mut out.overrides;
        if let Some(r) = &g.retries {
            let here = "/gateway/retries";
            out.attempts = self.at_least_one(&format!("{here}/attempts"), "attempts", r.attempts);
            if let Some(on) = &r.on {
                o.retry_on = Some(RetryConditions::new(&self.retry_on(&format!("{here}/on"), on)));
            }
            out.per_try_timeout =
                self.nonzero_span(&format!("{here}/per_try_timeout"), &r.per_try_timeout);
            o.backoff_base = self.span(&format!("{here}/backoff"), &r.backoff);
            o.backoff_max = self.span(&format!("{here}/max_backoff"), &r.max_backoff);
        }
        if let Some(b) = &g.retry_budget {
            out.budget = Some(true);
            o.budget_ratio = b.ratio_percent;
            o.budget_min_per_second = b.min_per_second;
            o.budget_window = self.nonzero_span("/gateway/retry_budget/window", &b.window);
        }
        if let Some(c) = &g.circuit_breaker {
            let mut limit = |name: &str, value: Option<u32>| {
                self.at_least_one(&format!("/gateway/circuit_breaker/{name}"), name, value)
            };
            o.max_requests = limit("max_requests", c.max_requests);
            o.max_connections = limit("max_connections", c.max_connections);
            o.max_pending = limit("max_pending", c.max_pending);
        }
        if let Some(h) = &g.health_check {
            let here = "/gateway/health_check";
            out.health = true;
            o.health_interval = self.nonzero_span(&format!("{here}/interval"), &h.interval);
            o.health_timeout = self.nonzero_span(&format!("{here}/timeout"), &h.timeout);
            o.health_jitter = self.span(&format!("{here}/jitter"), &h.jitter);
            o.healthy_threshold = self.at_least_one(
                &format!("{here}/healthy_threshold"),
                "healthy_threshold",
                h.healthy_threshold,
            );
            o.unhealthy_threshold = self.at_least_one(
                &format!("{here}/unhealthy_threshold"),
                "unhealthy_threshold",
                h.unhealthy_threshold,
            );
        }
        if let Some(d) = &g.outlier_detection {
            let here = "/gateway/outlier_detection";
            out.outlier = true;
            if d.max_ejection_percent.is_some_and(|p| p > 100) {
                let message = "`max_ejection_percent` is a percentage, 0 to 100";
                self.push(
                    Diagnostic::error(codes::OUT_OF_RANGE, message),
                    &format!("{here}/max_ejection_percent"),
                );
            }
            o.consecutive_failures = d.consecutive_failures;
            o.consecutive_connect_failures = d.consecutive_connect_failures;
            o.base_ejection = self.nonzero_span(&format!("{here}/base_ejection"), &d.base_ejection);
            o.max_ejection = self.nonzero_span(&format!("{here}/max_ejection"), &d.max_ejection);
            o.max_ejection_percent = d.max_ejection_percent.map(|p| p.min(100));
        }
        out
    }

    /// A duration that must be above zero.
    fn nonzero_span(&mut self, pointer: &str, text: &Option<String>) -> Option<Duration> {
        match self.optional_duration(pointer, text) {
            Some(0) => {
                let message = "this duration must be above zero";
                self.push(Diagnostic::error(codes::BAD_DURATION, message), pointer);
                None
            }
            ns => ns.map(Duration::from_nanos),
        }
    }

    fn retry_on(&mut self, here: &str, on: &[serde_json::Value]) -> sluice_traffic::retry::RetryOn {
        let mut out = sluice_traffic::retry::RetryOn {
            connect_failure: false,
            reset: false,
            timeout: false,
            statuses: Vec::new(),
        };
        for (i, value) in on.iter().enumerate() {
            match value {
                serde_json::Value::String(s) if s == "connect_failure" => {
                    out.connect_failure = true
                }
                serde_json::Value::String(s) if s == "reset" => out.reset = true,
                serde_json::Value::String(s) if s == "timeout" => out.timeout = true,
                serde_json::Value::Number(n)
                    if n.as_u64().is_some_and(|s| (500..=599).contains(&s)) =>
                {
                    out.statuses.push(n.as_u64().unwrap_or(500) as u16);
                }
                other => {
                    let message = format!("`{other}` is not a retry condition");
                    let help = "use connect_failure, reset, timeout, or a status from 500 to 599";
                    self.push(
                        Diagnostic::error(codes::BAD_SETTING, message).with_help(help),
                        &format!("{here}/{i}"),
                    );
                }
            }
        }
        out
    }

    /// The variants: each balancer crossed with every combination of the grid.
    pub(super) fn grid(&mut self, grid: Option<&Grid>, balancers: Vec<Variant>) -> Vec<Variant> {
        let Some(g) = grid else { return balancers };
        let mut variants = balancers;
        // Durations above zero, each once.
        let spans = |this: &mut Self, name: &str, texts: &[String]| -> Vec<Nanos> {
            let at = |i: usize| format!("/grid/{name}/{i}");
            let checked = texts.iter().enumerate();
            let parsed = checked.filter_map(|(i, t)| {
                this.nonzero_span(&at(i), &Some(t.clone())).map(|d| (i, d.as_nanos() as Nanos))
            });
            let parsed = parsed.collect();
            this.distinct(name, parsed)
        };
        // Counts of something, each at least 1, each once.
        let counts = |this: &mut Self, name: &str, values: &[u32]| -> Vec<u32> {
            let at = |i: usize| format!("/grid/{name}/{i}");
            let checked = values.iter().enumerate();
            let counted = checked
                .filter_map(|(i, &n)| this.at_least_one(&at(i), name, Some(n)).map(|n| (i, n)));
            let counted = counted.collect();
            this.distinct(name, counted)
        };
        let timeouts = spans(self, "timeout", &g.timeout);
        let attempts = counts(self, "attempts", &g.attempts);
        let max_requests = counts(self, "max_requests", &g.max_requests);
        let max_connections = counts(self, "max_connections", &g.max_connections);
        let max_pending = counts(self, "max_pending", &g.max_pending);
        let healthy = counts(self, "healthy_threshold", &g.healthy_threshold);
        let unhealthy = counts(self, "unhealthy_threshold", &g.unhealthy_threshold);
        let per_try = spans(self, "per_try_timeout", &g.per_try_timeout);
        // (A list with a bad condition is left out, so that what is left of
        // it does not read as a repeat.)
        let retry_on: Vec<(usize, RetryConditions)> = g
            .retry_on
            .iter()
            .enumerate()
            .filter_map(|(i, on)| {
                let before = self.found.len();
                let on = RetryConditions::new(&self.retry_on(&format!("/grid/retry_on/{i}"), on));
                (self.found.len() == before).then_some((i, on))
            })
            .collect();
        let retry_on = self.distinct("retry_on", retry_on);
        let intervals = spans(self, "health_interval", &g.health_interval);
        let budgets = self.distinct("retry_budget", listed(&g.retry_budget));
        let ratios = self.distinct("ratio_percent", listed(&g.ratio_percent));
        variants = cross(variants, &attempts, |v, &a| Variant { attempts: Some(a), ..v });
        variants = cross(variants, &timeouts, |v, &t| Variant { timeout: Some(t), ..v });
        variants = cross(variants, &max_requests, |v, &m| Variant { max_requests: Some(m), ..v });
        variants =
            cross(variants, &max_connections, |v, &m| Variant { max_connections: Some(m), ..v });
        variants = cross(variants, &max_pending, |v, &m| Variant { max_pending: Some(m), ..v });
        variants = cross(variants, &budgets, |v, &b| Variant { retry_budget: Some(b), ..v });
        variants = cross(variants, &ratios, |v, &r| Variant {
            // A budget switched off has no ratio: one variant, not one per ratio.
            budget_ratio: (v.retry_budget != Some(false)).then_some(r),
            ..v
        });
        variants = cross(variants, &per_try, |v, &t| Variant { per_try_timeout: Some(t), ..v });
        variants = cross(variants, &retry_on, |v, &on| Variant { retry_on: Some(on), ..v });
        variants = cross(variants, &intervals, |v, &t| Variant { health_interval: Some(t), ..v });
        variants = cross(variants, &healthy, |v, &n| Variant { healthy_threshold: Some(n), ..v });
        variants =
            cross(variants, &unhealthy, |v, &n| Variant { unhealthy_threshold: Some(n), ..v });
        let mut unique = Vec::new();
        for v in variants {
            if !unique.contains(&v) {
                unique.push(v);
            }
        }
        if unique.len() > MAX_VARIANTS {
            let message =
                format!("the grid makes {} variants, more than {MAX_VARIANTS}", unique.len());
            self.push(Diagnostic::error(codes::BAD_SETTING, message), "/grid");
            unique.truncate(MAX_VARIANTS);
        }
        unique
    }

    /// The values of grid axis `name`, each once: a value listed again
    /// (the same number, duration or conditions, however written) would
    /// only repeat variants, and is a warning at the repeat.
    fn distinct<T: PartialEq + Copy>(&mut self, name: &str, values: Vec<(usize, T)>) -> Vec<T> {
        let mut out: Vec<(usize, T)> = Vec::new();
        for (i, value) in values {
            let Some(&(first, _)) = out.iter().find(|(_, v)| *v == value) else {
                out.push((i, value));
                continue;
            };
            let (here, there) = (format!("/grid/{name}/{i}"), format!("/grid/{name}/{first}"));
            let written = |at: &str| self.doc.written(at).unwrap_or("?").trim().to_owned();
            let (this, that) = (written(&here), written(&there));
            let message = if this == that {
                format!("`{this}` is listed more than once in `grid.{name}`")
            } else {
                format!("`{this}` in `grid.{name}` is the same as `{that}` listed before it")
            };
            let finding = Diagnostic::warning(codes::DUPLICATE_VARIANT, message)
                .with_help("each variant runs once; remove the repeat")
                .with_label(self.doc, &there, "listed first here");
            self.push(finding, &here);
        }
        out.into_iter().map(|(_, v)| v).collect()
    }

    /// Timed events, expanded (a rolling deploy becomes crashes and
    /// recoveries) and sorted by time.
    pub(super) fn events(
        &mut self,
        s: &Scenario,
        late: Option<&LateFrom>,
        traffic: &[RouteShare],
    ) -> Vec<Fault> {
        let mut faults = Vec::new();
        for (i, e) in s.events.iter().enumerate() {
            let here = format!("/events/{i}");
            let Some(at) = self.duration(&format!("{here}/at"), &e.at) else { continue };
            if let Some(late) = late.filter(|late| at >= late.at) {
                let finding = Diagnostic::warning(codes::LATE_EVENT, late.message.clone());
                self.push(finding, &format!("{here}/at"));
            }
            let Some(kind) = self.event_kind(&here, e) else { continue };
            let targets = self.targets(&here, e, traffic);
            match kind {
                Some(kind) => faults.extend(targets.into_iter().map(|(pool, endpoint)| Fault {
                    at,
                    pool,
                    endpoint,
                    kind,
                })),
                None => {
                    // A rolling deploy: each target down for `down`, one after another.
                    let down = self
                        .nonzero_span(&format!("{here}/down"), &e.down)
                        .map_or(10_000_000_000, |d| d.as_nanos() as Nanos);
                    let every = self
                        .nonzero_span(&format!("{here}/every"), &e.every)
                        .map_or(down, |d| d.as_nanos() as Nanos);
                    for (k, (pool, endpoint)) in targets.into_iter().enumerate() {
                        let start = at.saturating_add(every.saturating_mul(k as u64));
                        faults.push(Fault { at: start, pool, endpoint, kind: FaultKind::Crash });
                        faults.push(Fault {
                            at: start.saturating_add(down),
                            pool,
                            endpoint,
                            kind: FaultKind::Recover,
                        });
                    }
                }
            }
        }
        faults.sort_by_key(|f| f.at);
        faults
    }

    /// The fault an event causes (`None` inside for a rolling deploy), after
    /// checking the fields its action takes.
    fn event_kind(&mut self, here: &str, e: &EventModel) -> Option<Option<FaultKind>> {
        let fields = [
            ("factor", e.factor.is_some(), e.action == ActionName::Slow),
            ("share", e.share.is_some(), e.action == ActionName::Fail),
            ("down", e.down.is_some(), e.action == ActionName::RollingDeploy),
            ("every", e.every.is_some(), e.action == ActionName::RollingDeploy),
        ];
        let mut ok = true;
        for (field, set, belongs) in fields {
            if set && !belongs {
                let message = format!("a `{}` event takes no `{field}`", e.action.as_str());
                self.push_at_key(
                    Diagnostic::error(codes::EVENT_FIELDS, message),
                    &format!("{here}/{field}"),
                );
                ok = false;
            }
        }
        let kind = match e.action {
            ActionName::Crash => FaultKind::Crash,
            ActionName::Recover => FaultKind::Recover,
            ActionName::FailFast => FaultKind::FailFast,
            ActionName::BlackHole => FaultKind::BlackHole,
            ActionName::StopAccepting => FaultKind::StopAccepting,
            ActionName::RollingDeploy => return ok.then_some(None),
            ActionName::Slow => {
                let Some(f) = e.factor else {
                    let message = "a `slow` event needs `factor`, such as `factor: 10`";
                    self.push(Diagnostic::error(codes::EVENT_FIELDS, message), here);
                    return None;
                };
                if !self.factor(&format!("{here}/factor"), "slowdown factor", f) {
                    return None;
                }
                FaultKind::Slow(f)
            }
            ActionName::Fail => {
                let Some(share) = e.share else {
                    let message = "a `fail` event needs `share`, such as `share: 0.2`";
                    self.push(Diagnostic::error(codes::EVENT_FIELDS, message), here);
                    return None;
                };
                if !(0.0..=1.0).contains(&share) {
                    let message = format!("share {share} is not between 0 and 1");
                    self.push(
                        Diagnostic::error(codes::OUT_OF_RANGE, message),
                        &format!("{here}/share"),
                    );
                    return None;
                }
                FaultKind::Fail(share)
            }
        };
        ok.then_some(Some(kind))
    }

    /// The (pool, endpoint) pairs an event names.
    fn targets(
        &mut self,
        here: &str,
        e: &EventModel,
        traffic: &[RouteShare],
    ) -> Vec<(usize, usize)> {
        let Some(topology) = self.topology else { return Vec::new() };
        let pools: Vec<usize> = match &e.pool {
            None => (0..topology.pools.len()).collect(),
            Some(name) => match topology.pool_index(name) {
                Some(p) => vec![p],
                // A pool of the spec named `busiest` is that pool.
                None if name == scenario::BUSIEST => {
                    match self.busiest(&format!("{here}/pool"), traffic) {
                        Some(p) => vec![p],
                        None => return Vec::new(),
                    }
                }
                None => {
                    let help = known("pools", name, topology.pools.iter().map(|p| p.name.as_str()));
                    let message = format!("unknown pool `{name}`");
                    self.push(
                        Diagnostic::error(codes::UNKNOWN_POOL, message).with_help(help),
                        &format!("{here}/pool"),
                    );
                    return Vec::new();
                }
            },
        };
        let pointer = format!("{here}/endpoint");
        // An event in every pool skips the pools that lack its endpoint,
        // but an endpoint that no pool has is a mistake.
        let every = e.pool.is_none();
        let mut out = Vec::new();
        for &p in &pools {
            match &e.endpoint {
                None => out.extend((0..topology.pools[p].endpoints.len()).map(|i| (p, i))),
                Some(name) => {
                    if let Some(i) = self.endpoint_index(p, name, &pointer, every) {
                        out.push((p, i));
                    }
                }
            }
        }
        if let (true, Some(name), true) = (every, &e.endpoint, out.is_empty()) {
            self.no_pool_has(name, &pointer);
        }
        out
    }

    /// The finding for an event in every pool whose endpoint none has.
    fn no_pool_has(&mut self, name: &str, pointer: &str) {
        let Some(topology) = self.topology else { return };
        let finding = match name.parse::<usize>() {
            Ok(i) => {
                let most = topology.pools.iter().map(|p| p.endpoints.len()).max().unwrap_or(0);
                let message = format!(
                    "no pool has an endpoint at position {i}; the largest has {most} endpoint(s)"
                );
                let help = match most {
                    0 => "the spec's pools have no endpoints".to_owned(),
                    1 => "position 0 is the only one".to_owned(),
                    n => format!("positions run from 0 to {}", n - 1),
                };
                Diagnostic::error(codes::UNKNOWN_ENDPOINT, message).with_help(help)
            }
            Err(_) => {
                let labels = topology.pools.iter().flat_map(|p| &p.endpoints);
                let help = known("endpoints", name, labels.map(|e| e.label.as_str()));
                let message = format!("no pool has an endpoint `{name}`");
                Diagnostic::error(codes::UNKNOWN_ENDPOINT, message).with_help(help)
            }
        };
        self.push(finding, pointer);
    }

    /// The pool that receives the largest share of `traffic` (a split
    /// route's share divided by its weights), for `pool: busiest`; a
    /// finding at `pointer` when no pool or more than one pool has it.
    fn busiest(&mut self, pointer: &str, traffic: &[RouteShare]) -> Option<usize> {
        let topology = self.topology?;
        let load = pool_shares(topology, traffic);
        let all: f64 = load.iter().sum();
        let top = load.iter().copied().fold(0.0, f64::max);
        if !(top > 0.0 && all.is_finite()) {
            let message = "`pool: busiest` names no pool: the traffic reaches none";
            let help = "name the pool the event happens in";
            self.push(Diagnostic::error(codes::AMBIGUOUS_POOL, message).with_help(help), pointer);
            return None;
        }
        // Shares within a part in a billion of the top are a tie.
        let tied: Vec<usize> = (0..load.len()).filter(|&p| load[p] >= top * (1.0 - 1e-9)).collect();
        if let [only] = tied[..] {
            return Some(only);
        }
        let names: Vec<String> =
            tied.iter().map(|&p| format!("`{}`", topology.pools[p].name)).collect();
        let message = format!(
            "`pool: busiest` cannot decide: pools {} each receive {:.1}% of the traffic",
            names.join(", "),
            100.0 * top / all
        );
        let help = format!(
            "name the pool, such as `pool: {}`, or weight `traffic` so that one pool receives more",
            topology.pools[tied[0]].name
        );
        self.push(Diagnostic::error(codes::AMBIGUOUS_POOL, message).with_help(help), pointer);
        None
    }

    /// Endpoint `name` (an address or a position) of pool `p`. With
    /// `lenient`, an endpoint the pool lacks is skipped quietly (an event
    /// for every pool names positions or addresses that some pools lack).
    pub(super) fn endpoint_index(
        &mut self,
        p: usize,
        name: &str,
        pointer: &str,
        lenient: bool,
    ) -> Option<usize> {
        let topology = self.topology?;
        let pool = &topology.pools[p];
        if let Ok(i) = name.parse::<usize>() {
            if i < pool.endpoints.len() {
                return Some(i);
            }
            if !lenient {
                let message = format!(
                    "pool `{}` has {} endpoint(s); there is no position {i}",
                    pool.name,
                    pool.endpoints.len()
                );
                self.push(Diagnostic::error(codes::UNKNOWN_ENDPOINT, message), pointer);
            }
            return None;
        }
        if let Some(i) = pool.endpoints.iter().position(|e| e.label == name) {
            return Some(i);
        }
        if lenient {
            return None;
        }
        let help = known("endpoints", name, pool.endpoints.iter().map(|e| e.label.as_str()));
        let message = format!("pool `{}` has no endpoint `{name}`", pool.name);
        self.push(Diagnostic::error(codes::UNKNOWN_ENDPOINT, message).with_help(help), pointer);
        None
    }
}

/// Each value with its place in its list.
fn listed<T: Copy>(values: &[T]) -> Vec<(usize, T)> {
    values.iter().copied().enumerate().collect()
}

/// Every variant with every value, or the variants as they are when there is none.
fn cross<T>(
    variants: Vec<Variant>,
    values: &[T],
    f: impl Fn(Variant, &T) -> Variant,
) -> Vec<Variant> {
    if values.is_empty() {
        return variants;
    }
    variants
        .into_iter()
        .flat_map(|v| values.iter().map(move |x| (v, x)))
        .map(|(v, x)| f(v, x))
        .collect()
}
