//! Sluice's compiler: from spec text to a validated, executable [`Plan`].
//!
//! The pipeline is `load -> validate -> lower`:
//! - [`document`] parses YAML into a JSON value plus an index from JSON
//!   pointer to source span, checks it against the JSON Schema derived from
//!   the [`spec`] types, and deserialises it;
//! - `validate` applies the rules a schema cannot express (references,
//!   duplicates, addresses, templates, ambiguous routes) and reports each
//!   finding as a [`Diagnostic`] located by pointer;
//! - `lower` resolves names to indices and builds the [`router`] trie.
//!
//! Every finding of a run is collected; a spec with any error yields no plan.

pub mod condition;
pub mod diagnostic;
pub mod diff;
pub mod document;
mod excerpt;
mod include;
mod lint;
mod lower;
pub mod method;
pub mod normalize;
pub mod plan;
pub mod router;
pub mod schema;
pub mod spec;
pub mod template;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Severity};
pub use document::{Document, SourceFile};
pub use include::IncludeSearch;
pub use method::{Method, MethodSet};
pub use plan::{Plan, PlanError};
pub use router::{Captures, RequestFacts, RouteId};
pub use spec::{Balance, Spec};

/// The outcome of checking one spec file.
#[derive(Debug)]
pub struct Checked {
    /// Every finding, errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// The parsed document, when the YAML could be read.
    pub document: Option<Document>,
    /// The spec, when it deserialised.
    pub spec: Option<Spec>,
    /// The plan, present only when there is no error.
    pub plan: Option<Plan>,
    /// The files `include:` pulled in, in the order they were read.
    pub included: Vec<PathBuf>,
    /// Where the `include:` patterns searched, and what they matched.
    pub include_search: IncludeSearch,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Check a spec and, when it has no error, compile it.
pub fn check(source: SourceFile) -> Checked {
    let parsed = document::parse::<Spec>(source, document::Kind::Spec);
    let mut diagnostics = parsed.diagnostics;
    let (mut document, mut spec) = (parsed.document, parsed.value);
    let (mut included, mut include_search) = (Vec::new(), IncludeSearch::default());
    if let (Some(doc), Some(spec)) = (&mut document, &mut spec) {
        (included, include_search) = include::expand(doc, spec, &mut diagnostics);
    }

    let mut plan = None;
    if let (Some(doc), Some(spec)) = (&document, &spec) {
        let findings: Vec<_> =
            validate::validate(doc, spec).into_iter().chain(lint::lint(doc, spec)).collect();
        let clean = !findings.iter().any(|d| d.severity == Severity::Error);
        diagnostics.extend(findings);
        if clean && !diagnostics.iter().any(|d| d.severity == Severity::Error) {
            plan = Some(lower::lower(spec));
        }
    }
    diagnostic::sort(&mut diagnostics);
    Checked { diagnostics, document, spec, plan, included, include_search }
}

/// Why [`load_plan`] could not produce a plan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read {}: {source}", shown(path))]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is not a valid spec ({} error(s)); run `sluice check` on it for details:\n{summary}",
        shown(path),
        errors
    )]
    Invalid { path: PathBuf, errors: usize, summary: String, checked: Box<Checked> },
    #[error("{}: {source}", shown(path))]
    Plan { path: PathBuf, source: PlanError },
}

/// A path as a log line shows it: its hidden characters written as
/// escapes, as in the findings the summary lists.
fn shown(path: &Path) -> String {
    diagnostic::escape_hidden(&path.display().to_string()).into_owned()
}

/// Read a plan file or compile a spec file, whichever `path` holds.
pub fn load_plan(path: &Path) -> Result<Plan, LoadError> {
    load_plan_and_files(path).map(|(plan, _)| plan)
}

/// What a plan was loaded from, for a watch to reload it when that changes.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Every file the plan came from: the path loaded, then the files a
    /// spec's `include:` pulled in.
    pub files: Vec<PathBuf>,
    /// Where the `include:` patterns searched, and what they matched.
    pub include_search: IncludeSearch,
}

/// [`load_plan`], also returning what the plan came from.
pub fn load_plan_and_files(path: &Path) -> Result<(Plan, Sources), LoadError> {
    let bytes =
        std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
    if Plan::is_plan_file(&bytes) {
        return Plan::from_bytes(&bytes)
            .map(|plan| (plan, Sources { files: vec![path.to_owned()], ..Sources::default() }))
            .map_err(|source| LoadError::Plan { path: path.to_owned(), source });
    }

    let source = SourceFile::from_bytes(path.display().to_string(), bytes);
    let mut checked = check(source);
    let files = std::iter::once(path.to_owned()).chain(checked.included.drain(..)).collect();
    let include_search = std::mem::take(&mut checked.include_search);
    match checked.plan.take() {
        Some(plan) => Ok((plan, Sources { files, include_search })),
        None => {
            let errors: Vec<&Diagnostic> =
                checked.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
            let summary = errors.iter().map(|d| format!("  {}", d.one_line())).collect::<Vec<_>>();
            Err(LoadError::Invalid {
                path: path.to_owned(),
                errors: errors.len(),
                summary: summary.join("\n"),
                checked: Box::new(checked),
            })
        }
    }
}
