//! Path templates: `/v1/contacts/{id}/notes/{*rest}`.
//!
//! A template is a list of segments separated by `/`. A segment is a literal,
//! `{name}` (exactly one non-empty request segment), or, as the last segment
//! only, `{*name}` (the rest of the path, which may be empty, so
//! `/files/{*rest}` matches `/files`, `/files/` and `/files/a/b`). A trailing
//! slash is an empty literal segment and is matched strictly.

use std::fmt;

use crate::condition::Pattern;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    Param(String),
    CatchAll(String),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
    /// Regex constraints of `{name:regex}` parameters, by segment index. The
    /// segment itself is a [`Segment::Param`], so code that only cares about
    /// the shape of a path sees an ordinary parameter.
    pub constraints: Vec<(usize, Pattern)>,
    /// Literal segments compare without regard to ASCII case (`case: insensitive`).
    pub case_insensitive: bool,
}

/// Why a path template is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("path template must start with `/`")]
    NoLeadingSlash,
    #[error(
        "segment `{0}` mixes a parameter with other text; a parameter must be a whole segment"
    )]
    PartialParam(String),
    #[error("parameter name `{0}` is not valid; use letters, digits and `_`")]
    BadParamName(String),
    #[error("parameter `{0}` appears twice")]
    DuplicateParam(String),
    #[error("catch-all `{{*{0}}}` must be the last segment")]
    CatchAllNotLast(String),
    #[error("character {0:?} is not allowed in a path template")]
    BadChar(char),
    #[error("segment `{0}` holds a malformed percent escape")]
    BadEscape(String),
    #[error("the constraint of parameter `{0}` is not a valid regex: {1}")]
    BadConstraint(String, String),
}

impl Template {
    /// Parse a template as written in a spec.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(TemplateError::NoLeadingSlash);
        };
        if let Some(c) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(TemplateError::BadChar(c));
        }

        let raw: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        let mut constraints = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, seg) in raw.iter().enumerate() {
            if !seg.starts_with('{') {
                if let Some(c) = seg.chars().find(|c| matches!(c, '?' | '#')) {
                    return Err(TemplateError::BadChar(c));
                }
            }
            let (segment, constraint) = parse_segment(seg)?;
            if let Some(pattern) = constraint {
                constraints.push((i, pattern));
            }
            let name = match &segment {
                Segment::Literal(_) => None,
                Segment::Param(n) => Some(n.as_str()),
                Segment::CatchAll(n) => {
                    if i + 1 != raw.len() {
                        return Err(TemplateError::CatchAllNotLast(n.clone()));
                    }
                    Some(n.as_str())
                }
            };
            if let Some(name) = name {
                if names.iter().any(|n| n == name) {
                    return Err(TemplateError::DuplicateParam(name.to_owned()));
                }
                names.push(name.to_owned());
            }
            segments.push(segment);
        }
        Ok(Template { segments, constraints, case_insensitive: false })
    }

    /// Check the parameter segments of template `text` as [`Template::parse`]
    /// does, but neither canonicalising literals nor compiling constraints
    /// nor allocating: for a template that was parsed once already, such as
    /// one read back from a plan file, whose names
    /// [`Template::param_names_in`] then gives.
    pub fn check_param_names(text: &str) -> Result<(), TemplateError> {
        let rest = text.strip_prefix('/').ok_or(TemplateError::NoLeadingSlash)?;
        let brace = |s: &str| s.bytes().any(|b| b == b'{' || b == b'}');
        if !brace(rest) {
            return Ok(());
        }
        let mut seen = 0;
        let mut segments = rest.split('/').peekable();
        while let Some(seg) = segments.next() {
            if !brace(seg) {
                continue;
            }
            let inner = seg
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .ok_or_else(|| TemplateError::PartialParam(seg.to_owned()))?;
            let name = match inner.split_once(':') {
                Some((name, "")) => {
                    return Err(TemplateError::BadConstraint(name.to_owned(), "it is empty".into()))
                }
                Some((name, _)) => name,
                None if inner.contains(['{', '}']) => {
                    return Err(TemplateError::PartialParam(seg.to_owned()))
                }
                None => match inner.strip_prefix('*') {
                    Some(name) if segments.peek().is_some() => {
                        return Err(TemplateError::CatchAllNotLast(name.to_owned()))
                    }
                    Some(name) => name,
                    None => inner,
                },
            };
            check_name(name)?;
            if Template::param_names_in(text).take(seen).any(|n| n == name) {
                return Err(TemplateError::DuplicateParam(name.to_owned()));
            }
            seen += 1;
        }
        Ok(())
    }

    /// The parameter names of template `text`, which
    /// [`Template::check_param_names`] accepted, in the order their captures
    /// appear.
    pub fn param_names_in(text: &str) -> impl Iterator<Item = &str> {
        text.split('/').filter_map(|segment| {
            let inner = segment.strip_prefix('{')?.strip_suffix('}')?;
            let name = inner.split_once(':').map_or(inner, |(name, _)| name);
            Some(name.strip_prefix('*').unwrap_or(name))
        })
    }

    /// Parameter names in the order their captures appear.
    pub fn param_names(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Literal(_) => None,
                Segment::Param(n) | Segment::CatchAll(n) => Some(n.clone()),
            })
            .collect()
    }

    /// A concrete path this template matches, with `x` for every parameter.
    /// For a constrained parameter the example is the first of a few common
    /// values the regex accepts (`x` when none does).
    pub fn example_path(&self) -> String {
        let mut out = String::new();
        for (i, seg) in self.segments.iter().enumerate() {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push_str(
                    self.constraint(i)
                        .and_then(|p| EXAMPLES.iter().find(|e| p.is_match(e)))
                        .unwrap_or(&"x"),
                ),
                Segment::CatchAll(_) => {}
            }
        }
        out
    }

    /// The shapes a route matches under `trailing_slash: ignore`: this template
    /// and the same path with the trailing slash added or removed. A template
    /// ending in a catch-all already matches both, and `/` has no shorter form.
    pub fn trailing_slash_variants(&self) -> Vec<Template> {
        let mut other = self.clone();
        match self.segments.last() {
            Some(Segment::CatchAll(_)) | None => return vec![self.clone()],
            Some(Segment::Literal(l)) if l.is_empty() => {
                if self.segments.len() == 1 {
                    return vec![self.clone()];
                }
                other.segments.pop();
            }
            Some(_) => other.segments.push(Segment::Literal(String::new())),
        }
        vec![self.clone(), other]
    }

    /// The regex constraint of segment `index`, if it is a constrained parameter.
    pub fn constraint(&self, index: usize) -> Option<&Pattern> {
        self.constraints.iter().find(|(i, _)| *i == index).map(|(_, p)| p)
    }
}

/// Candidate values for example requests through constrained parameters.
const EXAMPLES: [&str; 8] = ["x", "1", "42", "abc", "a1", "v1", "2024-01-01", "0"];

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Param(n) => match self.constraint(i) {
                    Some(p) => write!(f, "/{{{n}:{}}}", p.as_str())?,
                    None => write!(f, "/{{{n}}}")?,
                },
                Segment::CatchAll(n) => write!(f, "/{{*{n}}}")?,
            }
        }
        Ok(())
    }
}

fn parse_segment(seg: &str) -> Result<(Segment, Option<Pattern>), TemplateError> {
    if !seg.contains(['{', '}']) {
        // Literals take the spelling normalisation gives request paths.
        return crate::normalize::canonical_segment(seg)
            .map(|l| (Segment::Literal(l), None))
            .map_err(|_| TemplateError::BadEscape(seg.to_owned()));
    }
    let inner = seg
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| TemplateError::PartialParam(seg.to_owned()))?;

    // `{name:regex}`: the regex is everything after the first colon, braces included.
    if let Some((name, regex)) = inner.split_once(':') {
        check_name(name)?;
        if regex.is_empty() {
            return Err(TemplateError::BadConstraint(
                name.to_owned(),
                "it is empty, and a parameter never matches an empty segment".to_owned(),
            ));
        }
        let pattern = Pattern::new(regex).map_err(|e| {
            let text = e.to_string();
            let last = text.lines().last().unwrap_or_default().trim();
            let why = last.strip_prefix("error: ").unwrap_or(last).to_owned();
            TemplateError::BadConstraint(name.to_owned(), why)
        })?;
        return Ok((Segment::Param(name.to_owned()), Some(pattern)));
    }
    if inner.contains(['{', '}']) {
        return Err(TemplateError::PartialParam(seg.to_owned()));
    }
    let (catch_all, name) = match inner.strip_prefix('*') {
        Some(name) => (true, name),
        None => (false, inner),
    };
    check_name(name)?;
    let segment = if catch_all {
        Segment::CatchAll(name.to_owned())
    } else {
        Segment::Param(name.to_owned())
    };
    Ok((segment, None))
}

fn check_name(name: &str) -> Result<(), TemplateError> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(TemplateError::BadParamName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_segment_kind() {
        let t = Template::parse("/v1/{id}/files/{*rest}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Literal("v1".into()),
                Segment::Param("id".into()),
                Segment::Literal("files".into()),
                Segment::CatchAll("rest".into()),
            ]
        );
        assert_eq!(t.param_names(), ["id", "rest"]);
        assert_eq!(t.to_string(), "/v1/{id}/files/{*rest}");
    }

    #[test]
    fn constrained_parameters_keep_their_regex() {
        let t = Template::parse("/v1/{id:[0-9]{3}}/{slug:[a-z-]+}").unwrap();
        assert_eq!(t.param_names(), ["id", "slug"]);
        assert_eq!(t.constraints.len(), 2);
        assert_eq!(t.to_string(), "/v1/{id:[0-9]{3}}/{slug:[a-z-]+}");
        // No common value has three digits, so the example falls back to `x`.
        assert_eq!(t.example_path(), "/v1/x/x");
        assert!(matches!(
            Template::parse("/{id:(}"),
            Err(TemplateError::BadConstraint(n, _)) if n == "id"
        ));
        assert!(Template::parse("/{id:a?b}").is_ok(), "`?` is fine inside a constraint");
        assert!(matches!(Template::parse("/u/{id:}"), Err(TemplateError::BadConstraint(..))));
    }

    #[test]
    fn literals_are_canonicalised_like_request_paths() {
        let t = Template::parse("/caf\u{e9}/%7euser/{id}").unwrap();
        assert_eq!(t.to_string(), "/caf%C3%A9/~user/{id}");
    }

    #[test]
    fn param_names_in_agrees_with_parse() {
        for text in ["/", "/a/", "/v1/{id}/files/{*rest}", "/v1/{id:[0-9]{3}}/{slug:[a-z-]+}"] {
            let parsed = Template::parse(text).unwrap().param_names();
            assert_eq!(Template::check_param_names(text), Ok(()), "{text}");
            assert_eq!(Template::param_names_in(text).collect::<Vec<_>>(), parsed, "{text}");
        }
        for text in
            ["v1/x", "/a{id}", "/{id", "/{}", "/{1x}", "/{id}/{id}", "/{*rest}/x", "/u/{id:}"]
        {
            assert!(Template::check_param_names(text).is_err(), "{text}");
        }
    }

    #[test]
    fn root_and_trailing_slash_are_empty_literals() {
        assert_eq!(Template::parse("/").unwrap().segments, vec![Segment::Literal(String::new())]);
        let t = Template::parse("/a/").unwrap();
        assert_eq!(t.segments.len(), 2);
    }

    #[test]
    fn rejects_malformed_templates() {
        let cases = [
            ("v1/x", TemplateError::NoLeadingSlash),
            ("/a{id}", TemplateError::PartialParam("a{id}".into())),
            ("/{id", TemplateError::PartialParam("{id".into())),
            ("/{}", TemplateError::BadParamName(String::new())),
            ("/{1x}", TemplateError::BadParamName("1x".into())),
            ("/{id}/{id}", TemplateError::DuplicateParam("id".into())),
            ("/{*rest}/x", TemplateError::CatchAllNotLast("rest".into())),
            ("/a?b", TemplateError::BadChar('?')),
            ("/a b", TemplateError::BadChar(' ')),
            ("/a%zz", TemplateError::BadEscape("a%zz".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Template::parse(text), Err(want), "{text}");
        }
    }
}
