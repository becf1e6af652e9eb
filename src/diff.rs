//! `sluice diff OLD NEW`: what changed between two specs, and which sample
//! requests would now be handled differently.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use sluice_compiler::diff::{Handling, KindDiff, SpecDiff};
use sluice_compiler::{Plan, Spec};

use crate::check::read_source;
use crate::report;
use crate::EXIT_CANNOT_RUN;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The spec as it is.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The spec as it would be.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    format: DiffFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DiffFormat {
    /// A readable summary on stdout.
    Human,
    /// One JSON object: `listeners`, `pools`, `routes`, `impact`.
    Json,
}

pub fn diff(args: DiffArgs) -> ExitCode {
    let (old, new) = (load(&args.old), load(&args.new));
    let (Some(old), Some(new)) = (old, new) else {
        return ExitCode::from(EXIT_CANNOT_RUN);
    };
    let result = sluice_compiler::diff::diff((&old.0, &old.1), (&new.0, &new.1));

    let text = match args.format {
        DiffFormat::Human => human(&result),
        DiffFormat::Json => {
            let mut doc = serde_json::to_value(&result).expect("the diff serialises");
            doc["handled_differently"] = result.handled_differently().into();
            let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
            text.push('\n');
            text
        }
    };
    crate::out(&text);
    if result.handled_differently() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A checked spec and its plan; `None` after printing why not.
fn load(path: &Path) -> Option<(Spec, Plan)> {
    let source = read_source(path)?;
    if Plan::is_plan_file(source.text.as_bytes()) {
        eprintln!("error: {} is a compiled plan; diff compares specs", path.display());
        return None;
    }
    let checked = sluice_compiler::check(source);
    match (checked.spec, checked.plan) {
        (Some(spec), Some(plan)) => Some((spec, plan)),
        _ => {
            eprint!("{}", report::human(&checked.diagnostics));
            let errors = report::counts(&checked.diagnostics).errors;
            eprintln!("error: {} is not a valid spec ({errors} error(s))", path.display());
            None
        }
    }
}

fn human(d: &SpecDiff) -> String {
    let mut out = String::new();
    for (title, kind) in [("listeners", &d.listeners), ("pools", &d.pools), ("routes", &d.routes)] {
        kind_text(&mut out, title, kind);
    }
    if !d.has_changes() {
        out.push_str("no changes\n");
    }

    let n = d.impact.changed.len();
    if n == 0 {
        let _ = writeln!(
            out,
            "impact: none of {} sample requests would be handled differently",
            d.impact.requests
        );
        return out;
    }
    let _ = writeln!(
        out,
        "impact: {n} of {} sample requests would be handled differently",
        d.impact.requests
    );
    for change in &d.impact.changed {
        let r = &change.request;
        let query = if r.query.is_empty() { String::new() } else { format!("?{}", r.query) };
        let headers: String = r.headers.iter().map(|(n, v)| format!(" -H '{n}: {v}'")).collect();
        let _ = writeln!(
            out,
            "  {} http://{}{}{query}{headers} on {}",
            r.method, r.host, r.path, r.listener
        );
        let _ = writeln!(out, "    before  {}", handling(change.old.as_ref()));
        let _ = writeln!(out, "    after   {}", handling(change.new.as_ref()));
    }
    out
}

fn kind_text(out: &mut String, title: &str, kind: &KindDiff) {
    if kind.added.is_empty() && kind.removed.is_empty() && kind.changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    for name in &kind.added {
        let _ = writeln!(out, "  + {name}");
    }
    for name in &kind.removed {
        let _ = writeln!(out, "  - {name}");
    }
    for item in &kind.changed {
        let _ = writeln!(out, "  ~ {}", item.name);
        for f in &item.fields {
            let _ = writeln!(out, "      {}: {} -> {}", f.field, f.old, f.new);
        }
    }
}

fn handling(h: Option<&Handling>) -> String {
    let Some(h) = h else { return "no route (404)".to_owned() };
    let endpoints: Vec<String> =
        h.endpoints.iter().map(|(address, weight)| format!("{address} w{weight}")).collect();
    let timeout = h.timeout_ms.map(|t| format!(", timeout {t}ms")).unwrap_or_default();
    let target = if h.split.is_empty() {
        format!("pool {} ({}: {})", h.pool, h.balance, endpoints.join(", "))
    } else {
        let sides: Vec<String> = h.split.iter().map(|(p, w)| format!("{p} w{w}")).collect();
        let sticky = h.sticky.as_ref().map(|s| format!(", sticky {s}")).unwrap_or_default();
        format!("split {}{sticky}", sides.join(", "))
    };
    format!("route {}{timeout} -> {target}", h.route)
}
