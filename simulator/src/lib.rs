//! Sluice's simulator: replays a compiled plan under synthetic load in
//! virtual time, to compare balancing algorithms before a rollout.
//!
//! In: a [`Plan`](sluice_compiler::Plan) and a scenario file. [`check`]
//! validates the scenario against the plan and resolves it into a
//! [`Workload`]; [`simulate`] runs one discrete-event simulation per
//! balancing variant and returns a [`Report`], which prints as a table or as
//! JSON.
//!
//! Every endpoint choice is made by [`sluice_traffic::Balancer`], the code
//! `sluice serve` runs, so a result is evidence about the gateway rather than
//! about a model of it. Runs are deterministic: time is virtual ([`time`]),
//! randomness comes from seeded streams ([`random`]), and nothing here reads
//! the wall clock or an ambient random generator. The engine is checked
//! against queueing theory (M/M/1, M/M/c, M/D/1) in its tests.

pub mod assertion;
pub mod check;
mod engine;
pub mod html;
pub mod queue;
pub mod random;
pub mod report;
pub mod request;
pub mod scenario;
pub mod stats;
pub mod time;
pub mod workload;

pub use assertion::{Assertion, AssertionError};
pub use check::{check_scenario, CheckedScenario};
pub use engine::algorithm;
pub use report::Report;
pub use scenario::Scenario;
pub use workload::{Topology, Variant, Workload};

mod replay;

/// The seed used when neither the scenario nor the command line gives one.
pub const DEFAULT_SEED: u64 = 0;

/// Run every variant of `workload` on `topology` and report the results.
///
/// # Panics
///
/// If `workload` breaks the invariants [`Workload`] documents (no traffic,
/// or a reached pool without a service model), which a workload from
/// [`check_scenario`] never does.
pub fn simulate(topology: &Topology, workload: &Workload, seed: u64) -> Report {
    simulate_replicated(topology, workload, seed, 1)
}

/// Run every variant `replications` times with independent seeds (the
/// first is `seed` itself) and report means with 95% confidence intervals.
///
/// Runs are independent, so they share the machine's cores; the report
/// lists variants in the workload's order and does not depend on scheduling.
pub fn simulate_replicated(
    topology: &Topology,
    workload: &Workload,
    seed: u64,
    replications: u32,
) -> Report {
    simulate_with_progress(topology, workload, seed, replications, &Progress::default())
}

/// How far a simulation has got, for a progress display: runs (variant ×
/// replication) finished out of all, and events processed so far. Counters
/// only; the simulator reads no clock, the display decides when to look.
#[derive(Debug, Default)]
pub struct Progress {
    events: std::sync::atomic::AtomicU64,
    runs_done: std::sync::atomic::AtomicUsize,
    runs_total: std::sync::atomic::AtomicUsize,
}

impl Progress {
    /// `(runs finished, runs in all, events processed)`.
    pub fn read(&self) -> (usize, usize, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.runs_done.load(Relaxed), self.runs_total.load(Relaxed), self.events.load(Relaxed))
    }
}

/// [`simulate_replicated`], counting progress into `progress` as it goes.
pub fn simulate_with_progress(
    topology: &Topology,
    workload: &Workload,
    seed: u64,
    replications: u32,
    progress: &Progress,
) -> Report {
    let replications = replications.max(1);
    let jobs: Vec<(usize, u64)> = (0..workload.variants.len())
        .flat_map(|v| (0..replications).map(move |k| (v, replication_seed(seed, k))))
        .collect();
    let outcomes = run_jobs(topology, workload, &jobs, progress);

    let (warmup_ns, measured_ns) = outcomes.first().map_or((0, 0), |o| (o.warmup, o.measured));
    let per_variant = outcomes.chunks(replications as usize);
    let variants =
        per_variant.map(|runs| report::combine(runs.iter().map(|o| &o.report))).collect();
    Report {
        seed,
        arrivals: describe_arrivals(workload),
        rate: workload.base_rate(),
        warmup_ns,
        measured_ns,
        replications,
        events: workload
            .events
            .iter()
            .map(|f| {
                let pool = &topology.pools[f.pool];
                let label = format!(
                    "{} {} {}",
                    f.kind.name(),
                    pool.name,
                    pool.endpoints.get(f.endpoint).map_or("", |e| e.label.as_str())
                );
                report::Mark { at_ns: f.at, label }
            })
            .collect(),
        variants,
    }
}

/// The seed of replication `k` (from 0): the run's seed first, then
/// well-spread others, so that one replication can be run again alone.
pub fn replication_seed(seed: u64, k: u32) -> u64 {
    if k == 0 {
        return seed;
    }
    let mut z = seed ^ u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// Run `(variant, seed)` jobs on as many threads as the machine has cores,
/// and return their outcomes in job order. When there are at least twice as
/// many cores as jobs, each job draws its arrivals on a second thread.
fn run_jobs(
    topology: &Topology,
    workload: &Workload,
    jobs: &[(usize, u64)],
    progress: &Progress,
) -> Vec<engine::Outcome> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    progress.runs_total.store(jobs.len(), Ordering::Relaxed);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(jobs.len());
    let ahead = cores >= 2 * threads;
    let mut done: Vec<(usize, engine::Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(v, seed)) = jobs.get(i) else { break };
                        let variant = workload.variants[v];
                        let outcome = engine::run_variant_counting(
                            topology,
                            workload,
                            seed,
                            variant,
                            &progress.events,
                            ahead,
                        );
                        progress.runs_done.fetch_add(1, Ordering::Relaxed);
                        mine.push((i, outcome));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, o)| o).collect()
}

fn describe_arrivals(workload: &Workload) -> String {
    use workload::{Arrivals, Pattern};
    match &workload.arrivals {
        Arrivals::Open { pattern, profile } => {
            let kind = match pattern {
                Pattern::Poisson => "Poisson",
                Pattern::Constant => "constant",
            };
            let varying = match &profile.daily {
                Some(daily) => format!(" (daily curve, a day every {})", time::Human(daily.period)),
                None if profile.is_flat() => String::new(),
                None => " (varying)".to_owned(),
            };
            format!("{} req/s {kind} arrivals{varying}", report::trim_float(profile.base))
        }
        Arrivals::Closed { clients, think } => {
            format!("{clients} closed-loop clients, {} think time", time::Human(*think))
        }
        Arrivals::Replay(replay) => format!(
            "access log replay of {} requests from {} clients at {}x",
            replay.times.len(),
            replay.distinct_clients,
            report::trim_float(replay.scale)
        ),
    }
}
