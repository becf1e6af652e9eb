//! `include:`: a spec made of several files.
//!
//! The main spec names files or glob patterns, relative to its own
//! directory unless they are absolute. Each match is read as a [`Fragment`] (listeners, pools and
//! routes, checked against its own schema) and its lists are appended to the
//! main spec's, in the order of the `include` entries and, within a pattern,
//! of the sorted file names, so the result never depends on the file
//! system's listing order. Every later finding about an included item points
//! into the file it came from, because the main [`Document`] remembers which
//! ranges of its lists each file supplied.
//!
//! Included files cannot include others, a file matched twice is read once
//! (a link, symbolic or hard, being the file it links to),
//! and a pattern that matches nothing is an error, since an empty glob is
//! almost always a typo in a directory name. The spec itself is never
//! included: an entry that reaches it is a warning (`include-cycle`), as is
//! an included file's `include` entry that leads back to the spec or to the
//! file itself (the `include` key is an error there anyway).
//!
//! A pattern is searched for from the directory its leading literal parts
//! name, and a name without wildcards further on is looked up, not searched
//! for, so `teams/*.yaml` lists `teams/` alone and reads nothing when there
//! is no `teams/`. Every directory entry read counts against a budget for
//! the whole spec, [`MAX_ENTRIES`], so that a `**` beside a large tree
//! stops, with an error that names the pattern, rather than walk it all.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{codes, Diagnostic};
use crate::document::{self, Document, SourceFile};
use crate::spec::{Fragment, Spec};

/// Most files one spec may include, so a stray `**` cannot read a whole disk.
const MAX_FILES: usize = 1000;

/// Most directory entries the patterns of one spec may read between them,
/// so that a pattern that matches little or nothing (`**/*.yaml` beside a
/// large tree) cannot walk a whole disk looking.
const MAX_ENTRIES: usize = 10_000;

/// Where the include patterns of a spec search for files, and what each
/// matched when the spec was read, so that a watcher can tell when a file
/// starts or stops matching one of them.
#[derive(Debug, Clone, Default)]
pub struct IncludeSearch {
    /// Each pattern with wildcards, and the files it matched, sorted.
    walks: Vec<(Walk, Vec<PathBuf>)>,
}

impl IncludeSearch {
    /// The directories the patterns search, each with whether the
    /// directories below it are searched too: `teams/` alone for
    /// `teams/*.yaml`, `teams/` and all below it for `teams/**/*.yaml` or
    /// `teams/*/routes.yaml`. A pattern without wildcards searches nothing;
    /// the file it names is looked up.
    pub fn directories(&self) -> Vec<(PathBuf, bool)> {
        self.walks
            .iter()
            .map(|(walk, _)| (walk.start.clone(), walk.parts.len() > 1 || walk.any_depth()))
            .collect()
    }

    /// Whether some pattern now matches other files than it did when the
    /// spec was read (searching as a load does, with the same bound on
    /// the directory entries read).
    pub fn changed(&self) -> bool {
        let mut budget = MAX_ENTRIES;
        self.walks.iter().any(|(walk, before)| {
            let mut now = walk.run(MAX_FILES + 1, &mut budget).files;
            now.sort();
            now != *before
        })
    }
}

/// Join the included files into `spec`; returns the files it read (or
/// tried to), so that a watcher can reload when one of them changes, and
/// where the patterns searched, so that it can reload when another file
/// starts to match.
pub(crate) fn expand(
    doc: &mut Document,
    spec: &mut Spec,
    out: &mut Vec<Diagnostic>,
) -> (Vec<PathBuf>, IncludeSearch) {
    let mut search = IncludeSearch::default();
    if spec.include.is_empty() {
        return (Vec::new(), search);
    }
    let base = Path::new(&doc.source.name).parent().unwrap_or(Path::new("")).to_path_buf();
    let main = FileId::of(Path::new(&doc.source.name));
    // Each file to read, as matched and as the system resolves it, with
    // the entry that matched it.
    let mut files: Vec<(PathBuf, FileId, usize)> = Vec::new();
    let mut seen = Seen::default();
    let mut budget = MAX_ENTRIES;
    // The entry whose matches went past [`MAX_FILES`].
    let mut too_many = None;

    for (i, pattern) in spec.include.iter().enumerate() {
        if files.len() > MAX_FILES {
            break;
        }
        let pointer = format!("/include/{i}");
        // Only as many as could still be read, and one more to tell that
        // there were too many.
        let room = (MAX_FILES + 1).saturating_sub(files.len());
        let walk = match Walk::new(&base, pattern) {
            Ok(walk) => walk,
            Err(e) => {
                let message = format!("include pattern `{pattern}` is not valid: {}", e.msg);
                out.push(Diagnostic::error(codes::BAD_INCLUDE, message).at(doc, &pointer));
                continue;
            }
        };
        let found = walk.run(room, &mut budget);
        if let Some(stopped) = &found.stopped {
            let message = format!(
                "include `{pattern}` was not searched to the end: the includes of this spec \
                 read {MAX_ENTRIES} directory entries, the most they may, walking {} (stopped in {})",
                display_dir(&walk.start),
                display_dir(stopped),
            );
            out.push(
                Diagnostic::error(codes::BAD_INCLUDE, message)
                    .with_help(
                        "begin the pattern with the directory that holds the files, \
                         such as `teams/*.yaml`, rather than a `**` over a large tree",
                    )
                    .at(doc, &pointer),
            );
        }
        let mut matched = found.files;
        matched.sort();
        if !walk.parts.is_empty() {
            search.walks.push((walk.clone(), matched.clone()));
        }
        if matched.is_empty() && found.stopped.is_none() {
            let help = match &found.missing {
                Some(dir) => format!("there is no directory {}", display_dir(dir)),
                None if pattern.starts_with('/') => format!(
                    "the pattern is absolute, so it is matched as written; without the \
                     leading `/` it would be relative to {}",
                    display_dir(&base)
                ),
                None if Path::new(pattern).is_absolute() => {
                    "the pattern is absolute, so it is matched as written".to_owned()
                }
                None => format!("patterns are relative to {}", display_dir(&base)),
            };
            out.push(
                Diagnostic::error(
                    codes::BAD_INCLUDE,
                    format!("include `{pattern}` matches no file"),
                )
                .with_help(help)
                .at(doc, &pointer),
            );
        }
        let mut itself = false;
        for path in matched {
            // Each file once, however many patterns or spellings reach it,
            // and never the spec itself, which is read already.
            let real = FileId::of(&path).unwrap_or_else(|| FileId::unresolved(&path));
            if main.as_ref().is_some_and(|main| main.same(&real)) {
                itself = true;
            } else if seen.insert(&real) {
                files.push((path, real, i));
            }
        }
        if files.len() > MAX_FILES {
            too_many = Some(i);
        }
        if itself {
            let (message, help) = if walk.parts.is_empty() {
                (
                    format!("include `{pattern}` names this spec itself"),
                    "a spec is never included into itself: remove the entry, or name the file \
                     that was meant",
                )
            } else {
                (
                    format!("include `{pattern}` matches this spec itself"),
                    "the spec is left out of what the pattern includes; keep the included files \
                     where the pattern matches only them, such as a directory of their own",
                )
            };
            out.push(
                Diagnostic::warning(codes::INCLUDE_CYCLE, message)
                    .with_help(help)
                    .at(doc, &pointer),
            );
        }
    }
    if let Some(i) = too_many {
        let with = if i == 0 { "," } else { ", with the entries before it," };
        let message = format!(
            "include `{}` matches more than {MAX_FILES} files{with} the most a spec includes",
            spec.include[i]
        );
        out.push(
            Diagnostic::error(codes::BAD_INCLUDE, message)
                .with_help(format!(
                    "only the first {MAX_FILES} files are read; match fewer, such as the files \
                     of one directory"
                ))
                .at(doc, &format!("/include/{i}")),
        );
        files.truncate(MAX_FILES);
    }

    let read: Vec<PathBuf> = files.iter().map(|(path, ..)| path.clone()).collect();
    for (path, real, i) in files {
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
        if let (Some(fragment_doc), Some(main)) = (&parsed.document, &main) {
            out.extend(cycles(fragment_doc, &real, main, &mut budget));
        }
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
    (read, search)
}

/// An included file may not include others, and its `include` key is
/// reported as unknown by its schema; an entry of it that leads back to the
/// spec that includes the file, or to the file itself, is a cycle as well,
/// and said so at the entry. `file` and `main` are as the system resolves
/// them.
fn cycles(
    fragment: &Document,
    file: &FileId,
    main: &FileId,
    budget: &mut usize,
) -> Vec<Diagnostic> {
    let Some(serde_json::Value::Array(entries)) = fragment.value.get("include") else {
        return Vec::new();
    };
    let base = file.real.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for (j, entry) in entries.iter().enumerate() {
        let Some(Ok(walk)) = entry.as_str().map(|pattern| Walk::new(base, pattern)) else {
            continue;
        };
        let found = walk.run(MAX_FILES, budget);
        let reached: Vec<FileId> = found.files.iter().filter_map(|path| FileId::of(path)).collect();
        let what = if reached.iter().any(|r| r.same(main)) {
            "the spec that includes this file"
        } else if reached.iter().any(|r| r.same(file)) {
            "this file itself"
        } else {
            continue;
        };
        let pattern = entry.as_str().unwrap_or_default();
        let verb = if walk.parts.is_empty() { "names" } else { "matches" };
        out.push(
            Diagnostic::warning(codes::INCLUDE_CYCLE, format!("include `{pattern}` {verb} {what}"))
                .with_help(
                    "included files cannot include others; remove the `include` from this file",
                )
                .at(fragment, &format!("/include/{j}")),
        );
    }
    out
}

/// Which file a path leads to: where, as the system resolves it, and on
/// unix which file it is there (device and inode), so that a hard link is
/// known for the file it links to, as a symbolic link is by where it leads.
#[derive(Debug, Clone)]
struct FileId {
    real: PathBuf,
    node: Option<(u64, u64)>,
}

impl FileId {
    /// The file `path` leads to, when it leads to one.
    fn of(path: &Path) -> Option<FileId> {
        let real = std::fs::canonicalize(path).ok()?;
        Some(FileId { node: node(&real), real })
    }

    /// A path that leads nowhere, taken as written.
    fn unresolved(path: &Path) -> FileId {
        FileId { real: path.to_path_buf(), node: None }
    }

    /// Whether the two are the same file, by where they are or by which
    /// file they are.
    fn same(&self, other: &FileId) -> bool {
        self.real == other.real || (self.node.is_some() && self.node == other.node)
    }
}

/// The device and inode of the file at `path`.
#[cfg(unix)]
fn node(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;

    std::fs::metadata(path).ok().map(|meta| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn node(_: &Path) -> Option<(u64, u64)> {
    None
}

/// The files met so far, by where they are and by which file they are.
#[derive(Default)]
struct Seen {
    paths: HashSet<PathBuf>,
    nodes: HashSet<(u64, u64)>,
}

impl Seen {
    /// Add `file`; whether it is new, by both counts.
    fn insert(&mut self, file: &FileId) -> bool {
        let known =
            self.paths.contains(&file.real) || file.node.is_some_and(|n| self.nodes.contains(&n));
        self.paths.insert(file.real.clone());
        self.nodes.extend(file.node);
        !known
    }
}

/// One include pattern, ready to be matched against the file system: the
/// directory named by its leading literal parts, where the walk starts, and
/// the parts after it.
#[derive(Debug, Clone)]
struct Walk {
    start: PathBuf,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    /// A name without wildcards: looked up, never listed.
    Literal(OsString),
    /// `**`: this directory and every directory below it.
    AnyDepth,
    /// A name with wildcards, matched against a directory's entries.
    Pattern(glob::Pattern),
}

/// What a [`Walk`] found.
struct Found {
    /// The files matched, in no particular order.
    files: Vec<PathBuf>,
    /// The directory the walk would start from, when there is none.
    missing: Option<PathBuf>,
    /// The directory being read when the entry budget ran out.
    stopped: Option<PathBuf>,
}

impl Walk {
    /// `pattern`, relative to `base` unless it is absolute, with the glob
    /// syntax of the `glob` crate (`*`, `?`, `[...]`, and `**` as a whole
    /// part).
    fn new(base: &Path, pattern: &str) -> Result<Walk, glob::PatternError> {
        glob::Pattern::new(pattern)?;
        let mut start = base.to_path_buf();
        let mut parts = Vec::new();
        for part in Path::new(pattern).components() {
            let name = part.as_os_str();
            let wild = matches!(part, Component::Normal(_))
                && name.to_str().is_some_and(|n| n.contains(['*', '?', '[']));
            if !wild && parts.is_empty() {
                start.push(name);
            } else if !wild {
                parts.push(Part::Literal(name.to_owned()));
            } else if name == "**" {
                parts.push(Part::AnyDepth);
            } else {
                // `wild` holds only for names that are text.
                parts.push(Part::Pattern(glob::Pattern::new(name.to_str().unwrap_or_default())?));
            }
        }
        Ok(Walk { start, parts })
    }

    /// Whether a part is `**`.
    fn any_depth(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::AnyDepth))
    }

    /// The files the pattern matches, at most `room` of them, reading at
    /// most `budget` directory entries (and taking those it read from it).
    /// A name without wildcards is looked up rather than searched for, so
    /// the walk starts at [`Walk::start`] and ends at once when that is
    /// not a directory.
    fn run(&self, room: usize, budget: &mut usize) -> Found {
        let mut found = Found { files: Vec::new(), missing: None, stopped: None };
        if self.parts.is_empty() {
            if self.start.is_file() {
                found.files.push(self.start.clone());
            }
            return found;
        }
        if !is_dir(&self.start) {
            found.missing = Some(self.start.clone());
            return found;
        }
        // Directories still to search, each with the part its entries are
        // matched against.
        let mut todo: Vec<(PathBuf, usize)> = vec![(self.start.clone(), 0)];
        // The directories listed, as the system resolves them, with the
        // part matched against their entries: a link back up the tree
        // (`loop -> ..`) is not walked round again and again.
        let mut listed: HashSet<(PathBuf, usize)> = HashSet::new();
        while let Some((dir, i)) = todo.pop() {
            if found.files.len() >= room {
                break;
            }
            let last = i + 1 == self.parts.len();
            let pattern = match &self.parts[i] {
                Part::Literal(name) => {
                    self.reached(dir.join(name), i, &mut found, &mut todo);
                    continue;
                }
                // A `**` at the end names directories only.
                Part::AnyDepth if last => continue,
                Part::AnyDepth => {
                    // `**` as no directory at all: the next part applies here.
                    todo.push((dir.clone(), i + 1));
                    None
                }
                Part::Pattern(pattern) => Some(pattern),
            };
            let listing = if dir.as_os_str().is_empty() { Path::new(".") } else { &dir };
            let Ok(real) = std::fs::canonicalize(listing) else { continue };
            if !listed.insert((real, i)) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(listing) else { continue };
            for entry in entries {
                if *budget == 0 {
                    found.stopped = Some(dir);
                    return found;
                }
                *budget -= 1;
                let Ok(entry) = entry else { continue };
                let name = entry.file_name();
                match pattern {
                    // `**` as one more directory: it applies again below.
                    None if is_dir(&dir.join(&name)) => todo.push((dir.join(&name), i)),
                    None => {}
                    Some(pattern) if name.to_str().is_some_and(|n| pattern.matches(n)) => {
                        self.reached(dir.join(&name), i, &mut found, &mut todo);
                    }
                    Some(_) => {}
                }
            }
        }
        found
    }

    /// `path` matched part `i`: it is a match when that was the last part
    /// and it is a file, and a directory to search when a part follows.
    fn reached(
        &self,
        path: PathBuf,
        i: usize,
        found: &mut Found,
        todo: &mut Vec<(PathBuf, usize)>,
    ) {
        if i + 1 == self.parts.len() {
            if path.is_file() {
                found.files.push(path);
            }
        } else if is_dir(&path) {
            todo.push((path, i + 1));
        }
    }
}

/// Whether `path` is a directory (following links); the empty path is
/// the current directory.
fn is_dir(path: &Path) -> bool {
    path.as_os_str().is_empty() || path.is_dir()
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        "the current directory".to_owned()
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_match_what_the_glob_crate_matches() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in
            ["a.yaml", "a/b/c.yaml", "a/b/d.yaml", "a/x/c.yaml", "a/b/e/c.yaml", ".h/f.yaml"]
        {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        for pattern in [
            "*.yaml",
            "**/*.yaml",
            "a/*/c.yaml",
            "a/**/c.yaml",
            "**/b/*.yaml",
            "**",
            "a/**",
            "./a/b/*.yaml",
            "a/x/../b/*.yaml",
            "a/[bx]/?.yaml",
            "a/b/c.yaml",
            "a/b",
            "*/*",
            ".h/*",
        ] {
            let text = root.join(pattern);
            let mut expected: Vec<PathBuf> = glob::glob(text.to_str().unwrap())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            let mut budget = MAX_ENTRIES;
            let mut found = Walk::new(root, pattern).unwrap().run(usize::MAX, &mut budget).files;
            expected.sort();
            found.sort();
            assert_eq!(found, expected, "{pattern}");
        }
    }

    #[test]
    #[cfg(unix)]
    fn a_link_back_up_the_tree_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/c.yaml"), "").unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("a/b/up")).unwrap();
        let mut budget = MAX_ENTRIES;
        let found = Walk::new(dir.path(), "**/*.yaml").unwrap().run(usize::MAX, &mut budget);
        assert_eq!(found.files, [dir.path().join("a/b/c.yaml")]);
        assert!(found.stopped.is_none() && budget > MAX_ENTRIES - 20, "{budget}");
    }

    #[test]
    fn a_missing_directory_is_not_walked_and_the_budget_bounds_a_walk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "").unwrap();
        let mut budget = 0;
        let found = Walk::new(dir.path(), "none/**/*.yaml").unwrap().run(10, &mut budget);
        assert_eq!(found.missing, Some(dir.path().join("none")));
        let found = Walk::new(dir.path(), "a.yaml").unwrap().run(10, &mut budget);
        assert_eq!(found.files, [dir.path().join("a.yaml")], "a name is looked up, not listed");
        let found = Walk::new(dir.path(), "*.yaml").unwrap().run(10, &mut budget);
        assert_eq!(found.stopped.as_deref(), Some(dir.path()));
        let mut budget = 1;
        let found = Walk::new(dir.path(), "*.yaml").unwrap().run(10, &mut budget);
        assert_eq!((found.files.len(), budget), (1, 0));
    }
}
