//! The stall clock: how long a transfer may wait on its peer without a
//! byte moving, for the listener's and the pool's `stall_timeout`.
//!
//! A [`Stall`] costs nothing while bytes move. Its clock starts only when
//! an operation would wait (a read with nothing to read, a write with no
//! room), and each wait after progress starts it afresh, so a transfer that
//! keeps moving, however slowly, never runs out; one that stops for the
//! whole limit does.
//!
//! Almost every wait ends long before its limit (a response head comes in
//! a millisecond; the limit is a minute), so a wait must be cheap to start
//! and to end, and only the rare one that runs out needs a timer. A tokio
//! timer per wait would cost an aligned allocation and two trips through
//! the timer wheel for every proxied request. Instead each thread keeps a
//! [`Watchdog`]: a table of running clocks, each a deadline and the waker
//! of the task that waits, behind a lock that only that thread takes in
//! practice. Starting a clock is a clock reading and a slot in the table;
//! ending it gives the slot back. One task per thread sleeps until the
//! earliest deadline in the table, wakes the waits that ran out, and sleeps
//! again; a clock whose deadline is earlier than that task's wakes it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The stall clock of one transfer (see the module doc). Small, since it
/// rides in every request's future.
pub(crate) struct Stall {
    /// The watchdog whose table holds the running clock, if one runs.
    watchdog: Option<Arc<Watchdog>>,
    /// Its slot there, which is this clock's alone until it stops.
    slot: u32,
    /// The limit in milliseconds, the precision of every duration in a spec.
    limit_ms: u32,
}

impl Stall {
    pub(crate) fn new(limit: Duration) -> Stall {
        let limit_ms = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX).max(1);
        Stall { watchdog: None, slot: 0, limit_ms }
    }

    pub(crate) fn limit(&self) -> Duration {
        Duration::from_millis(u64::from(self.limit_ms))
    }

    /// Bytes moved (or the wait is someone else's): the next wait starts
    /// the clock again.
    #[inline]
    pub(crate) fn progress(&mut self) {
        // Called after every read and write that moved bytes; a clock runs
        // only after a wait, so this is most often a test and nothing more.
        if self.watchdog.is_some() {
            self.stop();
        }
    }

    #[inline(never)]
    fn stop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.stop(self.slot);
        }
    }

    /// The operation would wait: start the clock if this wait has not yet,
    /// and say whether it has run out. Pending registers `cx` to be woken
    /// when it does.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(watchdog) = &self.watchdog {
            return watchdog.poll(self.slot, cx);
        }
        // Outside a runtime there is nothing to wait with, and no transfer
        // to bound.
        let Some(watchdog) = Watchdog::of_this_thread() else { return Poll::Pending };
        // An exact reading: the time the worker read last may be long past
        // (see `crate::clock`), and the clock would run out that early.
        self.slot = watchdog.start(crate::clock::now() + self.limit(), cx.waker());
        self.watchdog = Some(watchdog);
        Poll::Pending
    }

    /// [`Stall::poll_expired`] after `operation` returned `Pending`, and
    /// [`Stall::progress`] after anything else: the operation's result, or
    /// `Ready(Err(stalled()))` once the clock has run out.
    #[inline]
    pub(crate) fn watch<T, E>(
        &mut self,
        cx: &mut Context<'_>,
        operation: Poll<Result<T, E>>,
        stalled: impl FnOnce(Duration) -> E,
    ) -> Poll<Result<T, E>> {
        match operation {
            Poll::Pending => match self.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Err(stalled(self.limit()))),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                self.progress();
                ready
            }
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.progress();
    }
}

impl std::fmt::Debug for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stall")
            .field("limit", &self.limit())
            .field("running", &self.watchdog.is_some())
            .finish()
    }
}

/// The running stall clocks of one thread (see the module doc).
struct Watchdog {
    table: Mutex<Table>,
    /// Wakes the task that fires the clocks, for an earlier deadline.
    earlier: Notify,
    /// Cleared when that task is gone (its runtime shut down).
    alive: AtomicBool,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// When the firing task will next look, if it sleeps until a deadline.
    next_look: Option<Instant>,
}

struct Slot {
    deadline: Instant,
    state: SlotState,
}

enum SlotState {
    Free,
    Waiting(Waker),
    RanOut,
}

thread_local! {
    static WATCHDOG: std::cell::RefCell<Option<Arc<Watchdog>>> = const { std::cell::RefCell::new(None) };
}

impl Watchdog {
    /// This thread's watchdog, started on the current runtime when the
    /// thread has none (or its runtime has gone).
    fn of_this_thread() -> Option<Arc<Watchdog>> {
        WATCHDOG.with(|cell| {
            let mut cell = cell.borrow_mut();
            if let Some(watchdog) = cell.as_ref().filter(|w| w.alive.load(Ordering::Acquire)) {
                return Some(Arc::clone(watchdog));
            }
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            let watchdog = Arc::new(Watchdog {
                table: Mutex::new(Table::default()),
                earlier: Notify::new(),
                alive: AtomicBool::new(true),
            });
            runtime.spawn(fire(Arc::clone(&watchdog)));
            *cell = Some(Arc::clone(&watchdog));
            Some(watchdog)
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Start a clock that runs out at `deadline` and then wakes `waker`;
    /// its slot.
    fn start(&self, deadline: Instant, waker: &Waker) -> u32 {
        let mut table = self.lock();
        let state = SlotState::Waiting(waker.clone());
        let slot = match table.free.pop() {
            Some(index) => {
                table.slots[index as usize] = Slot { deadline, state };
                index
            }
            None => {
                let index = u32::try_from(table.slots.len()).unwrap_or(u32::MAX);
                table.slots.push(Slot { deadline, state });
                index
            }
        };
        if table.next_look.is_none_or(|look| deadline < look) {
            table.next_look = Some(deadline);
            drop(table);
            self.earlier.notify_one();
        }
        slot
    }

    /// Whether the clock in `slot` ran out; if not, wake `cx` when it does.
    fn poll(&self, slot: u32, cx: &mut Context<'_>) -> Poll<()> {
        let mut table = self.lock();
        let Some(slot) = table.slots.get_mut(slot as usize) else { return Poll::Pending };
        match &mut slot.state {
            SlotState::RanOut => Poll::Ready(()),
            SlotState::Waiting(waker) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
            SlotState::Free => Poll::Pending,
        }
    }

    /// Stop the clock in `slot` and give the slot back.
    fn stop(&self, slot: u32) {
        let mut table = self.lock();
        let freed = match table.slots.get_mut(slot as usize) {
            Some(entry) => std::mem::replace(&mut entry.state, SlotState::Free),
            None => return,
        };
        table.free.push(slot);
        drop(table);
        drop(freed);
    }

    /// Wake the waits whose clocks ran out by `now`; the earliest deadline
    /// still to come.
    fn fire_due(&self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let mut table = self.lock();
        let mut earliest: Option<Instant> = None;
        for slot in &mut table.slots {
            if !matches!(slot.state, SlotState::Waiting(_)) {
                continue;
            }
            if slot.deadline <= now {
                if let SlotState::Waiting(waker) =
                    std::mem::replace(&mut slot.state, SlotState::RanOut)
                {
                    due.push(waker);
                }
            } else if earliest.is_none_or(|at| slot.deadline < at) {
                earliest = Some(slot.deadline);
            }
        }
        table.next_look = earliest;
        drop(table);
        due.into_iter().for_each(Waker::wake);
        earliest
    }
}

/// Marks a watchdog dead when its firing task is dropped.
struct Alive(Arc<Watchdog>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
    }
}

/// The task that fires a thread's stall clocks: it sleeps until the
/// earliest deadline, or until a clock with an earlier one starts.
async fn fire(watchdog: Arc<Watchdog>) {
    let alive = Alive(watchdog);
    let watchdog = &alive.0;
    loop {
        let earlier = watchdog.earlier.notified();
        match watchdog.fire_due(Instant::now()) {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = earlier => {}
                }
            }
            None => earlier.await,
        }
    }
}

/// `operation`, or `None` once it has waited `stall` with nothing moving,
/// for an operation whose progress happens out of sight (in another task)
/// and is only read: `moved` says whether anything moved since it was last
/// asked. It is asked four times per `stall`, so the clock runs out up to a
/// quarter of `stall` late; that costs one timer per look, not a watch on
/// every byte.
pub(crate) async fn unless_stuck<F: Future>(
    operation: F,
    stall: Duration,
    mut moved: impl FnMut() -> bool,
) -> Option<F::Output> {
    let look = stall / 4;
    let mut operation = std::pin::pin!(operation);
    let mut quiet = Duration::ZERO;
    loop {
        if let Ok(output) = tokio::time::timeout(look, operation.as_mut()).await {
            return Some(output);
        }
        if moved() {
            quiet = Duration::ZERO;
        } else {
            quiet += look;
            if quiet >= stall {
                return None;
            }
        }
    }
}

/// A socket whose writes fail with `TimedOut` once its peer has taken no
/// bytes for a stall timeout: a client's, with the listener's, or an
/// upgraded upstream's, with the pool's. Reads pass through.
pub(crate) struct StallingWriter<S> {
    inner: S,
    stall: Stall,
}

impl<S> StallingWriter<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> StallingWriter<S> {
        StallingWriter { inner, stall: Stall::new(limit) }
    }

    /// The socket underneath.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn write_stalled(limit: Duration) -> io::Error {
    let message = format!("the peer took none of what it was sent for {limit:?}");
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

    /// A flush moves no bytes of its own (a socket's does nothing), so it
    /// neither starts nor resets the clock.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
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

    #[tokio::test(start_paused = true)]
    async fn each_clock_runs_out_at_its_own_deadline() {
        let mut long = Stall::new(Duration::from_secs(1));
        let mut short = Stall::new(Duration::from_millis(100));
        let start = Instant::now();

        // A shorter clock started while a longer one runs fires first.
        tokio::select! {
            () = poll_fn(|cx| long.poll_expired(cx)) => panic!("the long clock ran out first"),
            () = async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                poll_fn(|cx| short.poll_expired(cx)).await;
            } => {}
        }
        assert_eq!(start.elapsed(), Duration::from_millis(110));

        // A stopped clock never fires; the long one still does, on time.
        short.progress();
        let mut again = Stall::new(Duration::from_millis(50));
        let waited =
            tokio::time::timeout(Duration::from_millis(20), poll_fn(|cx| again.poll_expired(cx)))
                .await;
        assert!(waited.is_err());
        again.progress();
        poll_fn(|cx| long.poll_expired(cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    /// A worker kept busy never waits for events, so the time it last read
    /// can be as old as the busy spell: a clock started from it would run
    /// out that much early, here at once.
    #[test]
    fn a_clock_started_on_a_busy_worker_runs_its_whole_limit() {
        let runtime = crate::clock::runtime().build().expect("a runtime");
        runtime.block_on(async {
            let (asleep, busy) = (Duration::from_millis(200), Duration::from_millis(600));
            crate::clock::sleep_on_a_busy_worker(asleep, busy).await;
            let mut stall = Stall::new(Duration::from_millis(150));
            let start = Instant::now();
            poll_fn(|cx| stall.poll_expired(cx)).await;
            let ran = start.elapsed();
            assert!(ran >= Duration::from_millis(140), "ran out after {ran:?}");
        });
    }
}
