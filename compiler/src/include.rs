//! `include:`: a spec made of several files.
//!
//! The main spec names files or glob patterns, relative to its own
//! directory. Each match is read as a [`Fragment`] (listeners, pools and
//! routes, checked against its own schema) and its lists are appended to the
//! main spec's, in the order of the `include` entries and, within a pattern,
//! of the sorted file names, so the result never depends on the file
//! system's listing order. Every later finding about an included item points
//! into the file it came from, because the main [`Document`] remembers which
//! ranges of its lists each file supplied.
//!
//! Included files cannot include others, a file matched twice is read once,
//! and a pattern that matches nothing is an error, since an empty glob is
//! almost always a typo in a directory name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{codes, Diagnostic};
use crate::document::{self, Document, SourceFile};
use crate::spec::{Fragment, Spec};

/// Most files one spec may include, so a stray `**` cannot read a whole disk.
const MAX_FILES: usize = 1000;

/// Join the included files into `spec`; returns the files it read (or
/// tried to), so that a watcher can reload when one of them changes.
pub(crate) fn expand(
    doc: &mut Document,
    spec: &mut Spec,
    out: &mut Vec<Diagnostic>,
) -> Vec<PathBuf> {
    if spec.include.is_empty() {
        return Vec::new();
    }
    let base = Path::new(&doc.source.name).parent().unwrap_or(Path::new("")).to_path_buf();
    let main = std::fs::canonicalize(&doc.source.name).ok();
    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    let mut seen = std::collections::HashSet::new();

    for (i, pattern) in spec.include.iter().enumerate() {
        if files.len() > MAX_FILES {
            break;
        }
        let pointer = format!("/include/{i}");
        let joined = base.join(pattern);
        let Some(text) = joined.to_str() else {
            out.push(
                Diagnostic::error(codes::BAD_INCLUDE, "include path is not valid UTF-8")
                    .at(doc, &pointer),
            );
            continue;
        };
        let paths = match glob::glob(text) {
            Ok(paths) => paths,
            Err(e) => {
                let message = format!("include pattern `{pattern}` is not valid: {}", e.msg);
                out.push(Diagnostic::error(codes::BAD_INCLUDE, message).at(doc, &pointer));
                continue;
            }
        };
        // Only as many as could still be read, and one more to tell that
        // there were too many: a pattern such as `/**/*.yaml` stops there
        // rather than walk the whole file system.
        let room = (MAX_FILES + 1).saturating_sub(files.len());
        let mut matched: Vec<PathBuf> =
            paths.filter_map(Result::ok).filter(|p| p.is_file()).take(room).collect();
        matched.sort();
        if matched.is_empty() {
            out.push(
                Diagnostic::error(
                    codes::BAD_INCLUDE,
                    format!("include `{pattern}` matches no file"),
                )
                .with_help(format!("patterns are relative to {}", display_dir(&base)))
                .at(doc, &pointer),
            );
        }
        for path in matched {
            // Each file once, however many patterns or spellings reach it.
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let is_main = main.as_ref() == Some(&real);
            if !is_main && seen.insert(real) {
                files.push((path, i));
            }
        }
    }
    if files.len() > MAX_FILES {
        let message = format!("include matches more than {MAX_FILES} files, the most it reads");
        out.push(Diagnostic::error(codes::BAD_INCLUDE, message).at(doc, "/include"));
        files.truncate(MAX_FILES);
    }

    let read: Vec<PathBuf> = files.iter().map(|(path, _)| path.clone()).collect();
    for (path, i) in files {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = format!("cannot read included file {}: {e}", path.display());
                out.push(
                    Diagnostic::error(codes::BAD_INCLUDE, message)
                        .at(doc, &format!("/include/{i}")),
                );
                continue;
            }
        };
        let parsed = document::parse::<Fragment>(
            SourceFile::from_bytes(path.display().to_string(), bytes),
            document::Kind::Included,
        );
        out.extend(parsed.diagnostics);
        let (Some(fragment_doc), Some(fragment)) = (parsed.document, parsed.value) else {
            continue;
        };

        let fragment_doc = Arc::new(fragment_doc);
        doc.append("listeners", &fragment_doc);
        doc.append("pools", &fragment_doc);
        doc.append("routes", &fragment_doc);
        spec.listeners.extend(fragment.listeners);
        spec.pools.extend(fragment.pools);
        spec.routes.extend(fragment.routes);
    }
    read
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        "the current directory".to_owned()
    } else {
        dir.display().to_string()
    }
}
