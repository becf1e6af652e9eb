//! `sluice simulate`: replay a spec under a scenario's synthetic load in
//! virtual time, once per balancing variant, and print the comparison.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sluice_simulator::check::MAX_REQUESTS;
use sluice_simulator::{Assertion, Topology, DEFAULT_SEED};

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
    /// Run each variant N times with independent seeds; figures are means
    /// (counts are sums) and, from N = 2, each has a 95% confidence
    /// half-width (CSV: a `_ci95` column per figure, empty when N = 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    replications: u32,
    /// Also write a self-contained HTML report with charts to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// A budget every variant must meet, such as 'p99 < 250ms' or
    /// 'errors < 0.1%'; exit 1 when one fails. Repeatable.
    #[arg(long = "assert", value_name = "BUDGET")]
    asserts: Vec<String>,
}

/// How `simulate` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Aligned tables for a terminal.
    Table,
    /// The same figures as one JSON document.
    Json,
    /// One CSV row per variant.
    Csv,
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

    // The scenario's run size was checked for one replication.
    let topology = Topology::from_plan(&plan);
    let runs = workload.variants.len() as f64 * f64::from(args.replications);
    let per_run = sluice_simulator::check::run_requests(&topology, &workload);
    if let Some(per_run) = per_run.filter(|n| n * runs > MAX_REQUESTS) {
        eprintln!(
            "error: --replications {} runs each of the {} variant(s) {} times, about {:.0} \
             requests in all ({per_run:.0} per run), more than the limit of {MAX_REQUESTS:.0}; \
             lower --replications, or shorten the scenario's run",
            args.replications,
            workload.variants.len(),
            args.replications,
            per_run * runs,
        );
        return ExitCode::from(2);
    }

    // Budgets are read before the run, so a typo costs no waiting.
    let mut budgets = Vec::new();
    for text in &args.asserts {
        match text.parse::<Assertion>() {
            Ok(a) => budgets.push(a),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }

    let seed = args.seed.or(workload.seed).unwrap_or(DEFAULT_SEED);
    let progress = sluice_simulator::Progress::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        let display = scope.spawn(|| show_progress(&progress, &done));
        let report = sluice_simulator::simulate_with_progress(
            &topology,
            &workload,
            seed,
            args.replications,
            &progress,
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = display.join();
        report
    });
    match args.format {
        Format::Table => crate::out(&report.to_table()),
        Format::Json => crate::out(&report.to_json()),
        Format::Csv => crate::out(&report.to_csv()),
    }
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, report.to_html()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    }

    let failures: Vec<String> = budgets.iter().flat_map(|b| b.failures(&report)).collect();
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("budget failed: {failure}");
        }
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A progress bar on stderr for runs longer than a second, only when stderr
/// is a terminal (nothing at all in pipes and CI logs); cleared at the end.
fn show_progress(progress: &sluice_simulator::Progress, done: &std::sync::atomic::AtomicBool) {
    use std::io::{IsTerminal, Write};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    if !std::io::stderr().is_terminal() {
        return;
    }
    let start = Instant::now();
    let mut shown = false;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let (finished, total, events) = progress.read();
        let filled = (finished * 30).checked_div(total).unwrap_or(0).min(30);
        let line = format!(
            "\rsimulating [{}{}] {finished}/{total} runs, {:.1} M events",
            "#".repeat(filled),
            ".".repeat(30 - filled),
            events as f64 / 1e6
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        shown = true;
    }
    if shown {
        let _ = std::io::stderr().write_all(format!("\r{:70}\r", "").as_bytes());
    }
}
