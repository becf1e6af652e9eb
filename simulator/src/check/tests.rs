//! Scenario findings, located by line and column.

use super::*;
use crate::random::ServiceTime;

pub(super) const SPEC: &str = "\
version: 1
listeners:
  - name: public
    bind: 127.0.0.1:8080
pools:
  - name: contacts
    endpoints:
      - address: 127.0.0.1:9101
      - address: 127.0.0.1:9102
  - name: deals
    balance: least_request
    endpoints:
      - address: 127.0.0.1:9201
routes:
  - name: get-contact
    match: { path: '/v1/contacts/{id}', methods: [GET] }
    to: contacts
  - name: get-deal
    match: { path: '/v1/deals/{id}' }
    to: deals
";

pub(super) fn plan() -> Plan {
    let checked = sluice_compiler::check(SourceFile::new("spec.yaml", SPEC));
    let errors: Vec<String> = checked.diagnostics.iter().map(Diagnostic::one_line).collect();
    checked.plan.unwrap_or_else(|| panic!("the test spec is valid: {errors:?}"))
}

pub(super) fn check(text: &str) -> CheckedScenario {
    check_scenario(SourceFile::new("scenario.yaml", text), Some(&plan()))
}

/// `(code, line, column)` of every finding.
pub(super) fn findings(text: &str) -> Vec<(&'static str, usize, usize)> {
    check(text)
        .diagnostics
        .iter()
        .map(|d| {
            let l = d.location.expect("every scenario finding is located");
            (d.code.id, l.line, l.column)
        })
        .collect()
}

pub(super) const GOOD: &str = "\
version: 1
seed: 7
duration: 60s
warmup: 5s
arrivals: { rate: 300 }
traffic:
  - { route: get-contact, weight: 5 }
  - { route: get-deal }
pools:
  contacts: { workers: 4, service: { distribution: exponential, mean: 20ms } }
  deals: { service: { distribution: lognormal, median: 2ms, p99: 30ms } }
balancers: [spec, random, least_request]
";

#[test]
fn a_good_scenario_resolves_to_a_workload() {
    let checked = check(GOOD);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let w = checked.workload.expect("no errors, so a workload");
    assert_eq!(w.seed, Some(7));
    assert_eq!((w.length, w.warmup), (Length::Duration(60 * SECOND), 5 * SECOND));
    assert_eq!(w.base_rate(), 300.0);
    assert_eq!(w.traffic, [RouteShare::new(0, 5.0), RouteShare::new(1, 1.0)]);
    let contacts = w.pools[0].clone().expect("contacts has a model");
    assert_eq!(contacts, PoolLoad::new(4, ServiceTime::Exponential { mean: 20_000_000 }));
    assert_eq!(w.pools[1].as_ref().map(|p| p.workers), Some(1));
    assert_eq!(w.variants.len(), 3);
}

#[test]
fn each_finding_points_at_the_bad_value() {
    let cases: &[(&str, &str, &str, usize, usize)] = &[
        // (what, replace this, with this, expected line, column)
        ("unknown route", "route: get-deal }", "route: get-deals }", 8, 14),
        ("unknown pool", "  deals: {", "  dealz: {", 11, 3),
        ("rate", "rate: 300", "rate: 0", 5, 19),
        ("weight", "weight: 5", "weight: -1", 7, 35),
        ("duration", "duration: 60s", "duration: 60 s", 3, 11),
        ("warm-up", "warmup: 5s", "warmup: 5sec", 4, 9),
        ("service field", "mean: 20ms", "mean: 20ms, value: 5ms", 10, 77),
        ("service time", "median: 2ms", "median: 0ms", 11, 56),
        ("workers", "workers: 4", "workers: 0", 10, 24),
        ("long warm-up", "warmup: 5s", "warmup: 60s", 3, 11),
    ];
    for &(what, from, to, line, column) in cases {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "{what}: the case must change the scenario");
        let found = findings(&text);
        let errors: Vec<_> = found.iter().filter(|f| f.0 != "S0412" && f.0 != "S0403").collect();
        assert_eq!(errors.len(), 1, "{what}: {found:?}");
        assert_eq!((errors[0].1, errors[0].2), (line, column), "{what}: {found:?}");
    }
}

#[test]
fn codes_name_the_kind_of_mistake() {
    let cases = [
        ("get-deal }", "nope }", "S0401"),
        ("  deals: {", "  nope: {", "S0402"),
        ("  deals: {", "  nope: {", "S0403"),
        ("rate: 300", "rate: -3", "S0404"),
        ("weight: 5", "weight: 0", "S0405"),
        ("duration: 60s", "duration: soon", "S0406"),
        ("duration: 60s", "requests: 0", "S0407"),
        ("p99: 30ms", "p99: 1ms", "S0408"),
        ("workers: 4", "workers: 0", "S0409"),
        ("rate: 300", "rate: 1000000000", "S0410"),
        ("random, least", "random, random, least", "S0411"),
        ("get-deal }", "get-contact }", "S0413"),
        ("workers: 4", "workers: 1", "S0414"),
        ("balancers: [spec, random, least_request]", "balancers: []", "S0430"),
    ];
    for (from, to, code) in cases {
        let found = findings(&GOOD.replacen(from, to, 1));
        assert!(found.iter().any(|f| f.0 == code), "{to}: expected {code}, found {found:?}");
    }
}

#[test]
fn a_reached_pool_without_a_model_is_an_error_at_the_route() {
    let text = GOOD
        .replace("  deals: { service: { distribution: lognormal, median: 2ms, p99: 30ms } }\n", "");
    let checked = check(&text);
    let d = &checked.diagnostics[0];
    assert_eq!(d.code, codes::NO_SERVICE_MODEL);
    assert_eq!(d.pointer, "/traffic/1/route");
    assert_eq!(d.location.map(|l| (l.line, l.column)), Some((8, 14)));
    assert!(d.message.contains("`deals`"), "{}", d.message);
    assert!(checked.workload.is_none());
}

#[test]
fn an_unreached_model_is_only_a_warning() {
    let text = GOOD.replace("  - { route: get-deal }\n", "");
    let checked = check(&text);
    assert_eq!(checked.diagnostics.len(), 1, "{:?}", checked.diagnostics);
    assert_eq!(checked.diagnostics[0].code, codes::UNUSED_POOL_MODEL);
    assert_eq!(checked.diagnostics[0].severity, Severity::Warning);
    assert!(checked.workload.is_some());
}

#[test]
fn run_length_needs_exactly_one_of_duration_and_requests() {
    let both = GOOD.replace("duration: 60s", "duration: 60s\nrequests: 10");
    assert_eq!(findings(&both), [("S0407", 4, 11)]);
    let neither = GOOD.replace("duration: 60s\n", "");
    assert_eq!(findings(&neither).first().map(|f| f.0), Some("S0407"));
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let text = GOOD
        .replace("rate: 300", "rate: 0")
        .replace("get-deal }", "nope }")
        .replace("mean: 20ms", "mean: fast");
    let codes: Vec<_> = findings(&text).into_iter().map(|f| f.0).collect();
    // The last is the warning that nothing reaches `deals` any more.
    assert_eq!(codes, ["S0404", "S0401", "S0406", "S0412"]);
}

#[test]
fn schema_findings_come_from_the_compiler() {
    let checked = check(&GOOD.replace("seed: 7", "sede: 7"));
    assert_eq!(checked.diagnostics[0].code.id, "S0101");
    assert_eq!(checked.diagnostics[0].location.map(|l| (l.line, l.column)), Some((2, 1)));
    let checked = check(&GOOD.replace("exponential", "exponentail"));
    assert_eq!(checked.diagnostics[0].code.id, "S0104");
    assert!(checked.scenario.is_none());
}

#[test]
fn without_a_plan_names_are_not_checked_and_nothing_resolves() {
    let text = GOOD.replace("get-deal }", "nope }").replace("rate: 300", "rate: 0");
    let checked = check_scenario(SourceFile::new("scenario.yaml", text), None);
    let codes: Vec<_> = checked.diagnostics.iter().map(|d| d.code.id).collect();
    assert_eq!(codes, ["S0404"]);
    assert!(checked.scenario.is_some() && checked.workload.is_none());
}

#[test]
fn a_misspelt_route_or_pool_gets_the_nearest_name() {
    let checked = check(&GOOD.replace("get-deal }", "get-dael }").replace("deals: {", "deal: {"));
    let helps: Vec<(&str, Option<&str>)> =
        checked.diagnostics.iter().map(|d| (d.code.id, d.help.as_deref())).collect();
    assert!(helps.contains(&("S0401", Some("did you mean `get-deal`?"))), "{helps:?}");
    assert!(helps.contains(&("S0402", Some("did you mean `deals`?"))), "{helps:?}");
}

#[test]
fn later_codes_point_at_the_value_they_are_about() {
    // (code, text added to or replaced in GOOD, the text the finding points at)
    let event = |e: &str| format!("{GOOD}events:\n  - {e}\n");
    let daily =
        |d: &str| GOOD.replacen("{ rate: 300 }", &format!("{{ rate: 300, daily: {{ {d} }} }}"), 1);
    let cases: Vec<(&str, String, &str)> = vec![
        ("S0415", GOOD.replacen("{ rate: 300 }", "{ rate: 300, clients: 17 }", 1), "17 }"),
        ("S0415", GOOD.replacen("{ rate: 300 }", "{ rate: 300, think: 1s }", 1), "think"),
        ("S0416", event("{ at: 10s, action: crash, pool: contacts, endpoint: \"7\" }"), "\"7\" }"),
        (
            "S0416",
            event("{ at: 10s, action: crash, pool: contacts, endpoint: 10.0.0.1:80 }"),
            "10.0.0.1:80 }",
        ),
        (
            "S0417",
            event("{ at: 10s, action: slow, pool: contacts, endpoint: \"0\", factor: -2 }"),
            "-2 }",
        ),
        (
            "S0417",
            event("{ at: 10s, action: fail, pool: contacts, endpoint: \"0\", share: 1.5 }"),
            "1.5 }",
        ),
        (
            "S0418",
            GOOD.replacen(
                "{ distribution: lognormal, median: 2ms, p99: 30ms }",
                "{ distribution: empirical, file: no-such-samples.txt }",
                1,
            ),
            "no-such-samples.txt }",
        ),
        (
            "S0419",
            event("{ at: 10s, action: crash, pool: contacts, endpoint: \"0\", factor: 3 }"),
            "factor: 3",
        ),
        ("S0419", event("{ at: 10s, action: slow, pool: contacts, endpoint: \"0\" }"), "{ at: 10s"),
        ("S0420", format!("{GOOD}gateway: {{ instances: 0 }}\n"), "0 }"),
        ("S0420", format!("{GOOD}gateway: {{ instances: 65 }}\n"), "65 }"),
        ("S0420", format!("{GOOD}gateway: {{ retries: {{ on: [timeout, 404] }} }}\n"), "404]"),
        (
            "S0422",
            GOOD.replacen("{ rate: 300 }", "{ replay: no-such-access.log }", 1),
            "no-such-access.log }",
        ),
        ("S0415", GOOD.replacen("{ rate: 300 }", "{ replay: x.log, rate: 5 }", 1), "rate: 5"),
        ("S0421", event("{ at: 90s, action: crash, pool: contacts, endpoint: \"0\" }"), "90s"),
        ("S0415", daily("period: 24m, hours: [1, 2, 3]"), "[1, 2, 3]"),
        ("S0417", daily(&format!("hours: [{}-1]", "1, ".repeat(23))), "-1]"),
        ("S0417", daily(&format!("hours: [{}1e9]", "1, ".repeat(23))), "1e9]"),
        ("S0417", daily(&format!("period: 0s, hours: [{}1]", "1, ".repeat(23))), "0s"),
        ("S0406", daily(&format!("period: 1 day, hours: [{}1]", "1, ".repeat(23))), "1 day"),
        (
            "S0415",
            GOOD.replacen("{ rate: 300 }", "{ clients: 5, daily: { hours: [1] } }", 1),
            "daily",
        ),
        (
            "S0415",
            GOOD.replacen("{ rate: 300 }", "{ replay: x.log, daily: { hours: [1] } }", 1),
            "daily",
        ),
        (
            "S0423",
            event("{ at: 10s, action: crash, pool: busiest }")
                .replace("{ route: get-contact, weight: 5 }", "{ route: get-contact }"),
            "busiest }",
        ),
    ];
    for (code, text, at) in &cases {
        // Where `at` is, counting from 1, on the last line that has it.
        let (line, column) = text
            .lines()
            .enumerate()
            .filter_map(|(n, l)| l.find(at).map(|c| (n + 1, c + 1)))
            .last()
            .unwrap_or_else(|| panic!("{code}: `{at}` is in the case"));
        let found = findings(text);
        assert!(
            found.contains(&(code, line, column)),
            "{code}: expected at {line}:{column} (`{at}`), found {found:?}"
        );
    }
}

/// Regression: absurd sizes once ran silently (a zero-length burst with a
/// huge factor wiped out the run; a billion closed-loop clients hung; a
/// slowdown of 1e308 broke the statistics). Each is now a located finding.
#[test]
fn absurd_sizes_are_findings_not_silent_runs() {
    let cases = [
        (
            "arrivals: { rate: 300 }",
            "arrivals: { rate: 10, bursts: [{ at: 5s, length: 0s, factor: 2 }] }",
            "S0417",
        ),
        (
            "arrivals: { rate: 300 }",
            "arrivals: { rate: 10, bursts: [{ at: 5s, length: 1s, factor: 1e10 }] }",
            "S0417",
        ),
        ("arrivals: { rate: 300 }", "arrivals: { clients: 1000000000, think: 0ms }", "S0410"),
    ];
    for (from, to, code) in cases {
        let codes: Vec<&str> =
            check(&GOOD.replace(from, to)).diagnostics.iter().map(|d| d.code.id).collect();
        assert!(codes.contains(&code), "{to}: {codes:?}");
    }
}

#[test]
fn an_event_in_the_busiest_pool_follows_the_traffic() {
    let events =
        "events:\n  - { at: 10s, action: slow, pool: busiest, endpoint: \"0\", factor: 4 }\n";
    let faults = |text: &str| {
        let checked = check(text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let w = checked.workload.unwrap();
        w.events.iter().map(|f| (f.pool, f.endpoint)).collect::<Vec<_>>()
    };
    // get-contact (weight 5) outweighs get-deal (weight 1), then the other way round.
    assert_eq!(faults(&format!("{GOOD}{events}")), [(0, 0)]);
    let deals =
        GOOD.replace("{ route: get-contact, weight: 5 }", "{ route: get-contact, weight: 0.5 }");
    assert_eq!(faults(&format!("{deals}{events}")), [(1, 0)]);

    // Without a `traffic` mix both routes weigh 1: a tie, which names both pools.
    let default_mix = GOOD
        .replace("traffic:\n  - { route: get-contact, weight: 5 }\n  - { route: get-deal }\n", "");
    let checked = check(&format!("{default_mix}{events}"));
    let found: Vec<_> = checked.diagnostics.iter().filter(|d| d.code.id == "S0423").collect();
    assert_eq!(found.len(), 1, "{:?}", checked.diagnostics);
    assert!(found[0].message.contains("`contacts`, `deals`"), "{}", found[0].message);
    assert!(found[0].help.as_deref().unwrap_or("").contains("pool: contacts"), "{found:?}");
    assert!(checked.workload.is_none());
}

#[test]
fn a_spec_pool_named_busiest_is_that_pool() {
    let spec = SPEC.replace("name: deals", "name: busiest").replace("to: deals", "to: busiest");
    let checked = sluice_compiler::check(SourceFile::new("spec.yaml", spec));
    let plan = checked.plan.expect("the renamed spec is valid");
    // get-contact receives more traffic, but the name wins.
    let text = format!(
        "{}events:\n  - {{ at: 10s, action: crash, pool: busiest }}\n",
        GOOD.replace("  deals: {", "  busiest: {")
    );
    let checked = check_scenario(SourceFile::new("scenario.yaml", text), Some(&plan));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let faults: Vec<usize> = checked.workload.unwrap().events.iter().map(|f| f.pool).collect();
    assert_eq!(faults, [1]);
}

#[test]
fn a_daily_curve_resolves_with_its_period_and_hours() {
    use crate::workload::DailyCurve;
    let hours = (0..24).map(|h| format!("{}", 1 + h % 3)).collect::<Vec<_>>().join(", ");
    let text = GOOD.replacen(
        "{ rate: 300 }",
        &format!("{{ rate: 300, daily: {{ period: 24m, hours: [{hours}] }} }}"),
        1,
    );
    let checked = check(&text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let Some(Arrivals::Open { profile, .. }) = checked.workload.map(|w| w.arrivals) else {
        panic!("open-loop arrivals")
    };
    let want: Vec<f64> = (0..24).map(|h| f64::from(1 + h % 3)).collect();
    assert_eq!(profile.daily, Some(DailyCurve { period: 24 * 60 * SECOND, hours: want }));
    assert_eq!(profile.peak(), 900.0);
    // Without a period, a day lasts a day.
    let text = text.replace("period: 24m, ", "");
    let checked = check(&text);
    let Some(Arrivals::Open { profile, .. }) = checked.workload.map(|w| w.arrivals) else {
        panic!("open-loop arrivals")
    };
    assert_eq!(profile.daily.map(|d| d.period), Some(24 * 3_600 * SECOND));
}

#[test]
fn a_split_route_offers_each_side_its_share_of_the_load() {
    // get-contact goes half to contacts, half to deals. At 300/s, 5/6 of
    // the traffic and 20 ms of work per request, contacts would be offered
    // 5 busy workers unsplit; split, 2.5.
    let spec = SPEC.replace(
        "    to: contacts\n",
        "    to: [{ pool: contacts, weight: 1 }, { pool: deals, weight: 1 }]\n",
    );
    let plan = sluice_compiler::check(SourceFile::new("spec.yaml", spec)).plan.unwrap();
    let overloaded = |workers: u32| {
        let text = GOOD
            .replace("contacts: { workers: 4,", &format!("contacts: {{ workers: {workers},"))
            .replace(
                "deals: { service: { distribution: lognormal, median: 2ms, p99: 30ms } }",
                "deals: { workers: 8, service: { distribution: exponential, mean: 20ms } }",
            );
        let checked = check_scenario(SourceFile::new("scenario.yaml", text), Some(&plan));
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked.diagnostics.iter().any(|d| d.code.id == "S0414")
    };
    // Its two endpoints hold 2 busy workers with 1 worker each; 4 with 2.
    assert!(overloaded(1));
    assert!(!overloaded(2));
}

/// Regression: an event in every pool whose endpoint no pool has was
/// dropped silently. It is an error at the endpoint; a position or address
/// that only some pools have still applies in those and is skipped in the
/// others.
#[test]
fn an_event_in_every_pool_needs_its_endpoint_in_one() {
    let event = |endpoint: &str| {
        format!("{GOOD}events:\n  - {{ at: 10s, action: crash, endpoint: {endpoint} }}\n")
    };
    // contacts has two endpoints, deals one.
    for (endpoint, words) in [
        ("\"5\"", "no pool has an endpoint at position 5; the largest has 2"),
        ("10.0.0.1:80", "no pool has an endpoint `10.0.0.1:80`"),
    ] {
        let text = event(endpoint);
        let checked = check(&text);
        let found: Vec<_> = checked.diagnostics.iter().filter(|d| d.code.id == "S0416").collect();
        assert_eq!(found.len(), 1, "{endpoint}: {:?}", checked.diagnostics);
        assert!(found[0].message.contains(words), "{}", found[0].message);
        let column = text.lines().last().unwrap().find(endpoint).unwrap() + 1;
        let line = text.lines().count();
        assert_eq!(found[0].location.map(|l| (l.line, l.column)), Some((line, column)));
        assert!(checked.workload.is_none());
    }
    for (endpoint, want) in [("\"1\"", [(0, 1)]), ("127.0.0.1:9201", [(1, 0)])] {
        let checked = check(&event(endpoint));
        assert!(!checked.has_errors(), "{endpoint}: {:?}", checked.diagnostics);
        let faults: Vec<_> =
            checked.workload.unwrap().events.iter().map(|f| (f.pool, f.endpoint)).collect();
        assert_eq!(faults, want, "{endpoint}");
    }
}

/// Regression: a number too large for its type stopped the reading of the
/// whole file with serde's words ("invalid value: invalid value: integer
/// `4294967296`, expected u32"), naming no key, and hid every other
/// finding. Each is now a located finding that names the key and the range,
/// and the rest of the file is still checked.
#[test]
fn numbers_out_of_range_are_each_a_finding_in_words() {
    let text = format!(
        "{}gateway: {{ instances: 0, retries: {{ attempts: 4294967296 }}, \
         circuit_breaker: {{ max_pending: 2.0 }} }}\n",
        GOOD.replace("seed: 7", "seed: 18446744073709551616\nbogus: 1")
            .replace("workers: 4", "workers: 4294967296")
            .replace("route: get-deal }", "route: get-dael }")
    );
    let checked = check(&text);
    let found: Vec<(&str, &str, &str)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.code.id, d.pointer.as_str(), d.message.as_str()))
        .collect();
    let want = [
        (
            "S0104",
            "/seed",
            "`seed` must be from 0 to 18446744073709551615, found `18446744073709551616`",
        ),
        ("S0101", "/bogus", "unknown key `bogus` in the document"),
        ("S0401", "/traffic/1/route", "unknown route `get-dael`"),
        (
            "S0104",
            "/pools/contacts/workers",
            "`pools.contacts.workers` must be from 1 to 4294967295, found `4294967296`",
        ),
        ("S0420", "/gateway/instances", "`instances` must be at least 1"),
        (
            "S0104",
            "/gateway/retries/attempts",
            "`gateway.retries.attempts` must be from 1 to 100, found `4294967296`",
        ),
        (
            "S0103",
            "/gateway/circuit_breaker/max_pending",
            "`gateway.circuit_breaker.max_pending` must be written as a whole number, found `2.0`",
        ),
    ];
    for w in &want {
        assert!(found.contains(w), "missing {w:?} in {found:#?}");
    }
    // Only the warning that nothing reaches `deals` any more besides.
    assert_eq!(found.len(), want.len() + 1, "{found:#?}");
    assert!(checked.workload.is_none());

    // A value of the wrong type still stops the reading, but every number
    // out of range is reported with it.
    let text = GOOD.replace("workers: 4", "workers: 4294967296").replace("seed: 7", "seed: x")
        + "gateway: { instances: 0 }\n";
    let found: Vec<String> = check(&text).diagnostics.iter().map(|d| d.one_line()).collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("`seed` must be a whole number, found `x`"), "{found:#?}");
    assert!(found[1].contains("`pools.contacts.workers` must be from 1 to"), "{found:#?}");
    assert!(found[2].contains("`gateway.instances` must be from 1 to 64, found `0`"), "{found:#?}");
}

/// Regression: weights whose sum is too large for a number, or one too
/// small to change the sum before it, left a share with no requests,
/// silently. Each is an error at the weight.
#[test]
fn traffic_weights_must_all_count_in_their_sum() {
    let mix = |a: &str, b: &str| {
        GOOD.replace(
            "{ route: get-contact, weight: 5 }",
            &format!("{{ route: get-contact, weight: {a} }}"),
        )
        .replace("{ route: get-deal }", &format!("{{ route: get-deal, weight: {b} }}"))
    };
    for (a, b, words) in [
        ("1e308", "1e308", "add up to more than the largest number there is (about 1.8e308) at this weight of 1e308"),
        ("1e20", "1", "traffic weight 1 is lost beside the 1e20 of the weights before it"),
    ] {
        let text = mix(a, b);
        let checked = check(&text);
        let found: Vec<_> = checked.diagnostics.iter().filter(|d| d.code.id == "S0405").collect();
        assert_eq!(found.len(), 1, "{a}, {b}: {:?}", checked.diagnostics);
        assert!(found[0].message.contains(words), "{}", found[0].message);
        assert_eq!(found[0].pointer, "/traffic/1/weight");
        assert!(checked.workload.is_none());
    }
    // Far apart, but each still counts.
    let checked = check(&mix("1e15", "1"));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
}

/// Regression: with `requests`, an event after the last arrival went
/// unreported (S0421 looked at `duration` only). An open loop's end is
/// estimated from its rate, and only an event beyond any likely spread of
/// the arrivals is reported; a closed loop's end is not foretold.
#[test]
fn a_late_event_is_found_in_a_run_of_so_many_requests() {
    // 1,000 measured requests at 300/s after a 5 s warm-up: about 8.33 s.
    let run = |arrivals: &str, at: &str| {
        let text = format!(
            "{}events:\n  - {{ at: {at}, action: crash, pool: contacts, endpoint: \"0\" }}\n",
            GOOD.replace("duration: 60s", "requests: 1000").replace("{ rate: 300 }", arrivals)
        );
        let checked = check(&text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let late: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.code.id == "S0421")
            .map(|d| d.message.clone())
            .collect();
        late
    };
    let late = run("{ rate: 300 }", "20s");
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(late[0].contains("1000 measured requests have all arrived by about 8.33"), "{late:?}");
    assert_eq!(run("{ rate: 300, pattern: constant }", "10s").len(), 1);
    // Before the end, or within the spread of Poisson arrivals: no finding.
    assert_eq!(run("{ rate: 300 }", "8s"), Vec::<String>::new());
    assert_eq!(run("{ rate: 300 }", "8500ms"), Vec::<String>::new());
    // A rate that changes: 300/s, then 30/s from 6 s on, so the last of
    // the requests arrives near 6 s + 700 / 30 = 29.3 s.
    let slower = "{ rate: 300, changes: [{ at: 6s, rate: 30 }] }";
    assert_eq!(run(slower, "20s"), Vec::<String>::new());
    assert!(run(slower, "40s")[0].contains("by about 29.3"), "{:?}", run(slower, "40s"));
    // A closed loop's pace depends on its latencies.
    assert_eq!(run("{ clients: 10 }", "1000s"), Vec::<String>::new());
}

/// Regression: the run-size limit (S0410) looked at one variant only, and
/// not at all at a closed loop with a duration, so 64 variants of 60
/// million requests, or a million clients that never think, started runs
/// that would not end.
#[test]
fn the_run_size_limit_counts_every_variant_and_closed_loops() {
    let size = |text: &str| -> Vec<String> {
        let checked = check(text);
        let found = checked.diagnostics.iter().filter(|d| d.code.id == "S0410");
        found.map(|d| format!("{} @{}", d.message, d.pointer)).collect()
    };
    // 30 million requests in 100 s, for each of three balancers and two
    // attempts: 180 million in all.
    let big = GOOD.replace("duration: 60s", "duration: 100s").replace("rate: 300", "rate: 300000");
    let found = size(&format!("{big}grid: {{ attempts: [1, 2] }}\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("for each of its 6 variants, 180000000 in all"), "{found:?}");
    assert!(found[0].ends_with("@/duration"), "{found:?}");
    assert_eq!(
        size(&big.replace("balancers: [spec, random, least_request]", "")),
        Vec::<String>::new()
    );

    // A closed loop of clients without think time: the pools' workers bound
    // it (some 480 requests per second here, far below the limit over
    // 100 s), or with endless workers, the clients: a million of them, at
    // one request per mean service time each (20 ms, or for a sixth of the
    // traffic about 3.9 ms; 17.3 ms on average), some 58 million per second.
    let closed = |clients: &str, workers: &str| {
        GOOD.replace("{ rate: 300 }", &format!("{{ clients: {clients} }}"))
            .replace("duration: 60s", "duration: 100s")
            .replace("workers: 4", &format!("workers: {workers}"))
            .replace("deals: {", &format!("deals: {{ workers: {workers},"))
            .replace("balancers: [spec, random, least_request]\n", "")
    };
    assert_eq!(size(&closed("1000000", "4")), Vec::<String>::new());
    let found = size(&closed("1000000", "4294967295"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("the run could simulate up to about 577"), "{found:?}");
    assert!(found[0].contains("1000000 clients at their best-case throughput"), "{found:?}");
}

/// Regression: empty lists were ignored silently, and a value listed twice
/// in a grid list was dropped silently. Each is a warning where it is.
#[test]
fn empty_lists_and_repeated_grid_values_are_warnings() {
    let text = GOOD
        .replace("balancers: [spec, random, least_request]", "balancers: []")
        .replace(
            "traffic:\n  - { route: get-contact, weight: 5 }\n  - { route: get-deal }\n",
            "traffic: []\n",
        )
        + "grid: { attempts: [1, 3, 1], max_pending: [], timeout: [1s, 1000ms], retry_on: [[timeout, 503], [503, timeout]] }\n";
    let checked = check(&text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let found: Vec<(&str, &str, &str)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.code.id, d.pointer.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("S0430", "/traffic", "`traffic: []` lists no share, so every route of the spec gets weight 1, as when `traffic` is left out"),
            ("S0430", "/balancers", "`balancers: []` lists no balancer, so only `spec` runs, as when `balancers` is left out"),
            ("S0411", "/grid/attempts/2", "`1` is listed more than once in `grid.attempts`"),
            ("S0430", "/grid/max_pending", "`grid.max_pending: []` lists no value, so it compares nothing"),
            ("S0411", "/grid/timeout/1", "`1000ms` in `grid.timeout` is the same as `1s` listed before it"),
            ("S0411", "/grid/retry_on/1", "`[503, timeout]` in `grid.retry_on` is the same as `[timeout, 503]` listed before it"),
        ]
    );
    // Each distinct combination runs once: 2 attempts x 1 timeout x 1 list.
    assert_eq!(checked.workload.unwrap().variants.len(), 2);
    let checked = check(&format!("{GOOD}grid: {{}}\n"));
    let found: Vec<_> =
        checked.diagnostics.iter().map(|d| (d.code.id, d.pointer.as_str())).collect();
    assert_eq!(found, [("S0430", "/grid")]);
}
