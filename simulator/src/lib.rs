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

pub mod check;
mod engine;
pub mod queue;
pub mod random;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod time;
pub mod workload;

pub use check::{check_scenario, CheckedScenario};
pub use engine::algorithm;
pub use report::Report;
pub use scenario::Scenario;
pub use workload::{Topology, Variant, Workload};

/// The seed used when neither the scenario nor the command line gives one.
pub const DEFAULT_SEED: u64 = 0;

/// Run every variant of `workload` on `topology` and report the results.
///
/// Variants are independent runs over the same random streams, so they run
/// on separate threads; the report lists them in the workload's order and
/// does not depend on scheduling.
///
/// # Panics
///
/// If `workload` breaks the invariants [`Workload`] documents (no traffic,
/// or a reached pool without a service model), which a workload from
/// [`check_scenario`] never does.
pub fn simulate(topology: &Topology, workload: &Workload, seed: u64) -> Report {
    let outcomes: Vec<engine::Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = workload
            .variants
            .iter()
            .map(|&variant| {
                scope.spawn(move || engine::run_variant(topology, workload, seed, variant))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });

    let (warmup_ns, measured_ns) = outcomes.first().map_or((0, 0), |o| (o.warmup, o.measured));
    Report {
        seed,
        rate: workload.rate,
        warmup_ns,
        measured_ns,
        variants: outcomes.into_iter().map(|o| o.report).collect(),
    }
}
