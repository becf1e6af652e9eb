//! The tasks that answer a client's HTTP/2 streams, and a way to end one
//! from outside.
//!
//! hyper answers each stream of an HTTP/2 connection on a task of its own,
//! which waits for the client's flow-control window before it takes any of
//! the response body. A client that never opens the window (a stream
//! window of 0 from its `SETTINGS`) would hold that task, the stream, and
//! the connection's place under its listener's `max_connections`, for as
//! long as it likes: the body's own clocks are never consulted, since the
//! body is never polled. [`StreamExecutor`] spawns those tasks with a
//! handle the body can reach through [`current`], so that what watches the
//! body (see `ResponseBody::pumped`) can end the task. Dropping it resets
//! the stream (`RST_STREAM` with `CANCEL`) and frees what it held.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::task::AbortHandle;

tokio::task_local! {
    static STREAM: Arc<StreamTask>;
}

/// The task that answers one HTTP/2 stream.
#[derive(Default)]
pub(crate) struct StreamTask {
    abort: OnceLock<AbortHandle>,
}

impl StreamTask {
    /// End the stream's task, resetting the stream.
    pub(crate) fn cancel(&self) {
        if let Some(abort) = self.abort.get() {
            abort.abort();
        }
    }
}

/// The task of the stream being answered, when called from one that
/// [`StreamExecutor`] spawned.
pub(crate) fn current() -> Option<Arc<StreamTask>> {
    STREAM.try_with(Arc::clone).ok()
}

/// Spawns hyper's HTTP/2 stream tasks on the current runtime, each with its
/// [`StreamTask`].
#[derive(Clone, Copy, Default)]
pub(crate) struct StreamExecutor;

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        let task = Arc::new(StreamTask::default());
        let spawned = tokio::spawn(STREAM.scope(Arc::clone(&task), future));
        // Set before the task can run on this thread's runtime; from another
        // worker it may run first, and then holds no handle until this line.
        let _ = task.abort.set(spawned.abort_handle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::time::Duration;

    #[tokio::test]
    async fn a_spawned_task_can_find_and_end_itself_from_elsewhere() {
        let (found, handed) = tokio::sync::oneshot::channel();
        let (ended, mut dropped) = tokio::sync::mpsc::channel::<()>(1);
        StreamExecutor.execute(async move {
            let _guard = ended;
            let _ = found.send(current());
            std::future::pending::<()>().await;
        });
        let task = handed.await.expect("the task ran").expect("it has a stream task");
        assert!(current().is_none(), "outside a stream task there is none");
        task.cancel();
        // The task's future is dropped, and with it its sender.
        let closed = tokio::time::timeout(Duration::from_secs(5), dropped.recv()).await;
        assert_eq!(closed, Ok(None));
    }
}
