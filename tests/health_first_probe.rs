//! An endpoint's first health probe goes out promptly when its checker
//! starts (at start, or when a reload adds the endpoint), not somewhere in
//! the first interval, and decides its state alone: an endpoint that is
//! dead from the start is out of rotation after one probe, whatever the
//! interval and thresholds. An endpoint whose state a reload carries over
//! keeps its schedule.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{Gateway, Upstream};

/// A check with a long interval and the default thresholds (three
/// failures to take an endpoint out).
const CHECK: &str = "    health_check: { path: /health, interval: 10s, timeout: 500ms }\n";

/// Wait, for at most `limit`, until the gateway has logged that the
/// endpoint at `address` turned unhealthy.
fn wait_unhealthy(gateway: &Gateway, address: SocketAddr, limit: Duration) {
    let line = format!("endpoint={address} from=\"healthy\" to=\"unhealthy\"");
    gateway.wait_log_within(&line, 1, limit);
}

/// Probes of `/health` that `upstream` has had.
fn probes(upstream: &Upstream) -> usize {
    upstream.seen().iter().filter(|seen| seen.target == "/health").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_dead_at_start_is_found_out_by_its_first_probe() {
    let good = Upstream::start("good").await;
    let dead = support::closed_port();
    let spec = support::spec_with("", &[good.address, dead], CHECK, "");
    let gateway = Gateway::start_with(&spec, &["--access-log", "off"]);

    // Well within the 10 s interval, after one probe of three needed later.
    wait_unhealthy(&gateway, dead, Duration::from_secs(4));
    good.wait_for(1).await;
    let stderr = gateway.stderr().join("\n");
    assert!(!stderr.contains(&format!("endpoint={}", good.address)), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_a_reload_adds_is_probed_at_once_and_the_kept_one_keeps_its_schedule() {
    let good = Upstream::start("good").await;
    let dead = support::closed_port();
    let gateway = Gateway::start_with(
        &support::spec_with("", &[good.address], CHECK, ""),
        &["--access-log", "off"],
    );
    // The kept endpoint's first probe, early in its first interval.
    good.wait_for(1).await;

    let added = support::spec_with("", &[good.address, dead], CHECK, "");
    std::fs::write(gateway.spec_path(), added).unwrap();
    gateway.hangup();
    gateway.wait_log("plan reloaded", 1);
    wait_unhealthy(&gateway, dead, Duration::from_secs(4));

    // The kept endpoint's next probe is due an interval after its first:
    // the reload did not probe it again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(probes(&good), 1, "{:?}", good.seen());
}
