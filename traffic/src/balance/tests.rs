use std::time::Duration;

use proptest::prelude::*;
use rand_core::SeedableRng;
use rand_pcg::Pcg64;

use super::*;

fn rng(seed: u64) -> Pcg64 {
    Pcg64::seed_from_u64(seed)
}

fn counts(b: &Balancer, n: usize) -> Vec<usize> {
    let mut rng = rng(7);
    let mut c = vec![0; b.len()];
    for _ in 0..n {
        c[b.pick(&mut rng).unwrap()] += 1;
    }
    c
}

/// Picks with the facts `pick` gives for each draw, counting per endpoint.
fn counts_with(b: &Balancer, n: usize, mut pick: impl FnMut(usize) -> Pick<'static>) -> Vec<usize> {
    let mut rng = rng(11);
    let mut c = vec![0; b.len()];
    for k in 0..n {
        c[b.pick_with(&mut rng, &pick(k)).unwrap()] += 1;
    }
    c
}

/// A well-spread key hash for the `k`-th request.
fn spread(k: usize) -> u64 {
    key_hash(&(k as u64).to_le_bytes())
}

/// Every algorithm, with small settings.
fn algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::LeastRequest { choices: 2 },
        Algorithm::LeastRequest { choices: ALL_CHOICES },
        Algorithm::LeastRequest { choices: 9 },
        Algorithm::PeakEwma(PeakEwma::default()),
        Algorithm::ConsistentHash,
    ]
}

#[test]
fn round_robin_visits_each_endpoint_in_turn() {
    let b = Balancer::new(Algorithm::RoundRobin, &[1, 5, 1]);
    let mut rng = rng(1);
    let picks: Vec<_> = (0..6).map(|_| b.pick(&mut rng).unwrap()).collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn smooth_weighted_round_robin_interleaves() {
    let b = Balancer::new(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
    let mut rng = rng(1);
    let picks: Vec<_> = (0..7).map(|_| b.pick(&mut rng).unwrap()).collect();
    assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(counts(&b, 700), [500, 100, 100]);
}

#[test]
fn weighted_round_robin_skips_zero_weights_and_refuses_all_zero() {
    let b = Balancer::new(Algorithm::WeightedRoundRobin, &[0, 2, 1]);
    assert_eq!(counts(&b, 300), [0, 200, 100]);
    let none = Balancer::new(Algorithm::WeightedRoundRobin, &[0, 0]);
    assert_eq!(none.pick(&mut rng(1)), None);
}

#[test]
fn huge_weights_are_scaled_not_dropped() {
    let b = Balancer::new(Algorithm::WeightedRoundRobin, &[u32::MAX, 1]);
    let c = counts(&b, b.schedule.len());
    assert!(c[1] >= 1, "an endpoint with weight 1 still gets traffic: {c:?}");
    assert!(b.schedule.len() as u64 <= MAX_SCHEDULE + 1);
}

#[test]
fn random_is_roughly_uniform() {
    let b = Balancer::new(Algorithm::Random, &[1, 1, 1, 1]);
    for c in counts(&b, 40_000) {
        assert!((9_000..11_000).contains(&c), "{c}");
    }
}

#[test]
fn usual_picks_are_the_same_on_the_fast_path_and_the_general_one() {
    // With every endpoint eligible a random or least-request pick skips
    // the view of the pool; avoiding an endpoint the pool does not have
    // takes the general way, which must draw and choose exactly the same,
    // or variants would part ways.
    let algorithms = [
        (Algorithm::Random, vec![1; 7]),
        (Algorithm::LeastRequest { choices: 2 }, vec![1; 7]),
        (Algorithm::LeastRequest { choices: 2 }, vec![3, 1, 2, 1, 5, 1, 1]),
        (Algorithm::LeastRequest { choices: 3 }, vec![1; 7]),
        (Algorithm::LeastRequest { choices: 7 }, vec![2; 7]),
    ];
    for (algorithm, weights) in algorithms {
        let b = Balancer::new(algorithm, &weights);
        b.set_eligible(3, false, Nanos::ZERO);
        b.set_eligible(3, true, Nanos::ZERO);
        let (mut fast, mut general, mut load) = (rng(11), rng(11), rng(5));
        let none = [99usize];
        for _ in 0..2_000 {
            let usual = b.pick_with(&mut fast, &Pick::at(Nanos::ZERO));
            let avoiding = b.pick_with(&mut general, &Pick::at(Nanos::ZERO).avoiding(&none));
            assert_eq!(usual, avoiding, "{algorithm:?} {weights:?}");
            let i = usual.expect("a pool with eligible endpoints picks one");
            // Requests come and go, so that counts differ and tie.
            b.begin(i);
            if crate::random::index(&mut load, 3) == 0 {
                b.end(crate::random::index(&mut load, 7));
            }
        }
        // One endpoint out: the fast path is off, and 3 is never picked.
        b.set_eligible(3, false, Nanos::ZERO);
        let picks = (0..1_000).map(|_| b.pick_with(&mut fast, &Pick::at(Nanos::ZERO)));
        assert!(picks.into_iter().all(|p| p.is_some_and(|i| i != 3)), "{algorithm:?}");
    }
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[1, 1]);
    for _ in 0..5 {
        b.begin(0);
    }
    let c = counts(&b, 100);
    assert_eq!(c, [0, 100]);
    b.end(0);
    assert_eq!(b.in_flight(0), 4);
}

#[test]
fn least_request_weighs_load_by_weight() {
    // Endpoint 0 has twice the weight, so 3 in flight there is lighter than 2 on 1.
    let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[2, 1]);
    (0..3).for_each(|_| b.begin(0));
    (0..2).for_each(|_| b.begin(1));
    assert_eq!(counts(&b, 50), [50, 0]);
}

#[test]
fn least_request_breaks_ties_at_random_in_proportion_to_weight() {
    for n in [2usize, 3, 5] {
        let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &vec![1; n]);
        let c = counts(&b, 3000);
        let fair = 3000 / n;
        assert!(c.iter().all(|&k| k > fair * 8 / 10 && k < fair * 12 / 10), "{n}: {c:?}");
    }
    // Idle endpoints of weights 3:1 share sequential traffic 3:1.
    let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[3, 1]);
    let c = counts(&b, 4000);
    assert!((2800..3200).contains(&c[0]), "{c:?}");
}

#[test]
fn join_the_shortest_queue_takes_the_global_minimum() {
    let b = Balancer::new(Algorithm::LeastRequest { choices: ALL_CHOICES }, &[1; 12]);
    for i in 0..12 {
        (0..3).for_each(|_| b.begin(i));
    }
    b.end(7);
    assert_eq!(counts(&b, 200)[7], 200);
}

#[test]
fn many_choices_sample_distinct_endpoints() {
    // 10 of 12 choices: the two idle endpoints are found almost always.
    let b = Balancer::new(Algorithm::LeastRequest { choices: 10 }, &[1; 12]);
    for i in 0..10 {
        b.begin(i);
    }
    let c = counts(&b, 1000);
    let idle = c[10] + c[11];
    assert!(idle > 950, "{c:?}");
}

#[test]
fn zero_choices_read_as_one() {
    let b = Balancer::new(Algorithm::LeastRequest { choices: 0 }, &[1, 1]);
    (0..5).for_each(|_| b.begin(0));
    let c = counts(&b, 2000);
    assert!(c[0] > 800, "a single choice ignores load: {c:?}");
}

#[test]
fn end_never_underflows_and_bad_indices_are_ignored() {
    let b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[1]);
    b.end(0);
    assert_eq!(b.in_flight(0), 0);
    b.begin(9);
    b.end(9);
    b.set_eligible(9, false, Nanos::ZERO);
    b.observe(9, Duration::from_secs(1), Outcome::Reset, Nanos::ZERO);
    assert_eq!(b.in_flight(9), 0);
    assert!(!b.is_eligible(9));
    assert_eq!(b.pick_with(&mut rng(1), &Pick::default().avoiding(&[9])), Some(0));
}

#[test]
fn exclusive_counts_match_the_shared_ones() {
    let mut b = Balancer::new(Algorithm::LeastRequest { choices: 2 }, &[1, 1]);
    b.end_exclusive(0);
    assert_eq!(b.in_flight(0), 0);
    (0..3).for_each(|_| b.begin_exclusive(1));
    b.begin(1);
    b.end_exclusive(1);
    assert_eq!((b.in_flight(0), b.in_flight(1)), (0, 3));
    b.begin_exclusive(9);
    b.end_exclusive(9);
    assert_eq!(b.pick_with(&mut rng(1), &Pick::default()), Some(0));
}

#[test]
fn empty_pools_and_zero_weights_pick_nothing_under_every_algorithm() {
    for algorithm in algorithms() {
        let empty = Balancer::new(algorithm, &[]);
        assert_eq!(empty.pick(&mut rng(1)), None, "{algorithm:?}");
        assert_eq!(empty.pick_with(&mut rng(1), &Pick::default().with_hash(5)), None);
        let zero = Balancer::new(algorithm, &[0, 0, 0]);
        assert_eq!(zero.pick(&mut rng(1)), None, "{algorithm:?}");
    }
}

/// Weight 0 drains an endpoint under every algorithm, the ones that ignore
/// other weights included; those share evenly over the rest.
#[test]
fn weight_zero_gets_nothing_under_every_algorithm() {
    for algorithm in algorithms() {
        let b = Balancer::new(algorithm, &[0, 1, 3]);
        let c = counts_with(&b, 2000, |k| Pick::default().with_hash(spread(k)));
        assert_eq!(c[0], 0, "{algorithm:?}: {c:?}");
        if !algorithm.is_weighted() {
            assert!(c[1].abs_diff(c[2]) < 200, "{algorithm:?} ignores weights: {c:?}");
        }
    }
}

#[test]
fn ineligible_endpoints_get_nothing_and_none_eligible_gives_none() {
    for algorithm in algorithms() {
        let b = Balancer::new(algorithm, &[1, 1, 1, 1]);
        b.set_eligible(1, false, Nanos::ZERO);
        b.set_eligible(3, false, Nanos::ZERO);
        assert_eq!(b.eligible_count(), 2);
        let c = counts_with(&b, 400, |k| Pick::default().with_hash(spread(k)));
        assert_eq!((c[1], c[3]), (0, 0), "{algorithm:?}: {c:?}");
        assert!(c[0] > 0 && c[2] > 0, "{algorithm:?}: {c:?}");

        b.set_eligible(0, false, Nanos::ZERO);
        b.set_eligible(2, false, Nanos::ZERO);
        assert_eq!(b.pick(&mut rng(1)), None, "{algorithm:?}");
        b.set_eligible(2, true, Nanos::ZERO);
        assert_eq!(b.pick(&mut rng(1)), Some(2), "{algorithm:?}");
    }
}

#[test]
fn panic_mode_spreads_over_every_endpoint_below_the_threshold() {
    let settings = BalanceSettings { panic_threshold_percent: 50, ..BalanceSettings::default() };
    for algorithm in algorithms() {
        let b = Balancer::with_settings(algorithm, &[1, 1, 1, 1], &settings);
        // Two of four eligible is not below 50%: no panic.
        b.set_eligible(0, false, Nanos::ZERO);
        b.set_eligible(1, false, Nanos::ZERO);
        assert!(!b.in_panic());
        let c = counts_with(&b, 400, |k| Pick::default().with_hash(spread(k)));
        assert_eq!((c[0], c[1]), (0, 0), "{algorithm:?}");

        // One of four is: everything gets traffic, even with none eligible.
        b.set_eligible(2, false, Nanos::ZERO);
        assert!(b.in_panic());
        let c = counts_with(&b, 400, |k| Pick::default().with_hash(spread(k)));
        assert!(c.iter().all(|&k| k > 0), "{algorithm:?}: {c:?}");
        b.set_eligible(3, false, Nanos::ZERO);
        assert!(b.pick(&mut rng(1)).is_some(), "{algorithm:?}");
    }
}

#[test]
fn a_threshold_above_100_reads_as_100() {
    let settings = BalanceSettings { panic_threshold_percent: 255, ..BalanceSettings::default() };
    let b = Balancer::with_settings(Algorithm::RoundRobin, &[1, 1], &settings);
    assert!(!b.in_panic());
    b.set_eligible(0, false, Nanos::ZERO);
    assert!(b.in_panic());
}

#[test]
fn avoid_is_honoured_while_another_candidate_exists() {
    for algorithm in algorithms() {
        let b = Balancer::new(algorithm, &[1, 1, 1]);
        let c = counts_with(&b, 300, |k| Pick::default().with_hash(spread(k)).avoiding(&[1]));
        assert_eq!(c[1], 0, "{algorithm:?}: {c:?}");

        // The only other candidate is ineligible: the avoided one is still better than none.
        b.set_eligible(0, false, Nanos::ZERO);
        b.set_eligible(2, false, Nanos::ZERO);
        let mut rng = rng(3);
        assert_eq!(b.pick_excluding(&mut rng, Nanos::ZERO, 1), Some(1), "{algorithm:?}");
    }
    let single = Balancer::new(Algorithm::RoundRobin, &[1]);
    assert_eq!(single.pick_excluding(&mut rng(1), Nanos::ZERO, 0), Some(0));
}

#[test]
fn a_retry_goes_to_an_endpoint_not_yet_tried_while_one_is_left() {
    for algorithm in algorithms() {
        let b = Balancer::new(algorithm, &[1, 1, 1, 1]);
        // Two tries so far, on 0 then 2: only 1 and 3 are left.
        let c = counts_with(&b, 400, |k| Pick::default().with_hash(spread(k)).avoiding(&[0, 2]));
        assert_eq!((c[0], c[2]), (0, 0), "{algorithm:?}: {c:?}");
        assert!(c[1] > 0 && c[3] > 0, "{algorithm:?}: {c:?}");

        // Every candidate tried: anything but the latest.
        let c = counts_with(&b, 400, |k| {
            Pick::default().with_hash(spread(k)).avoiding(&[1, 3, 0, 2, 0])
        });
        assert_eq!(c[0], 0, "{algorithm:?}: {c:?}");
        assert!(c[1] + c[2] + c[3] == 400, "{algorithm:?}: {c:?}");

        // Of the untried ones, one is down: the other one.
        b.set_eligible(3, false, Nanos::ZERO);
        let c = counts_with(&b, 400, |k| Pick::default().with_hash(spread(k)).avoiding(&[0, 2]));
        assert_eq!(c[1], 400, "{algorithm:?}: {c:?}");
    }
}

#[test]
fn slow_start_ramps_an_endpoint_that_returns() {
    let slow = SlowStart { window: Duration::from_secs(10), initial_percent: 10 };
    let settings = BalanceSettings { slow_start: Some(slow), ..BalanceSettings::default() };
    for algorithm in [Algorithm::RoundRobin, Algorithm::WeightedRoundRobin, Algorithm::Random] {
        let b = Balancer::with_settings(algorithm, &[1, 1], &settings);
        b.set_eligible(0, false, Nanos::ZERO);
        b.set_eligible(0, true, Nanos::from_secs(100));

        // Just back: about a tenth of the other's share.
        let c = counts_with(&b, 4000, |_| Pick::at(Nanos::from_secs(100)));
        let share = c[0] as f64 / c[1] as f64;
        assert!((0.05..0.2).contains(&share), "{algorithm:?}: {c:?}");

        // Half way: about 55%; after the window: equal.
        let c = counts_with(&b, 4000, |_| Pick::at(Nanos::from_secs(105)));
        let share = c[0] as f64 / c[1] as f64;
        assert!((0.45..0.65).contains(&share), "{algorithm:?}: {c:?}");
        let c = counts_with(&b, 4000, |_| Pick::at(Nanos::from_secs(110)));
        assert!(c[0].abs_diff(c[1]) < 300, "{algorithm:?}: {c:?}");
    }
}

#[test]
fn slow_start_reaches_least_request_through_the_weight() {
    let slow = SlowStart { window: Duration::from_secs(10), initial_percent: 0 };
    let settings = BalanceSettings { slow_start: Some(slow), ..BalanceSettings::default() };
    let b = Balancer::with_settings(Algorithm::LeastRequest { choices: 2 }, &[1, 1], &settings);
    b.set_eligible(1, false, Nanos::ZERO);
    b.set_eligible(1, true, Nanos::ZERO);
    b.begin(0);
    b.begin(1);
    // Equal load, but endpoint 1 has a thousandth of its weight.
    assert_eq!(counts_with(&b, 100, |_| Pick::at(Nanos::ZERO)), [100, 0]);
    // After the window, equal load and weight: ties split at random.
    let c = counts_with(&b, 1000, |_| Pick::at(Nanos::from_secs(20)));
    assert!(c[1] > 400, "{c:?}");
}

#[test]
fn a_zero_slow_start_window_disables_it() {
    let slow = SlowStart { window: Duration::ZERO, initial_percent: 0 };
    let settings = BalanceSettings { slow_start: Some(slow), ..BalanceSettings::default() };
    let b = Balancer::with_settings(Algorithm::RoundRobin, &[1, 1], &settings);
    b.set_eligible(0, false, Nanos::ZERO);
    b.set_eligible(0, true, Nanos::ZERO);
    assert_eq!(counts_with(&b, 100, |_| Pick::at(Nanos::ZERO)), [50, 50]);
}

fn ewma(window: Duration) -> Algorithm {
    Algorithm::PeakEwma(PeakEwma { window, ..PeakEwma::default() })
}

/// Drives `b` with sequential requests whose latency per endpoint is
/// `latency`, one every millisecond, and counts the picks.
fn drive(b: &Balancer, n: u64, latency: impl Fn(usize) -> (Duration, Outcome)) -> Vec<usize> {
    let mut rng = rng(5);
    let mut c = vec![0; b.len()];
    for k in 0..n {
        let now = Nanos::from_millis(k);
        let i = b.pick_with(&mut rng, &Pick::at(now)).unwrap();
        let (took, outcome) = latency(i);
        b.observe(i, took, outcome, now.after(took));
        c[i] += 1;
    }
    c
}

#[test]
fn peak_ewma_sends_little_to_a_slow_endpoint() {
    let b = Balancer::new(ewma(Duration::from_secs(1)), &[1, 1, 1]);
    let c = drive(&b, 3000, |i| {
        let ms = if i == 0 { 100 } else { 10 };
        (Duration::from_millis(ms), Outcome::Response(200))
    });
    assert!(c[0] < 150, "{c:?}");
    let estimate = b.latency_estimate(0, Nanos::from_secs(3)).unwrap();
    assert!(estimate < Duration::from_millis(100), "decays while idle: {estimate:?}");
}

#[test]
fn peak_ewma_does_not_reward_failing_fast() {
    let b = Balancer::new(ewma(Duration::from_secs(1)), &[1, 1, 1]);
    let c = drive(&b, 3000, |i| match i {
        0 => (Duration::from_millis(1), Outcome::Response(503)),
        _ => (Duration::from_millis(20), Outcome::Response(200)),
    });
    assert!(c[0] < 150, "{c:?}");
}

#[test]
fn peak_ewma_forgets_an_endpoint_that_returns() {
    let b = Balancer::new(ewma(Duration::from_secs(1)), &[1, 1]);
    b.observe(0, Duration::from_secs(5), Outcome::Timeout, Nanos::ZERO);
    assert_eq!(b.latency_estimate(0, Nanos::ZERO), Some(Duration::from_secs(5)));
    b.set_eligible(0, false, Nanos::ZERO);
    b.set_eligible(0, true, Nanos::ZERO);
    assert_eq!(b.latency_estimate(0, Nanos::ZERO), Some(PeakEwma::default().initial_latency));
    assert_eq!(Balancer::new(Algorithm::Random, &[1]).latency_estimate(0, Nanos::ZERO), None);
}

#[test]
fn a_replacing_balancer_takes_over_the_estimates_of_kept_endpoints() {
    let old = Balancer::new(ewma(Duration::from_secs(1)), &[1, 1]);
    old.observe(0, Duration::from_secs(5), Outcome::Timeout, Nanos::ZERO);
    old.observe(1, Duration::from_millis(7), Outcome::Response(200), Nanos::ZERO);
    old.begin(0);
    // Old endpoint 1 is new endpoint 0; old 0 is new 2; new 1 is added.
    let new = Balancer::new(ewma(Duration::from_secs(1)), &[1, 1, 1]);
    new.carry_from(&old, &[Some(1), None, Some(0)]);
    let estimate = |i| new.latency_estimate(i, Nanos::ZERO).unwrap();
    assert_eq!(estimate(0), Duration::from_millis(7));
    assert_eq!(estimate(1), PeakEwma::default().initial_latency);
    assert_eq!(estimate(2), Duration::from_secs(5));
    assert_eq!(new.in_flight(2), 0, "in-flight counts stay with the old balancer");
    // Out-of-range indices and other algorithms are ignored.
    new.carry_from(&old, &[Some(9)]);
    Balancer::new(Algorithm::Random, &[1]).carry_from(&old, &[Some(0)]);
}

#[test]
fn peak_ewma_with_a_zero_window_acts_on_load_alone() {
    let b = Balancer::new(ewma(Duration::ZERO), &[1, 1]);
    b.observe(0, Duration::from_secs(5), Outcome::Response(200), Nanos::ZERO);
    b.begin(1);
    let c = counts_with(&b, 100, |_| Pick::at(Nanos::from_secs(1)));
    assert_eq!(c, [100, 0]);
}

#[test]
fn consistent_hash_is_sticky_and_only_moves_the_keys_of_an_ineligible_endpoint() {
    let b = Balancer::new(Algorithm::ConsistentHash, &[1; 5]);
    let mut rng = rng(1);
    let owner = |b: &Balancer, rng: &mut Pcg64, key: u64| {
        b.pick_with(rng, &Pick::default().with_hash(key_hash(&key.to_le_bytes()))).unwrap()
    };
    let before: Vec<usize> = (0..2000).map(|k| owner(&b, &mut rng, k)).collect();
    let again: Vec<usize> = (0..2000).map(|k| owner(&b, &mut rng, k)).collect();
    assert_eq!(before, again);

    b.set_eligible(2, false, Nanos::ZERO);
    let after: Vec<usize> = (0..2000).map(|k| owner(&b, &mut rng, k)).collect();
    for (k, (&was, &now)) in before.iter().zip(&after).enumerate() {
        assert_ne!(now, 2);
        if was != 2 {
            assert_eq!(was, now, "key {k} moved between endpoints that stayed");
        }
    }
}

#[test]
fn consistent_hash_follows_weights_and_survives_missing_keys() {
    let settings = BalanceSettings { endpoint_keys: vec![11], ..BalanceSettings::default() };
    let b = Balancer::with_settings(Algorithm::ConsistentHash, &[1, 3], &settings);
    let c = counts_with(&b, 8000, |k| Pick::default().with_hash(key_hash(&k.to_le_bytes())));
    let share = c[1] as f64 / 8000.0;
    assert!((0.65..0.85).contains(&share), "{c:?}");
    // Without a key hash a pick is random.
    let c = counts_with(&b, 4000, |_| Pick::default());
    assert!(c[0] > 500 && c[1] > 2500, "{c:?}");
}

/// Owners of `keys` on a ring over endpoints named by `ids`.
fn owners(ids: &[u64], keys: &[u64]) -> Vec<u64> {
    let settings = BalanceSettings { endpoint_keys: ids.to_vec(), ..BalanceSettings::default() };
    let b = Balancer::with_settings(Algorithm::ConsistentHash, &vec![1; ids.len()], &settings);
    let mut rng = rng(1);
    keys.iter()
        .map(|&k| ids[b.pick_with(&mut rng, &Pick::default().with_hash(k)).unwrap()])
        .collect()
}

#[test]
fn balancers_are_shared_across_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let b = Balancer::new(ewma(Duration::from_secs(1)), &[1; 4]);
    shared(&b);
    std::thread::scope(|s| {
        for t in 0..4 {
            let b = &b;
            s.spawn(move || {
                let mut rng = rng(t);
                for k in 0..500 {
                    let i = b.pick_with(&mut rng, &Pick::at(Nanos::from_millis(k))).unwrap();
                    b.begin(i);
                    b.observe(i, Duration::from_millis(3), Outcome::Response(200), Nanos(k));
                    b.end(i);
                }
            });
        }
    });
    assert!((0..4).all(|i| b.in_flight(i) == 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Adding or removing one endpoint moves about 1/N of the keys, and
    /// only to or from that endpoint.
    #[test]
    fn consistent_hash_moves_about_one_nth(n in 3usize..16, gone in 0usize..16, seed: u64) {
        let gone = gone % n;
        let ids: Vec<u64> = (0..n as u64).map(|i| key_hash(&(seed ^ i).to_le_bytes())).collect();
        let keys: Vec<u64> = (0..6000u64).map(|k| key_hash(&(k ^ seed << 1).to_le_bytes())).collect();
        let before = owners(&ids, &keys);
        let fewer: Vec<u64> = ids.iter().copied().filter(|&id| id != ids[gone]).collect();
        let after = owners(&fewer, &keys);

        let mut moved = 0;
        for (&was, &now) in before.iter().zip(&after) {
            if was != now {
                prop_assert_eq!(was, ids[gone], "a key moved between endpoints that stayed");
                moved += 1;
            }
        }
        let share = moved as f64 / keys.len() as f64 * n as f64;
        prop_assert!((0.6..1.4).contains(&share), "moved {} of {}, n = {}", moved, keys.len(), n);
        // Adding it back restores every key.
        prop_assert_eq!(owners(&ids, &keys), before);
    }

    /// No algorithm picks an ineligible, zero-weight or avoided endpoint
    /// while another candidate exists, and it picks something whenever one
    /// does.
    #[test]
    fn picks_only_candidates(
        algorithm in 0usize..8,
        weights in proptest::collection::vec(0u32..4, 0..12),
        down in proptest::collection::vec(any::<bool>(), 12),
        avoid in proptest::collection::vec(0usize..14, 0..5),
        loads in proptest::collection::vec(0u32..4, 12),
        hash: u64,
        seed: u64,
    ) {
        let algorithm = algorithms()[algorithm];
        let b = Balancer::new(algorithm, &weights);
        for (i, (&d, &l)) in down.iter().zip(&loads).enumerate().take(weights.len()) {
            b.set_eligible(i, !d, Nanos::ZERO);
            (0..l).for_each(|_| b.begin(i));
        }
        let usable = |i: usize| weights[i] > 0;
        let ok = |i: usize| usable(i) && !down[i];
        // Whether a candidate is left that was not tried, or one that is
        // not the latest try's.
        let untried = (0..weights.len()).any(|i| ok(i) && !avoid.contains(&i));
        let other = (0..weights.len()).any(|i| ok(i) && avoid.last() != Some(&i));

        let mut rng = rng(seed);
        for k in 0..20u64 {
            let pick = Pick { now: Nanos(k), hash: Some(hash ^ k), avoid: &avoid };
            match b.pick_with(&mut rng, &pick) {
                Some(i) => {
                    prop_assert!(ok(i), "{:?} picked {} of {:?}", algorithm, i, weights);
                    prop_assert!(!untried || !avoid.contains(&i), "{} was tried: {:?}", i, avoid);
                    prop_assert!(!other || avoid.last() != Some(&i));
                }
                None => prop_assert!(!(0..weights.len()).any(ok)),
            }
        }
    }
}

/// Any algorithm with any settings.
fn any_algorithm() -> impl Strategy<Value = Algorithm> {
    let nanos = prop_oneof![Just(0u64), 0u64..2_000_000_000, Just(u64::MAX)];
    let ewma = (any::<usize>(), nanos.clone(), nanos.clone(), nanos).prop_map(|(c, w, p, i)| {
        Algorithm::PeakEwma(PeakEwma {
            choices: c,
            window: Duration::from_nanos(w),
            failure_penalty: Duration::from_nanos(p),
            initial_latency: Duration::from_nanos(i),
        })
    });
    prop_oneof![
        Just(Algorithm::RoundRobin),
        Just(Algorithm::WeightedRoundRobin),
        Just(Algorithm::Random),
        any::<usize>().prop_map(|choices| Algorithm::LeastRequest { choices }),
        ewma,
        Just(Algorithm::ConsistentHash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the settings and the calls, nothing panics and every pick
    /// is an endpoint of the pool.
    #[test]
    fn never_panics(
        algorithm in any_algorithm(),
        weights in proptest::collection::vec(prop_oneof![0u32..4, Just(u32::MAX)], 0..10),
        panic_threshold_percent: u8,
        slow_start in proptest::option::of((0u64..5_000_000_000, any::<u8>())),
        calls in proptest::collection::vec((0u8..6, 0usize..12, 0u64..1_000_000_000), 0..60),
    ) {
        let settings = BalanceSettings {
            panic_threshold_percent,
            slow_start: slow_start.map(|(w, p)| SlowStart {
                window: Duration::from_nanos(w),
                initial_percent: p,
            }),
            endpoint_keys: vec![1, 2, 3],
        };
        let b = Balancer::with_settings(algorithm, &weights, &settings);
        let mut rng = rng(3);
        let mut now = Nanos::ZERO;
        for (call, i, dt) in calls {
            now = Nanos(now.0.saturating_add(dt));
            match call {
                0 => b.begin(i),
                1 => b.end(i),
                2 => b.set_eligible(i, dt % 2 == 0, now),
                3 => b.observe(i, Duration::from_nanos(dt), Outcome::Response(503), now),
                4 => prop_assert!(b.pick(&mut rng).is_none_or(|p| p < weights.len())),
                _ => {
                    let pick = Pick { now, hash: Some(dt), avoid: &[i] };
                    prop_assert!(b.pick_with(&mut rng, &pick).is_none_or(|p| p < weights.len()));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// When every endpoint is a candidate, the shortcuts of `random` and of
    /// two choices pick what the general sampling picks, with the same
    /// draws.
    #[test]
    fn shortcuts_pick_as_the_general_sampling_does(
        weights in proptest::collection::vec(1u32..3, 1..12),
        loads in proptest::collection::vec(0u32..3, 12),
        equal in any::<bool>(),
        seed: u64,
    ) {
        let weights: Vec<u32> = if equal { vec![2; weights.len()] } else { weights };
        for algorithm in [Algorithm::Random, Algorithm::LeastRequest { choices: 2 }] {
            let b = Balancer::new(algorithm, &weights);
            for (i, &l) in loads.iter().enumerate().take(weights.len()) {
                (0..l).for_each(|_| b.begin(i));
            }
            let (mut fast, mut general) = (rng(seed), rng(seed));
            for k in 0..40u64 {
                let view = b.view(&Pick::at(Nanos(k))).expect("a pool of candidates");
                prop_assert!(view.all);
                let got = b.pick_with(&mut fast, &Pick::at(Nanos(k)));
                let want = match algorithm {
                    Algorithm::Random => b.sample_by_probes(&mut general, &view),
                    _ => b.best_of_any(&mut general, &view, 2),
                };
                prop_assert_eq!(got, want, "{:?} over {:?}", algorithm, weights);
                prop_assert_eq!(fast.next_u64(), general.next_u64(), "the same draws");
            }
        }
    }
}
