//! Endpoints as the model sees them: multi-server FIFO queues with a state
//! that scenario events change, and the tries they hold.

use std::collections::VecDeque;

use sluice_traffic::circuit::OwnedPermit;

use crate::time::Nanos;
use crate::workload::EndpointLoad;

/// What a scenario event made of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Up,
    /// Refuses connections.
    Crashed,
    /// Answers 503 at once.
    FailingFast,
    /// Accepts requests and never answers.
    BlackHole,
    /// Accepts no new connection (a connect hangs until the gateway's
    /// connect timeout), while serving what it already holds.
    NotAccepting,
}

/// One endpoint's queue and its bookkeeping.
#[derive(Debug)]
pub(super) struct Station {
    pub pool: usize,
    /// Index within the pool, as the balancer knows it.
    pub index: usize,
    /// `None` for endpoints of pools the scenario does not model.
    pub model: Option<EndpointLoad>,
    pub state: State,
    /// Service times are multiplied by this.
    pub slow: f64,
    /// Share of served requests answered 500.
    pub failing: f64,
    pub busy: u32,
    /// Its workers and queue limit, from `model` (read on every try).
    workers: u32,
    queue_limit: Option<u32>,
    /// Tries waiting for a worker, by slot. (Those being served are not
    /// listed: only a crash needs them, and [`TrySlots::serving`] finds them.)
    pub waiting: VecDeque<u32>,
    /// Integral of busy workers over time, in worker-nanoseconds, up to `since`.
    pub area: u128,
    pub since: Nanos,
    pub area_at_open: u128,
    pub area_at_close: u128,
    /// Measured tries this endpoint finished serving.
    pub served: u64,
    /// Whether an [`super::Event::Stall`] is due for its queue.
    pub stall_check: bool,
    /// Tries in the queue since `stall_mark` less the stall timeout, or
    /// earlier, have been given up on already.
    pub stall_mark: Nanos,
}

impl Station {
    pub fn new(pool: usize, index: usize, model: Option<EndpointLoad>) -> Station {
        let workers = model.as_ref().map_or(1, |m| m.workers.max(1));
        let queue_limit = model.as_ref().and_then(|m| m.queue_limit);
        Station {
            pool,
            index,
            model,
            state: State::Up,
            slow: 1.0,
            failing: 0.0,
            busy: 0,
            workers,
            queue_limit,
            waiting: VecDeque::new(),
            area: 0,
            since: 0,
            area_at_open: 0,
            area_at_close: 0,
            served: 0,
            stall_check: false,
            stall_mark: 0,
        }
    }

    #[inline]
    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// Whether a new try finds the queue full.
    #[inline]
    pub fn full(&self) -> bool {
        let limit = self.queue_limit;
        self.busy >= self.workers && limit.is_some_and(|l| self.waiting.len() >= l as usize)
    }

    #[inline]
    pub fn advance(&mut self, now: Nanos) {
        self.area += u128::from(self.busy) * u128::from(now.saturating_sub(self.since));
        self.since = now;
    }
}

/// One try of a request at one endpoint.
#[derive(Debug, Default)]
pub(super) struct Try {
    /// The request's slot, and its id (slots are reused; ids are not).
    pub request: u32,
    pub id: u64,
    /// 1 for the first try of the request.
    pub number: u32,
    /// Flat endpoint index.
    pub endpoint: u32,
    /// The endpoint's index within its pool, as the balancer knows it.
    pub index: u32,
    pub started: Nanos,
    pub measured: bool,
    /// The gateway still waits for this try's answer.
    pub awaited: bool,
    /// The endpoint holds this try (queued or in service).
    pub held: bool,
    /// The circuit-breaker slot, given back when the gateway stops waiting.
    pub permit: Option<OwnedPermit>,
    /// Its service demand, when drawn ahead.
    pub demand: Option<Nanos>,
    /// When it went into service, as a count of services begun before it
    /// plus one; 0 while it has not.
    pub service: u64,
}

/// Tries in flight, in reusable slots. A slot's generation changes when it
/// is freed, so events about a try that is gone are recognised and dropped.
#[derive(Debug, Default)]
pub(super) struct TrySlots {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Services begun so far.
    begun: u64,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    /// Whether `t` is a try in flight (otherwise the slot is free).
    live: bool,
    t: Try,
}

impl TrySlots {
    /// A free slot, to [`TrySlots::fill`] at once.
    #[inline]
    pub fn vacant(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot::default());
            (self.slots.len() - 1) as u32
        })
    }

    /// Store `t` in `slot` from [`TrySlots::vacant`]; its generation.
    #[inline(always)]
    pub fn fill(&mut self, slot: u32, t: Try) -> u32 {
        let s = &mut self.slots[slot as usize];
        // Field by field: copying the try whole goes through the stack, in
        // pieces of other sizes than were written, which stalls the store.
        let Try {
            request,
            id,
            number,
            endpoint,
            index,
            started,
            measured,
            awaited,
            held,
            permit,
            demand,
            service,
        } = t;
        (s.t.request, s.t.id, s.t.number, s.t.endpoint) = (request, id, number, endpoint);
        s.t.index = index;
        (s.t.started, s.t.measured, s.t.awaited, s.t.held) = (started, measured, awaited, held);
        (s.t.permit, s.t.demand, s.t.service) = (permit, demand, service);
        s.live = true;
        s.generation
    }

    /// The try in `slot`, if it is still the one of `generation`.
    #[inline]
    pub fn get(&mut self, slot: u32, generation: u32) -> Option<&mut Try> {
        match self.slots.get_mut(slot as usize) {
            Some(s) if s.live && s.generation == generation => Some(&mut s.t),
            _ => None,
        }
    }

    /// The try in `slot` goes into service, if the slot holds one: its
    /// generation and the try.
    #[inline]
    pub fn begin(&mut self, slot: u32) -> Option<(u32, &Try)> {
        let s = self.slots.get_mut(slot as usize).filter(|s| s.live)?;
        self.begun += 1;
        s.t.service = self.begun;
        Some((s.generation, &s.t))
    }

    /// The slots of the tries `endpoint` is serving, in the order they went
    /// into service.
    pub fn serving(&self, endpoint: u32) -> Vec<u32> {
        let mut serving: Vec<(u64, u32)> = (self.slots.iter().zip(0..))
            .filter(|(s, _)| s.live && s.t.held && s.t.service > 0 && s.t.endpoint == endpoint)
            .map(|(s, slot)| (s.t.service, slot))
            .collect();
        serving.sort_unstable();
        serving.into_iter().map(|(_, slot)| slot).collect()
    }

    /// When the try in `slot` started (0 for a free slot).
    pub fn started(&self, slot: u32) -> Nanos {
        self.slots.get(slot as usize).filter(|s| s.live).map_or(0, |s| s.t.started)
    }

    #[inline]
    pub fn at(&mut self, slot: u32) -> Option<&mut Try> {
        self.slots.get_mut(slot as usize).filter(|s| s.live).map(|s| &mut s.t)
    }

    /// The gateway stops waiting for the try in `slot`, if the slot holds
    /// one: its permit goes back, and the slot is freed unless the endpoint
    /// still holds the try. The try's request, endpoint index within the
    /// pool, and start.
    #[inline]
    pub fn stop_waiting(&mut self, slot: u32) -> Option<(u32, u32, Nanos)> {
        let s = self.slots.get_mut(slot as usize).filter(|s| s.live)?;
        s.t.awaited = false;
        s.t.permit = None;
        let ended = (s.t.request, s.t.index, s.t.started);
        // As `release_if_done`, with the slot at hand.
        if !s.t.held {
            s.live = false;
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
        }
        Some(ended)
    }

    /// Free the slot when neither the gateway nor the endpoint needs it.
    #[inline]
    pub fn release_if_done(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else { return };
        // (The permit went back when the gateway stopped waiting.)
        if s.live && !s.t.awaited && !s.t.held {
            s.live = false;
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
        }
    }
}
