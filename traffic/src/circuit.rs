//! Circuit breaking: hard limits on what one pool may have outstanding.
//!
//! Envoy's per-cluster circuit breakers: a pool may hold at most so many
//! upstream connections, requests waiting for a connection, and requests in
//! flight. Beyond a limit the gateway answers at once with a 503 naming it,
//! instead of queueing without bound; a fast, explicit refusal lets the
//! client back off or fail over, and keeps an overloaded upstream from
//! dragging the gateway's memory and latency down with it.
//!
//! (Tripping on consecutive failures, which some proxies also call a circuit
//! breaker, is outlier detection here: see `outlier`.)
//!
//! Each limit is one atomic counter; acquiring is a compare-and-swap that
//! never takes the count past the limit, so concurrent workers can never
//! admit more than the limit between them. A [`Permit`] gives the slot back
//! when dropped, so an error path cannot leak it.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Limits of a pool. `u32::MAX` is no limit; 0 admits nothing (`check`
/// reports such settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CircuitLimits {
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
}

impl Default for CircuitLimits {
    fn default() -> CircuitLimits {
        CircuitLimits { max_connections: u32::MAX, max_pending: u32::MAX, max_requests: u32::MAX }
    }
}

/// What a permit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Open upstream connections.
    Connections,
    /// Requests waiting for a connection.
    Pending,
    /// Requests in flight to the pool.
    Requests,
}

impl Limit {
    /// The setting's name, for messages.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::Connections => "max_connections",
            Limit::Pending => "max_pending",
            Limit::Requests => "max_requests",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A refused acquisition: which limit is full, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejection {
    pub limit: Limit,
    pub max: u32,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            Limit::Connections => "connections open",
            Limit::Pending => "requests waiting for a connection",
            Limit::Requests => "requests in flight",
        };
        write!(f, "pool overloaded: {} {what} ({} reached)", self.max, self.limit.setting())
    }
}

impl std::error::Error for Rejection {}

/// The limits and counts of one pool, shared by every worker.
#[derive(Debug, Default)]
pub struct CircuitBreaker {
    limits: CircuitLimits,
    counts: [AtomicU32; 3],
}

impl CircuitBreaker {
    pub fn new(limits: CircuitLimits) -> CircuitBreaker {
        CircuitBreaker { limits, counts: Default::default() }
    }

    pub fn limits(&self) -> CircuitLimits {
        self.limits
    }

    /// Slots of `limit` in use.
    pub fn in_use(&self, limit: Limit) -> u32 {
        self.counts[limit.index()].load(Ordering::Acquire)
    }

    /// Take one slot of `limit`, or say which limit is full.
    pub fn try_acquire(&self, limit: Limit) -> Result<Permit<'_>, Rejection> {
        self.take(limit)?;
        Ok(Permit { breaker: self, limit })
    }

    /// As [`CircuitBreaker::try_acquire`], with a permit that owns a handle
    /// on the breaker, for holding across tasks.
    pub fn try_acquire_owned(self: &Arc<Self>, limit: Limit) -> Result<OwnedPermit, Rejection> {
        self.take(limit)?;
        Ok(OwnedPermit { breaker: Arc::clone(self), limit })
    }

    /// The places a new upstream connection takes before it is dialled: one
    /// under `max_connections` for its life, and one under `max_pending`
    /// until it is open. Either full refuses both, so a refusal costs no
    /// connect.
    pub fn try_connect(self: &Arc<Self>) -> Result<Connecting, Rejection> {
        let open = self.try_acquire_owned(Limit::Connections)?;
        let pending = self.try_acquire_owned(Limit::Pending)?;
        Ok(Connecting { open, _pending: pending })
    }

    fn max(&self, limit: Limit) -> u32 {
        match limit {
            Limit::Connections => self.limits.max_connections,
            Limit::Pending => self.limits.max_pending,
            Limit::Requests => self.limits.max_requests,
        }
    }

    fn take(&self, limit: Limit) -> Result<(), Rejection> {
        let max = self.max(limit);
        self.counts[limit.index()]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| ())
            .map_err(|_| Rejection { limit, max })
    }

    fn give_back(&self, limit: Limit) {
        let _ = self.counts[limit.index()]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// One slot of a limit, released on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    limit: Limit,
}

impl Permit<'_> {
    pub fn limit(&self) -> Limit {
        self.limit
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker.give_back(self.limit);
    }
}

/// One slot of a limit, released on drop, owning a handle on its breaker.
#[derive(Debug)]
pub struct OwnedPermit {
    breaker: Arc<CircuitBreaker>,
    limit: Limit,
}

impl OwnedPermit {
    pub fn limit(&self) -> Limit {
        self.limit
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.breaker.give_back(self.limit);
    }
}

/// A connection's places while it is being opened (see
/// [`CircuitBreaker::try_connect`]).
#[derive(Debug)]
pub struct Connecting {
    open: OwnedPermit,
    _pending: OwnedPermit,
}

impl Connecting {
    /// The connection is open: no longer pending, still counted as open.
    /// The place under `max_connections` goes back when the returned permit
    /// is dropped, with the connection.
    pub fn opened(self) -> OwnedPermit {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(connections: u32, pending: u32, requests: u32) -> CircuitLimits {
        CircuitLimits { max_connections: connections, max_pending: pending, max_requests: requests }
    }

    #[test]
    fn admits_up_to_the_limit_and_names_it() {
        let b = CircuitBreaker::new(limits(5, 5, 2));
        let a = b.try_acquire(Limit::Requests).unwrap();
        let _c = b.try_acquire(Limit::Requests).unwrap();
        let refused = b.try_acquire(Limit::Requests).unwrap_err();
        assert_eq!(refused, Rejection { limit: Limit::Requests, max: 2 });
        assert_eq!(
            refused.to_string(),
            "pool overloaded: 2 requests in flight (max_requests reached)"
        );
        assert_eq!(b.in_use(Limit::Requests), 2);
        assert_eq!(b.in_use(Limit::Pending), 0, "limits are independent");

        drop(a);
        assert_eq!(a_limit(b.try_acquire(Limit::Requests)), Some(Limit::Requests));
    }

    fn a_limit(p: Result<Permit<'_>, Rejection>) -> Option<Limit> {
        p.ok().map(|p| p.limit())
    }

    #[test]
    fn zero_admits_nothing_and_default_admits_plenty() {
        let closed = CircuitBreaker::new(limits(0, 0, 0));
        for limit in [Limit::Connections, Limit::Pending, Limit::Requests] {
            assert_eq!(closed.try_acquire(limit).unwrap_err().max, 0);
            assert!(closed.try_acquire(limit).unwrap_err().to_string().contains(limit.setting()));
        }
        let open = CircuitBreaker::default();
        let permits: Vec<_> =
            (0..1000).map(|_| open.try_acquire(Limit::Pending).unwrap()).collect();
        assert_eq!(open.in_use(Limit::Pending), 1000);
        drop(permits);
        assert_eq!(open.in_use(Limit::Pending), 0);
    }

    #[test]
    fn owned_permits_cross_threads_and_concurrency_never_overshoots() {
        let b = Arc::new(CircuitBreaker::new(limits(3, 3, 3)));
        let held = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if let Ok(p) = b.try_acquire_owned(Limit::Connections) {
                            assert!(b.in_use(Limit::Connections) <= 3);
                            held.lock().unwrap().push(p);
                        }
                    }
                });
            }
        });
        assert_eq!(held.lock().unwrap().len(), 3);
        held.lock().unwrap().clear();
        assert_eq!(b.in_use(Limit::Connections), 0);
    }

    proptest! {
        /// Any interleaving of acquires and releases stays within the limit,
        /// and a refusal happens only at the limit.
        #[test]
        fn never_admits_beyond_the_limit(
            max in 0u32..8,
            ops in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let b = CircuitBreaker::new(limits(max, max, max));
            let mut held = Vec::new();
            for acquire in ops {
                if acquire {
                    match b.try_acquire(Limit::Requests) {
                        Ok(p) => held.push(p),
                        Err(r) => prop_assert_eq!(held.len() as u32, r.max),
                    }
                } else {
                    held.pop();
                }
                prop_assert!(b.in_use(Limit::Requests) <= max);
                prop_assert_eq!(b.in_use(Limit::Requests), held.len() as u32);
            }
        }
    }
}
