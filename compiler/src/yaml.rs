//! YAML to a JSON value, remembering where every node came from.
//!
//! Written by hand over `granit-parser`'s event stream because no maintained
//! YAML crate both reports every node's span and refuses duplicate keys.
//! Plain scalars are resolved by the YAML 1.2 core schema only, so `on`,
//! `yes` and `NO` stay strings. Duplicate keys, merge keys (`<<`) and tags
//! other than `!!str` are findings; alias expansion is capped so a small
//! file cannot expand into gigabytes.

use std::collections::HashMap;
use std::sync::Arc;

use granit_parser::{Event, Marker, Parser, ScalarStyle, Span as YamlSpan};
use serde_json::{Map, Number, Value};

use crate::diagnostic::{codes, Diagnostic, Location};
use crate::document::{Kind, SourceFile};

/// Most nodes that alias expansion may produce, counting every copy.
const MAX_EXPANDED_NODES: usize = 100_000;
/// Deepest nesting accepted, well under what recursive consumers can take.
const MAX_DEPTH: usize = 128;

/// Where a node's key (for mapping values) and value are in the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeSpan {
    pub key: Option<Location>,
    pub value: Location,
}

/// A YAML document as a JSON value plus the span of every node by pointer.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub value: Value,
    pub spans: HashMap<String, NodeSpan>,
}

enum Frame {
    Map {
        map: Map<String, Value>,
        pointer: String,
        start: Location,
        anchor: usize,
        /// The key waiting for its value: text, span, and whether it repeats an earlier key.
        key: Option<(String, Location, bool)>,
        seen: HashMap<String, Location>,
    },
    Seq {
        items: Vec<Value>,
        pointer: String,
        start: Location,
        anchor: usize,
    },
}

/// One event's outcome; a boxed finding stops the load.
type Step = Result<(), Box<Diagnostic>>;

struct Builder<'s> {
    source: &'s Arc<SourceFile>,
    kind: Kind,
    stack: Vec<Frame>,
    spans: HashMap<String, NodeSpan>,
    anchors: HashMap<usize, Value>,
    diagnostics: Vec<Diagnostic>,
    root: Option<Value>,
    expanded: usize,
}

/// Parse `source`. Findings that still leave a usable value (duplicate keys,
/// unsupported tags) come back beside it; a syntax error yields no value.
pub(crate) fn load(source: &Arc<SourceFile>, kind: Kind) -> (Option<Loaded>, Vec<Diagnostic>) {
    let text = source.text.as_str();
    if crate::plan::Plan::is_plan_file(text.as_bytes()) {
        return (None, vec![compiled_plan(source, kind)]);
    }
    let mut b = Builder {
        source,
        kind,
        stack: Vec::new(),
        spans: HashMap::new(),
        anchors: HashMap::new(),
        diagnostics: Vec::new(),
        root: None,
        expanded: 0,
    };
    let mut documents = 0;
    if let Some(at) = source.invalid_utf8 {
        let location = location_of_offset(text, at);
        let d = Diagnostic::error(codes::YAML_SYNTAX, "the file is not valid UTF-8 text")
            .with_help("save the file as UTF-8")
            .in_source(source, "", Some(location));
        return (None, vec![d]);
    }

    for next in Parser::new_from_str(text) {
        let (event, span) = match next {
            Ok(pair) => pair,
            Err(e) => {
                let at = location(text, e.marker(), e.marker());
                let d =
                    Diagnostic::error(codes::YAML_SYNTAX, format!("invalid YAML: {}", e.info()))
                        .in_source(source, "", Some(at));
                b.diagnostics.push(d);
                return (None, b.diagnostics);
            }
        };
        let at = location(text, &span.start, &span.end);
        let result = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    Err(Box::new(
                        Diagnostic::error(
                            codes::UNSUPPORTED_YAML,
                            format!(
                                "the file holds more than one YAML document; {} is one \
                                     document",
                                kind.noun()
                            ),
                        )
                        .with_help("remove the `---` separator, or split the documents into files"),
                    ))
                } else {
                    Ok(())
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                b.scalar(&text, style, anchor, tag.as_deref().map(tag_name), at)
            }
            Event::SequenceStart(_, anchor, tag) => {
                b.check_collection_tag(tag.as_deref().map(tag_name), "seq", at);
                b.open(at, anchor, false)
            }
            Event::MappingStart(_, anchor, tag) => {
                b.check_collection_tag(tag.as_deref().map(tag_name), "map", at);
                b.open(at, anchor, true)
            }
            Event::SequenceEnd | Event::MappingEnd => b.close(&span),
            Event::Alias(id) => b.alias(id, at),
            _ => Ok(()),
        };
        if let Err(d) = result {
            b.diagnostics.push((*d).in_source(source, "", Some(at)));
            return (None, b.diagnostics);
        }
    }

    // An empty document is a null at the start of the file, so the finding
    // that a mapping was expected still has a place to point at.
    if b.root.is_none() {
        let start = Location { line: 1, column: 1, offset: 0, len: 0 };
        b.spans.insert(String::new(), NodeSpan { key: None, value: start });
    }
    let value = b.root.unwrap_or(Value::Null);
    (Some(Loaded { value, spans: b.spans }), b.diagnostics)
}

/// The finding for a compiled plan given where a YAML file belongs. It
/// points at the plan's header line only: the rest is binary.
fn compiled_plan(source: &Arc<SourceFile>, kind: Kind) -> Diagnostic {
    let header = source.text.lines().next().unwrap_or_default();
    let header = Arc::new(SourceFile::new(source.name.clone(), header));
    let at = Location { line: 1, column: 1, offset: 0, len: header.text.len() };
    let help = match kind {
        Kind::Spec => {
            "check the spec it was compiled from; `serve`, `explain` and `simulate` take a plan \
             in place of a spec"
        }
        Kind::Included => "include the spec files the plan was compiled from",
        Kind::Scenario => "give the scenario's YAML file; a plan stands in for a spec only",
    };
    Diagnostic::error(
        codes::YAML_SYNTAX,
        format!("this is a compiled plan (written by `sluice compile`), not {}", kind.noun()),
    )
    .with_help(help)
    .in_source(&header, "", Some(at))
}

fn tag_name(tag: &granit_parser::Tag) -> String {
    if tag.handle() == "tag:yaml.org,2002:" {
        format!("!!{}", tag.suffix())
    } else {
        tag.to_string()
    }
}

impl Builder<'_> {
    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<String>,
        at: Location,
    ) -> Step {
        if let Some(Frame::Map { key: key @ None, seen, pointer, .. }) = self.stack.last_mut() {
            if style == ScalarStyle::Plain && text == "<<" {
                let help = match self.kind {
                    Kind::Scenario => {
                        "write the keys out, or repeat a whole value with an anchor and an alias \
                         (`&name` on it, `*name` where it repeats)"
                    }
                    Kind::Spec | Kind::Included => {
                        "write the keys out, or repeat a whole value with an anchor and an alias \
                         (`&name` on it, `*name` where it repeats); to share listeners, pools \
                         and routes between specs, `include:` a file of them"
                    }
                };
                return Err(Box::new(
                    Diagnostic::error(
                        codes::UNSUPPORTED_YAML,
                        "merge keys (`<<`) are not supported",
                    )
                    .with_help(help),
                ));
            }
            let repeat = match seen.get(text) {
                Some(first) => {
                    let first = *first;
                    let d = Diagnostic::error(
                        codes::DUPLICATE_KEY,
                        format!("key `{text}` appears twice in the same mapping"),
                    )
                    .with_help("YAML keeps only one of them; delete or rename the other")
                    .in_source(self.source, &child(pointer, text), Some(at))
                    .with_label_at(
                        &child(pointer, text),
                        first,
                        "first defined here",
                    );
                    self.diagnostics.push(d);
                    true
                }
                None => {
                    seen.insert(text.to_owned(), at);
                    false
                }
            };
            *key = Some((text.to_owned(), at, repeat));
            return Ok(());
        }

        let value = match tag.as_deref() {
            None if style == ScalarStyle::Plain => resolve_plain(text),
            None | Some("!!str") => Value::String(text.to_owned()),
            Some(other) => {
                let d = Diagnostic::error(
                    codes::UNSUPPORTED_YAML,
                    format!("tag `{other}` is not supported"),
                )
                .with_help("remove the tag; quote the value if it must stay a string")
                .in_source(self.source, "", Some(at));
                self.diagnostics.push(d);
                Value::String(text.to_owned())
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        self.attach(value, at)
    }

    fn check_collection_tag(&mut self, tag: Option<String>, plain: &str, at: Location) {
        if let Some(tag) = tag.filter(|t| *t != format!("!!{plain}")) {
            let d =
                Diagnostic::error(codes::UNSUPPORTED_YAML, format!("tag `{tag}` is not supported"))
                    .with_help("remove the tag")
                    .in_source(self.source, "", Some(at));
            self.diagnostics.push(d);
        }
    }

    fn open(&mut self, start: Location, anchor: usize, map: bool) -> Step {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Box::new(Diagnostic::error(
                codes::UNSUPPORTED_YAML,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            )));
        }
        let pointer = match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { key: None, .. }) => {
                return Err(Box::new(Diagnostic::error(
                    codes::UNSUPPORTED_YAML,
                    "a mapping key must be a plain value, not a list or mapping",
                )));
            }
            Some(Frame::Map { pointer, key: Some((k, ..)), .. }) => child(pointer, k),
            Some(Frame::Seq { pointer, items, .. }) => child(pointer, &items.len().to_string()),
        };
        self.stack.push(if map {
            Frame::Map { map: Map::new(), pointer, start, anchor, key: None, seen: HashMap::new() }
        } else {
            Frame::Seq { items: Vec::new(), pointer, start, anchor }
        });
        Ok(())
    }

    fn close(&mut self, span: &YamlSpan) -> Step {
        let frame = self.stack.pop().expect("the parser balances collection start and end events");
        let (value, start, anchor) = match frame {
            Frame::Map { map, start, anchor, .. } => (Value::Object(map), start, anchor),
            Frame::Seq { items, start, anchor, .. } => (Value::Array(items), start, anchor),
        };
        // The collection spans from its first token to the end of its last.
        let end = span.end.byte_offset().unwrap_or(start.offset).max(start.offset);
        let whole = Location { len: end - start.offset, ..start };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        self.attach(value, whole)
    }

    fn alias(&mut self, id: usize, at: Location) -> Step {
        // An anchor is recorded when its node is complete, so an alias inside
        // the node it names finds nothing.
        let Some(value) = self.anchors.get(&id).cloned() else {
            return Err(Box::new(
                Diagnostic::error(
                    codes::UNSUPPORTED_YAML,
                    "this alias refers to the node that contains it",
                )
                .with_help("a node cannot include itself; write the value out"),
            ));
        };
        self.expanded += count_nodes(&value);
        if self.expanded > MAX_EXPANDED_NODES {
            return Err(Box::new(
                Diagnostic::error(
                    codes::UNSUPPORTED_YAML,
                    format!("aliases expand to more than {MAX_EXPANDED_NODES} nodes"),
                )
                .with_help("write the repeated parts out, or reference fewer times"),
            ));
        }
        self.attach(value, at)
    }

    /// Put a finished node into its parent, recording its span.
    fn attach(&mut self, value: Value, at: Location) -> Step {
        match self.stack.last_mut() {
            None => {
                self.spans.insert(String::new(), NodeSpan { key: None, value: at });
                self.root = Some(value);
            }
            Some(Frame::Map { map, pointer, key, .. }) => {
                let (k, key_at, repeat) = key.take().expect("a mapping value follows its key");
                if !repeat {
                    self.spans
                        .insert(child(pointer, &k), NodeSpan { key: Some(key_at), value: at });
                    map.insert(k, value);
                }
            }
            Some(Frame::Seq { items, pointer, .. }) => {
                let p = child(pointer, &items.len().to_string());
                self.spans.insert(p, NodeSpan { key: None, value: at });
                items.push(value);
            }
        }
        Ok(())
    }
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Append one reference token to a JSON pointer, escaping as RFC 6901 says.
pub(crate) fn child(pointer: &str, token: &str) -> String {
    let token = token.replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{token}")
}

fn location(text: &str, start: &Marker, end: &Marker) -> Location {
    let offset = start.byte_offset().unwrap_or_else(|| char_to_byte(text, start.index()));
    let end = end.byte_offset().unwrap_or_else(|| char_to_byte(text, end.index()));
    Location {
        line: start.line(),
        column: start.col() + 1,
        offset,
        len: end.saturating_sub(offset),
    }
}

/// The line and column of a byte offset.
fn location_of_offset(text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Location { line, column, offset, len: 0 }
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

/// Resolve a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return n;
    }
    if is_core_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

fn resolve_int(text: &str) -> Option<Value> {
    let (digits, radix) = if let Some(h) = text.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = text.strip_prefix("0o") {
        (o, 8)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some(match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => match text.trim_start_matches('+').parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(text.parse::<f64>().ok()?),
            },
        });
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(Value::from)
}

fn is_core_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> (Option<Loaded>, Vec<Diagnostic>) {
        load(&Arc::new(SourceFile::new("t.yaml", text)), Kind::Spec)
    }

    #[test]
    fn core_schema_keeps_yaml_1_1_booleans_as_strings() {
        let (loaded, d) = load_str("a: yes\nb: NO\nc: on\nd: true\ne: 12\nf: 1.5\ng: ~\nh: '12'\n");
        assert!(d.is_empty(), "{d:?}");
        let v = loaded.unwrap().value;
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], "NO");
        assert_eq!(v["c"], "on");
        assert_eq!(v["d"], true);
        assert_eq!(v["e"], 12);
        assert_eq!(v["f"], 1.5);
        assert_eq!(v["g"], Value::Null);
        assert_eq!(v["h"], "12");
    }

    #[test]
    fn records_key_and_value_spans_by_pointer() {
        let text = "routes:\n  - name: a\n    to: pool-a\n";
        let (loaded, _) = load_str(text);
        let loaded = loaded.unwrap();
        let to = loaded.spans["/routes/0/to"];
        assert_eq!((to.value.line, to.value.column), (3, 9));
        assert_eq!(&text[to.value.offset..to.value.offset + to.value.len], "pool-a");
        let key = to.key.unwrap();
        assert_eq!((key.line, key.column), (3, 5));
        let item = loaded.spans["/routes/0"];
        assert_eq!((item.value.line, item.value.column), (2, 5));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let (loaded, d) = load_str("a: 1\nb: 2\na: 3\n");
        assert!(loaded.is_some());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, codes::DUPLICATE_KEY);
        assert_eq!(d[0].location.map(|l| (l.line, l.column)), Some((3, 1)));
        assert_eq!(d[0].labels[0].location.line, 1);
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let (loaded, d) = load_str("a: [1, 2\nb: 3\n");
        assert!(loaded.is_none());
        assert_eq!(d[0].code, codes::YAML_SYNTAX);
        assert!(d[0].location.is_some());
    }

    #[test]
    fn merge_keys_tags_and_alias_bombs_are_refused() {
        let (_, d) = load_str("a: &x {k: 1}\nb:\n  <<: *x\n");
        assert_eq!(d[0].code, codes::UNSUPPORTED_YAML);
        let (_, d) = load_str("a: !custom 1\n");
        assert_eq!(d[0].code, codes::UNSUPPORTED_YAML);

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = (b'a' + i) as char;
            let next = (b'a' + i + 1) as char;
            bomb.push_str(&format!("{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let (loaded, d) = load_str(&bomb);
        assert!(loaded.is_none());
        assert!(d[0].message.contains("expand"), "{}", d[0].message);
    }

    #[test]
    fn recursive_aliases_and_invalid_utf8_are_findings() {
        let (loaded, d) = load_str("routes: &a [*a]\n");
        assert!(loaded.is_none());
        assert_eq!(d[0].code, codes::UNSUPPORTED_YAML);

        let bytes = b"version: 1\n# caf\xe9\n".to_vec();
        let (loaded, d) = load(&Arc::new(SourceFile::from_bytes("t.yaml", bytes)), Kind::Spec);
        assert!(loaded.is_none());
        assert_eq!(d[0].code, codes::YAML_SYNTAX);
        assert_eq!(d[0].location.map(|l| (l.line, l.column)), Some((2, 6)));
    }

    /// Regression: a scenario's findings about the file spoke of specs
    /// ("a spec is one document", "use `include:`"), and a compiled plan
    /// was "not valid UTF-8 text".
    #[test]
    fn findings_about_the_whole_file_name_what_it_should_be() {
        let load_as = |text: &str, kind| load(&Arc::new(SourceFile::new("t.yaml", text)), kind).1;
        let two = "version: 1\n---\nversion: 1\n";
        let merge = "a: &x {k: 1}\nb:\n  <<: *x\n";
        for (kind, noun) in [(Kind::Spec, "a spec"), (Kind::Scenario, "a scenario")] {
            let d = load_as(two, kind);
            assert!(d[0].message.ends_with(&format!("; {noun} is one document")), "{d:?}");
            let help = load_as(merge, kind)[0].help.clone().unwrap();
            assert!(!help.contains("once it is available"), "{help}");
            assert_eq!(help.contains("include:"), kind == Kind::Spec, "{help}");
        }

        let mut plan = b"sluice-plan 5 sha256:00\n\x01\xff\xfe".to_vec();
        plan.extend([0u8; 8]);
        for (kind, noun) in [(Kind::Spec, "a spec"), (Kind::Scenario, "a scenario")] {
            let source = Arc::new(SourceFile::from_bytes("p.plan", plan.clone()));
            let d = load(&source, kind).1;
            assert_eq!(d.len(), 1, "{d:?}");
            assert_eq!(d[0].code, codes::YAML_SYNTAX);
            let words =
                format!("this is a compiled plan (written by `sluice compile`), not {noun}");
            assert_eq!(d[0].message, words);
            assert_eq!(d[0].location.map(|l| (l.line, l.column)), Some((1, 1)));
            // Only the header line, which is text, is shown.
            assert_eq!(d[0].source().unwrap().text, "sluice-plan 5 sha256:00");
        }
    }

    #[test]
    fn duplicate_keys_carry_their_pointer() {
        let (_, d) = load_str("routes:\n  - to: a\n    to: b\n");
        assert_eq!(d[0].pointer, "/routes/0/to");
    }

    #[test]
    fn quoted_and_explicit_str_values_stay_strings() {
        let (loaded, d) = load_str("a: !!str 5\nb: \"true\"\n");
        assert!(d.is_empty(), "{d:?}");
        let v = loaded.unwrap().value;
        assert_eq!(v["a"], "5");
        assert_eq!(v["b"], "true");
    }
}
