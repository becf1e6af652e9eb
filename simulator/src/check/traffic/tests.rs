//! Traffic templates, the warnings about keys, and the overload warning at
//! the peak of the arrival rate.

use super::super::tests::{check, findings, plan, GOOD, SPEC};
use super::*;
use crate::check::check_scenario;
use crate::workload::FaultKind;
use sluice_compiler::document::SourceFile;

/// GOOD with its traffic replaced by `traffic` (YAML list items).
fn with_traffic(traffic: &str) -> String {
    let start = GOOD.find("traffic:\n").unwrap();
    let end = GOOD.find("pools:\n").unwrap();
    format!("{}traffic:\n{traffic}{}", &GOOD[..start], &GOOD[end..])
}

/// The spec with `contacts` hashing on header `x-user`.
fn hashing_plan() -> sluice_compiler::Plan {
    let spec = SPEC.replace(
        "  - name: contacts\n",
        "  - name: contacts\n    balance: consistent_hash\n    hash_on: { header: x-user }\n",
    );
    let checked = sluice_compiler::check(SourceFile::new("spec.yaml", spec));
    checked.plan.expect("the hashing spec is valid")
}

#[test]
fn a_path_template_routes_and_places_its_parameters() {
    let text = with_traffic(
        "  - path: /v1/contacts/c-{n}\n    params: { n: { zipf: { keys: 100, exponent: 1.1 } } }\n    headers: { X-Tenant: acme }\n  - { route: get-deal }\n",
    );
    let checked = check(&text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let w = checked.workload.unwrap();
    assert_eq!(w.traffic[0].route, 0, "routed to get-contact");
    let t = w.traffic[0].template.as_deref().unwrap();
    let id = vec![Piece::Literal("c-".into()), Piece::Value(1)];
    assert_eq!(t.params, [("id".to_owned(), id)]);
    assert_eq!(t.headers, [("x-tenant".to_owned(), 0)]);
    assert!(matches!(&t.values[1], Value::Keys(k) if k.law.keys() == 100));
    assert_eq!(w.traffic[1].template, None);
}

#[test]
fn a_bad_template_is_a_located_finding() {
    // (code, the share, the text the finding points at)
    let zipf = "{ zipf: { keys: 10, exponent: 1 } }";
    let cases: Vec<(&str, String, &str)> = vec![
        ("S0401", "  - { route: get-contacts }\n".into(), "get-contacts }"),
        ("S0425", "  - { path: /v2/contacts/1 }\n".into(), "/v2/contacts/1 }"),
        ("S0425", "  - { path: /v1/contacts/1, method: POST }\n".into(), "/v1/contacts/1,"),
        ("S0424", "  - { route: get-deal, path: /v1/deals/1 }\n".into(), "path:"),
        ("S0424", "  - { weight: 2 }\n".into(), "{ weight"),
        ("S0424", "  - { route: get-deal, params: { deal: 1 } }\n".into(), "deal: 1"),
        ("S0424", "  - { route: get-deal, method: GET }\n".into(), "method"),
        ("S0424", format!("  - {{ path: '/v1/deals/{{d}}', params: {{ e: {zipf} }} }}\n"), "'/v1"),
        ("S0424", format!("  - {{ path: /v1/deals/1, params: {{ e: {zipf} }} }}\n"), "e: {"),
        ("S0424", "  - { path: v1/deals/1 }\n".into(), "v1/deals/1 }"),
        ("S0424", "  - { path: /v1//deals/1 }\n".into(), "/v1//deals/1 }"),
        ("S0424", "  - { path: /v1/deals/1, method: 'G T' }\n".into(), "'G T'"),
        ("S0424", "  - { route: get-deal, client: nobody }\n".into(), "nobody }"),
        ("S0424", "  - { route: get-deal, client: 5 }\n".into(), "5 }"),
        ("S0424", "  - { route: get-deal, cookies: { 'a b': x } }\n".into(), "'a b'"),
        ("S0424", "  - { route: get-deal, cookies: { s: 'a;b' } }\n".into(), "'a;b'"),
        ("S0424", "  - { route: get-deal, params: { id: 'a/b' } }\n".into(), "'a/b'"),
        (
            "S0424",
            "  - { route: get-deal, client: { uniform: { keys: 3 }, prefix: u } }\n".into(),
            "prefix",
        ),
        ("S0426", "  - { route: get-deal, headers: { k: { prefix: u } } }\n".into(), "{ prefix"),
        (
            "S0426",
            "  - { route: get-deal, headers: { k: { uniform: { keys: 0 } } } }\n".into(),
            "0 }",
        ),
        (
            "S0426",
            "  - { route: get-deal, headers: { k: { uniform: { keys: 2000000 } } } }\n".into(),
            "2000000",
        ),
        (
            "S0426",
            "  - { route: get-deal, headers: { k: { zipf: { keys: 5, exponent: 0 } } } }\n".into(),
            "0 }",
        ),
        (
            "S0426",
            "  - { route: get-deal, query: { k: { uniform: { keys: 2 }, zipf: { keys: 5, exponent: 1 } } } }\n"
                .into(),
            "uniform",
        ),
    ];
    for (code, share, at) in &cases {
        let text = with_traffic(&format!("  - {{ route: get-deal }}\n{share}"));
        let line = text.lines().position(|l| l.contains(share.trim_end())).unwrap() + 1;
        let column = text.lines().nth(line - 1).unwrap().find(at).unwrap() + 1;
        let found = findings(&text);
        assert!(
            found.contains(&(code, line, column)),
            "{code} for {share:?}: expected at {line}:{column} (`{at}`), found {found:?}"
        );
        assert!(check(&text).has_errors(), "{share:?} is an error");
    }
}

#[test]
fn keys_no_policy_reads_and_keys_a_pool_misses_are_warnings() {
    let plan = hashing_plan();
    let run = |traffic: &str| {
        let text = with_traffic(traffic);
        let checked = check_scenario(SourceFile::new("scenario.yaml", text.clone()), Some(&plan));
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let found: Vec<(&str, usize, usize, String)> = (checked.diagnostics.iter())
            .filter(|d| d.code.id == "S0427" || d.code.id == "S0428")
            .map(|d| {
                let l = d.location.unwrap();
                (d.code.id, l.line, l.column, d.message.clone())
            })
            .collect();
        (text, found)
    };

    // The key the pool hashes on: no warning.
    let (_, found) =
        run("  - { route: get-contact, headers: { X-User: { uniform: { keys: 9 } } } }\n");
    assert_eq!(found, []);

    // A drawn cookie that nothing reads, and the pool's key missing.
    let (text, found) =
        run("  - { route: get-contact, cookies: { s: { uniform: { keys: 9 } } } }\n");
    let line = text.lines().position(|l| l.contains("cookies")).unwrap() + 1;
    let codes: Vec<_> = found.iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(codes, [("S0428", line), ("S0427", line)], "{found:?}");
    assert!(found[0].3.contains("pool `contacts` hashes on header `x-user`"), "{found:?}");
    assert!(found[1].3.contains("cookie `s`"), "{found:?}");

    // A pool that does not hash: a drawn key is unused, a fixed one is not.
    let (_, found) =
        run("  - { route: get-deal, headers: { a: { uniform: { keys: 9 } }, b: x } }\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].3.contains("header `a`") && found[0].3.contains("none hashes"), "{found:?}");
}

#[test]
fn the_overload_warning_looks_at_the_peak_of_the_rate() {
    // At 300/s, contacts (5/6 of the traffic, 20 ms each, 2 endpoints of 4
    // workers) is at 62% of its capacity: no warning. Each way of raising
    // the peak past 100% warns, naming the peak rate.
    let hours = |peak: f64| {
        let mut h = vec!["1".to_owned(); 24];
        h[18] = peak.to_string();
        h.join(", ")
    };
    let cases = [
        ("{ rate: 300 }".to_owned(), None),
        // (A day of a minute, its peak at 45 s, within the run.)
        (format!("{{ rate: 300, daily: {{ period: 1m, hours: [{}] }} }}", hours(1.5)), None),
        (format!("{{ rate: 300, daily: {{ period: 1m, hours: [{}] }} }}", hours(2.0)), Some(600)),
        // A day of an hour peaks after the run's 60 s.
        (format!("{{ rate: 300, daily: {{ period: 1h, hours: [{}] }} }}", hours(2.0)), None),
        ("{ rate: 300, changes: [{ at: 30s, rate: 500 }] }".to_owned(), Some(500)),
        ("{ rate: 300, bursts: [{ at: 30s, length: 5s, factor: 2 }] }".to_owned(), Some(600)),
        // A burst after arrivals stop changes nothing.
        ("{ rate: 300, bursts: [{ at: 70s, length: 5s, factor: 2 }] }".to_owned(), None),
    ];
    for (arrivals, peak) in cases {
        let text = GOOD.replacen("{ rate: 300 }", &arrivals, 1);
        let checked = check(&text);
        let warned: Vec<_> = checked.diagnostics.iter().filter(|d| d.code.id == "S0414").collect();
        match peak {
            None => assert!(warned.is_empty(), "{arrivals}: {warned:?}"),
            Some(rate) => {
                assert_eq!(warned.len(), 1, "{arrivals}: {:?}", checked.diagnostics);
                let want = format!("peak arrival rate of {rate}/s");
                assert!(warned[0].message.contains(&want), "{arrivals}: {}", warned[0].message);
            }
        }
    }
}

#[test]
fn stop_accepting_is_an_event_that_takes_no_other_fields() {
    let event = |e: &str| format!("{GOOD}events:\n  - {e}\n");
    let text = event("{ at: 10s, action: stop_accepting, pool: contacts, endpoint: \"1\" }");
    let checked = check(&text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let events = checked.workload.unwrap().events;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].pool, events[0].endpoint), (0, 1));
    assert_eq!(events[0].kind, FaultKind::StopAccepting);

    let text = event("{ at: 10s, action: stop_accepting, pool: contacts, factor: 2 }");
    let line = text.lines().count();
    let column = text.lines().last().unwrap().find("factor").unwrap() + 1;
    assert!(findings(&text).contains(&("S0419", line, column)), "{:?}", findings(&text));
    let _ = plan;
}
