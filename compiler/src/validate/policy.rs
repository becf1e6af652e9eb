//! Rules about traffic policies: values that parse but make no sense
//! together, and settings whose timing defeats their purpose.
//!
//! - every duration parses (and the ones that time something are positive);
//! - a `consistent_hash` pool names its key, and a `path_param` key is a
//!   parameter of every route that sends to the pool;
//! - limits agree with each other (`max_ejection` not below `base_ejection`,
//!   backoff `max` not below `base`, status ranges low to high);
//! - retries whose tries cannot all fit in the route's timeout, retries
//!   without a budget, health checks slower than the route's timeout, an
//!   ejection cap that ejects nobody in a small pool, and a connection limit
//!   below the pool's endpoints are warnings.

use std::time::Duration;

use super::{check_duration, check_size, BODY_SIZE_UNITS};
use crate::diagnostic::{codes, Diagnostic};
use crate::document::Document;
use crate::lower::{status_range, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT};
use crate::plan::probe_target;
use crate::spec::{
    parse_duration, Balance, HashOn, Pool, Protocol, Retries, RetryFailure, RetryOn, Route, Spec,
    StatusSpec, Target,
};
use crate::template::Template;

pub(super) fn check(doc: &Document, spec: &Spec, out: &mut Vec<Diagnostic>) {
    for (i, pool) in spec.pools.iter().enumerate() {
        check_pool(doc, spec, i, pool, out);
    }
    for (i, route) in spec.routes.iter().enumerate() {
        check_route(doc, spec, i, route, out);
    }
}

/// A duration that may be zero (a jitter or a backoff of none).
fn check_duration_or_zero(
    doc: &Document,
    base: &str,
    key: &str,
    text: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    if text.is_some_and(|t| parse_duration(t).is_some_and(|d| d.is_zero())) {
        return;
    }
    check_duration(doc, base, key, text, out);
}

fn parsed(text: Option<&str>) -> Option<Duration> {
    text.and_then(parse_duration).filter(|d| !d.is_zero())
}

fn check_pool(doc: &Document, spec: &Spec, i: usize, pool: &Pool, out: &mut Vec<Diagnostic>) {
    let base = format!("/pools/{i}");
    let name = &pool.name;

    // The algorithm's own settings.
    if pool.balance == Balance::ConsistentHash && pool.hash_on.is_none() {
        out.push(
            Diagnostic::error(
                codes::MISSING_HASH_KEY,
                format!("pool `{name}` balances by `consistent_hash` but names no `hash_on` key"),
            )
            .with_help("add `hash_on: { header: NAME }`, `{ cookie: NAME }`, `{ query: NAME }`, `{ path_param: NAME }` or `client_address`")
            .at(doc, &format!("{base}/balance")),
        );
    }
    if pool.hash_on.is_some() && pool.balance != Balance::ConsistentHash {
        out.push(ignored(doc, &base, "hash_on", name, pool.balance, "consistent_hash"));
    }
    if pool.choices.is_some() && !pool.balance.samples() {
        out.push(ignored(doc, &base, "choices", name, pool.balance, "least_request or peak_ewma"));
    }
    if pool.ewma_window.is_some() && pool.balance != Balance::PeakEwma {
        out.push(ignored(doc, &base, "ewma_window", name, pool.balance, "peak_ewma"));
    }
    if let (Balance::ConsistentHash, Some(HashOn::PathParam(param))) = (pool.balance, &pool.hash_on)
    {
        check_path_param(doc, spec, i, param, out);
    }

    if let Some(check) = &pool.health_check {
        let hc = format!("{base}/health_check");
        // The probe's own reading of the path, so `check` and `serve` agree.
        if let Err(error) = probe_target(&check.path) {
            out.push(
                Diagnostic::error(
                    codes::BAD_PATH,
                    format!("health check path `{}` {error}", check.path),
                )
                .with_help("write an absolute path with an optional query, such as `/healthz` or `/healthz?full=1`, percent-encoding a space as %20")
                .at(doc, &format!("{hc}/path")),
            );
        }
        check_duration(doc, &hc, "interval", check.interval.as_deref(), out);
        check_duration(doc, &hc, "timeout", check.timeout.as_deref(), out);
        check_duration_or_zero(doc, &hc, "jitter", check.jitter.as_deref(), out);
        for (j, status) in check.statuses.iter().enumerate() {
            if let (None, StatusSpec::Range(text)) = (status_range(status), status) {
                out.push(
                    Diagnostic::error(
                        codes::BAD_POLICY,
                        format!("status range `{text}` runs backwards"),
                    )
                    .with_help("write the lower status first, such as \"200-399\"")
                    .at(doc, &format!("{hc}/statuses/{j}")),
                );
            }
        }
    }

    if let Some(outlier) = &pool.outlier_detection {
        let od = format!("{base}/outlier_detection");
        check_duration(doc, &od, "base_ejection", outlier.base_ejection.as_deref(), out);
        check_duration(doc, &od, "max_ejection", outlier.max_ejection.as_deref(), out);
        let base_ejection = parsed(outlier.base_ejection.as_deref());
        let max_ejection = parsed(outlier.max_ejection.as_deref());
        if let (Some(b), Some(m)) = (base_ejection, max_ejection) {
            if m < b {
                out.push(
                    Diagnostic::error(
                        codes::BAD_POLICY,
                        format!("`max_ejection` of {m:?} is shorter than `base_ejection` of {b:?}"),
                    )
                    .with_help("make `max_ejection` at least `base_ejection`")
                    .at(doc, &format!("{od}/max_ejection")),
                );
            }
        }
        if outlier.consecutive_failures == Some(0)
            && outlier.consecutive_connect_failures == Some(0)
        {
            out.push(
                Diagnostic::error(
                    codes::BAD_POLICY,
                    format!("outlier detection of pool `{name}` has both triggers at 0, so it never ejects"),
                )
                .with_help("set `consecutive_failures` or `consecutive_connect_failures` above 0, or remove `outlier_detection`")
                .at(doc, &od),
            );
        }
        let percent = u64::from(outlier.max_ejection_percent.unwrap_or(50).min(100));
        let n = pool.endpoints.len() as u64;
        if n > 0 && percent * n < 100 {
            out.push(
                Diagnostic::warning(
                    codes::EJECTS_NOTHING,
                    format!(
                        "`max_ejection_percent` of {percent} lets pool `{name}` eject none of its {n} endpoints"
                    ),
                )
                .with_help(format!(
                    "raise it to at least {} to allow one ejection",
                    100u64.div_ceil(n)
                ))
                .at(doc, &format!("{od}/max_ejection_percent")),
            );
        }
    }

    if let Some(slow) = &pool.slow_start {
        check_duration(doc, &format!("{base}/slow_start"), "window", Some(&slow.window), out);
    }
    check_connections(doc, i, pool, out);
}

/// A connection limit below the endpoints that take traffic: a try needs a
/// connection to the endpoint it is sent to, so some endpoints may never
/// get one while the others hold every place.
fn check_connections(doc: &Document, i: usize, pool: &Pool, out: &mut Vec<Diagnostic>) {
    let Some(limit) = pool.circuit_breaker.as_ref().and_then(|c| c.max_connections) else {
        return;
    };
    // An endpoint of weight 0 is drained and needs no connection.
    let serving = pool.endpoints.iter().filter(|e| e.weight > 0).count();
    if u64::from(limit) >= serving as u64 {
        return;
    }
    let name = &pool.name;
    let (message, help) = match pool.protocol {
        Protocol::Http1 => (
            format!(
                "pool `{name}` allows {limit} upstream connection(s) for its {serving} endpoints, \
                 so some endpoints may get none: an idle kept-alive connection to one endpoint \
                 keeps its place until `idle_timeout` closes it, and while every place is held, \
                 tries sent to an endpoint without a connection are answered 503"
            ),
            format!(
                "raise `max_connections` to at least {serving}, one per endpoint, plus the \
                 requests you expect in flight"
            ),
        ),
        Protocol::Http2 => (
            format!(
                "pool `{name}` allows {limit} upstream connection(s) for its {serving} HTTP/2 \
                 endpoints, each of which needs one: at most {limit} of them have a connection \
                 at a time (each kept until `idle_timeout` closes it idle), and requests sent \
                 to the others meanwhile are answered 503"
            ),
            format!("raise `max_connections` to at least {serving}, one per endpoint"),
        ),
    };
    out.push(
        Diagnostic::warning(codes::TOO_FEW_CONNECTIONS, message)
            .with_help(help)
            .at(doc, &format!("/pools/{i}/circuit_breaker/max_connections"))
            .with_key_label(doc, &format!("/pools/{i}/endpoints"), "the endpoints"),
    );
}

/// A setting that the pool's algorithm does not read.
fn ignored(
    doc: &Document,
    base: &str,
    key: &str,
    pool: &str,
    balance: Balance,
    readers: &str,
) -> Diagnostic {
    Diagnostic::warning(
        codes::IGNORED_SETTING,
        format!("pool `{pool}` sets `{key}`, which `{}` ignores", balance.as_str()),
    )
    .with_help(format!("`{key}` applies to {readers}; remove it or change `balance`"))
    .at_key(doc, &format!("{base}/{key}"))
}

/// Every route that sends to pool `p` must capture `param`.
fn check_path_param(doc: &Document, spec: &Spec, p: usize, param: &str, out: &mut Vec<Diagnostic>) {
    let pool = &spec.pools[p].name;
    for (r, route) in spec.routes.iter().enumerate() {
        if !route.to.sides().iter().any(|(name, _, _)| name == pool) {
            continue;
        }
        let Some(template) = Template::parse(&route.matcher.path).ok() else { continue };
        if !template.param_names().iter().any(|n| n == param) {
            out.push(
                Diagnostic::error(
                    codes::MISSING_HASH_KEY,
                    format!(
                        "pool `{pool}` hashes on path parameter `{param}`, which route `{}` does not capture",
                        route.name
                    ),
                )
                .with_help(format!("add `{{{param}}}` to the route's path, or hash on another key"))
                .at(doc, &format!("/pools/{p}/hash_on/path_param"))
                .with_label(doc, &format!("/routes/{r}/match/path"), "this path"),
            );
        }
    }
}

fn check_route(doc: &Document, spec: &Spec, i: usize, route: &Route, out: &mut Vec<Diagnostic>) {
    let base = format!("/routes/{i}");
    let timeout = parsed(route.timeout.as_deref());

    if let Some(budget) = &route.retry_budget {
        check_duration(
            doc,
            &format!("{base}/retry_budget"),
            "window",
            budget.window.as_deref(),
            out,
        );
    }
    let pools: Vec<&str> = match &route.to {
        Target::Pool(name) => vec![name.as_str()],
        Target::Split(sides) => sides.iter().map(|s| s.pool.as_str()).collect(),
    };
    if let Some(retries) = &route.retries {
        // The soonest a stalled upstream makes a try time out.
        let stall = spec
            .pools
            .iter()
            .filter(|pool| pools.contains(&pool.name.as_str()))
            .map(|pool| {
                parsed(pool.stall_timeout.as_deref()).unwrap_or(crate::spec::DEFAULT_STALL_TIMEOUT)
            })
            .min();
        check_retries(doc, &base, route, retries, timeout, stall, out);
    }

    // Health checks too slow for the route's timeout.
    let Some(timeout) = timeout else { return };
    for (p, pool) in spec.pools.iter().enumerate() {
        if !pools.contains(&pool.name.as_str()) || pool.outlier_detection.is_some() {
            continue;
        }
        let Some(check) = &pool.health_check else { continue };
        let Some(detection) = worst_detection(check) else { continue };
        if detection > timeout {
            out.push(
                Diagnostic::warning(
                    codes::SLOW_HEALTH_CHECK,
                    format!(
                        "a dead endpoint of pool `{}` keeps receiving requests for up to {detection:?}, longer than route `{}`'s timeout of {timeout:?}",
                        pool.name, route.name
                    ),
                )
                .with_help("shorten the check's `interval`, `timeout` or `unhealthy_threshold`, or add `outlier_detection` to the pool")
                .at_key(doc, &format!("/pools/{p}/health_check"))
                .with_label(doc, &format!("{base}/timeout"), "the route's timeout"),
            );
        }
    }
}

/// The health check's worst detection time, when its durations parse.
fn worst_detection(check: &crate::spec::HealthCheck) -> Option<Duration> {
    let interval = match check.interval.as_deref() {
        Some(t) => parsed(Some(t))?,
        None => DEFAULT_HEALTH_INTERVAL,
    };
    let timeout = match check.timeout.as_deref() {
        Some(t) => parsed(Some(t))?,
        None => DEFAULT_HEALTH_TIMEOUT.min(interval),
    };
    let jitter = match check.jitter.as_deref() {
        Some(t) => parse_duration(t)?,
        None => interval / 10,
    };
    let settings = sluice_traffic::HealthSettings {
        interval,
        jitter,
        timeout,
        unhealthy_threshold: check.unhealthy_threshold.unwrap_or(3),
        ..sluice_traffic::HealthSettings::default()
    };
    Some(settings.worst_detection())
}

fn check_retries(
    doc: &Document,
    base: &str,
    route: &Route,
    retries: &Retries,
    timeout: Option<Duration>,
    stall: Option<Duration>,
    out: &mut Vec<Diagnostic>,
) {
    let rb = format!("{base}/retries");
    check_duration(doc, &rb, "per_try_timeout", retries.per_try_timeout.as_deref(), out);
    if let Some(size) = &retries.replay_body_limit {
        let setting = (BODY_SIZE_UNITS, 0);
        check_size(doc, &format!("{rb}/replay_body_limit"), size, setting, out);
    }
    if let Some(backoff) = &retries.backoff {
        let bb = format!("{rb}/backoff");
        check_duration_or_zero(doc, &bb, "base", backoff.base.as_deref(), out);
        check_duration_or_zero(doc, &bb, "max", backoff.max.as_deref(), out);
        let low = backoff.base.as_deref().and_then(parse_duration);
        let high = backoff.max.as_deref().and_then(parse_duration);
        if let (Some(low), Some(high)) = (low, high) {
            if high < low {
                out.push(
                    Diagnostic::error(
                        codes::BAD_POLICY,
                        format!("backoff `max` of {high:?} is below its `base` of {low:?}"),
                    )
                    .with_help("make `max` at least `base`")
                    .at(doc, &format!("{bb}/max")),
                );
            }
        }
    }
    // Without a per-try timeout, a try times out only when its pool's
    // stall clock runs out, and then only a route timeout longer than that
    // leaves time to retry.
    let stall_outlasts_route = match (timeout, stall) {
        (Some(timeout), Some(stall)) => stall >= timeout,
        _ => false,
    };
    if retries.on.as_deref().is_some_and(|on| on.contains(&RetryOn::Failure(RetryFailure::Timeout)))
        && retries.per_try_timeout.is_none()
        && stall_outlasts_route
    {
        out.push(
            Diagnostic::warning(
                codes::IGNORED_SETTING,
                format!("route `{}` retries on `timeout` but sets no `per_try_timeout`, and its pool's `stall_timeout` is no shorter than the route's `timeout`, so a timed-out request has no time left to retry", route.name),
            )
            .with_help("set `per_try_timeout` below the route's `timeout`")
            .at(doc, &format!("{rb}/on")),
        );
    }

    // Tries that cannot all fit in the route's timeout.
    let per_try = parsed(retries.per_try_timeout.as_deref());
    if let (Some(per_try), Some(timeout)) = (per_try, timeout) {
        let settings =
            sluice_traffic::DeadlineSettings { per_try: Some(per_try), overall: Some(timeout) };
        if retries.attempts > 1 && !settings.tries_fit(retries.attempts) {
            let fits = timeout / retries.attempts;
            // On a tie the route's timeout is the one that fires.
            let (message, help) = if per_try >= timeout {
                (
                    format!(
                        "`per_try_timeout` of {per_try:?} is no shorter than route `{}`'s timeout of {timeout:?}, so it can never fire: the route's timeout ends a slow first try, and the request with it, before any retry",
                        route.name
                    ),
                    format!(
                        "lower `per_try_timeout` below the route's timeout: to at most {fits:?} for all {} tries to fit, or raise `timeout`",
                        retries.attempts
                    ),
                )
            } else {
                (
                    format!(
                        "{} tries of up to {per_try:?} each do not fit in route `{}`'s timeout of {timeout:?}, so later tries are cut short",
                        retries.attempts, route.name
                    ),
                    format!(
                        "lower `per_try_timeout` to at most {fits:?}, lower `attempts`, or raise `timeout`"
                    ),
                )
            };
            out.push(
                Diagnostic::warning(codes::RETRIES_EXCEED_TIMEOUT, message)
                    .with_help(help)
                    .at(doc, &format!("{rb}/per_try_timeout"))
                    .with_label(doc, &format!("{base}/timeout"), "the route's timeout"),
            );
        }
    }

    if retries.attempts > 1 && route.retry_budget.is_none() {
        out.push(
            Diagnostic::warning(
                codes::UNBUDGETED_RETRIES,
                format!(
                    "route `{}` retries up to {} times without a `retry_budget`, so an upstream brown-out multiplies its load",
                    route.name,
                    retries.attempts - 1
                ),
            )
            .with_help("add `retry_budget: { percent: 20 }` to the route")
            .at_key(doc, &rb),
        );
    }
}
