//! Replaying an access log through the library: the logged clients'
//! addresses reach the keys the gateway's policies read.

use std::fmt::Write as _;
use std::path::PathBuf;

use sluice_simulator::{simulate, Topology};

mod common;

/// One route to eight endpoints hashed on the client's address.
fn hashed() -> sluice_compiler::Plan {
    common::plan(&common::spec(8, "    balance: consistent_hash\n    hash_on: client_address\n"))
}

const SCENARIO: &str = "\
version: 1
arrivals: { replay: access.log }
pools:
  app: { workers: 4, service: { distribution: constant, value: 1ms } }
";

/// An access log of three clients sending 100, 300 and 900 requests, a
/// millisecond apart and interleaved, each request from another port.
fn log(addresses: [&str; 3], ports: u32) -> String {
    let counts = [100, 300, 900];
    let mut sent = [0; 3];
    let mut text = String::new();
    let mut ms = 0;
    while sent != counts {
        for c in 0..3 {
            if sent[c] < counts[c] {
                sent[c] += 1;
                ms += 1;
                let (s, f) = (ms / 1_000, ms % 1_000);
                let client = format!("{}:{}", addresses[c], ports + ms);
                let _ = writeln!(
                    text,
                    r#"{{"time":"2026-01-01T00:00:{s:02}.{f:03}Z","client":"{client}","route":"all","status":200}}"#
                );
            }
        }
    }
    text
}

/// Requests served per endpoint when replaying `log` on [`hashed`].
fn served(name: &str, log: &str) -> Vec<u64> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("access.log"), log).unwrap();
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, SCENARIO).unwrap();
    let plan = hashed();
    let workload = common::workload(&plan, path.to_str().unwrap(), SCENARIO);
    let report = simulate(&Topology::from_plan(&plan), &workload, 1);
    let v = &report.variants[0];
    assert_eq!(v.requests, 1_300);
    v.endpoints.iter().map(|e| e.requests).collect()
}

#[test]
fn a_pool_hashing_on_the_client_address_keeps_each_logged_client_on_one_endpoint() {
    let addresses = ["10.1.0.7", "192.0.2.44", "[2001:db8::5]"];
    let counts = served("three", &log(addresses, 20_000));
    // Each client's requests all went to one endpoint: the endpoints' counts
    // are the clients' counts, or sums of them where two share one.
    let mut busy: Vec<u64> = counts.iter().copied().filter(|&n| n > 0).collect();
    busy.sort_unstable();
    let whole =
        [vec![100, 300, 900], vec![300, 1_000], vec![100, 1_200], vec![400, 900], vec![1_300]];
    assert!(whole.contains(&busy), "clients split over endpoints: {counts:?}");

    // The address decides, not the port: new ports, the same endpoints.
    assert_eq!(served("new ports", &log(addresses, 40_000)), counts);
    // And other addresses land elsewhere (the ring is the same).
    let others = served("others", &log(["10.9.0.1", "10.9.0.2", "10.9.0.3"], 20_000));
    let mut spread: Vec<u64> = others.iter().copied().filter(|&n| n > 0).collect();
    spread.sort_unstable();
    assert!(whole.contains(&spread), "{others:?}");
    assert_ne!(others, counts, "three other addresses took the same endpoints");
}

/// With `requests`, a replay ends at its last measured arrival, known from
/// the log: an event after it is reported (S0421), one before it is not.
#[test]
fn an_event_after_the_last_replayed_request_is_late() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("replay").join("late");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("access.log"), log(["10.0.0.1", "10.0.0.2", "10.0.0.3"], 1000))
        .unwrap();
    let path = dir.join("scenario.yaml");
    let plan = hashed();
    let late = |at: &str| {
        // Requests arrive a millisecond apart: the 100 after a 200 ms
        // warm-up end with the one at 299 ms.
        let text = format!(
            "{SCENARIO}warmup: 200ms\nrequests: 100\nevents:\n  - {{ at: {at}, action: crash }}\n"
        );
        let checked = sluice_simulator::check_scenario(
            sluice_compiler::document::SourceFile::new(path.to_str().unwrap(), text),
            Some(&plan),
        );
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let found: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.code.id == "S0421")
            .map(|d| d.message.clone())
            .collect();
        found
    };
    assert_eq!(late("290ms"), Vec::<String>::new());
    let found = late("300ms");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("arrives at 299.00ms"), "{found:?}");
}
