//! End-to-end tests of `sluice demo`: stubs, gateway and sample traffic in one process.

mod support;

use std::process::Command;

/// A loopback address on a port that was free a moment ago.
fn free_address() -> String {
    support::free_port().to_string()
}

#[test]
fn demo_sends_sample_traffic_through_the_gateway_to_stub_upstreams() {
    let dir = support::temp_dir();
    let spec = dir.join("demo.yaml");
    let [listener, a, b, c] = [free_address(), free_address(), free_address(), free_address()];
    std::fs::write(
        &spec,
        format!(
            "version: 1
listeners:
  - {{ name: public, bind: \"{listener}\" }}
pools:
  - name: contacts
    balance: round_robin
    endpoints: [{{ address: \"{a}\" }}, {{ address: \"{b}\" }}]
  - name: search
    endpoints: [{{ address: \"{c}\" }}]
routes:
  - {{ name: get-contact, match: {{ host: api.example.test, path: \"/v1/contacts/{{id}}\", methods: [GET] }}, to: contacts }}
  - {{ name: create-contact, match: {{ host: api.example.test, path: /v1/contacts, methods: [POST] }}, to: contacts }}
  - {{ name: search, match: {{ path: \"/search/{{*q}}\" }}, to: search }}
"
        ),
    )
    .unwrap();

    let output =
        Command::new(env!("CARGO_BIN_EXE_sluice")).arg("demo").arg(&spec).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Two samples per route for two-endpoint pools, and at least two per route.
    assert!(stdout.contains("All 6 sample requests were answered"), "{stdout}");
    for expected in [
        "GET api.example.test/v1/contacts/1",
        "POST api.example.test/v1/contacts",
        "get-contact",
        "create-contact",
        &format!("contacts at {a}"),
        &format!("contacts at {b}"),
        &format!("search at {c}"),
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // Round robin over two endpoints: each got two of the four contacts requests.
    let row = |endpoint: &str| {
        stdout.lines().find(|l| l.contains(endpoint) && l.contains('#')).unwrap_or("").to_owned()
    };
    assert!(row(&a).ends_with(" 2 ##"), "{}", row(&a));
    assert!(row(&b).ends_with(" 2 ##"), "{}", row(&b));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_refuses_a_spec_whose_endpoints_are_not_local() {
    let dir = support::temp_dir();
    let spec = dir.join("remote.yaml");
    std::fs::write(
        &spec,
        "version: 1
listeners: [{ name: public, bind: \"127.0.0.1:0\" }]
pools: [{ name: remote, endpoints: [{ address: \"192.0.2.10:80\" }] }]
routes: [{ name: all, match: { path: \"/{*rest}\" }, to: remote }]
",
    )
    .unwrap();

    let output =
        Command::new(env!("CARGO_BIN_EXE_sluice")).arg("demo").arg(&spec).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("192.0.2.10:80") && stderr.contains("127.0.0.1"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
