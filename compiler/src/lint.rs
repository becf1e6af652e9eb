//! Lints that look at the routes as a whole, after `validate` has checked
//! each value: routes that other routes shadow completely (`S0212`) and
//! path templates written in a form that normalisation changes (`S0213`).
//!
//! Both work on the spec as written and on the documented precedence, not on
//! the trie's internals, so they stay correct while the trie's layout
//! changes. Each skips what it does not understand (a route with match
//! conditions beyond host, path and methods, or a value that `validate`
//! already reports), which can only make it report less, never wrongly.

mod path_form;
mod shadow;

use crate::diagnostic::Diagnostic;
use crate::document::Document;
use crate::spec::Spec;

/// Every finding of the spec-wide lints, unsorted.
pub(crate) fn lint(doc: &Document, spec: &Spec) -> Vec<Diagnostic> {
    let mut out = shadow::shadowed_routes(doc, spec);
    out.extend(path_form::non_normal_paths(doc, spec));
    out
}
