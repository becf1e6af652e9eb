//! A located document: YAML read into a JSON value, checked against the JSON
//! Schema of a Rust type, and deserialised into it.
//!
//! Used for specs and, by the simulator, for scenarios. Every finding of the
//! three steps is located: a YAML error at its position, a schema error at
//! the offending value (an unknown key at the key, a missing key at the
//! mapping that lacks it), a deserialisation error at the pointer serde
//! reports. A whole number that its type cannot hold is a finding at the
//! value, and a stand-in takes its place so that the rest of the file is
//! still checked in the same run.

use std::collections::HashMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{codes, Diagnostic, Location, Overlap};
use crate::excerpt::Excerpt;
use crate::schema::SchemaFindings;
use crate::yaml::{self, NodeSpan};

/// A file's name (as the user gave it) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    /// Byte offset of the first invalid UTF-8 sequence, when the bytes were not text.
    pub invalid_utf8: Option<usize>,
    /// The text as excerpts show it, made when first needed.
    excerpt: ExcerptCache,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
            invalid_utf8: None,
            excerpt: ExcerptCache::default(),
        }
    }

    /// Text from raw bytes. Invalid UTF-8 becomes U+FFFD and its position is
    /// kept, so the YAML reader reports it as a finding there.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> SourceFile {
        match String::from_utf8(bytes) {
            Ok(text) => SourceFile::new(name, text),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                SourceFile { invalid_utf8: Some(at), ..SourceFile::new(name, text) }
            }
        }
    }
}

impl SourceFile {
    /// The text as a finding's excerpt shows it, when that differs from
    /// the text: see [`crate::excerpt`].
    pub(crate) fn excerpt(&self) -> Option<&Excerpt> {
        self.excerpt.0.get_or_init(|| Excerpt::of(&self.text)).as_ref()
    }
}

/// A cache of what [`Excerpt::of`] makes of a file's text, which the text
/// decides: two files with the same text are equal whatever their caches hold.
#[derive(Clone, Default)]
struct ExcerptCache(std::sync::OnceLock<Option<Excerpt>>);

impl PartialEq for ExcerptCache {
    fn eq(&self, _: &ExcerptCache) -> bool {
        true
    }
}

impl Eq for ExcerptCache {}

impl std::fmt::Debug for ExcerptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExcerptCache")
    }
}

/// The source of a finding's excerpt: the text as [`SourceFile::excerpt`]
/// shows it, so spans given to it must be moved into the excerpt first (as
/// the [`miette::Diagnostic`] view of a finding does). The column in the
/// header of an excerpt counts characters of the file itself, as a
/// finding's `column` does.
impl miette::SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let excerpt = self.excerpt();
        let shown = excerpt.map_or(self.text.as_str(), |e| e.text.as_str());
        let inner = shown.read_span(span, context_lines_before, context_lines_after)?;
        let start = inner.span().offset();
        let start = excerpt.map_or(start, |e| e.source_offset(start)).min(self.text.len());
        let line_start = self.text.get(..start).and_then(|t| t.rfind('\n')).map_or(0, |n| n + 1);
        let column = self.text.get(line_start..start).map_or(0, |t| t.chars().count());
        Ok(Box::new(miette::MietteSpanContents::new_named(
            crate::diagnostic::escape_hidden(&self.name).into_owned(),
            inner.data(),
            *inner.span(),
            inner.line(),
            column,
            inner.line_count(),
        )))
    }
}

/// A parsed document and where each of its nodes came from.
#[derive(Debug)]
pub struct Document {
    pub source: Arc<SourceFile>,
    pub value: Value,
    spans: HashMap<String, NodeSpan>,
    /// Files whose list items were appended to this document's lists by
    /// `include:`; pointers into those items resolve to the file they came from.
    included: Vec<Included>,
}

/// The items `[start, start + len)` of list `list` came from `doc`.
#[derive(Debug)]
struct Included {
    list: &'static str,
    start: usize,
    len: usize,
    doc: Arc<Document>,
}

impl Document {
    /// Where the value at `pointer` is; for a pointer that names no node
    /// (a missing key), where its nearest existing ancestor is.
    pub fn value_location(&self, pointer: &str) -> Option<Location> {
        let (doc, local) = self.resolve(pointer);
        doc.nearest(&local).map(|s| s.value)
    }

    /// Where the key of `pointer` is, or its value when it has no key.
    pub fn key_location(&self, pointer: &str) -> Option<Location> {
        let (doc, local) = self.resolve(pointer);
        doc.nearest(&local).map(|s| s.key.unwrap_or(s.value))
    }

    /// The value at `pointer` as written in its file, when `pointer` names
    /// a node.
    pub fn written(&self, pointer: &str) -> Option<&str> {
        let (doc, local) = self.resolve(pointer);
        let at = doc.spans.get(&local)?.value;
        doc.source.text.get(at.offset..at.offset + at.len)
    }

    /// The document that holds `pointer` (this one, or an included file) and
    /// the pointer within it.
    pub fn resolve(&self, pointer: &str) -> (&Document, String) {
        for part in &self.included {
            let Some(rest) = pointer.strip_prefix('/').and_then(|p| p.strip_prefix(part.list))
            else {
                continue;
            };
            let Some(rest) = rest.strip_prefix('/') else { continue };
            let (index, tail) = rest.split_once('/').map_or((rest, None), |(i, t)| (i, Some(t)));
            let Ok(n) = index.parse::<usize>() else { continue };
            if n >= part.start && n < part.start + part.len {
                let mut local = format!("/{}/{}", part.list, n - part.start);
                if let Some(tail) = tail {
                    local.push('/');
                    local.push_str(tail);
                }
                return (&part.doc, local);
            }
        }
        (self, pointer.to_owned())
    }

    /// Append the items of `list` in `from` to this document's `list`,
    /// remembering where they came from. Returns how many were appended.
    pub(crate) fn append(&mut self, list: &'static str, from: &Arc<Document>) -> usize {
        let items = match from.value.get(list) {
            Some(Value::Array(items)) if !items.is_empty() => items.clone(),
            _ => return 0,
        };
        let target = match &mut self.value {
            Value::Object(map) => map.entry(list).or_insert_with(|| Value::Array(Vec::new())),
            _ => return 0,
        };
        let Value::Array(existing) = target else { return 0 };
        let (start, len) = (existing.len(), items.len());
        existing.extend(items);
        self.included.push(Included { list, start, len, doc: Arc::clone(from) });
        len
    }

    fn nearest(&self, pointer: &str) -> Option<&NodeSpan> {
        let mut p = pointer;
        loop {
            if let Some(span) = self.spans.get(p) {
                return Some(span);
            }
            p = &p[..p.rfind('/')?];
        }
    }
}

/// What a document is, for findings about the file as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A spec, as `check`, `compile`, `serve` and the others read it.
    Spec,
    /// A file a spec's `include:` names.
    Included,
    /// A simulation scenario.
    Scenario,
}

impl Kind {
    /// What the file should be, in words: `a spec`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Spec => "a spec",
            Kind::Included => "a spec file to include",
            Kind::Scenario => "a scenario",
        }
    }
}

/// The outcome of [`parse`].
#[derive(Debug)]
pub struct Parsed<T> {
    pub document: Option<Document>,
    pub value: Option<T>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Read `source`, which should be `kind`, as YAML, validate it against
/// `T`'s JSON Schema, and
/// deserialise it. Unknown keys are reported and then set aside, so the
/// value can still be deserialised and checked further in the same run.
/// Callers must treat any error in `diagnostics` as fatal even when `value`
/// is present.
pub fn parse<T: DeserializeOwned + JsonSchema + 'static>(
    source: SourceFile,
    kind: Kind,
) -> Parsed<T> {
    let source = Arc::new(source);
    let (loaded, mut diagnostics) = yaml::load(&source, kind);
    let Some(loaded) = loaded else {
        return Parsed { document: None, value: None, diagnostics };
    };
    let document =
        Document { source, value: loaded.value, spans: loaded.spans, included: Vec::new() };

    let compiled = crate::schema::compiled::<T>();
    let schema = &compiled.schema;
    let SchemaFindings { diagnostics: found, unknown_keys } =
        crate::schema::validate(&compiled, &document);
    let schema_errors = !found.is_empty();
    diagnostics.extend(found);

    // Deserialise even after schema errors: a bad duration or an out-of-range
    // number still leaves a value whose other rules can be checked in this
    // run. Only when the shape itself is wrong is there nothing more to check.
    let mut cleaned = document.value.clone();
    for pointer in unknown_keys.iter().rev() {
        remove(&mut cleaned, pointer);
    }
    let whole = whole_numbers(schema, &document, &mut cleaned, &mut diagnostics);
    let value = match serde_path_to_error::deserialize::<_, T>(cleaned) {
        Ok(v) => Some(v),
        Err(_) if schema_errors || whole => None,
        Err(e) => {
            let pointer = to_pointer(e.path());
            let at = crate::schema::describe(&pointer);
            let inner = plain_words(&e.inner().to_string());
            // serde's "invalid type: floating point `1.5`, expected u32".
            let (code, message) = match inner.strip_prefix("invalid type: ") {
                Some(rest) => (codes::WRONG_TYPE, format!("{at} has the wrong type: {rest}")),
                None => {
                    let rest = inner.strip_prefix("invalid value: ").unwrap_or(&inner);
                    (codes::INVALID_VALUE, format!("{at} has an invalid value: {rest}"))
                }
            };
            diagnostics.push(Diagnostic::error(code, message).at(&document, &pointer));
            None
        }
    };
    for d in &mut diagnostics {
        if d.overlap() == Overlap::Rule {
            d.set_overlap(Overlap::Reading);
        }
    }
    Parsed { document: Some(document), value, diagnostics }
}

/// serde's words for Rust types, in the words of the file: `expected u32`
/// becomes `expected a whole number from 0 to 4294967295`.
fn plain_words(message: &str) -> String {
    let mut out = message.replace("floating point `", "the number `");
    out = out.replace("integer `", "the whole number `");
    for (rust, format) in [
        ("u8", "uint8"),
        ("u16", "uint16"),
        ("u32", "uint32"),
        ("u64", "uint64"),
        ("usize", "uint"),
        ("i8", "int8"),
        ("i16", "int16"),
        ("i32", "int32"),
        ("i64", "int64"),
        ("isize", "int"),
    ] {
        if let Some((low, high)) = crate::schema::format_bounds(format) {
            let words = format!("expected a whole number from {low} to {high}");
            if out.ends_with(&format!("expected {rust}")) {
                out = format!("{}{words}", &out[..out.len() - rust.len() - "expected ".len()]);
            }
        }
    }
    out.replace("expected f64", "expected a number").replace("expected f32", "expected a number")
}

/// Find every number that the schema types as a whole number but that its
/// Rust type cannot hold: too large or small (the schema's bound says so),
/// with a fraction (the schema's type says so), or whole but written with a
/// decimal point or an exponent (`2.0`, `1e6`, a finding here). Each is
/// replaced in `cleaned` by the nearest value its bounds allow, so that the
/// rest of the file is still read and checked in the same run, and its
/// finding is marked so that later findings about the stand-in are left
/// out. Returns whether any was found.
fn whole_numbers(
    schema: &Value,
    doc: &Document,
    cleaned: &mut Value,
    diagnostics: &mut Vec<Diagnostic>,
) -> bool {
    let mut numbers = Vec::new();
    collect_numbers(cleaned, String::new(), &mut numbers);
    let mut found = false;
    for pointer in numbers {
        let Some(sub) = crate::schema::schema_at(schema, &pointer) else { continue };
        let types = match sub.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        if !types.contains(&"integer") || types.contains(&"number") {
            continue;
        }
        let format = sub.get("format").and_then(Value::as_str);
        let Some((mut low, mut high)) = format.and_then(crate::schema::format_bounds) else {
            continue;
        };
        let Some(Value::Number(n)) = cleaned.pointer(&pointer) else { continue };
        let exact = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
        if exact.is_some_and(|v| (low..=high).contains(&v)) {
            continue;
        }
        let x = n.as_f64().unwrap_or(0.0);
        let bound = |key: &str| {
            let v = sub.get(key)?;
            v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from))
        };
        low = bound("minimum").unwrap_or(low).max(low);
        high = bound("maximum").unwrap_or(high).min(high);
        // (A float converts to i128 saturating, exactly when whole.)
        let stand_in = (x as i128).clamp(low, high.max(low));
        if let Some(slot) = cleaned.pointer_mut(&pointer) {
            *slot = match u64::try_from(stand_in) {
                Ok(v) => Value::from(v),
                Err(_) => Value::from(i64::try_from(stand_in).unwrap_or(i64::MIN)),
            };
        }
        found = true;
        let mut told = false;
        for d in diagnostics.iter_mut().filter(|d| d.pointer == pointer) {
            d.set_overlap(Overlap::SetAside);
            told = true;
        }
        if !told {
            let at = crate::schema::describe(&pointer);
            let written = crate::schema::literal(doc, &pointer).unwrap_or_else(|| format!("`{x}`"));
            let mut d = Diagnostic::error(
                codes::WRONG_TYPE,
                format!("{at} must be written as a whole number, found {written}"),
            )
            .with_help(format!("write `{stand_in}`, without a decimal point or exponent"))
            .at(doc, &pointer);
            d.set_overlap(Overlap::SetAside);
            diagnostics.push(d);
        }
    }
    found
}

/// The pointer of every number in `value`.
fn collect_numbers(value: &Value, pointer: String, out: &mut Vec<String>) {
    match value {
        Value::Number(_) => out.push(pointer),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_numbers(item, yaml::child(&pointer, &i.to_string()), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                collect_numbers(item, yaml::child(&pointer, key), out);
            }
        }
        _ => {}
    }
}

fn remove(value: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else { return };
    let key = key.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(&key);
    }
}

fn to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out = yaml::child(&out, &index.to_string()),
            Segment::Map { key } => out = yaml::child(&out, key),
            Segment::Enum { variant } => out = yaml::child(&out, variant),
            Segment::Unknown => break,
        }
    }
    out
}
