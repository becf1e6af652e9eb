//! `sluice serve --workers N` above one: each worker is a thread with its
//! own single-threaded runtime, connections are handed to them in turn,
//! and idle upstream connections go back to the worker that opened them
//! but are lent to another rather than opening a new one.

mod support;

use hyper::StatusCode;

use support::{client, request, send, spec_with, Answer, Gateway, ScriptedUpstream};

/// The names of the gateway process's threads.
#[cfg(target_os = "linux")]
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_is_a_thread_of_its_own() {
    let upstream = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let spec = spec_with("", &[upstream.address], "", "");
    let gateway = Gateway::start_with(&spec, &["--workers", "3", "--access-log", "off"]);
    let mut workers: Vec<String> = thread_names(gateway.pid())
        .into_iter()
        .filter(|name| name.starts_with("sluice-worker"))
        .collect();
    workers.sort();
    assert_eq!(workers, ["sluice-worker-0", "sluice-worker-1", "sluice-worker-2"]);
    let reply = send(&client(), request("GET", gateway.addr("public"), "x.test", "/x")).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "/x"));
}

/// Clients on many connections, so on every worker: each request gets its
/// own answer, and the second round reuses the first round's upstream
/// connections, whichever worker opened them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_upstream_pools() {
    let a = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let b = ScriptedUpstream::start(None, |r| Answer::ok(r.target())).await;
    let spec = spec_with("", &[a.address, b.address], "", "");
    let gateway = Gateway::start_with(&spec, &["--workers", "3", "--access-log", "off"]);
    let address = gateway.addr("public");

    for round in 0..3 {
        let tasks: Vec<_> = (0..120)
            .map(|i| {
                tokio::spawn(async move {
                    // A client of its own: a connection of its own.
                    let path = format!("/r{round}/{i}");
                    let reply = send(&client(), request("GET", address, "x.test", &path)).await;
                    (path, reply)
                })
            })
            .collect();
        for task in tasks {
            let (path, reply) = task.await.unwrap();
            assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, path.as_str()));
        }
    }
    assert_eq!(a.requests().len() + b.requests().len(), 360);
    let opened = a.connections() + b.connections();
    assert!(opened <= 120 + 10, "later rounds reuse the first round's connections: {opened}");

    // One client at a time, each on a new connection and so on the next
    // worker: a single upstream connection serves them all.
    let before = a.connections() + b.connections();
    for i in 0..12 {
        let reply = send(&client(), request("GET", address, "x.test", &format!("/one/{i}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(
        a.connections() + b.connections(),
        before,
        "idle connections are lent between workers"
    );
}

#[test]
fn a_worker_count_out_of_range_is_refused_before_anything_starts() {
    // A mistyped count would otherwise spawn threads until the process
    // runs out of descriptors.
    for count in ["0", "1025", "99999999999", "-1", "two"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            // A spec that does not exist: a count that got through would
            // end in "cannot run" (exit 3), never in a gateway left serving.
            .args(["serve", "--workers", count, "no-such-spec.yaml"])
            .output()
            .expect("sluice runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--workers {count}: {stderr}");
        assert!(stderr.contains(count), "--workers {count}: {stderr}");
    }
}
