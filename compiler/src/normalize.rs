//! Path normalisation, applied to every request before matching.
//!
//! Gateways that match on one spelling of a path and forward another have
//! shipped the same security bug many times: `/public/../admin`,
//! `/public/%2e%2e/admin`, `/admin%2Fusers` and `//admin` each reached a
//! service as `/admin/...` while the gateway's routing and policy saw
//! something else. Sluice therefore matches on a canonical path and forwards
//! that same path, so gateway and service agree on what was asked for.
//!
//! The steps, in order:
//! 1. refuse a target that does not start with `/`, or holds a `#`, a
//!    control character (raw or percent-encoded), a space, or a malformed
//!    `%` escape;
//! 2. decode escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`), so
//!    `%2e` is a dot and `%41` is `A`; write every other escape with
//!    uppercase hex; `%2F` and `%5C` (and a raw `\`) follow the listener's
//!    `encoded_slash` choice: reject (the default, 400), keep encoded
//!    (part of a segment, never a separator), or decode to `/`;
//! 3. merge runs of `/` into one (unless `merge_slashes: false`);
//! 4. remove `.` and `..` segments as RFC 3986 section 5.2.4 does, never
//!    climbing above the root.
//!
//! Encoded characters that are neither unreserved nor separators (`%3F`,
//! `%23`, `%3B`, `%20`, UTF-8 bytes) stay encoded: they are data within a
//! segment for matching and for the upstream alike.
//!
//! A raw `#` in an HTTP/1 request target is refused with 400 by the runtime's
//! head scanner before routing, since the HTTP parser would otherwise drop
//! the fragment silently.
//!
//! A path that is already canonical (the common case) is returned borrowed,
//! without allocating.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a listener normalises request paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Merge runs of `/` into one. Default: true.
    #[serde(default = "yes")]
    pub merge_slashes: bool,
    /// What to do with `%2F`, `%5C` and a raw `\` in a path. Default: `reject`.
    #[serde(default)]
    pub encoded_slash: EncodedSlash,
}

fn yes() -> bool {
    true
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization { merge_slashes: true, encoded_slash: EncodedSlash::Reject }
    }
}

/// The treatment of encoded path separators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncodedSlash {
    /// Answer 400: a client has no ordinary reason to send one.
    #[default]
    Reject,
    /// Keep it encoded (uppercase), as part of the segment it is in.
    Keep,
    /// Decode it to `/`, a separator like any other.
    Decode,
}

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("the path holds an encoded `/` or `\\`, which this listener refuses")]
    EncodedSeparator,
    #[error("the path holds a malformed percent escape")]
    BadEscape,
    #[error("the path holds a `#`, a space or a control character")]
    ForbiddenCharacter,
    #[error("the path holds a `.` or `..` segment with `;` parameters")]
    DotSegmentParameters,
}

impl PathError {
    /// A short fixed description, for error bodies and logs.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "the path does not start with /",
            PathError::EncodedSeparator => {
                "the path holds an encoded / or \\, which this listener refuses"
            }
            PathError::BadEscape => "the path holds a malformed percent escape",
            PathError::ForbiddenCharacter => "the path holds a #, a space or a control character",
            PathError::DotSegmentParameters => "the path holds a . or .. segment with ; parameters",
        }
    }
}

/// The canonical form of `path` (without its query) under `rules`.
pub fn normalize<'p>(path: &'p str, rules: &Normalization) -> Result<Cow<'p, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.bytes().any(|b| b == b'#' || b == b' ' || b.is_ascii_control()) {
        return Err(PathError::ForbiddenCharacter);
    }
    if is_canonical(path, rules) {
        if dot_segment_with_parameters(path) {
            return Err(PathError::DotSegmentParameters);
        }
        return Ok(Cow::Borrowed(path));
    }

    let decoded = decode(path, rules.encoded_slash)?;
    if dot_segment_with_parameters(&decoded) {
        return Err(PathError::DotSegmentParameters);
    }
    Ok(Cow::Owned(resolve(&decoded, rules.merge_slashes)))
}

/// Whether a `.` or `..` segment carries `;` parameters, as in
/// `/public/..;/admin`. Sluice routes `..;` as a plain segment, but some
/// servers drop a segment's parameters before resolving dot segments, and
/// would serve `/admin`, a path no route of the gateway saw: refused rather
/// than read two ways.
fn dot_segment_with_parameters(path: &str) -> bool {
    // (A byte search first: most paths have no `;`, and a substring
    // search would cost more to set up than this whole check.)
    path.as_bytes().contains(&b';')
        && path.split('/').any(|s| matches!(s.split(';').next(), Some("." | "..")))
}

/// Whether `b` may appear unencoded in a canonical path segment: the
/// unreserved characters, the sub-delimiters, `:` and `@` (RFC 3986 `pchar`).
fn raw_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// True when no step would change `path`: the fast path for ordinary requests.
/// One pass over the bytes, since every request takes it.
fn is_canonical(path: &str, rules: &Normalization) -> bool {
    let bytes = path.as_bytes();
    let dots = |segment: &[u8]| segment == b"." || segment == b"..";
    let mut segment = 0;
    for (at, &b) in bytes.iter().enumerate() {
        if b == b'/' {
            if dots(&bytes[segment..at]) {
                return false;
            }
            // An empty segment before another: `//`.
            if rules.merge_slashes && at > 0 && at == segment {
                return false;
            }
            segment = at + 1;
        } else if !raw_ok(b) {
            return false;
        }
    }
    !dots(&bytes[segment..])
}

fn decode(path: &str, slash: EncodedSlash) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let byte = match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
                    .ok_or(PathError::BadEscape)?;
                i += 3;
                value
            }
            b'\\' => {
                i += 1;
                b'\\'
            }
            b if b == b'/' || raw_ok(b) => {
                out.push(b as char);
                i += 1;
                continue;
            }
            // Anything else sent raw (UTF-8, `"`, `{`, `|`...) is written encoded,
            // the one spelling that templates are compiled to as well.
            b => {
                i += 1;
                push_escape(&mut out, b);
                continue;
            }
        };

        match byte {
            b'/' | b'\\' => match slash {
                EncodedSlash::Reject => return Err(PathError::EncodedSeparator),
                EncodedSlash::Keep => out.push_str(if byte == b'/' { "%2F" } else { "%5C" }),
                EncodedSlash::Decode => out.push('/'),
            },
            b if b.is_ascii_control() => return Err(PathError::ForbiddenCharacter),
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(b as char)
            }
            b => push_escape(&mut out, b),
        }
    }
    Ok(out)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// The canonical spelling of one literal template segment, so that a
/// template written `/café` matches the request path `/caf%C3%A9` that
/// normalisation produces (and `/%41` in a template means `/A`). An encoded
/// slash stays encoded: such a segment matches only under `encoded_slash: keep`.
pub fn canonical_segment(segment: &str) -> Result<String, PathError> {
    if segment.bytes().any(|b| b == b'#' || b.is_ascii_control()) {
        return Err(PathError::ForbiddenCharacter);
    }
    decode(segment, EncodedSlash::Keep)
}

/// Merge slashes (if asked) and remove dot segments.
fn resolve(path: &str, merge_slashes: bool) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path[1..].split('/').collect();
    let last = parts.len() - 1;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if i == last {
                    segments.push("");
                }
            }
            "" if merge_slashes && i != last => {}
            s => segments.push(s),
        }
    }
    // A merged run at the very end (`/a//`) leaves one trailing slash.
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, PathError> {
        normalize(path, &Normalization::default()).map(Cow::into_owned)
    }

    fn with(
        path: &str,
        encoded_slash: EncodedSlash,
        merge_slashes: bool,
    ) -> Result<String, PathError> {
        let rules = Normalization { merge_slashes, encoded_slash };
        normalize(path, &rules).map(Cow::into_owned)
    }

    #[test]
    fn dot_segments_with_parameters_are_refused_however_spelled() {
        for p in [
            "/public/..;/admin",
            "/public/.;/admin",
            "/public/..;jsessionid=1/admin",
            "/public/%2e%2e;/admin",
            "/public/.%2E;x/admin",
            "/..;",
        ] {
            assert_eq!(norm(p), Err(PathError::DotSegmentParameters), "{p}");
        }
        // Parameters on other segments, and dots that are not a whole
        // segment before the `;`, are ordinary data.
        for p in ["/a;b/c", "/a/b..;/c", "/a/...;/c", "/a/x.;y", "/a/..%3B/b"] {
            assert!(norm(p).is_ok(), "{p}: {:?}", norm(p));
        }
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in ["/", "/a", "/a/b/", "/v1/contacts/42", "/a.b/c..d/.e"] {
            assert!(matches!(normalize(p, &Normalization::default()), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn table_of_normalisations() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/public/../admin/users", Ok("/admin/users")),
            ("/public/%2e%2e/admin/users", Ok("/admin/users")),
            ("/public/%2E%2E/admin", Ok("/admin")),
            ("/api%2e/admin", Ok("/api./admin")),
            ("/a/./b", Ok("/a/b")),
            ("/a/b/.", Ok("/a/b/")),
            ("/a/b/..", Ok("/a/")),
            ("/../../etc", Ok("/etc")),
            ("/..", Ok("/")),
            ("//admin/users", Ok("/admin/users")),
            ("/a//b///c", Ok("/a/b/c")),
            ("/a//", Ok("/a/")),
            ("/%41%62c", Ok("/Abc")),
            ("/a%7eb", Ok("/a~b")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/a%3bb", Ok("/a%3Bb")),
            ("/100%25", Ok("/100%25")),
            ("/admin%2Fusers", Err(PathError::EncodedSeparator)),
            ("/admin%2fusers", Err(PathError::EncodedSeparator)),
            ("/admin%5Cusers", Err(PathError::EncodedSeparator)),
            ("/admin\\users", Err(PathError::EncodedSeparator)),
            ("/public/..%2Fadmin", Err(PathError::EncodedSeparator)),
            ("/a%2", Err(PathError::BadEscape)),
            ("/a%zz", Err(PathError::BadEscape)),
            ("/a%+1", Err(PathError::BadEscape)),
            ("/user/profile#s1", Err(PathError::ForbiddenCharacter)),
            ("/a\u{0}b", Err(PathError::ForbiddenCharacter)),
            ("/a b", Err(PathError::ForbiddenCharacter)),
            ("/a%00", Err(PathError::ForbiddenCharacter)),
            ("/a%0d%0aX-Injected:%201", Err(PathError::ForbiddenCharacter)),
            ("/a%7F", Err(PathError::ForbiddenCharacter)),
            ("/a%23b%3Fc", Ok("/a%23b%3Fc")),
            ("/caf\u{e9}", Ok("/caf%C3%A9")),
            ("/a\"b{c}|d^e`f<g>", Ok("/a%22b%7Bc%7D%7Cd%5Ee%60f%3Cg%3E")),
            ("/a;b=c,d:e@f!$&'()*+", Ok("/a;b=c,d:e@f!$&'()*+")),
            ("a/b", Err(PathError::NotAbsolute)),
            ("*", Err(PathError::NotAbsolute)),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want.map(str::to_owned), "{input}");
        }
    }

    #[test]
    fn encoded_slash_choices() {
        assert_eq!(with("/a%2fb", EncodedSlash::Keep, true), Ok("/a%2Fb".into()));
        assert_eq!(with("/a%5cb", EncodedSlash::Keep, true), Ok("/a%5Cb".into()));
        assert_eq!(with("/a\\b", EncodedSlash::Keep, true), Ok("/a%5Cb".into()));
        assert_eq!(with("/a%2Fb", EncodedSlash::Decode, true), Ok("/a/b".into()));
        assert_eq!(with("/public/..%2Fadmin", EncodedSlash::Decode, true), Ok("/admin".into()));
        assert_eq!(
            with("/x/..%2F..%2Fadmin", EncodedSlash::Keep, true),
            Ok("/x/..%2F..%2Fadmin".into())
        );
    }

    #[test]
    fn template_literals_take_the_same_canonical_spelling() {
        assert_eq!(canonical_segment("caf\u{e9}"), Ok("caf%C3%A9".into()));
        assert_eq!(canonical_segment("caf%c3%a9"), Ok("caf%C3%A9".into()));
        assert_eq!(canonical_segment("%41bc"), Ok("Abc".into()));
        assert_eq!(canonical_segment("a%2fb"), Ok("a%2Fb".into()));
        assert_eq!(canonical_segment("a%zz"), Err(PathError::BadEscape));
    }

    #[test]
    fn merging_slashes_can_be_turned_off() {
        assert_eq!(with("//admin", EncodedSlash::Reject, false), Ok("//admin".into()));
        assert_eq!(with("/a//../b", EncodedSlash::Reject, false), Ok("/a/b".into()));
    }

    #[test]
    fn normalising_is_idempotent() {
        for p in ["/a/../b/%2e/c", "//x//y/", "/%41/%c3%a9/..", "/a%2Fb"] {
            for slash in [EncodedSlash::Keep, EncodedSlash::Decode] {
                let once = with(p, slash, true).unwrap();
                assert_eq!(with(&once, slash, true).unwrap(), once, "{p}");
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn tricky_path() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a", "B", "", ".", "..", "%2e", "%2E%2e", "%41", "%7e", "%2f", "%5C", "\\", "%25",
            "%c3%a9", "é", "%3b", ";", "~", "%", "%zz", "x y", "{", "%00",
        ]);
        prop::collection::vec(piece, 0..8).prop_map(|parts| format!("/{}", parts.join("/")))
    }

    /// [`is_canonical`] as first written, with `str` searches.
    fn canonical_by_searches(path: &str, rules: &Normalization) -> bool {
        path.bytes().all(|b| b == b'/' || raw_ok(b))
            && !(rules.merge_slashes && path.contains("//"))
            && !path.split('/').any(|s| s == "." || s == "..")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The one-pass canonical check agrees with the plain one.
        #[test]
        fn the_canonical_check_agrees_with_str_searches(path in tricky_path(), merge in any::<bool>()) {
            let rules = Normalization { merge_slashes: merge, encoded_slash: EncodedSlash::Reject };
            for path in [path.clone(), format!("{path}/"), format!("{path}//."), path.replace('a', "/")] {
                prop_assert_eq!(is_canonical(&path, &rules), canonical_by_searches(&path, &rules), "{}", path);
            }
        }

        /// Whatever a client sends, an accepted path is canonical: normalising
        /// it again changes nothing, and it holds no dot segment, no empty
        /// segment before its end, no lowercase or unreserved escape, and no
        /// separator in disguise. So no spelling reaches a route by a trick.
        #[test]
        fn accepted_paths_are_fixed_points(path in tricky_path(), merge in any::<bool>(),
                                           slash in prop::sample::select(vec![EncodedSlash::Reject, EncodedSlash::Keep, EncodedSlash::Decode])) {
            let rules = Normalization { merge_slashes: merge, encoded_slash: slash };
            if let Ok(out) = normalize(&path, &rules) {
                let again = normalize(&out, &rules).expect("a normalised path is accepted again");
                prop_assert_eq!(&*again, &*out);
                prop_assert!(out.starts_with('/'));
                let segments: Vec<&str> = out[1..].split('/').collect();
                prop_assert!(!segments.iter().any(|s| *s == "." || *s == ".."), "{}", out);
                if merge {
                    prop_assert!(!out.contains("//"), "{}", out);
                }
                prop_assert!(!out.contains('\\'));
                for (i, _) in out.match_indices('%') {
                    let hex = &out[i + 1..i + 3];
                    prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()), "{}", out);
                    let byte = u8::from_str_radix(hex, 16).unwrap();
                    prop_assert!(!(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)), "{}", out);
                    if slash == EncodedSlash::Reject {
                        prop_assert!(byte != b'/' && byte != b'\\', "{}", out);
                    }
                }
            }
        }
    }
}
