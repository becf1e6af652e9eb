//! Lowering pool and route policies into the settings of `sluice_traffic`,
//! with the documented defaults filled in.

use std::time::Duration;

use sluice_traffic::{
    key_hash, BalanceSettings, BudgetSettings, CircuitLimits, Health, HealthSettings,
    OutlierSettings, RetrySettings,
};

use crate::plan::{HealthCheckPlan, RetryPlan, DEFAULT_REPLAY_BODY_LIMIT, EVERY_ENDPOINT};
use crate::spec::{
    parse_duration, parse_size, Choices, CircuitBreaker, HealthCheck, OutlierDetection, Pool,
    Retries, RetryBudget, RetryFailure, RetryOn, StatusSpec,
};

const VALID: &str = "validate accepted the duration";

fn duration_or(text: Option<&str>, default: Duration) -> Duration {
    text.map_or(default, |t| parse_duration(t).expect(VALID))
}

pub(crate) fn choices(pool: &Pool) -> Option<usize> {
    pool.choices.map(|c| match c {
        Choices::Count(n) => n as usize,
        Choices::All(_) => EVERY_ENDPOINT,
    })
}

/// Panic threshold, slow start, and each endpoint's identity on the hash
/// ring: the hash of its address, so keys stay put when the spec reorders
/// the pool.
pub(crate) fn balance_settings(pool: &Pool) -> BalanceSettings {
    BalanceSettings {
        panic_threshold_percent: pool.panic_threshold_percent.unwrap_or(0),
        slow_start: pool.slow_start.as_ref().map(|s| sluice_traffic::SlowStart {
            window: parse_duration(&s.window).expect(VALID),
            initial_percent: s.initial_percent.unwrap_or(10),
        }),
        endpoint_keys: pool.endpoints.iter().map(|e| key_hash(e.address.as_bytes())).collect(),
    }
}

/// The statuses `"LOW-HIGH"` stands for, or `None` when it is malformed or
/// backwards.
pub(crate) fn status_range(spec: &StatusSpec) -> Option<(u16, u16)> {
    match spec {
        StatusSpec::Code(code) => Some((*code, *code)),
        StatusSpec::Range(text) => {
            let (low, high) = text.split_once('-')?;
            let (low, high): (u16, u16) = (low.parse().ok()?, high.parse().ok()?);
            (low <= high).then_some((low, high))
        }
    }
}

pub(crate) const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn health_check(check: &HealthCheck) -> HealthCheckPlan {
    let interval = duration_or(check.interval.as_deref(), DEFAULT_HEALTH_INTERVAL);
    let settings = HealthSettings {
        interval,
        jitter: duration_or(check.jitter.as_deref(), interval / 10),
        timeout: duration_or(check.timeout.as_deref(), DEFAULT_HEALTH_TIMEOUT.min(interval)),
        healthy_threshold: check.healthy_threshold.unwrap_or(2),
        unhealthy_threshold: check.unhealthy_threshold.unwrap_or(3),
        initial: Health::Healthy,
        expected_statuses: check
            .statuses
            .iter()
            .filter_map(status_range)
            .map(|(low, high)| low..=high)
            .collect(),
    };
    HealthCheckPlan { path: check.path.clone(), settings }
}

pub(crate) fn outlier(spec: &OutlierDetection) -> OutlierSettings {
    let defaults = OutlierSettings::default();
    let base_ejection = duration_or(spec.base_ejection.as_deref(), defaults.base_ejection);
    OutlierSettings {
        consecutive_failures: spec.consecutive_failures.unwrap_or(defaults.consecutive_failures),
        consecutive_connect_failures: spec
            .consecutive_connect_failures
            .unwrap_or(defaults.consecutive_connect_failures),
        base_ejection,
        max_ejection: duration_or(spec.max_ejection.as_deref(), defaults.max_ejection)
            .max(base_ejection),
        max_ejection_percent: spec.max_ejection_percent.unwrap_or(defaults.max_ejection_percent),
    }
}

pub(crate) fn circuit(spec: Option<&CircuitBreaker>) -> CircuitLimits {
    let Some(spec) = spec else { return CircuitLimits::default() };
    CircuitLimits {
        max_connections: spec.max_connections.unwrap_or(u32::MAX),
        max_pending: spec.max_pending.unwrap_or(u32::MAX),
        max_requests: spec.max_requests.unwrap_or(u32::MAX),
    }
}

/// The default retry conditions of a `retries` block without `on`.
const DEFAULT_ON: [RetryOn; 2] =
    [RetryOn::Failure(RetryFailure::ConnectFailure), RetryOn::Failure(RetryFailure::Reset)];

/// A route's retry plan; `endpoints` is the size of the largest pool it
/// reaches, which bounds the default connect failover.
pub(crate) fn retries(spec: Option<&Retries>, endpoints: usize) -> RetryPlan {
    let Some(spec) = spec else { return RetryPlan::failover(endpoints) };
    let defaults = RetrySettings::default();
    let mut settings = RetrySettings {
        attempts: spec.attempts,
        on: sluice_traffic::retry::RetryOn {
            connect_failure: false,
            reset: false,
            timeout: false,
            statuses: Vec::new(),
        },
        non_idempotent: spec.non_idempotent,
        backoff_base: defaults.backoff_base,
        backoff_max: defaults.backoff_max,
    };
    for on in spec.on.as_deref().unwrap_or(&DEFAULT_ON) {
        match on {
            RetryOn::Failure(RetryFailure::ConnectFailure) => settings.on.connect_failure = true,
            RetryOn::Failure(RetryFailure::Reset) => settings.on.reset = true,
            RetryOn::Failure(RetryFailure::Timeout) => settings.on.timeout = true,
            RetryOn::Status(status) => settings.on.statuses.push(*status),
        }
    }
    if let Some(backoff) = &spec.backoff {
        settings.backoff_base = duration_or(backoff.base.as_deref(), defaults.backoff_base);
        settings.backoff_max =
            duration_or(backoff.max.as_deref(), defaults.backoff_max).max(settings.backoff_base);
    }
    RetryPlan {
        settings,
        per_try_timeout: spec.per_try_timeout.as_deref().map(|t| parse_duration(t).expect(VALID)),
        configured: true,
        replay_body_limit: spec
            .replay_body_limit
            .as_deref()
            .map_or(DEFAULT_REPLAY_BODY_LIMIT, |s| parse_size(s).expect(VALID)),
    }
}

pub(crate) fn budget(spec: &RetryBudget) -> BudgetSettings {
    let defaults = BudgetSettings::default();
    BudgetSettings {
        ratio_percent: spec.percent,
        min_per_second: spec.min_per_second.unwrap_or(defaults.min_per_second),
        window: duration_or(spec.window.as_deref(), defaults.window),
    }
}
