//! Upstream connections, in the pools where anything depends on them.
//!
//! Two things do: a pool's connection limits (`max_connections` and
//! `max_pending`), and an endpoint that stops accepting new connections
//! while it goes on serving on those it has. A pool with neither keeps no
//! connections here, since none would change a result, and a run with no
//! such pool keeps no [`Connections`] at all.
//!
//! The rules are `serve`'s:
//!
//! - HTTP/1.1: a try takes the endpoint's most recently idle connection, or
//!   opens a new one. Once the gateway has the try's answer, the connection
//!   goes back idle; when the gateway gives up on the try (a timeout) or the
//!   endpoint resets it, the connection closes. An idle connection closes
//!   after the pool's `idle_timeout`.
//! - HTTP/2: one connection per endpoint carries every try, and closes once
//!   it has carried none for `idle_timeout`. Giving up on a try resets its
//!   stream, not the connection.
//! - Opening a connection takes its places under `max_connections` and
//!   `max_pending` from the pool's [`CircuitBreaker`] (per gateway instance)
//!   before dialling, the same calls `serve` makes. When either is full, the
//!   idle connections that have expired are closed first, as `serve` does;
//!   if still full, the try is refused and the request answered 503 at
//!   once. The pool was refused, not the endpoint: neither the balancer nor
//!   outlier detection hears of it, and it is not retried.
//! - Connecting takes no time in the model, except to an endpoint that
//!   accepts no connection, where it hangs until the pool's connect timeout
//!   and holds its `max_pending` place all along. Over HTTP/2, tries that
//!   come meanwhile wait on that connect rather than dial again, so it is
//!   one place whatever the number of tries.
//! - A crash closes every connection to the endpoint.

use std::collections::VecDeque;
use std::sync::Arc;

use sluice_compiler::spec::Protocol;
use sluice_traffic::circuit::{Connecting, OwnedPermit};
use sluice_traffic::{CircuitBreaker, Rejection};

use super::nanos;
use crate::time::Nanos;
use crate::workload::{FaultKind, PoolRules, Topology, Workload};

/// The connections of every instance to every endpoint of the pools that
/// keep them.
pub(super) struct Connections {
    /// Per pool: how its connections are kept, if they are.
    pools: Vec<Option<PoolConnections>>,
    /// Per instance and flat endpoint, at `instance * endpoints + endpoint`.
    lines: Vec<Line>,
    endpoints: usize,
    /// Per try slot: the connection the try holds.
    leases: Vec<Lease>,
    /// The lease [`Connections::open`] gave last, until [`Connections::hold`]
    /// hands it to its try.
    next: Lease,
}

struct PoolConnections {
    http2: bool,
    idle_timeout: Nanos,
    connect_timeout: Nanos,
    /// Flat index of the pool's first endpoint, and how many it has.
    first: usize,
    count: usize,
    /// Whether connections count against the breaker's limits.
    limited: bool,
}

/// One instance's connections to one endpoint.
#[derive(Default)]
struct Line {
    /// HTTP/1.1: idle connections and since when, the most recent last.
    idle: VecDeque<(Nanos, Slot)>,
    /// HTTP/2: the shared connection.
    shared: Option<Shared>,
    /// Shared connections opened so far, to tell a stream of an old one.
    opened: u32,
    /// HTTP/2: the number of the connect under way to an endpoint that does
    /// not accept it, which later tries wait on rather than dial again, and
    /// when it fails.
    connecting: Option<(u32, Nanos)>,
}

struct Shared {
    _slot: Slot,
    /// Tries it carries.
    streams: u32,
    /// When it last carried none.
    idle_since: Nanos,
    /// Its number among the line's shared connections.
    number: u32,
}

/// A connection's place under `max_connections`, in a limited pool.
type Slot = Option<OwnedPermit>;

/// What a try holds.
#[derive(Default)]
enum Lease {
    /// Nothing: its pool keeps no connections.
    #[default]
    None,
    /// An HTTP/1.1 connection of its own.
    Own(Slot),
    /// A stream on shared connection number `number` of its line.
    Stream { number: u32 },
    /// A connection being opened, which the endpoint never accepts, and
    /// its places under the limits; for HTTP/2, number `number` of its line.
    Connecting { _places: Option<Connecting>, number: u32 },
    /// HTTP/2: waiting on another try's connect, which fails `until`.
    Waiting { until: Nanos },
}

impl Connections {
    /// The connections of a run of `workload` under `rules` (per pool) with
    /// `instances` gateway instances; `None` when no pool needs any.
    pub fn new(
        topology: &Topology,
        workload: &Workload,
        rules: &[PoolRules],
        instances: usize,
    ) -> Option<Connections> {
        let stops = |pool: usize| {
            (workload.events.iter()).any(|f| f.pool == pool && f.kind == FaultKind::StopAccepting)
        };
        let mut first = 0;
        let pools: Vec<Option<PoolConnections>> = (topology.pools.iter().zip(rules))
            .enumerate()
            .map(|(p, (pool, rules))| {
                let count = pool.endpoints.len();
                let limited = rules
                    .circuit
                    .is_some_and(|c| c.max_connections != u32::MAX || c.max_pending != u32::MAX);
                let kept = (limited || stops(p)).then(|| PoolConnections {
                    http2: pool.protocol == Protocol::Http2,
                    idle_timeout: nanos(pool.idle_timeout),
                    connect_timeout: nanos(pool.connect_timeout),
                    first,
                    count,
                    limited,
                });
                first += count;
                kept
            })
            .collect();
        if pools.iter().all(Option::is_none) {
            return None;
        }
        let lines = (0..instances * first).map(|_| Line::default()).collect();
        Some(Connections { pools, lines, endpoints: first, leases: Vec::new(), next: Lease::None })
    }

    /// A connection for the next try, from `instance` to flat `endpoint`
    /// of `pool`, where a new one is accepted unless `refusing`: whether it
    /// is open (on which an endpoint that accepts no new connection still
    /// serves the try), or the limit that refused it (see the module doc).
    /// The try takes it with [`Connections::hold`].
    pub fn open(
        &mut self,
        now: Nanos,
        instance: usize,
        pool: usize,
        endpoint: usize,
        breaker: Option<&Arc<CircuitBreaker>>,
        refusing: bool,
    ) -> Result<bool, Rejection> {
        let lease = self.lease(now, instance, pool, endpoint, breaker, refusing)?;
        let open = matches!(lease, Lease::Own(_) | Lease::Stream { .. });
        self.next = lease;
        Ok(open)
    }

    fn lease(
        &mut self,
        now: Nanos,
        instance: usize,
        pool: usize,
        endpoint: usize,
        breaker: Option<&Arc<CircuitBreaker>>,
        refusing: bool,
    ) -> Result<Lease, Rejection> {
        let Some(kept) = &self.pools[pool] else { return Ok(Lease::None) };
        let timeout = kept.idle_timeout;
        let line = &mut self.lines[instance * self.endpoints + endpoint];
        if kept.http2 {
            if let Some(shared) = &mut line.shared {
                if shared.streams > 0 || now - shared.idle_since < timeout {
                    shared.streams += 1;
                    return Ok(Lease::Stream { number: shared.number });
                }
                line.shared = None;
            }
            if let Some((_, until)) = line.connecting.filter(|_| refusing) {
                return Ok(Lease::Waiting { until });
            }
        } else if let Some((since, slot)) = line.idle.pop_back() {
            if now - since < timeout {
                return Ok(Lease::Own(slot));
            }
            // Those below it have been idle longer.
            line.idle.clear();
        }

        let breaker = breaker.filter(|_| kept.limited);
        let connecting = match take_slots(breaker) {
            Err(_) if self.close_expired(now, instance, pool) > 0 => take_slots(breaker),
            taken => taken,
        }?;
        let http2 = self.pools[pool].as_ref().is_some_and(|k| k.http2);
        let line = &mut self.lines[instance * self.endpoints + endpoint];
        if !http2 && !refusing {
            return Ok(Lease::Own(connecting.map(Connecting::opened)));
        }
        line.opened = line.opened.wrapping_add(1);
        let number = line.opened;
        if refusing {
            if let Some(kept) = self.pools[pool].as_ref().filter(|k| k.http2) {
                line.connecting = Some((number, now.saturating_add(kept.connect_timeout)));
            }
            return Ok(Lease::Connecting { _places: connecting, number });
        }
        let slot = connecting.map(Connecting::opened);
        line.shared = Some(Shared { _slot: slot, streams: 1, idle_since: now, number });
        Ok(Lease::Stream { number })
    }

    /// When the connect that the try in `slot` waits on fails, if it waits
    /// on another try's (over HTTP/2, where `serve` fails the waiting
    /// requests with the connect they wait on).
    pub fn waits_until(&self, slot: u32) -> Option<Nanos> {
        match self.leases.get(slot as usize)? {
            Lease::Waiting { until } => Some(*until),
            _ => None,
        }
    }

    /// Try `slot` holds the connection [`Connections::open`] gave last.
    pub fn hold(&mut self, slot: u32) {
        let at = slot as usize;
        if at >= self.leases.len() {
            self.leases.resize_with(at + 1, Lease::default);
        }
        self.leases[at] = std::mem::take(&mut self.next);
    }

    /// The try in `slot`, from `instance` to flat `endpoint`, is over for
    /// the gateway: with an answer (`answered`), its HTTP/1.1 connection
    /// goes back idle; without, it closes. Its HTTP/2 stream ends either
    /// way.
    pub fn release(
        &mut self,
        now: Nanos,
        instance: usize,
        endpoint: usize,
        slot: u32,
        answered: bool,
    ) {
        let Some(lease) = self.leases.get_mut(slot as usize) else { return };
        let lease = std::mem::take(lease);
        let line = &mut self.lines[instance * self.endpoints + endpoint];
        match lease {
            Lease::Own(slot) if answered => line.idle.push_back((now, slot)),
            Lease::Stream { number } => {
                if let Some(shared) = line.shared.as_mut().filter(|s| s.number == number) {
                    shared.streams = shared.streams.saturating_sub(1);
                    if shared.streams == 0 {
                        shared.idle_since = now;
                    }
                }
            }
            Lease::Connecting { number, .. } => {
                if line.connecting.is_some_and(|(n, _)| n == number) {
                    line.connecting = None;
                }
            }
            Lease::None | Lease::Own(_) | Lease::Waiting { .. } => {}
        }
    }

    /// Flat `endpoint` crashed: every instance's connections to it close.
    /// (The tries on them are reset, and their leases released, apart.)
    pub fn crashed(&mut self, endpoint: usize) {
        for line in self.lines.iter_mut().skip(endpoint).step_by(self.endpoints.max(1)) {
            line.idle.clear();
            line.shared = None;
            line.connecting = None;
        }
    }

    /// Close the idle connections of `instance` to `pool` that have been
    /// idle for its idle timeout by `now`; how many.
    fn close_expired(&mut self, now: Nanos, instance: usize, pool: usize) -> usize {
        let Some(kept) = &self.pools[pool] else { return 0 };
        let start = instance * self.endpoints + kept.first;
        let mut closed = 0;
        for line in &mut self.lines[start..start + kept.count] {
            while line.idle.front().is_some_and(|(since, _)| now - since >= kept.idle_timeout) {
                line.idle.pop_front();
                closed += 1;
            }
            let expired = |s: &Shared| s.streams == 0 && now - s.idle_since >= kept.idle_timeout;
            if line.shared.as_ref().is_some_and(expired) {
                line.shared = None;
                closed += 1;
            }
        }
        closed
    }
}

/// A new connection's places under the breaker's limits, if it has one.
fn take_slots(breaker: Option<&Arc<CircuitBreaker>>) -> Result<Option<Connecting>, Rejection> {
    breaker.map(|b| b.try_connect()).transpose()
}
