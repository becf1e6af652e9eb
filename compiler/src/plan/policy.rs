//! The traffic policies of a plan, as the settings structs of
//! `sluice_traffic` that `serve` and `simulate` hand to its state machines.
//!
//! [`algorithm`] is the one place where a spec's balance name becomes a
//! [`sluice_traffic::Algorithm`]; the proxy and the simulator both call it.

use std::time::Duration;

use http::uri::PathAndQuery;
use serde::{Deserialize, Serialize};
use sluice_traffic::balance::ALL_CHOICES;
use sluice_traffic::{
    Algorithm, BudgetSettings, DeadlineSettings, HealthSettings, PeakEwma, RetrySettings,
};

use crate::spec::{Balance, HashOn};

/// The algorithm that implements `balance`, comparing `choices` endpoints
/// per pick where the algorithm samples (`None`: two), with `peak_ewma`'s
/// latency estimates decaying over `ewma_window` (`None`: ten seconds).
pub fn algorithm(
    balance: Balance,
    choices: Option<usize>,
    ewma_window: Option<Duration>,
) -> Algorithm {
    let choices = choices.unwrap_or(2);
    match balance {
        Balance::RoundRobin => Algorithm::RoundRobin,
        Balance::WeightedRoundRobin => Algorithm::WeightedRoundRobin,
        Balance::Random => Algorithm::Random,
        Balance::LeastRequest => Algorithm::LeastRequest { choices },
        Balance::PeakEwma => {
            let defaults = PeakEwma::default();
            let window = ewma_window.unwrap_or(defaults.window);
            Algorithm::PeakEwma(PeakEwma { choices, window, ..defaults })
        }
        Balance::ConsistentHash => Algorithm::ConsistentHash,
    }
}

/// Largest request body kept so that it can be sent again, unless a route's
/// `retries` says otherwise.
pub const DEFAULT_REPLAY_BODY_LIMIT: u64 = 64 * 1024;

/// `choices: all` in a plan.
pub const EVERY_ENDPOINT: usize = ALL_CHOICES;

/// A pool's active health check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthCheckPlan {
    /// Path probed with `GET`.
    pub path: String,
    pub settings: HealthSettings,
}

impl HealthCheckPlan {
    /// The request target of each probe (see [`probe_target`]).
    pub fn target(&self) -> Result<PathAndQuery, ProbePathError> {
        probe_target(&self.path)
    }
}

/// Why a health check's `path` cannot be the request target of a probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbePathError {
    #[error("does not start with `/`")]
    NotAbsolute,
    /// A fragment is never sent: the target would end before it.
    #[error("has a fragment (`#...`), which a request never carries")]
    Fragment,
    #[error("is not a valid request target ({0})")]
    Invalid(String),
}

/// `path` as the origin-form request target (RFC 9112, section 3.2.1) that
/// health probes send, read by the same URI parser that builds the probes,
/// so that `check` refuses exactly the paths a probe could not be sent
/// with: one that does not start with `/`, one with a fragment (which the
/// parser would cut off, probing another path than the one written), one
/// with a space, a control or a non-ASCII character, and any other the
/// parser refuses.
pub fn probe_target(path: &str) -> Result<PathAndQuery, ProbePathError> {
    if !path.starts_with('/') {
        return Err(ProbePathError::NotAbsolute);
    }
    if path.contains('#') {
        return Err(ProbePathError::Fragment);
    }
    // The parser lets bytes above ASCII through, which no request target
    // may carry (RFC 3986, section 2): they would go out raw.
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        let shown = c.escape_default();
        return Err(ProbePathError::Invalid(format!("`{shown}` must be percent-encoded")));
    }
    let target =
        PathAndQuery::try_from(path).map_err(|error| ProbePathError::Invalid(error.to_string()))?;
    // Whatever the parser would make of the text, the probe sends it as written.
    match target.as_str() == path {
        true => Ok(target),
        false => Err(ProbePathError::Invalid(format!("read as `{}`", target.as_str()))),
    }
}

/// Whether and how a route's failed tries are tried again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RetryPlan {
    pub settings: RetrySettings,
    /// Time each try has; `None` leaves only the route's timeout.
    pub per_try_timeout: Option<Duration>,
    /// Whether the spec asked for retries (rather than the default failover
    /// after a failed connection).
    pub configured: bool,
    /// Largest request body kept so that a retry can send it again (0: none).
    #[serde(default)]
    pub replay_body_limit: u64,
}

impl RetryPlan {
    /// The policy of a route without `retries`: a request whose connection
    /// could not be opened goes to another endpoint at once, for as many
    /// tries in all as the largest pool it can reach has endpoints. Each
    /// try goes to an endpoint not tried yet while one is left, so in a
    /// pool of three with two down a request reaches the live one by its
    /// third try at the latest.
    pub fn failover(endpoints: usize) -> RetryPlan {
        let attempts = u32::try_from(endpoints.max(1)).unwrap_or(u32::MAX);
        let settings = RetrySettings {
            attempts,
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            ..RetrySettings::default()
        };
        RetryPlan {
            settings,
            per_try_timeout: None,
            configured: false,
            replay_body_limit: DEFAULT_REPLAY_BODY_LIMIT,
        }
    }
}

impl Default for RetryPlan {
    fn default() -> RetryPlan {
        RetryPlan::failover(2)
    }
}

impl super::RoutePlan {
    /// The per-try and overall timeouts of the route's requests.
    pub fn deadline_settings(&self) -> DeadlineSettings {
        DeadlineSettings { per_try: self.retries.per_try_timeout, overall: self.timeout }
    }

    /// The retry budget, if the route has one.
    pub fn budget_settings(&self) -> Option<BudgetSettings> {
        self.retry_budget
    }
}

impl super::PoolPlan {
    /// The balancing algorithm of the pool.
    pub fn algorithm(&self) -> Algorithm {
        algorithm(self.balance, self.choices, self.ewma_window)
    }

    /// The algorithm of `balance` with this pool's settings (the simulator
    /// compares several on one pool).
    pub fn algorithm_for(&self, balance: Balance) -> Algorithm {
        algorithm(balance, self.choices, self.ewma_window)
    }

    /// The key a consistent hash reads, when the pool hashes.
    pub fn hash_key(&self) -> Option<&HashOn> {
        match self.balance {
            Balance::ConsistentHash => self.hash_on.as_ref(),
            _ => None,
        }
    }
}
