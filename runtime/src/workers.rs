//! Thread-per-core serving for `--workers N` above one.
//!
//! Each worker is an OS thread with its own single-threaded tokio runtime:
//! its own run queue, timer wheel and epoll instance. The control runtime
//! (on the caller's thread) accepts connections, handles signals, reloads,
//! DNS lookups and health probes, and hands each accepted connection to the
//! next worker in turn; from then on the connection, its requests and the
//! upstream connections they open are driven by that worker alone, with no
//! task moving between threads and no wake-up crossing cores on the request
//! path. Balancer, breaker, health and outlier state stay shared by every
//! worker, so an endpoint ejected on one is ejected on all.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;

/// Worker threads in this process, once they started (1 without).
static LANES: OnceLock<usize> = OnceLock::new();

thread_local! {
    /// This thread's worker number; 0 outside worker threads.
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// How many workers serve connections, so state kept per worker (such as
/// idle upstream connections) can be split that many ways.
pub(crate) fn lanes() -> usize {
    LANES.get().copied().unwrap_or(1)
}

/// Which worker runs the calling thread, below [`lanes`].
pub(crate) fn lane() -> usize {
    LANE.with(Cell::get) % lanes()
}

/// Where connections are served: the worker threads, or (when there are
/// none) the runtime that accepted them.
#[derive(Clone, Default)]
pub(crate) struct Workers {
    handles: Arc<[Handle]>,
    next: Arc<AtomicUsize>,
    /// Client connections open, upgraded ones included.
    open: Arc<AtomicUsize>,
}

/// One open client connection, counted until dropped.
pub(crate) struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Count a connection as open until the returned value is dropped.
    pub(crate) fn count_connection(&self) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(&self.open))
    }

    /// Client connections open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Run `serve(stream)` on the next worker, or here without workers.
    pub(crate) fn serve<F, Fut>(&self, stream: tokio::net::TcpStream, serve: F)
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            tokio::spawn(serve(stream));
            return;
        }
        // The socket leaves this runtime's reactor and joins the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot hand a connection to a worker; closing it");
                return;
            }
        };
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[at].spawn(async move {
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(error) => tracing::warn!(%error, "a worker cannot take a connection"),
            }
        });
    }
}

/// The running worker threads; [`WorkerThreads::stop`] ends them.
pub(crate) struct WorkerThreads {
    workers: Workers,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerThreads {
    /// Start `n` worker threads, each with its runtime ready to serve.
    pub(crate) fn start(n: usize) -> std::io::Result<WorkerThreads> {
        // Set once per process; a second gateway in the same process keeps
        // the first count, which only makes its lanes uneven.
        let _ = LANES.set(n.max(1));
        let (stop, stopped) = watch::channel(false);
        let mut handles = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (ready, handle) = std::sync::mpsc::channel();
            let mut stopped = stopped.clone();
            let thread = std::thread::Builder::new().name(format!("sluice-worker-{i}")).spawn(
                move || {
                    LANE.with(|lane| lane.set(i));
                    let runtime = crate::clock::runtime().build();
                    let runtime = match runtime {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    });
                    // Connections still open after the drain are closed.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                },
            )?;
            threads.push(thread);
            let handle = handle.recv().map_err(|_| {
                std::io::Error::other(format!("worker thread {i} ended before it started"))
            })??;
            handles.push(handle);
        }
        let workers = Workers { handles: handles.into(), ..Workers::default() };
        Ok(WorkerThreads { workers, stop, threads })
    }

    pub(crate) fn workers(&self) -> Workers {
        self.workers.clone()
    }

    /// End every worker, closing what connections they still serve.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
