//! The time as a worker last read it, for clocks whose running out early
//! costs nothing more than a connection opened again.
//!
//! A proxied request needs the exact time twice: when its endpoint is
//! picked and when the response head comes, for the latency the balancer
//! learns from. Three more uses keep the age of a pooled upstream
//! connection: the idle stamps of the HTTP/1.1 and HTTP/2 pools, and the
//! HTTP/1.1 pool's check of that age, which comes right after the pick's
//! exact reading. Each reading of the clock costs some 30 ns, a good share
//! of what a proxied request costs here; so those take the time the worker
//! read last.
//!
//! That reading is kept per thread, and only where the runtime refreshes it
//! each time it wakes from waiting for events ([`woke`], installed by
//! [`runtime`]); every exact reading ([`now`]) refreshes it too, and after
//! [`USES`] uses without one it is read again. It is never later than the
//! true time, but it is not bounded in age: a worker kept busy (by a
//! transfer that uses up its budget and yields, say) looks for events
//! without waiting for them, and tokio's runtime calls no hook for that,
//! so the reading can be as old as the busy spell, hundreds of
//! milliseconds or more. A pooled connection stamped from it may thus
//! expire that much early, and is then opened again. The clocks that cut
//! a client or a transfer short (the stall clock, a client connection's
//! head and idle clocks) start from [`now`] instead.
//!
//! On a thread whose runtime does not refresh it (tests, embedding), every
//! reading is exact.

use std::cell::Cell;

use tokio::time::Instant;

/// Uses of one reading before it is read again.
const USES: u8 = 32;

thread_local! {
    /// The last reading and how often it has been used since; `None` on a
    /// thread whose runtime does not refresh it.
    static RECENT: Cell<Option<(Instant, u8)>> = const { Cell::new(None) };
}

/// A current-thread runtime that keeps [`recent`] fresh.
pub(crate) fn runtime() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().on_thread_unpark(woke);
    builder
}

/// The worker woke from waiting for events: read the clock for what it
/// does next.
fn woke() {
    RECENT.with(|recent| recent.set(Some((Instant::now(), 0))));
}

/// The exact time, kept for [`recent`] where the runtime refreshes it.
pub(crate) fn now() -> Instant {
    let now = Instant::now();
    RECENT.with(|recent| {
        if recent.get().is_some() {
            recent.set(Some((now, 0)));
        }
    });
    now
}

/// The time as this worker last read it (see the module doc): never
/// later than the true time, and earlier by no more than the work done
/// since.
pub(crate) fn recent() -> Instant {
    RECENT.with(|recent| match recent.get() {
        Some((at, uses)) if uses < USES => {
            recent.set(Some((at, uses + 1)));
            at
        }
        Some(_) => {
            let now = Instant::now();
            recent.set(Some((now, 0)));
            now
        }
        None => Instant::now(),
    })
}

/// For tests of clocks on a runtime that keeps [`recent`] fresh: sleep for
/// `asleep` while another task keeps the worker busy for `busy` from now,
/// yielding as a transfer does when it has used up its budget, so that the
/// worker never waits for events meanwhile.
#[cfg(test)]
pub(crate) async fn sleep_on_a_busy_worker(asleep: std::time::Duration, busy: std::time::Duration) {
    // A first wait, so that the reading is kept from here on.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    let until = Instant::now() + busy;
    tokio::spawn(async move {
        while Instant::now() < until {
            tokio::task::yield_now().await;
        }
    });
    tokio::time::sleep(asleep).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn without_a_refreshing_runtime_every_reading_is_exact() {
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(recent() - before >= Duration::from_millis(5));
    }

    #[test]
    fn a_refreshing_runtime_keeps_the_reading_of_its_wake_until_an_exact_one() {
        let runtime = runtime().build().expect("a runtime");
        runtime.block_on(async {
            // Asleep and woken: the wake read the clock.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let first = recent();
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(recent(), first, "no reading since the wake");
            let exact = now();
            assert!(exact - first >= Duration::from_millis(5));
            assert_eq!(recent(), exact, "an exact reading refreshes it");
        });
    }

    #[test]
    fn a_reading_is_read_again_after_its_uses() {
        let runtime = runtime().build().expect("a runtime");
        runtime.block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let first = recent();
            std::thread::sleep(Duration::from_millis(5));
            let mut later = first;
            for _ in 0..USES {
                later = recent();
            }
            assert!(later - first >= Duration::from_millis(5), "read again within {USES} uses");
        });
    }
}
