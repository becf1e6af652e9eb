//! Findings about a spec or scenario, located by JSON pointer and source span.
//!
//! Each finding has a stable [`Code`] (an id such as `S0201` and a name such
//! as `unknown-pool`) that the README documents with an example. Rendering
//! (human, JSON, GitHub annotations) belongs to the command line; this module
//! only carries the data and a [`miette::Diagnostic`] view of it.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::document::{Document, SourceFile};

/// A stable finding code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    /// Stable identifier, `S` and four digits.
    pub id: &'static str,
    /// Stable kebab-case name.
    pub name: &'static str,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.name)
    }
}

/// The codes the compiler reports. The simulator adds its own `S04xx` codes.
pub mod codes {
    use super::Code;

    pub const YAML_SYNTAX: Code = Code { id: "S0001", name: "yaml-syntax" };
    pub const DUPLICATE_KEY: Code = Code { id: "S0002", name: "duplicate-key" };
    pub const UNSUPPORTED_YAML: Code = Code { id: "S0003", name: "unsupported-yaml" };
    pub const BAD_INCLUDE: Code = Code { id: "S0004", name: "bad-include" };
    pub const INCLUDE_CYCLE: Code = Code { id: "S0005", name: "include-cycle" };
    pub const UNKNOWN_KEY: Code = Code { id: "S0101", name: "unknown-key" };
    pub const MISSING_KEY: Code = Code { id: "S0102", name: "missing-key" };
    pub const WRONG_TYPE: Code = Code { id: "S0103", name: "wrong-type" };
    pub const INVALID_VALUE: Code = Code { id: "S0104", name: "invalid-value" };
    pub const UNKNOWN_POOL: Code = Code { id: "S0201", name: "unknown-pool" };
    pub const DUPLICATE_NAME: Code = Code { id: "S0202", name: "duplicate-name" };
    pub const AMBIGUOUS_ROUTES: Code = Code { id: "S0203", name: "ambiguous-routes" };
    pub const UNKNOWN_LISTENER: Code = Code { id: "S0204", name: "unknown-listener" };
    pub const BAD_ADDRESS: Code = Code { id: "S0205", name: "bad-address" };
    pub const BAD_DURATION: Code = Code { id: "S0206", name: "bad-duration" };
    pub const BAD_PATH: Code = Code { id: "S0207", name: "bad-path" };
    pub const BAD_HOST: Code = Code { id: "S0208", name: "bad-host" };
    pub const DUPLICATE_BIND: Code = Code { id: "S0209", name: "duplicate-bind" };
    pub const NO_WEIGHT: Code = Code { id: "S0210", name: "zero-weights" };
    pub const TOO_MANY_LISTENERS: Code = Code { id: "S0211", name: "too-many-listeners" };
    pub const SHADOWED_ROUTE: Code = Code { id: "S0212", name: "shadowed-route" };
    pub const NON_NORMAL_PATH: Code = Code { id: "S0213", name: "non-normal-path" };
    pub const BAD_CONDITION: Code = Code { id: "S0214", name: "bad-condition" };
    pub const RETRIES_EXCEED_TIMEOUT: Code = Code { id: "S0215", name: "retries-exceed-timeout" };
    pub const UNBUDGETED_RETRIES: Code = Code { id: "S0216", name: "unbudgeted-retries" };
    pub const SLOW_HEALTH_CHECK: Code = Code { id: "S0217", name: "slow-health-check" };
    pub const EJECTS_NOTHING: Code = Code { id: "S0218", name: "ejects-nothing" };
    pub const MISSING_HASH_KEY: Code = Code { id: "S0219", name: "missing-hash-key" };
    pub const BAD_POLICY: Code = Code { id: "S0220", name: "bad-policy" };
    pub const IGNORED_SETTING: Code = Code { id: "S0221", name: "ignored-setting" };
    pub const TOO_FEW_CONNECTIONS: Code = Code { id: "S0222", name: "too-few-connections" };
    pub const UNUSED_POOL: Code = Code { id: "S0301", name: "unused-pool" };
    pub const IGNORED_WEIGHTS: Code = Code { id: "S0302", name: "ignored-weights" };
    pub const NO_LISTENERS: Code = Code { id: "S0303", name: "no-listeners" };
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A place in a source file. Lines and columns are 1-based; the column
/// counts characters. `offset` and `len` are bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub len: usize,
}

/// A secondary span of a finding, such as the first of two duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// JSON pointer within `file`.
    pub pointer: String,
    pub location: Location,
    pub text: String,
    /// The file the label points into, which an `include:` can make differ
    /// from the finding's own.
    pub file: String,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// What is wrong, lowercase, naming the bad value.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// The file, as named on the command line.
    pub file: String,
    /// JSON pointer of the offending node, such as `/routes/3/to`.
    pub pointer: String,
    /// Where the offending node is, when known.
    pub location: Option<Location>,
    /// Other places involved.
    pub labels: Vec<Label>,
    source: Option<Arc<SourceFile>>,
    /// How this finding stands to later ones about the same value.
    overlap: Overlap,
}

/// How a finding stands to the others about the same value, so that one
/// value is reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Overlap {
    /// A finding of the rules that run on the value read.
    #[default]
    Rule,
    /// A finding of reading the file (YAML, schema, types).
    Reading,
    /// A bound of the schema that a rule's own error about the same value
    /// (such as "0 workers") replaces.
    Bound,
    /// The value could not be read as its type and a stand-in took its
    /// place: the rules' findings about it, or about the mapping or list
    /// that holds it, are about the stand-in and are left out.
    SetAside,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, Severity::Error, message.into())
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, Severity::Warning, message.into())
    }

    fn new(code: Code, severity: Severity, message: String) -> Diagnostic {
        Diagnostic {
            code,
            severity,
            message: escape_controls(message),
            help: None,
            file: String::new(),
            pointer: String::new(),
            location: None,
            labels: Vec::new(),
            source: None,
            overlap: Overlap::Rule,
        }
    }

    /// Mark a schema finding about a bound that a rule's own error about
    /// the same value replaces.
    pub(crate) fn bound(mut self) -> Diagnostic {
        self.overlap = Overlap::Bound;
        self
    }

    pub(crate) fn overlap(&self) -> Overlap {
        self.overlap
    }

    pub(crate) fn set_overlap(&mut self, overlap: Overlap) {
        self.overlap = overlap;
    }

    /// Locate the finding at the value of `pointer` in `doc`.
    pub fn at(self, doc: &Document, pointer: &str) -> Diagnostic {
        let location = doc.value_location(pointer);
        self.located(doc, pointer, location)
    }

    /// Locate the finding at the key of `pointer` (its value when it has no key).
    pub fn at_key(self, doc: &Document, pointer: &str) -> Diagnostic {
        let location = doc.key_location(pointer);
        self.located(doc, pointer, location)
    }

    /// Locate the finding in a source without a parsed document (YAML syntax errors).
    pub fn in_source(
        mut self,
        source: &Arc<SourceFile>,
        pointer: &str,
        location: Option<Location>,
    ) -> Diagnostic {
        self.file = source.name.clone();
        self.pointer = pointer.to_owned();
        self.location = location;
        self.source = Some(source.clone());
        self
    }

    fn located(self, doc: &Document, pointer: &str, location: Option<Location>) -> Diagnostic {
        let (holder, local) = doc.resolve(pointer);
        self.in_source(&holder.source, &local, location)
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(escape_controls(help.into()));
        self
    }

    /// Add a secondary label at the value of `pointer`.
    pub fn with_label(
        mut self,
        doc: &Document,
        pointer: &str,
        text: impl Into<String>,
    ) -> Diagnostic {
        if let Some(location) = doc.value_location(pointer) {
            self.push_label(doc, pointer, location, text.into());
        }
        self
    }

    fn push_label(&mut self, doc: &Document, pointer: &str, location: Location, text: String) {
        let (holder, local) = doc.resolve(pointer);
        let file = holder.source.name.clone();
        self.labels.push(Label { pointer: local, location, text: escape_controls(text), file });
    }

    /// Add a secondary label at the key of `pointer` (its value when it has no key).
    pub fn with_key_label(
        mut self,
        doc: &Document,
        pointer: &str,
        text: impl Into<String>,
    ) -> Diagnostic {
        if let Some(location) = doc.key_location(pointer) {
            self.push_label(doc, pointer, location, text.into());
        }
        self
    }

    /// Add a secondary label at a known location.
    pub fn with_label_at(
        mut self,
        pointer: &str,
        location: Location,
        text: impl Into<String>,
    ) -> Diagnostic {
        let file = self.file.clone();
        let text = escape_controls(text.into());
        self.labels.push(Label { pointer: pointer.to_owned(), location, text, file });
        self
    }

    /// The source the finding points into, when it has one.
    pub fn source(&self) -> Option<&Arc<SourceFile>> {
        self.source.as_ref()
    }

    /// `file:line:column: severity[code name]: message`, for logs and
    /// summaries; the file name's hidden characters written as escapes, as
    /// the message's are.
    pub fn one_line(&self) -> String {
        let file = escape_hidden(&self.file);
        let place = match self.location {
            Some(l) => format!("{file}:{}:{}", l.line, l.column),
            None => file.into_owned(),
        };
        format!("{place}: {}[{}]: {}", self.severity.as_str(), self.code, self.message)
    }

    /// The JSON form used by `check --format json`.
    pub fn to_json(&self) -> serde_json::Value {
        let loc = self.location;
        serde_json::json!({
            "code": self.code.id,
            "name": self.code.name,
            "severity": self.severity.as_str(),
            "message": self.message,
            "help": self.help,
            "file": self.file,
            "pointer": self.pointer,
            "line": loc.map(|l| l.line),
            "column": loc.map(|l| l.column),
            "range": loc.map(|l| serde_json::json!({ "start": l.offset, "end": l.offset + l.len })),
            "labels": self.labels.iter().map(|l| serde_json::json!({
                "file": l.file,
                "pointer": l.pointer,
                "line": l.location.line,
                "column": l.location.column,
                "message": l.text,
            })).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let elsewhere: Vec<String> = self
            .labels
            .iter()
            .filter(|l| l.file != self.file)
            .map(|l| {
                let (line, column) = (l.location.line, l.location.column);
                format!("{}: {}:{line}:{column}", l.text, escape_hidden(&l.file))
            })
            .collect();
        match (&self.help, elsewhere.is_empty()) {
            (None, true) => None,
            (Some(h), true) => Some(Box::new(h)),
            (help, false) => {
                let mut text = help.clone().map(|h| format!("{h}\n")).unwrap_or_default();
                text.push_str(&elsewhere.join("\n"));
                Some(Box::new(text))
            }
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s.as_ref() as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        // The source shows each hidden character as its escape (see
        // `excerpt`); spans move with the text.
        let excerpt = self.source.as_ref().and_then(|s| s.excerpt());
        let span = move |l: &Location| match excerpt {
            Some(e) => e.span(l.offset, l.len),
            None => (l.offset, l.len),
        };
        let primary = self
            .location
            .map(|l| miette::LabeledSpan::new_primary_with_span(Some("here".to_owned()), span(&l)));
        // A report shows one file; labels in other files appear in the help.
        let secondary = self.labels.iter().filter(|l| l.file == self.file).map(move |l| {
            miette::LabeledSpan::new_with_span(Some(l.text.clone()), span(&l.location))
        });
        Some(Box::new(primary.into_iter().chain(secondary)))
    }
}

/// Messages quote values from the file; a control character among them
/// (an escape sequence, a bell), or a character that reorders the text
/// around it (a bidirectional override), must not reach a terminal or CI
/// log raw: each is written as its escape. A message that a huge value
/// made long is cut to its first [`MESSAGE_LIMIT`] characters, saying how
/// many were left out.
fn escape_controls(text: String) -> String {
    let long = text.len() > MESSAGE_LIMIT && text.chars().count() > MESSAGE_LIMIT;
    if !long && !text.chars().any(is_hidden) {
        return text;
    }
    let mut out = String::with_capacity(text.len().min(MESSAGE_LIMIT * 2));
    for c in text.chars().take(MESSAGE_LIMIT) {
        if is_hidden(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if long {
        let left = text.chars().count() - MESSAGE_LIMIT;
        let _ = write!(out, "… ({left} more characters)");
    }
    out
}

/// Whether `c` is written as its escape when quoted from a file: a
/// control character, one that reorders the text around it, or another
/// that shows as nothing (a format character, such as a zero width space,
/// a soft hyphen or a byte order mark) or breaks the line where a terminal
/// does not expect it (the line and paragraph separators). Renderers that
/// escape some of these their own way (as GitHub annotations do line
/// breaks) use it, with [`push_escape`], for the rest.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The Unicode format characters (general category Cf), which show as
/// nothing or change how the text around them is shown.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Write the escape of a character [`is_hidden`] holds: `\n`, `\u{1b}`,
/// `\u{202e}`.
pub fn push_escape(out: &mut String, c: char) {
    if c.is_control() {
        out.extend(c.escape_default());
    } else {
        out.extend(c.escape_unicode());
    }
}

/// `text` with each character [`is_hidden`] holds written as its escape,
/// for a file name shown beside an excerpt.
pub(crate) fn escape_hidden(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hidden(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Characters of a message kept before the rest is cut.
const MESSAGE_LIMIT: usize = 400;

/// The Unicode characters that change the display order of the text
/// around them (embeddings, overrides, isolates and marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Order findings by file, position, then code, and drop repeats (the
/// schema and a semantic rule may both notice the same bad value): exact
/// ones, a schema bound that a rule's own error about the value replaces,
/// and findings about a stand-in for a value that could not be read.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    // One value, one finding: a rule's error replaces the schema's bound
    // about the same value, and the rules say nothing about a stand-in.
    let place = |d: &Diagnostic| (d.file.clone(), d.pointer.clone());
    let of = |overlap: Overlap| diagnostics.iter().filter(move |d| d.overlap == overlap);
    let set_aside: Vec<(String, String)> = of(Overlap::SetAside).map(place).collect();
    let specific: std::collections::HashSet<(String, String)> =
        of(Overlap::Rule).filter(|d| d.severity == Severity::Error).map(place).collect();
    // A finding at the stand-in, or at a mapping or list that holds it
    // (below the top level, whose findings are about the whole file).
    let about_stand_in = |d: &Diagnostic| {
        set_aside.iter().any(|(file, pointer)| {
            *file == d.file
                && (*pointer == d.pointer
                    || (d.pointer.matches('/').count() >= 2
                        && pointer
                            .strip_prefix(d.pointer.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))))
        })
    };
    diagnostics.retain(|d| match d.overlap {
        Overlap::Rule => !about_stand_in(d),
        Overlap::Bound => !specific.contains(&place(d)),
        Overlap::Reading | Overlap::SetAside => true,
    });
    diagnostics.sort_by(|a, b| {
        (&a.file, a.location.map(|l| (l.line, l.column)), a.code.id, &a.message).cmp(&(
            &b.file,
            b.location.map(|l| (l.line, l.column)),
            b.code.id,
            &b.message,
        ))
    });
    diagnostics.dedup_by(|a, b| a.file == b.file && a.pointer == b.pointer && a.code == b.code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_messages_are_escaped() {
        let d = Diagnostic::error(codes::DUPLICATE_NAME, "name `a\u{7}b\u{1b}[31m` twice")
            .with_help("x\ny");
        assert_eq!(d.message, "name `a\\u{7}b\\u{1b}[31m` twice");
        assert_eq!(d.help.as_deref(), Some("x\\ny"));
    }

    #[test]
    fn file_names_and_label_texts_are_escaped_on_one_line() {
        let source =
            Arc::new(SourceFile::from_bytes("a\u{1b}b.yaml".to_owned(), b"x: 1\n".to_vec()));
        let at = Location { line: 1, column: 1, offset: 0, len: 1 };
        let d = Diagnostic::error(codes::DUPLICATE_KEY, "key `x` twice")
            .in_source(&source, "/x", Some(at))
            .with_label_at("/x", at, "first \u{202e}here");
        assert_eq!(d.one_line(), "a\\u{1b}b.yaml:1:1: error[S0002 duplicate-key]: key `x` twice");
        assert_eq!(d.labels[0].text, "first \\u{202e}here");
    }

    #[test]
    fn reordering_characters_are_escaped_and_huge_values_cut() {
        let d = Diagnostic::error(codes::DUPLICATE_NAME, "name `a\u{202e}b\u{2066}` twice");
        assert_eq!(d.message, "name `a\\u{202e}b\\u{2066}` twice");
        let huge = "x".repeat(100_000);
        let d = Diagnostic::error(codes::DUPLICATE_NAME, format!("name `{huge}` twice"));
        assert!(d.message.starts_with("name `xxx"), "{}", &d.message[..20]);
        assert!(d.message.ends_with("… (99613 more characters)"), "{}", d.message);
        assert!(d.message.chars().count() < 450);
    }
}
