use std::time::Duration;

use proptest::prelude::*;
use rand_core::SeedableRng;
use rand_pcg::Pcg64;

use super::*;
use crate::deadline::{Bound, DeadlineSettings};

fn facts(tries: u32, outcome: Outcome, idempotent: bool) -> TryFacts {
    TryFacts { tries, outcome, idempotent, replayable: true }
}

fn all_conditions() -> RetrySettings {
    RetrySettings {
        attempts: 3,
        on: RetryOn { connect_failure: true, reset: true, timeout: true, statuses: vec![503] },
        ..RetrySettings::default()
    }
}

#[test]
fn by_default_only_connect_failures_are_retried_whatever_the_method() {
    let s = RetrySettings::default();
    let table = [
        (facts(1, Outcome::ConnectFailure, false), Ok(())),
        (facts(1, Outcome::ConnectFailure, true), Ok(())),
        (facts(2, Outcome::ConnectFailure, true), Err(NoRetry::AttemptsExhausted)),
        (facts(1, Outcome::Reset, true), Err(NoRetry::NotRetryable)),
        (facts(1, Outcome::Timeout, true), Err(NoRetry::NotRetryable)),
        (facts(1, Outcome::Response(503), true), Err(NoRetry::NotRetryable)),
        (facts(1, Outcome::Response(200), true), Err(NoRetry::NotRetryable)),
    ];
    for (f, expected) in table {
        assert_eq!(s.allows(&f), expected, "{f:?}");
    }
}

#[test]
fn opt_in_conditions_respect_idempotency_and_replayability() {
    let s = all_conditions();
    let table = [
        (facts(1, Outcome::Reset, true), Ok(())),
        (facts(2, Outcome::Timeout, true), Ok(())),
        (facts(1, Outcome::Response(503), true), Ok(())),
        (facts(1, Outcome::Response(502), true), Err(NoRetry::NotRetryable)),
        (facts(1, Outcome::Reset, false), Err(NoRetry::NotIdempotent)),
        (facts(1, Outcome::Response(503), false), Err(NoRetry::NotIdempotent)),
        (facts(3, Outcome::Reset, true), Err(NoRetry::AttemptsExhausted)),
        (
            TryFacts { replayable: false, ..facts(1, Outcome::Reset, true) },
            Err(NoRetry::NotReplayable),
        ),
    ];
    for (f, expected) in table {
        assert_eq!(s.allows(&f), expected, "{f:?}");
    }
    let lenient = RetrySettings { non_idempotent: true, ..s };
    assert_eq!(lenient.allows(&facts(1, Outcome::Reset, false)), Ok(()));
}

#[test]
fn zero_attempts_read_as_one() {
    let s = RetrySettings { attempts: 0, ..RetrySettings::default() };
    assert_eq!(s.allows(&facts(1, Outcome::ConnectFailure, true)), Err(NoRetry::AttemptsExhausted));
}

#[test]
fn backoff_is_full_jitter_under_a_doubling_cap() {
    let s = RetrySettings {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(35),
        ..RetrySettings::default()
    };
    let mut rng = Pcg64::seed_from_u64(9);
    for (retry, cap) in [(0, 10), (1, 10), (2, 20), (3, 35), (40, 35), (u32::MAX, 35)] {
        let draws: Vec<Duration> = (0..400).map(|_| s.backoff(retry, &mut rng)).collect();
        let cap = Duration::from_millis(cap);
        assert!(draws.iter().all(|&d| d <= cap), "retry {retry}");
        assert!(draws.iter().any(|&d| d < cap / 4) && draws.iter().any(|&d| d > cap * 3 / 4));
    }
    let zero = RetrySettings { backoff_base: Duration::ZERO, ..s };
    assert_eq!(zero.backoff(3, &mut rng), Duration::ZERO);
}

#[test]
fn decide_checks_policy_then_deadline_then_budget() {
    let s = RetrySettings { backoff_base: Duration::ZERO, ..all_conditions() };
    let settings = DeadlineSettings {
        per_try: Some(Duration::from_millis(100)),
        overall: Some(Duration::from_secs(1)),
    };
    let deadline = Deadline::new(settings, Nanos::ZERO);
    let budget = RetryBudget::new(BudgetSettings {
        ratio_percent: 0,
        min_per_second: 1,
        window: Duration::from_secs(1),
    });
    let mut rng = Pcg64::seed_from_u64(1);
    let f = facts(1, Outcome::Reset, true);

    let now = Nanos::from_millis(10);
    assert_eq!(
        decide(&s, &deadline, Some(&budget), &f, now, &mut rng),
        RetryDecision::Retry {
            backoff: Duration::ZERO,
            budget: TryBudget::Bounded { timeout: Duration::from_millis(100), by: Bound::PerTry }
        }
    );
    // The reserve of one retry per second is spent.
    assert_eq!(
        decide(&s, &deadline, Some(&budget), &f, now, &mut rng),
        RetryDecision::Stop(NoRetry::Budget)
    );
    // Without a budget, the deadline is next; a late failure cannot retry, and spends nothing.
    let late = Nanos::from_secs(1);
    assert_eq!(
        decide(&s, &deadline, None, &f, late, &mut rng),
        RetryDecision::Stop(NoRetry::Deadline)
    );
    let fresh = RetryBudget::new(budget.settings());
    assert_eq!(
        decide(&s, &deadline, Some(&fresh), &f, late, &mut rng),
        RetryDecision::Stop(NoRetry::Deadline)
    );
    assert_eq!(fresh.available(late), 1);
    // A failover after a connect failure is outside the budget: spent as
    // it is, it still allows one, and spends nothing.
    let refused = facts(1, Outcome::ConnectFailure, true);
    assert!(matches!(
        decide(&s, &deadline, Some(&budget), &refused, now, &mut rng),
        RetryDecision::Retry { .. }
    ));
    assert_eq!(budget.available(now), 0);
    // The policy first of all.
    let success = facts(1, Outcome::Response(200), true);
    assert_eq!(
        decide(&s, &deadline, None, &success, now, &mut rng),
        RetryDecision::Stop(NoRetry::NotRetryable)
    );
}

#[test]
fn idempotent_methods() {
    for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
        assert!(is_idempotent(m), "{m}");
    }
    for m in ["POST", "PATCH", "CONNECT", "get", "PURGE", ""] {
        assert!(!is_idempotent(m), "{m}");
    }
}

proptest! {
    /// The policy never allows more tries than `attempts`, and never a
    /// retry of a sent, non-idempotent request unless allowed.
    #[test]
    fn policy_invariants(
        attempts in 0u32..6,
        tries in 1u32..8,
        outcome in 0u8..4,
        idempotent: bool,
        non_idempotent: bool,
    ) {
        let s = RetrySettings { attempts, non_idempotent, ..all_conditions() };
        let outcome = [Outcome::ConnectFailure, Outcome::Reset, Outcome::Timeout, Outcome::Response(503)][outcome as usize];
        if s.allows(&facts(tries, outcome, idempotent)).is_ok() {
            prop_assert!(tries < attempts.max(1));
            prop_assert!(idempotent || non_idempotent || outcome == Outcome::ConnectFailure);
        }
    }
}
