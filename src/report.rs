//! Rendering findings: human (miette, to stderr), JSON, GitHub annotations
//! and SARIF 2.1.0 for code scanning.

use std::fmt::Write as _;

use sluice_compiler::diagnostic::{is_hidden, push_escape};
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
    /// SARIF 2.1.0, the format GitHub code scanning uploads.
    Sarif,
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

/// A SARIF 2.1.0 log with one run: the rules of every code used, and one
/// result per finding. Columns count Unicode code points, as the human and
/// JSON formats do, and the run says so with `columnKind`.
pub fn sarif(diagnostics: &[Diagnostic]) -> String {
    use serde_json::{json, Value};

    let mut rules: Vec<sluice_compiler::diagnostic::Code> = Vec::new();
    for d in diagnostics {
        if !rules.contains(&d.code) {
            rules.push(d.code);
        }
    }
    let rule_docs: Vec<Value> = rules
        .iter()
        .map(|code| {
            let (summary, help) = rule_text(code.id);
            json!({
                "id": code.id,
                "name": code.name,
                "shortDescription": { "text": summary.unwrap_or(code.name) },
                "help": { "text": help.unwrap_or(summary.unwrap_or(code.name)) },
            })
        })
        .collect();

    let results: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let rule_index = rules.iter().position(|c| *c == d.code).unwrap_or(0);
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                let _ = write!(text, "\nhelp: {help}");
            }
            let mut result = json!({
                "ruleId": d.code.id,
                "ruleIndex": rule_index,
                "level": d.severity.as_str(),
                "message": { "text": text },
                "locations": [{ "physicalLocation": physical(d, d.location) }],
            });
            let related: Vec<Value> = d
                .labels
                .iter()
                .enumerate()
                .map(|(i, label)| {
                    json!({
                        "id": i,
                        "message": { "text": label.text },
                        "physicalLocation": if label.file == d.file {
                            physical(d, Some(label.location))
                        } else {
                            physical_in(&label.file, "", Some(label.location))
                        },
                    })
                })
                .collect();
            if !related.is_empty() {
                result["relatedLocations"] = Value::Array(related);
            }
            result
        })
        .collect();

    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "sluice",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_docs,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// The `physicalLocation` of a span in the file a finding names; the whole
/// file when the span is unknown.
fn physical(
    d: &Diagnostic,
    location: Option<sluice_compiler::diagnostic::Location>,
) -> serde_json::Value {
    physical_in(&d.file, d.source().map_or("", |s| s.text.as_str()), location)
}

/// A physical location in `file`, whose text (when known) gives the region's end.
fn physical_in(
    file: &str,
    text: &str,
    location: Option<sluice_compiler::diagnostic::Location>,
) -> serde_json::Value {
    let mut place = serde_json::json!({ "artifactLocation": { "uri": file_uri(file) } });
    if let Some(l) = location {
        let (end_line, end_column) = end_of(text, l);
        place["region"] = serde_json::json!({
            "startLine": l.line,
            "startColumn": l.column,
            "endLine": end_line,
            "endColumn": end_column,
        });
    }
    place
}

/// The line and column just past a span (SARIF's exclusive end), from its
/// start position and the characters its bytes cover.
fn end_of(text: &str, l: sluice_compiler::diagnostic::Location) -> (usize, usize) {
    let covered = text.get(l.offset..l.offset + l.len).unwrap_or("");
    let (mut line, mut column) = (l.line, l.column);
    for c in covered.chars() {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// A file name as a URI reference: relative names stay relative (code
/// scanning resolves them against the repository root), absolute ones
/// become `file://` URIs, and anything outside the unreserved set and `/` is
/// percent-encoded.
fn file_uri(name: &str) -> String {
    let name = name.replace('\\', "/");
    let mut out = String::new();
    if name.starts_with('/') {
        out.push_str("file://");
    }
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A one-line summary and a help text for each documented finding code, as
/// the README's table gives them (a test holds the two together).
fn rule_text(id: &str) -> (Option<&'static str>, Option<&'static str>) {
    let (summary, help) = match id {
        "S0001" => ("the file is not valid YAML", "fix the YAML syntax at the marked position"),
        "S0002" => ("a mapping has the same key twice", "keep one of the two keys"),
        "S0003" => (
            "the YAML uses a feature specs do not allow",
            "write the value out instead of a merge key, tag, alias or second document",
        ),
        "S0004" => (
            "an include matches no file, an included file cannot be read, or a pattern reads too much of the disk",
            "fix the pattern or the file it names; begin a pattern with the directory that holds the files",
        ),
        "S0005" => (
            "a spec includes itself, by name, by a pattern, or through a file it includes",
            "remove the entry, or keep the included files where the pattern matches only them",
        ),
        "S0101" => ("a key that the format does not define", "check the spelling of the key"),
        "S0102" => ("a required key is missing", "add the key"),
        "S0103" => ("a value has the wrong type", "write a value of the type the key takes"),
        "S0104" => ("a value is outside what the key accepts", "use one of the allowed values"),
        "S0201" => {
            ("a route sends to a pool that is not defined", "define the pool or fix the name")
        }
        "S0202" => ("two items of one kind share a name", "give each a unique name"),
        "S0203" => (
            "two routes match the same requests",
            "make one route more specific or restrict its listeners",
        ),
        "S0204" => ("a route names a listener that is not defined", "fix the listener name"),
        "S0205" => ("an address is not IP:PORT", "write an IP address and a port"),
        "S0206" => ("a duration does not parse or is zero", "write a number and ms, s, m or h"),
        "S0207" => (
            "a path template, or a health check's path, is malformed",
            "in a template use literals, `{name}` and a final `{*name}`; a health check's path starts with `/` and has no space, fragment or non-ASCII character",
        ),
        "S0208" => ("a host pattern is malformed", "write a host name or `*.` and a suffix"),
        "S0209" => ("two listeners bind the same address", "give each listener its own address"),
        "S0210" => ("every weight of a pool is zero", "give one endpoint a positive weight"),
        "S0211" => ("more than 64 listeners", "merge or remove listeners"),
        "S0212" => (
            "a route can never match because other routes take all its requests",
            "delete the route, or make it more specific than the routes that take its requests",
        ),
        "S0213" => (
            "a path template is written in a form that path normalisation changes",
            "write the template in normal form",
        ),
        "S0214" => (
            "a header or query condition is malformed",
            "give each name one test, and a valid regex or value",
        ),
        "S0215" => (
            "retries take longer than the route's timeout allows",
            "lower the attempts or per-try timeout, or raise the route's timeout",
        ),
        "S0216" => ("retries without a retry budget", "add a `retry_budget` to the route"),
        "S0217" => (
            "a health check takes longer to eject a dead endpoint than the route waits",
            "shorten the interval or thresholds, or add outlier detection",
        ),
        "S0218" => (
            "outlier detection can eject no endpoint of the pool",
            "raise `max_ejection_percent` to at least one endpoint's share",
        ),
        "S0219" => (
            "a consistent-hash pool has no key to hash on",
            "set `hash_on` to a key every route to the pool has",
        ),
        "S0220" => (
            "a retry, outlier or status policy contradicts itself",
            "fix the setting the message names",
        ),
        "S0221" => (
            "a setting that the pool or route ignores",
            "remove it, or use the setting that does what was meant",
        ),
        "S0222" => (
            "fewer connections allowed than the pool has endpoints",
            "allow at least one connection per endpoint",
        ),
        "S0301" => ("a pool no route sends to", "route traffic to it or delete it"),
        "S0302" => ("weights that the pool's algorithm ignores", "use a weighted algorithm"),
        "S0303" => ("routes but no listeners", "add a listener"),
        "S0401" => ("a scenario names a route the spec does not have", "fix the route name"),
        "S0402" => ("a scenario names a pool the spec does not have", "fix the pool name"),
        "S0403" => ("traffic reaches a pool without a service model", "add the pool to `pools:`"),
        "S0404" => ("an arrival rate is not positive", "use a positive rate"),
        "S0405" => ("a traffic weight is not valid", "use a non-negative weight"),
        "S0406" => ("a scenario duration does not parse", "write a number and ms, s, m or h"),
        "S0407" => ("the run length is not well defined", "give one of `duration` and `requests`"),
        "S0408" => ("service model fields do not fit", "give the fields the distribution takes"),
        "S0409" => ("a pool model has no workers", "give at least one worker"),
        "S0410" => ("a run is too long", "simulate at most 100,000,000 requests"),
        "S0411" => ("a balancer variant is listed twice", "list each variant once"),
        "S0412" => ("a service model for a pool no route reaches", "remove it or add traffic"),
        "S0413" => ("a route is listed twice in the traffic mix", "list each route once"),
        "S0414" => ("offered load reaches a pool's capacity", "add workers or endpoints"),
        "S0415" => (
            "the arrival process is not well defined",
            "give one of `rate`, `clients` and `replay`",
        ),
        "S0416" => {
            ("an event names an endpoint the pool does not have", "use an address or a position")
        }
        "S0417" => ("a number is outside its range", "use a value in the range the message gives"),
        "S0418" => {
            ("a file of service times cannot be used", "one duration per line, such as `12ms`")
        }
        "S0419" => {
            ("an event has fields its action does not take", "give the fields the action takes")
        }
        "S0420" => ("a gateway setting is not valid", "use a value the message allows"),
        "S0421" => ("an event happens after arrivals stop", "move it before the end of the run"),
        "S0422" => (
            "an access log cannot be replayed",
            "replay a `sluice serve` access log, format version 1",
        ),
        "S0423" => (
            "`pool: busiest` cannot tell which pool receives the most traffic",
            "name the pool, or weight the traffic so that one pool receives more",
        ),
        "S0424" => ("a traffic share's request is not valid", "fix the field the message names"),
        "S0425" => ("no route matches a traffic share's path", "check it with `sluice explain`"),
        "S0426" => {
            ("a key distribution is not valid", "give `zipf` or `uniform` with sound parameters")
        }
        "S0427" => ("drawn keys that no policy reads", "hash or pin on them, or remove them"),
        "S0428" => ("a share lacks the key its pool hashes on", "set the key the pool reads"),
        "S0430" => ("an empty list, which changes nothing", "fill the list or remove the key"),
        _ => return (None, None),
    };
    (Some(summary), Some(help))
}

/// Text for the message of a workflow command. GitHub decodes `%25`,
/// `%0D` and `%0A` back, so those three are percent-encoded; any other
/// control or reordering character (a message has none, a file name may)
/// is written as its escape, as findings write them.
fn escape_data(s: &str) -> String {
    escape_command(s, false)
}

/// Text for a property value of a workflow command (`file=`, `title=`):
/// as [`escape_data`], and `:` and `,`, which end a property, as `%3A` and
/// `%2C`, which GitHub decodes back too.
fn escape_property(s: &str) -> String {
    escape_command(s, true)
}

fn escape_command(s: &str, property: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ':' if property => out.push_str("%3A"),
            ',' if property => out.push_str("%2C"),
            c if is_hidden(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_compiler::diagnostic::{codes, Location};

    #[test]
    fn github_escapes_special_characters() {
        // Messages arrive with control characters already escaped; the line
        // break before the help is the one the annotation itself adds.
        let d = Diagnostic::error(codes::UNKNOWN_POOL, "50% bad").with_help("try: a, b");
        let line = github(&[d]);
        assert_eq!(line, "::error file=,title=S0201 unknown-pool::50%25 bad%0Ahelp: try: a, b\n");
        // A file name is as the system gave it: its line breaks are
        // encoded for GitHub to decode, its other hidden characters escaped.
        assert_eq!(
            escape_property("a,b:c%\r\n\u{1b}\u{202e}.yaml"),
            "a%2Cb%3Ac%25%0D%0A\\u{1b}\\u{202e}.yaml"
        );
    }

    #[test]
    fn every_code_in_the_readme_has_a_rule_text() {
        // Code scanning shows a rule's summary and help beside each
        // finding; a code without them shows its bare name.
        let readme = include_str!("../README.md");
        let codes: Vec<&str> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| S0")?.get(..3).map(|_| &line[2..7]))
            .collect();
        assert!(codes.len() > 50, "the README's table of codes was not found: {codes:?}");
        let missing: Vec<_> = codes.iter().filter(|c| rule_text(c).0.is_none()).collect();
        assert!(missing.is_empty(), "codes without a summary: {missing:?}");
    }

    #[test]
    fn sarif_regions_end_past_the_span() {
        let text = "a: bc\nd: é\n";
        let l = Location { line: 2, column: 4, offset: 9, len: 2 };
        assert_eq!(end_of(text, l), (2, 5), "é is two bytes and one column");
        let whole = Location { line: 1, column: 1, offset: 0, len: 6 };
        assert_eq!(end_of(text, whole), (2, 1), "a span ending in a newline ends on the next line");
    }

    #[test]
    fn file_names_become_uri_references() {
        assert_eq!(file_uri("specs/platform.yaml"), "specs/platform.yaml");
        assert_eq!(file_uri("my specs/a b.yaml"), "my%20specs/a%20b.yaml");
        assert_eq!(file_uri("/abs/x.yaml"), "file:///abs/x.yaml");
        assert_eq!(file_uri("dir\\x.yaml"), "dir/x.yaml");
    }
}
