//! Header, query-parameter and cookie conditions of a route.
//!
//! Semantics, as the README documents them:
//! - header names compare without regard to case; query-parameter and
//!   cookie names compare exactly;
//! - a header, parameter or cookie that a request repeats satisfies an
//!   `exact`, `prefix` or `regex` condition when any one of its values does
//!   (a header field is compared whole: `a, b` is one value);
//! - `present` holds when the name appears at all, `absent` when it does not;
//! - a `regex` must match the whole value (it is anchored), and runs on the
//!   `regex` crate, whose matching time is linear in the input;
//! - query names and values are percent-decoded before comparison (`+` stays
//!   a plus sign); cookies come from every `Cookie` header, split on `;`.
//!
//! A route's conditions all have to hold. They count towards precedence
//! rule 4: at the same host and path, the route with more conditions wins.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest compiled size a condition's regex may take, so that a spec cannot
/// make every request pay for an enormous automaton.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Where a condition looks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// A header, by lowercase name.
    Header(String),
    Query(String),
    Cookie(String),
    /// The port of the Host header (80 when it names none), from a route host
    /// such as `api.example.test:8443`.
    Port,
}

/// What a condition asks of the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Rule {
    Exact(String),
    Prefix(String),
    Regex(Pattern),
    Present,
    Absent,
}

/// One condition of a route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Condition {
    pub source: Source,
    pub rule: Rule,
}

thread_local! {
    /// While [`share_patterns`] runs on this thread: every pattern compiled
    /// so far, by source.
    static SHARED: RefCell<Option<HashMap<String, Pattern>>> = const { RefCell::new(None) };
}

/// Run `f` so that a [`Pattern::new`] of a source already compiled within it
/// shares the earlier compiled regex instead of compiling it again (a plan
/// file holds the same constraint at many trie nodes).
pub(crate) fn share_patterns<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            if self.0 {
                SHARED.with(|s| *s.borrow_mut() = None);
            }
        }
    }
    let outermost = SHARED.with(|s| {
        let mut s = s.borrow_mut();
        s.is_none().then(|| *s = Some(HashMap::new())).is_some()
    });
    let _reset = Reset(outermost);
    f()
}

/// A compiled, anchored regex that travels in plan files as its source.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compile `source` to match whole values.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let shared = SHARED.with(|s| s.borrow().as_ref().and_then(|m| m.get(source).cloned()));
        if let Some(pattern) = shared {
            return Ok(pattern);
        }
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()?;
        let pattern = Pattern { source: source.to_owned(), regex };
        SHARED.with(|s| {
            if let Some(m) = s.borrow_mut().as_mut() {
                m.insert(source.to_owned(), pattern.clone());
            }
        });
        Ok(pattern)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    /// A value the pattern accepts, from a few common ones, for example requests.
    pub fn example(&self) -> Option<&'static str> {
        const CANDIDATES: [&str; 12] =
            ["1", "x", "2", "42", "abc", "yes", "true", "v1", "2.0", "a1", "0", "test"];
        CANDIDATES.into_iter().find(|c| self.is_match(c))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let source = String::deserialize(d)?;
        Pattern::new(&source).map_err(serde::de::Error::custom)
    }
}

/// Access to the parts of a request that conditions read.
pub trait RequestFields {
    /// Call `each` with every value of header `name` (lowercase) until it returns true.
    fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool;
    /// The raw query string, without the `?`.
    fn query(&self) -> &str;
}

/// A request without headers or query, for callers that route on the path alone.
pub struct NoFields;

impl RequestFields for NoFields {
    fn any_header(&self, _: &str, _: &mut dyn FnMut(&str) -> bool) -> bool {
        false
    }

    fn query(&self) -> &str {
        ""
    }
}

impl Condition {
    /// Whether the request satisfies this condition.
    pub fn holds(&self, request: &dyn RequestFields) -> bool {
        let mut present = false;
        let mut satisfied = |value: &str| {
            present = true;
            match &self.rule {
                Rule::Exact(want) => value == want,
                Rule::Prefix(want) => value.starts_with(want.as_str()),
                Rule::Regex(pattern) => pattern.is_match(value),
                Rule::Present | Rule::Absent => true,
            }
        };
        let any = match &self.source {
            Source::Header(name) => request.any_header(name, &mut satisfied),
            Source::Query(name) => query_values(request.query(), name).any(|v| satisfied(&v)),
            Source::Cookie(name) => {
                request.any_header("cookie", &mut |h| cookie_values(h, name).any(&mut satisfied))
            }
            Source::Port => request.any_header("host", &mut |h| {
                // Compared as a number: `08443` is 8443, and no port is 80.
                let mut digits = [0u8; 5];
                satisfied(crate::router::host_port(h).map_or("", |p| port_text(p, &mut digits)))
            }),
        };
        match self.rule {
            Rule::Absent => !present,
            _ => any,
        }
    }

    /// A stable text form, used to order routes that tie on rank.
    pub fn key(&self) -> String {
        let (kind, name) = match &self.source {
            Source::Header(n) => ("header", n.as_str()),
            Source::Query(n) => ("query", n.as_str()),
            Source::Cookie(n) => ("cookie", n.as_str()),
            Source::Port => ("port", ""),
        };
        let rule = match &self.rule {
            Rule::Exact(v) => format!("={v}"),
            Rule::Prefix(v) => format!("^={v}"),
            Rule::Regex(p) => format!("~={}", p.as_str()),
            Rule::Present => "?".to_owned(),
            Rule::Absent => "!".to_owned(),
        };
        format!("{kind}:{name}{rule}")
    }

    /// Whether no request can satisfy both `self` and `other`: the same
    /// name, one requiring it absent and the other present in some form, or
    /// two different exact values (a request that repeats the name with both
    /// values goes to the route whose condition sorts first; see the README).
    pub fn excludes(&self, other: &Condition) -> bool {
        if self.source != other.source {
            return false;
        }
        match (&self.rule, &other.rule) {
            (Rule::Absent, Rule::Absent) => false,
            (Rule::Absent, _) | (_, Rule::Absent) => true,
            (Rule::Exact(a), Rule::Exact(b)) => a != b,
            (Rule::Exact(a), Rule::Prefix(p)) | (Rule::Prefix(p), Rule::Exact(a)) => {
                !a.starts_with(p.as_str())
            }
            (Rule::Exact(a), Rule::Regex(r)) | (Rule::Regex(r), Rule::Exact(a)) => !r.is_match(a),
            _ => false,
        }
    }
}

/// `port` in decimal, written into `digits`.
fn port_text(port: u16, digits: &mut [u8; 5]) -> &str {
    let mut at = digits.len();
    let mut rest = port;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[at..]).unwrap_or("")
}

/// The percent-decoded values of parameter `name` in a query string.
fn query_values<'q>(query: &'q str, name: &'q str) -> impl Iterator<Item = Cow<'q, str>> + 'q {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The values of cookie `name` in one `Cookie` header.
fn cookie_values<'h>(header: &'h str, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Why a spec's condition cannot be lowered: the pointer below the route's
/// `match` and a message.
pub(crate) type ConditionError = (String, String);

/// Lower a route's `headers`, `query` and `cookies` into conditions, or say
/// what is wrong with each bad one.
pub(crate) fn lower(
    matcher: &crate::spec::RouteMatch,
) -> Result<Vec<Condition>, Vec<ConditionError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    if let Some(port) = matcher.host.as_deref().and_then(|h| crate::router::split_host_port(h).1) {
        out.push(Condition { source: Source::Port, rule: Rule::Exact(port.to_string()) });
    }
    let lists =
        [("headers", &matcher.headers), ("query", &matcher.query), ("cookies", &matcher.cookies)];
    for (list, items) in lists {
        for (i, item) in items.iter().enumerate() {
            let here = format!("/{list}/{i}");
            let source = match list {
                "headers" => Source::Header(item.name.to_ascii_lowercase()),
                "query" => Source::Query(item.name.clone()),
                _ => Source::Cookie(item.name.clone()),
            };
            let given = [
                item.exact.is_some(),
                item.prefix.is_some(),
                item.regex.is_some(),
                item.present.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                errors.push((
                    here,
                    format!("condition on `{}` must give exactly one of exact, prefix, regex or present", item.name),
                ));
                continue;
            }
            if list == "headers" && !item.name.bytes().all(is_token_byte) {
                errors.push((
                    format!("{here}/name"),
                    format!("`{}` is not a valid header name", item.name),
                ));
                continue;
            }
            let rule = if let Some(v) = &item.exact {
                Rule::Exact(v.clone())
            } else if let Some(v) = &item.prefix {
                Rule::Prefix(v.clone())
            } else if let Some(r) = &item.regex {
                match Pattern::new(r) {
                    Ok(p) => Rule::Regex(p),
                    Err(e) => {
                        let text = e.to_string();
                        let last = text.lines().last().unwrap_or_default().trim();
                        let why = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                        errors.push((
                            format!("{here}/regex"),
                            format!("regex `{r}` is not valid: {why}"),
                        ));
                        continue;
                    }
                }
            } else if item.present == Some(false) {
                Rule::Absent
            } else {
                Rule::Present
            };
            let condition = Condition { source, rule };
            if out.iter().any(|c: &Condition| c.excludes(&condition) || condition.excludes(c)) {
                errors.push((here, format!("condition on `{}` contradicts another condition of this route, so it can never match", item.name)));
                continue;
            }
            out.push(condition);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// RFC 9110 token characters, the ones a header name may use.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        headers: Vec<(&'static str, &'static str)>,
        query: &'static str,
    }

    impl RequestFields for Fake {
        fn any_header(&self, name: &str, each: &mut dyn FnMut(&str) -> bool) -> bool {
            self.headers.iter().filter(|(n, _)| *n == name).any(|(_, v)| each(v))
        }
        fn query(&self) -> &str {
            self.query
        }
    }

    fn cond(source: Source, rule: Rule) -> Condition {
        Condition { source, rule }
    }

    fn header(n: &str) -> Source {
        Source::Header(n.into())
    }

    #[test]
    fn header_rules() {
        let req = Fake { headers: vec![("x-v", "2"), ("x-v", "3"), ("ua", "curl/8")], query: "" };
        assert!(cond(header("x-v"), Rule::Exact("3".into())).holds(&req), "any value");
        assert!(!cond(header("x-v"), Rule::Exact("4".into())).holds(&req));
        assert!(cond(header("ua"), Rule::Prefix("curl/".into())).holds(&req));
        assert!(cond(header("ua"), Rule::Regex(Pattern::new("curl/[0-9]+").unwrap())).holds(&req));
        assert!(
            !cond(header("ua"), Rule::Regex(Pattern::new("curl").unwrap())).holds(&req),
            "anchored"
        );
        assert!(cond(header("x-v"), Rule::Present).holds(&req));
        assert!(cond(header("x-w"), Rule::Absent).holds(&req));
        assert!(!cond(header("x-v"), Rule::Absent).holds(&req));
    }

    #[test]
    fn query_and_cookie_rules() {
        let req = Fake {
            headers: vec![("cookie", "a=1; beta=yes"), ("cookie", "session=\"abc\"")],
            query: "debug=1&id=42&tag=a%20b&flag&id=7",
        };
        let q = |n: &str| Source::Query(n.into());
        assert!(cond(q("debug"), Rule::Exact("1".into())).holds(&req));
        assert!(cond(q("id"), Rule::Exact("7".into())).holds(&req), "repeated parameter");
        assert!(cond(q("tag"), Rule::Exact("a b".into())).holds(&req), "decoded");
        assert!(cond(q("flag"), Rule::Present).holds(&req));
        assert!(cond(q("nope"), Rule::Absent).holds(&req));
        let c = |n: &str| Source::Cookie(n.into());
        assert!(cond(c("beta"), Rule::Exact("yes".into())).holds(&req));
        assert!(cond(c("session"), Rule::Exact("abc".into())).holds(&req));
        assert!(cond(c("other"), Rule::Absent).holds(&req));
        assert!(!cond(c("beta"), Rule::Absent).holds(&req));
    }

    #[test]
    fn exclusion_is_conservative() {
        let exact = |v: &str| cond(header("x"), Rule::Exact(v.into()));
        assert!(exact("1").excludes(&exact("2")));
        assert!(!exact("1").excludes(&exact("1")));
        assert!(exact("1").excludes(&cond(header("x"), Rule::Absent)));
        assert!(!exact("1").excludes(&cond(header("y"), Rule::Absent)));
        assert!(!exact("1").excludes(&cond(header("x"), Rule::Present)));
        assert!(exact("abc").excludes(&cond(header("x"), Rule::Prefix("b".into()))));
        assert!(!cond(header("x"), Rule::Prefix("a".into()))
            .excludes(&cond(header("x"), Rule::Prefix("b".into()))));
    }

    #[test]
    fn patterns_survive_a_plan_round_trip_and_refuse_huge_programs() {
        let p = Pattern::new("[0-9]{2,4}").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: Pattern = serde_json::from_str(&json).unwrap();
        assert!(back.is_match("123") && !back.is_match("12345"));
        assert!(Pattern::new("(a{1000}){1000}").is_err());
        assert!(serde_json::from_str::<Pattern>("\"(\"").is_err());
    }
}
