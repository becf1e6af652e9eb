//! `sluice check`, `sluice compile` and `sluice schema`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use sluice_compiler::{Checked, Diagnostic, SourceFile};

use crate::report::{self, Format};
use crate::EXIT_CANNOT_RUN;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Spec files to check.
    #[arg(required = true, value_name = "SPEC")]
    specs: Vec<PathBuf>,
    /// Also check this scenario against the (single) spec.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Treat warnings as errors for the exit status.
    #[arg(long, value_name = "LEVEL", value_parser = ["warnings"])]
    deny: Option<String>,
    /// Write the report to this file instead of the terminal.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The spec to compile.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// Where to write the plan.
    #[arg(short = 'o', long, value_name = "PLAN")]
    output: PathBuf,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema to print.
    #[arg(value_enum, default_value_t = SchemaKind::Spec)]
    kind: SchemaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SchemaKind {
    Spec,
    Scenario,
}

/// Read a file for checking; `None` (after saying why) when it cannot be read.
pub fn read_source(path: &Path) -> Option<SourceFile> {
    match std::fs::read(path) {
        Ok(bytes) => Some(SourceFile::from_bytes(path.display().to_string(), bytes)),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            None
        }
    }
}

pub fn check(args: CheckArgs) -> ExitCode {
    if args.scenario.is_some() && args.specs.len() != 1 {
        eprintln!("error: --scenario checks a scenario against one spec; name exactly one spec");
        return ExitCode::from(2);
    }

    let mut unreadable = false;
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut checked: Vec<Checked> = Vec::new();
    for path in &args.specs {
        let Some(source) = read_source(path) else {
            unreadable = true;
            continue;
        };
        let result = sluice_compiler::check(source);
        diagnostics.extend(result.diagnostics.iter().cloned());
        checked.push(result);
    }
    if let (Some(scenario), Some(spec)) = (&args.scenario, checked.first()) {
        match read_source(scenario) {
            Some(source) => {
                let found = sluice_simulator::check_scenario(source, spec.plan.as_ref());
                diagnostics.extend(found.diagnostics);
            }
            None => unreadable = true,
        }
    }

    let counts = report::counts(&diagnostics);
    let failed = counts.errors > 0 || (args.deny.is_some() && counts.warnings > 0);
    let text = match args.format {
        Format::Human => {
            let mut text = report::human(&diagnostics);
            text.push_str(&summary(&args.specs, &checked, counts));
            text
        }
        Format::Json => report::json(&diagnostics, !failed),
        Format::Github => report::github(&diagnostics),
        Format::Sarif => report::sarif(&diagnostics),
    };
    if let Err(code) = emit(&text, args.output.as_deref(), args.format == Format::Human) {
        return code;
    }

    if unreadable {
        ExitCode::from(EXIT_CANNOT_RUN)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn summary(paths: &[PathBuf], checked: &[Checked], counts: report::Counts) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if counts.errors == 0 && counts.warnings == 0 {
        let mut out = String::new();
        for (path, c) in paths.iter().zip(checked) {
            if let Some(plan) = &c.plan {
                out.push_str(&format!(
                    "{}: ok ({}, {}, {})\n",
                    path.display(),
                    plural(plan.listeners.len(), "listener"),
                    plural(plan.pools.len(), "pool"),
                    plural(plan.routes.len(), "route"),
                ));
            }
        }
        return out;
    }
    format!(
        "{}, {} in {}\n",
        plural(counts.errors, "error"),
        plural(counts.warnings, "warning"),
        plural(paths.len(), "file")
    )
}

/// Write a report to `-o FILE`, or to stderr (human) or stdout (machine formats).
fn emit(text: &str, output: Option<&Path>, human: bool) -> Result<(), ExitCode> {
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::from(EXIT_CANNOT_RUN)
        }),
        None if human => {
            eprint!("{text}");
            Ok(())
        }
        None => {
            crate::out(text);
            Ok(())
        }
    }
}

pub fn compile(args: CompileArgs) -> ExitCode {
    let Some(source) = read_source(&args.spec) else {
        return ExitCode::from(EXIT_CANNOT_RUN);
    };
    let checked = sluice_compiler::check(source);
    if !checked.diagnostics.is_empty() {
        eprint!("{}", report::human(&checked.diagnostics));
    }
    let Some(plan) = checked.plan else {
        let counts = report::counts(&checked.diagnostics);
        eprintln!("error: {} has {} error(s); no plan written", args.spec.display(), counts.errors);
        return ExitCode::from(1);
    };

    let bytes = plan.to_bytes();
    if let Err(e) = std::fs::write(&args.output, &bytes) {
        eprintln!("error: cannot write {}: {e}", args.output.display());
        return ExitCode::from(EXIT_CANNOT_RUN);
    }
    eprintln!(
        "wrote {} ({}, {}, {}, {} bytes)",
        args.output.display(),
        count(plan.routes.len(), "route"),
        count(plan.pools.len(), "pool"),
        count(plan.listeners.len(), "listener"),
        bytes.len()
    );
    ExitCode::SUCCESS
}

pub fn schema(args: SchemaArgs) -> ExitCode {
    let text = match args.kind {
        SchemaKind::Spec => sluice_compiler::schema::spec_schema_text(),
        SchemaKind::Scenario => {
            use sluice_compiler::schema::{pretty, schema_value};
            pretty(&schema_value::<sluice_simulator::Scenario>())
        }
    };
    crate::out(&text);
    ExitCode::SUCCESS
}

/// `1 route`, `2 routes`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
