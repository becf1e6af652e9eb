//! Instructions the gateway spends per proxied request, counted by
//! `valgrind --tool=callgrind`, which gives the same count for the same
//! binary and traffic however busy the machine is (timings do not).
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example proxy_count -- [REQUESTS] [CONNECTIONS]
//! ```
//!
//! It starts a small upstream in this process on 127.0.0.1, then runs
//! `target/release/sluice serve --workers 1` (or the binary `SLUICE` names,
//! to compare builds) under callgrind twice: once
//! sending nothing, once sending REQUESTS (default 10,000) GET requests over
//! CONNECTIONS (default 16) keep-alive connections. The difference between
//! the two runs' totals, divided by REQUESTS, is the cost of a request with
//! startup and shutdown left out. The kernel's share (the socket calls) is
//! not counted. `PROXY_COUNT_OUT=FILE` keeps the loaded run's profile, to
//! read with `callgrind_annotate`. `PROXY_COUNT_CACHE=1` also simulates
//! the data caches, a 2 MiB second level standing for the core's own last
//! one, and prints the misses per request: they tell how the working set
//! grows with CONNECTIONS, where hardware counters cannot be read.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

const BINARY: &str = "target/release/sluice";

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let requests: usize =
        args.next().map_or(Ok(10_000), |a| a.parse()).map_err(|e| format!("REQUESTS: {e}"))?;
    let connections: usize =
        args.next().map_or(Ok(16), |a| a.parse()).map_err(|e| format!("CONNECTIONS: {e}"))?;
    if connections == 0 || requests < connections {
        return Err("need at least one connection and one request per connection".into());
    }
    let binary = std::env::var("SLUICE").unwrap_or_else(|_| BINARY.to_owned());
    if !std::path::Path::new(&binary).exists() {
        return Err(format!("no {binary}: run `cargo build --release` first"));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let upstream = runtime.block_on(start_upstream())?;

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = dir.path().join("count.yaml");
    std::fs::write(
        &spec,
        format!(
            "version: 1\nlisteners:\n  - name: bench\n    bind: 127.0.0.1:0\n\
             pools:\n  - name: upstream\n    endpoints:\n      - address: {upstream}\n\
             routes:\n  - name: all\n    match:\n      path: /{{*rest}}\n    to: upstream\n"
        ),
    )
    .map_err(|e| e.to_string())?;

    let cache = std::env::var_os("PROXY_COUNT_CACHE").is_some_and(|v| v == "1");
    let idle = count(&runtime, &binary, &spec, 0, connections, cache)?;
    let busy = count(&runtime, &binary, &spec, requests, connections, cache)?;
    let per_request = |events: &[&str]| {
        let sum = |counts: &Counts| events.iter().map(|e| counts.get(e)).sum::<u64>();
        sum(&busy).saturating_sub(sum(&idle)) as f64 / requests as f64
    };
    println!("requests: {requests} over {connections} keep-alive connections");
    println!("instructions: {} with the requests, {} without", busy.get("Ir"), idle.get("Ir"));
    println!("instructions per proxied request: {:.0}", per_request(&["Ir"]));
    if cache {
        println!("data reads and writes per request: {:.0}", per_request(&["Dr", "Dw"]));
        println!("first-level data misses per request: {:.1}", per_request(&["D1mr", "D1mw"]));
        println!("second-level data misses per request: {:.1}", per_request(&["DLmr", "DLmw"]));
    }
    Ok(())
}

/// An upstream answering every request with a 12-byte body.
async fn start_upstream() -> Result<SocketAddr, String> {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let address = socket.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello world\n"))))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(address)
}

/// Callgrind's totals for one run, by event name (`Ir`, and with the cache
/// simulation `Dr`, `D1mr` and the rest).
struct Counts {
    events: Vec<(String, u64)>,
}

impl Counts {
    fn get(&self, event: &str) -> u64 {
        self.events.iter().find(|(name, _)| name == event).map_or(0, |(_, value)| *value)
    }
}

/// What `sluice serve` executes, under callgrind, from start to exit while
/// `requests` requests go through it; with `cache`, the simulated cache
/// misses too.
fn count(
    runtime: &tokio::runtime::Runtime,
    binary: &str,
    spec: &std::path::Path,
    requests: usize,
    connections: usize,
    cache: bool,
) -> Result<Counts, String> {
    // PROXY_COUNT_OUT keeps the loaded run's profile for callgrind_annotate.
    let out = match std::env::var("PROXY_COUNT_OUT") {
        Ok(path) if requests > 0 => path,
        _ => "/dev/null".to_owned(),
    };
    let mut child = Command::new("valgrind")
        .args(["--tool=callgrind", &format!("--callgrind-out-file={out}")])
        .args(if cache { &["--cache-sim=yes", "--LL=2097152,16,64"][..] } else { &[] })
        .args([binary, "serve"])
        .args(["--workers", "1", "--access-log", "off"])
        .arg(spec)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    // Read stderr on a thread: the listening line first, the total at exit.
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let address = loop {
        let line = received.recv().map_err(|_| "sluice exited before listening")?;
        if let Some(rest) = line.strip_prefix("listening listener=bench addr=") {
            break rest.trim().parse::<SocketAddr>().map_err(|e| e.to_string())?;
        }
    };

    if requests > 0 {
        runtime.block_on(send_all(address, requests, connections))?;
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cannot signal sluice".into());
    }
    // "==PID== Events    : Ir Dr ..." then "==PID== Collected : N N ...".
    let (mut names, mut values) = (None, None);
    for line in received.iter() {
        if let Some((_, list)) = line.split_once("Events    :") {
            names = Some(list.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        } else if let Some((_, list)) = line.split_once("Collected :") {
            let parsed: Result<Vec<u64>, _> = list.split_whitespace().map(str::parse).collect();
            values = parsed.ok();
        }
    }
    child.wait().map_err(|e| e.to_string())?;
    match (names, values) {
        (Some(names), Some(values)) if names.len() == values.len() => {
            Ok(Counts { events: names.into_iter().zip(values).collect() })
        }
        _ => Err("callgrind printed no totals".to_owned()),
    }
}

/// Send `requests` GETs over `connections` connections at once, each
/// sending its share one after another, and check every answer.
async fn send_all(address: SocketAddr, requests: usize, connections: usize) -> Result<(), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let share = requests / connections + usize::from(c < requests % connections);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let uri = format!("http://{address}/count");
                let response = client.get(uri.parse().map_err(|e| format!("{e}"))?).await;
                let response = response.map_err(|e| e.to_string())?;
                let status = response.status();
                response.into_body().collect().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("the gateway answered {status}"));
                }
            }
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}
