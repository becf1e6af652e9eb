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
//! An endpoint's first probe is different: nothing is known of it yet, so
//! that probe alone decides its state, whatever the thresholds (as
//! HAProxy's default initial state and Envoy's first check do). Until it
//! answers, the endpoint is in its `initial` state (healthy), and the
//! first probe goes out promptly, within [`HealthSettings::first_probe`],
//! not a whole interval after the checker starts: an endpoint that is dead
//! when the gateway starts, or that a reload adds, is out of rotation
//! after one probe. An endpoint whose state carries over from an earlier
//! check (across a reload) has had its first probe, and keeps its
//! thresholds.
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

/// The longest an endpoint's first probe waits after its checker starts
/// (see [`HealthSettings::first_probe`]).
pub const MAX_FIRST_PROBE_DELAY: Duration = Duration::from_secs(1);

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

    /// When to send an endpoint's first probe, given that its checker
    /// started at `now`: soon, after a random delay of up to the check's
    /// `jitter`, a tenth of its `interval` or [`MAX_FIRST_PROBE_DELAY`],
    /// whichever is least, so that the first probes of many endpoints do
    /// not all go at once.
    pub fn first_probe<R: Rng + ?Sized>(&self, now: Nanos, rng: &mut R) -> Nanos {
        let spread = self.jitter.min(self.interval / 10).min(MAX_FIRST_PROBE_DELAY);
        now.after(duration_up_to(rng, spread))
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
    /// Whether a probe has answered yet.
    probed: bool,
}

impl HealthCheck {
    pub fn new(settings: &HealthSettings) -> HealthCheck {
        HealthCheck { status: settings.initial, passes: 0, failures: 0, probed: false }
    }

    /// Whether any probe has answered yet: until one has, the state is the
    /// settings' `initial`, and the first to answer decides it alone.
    pub fn is_probed(&self) -> bool {
        self.probed
    }

    pub fn status(&self) -> Health {
        self.status
    }

    pub fn is_healthy(&self) -> bool {
        self.status == Health::Healthy
    }

    /// Record one probe result; returns the change of state it caused.
    /// The first result decides the state alone, as a run that has reached
    /// its threshold does.
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
        let first = !std::mem::replace(&mut self.probed, true);
        if self.status == target || (run < threshold && !first) {
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

    /// A check whose first probe has answered (and kept the initial
    /// state), so that the thresholds hold from here.
    fn probed(settings: &HealthSettings) -> HealthCheck {
        HealthCheck { probed: true, ..HealthCheck::new(settings) }
    }

    /// The state after each result of `results`, once the first probe has
    /// answered.
    fn run(settings: &HealthSettings, results: &[Outcome]) -> Vec<Health> {
        let mut check = probed(settings);
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
        let mut check = probed(&s);
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

    /// Before its first probe an endpoint is in its initial state; that
    /// probe alone decides it, whatever the thresholds, and later ones
    /// need a full run again.
    #[test]
    fn the_first_probe_decides_alone() {
        let s = settings(2, 3);
        let mut dead = HealthCheck::new(&s);
        assert!(dead.is_healthy() && !dead.is_probed());
        let down = dead.record(&s, Outcome::ConnectFailure, Nanos(1)).unwrap();
        assert_eq!((down.from, down.to, down.consecutive), (Healthy, Unhealthy, 1));
        assert!(dead.is_probed());
        assert_eq!(dead.record(&s, OK, Nanos(2)), None);
        assert_eq!(dead.record(&s, OK, Nanos(3)).map(|e| e.to), Some(Healthy));

        let mut alive = HealthCheck::new(&s);
        assert_eq!(alive.record(&s, OK, Nanos(1)), None);
        assert_eq!(alive.record(&s, NOT_FOUND, Nanos(2)), None);
        assert_eq!(alive.record(&s, NOT_FOUND, Nanos(3)), None);
        assert!(alive.is_healthy());

        let down = HealthSettings { initial: Unhealthy, ..settings(2, 3) };
        let mut check = HealthCheck::new(&down);
        assert_eq!(check.record(&down, OK, Nanos(1)).map(|e| e.to), Some(Healthy));
    }

    /// The first probe goes out within the least of the jitter, a tenth of
    /// the interval and a second, not somewhere in the first interval.
    #[test]
    fn the_first_probe_goes_out_promptly() {
        let mut rng = Pcg64::seed_from_u64(7);
        let at = Nanos::from_secs(3);
        let cases = [
            (Duration::from_secs(10), Duration::from_secs(1), Duration::from_secs(1)),
            (Duration::from_secs(60), Duration::from_secs(6), MAX_FIRST_PROBE_DELAY),
            (Duration::from_secs(1), Duration::from_millis(500), Duration::from_millis(100)),
            (Duration::from_secs(5), Duration::from_millis(20), Duration::from_millis(20)),
            (Duration::from_secs(5), Duration::ZERO, Duration::ZERO),
        ];
        for (interval, jitter, most) in cases {
            let s = HealthSettings { interval, jitter, ..HealthSettings::default() };
            for _ in 0..100 {
                let first = s.first_probe(at, &mut rng);
                assert!(first >= at && first <= at.after(most), "{interval:?} {jitter:?}");
            }
        }
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
            let mut check = probed(&s);
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
