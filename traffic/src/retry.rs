//! Retry decisions: whether a failed try may be tried again, where, and when.
//!
//! The policy follows what nginx and HAProxy do by default and what Envoy
//! makes configurable. A try whose connection attempt failed sent nothing,
//! so it is safe to send elsewhere whatever the method; that retry is on by
//! default. Every other condition (a reset connection, a per-try timeout,
//! chosen statuses) is opt-in, and applies only to idempotent methods unless
//! the route allows more, since a POST that reached the upstream may have
//! had its effect. A retry goes to a different endpoint whenever the pool
//! has another ([`crate::Balancer::pick_excluding`]), and waits a backoff
//! drawn with "full jitter" (uniform between zero and an exponentially
//! growing cap, after the AWS architecture blog's comparison of jitter
//! schemes), which spreads the retries of many clients that failed at once.
//!
//! [`decide`] combines the policy with the request's [`Deadline`] and the
//! pool's [`RetryBudget`], in that order: the budget is asked last because
//! asking spends it. The failover after a connect failure is outside the
//! budget: it sent nothing, so it cannot amplify the load on the pool.

mod budget;

use std::time::Duration;

use rand_core::Rng;

pub use self::budget::{BudgetSettings, RetryBudget, BUCKETS, MIN_WINDOW};
use crate::deadline::{Deadline, TryBudget};
use crate::outcome::Outcome;
use crate::random::duration_up_to;
use crate::time::Nanos;

/// Which try outcomes may be retried.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RetryOn {
    /// No connection could be made (nothing was sent; any method).
    pub connect_failure: bool,
    /// The connection broke before a response head.
    pub reset: bool,
    /// The per-try timeout fired.
    pub timeout: bool,
    /// Response statuses to retry, such as 502, 503 and 504.
    pub statuses: Vec<u16>,
}

impl Default for RetryOn {
    fn default() -> RetryOn {
        RetryOn { connect_failure: true, reset: false, timeout: false, statuses: Vec::new() }
    }
}

/// Retry settings of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RetrySettings {
    /// Tries in all, the first included (0 reads as 1, so no retry).
    pub attempts: u32,
    pub on: RetryOn,
    /// Retry non-idempotent methods on conditions other than a connect
    /// failure too.
    pub non_idempotent: bool,
    /// Cap of the first backoff; each further retry doubles it.
    pub backoff_base: Duration,
    /// Largest backoff cap.
    pub backoff_max: Duration,
}

impl Default for RetrySettings {
    fn default() -> RetrySettings {
        RetrySettings {
            attempts: 2,
            on: RetryOn::default(),
            non_idempotent: false,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
        }
    }
}

/// The facts of a try that just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TryFacts {
    /// Tries made so far, this one included (1 after the first).
    pub tries: u32,
    pub outcome: Outcome,
    /// Whether the method is idempotent (see [`is_idempotent`]).
    pub idempotent: bool,
    /// Whether the request can be sent again: its body is empty, buffered,
    /// or was never read.
    pub replayable: bool,
}

/// Why a request is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoRetry {
    /// The outcome is not one the policy retries (a success among them).
    NotRetryable,
    /// The method is not idempotent and the route does not allow it.
    NotIdempotent,
    /// The body was streamed and cannot be sent again.
    NotReplayable,
    /// Every allowed try was used.
    AttemptsExhausted,
    /// The backoff would end at or after the overall deadline.
    Deadline,
    /// The retry budget is spent.
    Budget,
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryDecision {
    /// Wait `backoff`, pick an endpoint other than the last, and try again
    /// within `budget`.
    Retry {
        backoff: Duration,
        budget: TryBudget,
    },
    Stop(NoRetry),
}

impl RetrySettings {
    /// Whether the policy alone allows another try.
    pub fn allows(&self, facts: &TryFacts) -> Result<(), NoRetry> {
        let wanted = match facts.outcome {
            Outcome::ConnectFailure => self.on.connect_failure,
            Outcome::Reset => self.on.reset,
            Outcome::Timeout => self.on.timeout,
            Outcome::Response(status) => self.on.statuses.contains(&status),
        };
        if !wanted {
            return Err(NoRetry::NotRetryable);
        }
        let sent = facts.outcome != Outcome::ConnectFailure;
        if sent && !facts.idempotent && !self.non_idempotent {
            return Err(NoRetry::NotIdempotent);
        }
        if !facts.replayable {
            return Err(NoRetry::NotReplayable);
        }
        if facts.tries >= self.attempts.max(1) {
            return Err(NoRetry::AttemptsExhausted);
        }
        Ok(())
    }

    /// The backoff before retry number `retry` (1 for the first retry):
    /// uniform in `[0, min(backoff_max, backoff_base × 2^(retry - 1))]`.
    pub fn backoff<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        let cap = self.backoff_base.saturating_mul(1u32 << doublings.min(31));
        let cap = if doublings > 31 { self.backoff_max } else { cap.min(self.backoff_max) };
        duration_up_to(rng, cap)
    }
}

/// Decide whether and when to retry a try that ended as `facts` says, at
/// `now`: the policy, then the deadline (the backoff must end before it),
/// then the budget (which an admitted retry spends at once), except for the
/// failover after a connect failure, which sent nothing and is outside it.
pub fn decide<R: Rng + ?Sized>(
    settings: &RetrySettings,
    deadline: &Deadline,
    budget: Option<&RetryBudget>,
    facts: &TryFacts,
    now: Nanos,
    rng: &mut R,
) -> RetryDecision {
    if let Err(why) = settings.allows(facts) {
        return RetryDecision::Stop(why);
    }
    let backoff = settings.backoff(facts.tries, rng);
    let try_budget = deadline.after_backoff(now, backoff);
    if try_budget == TryBudget::Expired {
        return RetryDecision::Stop(NoRetry::Deadline);
    }
    // A failover after a failed connection sent nothing, and adds no load
    // to the pool the budget protects: it is always on, and spends nothing.
    let failover = facts.outcome == Outcome::ConnectFailure;
    if !failover && budget.is_some_and(|b| !b.try_withdraw(now)) {
        return RetryDecision::Stop(NoRetry::Budget);
    }
    RetryDecision::Retry { backoff, budget: try_budget }
}

/// Whether an HTTP method is idempotent (RFC 9110, section 9.2.2): GET,
/// HEAD, OPTIONS, TRACE, PUT and DELETE. Extension methods are not.
pub fn is_idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
}

#[cfg(test)]
mod tests;
