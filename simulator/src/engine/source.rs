//! Where requests come from: an open-loop source whose rate may change over
//! time, closed-loop clients, or the requests of an access log.
//!
//! A Poisson source with a time-varying rate is drawn by thinning (Lewis and
//! Shedler, 1979): candidates arrive at the profile's peak rate and each is
//! kept with probability `rate(t) / peak`. Candidate gaps and the keep
//! decisions come from the arrivals stream and route choices from the routes
//! stream, one draw set per candidate, so every variant sees the same
//! arrivals however it balances them.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::{Scope, ScopedJoinHandle};

use rand::RngExt;
use rand_pcg::Pcg64;

use super::admits;
use super::measure::{Ended, Tally};
use crate::random::{keyed_uniform, poisson_gap, stream, ServiceTime, Stream};
use crate::time::{Nanos, SECOND};
use crate::workload::{Arrivals, Length, Pattern, Replay, Workload};

/// The open-loop arrival process, and route choice for every request.
pub(super) struct Source {
    gaps: Pcg64,
    routes: Pcg64,
    /// Running sums of the traffic weights, for choosing a share.
    cumulative: Vec<f64>,
    /// The open-loop profile's peak rate, and its rate when it never
    /// changes, worked out once rather than per candidate.
    peak: f64,
    flat: Option<f64>,
    /// The next open-loop arrival, when there is one.
    pub next: Option<Nanos>,
    /// The access log being replayed, if any.
    replay: Option<Replay>,
    /// In a replay, the index of the latest arrival handed out.
    cursor: usize,
    /// A running hash of every arrival, to show variants saw the same ones.
    #[cfg(test)]
    pub digest: u64,
}

impl Source {
    pub fn new(workload: &Workload, seed: u64) -> Source {
        let cumulative = workload
            .traffic
            .iter()
            .scan(0.0, |sum, share| {
                *sum += share.weight;
                Some(*sum)
            })
            .collect();
        let (peak, flat) = match &workload.arrivals {
            Arrivals::Open { profile, .. } => {
                (profile.peak(), profile.is_flat().then(|| profile.at(0)))
            }
            _ => (0.0, None),
        };
        let mut source = Source {
            gaps: stream(seed, Stream::Arrivals),
            routes: stream(seed, Stream::Routes),
            cumulative,
            peak,
            flat,
            next: None,
            replay: None,
            cursor: 0,
            #[cfg(test)]
            digest: 0,
        };
        match &workload.arrivals {
            Arrivals::Open { .. } => source.next = source.after(workload, 0, true),
            Arrivals::Replay(replay) => {
                source.next = replay.times.first().copied();
                source.replay = Some(replay.clone());
            }
            Arrivals::Closed { .. } => {}
        }
        source
    }

    /// The open-loop arrival after one at `after`.
    pub fn after(&mut self, workload: &Workload, after: Nanos, first: bool) -> Option<Nanos> {
        let (pattern, profile) = match &workload.arrivals {
            Arrivals::Open { pattern, profile } => (pattern, profile),
            Arrivals::Replay(replay) => {
                self.cursor += 1;
                return replay.times.get(self.cursor).copied();
            }
            Arrivals::Closed { .. } => return None,
        };
        match pattern {
            Pattern::Constant => {
                let rate = profile.at(after);
                if rate <= 0.0 {
                    return None;
                }
                let gap = (SECOND as f64 / rate).round() as Nanos;
                Some(if first { 0 } else { after.saturating_add(gap.max(1)) })
            }
            Pattern::Poisson => {
                let peak = self.peak;
                let mut t = after;
                // Thinning; the bound keeps a profile near zero from spinning.
                for _ in 0..1_000_000 {
                    t = t.saturating_add(poisson_gap(&mut self.gaps, peak));
                    let keep: f64 = self.gaps.random();
                    let rate = self.flat.unwrap_or_else(|| profile.at(t));
                    if keep * peak < rate {
                        #[cfg(test)]
                        {
                            self.digest = mix(self.digest ^ t);
                        }
                        return Some(t);
                    }
                }
                None
            }
        }
    }

    /// The client of the latest replayed arrival, in a replay.
    pub fn client(&self) -> Option<u32> {
        self.replay.as_ref().and_then(|r| r.clients.get(self.cursor)).copied()
    }

    /// The traffic share of the next request.
    pub fn share(&mut self) -> usize {
        if let Some(replay) = &self.replay {
            return replay.shares.get(self.cursor).map_or(0, |&s| s as usize);
        }
        // The routes stream feeds nothing else, so one share needs no draw.
        let share = if self.cumulative.len() == 1 {
            0
        } else {
            let total = self.cumulative.last().copied().unwrap_or(0.0);
            let u = self.routes.random::<f64>() * total;
            self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1)
        };
        #[cfg(test)]
        {
            self.digest = mix(self.digest ^ share as u64);
        }
        share
    }
}

#[cfg(test)]
fn mix(x: u64) -> u64 {
    (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// One open-loop or replayed arrival, with the draws that do not depend on
/// the variant made ahead: its traffic share and, when every modelled
/// endpoint has the same service law, the service demand of its first try.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upcoming {
    pub at: Nanos,
    pub share: u32,
    /// The replayed client that sent it.
    pub client: Option<u32>,
    pub demand: Option<Nanos>,
}

/// The arrivals of an open-loop or replay run, in order, exactly as the
/// run would draw them itself: the n-th is request `n`, and they stop where
/// the run's length does.
pub(super) struct Draws<'a> {
    workload: &'a Workload,
    source: Source,
    seed: u64,
    /// The service law of every modelled endpoint, when they share one.
    law: Option<ServiceTime>,
    next: Option<Nanos>,
    created: u64,
    admitted: u64,
}

impl<'a> Draws<'a> {
    pub fn new(workload: &'a Workload, seed: u64, law: Option<ServiceTime>) -> Draws<'a> {
        let source = Source::new(workload, seed);
        let next = source.next.filter(|&at| admits(workload, at, 0));
        Draws { workload, source, seed, law, next, created: 0, admitted: 0 }
    }

    /// The running hash of the arrivals drawn.
    #[cfg(test)]
    pub fn digest(&self) -> u64 {
        self.source.digest
    }
}

impl Iterator for Draws<'_> {
    type Item = Upcoming;

    fn next(&mut self) -> Option<Upcoming> {
        let at = self.next.take()?;
        let share = self.source.share() as u32;
        let client = self.source.client();
        let id = self.created;
        self.created += 1;
        let measured = at >= self.workload.warmup;
        self.admitted += u64::from(measured);
        let demand = self.law.as_ref().map(|law| law.quantile(keyed_uniform(self.seed, id, 1)));
        // A request run ends at its last measured arrival.
        let last =
            matches!(self.workload.length, Length::Requests(n) if measured && self.admitted == n);
        if !last {
            let after = self.source.after(self.workload, at, false);
            self.next = after.filter(|&next| admits(self.workload, next, self.admitted));
        }
        Some(Upcoming { at, share, client, demand })
    }
}

impl Draws<'_> {
    /// Whether arrivals may have another share than the first.
    fn shares(&self) -> bool {
        self.source.cumulative.len() > 1 || self.source.replay.is_some()
    }

    /// Whether arrivals have a replayed client.
    fn clients(&self) -> bool {
        self.source.replay.is_some()
    }
}

/// Arrivals per batch handed from the helper thread to the run. The helper
/// draws faster than the run uses, so it mostly waits, and every batch (and
/// every batch of ended requests, [`ENDED_BATCH`]) the run hands back wakes
/// it, at the price of a system call: large batches keep those few.
const BATCH: usize = 8192;

/// Batches of arrivals the helper hands over before it waits for one back.
const AHEAD: usize = 4;

/// A batch of arrivals as handed over, in as few bytes as they need: the
/// instant and drawn demand of each, and shares and clients only when the
/// run has any but the first share, or clients at all.
#[derive(Debug, Default)]
pub(super) struct Batch {
    slim: Vec<Slim>,
    shares: Vec<u32>,
    clients: Vec<Option<u32>>,
}

#[derive(Debug, Clone, Copy)]
struct Slim {
    at: Nanos,
    /// The demand of the first try; 0 when not drawn ahead.
    demand: Nanos,
}

impl Batch {
    /// Fill with up to [`BATCH`] arrivals from `draws`.
    fn fill(&mut self, draws: &mut Draws<'_>) {
        self.slim.clear();
        self.shares.clear();
        self.clients.clear();
        let (shares, clients) = (draws.shares(), draws.clients());
        // At once, rather than by doubling: a batch is usually full.
        self.slim.reserve(BATCH);
        for u in draws.by_ref().take(BATCH) {
            self.slim.push(Slim { at: u.at, demand: u.demand.unwrap_or(0) });
            if shares {
                self.shares.push(u.share);
            }
            if clients {
                self.clients.push(u.client);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.slim.is_empty()
    }

    #[inline]
    fn at(&self, i: usize) -> Option<Nanos> {
        self.slim.get(i).map(|s| s.at)
    }

    #[inline]
    fn get(&self, i: usize, law: bool) -> Upcoming {
        let Some(&Slim { at, demand }) = self.slim.get(i) else { return NONE_YET };
        Upcoming {
            at,
            share: self.shares.get(i).copied().unwrap_or(0),
            client: self.clients.get(i).copied().flatten(),
            demand: law.then_some(demand),
        }
    }
}

/// What the run hands back to the helper thread.
pub(super) enum Back {
    /// An arrivals batch it is done with, to refill.
    Spent(Batch),
    /// Requests that ended, for the helper's tally.
    Ended(Vec<Ended>),
    /// Nothing more will come: give back the tally.
    Done,
}

/// The run's end of the helper's tally.
pub(super) struct Helper {
    back: SyncSender<Back>,
    /// Emptied batches of ended requests come back here for reuse.
    spare: Receiver<Vec<Ended>>,
}

/// Ended requests per batch handed to the helper.
pub(super) const ENDED_BATCH: usize = 8192;

impl Helper {
    /// Hand `ended` over; an empty batch to fill next.
    pub fn tally(&mut self, ended: Vec<Ended>) -> Vec<Ended> {
        // A helper that is gone panicked, which joining it reports.
        let _ = self.back.send(Back::Ended(ended));
        self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(ENDED_BATCH))
    }

    /// Let the helper finish its tally.
    pub fn done(self) {
        let _ = self.back.send(Back::Done);
    }
}

/// Where a run takes its arrivals from: drawn as it goes, or ahead on a
/// helper thread (when a core would otherwise sit idle) and handed over in
/// batches. Both give the same arrivals. The helper also keeps the run's
/// [`Tally`], from the ended requests the run hands it in batches.
pub(super) enum Feed<'a> {
    Inline {
        draws: Box<Draws<'a>>,
        current: Upcoming,
    },
    Ahead {
        batches: Receiver<Batch>,
        back: SyncSender<Back>,
        batch: Batch,
        /// The index of the current arrival in `batch`.
        at: usize,
        /// Whether first tries' demands were drawn ahead.
        law: bool,
    },
}

/// What [`Feed::current`] reads before the first arrival.
const NONE_YET: Upcoming = Upcoming { at: 0, share: 0, client: None, demand: None };

impl<'a> Feed<'a> {
    pub fn inline(draws: Draws<'a>) -> Feed<'a> {
        Feed::Inline { draws: Box::new(draws), current: NONE_YET }
    }

    /// Draw `draws` on a thread of `scope`, a few batches ahead of the run,
    /// and keep the run's tally there. The thread gives back the draws and
    /// the tally once told it is done.
    pub fn ahead<'scope>(
        scope: &'scope Scope<'scope, '_>,
        mut draws: Draws<'scope>,
        workload: &'scope Workload,
    ) -> (Feed<'a>, Helper, ScopedJoinHandle<'scope, (Draws<'scope>, Tally)>) {
        // The helper never has more than `AHEAD` batches out, so it never
        // waits to hand one over; it only ever waits for what comes back.
        let (filled, batches) = sync_channel::<Batch>(AHEAD);
        let (back, returned) = sync_channel::<Back>(2 * AHEAD);
        let (spare, spares) = sync_channel::<Vec<Ended>>(4);
        let law = draws.law.is_some();
        let thread = scope.spawn(move || {
            let mut tally = Tally::new(workload);
            let mut filled = Some(filled);
            let (mut out, mut empties) = (0, Vec::<Batch>::new());
            loop {
                let message = match returned.try_recv() {
                    Ok(message) => message,
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {
                        if let Some(sender) = filled.as_ref().filter(|_| out < AHEAD) {
                            let mut batch = empties.pop().unwrap_or_default();
                            batch.fill(&mut draws);
                            // An empty batch is the end, and so is a run that stopped reading.
                            if batch.is_empty() || sender.send(batch).is_err() {
                                filled = None;
                            } else {
                                out += 1;
                            }
                            continue;
                        }
                        match returned.recv() {
                            Ok(message) => message,
                            Err(_) => break,
                        }
                    }
                };
                match message {
                    Back::Spent(batch) => {
                        out -= 1;
                        empties.push(batch);
                    }
                    Back::Ended(mut ended) => {
                        for e in &ended {
                            tally.record(e);
                        }
                        ended.clear();
                        let _ = spare.try_send(ended);
                    }
                    Back::Done => break,
                }
            }
            (draws, tally)
        });
        let helper = Helper { back: back.clone(), spare: spares };
        let feed = Feed::Ahead { batches, back, batch: Batch::default(), at: 0, law };
        (feed, helper, thread)
    }

    /// Move to the next arrival and give its instant, or `None` at the end.
    #[inline]
    pub fn advance(&mut self) -> Option<Nanos> {
        match self {
            Feed::Inline { draws, current } => {
                *current = draws.next()?;
                Some(current.at)
            }
            Feed::Ahead { batch, at, .. } => {
                if let Some(next) = batch.at(*at + 1) {
                    *at += 1;
                    return Some(next);
                }
                self.next_batch()
            }
        }
    }

    /// [`Feed::advance`] past the end of the batch at hand: the first
    /// arrival of the next batch (kept out of line, as it runs once a batch).
    #[inline(never)]
    fn next_batch(&mut self) -> Option<Nanos> {
        let Feed::Ahead { batches, back, batch, at, .. } = self else { return None };
        // The spent batch goes back first, for the helper to refill.
        let done = std::mem::take(batch);
        if !done.is_empty() {
            let _ = back.send(Back::Spent(done));
        }
        *batch = batches.recv().ok()?;
        *at = 0;
        batch.at(0)
    }

    /// The arrival [`Feed::advance`] moved to.
    #[inline]
    pub fn current(&self) -> Upcoming {
        match self {
            Feed::Inline { current, .. } => *current,
            Feed::Ahead { batch, at, law, .. } => batch.get(*at, *law),
        }
    }
}
