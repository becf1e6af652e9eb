//! Where requests come from: an open-loop source whose rate may change over
//! time, closed-loop clients, or the requests of an access log.
//!
//! A Poisson source with a time-varying rate is drawn by thinning (Lewis and
//! Shedler, 1979): candidates arrive at the profile's peak rate and each is
//! kept with probability `rate(t) / peak`. Candidate gaps and the keep
//! decisions come from the arrivals stream and route choices from the routes
//! stream, one draw set per candidate, so every variant sees the same
//! arrivals however it balances them.

use rand::RngExt;
use rand_pcg::Pcg64;

use crate::random::{poisson_gap, stream, Stream};
use crate::time::{Nanos, SECOND};
use crate::workload::{Arrivals, Pattern, Replay, Workload};

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
                let flat = profile.changes.is_empty() && profile.bursts.is_empty();
                (profile.peak(), flat.then(|| profile.at(0)))
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
