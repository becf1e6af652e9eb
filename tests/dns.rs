//! Endpoints named by DNS, end to end: `localhost` only, so every lookup
//! and every connection stays on the loopback.

mod support;

use std::process::Command;
use std::time::Duration;

use support::node::{get, Node};
use support::{eventually_async, temp_dir, Gateway};

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

/// Whether this machine lets the test run a process in a mount namespace
/// of its own with a file mounted over another (root, and `unshare`).
fn can_mount_privately(dir: &std::path::Path) -> bool {
    let (a, b) = (dir.join("probe-a"), dir.join("probe-b"));
    std::fs::write(&a, "a").is_ok()
        && std::fs::write(&b, "b").is_ok()
        && Command::new("unshare")
            .args(["--mount", "sh", "-c", "mount --bind \"$0\" \"$1\" && grep -q a \"$1\""])
            .args([&a, &b])
            .status()
            .is_ok_and(|status| status.success())
}

/// The gateway runs in a mount namespace of its own, where `/etc/hosts` and
/// `/etc/nsswitch.conf` are the test's files: the test adds and removes the
/// name while the gateway runs, and lookups read only the hosts file, so no
/// DNS server is ever asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_followed_as_its_address_changes_and_kept_when_a_lookup_fails() {
    let dir = temp_dir();
    if !can_mount_privately(&dir) {
        eprintln!("skipped: cannot mount files in a private mount namespace here (needs root and unshare)");
        return;
    }
    let (hosts, nsswitch) = (dir.join("hosts"), dir.join("nsswitch.conf"));
    let without = "127.0.0.1 localhost\n";
    let with = "127.0.0.1 localhost\n127.0.0.1 orders.test\n";
    std::fs::write(&hosts, without).unwrap();
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();

    let node = Node::start().await;
    let endpoint = format!("orders.test:{}", node.address.port());
    let mounts = "mount --bind \"$1\" /etc/hosts && mount --bind \"$2\" /etc/nsswitch.conf \
                  && shift 2 && exec \"$@\"";
    let (hosts_arg, nsswitch_arg) = (hosts.to_str().unwrap(), nsswitch.to_str().unwrap());
    let wrapper = ["unshare", "--mount", "sh", "-c", mounts, "sh", hosts_arg, nsswitch_arg];
    let spec = spec(&endpoint, "    resolve_interval: 100ms\n");
    let gateway = Gateway::start_under(&wrapper, &spec, &["--access-log", "stdout"]);
    let address = gateway.addr("public");

    // Not in the hosts file: the pool has no endpoint.
    assert_eq!(get(address, "/before").await, 503);
    assert_eq!(node.requests(), 0);

    // Added (the file is rewritten in place, so the mount sees it): the
    // next lookup finds it, and requests reach the node.
    std::fs::write(&hosts, with).unwrap();
    let used = || async move { get(address, "/added").await == 200 };
    let used = eventually_async(Duration::from_secs(3), used).await;
    assert!(used, "the new address was never used");
    assert_eq!(gateway.count_stderr("endpoint name resolved to new addresses"), 1);

    // Removed: lookups fail, and the last good address keeps serving.
    let failures = gateway.count_stderr("endpoint name lookup failed");
    std::fs::write(&hosts, without).unwrap();
    gateway.wait_stderr("endpoint name lookup failed", failures + 2, Duration::from_secs(3));
    for i in 0..10 {
        assert_eq!(get(address, &format!("/kept/{i}")).await, 200);
    }
    let log = gateway.stderr().join("\n");
    assert!(log.contains("kept=1"), "the failed lookup says what it kept:\n{log}");
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
