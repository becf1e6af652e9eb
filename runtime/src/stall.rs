//! The stall clock: how long a transfer may wait on its peer without a
//! byte moving, for the listener's and the pool's `stall_timeout`.
//!
//! A [`Stall`] costs nothing while bytes move. Its timer starts only when
//! an operation would wait (a read with nothing to read, a write with no
//! room), and each wait after progress starts it afresh, so a transfer that
//! keeps moving, however slowly, never runs out; one that stops for the
//! whole limit does. The timer is made on the first wait and reset for later
//! ones, so a response that arrives in one read costs one timer at most.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The stall clock of one transfer (see the module doc).
#[derive(Debug)]
pub(crate) struct Stall {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer counts the current wait.
    running: bool,
}

impl Stall {
    pub(crate) fn new(limit: Duration) -> Stall {
        Stall { limit, timer: None, running: false }
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// Bytes moved (or the wait is someone else's): the next wait starts
    /// the clock again.
    pub(crate) fn progress(&mut self) {
        self.running = false;
    }

    /// The operation would wait: start the clock if this wait has not yet,
    /// and say whether it has run out. Pending registers `cx` to be woken
    /// when it does.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.running {
            self.running = true;
            let deadline = Instant::now() + self.limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// [`Stall::poll_expired`] after `operation` returned `Pending`, and
    /// [`Stall::progress`] after anything else: the operation's result, or
    /// `Ready(Err(stalled()))` once the clock has run out.
    pub(crate) fn watch<T, E>(
        &mut self,
        cx: &mut Context<'_>,
        operation: Poll<Result<T, E>>,
        stalled: impl FnOnce(Duration) -> E,
    ) -> Poll<Result<T, E>> {
        match operation {
            Poll::Pending => match self.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Err(stalled(self.limit))),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                self.progress();
                ready
            }
        }
    }
}

/// A client socket whose writes fail with `TimedOut` once the client has
/// taken no bytes for the listener's `stall_timeout`. Reads pass through.
pub(crate) struct StallingWriter<S> {
    inner: S,
    stall: Stall,
}

impl<S> StallingWriter<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> StallingWriter<S> {
        StallingWriter { inner, stall: Stall::new(limit) }
    }
}

fn write_stalled(limit: Duration) -> io::Error {
    let message = format!("the client took none of its response for {limit:?}");
    io::Error::new(io::ErrorKind::TimedOut, message)
}

impl<S: AsyncRead + Unpin> AsyncRead for StallingWriter<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallingWriter<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stall.watch(cx, written, write_stalled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stall.watch(cx, written, write_stalled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        this.stall.watch(cx, flushed, write_stalled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::poll_fn;

    #[tokio::test(start_paused = true)]
    async fn runs_out_only_after_a_whole_limit_without_progress() {
        let mut stall = Stall::new(Duration::from_millis(100));
        let waiting = || Poll::<Result<(), Duration>>::Pending;

        // Waits of 60 ms with progress between them never run out.
        for _ in 0..5 {
            let waited = tokio::time::timeout(
                Duration::from_millis(60),
                poll_fn(|cx| stall.watch(cx, waiting(), |limit| limit)),
            )
            .await;
            assert!(waited.is_err(), "a wait shorter than the limit ran out");
            poll_fn(|cx| stall.watch(cx, Poll::Ready(Ok::<(), Duration>(())), |limit| limit))
                .await
                .unwrap();
        }

        // A wait of the whole limit does, at the limit.
        let start = Instant::now();
        let ran_out = poll_fn(|cx| stall.watch(cx, waiting(), |limit| limit)).await;
        assert_eq!(ran_out, Err(Duration::from_millis(100)));
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
}
