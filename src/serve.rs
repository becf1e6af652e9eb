//! `sluice serve`: load a spec or plan and run the gateway on it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sluice_runtime::{AccessLogTarget, ServeOptions};

use crate::EXIT_CANNOT_RUN;

/// The most worker threads `--workers` takes: far more than any machine
/// has cores, and few enough that a mistyped count is refused rather than
/// spawning threads until the process runs out of descriptors.
const MAX_WORKERS: i64 = 1024;

#[derive(Debug, Args)]
#[command(after_help = "\
Once every listener is bound, one line per listener goes to stderr:
  listening listener=NAME addr=IP:PORT
with the real port when the spec binds port 0. The access log is one JSON object per \
request (time, client, listener, method, path, route, endpoint, status, duration_ms). \
Operational logs go to stderr; set RUST_LOG (for example RUST_LOG=debug) to see more.

Connection limits and timeouts are spec settings: on each listener `trusted_proxies`, \
`max_connections`, `max_headers`, `max_head_size`, `head_timeout`, `idle_timeout` and \
`stall_timeout` (a client that sends or takes nothing); on each pool `connect_timeout`, \
`idle_timeout` and `stall_timeout` (an endpoint that sends or takes nothing); on each route \
`timeout` and `max_body_size`. A listener's `request_id` (off, the default; preserve; \
generate) says which X-Request-Id the upstream receives and the client gets back, and its \
`http10_default_host` gives HTTP/1.0 requests without a Host that host.

Clients may speak HTTP/1.1 or HTTP/2 in cleartext with prior knowledge (h2c); each pool's \
`protocol` says which the gateway speaks to it. Upgrades such as WebSocket pass through to \
HTTP/1.1 pools once the upstream answers 101.

SIGHUP reloads SPEC|PLAN, and so does any change to it with --watch: the new plan is compiled \
off the request path and swapped in atomically; requests in flight finish on the plan they \
started with, listeners whose bind address did not change keep their sockets, and a file that \
fails to compile is logged and changes nothing.

SIGINT or SIGTERM stops accepting connections and lets in-flight requests finish for up to \
--drain-timeout seconds; a second signal stops at once. Exit status: 0 after a shutdown, \
3 when the gateway could not start (invalid spec, unreadable plan, address in use).")]
pub struct ServeArgs {
    /// The spec or compiled plan to serve.
    #[arg(value_name = "SPEC|PLAN")]
    plan: PathBuf,
    /// Worker threads, 1 to 1024. Default: one per core.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_WORKERS))]
    workers: Option<u16>,
    /// Where the JSON access log goes: `off`, `stdout`, or a file path to append to.
    #[arg(long, value_name = "off|stdout|PATH", default_value = "stdout", value_parser = access_log_target)]
    access_log: AccessLogTarget,
    /// Seconds to let in-flight requests finish after SIGINT or SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    drain_timeout: u64,
    /// Reload whenever SPEC|PLAN changes on disk (SIGHUP always reloads).
    #[arg(long)]
    watch: bool,
}

pub fn serve(args: ServeArgs) -> ExitCode {
    init_tracing("info");
    let plan = match sluice_compiler::load_plan(&args.plan) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };

    let options = ServeOptions {
        workers: args.workers.map(usize::from),
        access_log: args.access_log,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        source: Some(args.plan),
        watch: args.watch,
    };
    match sluice_runtime::serve(plan, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn access_log_target(text: &str) -> Result<AccessLogTarget, String> {
    match text {
        "off" => Ok(AccessLogTarget::Off),
        "stdout" | "-" => Ok(AccessLogTarget::Stdout),
        "" => Err("expected `off`, `stdout` or a file path".into()),
        path => Ok(AccessLogTarget::File(PathBuf::from(path))),
    }
}

/// Operational logs go to stderr; `RUST_LOG` (for example `sluice_runtime=debug`)
/// overrides `default` as the filter.
pub fn init_tracing(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
