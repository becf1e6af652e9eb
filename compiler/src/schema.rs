//! JSON Schemas derived from the model types, and schema validation whose
//! findings point at the exact key or value that is wrong.
//!
//! The schema is the contract editors see (each example spec names it in a
//! `yaml-language-server` comment), so `check` validates against the very
//! same schema and then rewrites the validator's errors into messages about
//! the spec: which key, what was expected, and the nearest valid spelling.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use schemars::JsonSchema;
use serde_json::Value;

use crate::diagnostic::{codes, Diagnostic};
use crate::document::Document;
use crate::spec::Spec;
use crate::yaml::child;

/// The JSON Schema of `T`, as a value. Every whole number states the range
/// its type can hold, so that a value too large for it is a schema finding
/// like any other bound.
pub fn schema_value<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::default()
        .with_transform(schemars::transform::RecursiveTransform(integer_bounds))
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>())
        .expect("a derived schema serialises to JSON")
}

/// The smallest and largest value of an integer `format` as schemars names
/// them.
pub(crate) fn format_bounds(format: &str) -> Option<(i128, i128)> {
    Some(match format {
        "uint8" => (0, u8::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint64" | "uint" => (0, u64::MAX.into()),
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" | "int" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// A bound as a JSON number.
fn bound_value(n: i128) -> Value {
    match u64::try_from(n) {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(i64::try_from(n).unwrap_or(i64::MIN)),
    }
}

/// Give an integer schema its type's bounds where the type states none.
fn integer_bounds(schema: &mut schemars::Schema) {
    let Some(object) = schema.as_object_mut() else { return };
    let format = object.get("format").and_then(Value::as_str);
    let Some((low, high)) = format.and_then(format_bounds) else { return };
    object.entry("minimum").or_insert_with(|| bound_value(low));
    object.entry("maximum").or_insert_with(|| bound_value(high));
}

/// The spec schema as committed in `schemas/spec.schema.json`.
pub fn spec_schema_text() -> String {
    pretty(&schema_value::<Spec>())
}

/// Pretty JSON with a final newline, the form schema files are committed in.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
    text.push('\n');
    text
}

pub(crate) struct SchemaFindings {
    pub diagnostics: Vec<Diagnostic>,
    /// Pointers of keys the schema does not allow, in document order.
    pub unknown_keys: Vec<String>,
}

/// A format's schema and its compiled validator.
pub(crate) struct Compiled {
    pub schema: Value,
    validator: jsonschema::Validator,
}

/// The schema of `T`, compiled once per process: a spec that includes a
/// thousand files checks each against the same schema, and compiling it
/// costs far more than checking a file.
pub(crate) fn compiled<T: JsonSchema + 'static>() -> Arc<Compiled> {
    static COMPILED: OnceLock<Mutex<HashMap<TypeId, Arc<Compiled>>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(Mutex::default);
    let known = cache.lock().ok().and_then(|c| c.get(&TypeId::of::<T>()).cloned());
    if let Some(known) = known {
        return known;
    }
    let schema = schema_value::<T>();
    let validator = jsonschema::validator_for(&schema).expect("derived schemas are valid schemas");
    let made = Arc::new(Compiled { schema, validator });
    if let Ok(mut cache) = cache.lock() {
        cache.insert(TypeId::of::<T>(), Arc::clone(&made));
    }
    made
}

pub(crate) fn validate(compiled: &Compiled, doc: &Document) -> SchemaFindings {
    let mut out = SchemaFindings { diagnostics: Vec::new(), unknown_keys: Vec::new() };
    for error in compiled.validator.iter_errors(&doc.value) {
        convert(&error, &compiled.schema, doc, &mut out);
    }
    out
}

/// Turn one validator error into findings about the spec.
fn convert(
    error: &jsonschema::ValidationError<'_>,
    schema: &Value,
    doc: &Document,
    out: &mut SchemaFindings,
) {
    {
        let pointer = error.instance_path().as_str().to_owned();
        let instance = doc.value.pointer(&pointer).unwrap_or(&Value::Null);
        let at = describe(&pointer);
        let sub = schema_at(schema, &pointer);
        use jsonschema::error::ValidationErrorKind as Kind;

        let d = match error.kind() {
            Kind::AdditionalProperties { unexpected } => {
                let allowed = sub.map(property_names).unwrap_or_default();
                for key in unexpected {
                    let key_pointer = child(&pointer, key);
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_KEY,
                        format!("unknown key `{key}` in {at}"),
                    );
                    d = match nearest(key, &allowed) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None => d.with_help(format!("allowed keys: {}", allowed.join(", "))),
                    };
                    out.diagnostics.push(d.at_key(doc, &key_pointer));
                    out.unknown_keys.push(key_pointer);
                }
                return;
            }
            Kind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                Diagnostic::error(
                    codes::MISSING_KEY,
                    format!("{at} is missing required key `{name}`"),
                )
                .at_key(doc, &pointer)
            }
            Kind::Type { .. } => {
                let expected = sub.map(expected_type).unwrap_or_else(|| "another type".into());
                Diagnostic::error(
                    codes::WRONG_TYPE,
                    format!("{at} must be {expected}, found {}", show(instance)),
                )
                .at(doc, &pointer)
            }
            // A value that fits none of several shapes (`to: 7`, or a split list
            // with a bad entry): report the errors of the shape whose type fits,
            // or say which types would do.
            Kind::AnyOf { context } | Kind::OneOfNotValid { context }
                if sub.map(choices).unwrap_or_default().is_empty() =>
            {
                let type_fits = |errors: &&Vec<jsonschema::ValidationError<'static>>| {
                    !errors.iter().any(|e| {
                        matches!(e.kind(), Kind::Type { .. })
                            && e.instance_path().as_str() == pointer
                    })
                };
                if let Some(errors) = context.iter().find(type_fits) {
                    for inner in errors {
                        convert(inner, schema, doc, out);
                    }
                    return;
                }
                let kinds = sub.map(branch_types).unwrap_or_else(|| "another type".into());
                Diagnostic::error(
                    codes::WRONG_TYPE,
                    format!("{at} must be {kinds}, found {}", show(instance)),
                )
                .at(doc, &pointer)
            }
            Kind::Enum { .. } | Kind::OneOfNotValid { .. } | Kind::Constant { .. } => {
                let options = sub.map(choices).unwrap_or_default();
                let found = instance.as_str().unwrap_or_default();
                let mut d = Diagnostic::error(
                    codes::INVALID_VALUE,
                    format!("{at} must be one of {}, found {}", options.join(", "), show(instance)),
                );
                if let Some(best) = nearest(found, &options) {
                    d = d.with_help(format!("did you mean `{best}`?"));
                }
                d.at(doc, &pointer)
            }
            Kind::Pattern { pattern } => {
                pattern_error(&pointer, &at, instance, pattern).at(doc, &pointer)
            }
            Kind::Minimum { .. }
            | Kind::Maximum { .. }
            | Kind::ExclusiveMinimum { .. }
            | Kind::ExclusiveMaximum { .. } => {
                let range = sub.and_then(range_words).unwrap_or_else(|| error.to_string());
                let found = literal(doc, &pointer).unwrap_or_else(|| show(instance));
                Diagnostic::error(
                    codes::INVALID_VALUE,
                    format!("{at} must be {range}, found {found}"),
                )
                .at(doc, &pointer)
                .bound()
            }
            Kind::UniqueItems => Diagnostic::error(
                codes::INVALID_VALUE,
                format!("{at} lists the same value more than once"),
            )
            .with_help("list each value once")
            .at(doc, &pointer),
            _ => {
                Diagnostic::error(codes::INVALID_VALUE, format!("{at}: {error}")).at(doc, &pointer)
            }
        };
        out.diagnostics.push(d);
    }
}

/// The pattern every duration setting has in the schema.
const DURATION_PATTERN: &str = r"^[0-9]+(ms|s|m|h)$";

fn pattern_error(pointer: &str, at: &str, instance: &Value, pattern: &str) -> Diagnostic {
    let shown = show(instance);
    let field = pointer.rsplit('/').next().unwrap_or_default();
    // Any duration setting, so that the mistake is one finding, the same
    // one the settings check gives, and not a second, vaguer one besides.
    let field = if pattern == DURATION_PATTERN { "timeout" } else { field };
    // A size setting: say which units this one takes.
    let units = pattern.strip_prefix("^[0-9]+(").and_then(|p| p.strip_suffix(")$"));
    if let Some(units) = units.filter(|u| u.contains("KiB")) {
        let units: Vec<&str> = units.split('|').collect();
        return Diagnostic::error(codes::INVALID_VALUE, format!("bad size {shown} in {at}"))
            .with_help(size_help(&units));
    }
    match field {
        "timeout" => {
            Diagnostic::error(codes::BAD_DURATION, format!("bad duration {shown} in {at}"))
                .with_help("write a whole number followed by ms, s, m or h, such as 250ms or 5s")
        }
        "path" => {
            Diagnostic::error(codes::BAD_PATH, format!("path template {shown} must start with `/`"))
        }
        "name" => Diagnostic::error(codes::INVALID_VALUE, format!("name {shown} is not valid"))
            .with_help("use letters, digits, `.`, `_` and `-`, starting with a letter or digit"),
        _ => Diagnostic::error(codes::INVALID_VALUE, format!("{at} has an invalid value {shown}")),
    }
}

/// How to write a size setting that takes `units`.
pub(crate) fn size_help(units: &[&str]) -> String {
    let (last, rest) = units.split_last().unwrap_or((&"B", &[]));
    let listed =
        if rest.is_empty() { last.to_string() } else { format!("{} or {last}", rest.join(", ")) };
    format!("write a whole number followed by {listed}, such as 64KiB")
}

/// A readable name for the node at `pointer`: `routes[2].match.path`.
pub(crate) fn describe(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the document".into();
    }
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    format!("`{out}`")
}

/// The value at `pointer` as written in the file, quoted: `2.0` rather
/// than the number it parsed to.
pub(crate) fn literal(doc: &Document, pointer: &str) -> Option<String> {
    doc.written(pointer).map(|text| format!("`{}`", text.trim()))
}

/// The range a number must be in, in words: `from 1 to 64`, `at least 1`;
/// `None` when the schema states no bound.
pub(crate) fn range_words(schema: &Value) -> Option<String> {
    let bound = |key: &str| schema.get(key).filter(|v| v.is_number()).map(Value::to_string);
    let (low, high) = (bound("minimum"), bound("maximum"));
    let (above, below) = (bound("exclusiveMinimum"), bound("exclusiveMaximum"));
    Some(match (low, high, above, below) {
        (Some(low), Some(high), ..) if low == high => high,
        (Some(low), Some(high), ..) => format!("from {low} to {high}"),
        (Some(low), None, ..) => format!("at least {low}"),
        (None, Some(high), ..) => format!("at most {high}"),
        (None, None, Some(above), _) => format!("above {above}"),
        (None, None, None, Some(below)) => format!("below {below}"),
        (None, None, None, None) => return None,
    })
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => format!("`{other}`"),
    }
}

/// The schema that applies at an instance pointer, following `$ref`,
/// `properties`, `items` and `additionalProperties`.
pub(crate) fn schema_at<'s>(root: &'s Value, pointer: &str) -> Option<&'s Value> {
    let mut node = resolve(root, root)?;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        let next = node
            .get("properties")
            .and_then(|p| p.get(&token))
            .or_else(|| node.get("items"))
            .or_else(|| node.get("additionalProperties").filter(|v| v.is_object()))
            .or_else(|| optional_inner(node).and_then(|n| n.get("properties")?.get(&token)))?;
        node = resolve(root, next)?;
    }
    Some(node)
}

/// Follow `$ref` and unwrap `anyOf: [X, null]`, which schemars emits for options.
fn resolve<'s>(root: &'s Value, mut node: &'s Value) -> Option<&'s Value> {
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            node = root.pointer(r.strip_prefix('#')?)?;
        } else if let Some(inner) = optional_inner(node) {
            node = inner;
        } else {
            return Some(node);
        }
    }
    None
}

fn optional_inner(node: &Value) -> Option<&Value> {
    let branches = node.get("anyOf")?.as_array()?;
    let mut non_null = branches.iter().filter(|b| b.get("type") != Some(&Value::from("null")));
    let first = non_null.next()?;
    non_null.next().is_none().then_some(first)
}

fn property_names(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn choices(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut collect = |s: &Value| {
        if let Some(c) = s.get("const").and_then(Value::as_str) {
            out.push(c.to_owned());
        }
        for e in s.get("enum").and_then(Value::as_array).into_iter().flatten() {
            if let Some(e) = e.as_str() {
                out.push(e.to_owned());
            }
        }
    };
    collect(schema);
    for key in ["oneOf", "anyOf"] {
        for branch in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            collect(branch);
        }
    }
    out
}

/// `a string or a list`: the types of the branches of an `anyOf`/`oneOf`.
fn branch_types(schema: &Value) -> String {
    let branches = ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_array))
        .flatten()
        .map(expected_type)
        .collect::<Vec<_>>();
    if branches.is_empty() {
        expected_type(schema)
    } else {
        branches.join(" or ")
    }
}

fn expected_type(schema: &Value) -> String {
    let name = |t: &str| match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "null",
        _ => "another type",
    };
    match schema.get("type") {
        Some(Value::String(t)) => name(t).into(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(name)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "another type".into(),
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to
/// be a likely typo (or differs only in `_` and `-`).
pub fn nearest<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    candidates
        .iter()
        .map(|c| {
            let d = if squash(c) == squash(word) { 0 } else { edit_distance(word, c) };
            (d, c)
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_and_separator_changes() {
        let keys: Vec<String> = ["rate_limit", "timeout", "to"].map(String::from).to_vec();
        assert_eq!(nearest("ratelimit", &keys), Some("rate_limit"));
        assert_eq!(nearest("timout", &keys), Some("timeout"));
        assert_eq!(nearest("completely-else", &keys), None);
    }

    #[test]
    fn every_whole_number_of_the_spec_states_its_range() {
        fn walk(v: &Value, at: String, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    let integer = match map.get("type") {
                        Some(Value::String(t)) => t == "integer",
                        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                        _ => false,
                    };
                    let bounded = map.get("minimum").is_some() && map.get("maximum").is_some();
                    if integer && !bounded {
                        out.push(at.clone());
                    }
                    for (key, item) in map {
                        walk(item, format!("{at}/{key}"), out);
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
        let mut unbounded = Vec::new();
        walk(&schema_value::<Spec>(), String::new(), &mut unbounded);
        assert!(unbounded.is_empty(), "whole numbers without a stated range: {unbounded:?}");
        let breaker = &schema_value::<Spec>()["$defs"]["CircuitBreaker"]["properties"];
        assert_eq!(breaker["max_connections"]["minimum"], 1);
        assert_eq!(breaker["max_connections"]["maximum"], u32::MAX);
    }

    #[test]
    fn a_bad_size_names_the_units_its_setting_takes() {
        let value = Value::String("100GiB".into());
        let head =
            pattern_error("/listeners/0/max_head_size", "`x`", &value, r"^[0-9]+(B|KiB|MiB)$");
        assert_eq!(head.message, "bad size `100GiB` in `x`");
        let help = head.help.unwrap_or_default();
        assert!(help.contains("B, KiB or MiB,"), "{help}");
        let body = pattern_error("/max_body_size", "`y`", &value, r"^[0-9]+(B|KiB|MiB|GiB)$");
        assert!(body.help.unwrap_or_default().contains("B, KiB, MiB or GiB,"));
    }

    #[test]
    fn describes_pointers_readably() {
        assert_eq!(describe("/routes/2/match/path"), "`routes[2].match.path`");
        assert_eq!(describe(""), "the document");
    }
}
