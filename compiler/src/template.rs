//! Path templates: `/v1/contacts/{id}/notes/{*rest}`.
//!
//! A template is a list of segments separated by `/`. A segment is a literal,
//! `{name}` (exactly one non-empty request segment), or, as the last segment
//! only, `{*name}` (the rest of the path, which may be empty, so
//! `/files/{*rest}` matches `/files`, `/files/` and `/files/a/b`). A trailing
//! slash is an empty literal segment and is matched strictly.

use std::fmt;

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
}

impl Template {
    /// Parse a template as written in a spec.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(TemplateError::NoLeadingSlash);
        };
        if let Some(c) =
            text.chars().find(|c| matches!(c, '?' | '#') || c.is_control() || c.is_whitespace())
        {
            return Err(TemplateError::BadChar(c));
        }

        let raw: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        let mut names: Vec<String> = Vec::new();
        for (i, seg) in raw.iter().enumerate() {
            let segment = parse_segment(seg)?;
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
        Ok(Template { segments })
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
    pub fn example_path(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push('x'),
                Segment::CatchAll(_) => {}
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Param(n) => write!(f, "/{{{n}}}")?,
                Segment::CatchAll(n) => write!(f, "/{{*{n}}}")?,
            }
        }
        Ok(())
    }
}

fn parse_segment(seg: &str) -> Result<Segment, TemplateError> {
    if !seg.contains(['{', '}']) {
        // Literals take the spelling normalisation gives request paths.
        return crate::normalize::canonical_segment(seg)
            .map(Segment::Literal)
            .map_err(|_| TemplateError::BadEscape(seg.to_owned()));
    }
    let inner = seg
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .filter(|s| !s.contains(['{', '}']))
        .ok_or_else(|| TemplateError::PartialParam(seg.to_owned()))?;
    let (catch_all, name) = match inner.strip_prefix('*') {
        Some(name) => (true, name),
        None => (false, inner),
    };
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(TemplateError::BadParamName(name.to_owned()));
    }
    Ok(if catch_all { Segment::CatchAll(name.to_owned()) } else { Segment::Param(name.to_owned()) })
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
    fn literals_are_canonicalised_like_request_paths() {
        let t = Template::parse("/caf\u{e9}/%7euser/{id}").unwrap();
        assert_eq!(t.to_string(), "/caf%C3%A9/~user/{id}");
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
