//! `S0213 non-normal-path`: a path template that the listener's path
//! normalisation would rewrite.
//!
//! Requests are normalised before matching (duplicate slashes merged, `.`
//! and `..` resolved, escapes of unreserved characters decoded), so a
//! template such as `/a//b`, `/a/./b` or `/%7Euser` describes requests that
//! never reach the matcher in that spelling. The finding gives the normal
//! form to write instead. The rewrite is the gateway's own
//! [`crate::normalize::normalize`], with the rules of each listener the
//! route serves, so the lint and the gateway cannot disagree.

use crate::diagnostic::{codes, Diagnostic};
use crate::document::Document;
use crate::normalize::{normalize, Normalization};
use crate::spec::Spec;

pub(super) fn non_normal_paths(doc: &Document, spec: &Spec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, route) in spec.routes.iter().enumerate() {
        let path = route.matcher.path.as_str();
        // A template `validate` refuses is reported there, not here.
        let Some((masked, params)) = mask_params(path).filter(|_| path.starts_with('/')) else {
            continue;
        };
        let rewrite = |rules: &Normalization| {
            normalize(&masked, rules).map(|n| unmask(&n, &params)).map_err(|e| e.to_string())
        };
        // Template literals are compiled to the canonical spelling (`/café` is
        // `/caf%C3%A9`, `%7e` is `~`), so only a change of shape is a finding:
        // merged slashes, dot segments, a refused separator.
        let Some(spelled) = canonical_spelling(&masked).map(|c| unmask(&c, &params)) else {
            continue;
        };
        let Some((listener, rules)) = served_rules(spec, route.listeners.as_deref())
            .find(|(_, rules)| rewrite(rules).map_or(true, |n| n != spelled))
        else {
            continue;
        };

        let on = listener.map(|l| format!(" on listener `{l}`")).unwrap_or_default();
        let finding = match rewrite(&rules) {
            Ok(normal) => Diagnostic::warning(
                codes::NON_NORMAL_PATH,
                format!(
                    "path template `{path}` of route `{}` is not in normal form: requests{on} are normalised to `{normal}` before matching",
                    route.name
                ),
            )
            .with_help(format!("write the template as `{normal}`")),
            Err(why) => Diagnostic::warning(
                codes::NON_NORMAL_PATH,
                format!(
                    "path template `{path}` of route `{}` can never be seen{on}: {why}",
                    route.name
                ),
            )
            .with_help("write the template in the form requests have after normalisation"),
        };
        out.push(finding.at(doc, &format!("/routes/{i}/match/path")));
    }
    out
}

/// The template with each `{...}` group (which may hold a constraint with
/// any characters, and whose braces normalisation would escape) replaced by
/// a placeholder that normalisation leaves alone, and the groups it replaced; `None` when the braces do not balance.
/// `path` with every segment in the spelling template literals compile to.
fn canonical_spelling(path: &str) -> Option<String> {
    let segments: Option<Vec<String>> =
        path.split('/').map(|s| crate::normalize::canonical_segment(s).ok()).collect();
    segments.map(|s| s.join("/"))
}

fn mask_params(path: &str) -> Option<(String, Vec<&str>)> {
    let mut masked = String::with_capacity(path.len());
    let mut groups = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in path.char_indices() {
        match c {
            '{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    masked.push_str(&placeholder(groups.len()));
                    groups.push(&path[start..=i]);
                }
            }
            _ if depth == 0 => masked.push(c),
            _ => {}
        }
    }
    (depth == 0).then_some((masked, groups))
}

/// A stand-in made of unreserved characters only, which normalisation
/// neither decodes nor escapes.
fn placeholder(i: usize) -> String {
    format!("~param~{i}~")
}

fn unmask(masked: &str, groups: &[&str]) -> String {
    let mut out = masked.to_owned();
    for (i, group) in groups.iter().enumerate().rev() {
        out = out.replace(&placeholder(i), group);
    }
    out
}

/// The normalisation rules of each listener a route serves, with the
/// listener's name; the default rules when the spec has no listeners.
fn served_rules<'s>(
    spec: &'s Spec,
    names: Option<&'s [String]>,
) -> impl Iterator<Item = (Option<&'s str>, Normalization)> + 's {
    let serves = move |name: &str| names.is_none_or(|n| n.iter().any(|x| x == name));
    let listeners = spec
        .listeners
        .iter()
        .filter(move |l| serves(&l.name))
        .map(|l| (Some(l.name.as_str()), l.normalize));
    let fallback = spec.listeners.is_empty().then(|| (None, Normalization::default()));
    listeners.chain(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_survive_masking_whatever_they_hold() {
        let (masked, groups) = mask_params("/a/{id:[0-9]{3}}/{*rest}").unwrap();
        assert_eq!(masked, "/a/~param~0~/~param~1~");
        assert_eq!(unmask(&masked, &groups), "/a/{id:[0-9]{3}}/{*rest}");
        assert!(mask_params("/a/{id").is_none());
        assert!(mask_params("/a/}").is_none());
    }

    #[test]
    fn rewrites_match_the_gateway() {
        let rules = Normalization::default();
        let cases = [
            ("/a//b", Some("/a/b")),
            ("/a/./b/../c", Some("/a/c")),
            ("/%7Euser/{id}", Some("/~user/{id}")),
            ("/a/{id}/", None),
            ("/", None),
        ];
        for (path, want) in cases {
            let (masked, groups) = mask_params(path).unwrap();
            let got = normalize(&masked, &rules).map(|n| unmask(&n, &groups)).unwrap();
            assert_eq!(want.unwrap_or(path), got, "{path}");
        }
    }
}
