//! `sluice demo`: a spec's whole request path on one machine, in one command.
//!
//! Starts a stub upstream on every endpoint address of the plan, serves the
//! plan in-process, sends a small batch of sample requests per route through
//! the gateway over real sockets, and prints where each one went and how each
//! pool spread its share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sluice_compiler::Plan;
use sluice_runtime::sample::{self, Outcome, Sample, SampleClient};
use sluice_runtime::stub::Stub;
use sluice_runtime::{AccessLog, Gateway};
use tokio::sync::oneshot;

use crate::serve::init_tracing;
use crate::EXIT_CANNOT_RUN;

/// Sample requests per endpoint of each route's pool.
const SAMPLES_PER_ENDPOINT: usize = 1;

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 when every sample request reached a stub upstream, \
1 when some did not, 3 when the demo could not start.")]
pub struct DemoArgs {
    /// The spec to demonstrate. Its endpoints must be on 127.0.0.1, where the stubs run.
    #[arg(value_name = "SPEC", default_value = "specs/platform.yaml")]
    spec: PathBuf,
    /// Keep the gateway and the stub upstreams running until Ctrl-C, to try them with curl.
    #[arg(long)]
    keep_serving: bool,
}

pub fn demo(args: DemoArgs) -> ExitCode {
    init_tracing("warn");
    let plan = match sluice_compiler::load_plan(&args.spec) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    if let Err(message) = check_local(&plan) {
        eprintln!("error: {message}");
        return ExitCode::from(EXIT_CANNOT_RUN);
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: cannot start the async runtime: {error}");
                return ExitCode::from(EXIT_CANNOT_RUN);
            }
        };

    println!("sluice demo: {}", args.spec.display());
    let code = runtime.block_on(run(Arc::new(plan), args.keep_serving));
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// The stubs stand in for every endpoint on this machine, so endpoints must
/// be loopback addresses, and so must listeners unless they bind every address.
fn check_local(plan: &Plan) -> Result<(), String> {
    for pool in &plan.pools {
        let local = |e: &&sluice_compiler::plan::EndpointPlan| {
            e.address.ip().is_some_and(|a| a.ip().is_loopback())
        };
        if let Some(e) = pool.endpoints.iter().find(|e| !local(e)) {
            return Err(format!(
                "pool {} has endpoint {}, but the demo runs every endpoint as a local stub; \
                 use a spec whose endpoints are IP addresses on 127.0.0.1",
                pool.name, e.address
            ));
        }
    }
    for listener in &plan.listeners {
        let ip = listener.bind.ip();
        if !ip.is_loopback() && !ip.is_unspecified() {
            return Err(format!(
                "listener {} binds {}; the demo sends its requests over loopback, \
                 so use a spec whose listeners are on 127.0.0.1",
                listener.name, listener.bind
            ));
        }
    }
    Ok(())
}

async fn run(plan: Arc<Plan>, keep_serving: bool) -> ExitCode {
    // Stubs first, so the gateway has somewhere to send.
    let stubs = match start_stubs(&plan).await {
        Ok(stubs) => stubs,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    let gateway = match Gateway::bind(Arc::clone(&plan), AccessLog::off().sender()).await {
        Ok(gateway) => gateway,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    let listeners: Vec<SocketAddr> =
        gateway.listeners().map(|(_, a)| sample::connect_address(a)).collect();
    print_setup(&plan, &gateway, stubs.len());

    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.run(
        async {
            let _ = stopped.await;
        },
        tokio::time::sleep(Duration::from_secs(2)),
    ));

    // Sample traffic.
    let samples = sample::samples(&plan, SAMPLES_PER_ENDPOINT);
    let client = SampleClient::default();
    let mut outcomes = Vec::with_capacity(samples.len());
    for sample in &samples {
        outcomes.push(client.send(listeners[sample.listener], sample).await);
    }
    drop(client);
    let answered = print_requests(&plan, &samples, &outcomes);
    print_spread(&plan, &samples, &outcomes);
    print_least_request_note(&plan);

    let total = samples.len();
    if answered == total {
        println!("\nAll {total} sample requests were answered by a stub upstream.");
    } else {
        println!("\n{answered} of {total} sample requests were answered by a stub upstream.");
    }

    if keep_serving {
        print_curl_hints(&samples, &listeners);
        if tokio::signal::ctrl_c().await.is_err() {
            eprintln!("error: cannot wait for Ctrl-C; stopping");
        }
        println!("\nstopping");
    } else {
        println!("Run `sluice demo --keep-serving` to keep it running and try it with curl.");
    }
    let _ = stop.send(());
    let _ = serving.await;
    drop(stubs);

    if answered == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One stub per distinct endpoint address, named after the pools it serves.
async fn start_stubs(plan: &Plan) -> Result<Vec<Stub>, String> {
    let mut pools_at: BTreeMap<SocketAddr, Vec<&str>> = BTreeMap::new();
    for pool in &plan.pools {
        // `check_local` let only loopback IP addresses through.
        for address in pool.endpoints.iter().filter_map(|e| e.address.ip()) {
            pools_at.entry(address).or_default().push(&pool.name);
        }
    }
    let mut stubs = Vec::with_capacity(pools_at.len());
    for (address, pools) in pools_at {
        let name = pools.join(",");
        let stub = Stub::start(address, name.clone()).await.map_err(|e| {
            format!(
                "cannot start the stub upstream for pool {name} on {address}: {e}; \
                 is something else (another `sluice demo`?) using that port?"
            )
        })?;
        stubs.push(stub);
    }
    Ok(stubs)
}

fn print_setup(plan: &Plan, gateway: &Gateway, stubs: usize) {
    println!(
        "  {} listeners, {} routes, {} pools; started {stubs} stub upstreams that answer \
         with JSON describing the request they received",
        plan.listeners.len(),
        plan.routes.len(),
        plan.pools.len()
    );
    for (name, address) in gateway.listeners() {
        println!("  gateway listener {name} on http://{address}");
    }
}

fn print_requests(plan: &Plan, samples: &[Sample], outcomes: &[Result<Outcome, String>]) -> usize {
    println!("\nSample requests, built from each route's host, path and methods:\n");
    let requests: Vec<String> =
        samples.iter().map(|s| format!("{} {}{}", s.method, s.host, s.path)).collect();
    let request_width = requests.iter().map(String::len).max().unwrap_or(0);
    let route_width = plan.routes.iter().map(|r| r.name.len()).max().unwrap_or(0).max(5);
    println!("  {:<request_width$}  {:<route_width$}  STATUS  ANSWERED BY", "REQUEST", "ROUTE");

    let mut answered = 0;
    for ((sample, request), outcome) in samples.iter().zip(&requests).zip(outcomes) {
        let route = sample.route.map_or("(none)", |r| plan.routes[r].name.as_str());
        let (status, by) = match outcome {
            Ok(Outcome { status, echo: Some(echo), .. }) => {
                answered += 1;
                (status.to_string(), format!("{} at {}", echo.pool, echo.endpoint))
            }
            Ok(Outcome { status, error, .. }) => {
                let by =
                    error.as_deref().map_or("the gateway".into(), |e| format!("the gateway: {e}"));
                (status.to_string(), by)
            }
            Err(message) => ("-".into(), message.clone()),
        };
        println!("  {request:<request_width$}  {route:<route_width$}  {status:<6}  {by}");
    }
    answered
}

fn print_spread(plan: &Plan, samples: &[Sample], outcomes: &[Result<Outcome, String>]) {
    // Requests per (pool, endpoint address), counted from what the stubs saw.
    let mut counts: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for (sample, outcome) in samples.iter().zip(outcomes) {
        let (Some(route), Ok(Outcome { echo: Some(echo), .. })) = (sample.route, outcome) else {
            continue;
        };
        *counts.entry((plan.routes[route].pool, echo.endpoint.clone())).or_default() += 1;
    }

    println!("\nHow each pool spread its requests over its endpoints:\n");
    let pool_width = plan.pools.iter().map(|p| p.name.len()).max().unwrap_or(0).max(4);
    println!(
        "  {:<pool_width$}  {:<20}  {:<21}  {:>6}  REQUESTS",
        "POOL", "BALANCE", "ENDPOINT", "WEIGHT"
    );
    for (index, pool) in plan.pools.iter().enumerate() {
        for (i, endpoint) in pool.endpoints.iter().enumerate() {
            let address = endpoint.address.to_string();
            let count = counts.get(&(index, address.clone())).copied().unwrap_or(0);
            let (name, balance) =
                if i == 0 { (pool.name.as_str(), pool.balance.as_str()) } else { ("", "") };
            println!(
                "  {name:<pool_width$}  {balance:<20}  {address:<21}  {:>6}  {count:>3} {}",
                endpoint.weight,
                "#".repeat(count)
            );
        }
    }
}

fn print_least_request_note(plan: &Plan) {
    if plan.pools.iter().any(|p| p.balance == sluice_compiler::Balance::LeastRequest) {
        println!(
            "\n  least_request picks the less busy of two random endpoints. The samples go one \
             at a time,\n  so nothing is ever in flight, and ties go to a random endpoint in \
             proportion to its weight."
        );
    }
}

fn print_curl_hints(samples: &[Sample], listeners: &[SocketAddr]) {
    println!("\nThe gateway and the stubs keep running; press Ctrl-C to stop. Try:\n");
    let mut shown: Vec<usize> = Vec::new();
    for sample in samples.iter().filter(|s| s.route.is_some() && s.method.as_str() == "GET") {
        if shown.len() == 3 {
            break;
        }
        if shown.contains(&sample.source_route) {
            continue;
        }
        shown.push(sample.source_route);
        let url = format!("http://{}{}", listeners[sample.listener], sample.path);
        println!("  curl -i -H 'Host: {}' {url}", sample.host);
    }
    if let Some(first) = listeners.first() {
        println!("  curl -i http://{first}/no/such/route    # no route matches: a JSON 404");
    }
    println!("\nAdd ?delay_ms=N to a URL to make the stub answer N milliseconds late.");
}
