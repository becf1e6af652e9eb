//! Endpoints named by DNS, end to end: `localhost` only, so every lookup
//! and every connection stays on the loopback.

mod support;

use std::process::Command;
use std::time::Duration;

use support::node::{get, Node};
use support::{temp_dir, Gateway};

fn spec(endpoint: &str, pool_extra: &str) -> String {
    format!(
        "version: 1
listeners:
  - {{ name: public, bind: \"127.0.0.1:0\" }}
pools:
  - name: p
    endpoints:
      - address: \"{endpoint}\"
{pool_extra}routes:
  - name: all
    match: {{ path: \"/{{*rest}}\" }}
    to: p
"
    )
}

/// `localhost` may resolve to ::1 as well as 127.0.0.1; the node listens on
/// 127.0.0.1 only, and a refused ::1 is a connect failure that the gateway
/// always retries on the pool's other address, so every request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_endpoint_is_resolved_and_looked_up_again() {
    let node = Node::start().await;
    let endpoint = format!("localhost:{}", node.address.port());
    let gateway = Gateway::start(&spec(&endpoint, "    resolve_interval: 100ms\n"));
    let address = gateway.addr("public");

    for i in 0..20 {
        assert_eq!(get(address, &format!("/{i}")).await, 200);
    }
    assert_eq!(node.requests(), 20);
    let log = gateway.stderr().join("\n");
    assert!(log.contains("endpoint name resolved"), "the first lookup is logged:\n{log}");
    assert!(log.contains("127.0.0.1"), "{log}");

    // Lookups every 100 ms that find the same addresses change nothing and
    // log nothing more.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(gateway.count_stderr("endpoint name resolved"), 1);
    assert_eq!(gateway.count_stderr("plan reloaded"), 0);
    for i in 0..10 {
        assert_eq!(get(address, &format!("/again/{i}")).await, 200);
    }
}

#[test]
fn check_rejects_malformed_names_and_ports() {
    let pool =
        "      - address: \"orders..internal:80\"\n      - address: \"orders.internal\"\n      \
        - address: \"orders.internal:0\"\n      - address: \"orders.internal:http\"\n";
    let path = temp_dir().join("spec.yaml");
    std::fs::write(
        &path,
        spec("orders.internal:8080", "")
            .replace("      - address: \"orders.internal:8080\"\n", pool),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .expect("run sluice check");
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.matches("S0205").count(), 4, "{text}");
    for reason in ["neither an IP address nor a DNS name", "no port", "port 0", "not a number"] {
        assert!(text.contains(reason), "{reason}: {text}");
    }
}

#[test]
fn a_well_formed_name_passes_check_without_being_looked_up() {
    let path = temp_dir().join("spec.yaml");
    std::fs::write(&path, spec("orders.internal:8080", "    resolve_interval: 10s\n")).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check")
        .arg(&path)
        .status()
        .expect("run sluice check");
    assert_eq!(status.code(), Some(0));
}
