//! `sluice simulate`: replay a spec under a scenario's synthetic load in
//! virtual time, once per balancing variant, and print the comparison.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sluice_simulator::{Topology, DEFAULT_SEED};

use crate::EXIT_CANNOT_RUN;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The spec (or compiled plan) to replay.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// The scenario: arrivals, traffic mix, service models and balancers to compare.
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// Seed of every random stream; overrides the scenario's `seed`.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// How `simulate` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Aligned tables for a terminal.
    Table,
    /// The same figures as one JSON document.
    Json,
}

pub fn simulate(args: SimulateArgs) -> ExitCode {
    let plan = match sluice_compiler::load_plan(&args.spec) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    let Some(source) = crate::check::read_source(&args.scenario) else {
        return ExitCode::from(EXIT_CANNOT_RUN);
    };

    // Findings go to stderr; errors stop the run, warnings do not.
    let checked = sluice_simulator::check_scenario(source, Some(&plan));
    if !checked.diagnostics.is_empty() {
        eprint!("{}", crate::report::human(&checked.diagnostics));
    }
    let Some(workload) = checked.workload else {
        let errors = crate::report::counts(&checked.diagnostics).errors;
        eprintln!("error: {} has {errors} error(s); nothing simulated", args.scenario.display());
        return ExitCode::from(EXIT_CANNOT_RUN);
    };

    let seed = args.seed.or(workload.seed).unwrap_or(DEFAULT_SEED);
    let report = sluice_simulator::simulate(&Topology::from_plan(&plan), &workload, seed);
    match args.format {
        Format::Table => crate::out(&report.to_table()),
        Format::Json => crate::out(&report.to_json()),
    }
    ExitCode::SUCCESS
}
