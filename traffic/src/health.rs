//! Active health checks: the state of one endpoint as probes report it.
//!
//! The classic threshold machine of HAProxy's `rise`/`fall` and Envoy's
//! healthy/unhealthy thresholds: an endpoint changes state only after a run
//! of *consecutive* results that disagree with its current state, so one
//! lost probe does not pull a healthy endpoint out of rotation and one lucky
//! probe does not put a dead one back. Every failure kind counts the same
//! (a timeout, a refused or reset connection, and any status outside the
//! expected set, 404 included), and any pass breaks a run of failures; a
//! proxy once ejected hosts on a single 404 because its threshold applied
//! to timeouts only.
//!
//! The trade-off is the thresholds themselves: higher ones ride out flaps
//! but take longer to notice a dead endpoint, and
//! [`HealthSettings::worst_detection`] says how long, so `check` and
//! `explain` can compare it with the route's timeout.
//!
//! The caller runs the probes (the runtime over sockets, the simulator
//! against its model), feeds each [`Outcome`] to [`HealthCheck::record`], logs
//! the [`HealthEvent`] it returns on a change, and tells the balancer.

use std::ops::RangeInclusive;
use std::time::Duration;

use rand_core::Rng;

use crate::outcome::Outcome;
use crate::random::duration_up_to;
use crate::time::Nanos;

/// Shortest interval between probes; shorter settings read as this.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Whether an endpoint should receive traffic, as far as probes know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Health {
    Healthy,
    Unhealthy,
}

/// Active check settings of a pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthSettings {
    /// Time between the end of one probe and the start of the next.
    pub interval: Duration,
    /// Up to this much random time is added to each interval, so the probes
    /// of many gateways do not arrive together.
    pub jitter: Duration,
    /// How long a probe may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy endpoint healthy (0 reads as 1).
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy (0 reads as 1).
    pub unhealthy_threshold: u32,
    /// State of an endpoint before its first probe.
    pub initial: Health,
    /// Statuses that count as a pass; an empty list reads as 200 to 299.
    pub expected_statuses: Vec<RangeInclusive<u16>>,
}

impl Default for HealthSettings {
    fn default() -> HealthSettings {
        HealthSettings {
            interval: Duration::from_secs(5),
            jitter: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            initial: Health::Healthy,
            expected_statuses: vec![200..=299],
        }
    }
}

impl HealthSettings {
    /// Whether a probe that ended with `outcome` passed.
    pub fn passes(&self, outcome: Outcome) -> bool {
        let Outcome::Response(status) = outcome else { return false };
        if self.expected_statuses.is_empty() {
            return (200..=299).contains(&status);
        }
        self.expected_statuses.iter().any(|r| r.contains(&status))
    }

    /// When to start the next probe, given that the last one ended at `now`.
    pub fn next_probe<R: Rng + ?Sized>(&self, now: Nanos, rng: &mut R) -> Nanos {
        now.after(self.interval.max(MIN_INTERVAL)).after(duration_up_to(rng, self.jitter))
    }

    /// The longest a dead endpoint can keep its traffic: `unhealthy`
    /// probes, each waiting its full timeout (a black hole), separated by
    /// the longest interval.
    pub fn worst_detection(&self) -> Duration {
        self.cycle().saturating_mul(self.unhealthy_threshold.max(1))
    }

    /// The longest a recovered endpoint can stay out of rotation.
    pub fn worst_recovery(&self) -> Duration {
        self.cycle().saturating_mul(self.healthy_threshold.max(1))
    }

    fn cycle(&self) -> Duration {
        self.interval.max(MIN_INTERVAL).saturating_add(self.jitter).saturating_add(self.timeout)
    }
}

/// A change of an endpoint's state, for the caller to log and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthEvent {
    pub from: Health,
    pub to: Health,
    /// The run of agreeing results that caused the change.
    pub consecutive: u32,
    /// The probe result that completed the run.
    pub last: Outcome,
    pub at: Nanos,
}

/// One endpoint's active check state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    status: Health,
    passes: u32,
    failures: u32,
}

impl HealthCheck {
    pub fn new(settings: &HealthSettings) -> HealthCheck {
        HealthCheck { status: settings.initial, passes: 0, failures: 0 }
    }

    pub fn status(&self) -> Health {
        self.status
    }

    pub fn is_healthy(&self) -> bool {
        self.status == Health::Healthy
    }

    /// Record one probe result; returns the change of state it caused.
    pub fn record(
        &mut self,
        settings: &HealthSettings,
        outcome: Outcome,
        now: Nanos,
    ) -> Option<HealthEvent> {
        let (run, threshold, target) = if settings.passes(outcome) {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            (self.passes, settings.healthy_threshold.max(1), Health::Healthy)
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures, settings.unhealthy_threshold.max(1), Health::Unhealthy)
        };
        if self.status == target || run < threshold {
            return None;
        }

        let event =
            HealthEvent { from: self.status, to: target, consecutive: run, last: outcome, at: now };
        self.status = target;
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_core::SeedableRng;
    use rand_pcg::Pcg64;

    use Health::{Healthy, Unhealthy};

    const OK: Outcome = Outcome::Response(200);
    const NOT_FOUND: Outcome = Outcome::Response(404);

    fn settings(healthy: u32, unhealthy: u32) -> HealthSettings {
        HealthSettings {
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            ..HealthSettings::default()
        }
    }

    /// The state after each result of `results`.
    fn run(settings: &HealthSettings, results: &[Outcome]) -> Vec<Health> {
        let mut check = HealthCheck::new(settings);
        results
            .iter()
            .enumerate()
            .map(|(k, &r)| {
                check.record(settings, r, Nanos(k as u64));
                check.status()
            })
            .collect()
    }

    #[test]
    fn thresholds_count_consecutive_results_of_every_failure_kind() {
        let s = settings(2, 3);
        let table: &[(&[Outcome], Health)] = &[
            // One 404 among passes never ejects (a proxy once flapped on this).
            (&[NOT_FOUND, OK, NOT_FOUND, NOT_FOUND, OK], Healthy),
            (&[NOT_FOUND, NOT_FOUND, NOT_FOUND], Unhealthy),
            (&[Outcome::Timeout, Outcome::Reset, Outcome::ConnectFailure], Unhealthy),
            (&[Outcome::Response(503), Outcome::Timeout, NOT_FOUND], Unhealthy),
            (&[NOT_FOUND, NOT_FOUND, NOT_FOUND, OK], Unhealthy),
            (&[NOT_FOUND, NOT_FOUND, NOT_FOUND, OK, NOT_FOUND, OK, OK], Healthy),
        ];
        for (results, end) in table {
            assert_eq!(*run(&s, results).last().unwrap(), *end, "{results:?}");
        }
    }

    #[test]
    fn a_change_is_reported_once_with_its_cause() {
        let s = settings(2, 2);
        let mut check = HealthCheck::new(&s);
        assert_eq!(check.record(&s, NOT_FOUND, Nanos(1)), None);
        let down = check.record(&s, Outcome::Timeout, Nanos(2)).unwrap();
        assert_eq!(
            down,
            HealthEvent {
                from: Healthy,
                to: Unhealthy,
                consecutive: 2,
                last: Outcome::Timeout,
                at: Nanos(2)
            }
        );
        assert_eq!(check.record(&s, NOT_FOUND, Nanos(3)), None);
        assert_eq!(check.record(&s, OK, Nanos(4)), None);
        assert_eq!(check.record(&s, OK, Nanos(5)).map(|e| e.to), Some(Healthy));
    }

    #[test]
    fn initial_state_and_zero_thresholds() {
        let s = HealthSettings { initial: Unhealthy, ..settings(0, 0) };
        assert_eq!(run(&s, &[]), []);
        assert!(!HealthCheck::new(&s).is_healthy());
        assert_eq!(run(&s, &[OK, NOT_FOUND, OK]), [Healthy, Unhealthy, Healthy]);
    }

    #[test]
    fn expected_statuses() {
        let s = HealthSettings { expected_statuses: vec![200..=204, 301..=301], ..settings(1, 1) };
        assert!(s.passes(Outcome::Response(204)));
        assert!(s.passes(Outcome::Response(301)));
        assert!(!s.passes(Outcome::Response(302)));
        assert!(!s.passes(Outcome::Timeout));
        let empty = HealthSettings { expected_statuses: vec![], ..settings(1, 1) };
        assert!(empty.passes(OK) && !empty.passes(Outcome::Response(300)));
    }

    #[test]
    fn probes_are_spaced_by_interval_and_jitter() {
        let s = HealthSettings {
            interval: Duration::from_secs(1),
            jitter: Duration::from_millis(100),
            ..HealthSettings::default()
        };
        let mut rng = Pcg64::seed_from_u64(1);
        for _ in 0..100 {
            let next = s.next_probe(Nanos::from_secs(10), &mut rng);
            assert!(next >= Nanos::from_millis(11_000) && next <= Nanos::from_millis(11_100));
        }
        let zero = HealthSettings { interval: Duration::ZERO, jitter: Duration::ZERO, ..s };
        assert_eq!(zero.next_probe(Nanos::ZERO, &mut rng), Nanos::ZERO.after(MIN_INTERVAL));
    }

    #[test]
    fn worst_case_detection_and_recovery() {
        let s = HealthSettings {
            interval: Duration::from_secs(1),
            jitter: Duration::ZERO,
            timeout: Duration::from_millis(500),
            ..settings(2, 3)
        };
        assert_eq!(s.worst_detection(), Duration::from_millis(4500));
        assert_eq!(s.worst_recovery(), Duration::from_secs(3));
        let huge = HealthSettings { interval: Duration::MAX, ..s };
        assert_eq!(huge.worst_detection(), Duration::MAX);
    }

    proptest! {
        /// The state changes only at the end of a run of `threshold`
        /// agreeing results.
        #[test]
        fn changes_need_a_full_run(
            healthy in 0u32..4,
            unhealthy in 0u32..4,
            results in proptest::collection::vec(any::<bool>(), 0..60),
        ) {
            let s = settings(healthy, unhealthy);
            let mut check = HealthCheck::new(&s);
            for (k, &pass) in results.iter().enumerate() {
                let outcome = if pass { OK } else { NOT_FOUND };
                if let Some(e) = check.record(&s, outcome, Nanos(k as u64)) {
                    let need = if pass { healthy.max(1) } else { unhealthy.max(1) } as usize;
                    prop_assert!(k + 1 >= need);
                    prop_assert!(results[k + 1 - need..=k].iter().all(|&r| r == pass));
                    prop_assert_eq!(e.to == Healthy, pass);
                }
            }
        }
    }
}
