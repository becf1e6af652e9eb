//! Sluice's runtime: executes a compiled [`Plan`] as an HTTP/1.1 and HTTP/2
//! reverse proxy, and swaps in a new plan on reload.
//!
//! In goes a plan (from `sluice_compiler::load_plan`); out come bound
//! listeners that route each request with the plan's trie, pick an endpoint
//! with the same `sluice_traffic` balancer the simulator drives, and stream
//! the request and response through pooled upstream connections.
//!
//! - [`serve`]: the blocking entry point behind `sluice serve`. It builds the
//!   tokio runtime, binds, serves until SIGINT or SIGTERM, reloads on SIGHUP
//!   (and on file changes with `watch`), and drains.
//! - [`Gateway`]: the same, as async pieces, for embedding (`sluice demo`).
//! - [`AccessLog`]: the per-request JSON log, written off the request path.
//! - [`ProxyError`]: why the gateway answered a request itself, and which
//!   side (client, upstream, gateway) failed.
//!
//! [`stub`] and [`sample`] hold the stub upstreams and the sample traffic of
//! `sluice demo`.

pub mod access_log;
mod clock;
mod connection;
mod error;
mod exchange;
mod framing;
mod gateway;
mod headers;
mod http1;
mod http2;
mod pool_state;
mod proxy;
mod reload;
mod request_body;
mod request_id;
mod resolve;
pub mod sample;
mod server1;
mod stall;
mod streams;
pub mod stub;
mod upgrade;
mod upstream;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_compiler::Plan;

use crate::workers::WorkerThreads;

pub use access_log::{AccessLog, AccessLogTarget};
pub use error::{ProxyError, Side};
pub use exchange::ResponseBody;
pub use gateway::{Drain, Gateway};

/// Default bound on how long shutdown waits for in-flight requests.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads; `None` means one per available core.
    pub workers: Option<usize>,
    pub access_log: AccessLogTarget,
    /// How long shutdown waits for in-flight requests before closing their
    /// connections anyway.
    pub drain_timeout: Duration,
    /// The spec or plan file to load again on SIGHUP.
    pub source: Option<std::path::PathBuf>,
    /// Also reload when `source` changes.
    pub watch: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: None,
            access_log: AccessLogTarget::Stdout,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            source: None,
            watch: false,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot bind listener {listener} to {address}: {source}")]
    Bind { listener: String, address: SocketAddr, source: std::io::Error },
    #[error("cannot open the access log ({target}): {source}")]
    AccessLog { target: String, source: std::io::Error },
    #[error("cannot install the SIGINT and SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot set up reloading (SIGHUP, --watch): {0}")]
    Reload(#[source] std::io::Error),
}

/// Run the gateway until SIGINT or SIGTERM, then drain and return.
///
/// Once every listener is bound, one line per listener goes to stderr, in
/// plan order:
///
/// ```text
/// listening listener=public addr=127.0.0.1:8080
/// ```
///
/// `addr` is the bound address, so a listener configured with port 0 shows
/// the port the system chose. Scripts may rely on this line's format.
///
/// SIGHUP, and with `options.watch` a change to `options.source`, loads the
/// source again and puts the new plan in force without dropping a request;
/// a source that fails to load is logged and the old plan keeps serving.
///
/// On the first signal the gateway stops accepting connections, lets
/// in-flight requests finish for up to `drain_timeout`, and returns `Ok`. A
/// second signal ends the drain at once.
pub fn serve(plan: Plan, options: ServeOptions) -> Result<(), ServeError> {
    let workers = options.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // One worker serves on this thread's runtime; more each get a thread
    // and a runtime of their own (see `workers`), and this one accepts.
    let runtime = clock::runtime().build().map_err(ServeError::Runtime)?;
    let threads = if workers > 1 {
        Some(WorkerThreads::start(workers).map_err(ServeError::Runtime)?)
    } else {
        None
    };
    let log = AccessLog::open(&options.access_log).map_err(|source| ServeError::AccessLog {
        target: match &options.access_log {
            AccessLogTarget::File(path) => path.display().to_string(),
            other => format!("{other:?}").to_lowercase(),
        },
        source,
    })?;

    let plan = Arc::new(plan);
    let result = runtime.block_on(async {
        // Install the handlers before announcing the listeners, so that a
        // signal sent as soon as the lines appear is not fatal.
        let signals = signals::count().map_err(ServeError::Signals)?;
        let (plans, reloads) = tokio::sync::mpsc::channel(1);
        let _reloading = match &options.source {
            Some(source) => Some(
                reload::start(source.clone(), options.watch, &plan, plans)
                    .map_err(ServeError::Reload)?,
            ),
            None => None,
        };
        let mut gateway = Gateway::bind(Arc::clone(&plan), log.sender()).await?;
        if let Some(threads) = &threads {
            gateway.serve_on(threads.workers());
        }
        for (name, address) in gateway.listeners() {
            eprintln!("listening listener={name} addr={address}");
        }
        tracing::info!(
            workers,
            listeners = plan.listeners.len(),
            routes = plan.routes.len(),
            pools = plan.pools.len(),
            "gateway serving"
        );

        let first = signals::nth(signals.clone(), 1);
        let second_signal = std::cell::Cell::new(false);
        let give_up = async {
            tokio::select! {
                () = tokio::time::sleep(options.drain_timeout) => {}
                () = signals::nth(signals.clone(), 2) => second_signal.set(true),
            }
        };
        match gateway.run_with_reloads(first, give_up, reloads).await {
            Drain::Complete => tracing::info!("drained; exiting"),
            Drain::Abandoned { connections } => {
                let why = match second_signal.get() {
                    true => "a second signal".to_owned(),
                    false => format!("the drain timeout of {:?}", options.drain_timeout),
                };
                log.sender().drain_cut_short(format!(
                    "the gateway shut down before the response was complete: {why} cut the drain short"
                ));
                tracing::warn!(
                    connections,
                    drain_timeout = ?options.drain_timeout,
                    "drain cut short; closing the remaining connections"
                )
            }
        }
        Ok(())
    });

    // Connections abandoned by the drain are dropped here.
    if let Some(threads) = threads {
        threads.stop();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    log.close();
    result
}

mod signals {
    //! Shutdown signals as a running count that several futures can await.

    use tokio::sync::watch;

    /// Start counting SIGINT and SIGTERM.
    #[cfg(unix)]
    pub(crate) fn count() -> std::io::Result<watch::Receiver<u32>> {
        use tokio::signal::unix::{signal, SignalKind};

        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = interrupt.recv() => "SIGINT",
                    Some(()) = terminate.recv() => "SIGTERM",
                    else => break,
                };
                tracing::info!(signal = name, "shutdown signal received");
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(rx)
    }

    /// Start counting Ctrl-C presses.
    #[cfg(not(unix))]
    pub(crate) fn count() -> std::io::Result<watch::Receiver<u32>> {
        let (tx, rx) = watch::channel(0u32);
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!(signal = "ctrl-c", "shutdown signal received");
                tx.send_modify(|n| *n += 1);
            }
        });
        Ok(rx)
    }

    /// Resolve once `n` signals have arrived.
    pub(crate) async fn nth(mut count: watch::Receiver<u32>, n: u32) {
        if count.wait_for(|&seen| seen >= n).await.is_err() {
            // The counting task ended, which happens only with the runtime.
            std::future::pending::<()>().await;
        }
    }
}
