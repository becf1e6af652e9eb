//! Rendering findings: human (miette, to stderr), JSON and GitHub annotations.

use std::fmt::Write as _;

use sluice_compiler::{Diagnostic, Severity};

/// How `check` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Source excerpts with labels, on stderr.
    Human,
    /// One JSON object: `valid`, counts and `diagnostics`.
    Json,
    /// GitHub Actions workflow commands (`::error file=...::message`).
    Github,
}

pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
}

pub fn counts(diagnostics: &[Diagnostic]) -> Counts {
    let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    Counts { errors, warnings: diagnostics.len() - errors }
}

/// Every finding as a miette report with the source lines it points at.
pub fn human(diagnostics: &[Diagnostic]) -> String {
    let handler = miette::GraphicalReportHandler::new_themed(theme());
    let mut out = String::new();
    for d in diagnostics {
        if d.source().is_some() && d.location.is_some() {
            let _ = handler.render_report(&mut out, d);
        } else {
            let _ = writeln!(out, "{}", d.one_line());
            if let Some(help) = &d.help {
                let _ = writeln!(out, "  help: {help}");
            }
        }
        out.push('\n');
    }
    out
}

fn theme() -> miette::GraphicalTheme {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    }
}

/// The JSON document of `check --format json`.
pub fn json(diagnostics: &[Diagnostic], valid: bool) -> String {
    let c = counts(diagnostics);
    let doc = serde_json::json!({
        "valid": valid,
        "error_count": c.errors,
        "warning_count": c.warnings,
        "diagnostics": diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// GitHub Actions annotations, one line per finding.
pub fn github(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut props = format!("file={}", escape_property(&d.file));
        if let Some(l) = d.location {
            let _ = write!(props, ",line={},col={}", l.line, l.column);
        }
        let _ = write!(props, ",title={}", escape_property(&d.code.to_string()));
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            let _ = write!(message, "\nhelp: {help}");
        }
        let _ = writeln!(out, "::{level} {props}::{}", escape_data(&message));
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_compiler::diagnostic::codes;

    #[test]
    fn github_escapes_special_characters() {
        let d = Diagnostic::error(codes::UNKNOWN_POOL, "50% bad\nnext line");
        let line = github(&[d]);
        assert!(
            line.starts_with("::error file=,title=S0201 unknown-pool::50%25 bad%0Anext line"),
            "{line}"
        );
    }
}
