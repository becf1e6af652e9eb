//! Passive outlier detection: eject endpoints that fail real requests.
//!
//! Active checks probe a health endpoint every few seconds; real traffic
//! tells the gateway much sooner, and about the paths that matter. This
//! follows the consecutive-errors detector of Envoy and NGINX Plus's
//! `max_fails`: an endpoint that fails `consecutive_failures` tries in a
//! row (5xx, reset, timeout or refused connection), or
//! `consecutive_connect_failures` connection attempts in a row, is ejected.
//!
//! Counting is *consecutive*, not windowed: any success (any response below
//! 500) resets the run, so `500, 200, 500, 500` never trips a threshold of
//! 3. A run of refused connections is ended by any other result, a 5xx, a
//! reset or a timeout included, while a refused connection also counts in
//! the run of failures; whichever run reaches its threshold first ejects,
//! and the ejection names it. Consecutive counting reacts to an endpoint that is down outright and
//! ignores a steady low error rate; a windowed error ratio would catch the
//! latter but needs a volume of traffic before it can judge, and tends to
//! eject everything together in a pool-wide brown-out. The cap below covers
//! that case for consecutive counting too.
//!
//! An ejection lasts `base_ejection` times the number of times the endpoint
//! has been ejected, up to `max_ejection`, so a flapping endpoint stays out
//! longer each time; the count goes down by one for every `base_ejection`
//! the endpoint then spends in the pool without being ejected. At most
//! `max_ejection_percent` of the pool is ejected at once: when that many are
//! out, a further endpoint is reported as [`OutlierEvent::Spared`] and kept,
//! because ejecting most of a pool only moves its load onto the rest.
//! Results for an endpoint while it is ejected (requests that were already
//! in flight) are ignored.
//!
//! The detector is a plain `&mut self` state machine: the runtime keeps one
//! per pool behind a mutex (one short critical section per response), the
//! simulator calls it directly.

use std::time::Duration;

use crate::outcome::Outcome;
use crate::time::Nanos;

/// Outlier detection settings of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct OutlierSettings {
    /// Failed tries in a row that eject (0 disables this trigger).
    pub consecutive_failures: u32,
    /// Refused or failed connection attempts in a row that eject (0
    /// disables this trigger).
    pub consecutive_connect_failures: u32,
    /// Length of a first ejection; zero disables ejection altogether.
    pub base_ejection: Duration,
    /// Longest ejection; a value below `base_ejection` reads as it.
    pub max_ejection: Duration,
    /// Most of the pool that may be ejected at once, in percent (values
    /// above 100 read as 100). The share is rounded down, so a pool of three
    /// at 10% ejects none; `check` warns about such settings.
    pub max_ejection_percent: u8,
}

impl Default for OutlierSettings {
    fn default() -> OutlierSettings {
        OutlierSettings {
            consecutive_failures: 5,
            consecutive_connect_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// Why an endpoint was judged an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    ConsecutiveFailures,
    ConsecutiveConnectFailures,
}

/// A change for the caller to log and pass on to the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierEvent {
    /// `endpoint` is out until `until`; `times` counts its ejections
    /// (after forgiveness), this one included.
    Ejected { endpoint: usize, trigger: Trigger, until: Nanos, times: u32 },
    /// `endpoint` met a trigger but the pool already has as many ejected as
    /// `max_ejection_percent` allows.
    Spared { endpoint: usize, trigger: Trigger },
    /// `endpoint`'s ejection ended.
    Returned { endpoint: usize },
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    failures: u32,
    connect_failures: u32,
    ejected_until: Option<Nanos>,
    times: u32,
    returned_at: Option<Nanos>,
}

/// Outlier state of one pool.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    settings: OutlierSettings,
    endpoints: Vec<Record>,
    ejected: usize,
}

impl OutlierDetector {
    /// A detector for a pool of `endpoints` endpoints, none ejected.
    pub fn new(settings: OutlierSettings, endpoints: usize) -> OutlierDetector {
        OutlierDetector { settings, endpoints: vec![Record::default(); endpoints], ejected: 0 }
    }

    /// Take over, from the detector of the pool this one replaces, the
    /// state of the endpoints both have: `kept[i]` names the old index of
    /// new endpoint `i`, or `None` for an endpoint the old pool did not
    /// have. Ejections run to their old end and count towards the cap; the
    /// repeat counts that lengthen the next ejection are kept too.
    ///
    /// The cap is this pool's: when it allows fewer ejections than were
    /// carried over (the pool shrank, its `max_ejection_percent` went down,
    /// or ejection is now disabled), the ejections due to end soonest end
    /// at `now`, as if their time had come. Returns those that ended.
    pub fn carry_from(
        &mut self,
        old: &OutlierDetector,
        kept: &[Option<usize>],
        now: Nanos,
    ) -> Vec<OutlierEvent> {
        for (record, from) in self.endpoints.iter_mut().zip(kept) {
            if let Some(previous) = from.and_then(|j| old.endpoints.get(j)) {
                *record = *previous;
            }
        }
        self.ejected = self.endpoints.iter().filter(|r| r.ejected_until.is_some()).count();

        let allowed = if self.settings.base_ejection.is_zero() {
            0
        } else {
            let percent = u64::from(self.settings.max_ejection_percent.min(100));
            usize::try_from(percent * self.endpoints.len() as u64 / 100).unwrap_or(usize::MAX)
        };
        let mut events = Vec::new();
        while self.ejected > allowed {
            let soonest = (0..self.endpoints.len())
                .filter_map(|i| Some((self.endpoints[i].ejected_until?, i)))
                .min();
            let Some((_, endpoint)) = soonest else { break };
            self.end_ejection(endpoint, now);
            events.push(OutlierEvent::Returned { endpoint });
        }
        events
    }

    /// Put `endpoint`, ejected, back in the pool at `now`.
    fn end_ejection(&mut self, endpoint: usize, now: Nanos) {
        let r = &mut self.endpoints[endpoint];
        *r = Record { times: r.times, returned_at: Some(now), ..Record::default() };
        self.ejected -= 1;
    }

    pub fn is_ejected(&self, endpoint: usize) -> bool {
        self.endpoints.get(endpoint).is_some_and(|r| r.ejected_until.is_some())
    }

    /// Endpoints ejected now.
    pub fn ejected_count(&self) -> usize {
        self.ejected
    }

    /// When the next ejection ends, for the caller's timer.
    pub fn next_return(&self) -> Option<Nanos> {
        self.endpoints.iter().filter_map(|r| r.ejected_until).min()
    }

    /// End the ejections whose time has come.
    pub fn poll(&mut self, now: Nanos) -> Vec<OutlierEvent> {
        let mut events = Vec::new();
        for endpoint in 0..self.endpoints.len() {
            if self.endpoints[endpoint].ejected_until.is_some_and(|until| until <= now) {
                self.end_ejection(endpoint, now);
                events.push(OutlierEvent::Returned { endpoint });
            }
        }
        events
    }

    /// Record how a try to `endpoint` ended. Returns the ejections that
    /// ended by `now` and the ejection (or sparing) this result caused.
    pub fn observe(&mut self, endpoint: usize, outcome: Outcome, now: Nanos) -> Vec<OutlierEvent> {
        let mut events = self.poll(now);
        let Some(r) = self.endpoints.get_mut(endpoint) else { return events };
        if r.ejected_until.is_some() {
            return events;
        }

        // Update the runs: a response resets the connect run, a success both.
        if !outcome.is_failure() {
            (r.failures, r.connect_failures) = (0, 0);
            return events;
        }
        r.failures = r.failures.saturating_add(1);
        r.connect_failures = match outcome {
            Outcome::ConnectFailure => r.connect_failures.saturating_add(1),
            _ => 0,
        };

        let s = &self.settings;
        let trigger = if s.consecutive_connect_failures > 0
            && r.connect_failures >= s.consecutive_connect_failures
        {
            Trigger::ConsecutiveConnectFailures
        } else if s.consecutive_failures > 0 && r.failures >= s.consecutive_failures {
            Trigger::ConsecutiveFailures
        } else {
            return events;
        };
        if s.base_ejection.is_zero() {
            return events;
        }
        (r.failures, r.connect_failures) = (0, 0);

        // Respect the cap before anything else changes.
        let n = self.endpoints.len() as u64;
        let percent = u64::from(s.max_ejection_percent.min(100));
        if (self.ejected as u64 + 1) * 100 > percent * n {
            events.push(OutlierEvent::Spared { endpoint, trigger });
            return events;
        }

        let r = &mut self.endpoints[endpoint];
        let forgiven = r.returned_at.map_or(0, |back| {
            let calm = now.since(back).as_nanos() / s.base_ejection.as_nanos();
            u32::try_from(calm).unwrap_or(u32::MAX)
        });
        r.times = r.times.saturating_sub(forgiven).saturating_add(1);
        let length =
            s.base_ejection.saturating_mul(r.times).min(s.max_ejection.max(s.base_ejection));
        let until = now.after(length);
        r.ejected_until = Some(until);
        r.returned_at = None;
        self.ejected += 1;
        events.push(OutlierEvent::Ejected { endpoint, trigger, until, times: r.times });
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OK: Outcome = Outcome::Response(200);
    const ERR: Outcome = Outcome::Response(500);
    const REFUSED: Outcome = Outcome::ConnectFailure;

    fn settings(failures: u32, connect: u32) -> OutlierSettings {
        OutlierSettings {
            consecutive_failures: failures,
            consecutive_connect_failures: connect,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejection_percent: 100,
        }
    }

    /// Feeds `results` to endpoint 0 and says whether it ended up ejected.
    fn ejects(settings: OutlierSettings, results: &[Outcome]) -> bool {
        let mut d = OutlierDetector::new(settings, 4);
        for &r in results {
            d.observe(0, r, Nanos::ZERO);
        }
        d.is_ejected(0)
    }

    #[test]
    fn consecutive_counting_table() {
        let table: &[(&[Outcome], bool)] = &[
            // Interleaved success resets the run: the breaker case of a
            // proxy that counted non-consecutive failures.
            (&[ERR, OK, ERR, ERR], false),
            (&[ERR, ERR, ERR], true),
            (&[Outcome::Reset, Outcome::Timeout, Outcome::Response(503)], true),
            (&[ERR, Outcome::Response(404), ERR, ERR], false),
            (&[REFUSED, REFUSED], true),
            (&[REFUSED, ERR, REFUSED], true),
            (&[REFUSED, ERR, OK, REFUSED], false),
        ];
        for (results, ejected) in table {
            assert_eq!(ejects(settings(3, 2), results), *ejected, "{results:?}");
        }
    }

    /// The two runs exactly as documented, each trigger alone: any
    /// response, or a reset or timeout, ends a run of refused connections;
    /// a refused connection counts in the run of failures too; and which
    /// trigger ejected is the one reported.
    #[test]
    fn each_run_counts_what_the_module_says_and_names_its_trigger() {
        const RESET: Outcome = Outcome::Reset;
        const TIMEOUT: Outcome = Outcome::Timeout;
        let first_ejection = |settings: OutlierSettings, results: &[Outcome]| {
            let mut d = OutlierDetector::new(settings, 4);
            let events: Vec<OutlierEvent> =
                results.iter().flat_map(|&r| d.observe(0, r, Nanos::ZERO)).collect();
            events.iter().find_map(|e| match e {
                OutlierEvent::Ejected { trigger, .. } => Some(*trigger),
                _ => None,
            })
        };
        let connect = Some(Trigger::ConsecutiveConnectFailures);
        let failures = Some(Trigger::ConsecutiveFailures);
        let table: &[(OutlierSettings, &[Outcome], Option<Trigger>)] = &[
            // Connection run only.
            (settings(0, 2), &[REFUSED, REFUSED], connect),
            (settings(0, 2), &[REFUSED, ERR, REFUSED], None),
            (settings(0, 2), &[REFUSED, RESET, REFUSED], None),
            (settings(0, 2), &[REFUSED, TIMEOUT, REFUSED], None),
            (settings(0, 2), &[REFUSED, OK, REFUSED], None),
            (settings(0, 2), &[REFUSED, Outcome::Response(404), REFUSED], None),
            // Failure run only: refused connections are failures too.
            (settings(3, 0), &[REFUSED, REFUSED, ERR], failures),
            (settings(3, 0), &[REFUSED, RESET, TIMEOUT], failures),
            (settings(3, 0), &[REFUSED, REFUSED, OK, ERR], None),
            // Both: whichever run reaches its threshold first.
            (settings(3, 2), &[ERR, REFUSED, REFUSED], connect),
            (settings(3, 2), &[REFUSED, ERR, REFUSED], failures),
        ];
        for (s, results, trigger) in table {
            assert_eq!(first_ejection(*s, results), *trigger, "{s:?} {results:?}");
        }
    }

    /// An endpoint spared by the cap starts both runs again from zero.
    #[test]
    fn a_spared_endpoint_starts_its_runs_again() {
        let s = OutlierSettings { max_ejection_percent: 0, ..settings(2, 0) };
        let mut d = OutlierDetector::new(s, 4);
        let mut spared = 0;
        for (k, r) in [ERR, ERR, ERR, ERR, ERR].into_iter().enumerate() {
            let events = d.observe(0, r, Nanos::ZERO);
            let now = matches!(events[..], [OutlierEvent::Spared { .. }]);
            spared += usize::from(now);
            // The 2nd and 4th failures complete a run; the 3rd starts one.
            assert_eq!(now, k == 1 || k == 3, "failure {}: {events:?}", k + 1);
        }
        assert_eq!((spared, d.ejected_count()), (2, 0));
    }

    #[test]
    fn a_replacing_detector_takes_over_the_records_of_kept_endpoints() {
        let mut old = OutlierDetector::new(settings(1, 0), 3);
        old.observe(2, ERR, Nanos::ZERO);
        assert!(old.is_ejected(2));
        // Old endpoint 2 is new endpoint 0; the others are new or dropped.
        let mut new = OutlierDetector::new(settings(1, 0), 2);
        assert!(new.carry_from(&old, &[Some(2), Some(7)], Nanos::ZERO).is_empty());
        assert!(new.is_ejected(0) && !new.is_ejected(1));
        assert_eq!(new.ejected_count(), 1);
        assert_eq!(new.next_return(), Some(Nanos::from_secs(10)), "the old ejection's end");
        let returned = new.poll(Nanos::from_secs(10));
        assert!(matches!(returned[..], [OutlierEvent::Returned { endpoint: 0 }]));
        assert_eq!(new.ejected_count(), 0);
        // The repeat count came along: the next ejection is twice as long.
        let events = new.observe(0, ERR, Nanos::from_secs(10));
        assert!(matches!(events[..], [OutlierEvent::Ejected { times: 2, .. }]), "{events:?}");
    }

    #[test]
    fn carried_ejections_beyond_the_new_cap_end() {
        let t = Nanos::from_secs;
        let s = OutlierSettings { max_ejection_percent: 50, ..settings(1, 0) };
        let mut old = OutlierDetector::new(s, 4);
        old.observe(1, ERR, t(1));
        old.observe(0, ERR, t(2));
        assert_eq!(old.ejected_count(), 2);

        // Three endpoints at 50% leave room for one ejection: the one due
        // to end first ends now.
        let mut shrunk = OutlierDetector::new(s, 3);
        let ended = shrunk.carry_from(&old, &[Some(0), Some(1), Some(2)], t(3));
        assert_eq!(ended, [OutlierEvent::Returned { endpoint: 1 }]);
        assert!(shrunk.is_ejected(0) && !shrunk.is_ejected(1));
        assert_eq!(shrunk.ejected_count(), 1);
        assert_eq!(shrunk.next_return(), Some(t(12)));

        // A pool of one at 50% ejects nothing, carried or not.
        let mut alone = OutlierDetector::new(s, 1);
        let ended = alone.carry_from(&old, &[Some(1)], t(3));
        assert_eq!(ended, [OutlierEvent::Returned { endpoint: 0 }]);
        assert_eq!((alone.ejected_count(), alone.next_return()), (0, None));

        // Ejection disabled: every carried ejection ends.
        let off = OutlierSettings { base_ejection: Duration::ZERO, ..s };
        let mut disabled = OutlierDetector::new(off, 4);
        assert_eq!(disabled.carry_from(&old, &[Some(0), Some(1), None, None], t(3)).len(), 2);
        assert_eq!(disabled.ejected_count(), 0);
    }

    #[test]
    fn zero_thresholds_and_zero_ejection_disable() {
        assert!(!ejects(settings(0, 0), &[REFUSED; 10]));
        assert!(ejects(settings(0, 2), &[REFUSED; 2]));
        assert!(!ejects(settings(0, 2), &[ERR; 10]));
        let off = OutlierSettings { base_ejection: Duration::ZERO, ..settings(1, 1) };
        assert!(!ejects(off, &[ERR; 10]));
    }

    #[test]
    fn ejections_grow_cap_and_are_forgiven() {
        let mut d = OutlierDetector::new(settings(1, 0), 2);
        let t = Nanos::from_secs;

        // First ejection: 10 s.
        let e = d.observe(0, ERR, t(0));
        assert_eq!(
            e,
            [OutlierEvent::Ejected {
                endpoint: 0,
                trigger: Trigger::ConsecutiveFailures,
                until: t(10),
                times: 1
            }]
        );
        assert_eq!(d.next_return(), Some(t(10)));
        assert!(d.observe(0, ERR, t(5)).is_empty(), "ignored while ejected");
        assert_eq!(d.poll(t(10)), [OutlierEvent::Returned { endpoint: 0 }]);

        // Again at once: 20 s; then 25 s (the cap) rather than 30.
        let until = |e: &[OutlierEvent]| match e.last() {
            Some(OutlierEvent::Ejected { until, .. }) => *until,
            other => panic!("{other:?}"),
        };
        assert_eq!(until(&d.observe(0, ERR, t(10))), t(30));
        d.poll(t(30));
        assert_eq!(until(&d.observe(0, ERR, t(30))), t(55));

        // 25 s of calm after returning at 55 forgives two ejections: 3 - 2 + 1 = 2.
        let returned = d.observe(1, OK, t(55));
        assert_eq!(returned, [OutlierEvent::Returned { endpoint: 0 }]);
        assert_eq!(until(&d.observe(0, ERR, t(80))), t(100));
    }

    #[test]
    fn a_cap_below_the_base_reads_as_the_base() {
        let s = OutlierSettings { max_ejection: Duration::ZERO, ..settings(1, 0) };
        let mut d = OutlierDetector::new(s, 2);
        let e = d.observe(0, ERR, Nanos::ZERO);
        assert!(
            matches!(e[..], [OutlierEvent::Ejected { until, .. }] if until == Nanos::from_secs(10))
        );
    }

    #[test]
    fn the_percentage_caps_ejections() {
        let s = OutlierSettings { max_ejection_percent: 50, ..settings(1, 0) };
        let mut d = OutlierDetector::new(s, 3);
        assert!(matches!(d.observe(0, ERR, Nanos::ZERO)[..], [OutlierEvent::Ejected { .. }]));
        assert_eq!(
            d.observe(1, ERR, Nanos::ZERO),
            [OutlierEvent::Spared { endpoint: 1, trigger: Trigger::ConsecutiveFailures }]
        );
        assert_eq!(d.ejected_count(), 1);
        // A small pool at a small percentage ejects nothing.
        let mut small = OutlierDetector::new(OutlierSettings { max_ejection_percent: 10, ..s }, 3);
        assert!(matches!(small.observe(0, ERR, Nanos::ZERO)[..], [OutlierEvent::Spared { .. }]));
        // Empty pools and unknown endpoints are harmless.
        let mut empty = OutlierDetector::new(s, 0);
        assert!(empty.observe(3, ERR, Nanos::ZERO).is_empty());
        assert_eq!(empty.next_return(), None);
    }

    proptest! {
        /// However results arrive, no more than the allowed share is ejected.
        #[test]
        fn never_ejects_beyond_the_percentage(
            n in 0usize..12,
            percent in 0u8..=120,
            steps in proptest::collection::vec((0usize..12, 0u8..4, 0u64..3000), 0..200),
        ) {
            let s = OutlierSettings { max_ejection_percent: percent, ..settings(2, 1) };
            let mut d = OutlierDetector::new(s, n);
            let mut now = Nanos::ZERO;
            for (endpoint, kind, dt) in steps {
                now = now.after(Duration::from_millis(dt));
                let outcome = [OK, ERR, REFUSED, Outcome::Timeout][kind as usize];
                d.observe(endpoint, outcome, now);
                let ejected = (0..n).filter(|&i| d.is_ejected(i)).count();
                prop_assert_eq!(ejected, d.ejected_count());
                prop_assert!(ejected as u64 * 100 <= u64::from(percent.min(100)) * n as u64);
            }
        }
    }
}
