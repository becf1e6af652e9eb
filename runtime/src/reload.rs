//! What makes the gateway reload: SIGHUP, and with `--watch` a change to the
//! spec (or plan) file.
//!
//! Every trigger leads to the same step: load the file again, compiling a
//! spec on a blocking thread so that no request waits behind the compiler,
//! and hand the new plan to the gateway, which swaps it in (see
//! [`crate::gateway`]). A file that fails to load or compile is logged with
//! its diagnostics and changes nothing; the next trigger tries again.
//!
//! Triggers that arrive while a reload is pending merge into it, and a burst
//! of file events (an editor writes, renames and touches in one save) waits
//! until the file has been quiet for [`SETTLE`]. The watch is on the file's
//! directory, not the file, since editors and configuration mounts replace
//! a file rather than write into it, and a watch on the old file would see
//! nothing more.
//!
//! The path may lead through symbolic links, as a Kubernetes ConfigMap
//! mount's does (`spec.yaml` -> `..data/spec.yaml`, `..data` -> a directory
//! of the current version, swapped by a rename for each update). The watch
//! follows the path as the system resolves it: the directory of each link
//! on the way and of the file it ends at is watched, and a change to any of
//! those names (a link swapped, the file written or replaced) is a change
//! of the spec. Before each load the path is resolved again, so the watch
//! moves along with the links. A change seen on a file that leaves the plan
//! as it was (the old version's directory being removed, say, or a save
//! without edits) reloads nothing: what it compiles to is compared with the
//! plan in force, which until the first reload is the one served from the
//! start.
//!
//! A file written in place (truncated and written again, not replaced) may
//! be caught between two writes, empty or cut short, and a spec cut at the
//! end of a route is still a valid spec. So where the watch reports a
//! writer closing the file (inotify does), a file that was written to is
//! not loaded until its writer closes it, however long it pauses between
//! writes, unless it stays open and quiet for [`OPEN_WRITE_GRACE`], which
//! is then taken for a writer that keeps the file open when done.
//!
//! The files a spec pulls in with `include:` are watched the same way. The
//! loader reports the files each load read, and after every load those
//! files join the watch, so an include added by an edit is watched from the
//! next load on (one dropped stays watched, at the cost of a needless reload).
//!
//! A file can also start to match an include pattern (`teams/c.yaml` added
//! beside `teams/a.yaml` for `teams/*.yaml`), or stop matching one by a
//! rename. So the directories the patterns search are watched as well: the
//! one their leading literal parts name (`teams/`), and the directories
//! below it only where the pattern reaches them (`teams/**/*.yaml`,
//! `teams/*/routes.yaml`). A name added, removed or renamed there, once
//! the burst settles, has the patterns searched again, and the spec is
//! loaded only when some pattern matches other files than at the last
//! load; a file that matches nothing (`teams/notes.txt`) reloads nothing.
//! A file that starts to match is, like a watched one, not loaded while
//! its writer still has it open.
//!
//! A change to a watched name counts as a file change wherever it is,
//! searched directory or not, however the burst around it is reported: a
//! ConfigMap swap in a searched directory (`teams/..data` renamed over,
//! after `teams/..tmp` was created) changes the files read, although the
//! patterns match the same names as before.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use sluice_compiler::{IncludeSearch, Plan, Sources};
use tokio::sync::mpsc;

/// How long the file must be quiet before a change is loaded.
const SETTLE: Duration = Duration::from_millis(150);

/// How long a file written to and not closed yet must be quiet before it is
/// loaded anyway.
const OPEN_WRITE_GRACE: Duration = Duration::from_secs(5);

/// Whether the watch reports a writer closing a file, so that a file being
/// written can be told from one written whole.
const REPORTS_CLOSE_WRITE: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Signal,
    FileChanged,
    /// A name changed in a directory an include pattern searches: what the
    /// patterns match may have changed.
    Listing,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChanged => "file changed",
            Trigger::Listing => "include matches changed",
        }
    }

    /// The trigger for a reload asked for by `self` and then `later`: a
    /// change in a searched directory counts for no more than what follows it.
    fn merge(self, later: Trigger) -> Trigger {
        if self == Trigger::Listing {
            later
        } else {
            self
        }
    }
}

/// Keeps the file watch alive; dropping it ends the watch.
pub(crate) struct Reloads {
    _watch: Option<Arc<Watch>>,
}

/// Start reloading `path` on SIGHUP and, when `watch` is set, whenever it
/// changes to compile to another plan than the one in force, `serving` at
/// first. New plans go to `plans`. Call from within a tokio runtime.
pub(crate) fn start(
    path: PathBuf,
    watch: bool,
    serving: &Plan,
    plans: mpsc::Sender<Plan>,
) -> std::io::Result<Reloads> {
    let (trigger, mut triggers) = mpsc::channel::<Trigger>(1);
    on_hangup(trigger.clone())?;
    let watch = if watch { Some(Arc::new(Watch::start(&path, trigger.clone())?)) } else { None };

    let watching = watch.clone();
    // The plan in force, as bytes, to tell a file event that changed
    // nothing from one that did: the one served from the start, then the
    // one each reload puts in force.
    let mut last: Option<Vec<u8>> = watch.is_some().then(|| serving.to_bytes());
    tokio::spawn(async move {
        // Learn which files the spec includes, off the request path.
        if let Some(watch) = &watching {
            let source = path.clone();
            let loaded =
                tokio::task::spawn_blocking(move || sluice_compiler::load_plan_and_files(&source));
            if let Ok(Ok((plan, sources))) = loaded.await {
                // What changed between the first load and this one was
                // watched by no one yet.
                if last.as_ref() != Some(&plan.to_bytes()) {
                    let _ = trigger.try_send(Trigger::FileChanged);
                }
                let watch = Arc::clone(watch);
                let _ = tokio::task::spawn_blocking(move || watch.follow(sources)).await;
            }
        }
        while let Some(mut first) = triggers.recv().await {
            if first != Trigger::Signal {
                first = settle(&mut triggers, first, watching.as_deref()).await;
            }
            // A watched name changed in the burst, even if its trigger
            // found the channel full with a weaker one.
            if watching.as_ref().is_some_and(|watch| watch.take_file_changed()) {
                first = first.merge(Trigger::FileChanged);
            }
            if let (Trigger::Listing, Some(watch)) = (first, watching.clone()) {
                let changed = tokio::task::spawn_blocking(move || watch.includes_changed());
                if !changed.await.unwrap_or(true) {
                    tracing::debug!(
                        "a searched directory changed, but no include pattern matches other files"
                    );
                    continue;
                }
            }
            let source = path.clone();
            let following = watching.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                // Resolve the links again first, so a change made while
                // the file is read is seen and loaded next.
                if let Some(watch) = &following {
                    watch.refresh();
                }
                sluice_compiler::load_plan_and_files(&source)
            });
            match loaded.await {
                Ok(Ok((plan, sources))) => {
                    if let Some(watch) = watching.clone() {
                        let _ = tokio::task::spawn_blocking(move || watch.follow(sources)).await;
                    }
                    let bytes = plan.to_bytes();
                    if first != Trigger::Signal && last.as_ref() == Some(&bytes) {
                        tracing::info!(path = %path.display(), "the plan did not change; not reloading");
                        continue;
                    }
                    last = Some(bytes);
                    tracing::info!(trigger = first.as_str(), path = %path.display(), "reloading");
                    if plans.send(plan).await.is_err() {
                        return;
                    }
                }
                Ok(Err(error)) => tracing::error!(
                    trigger = first.as_str(),
                    "reload failed; the previous plan keeps serving: {error}"
                ),
                Err(error) => tracing::error!(
                    trigger = first.as_str(),
                    %error,
                    "reload failed; the previous plan keeps serving"
                ),
            }
        }
    });
    Ok(Reloads { _watch: watch })
}

/// Wait until a burst of file events is over: the files have been quiet
/// for [`SETTLE`], and none is still open with a write in progress (see the
/// module doc). Triggers that arrive meanwhile merge into `first`; returns
/// the merged trigger.
async fn settle(
    triggers: &mut mpsc::Receiver<Trigger>,
    mut first: Trigger,
    watch: Option<&Watch>,
) -> Trigger {
    loop {
        while let Ok(Some(later)) = tokio::time::timeout(SETTLE, triggers.recv()).await {
            first = first.merge(later);
        }
        let Some(watch) = watch.filter(|w| w.being_written()) else { return first };
        tracing::debug!("a watched file is open for writing; waiting for its writer to close it");
        match tokio::time::timeout(OPEN_WRITE_GRACE - SETTLE, triggers.recv()).await {
            Ok(Some(later)) => first = first.merge(later),
            Ok(None) => return first,
            Err(_) => {
                tracing::warn!(
                    grace = ?OPEN_WRITE_GRACE,
                    "a watched file was written to and is still open, but quiet; loading it"
                );
                watch.assume_written();
                return first;
            }
        }
    }
}

/// Send a trigger on every SIGHUP.
#[cfg(unix)]
fn on_hangup(trigger: mpsc::Sender<Trigger>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::debug!("SIGHUP received");
            // A full channel means a reload is already pending, which will
            // read the file as it is now.
            let _ = trigger.try_send(Trigger::Signal);
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn on_hangup(_: mpsc::Sender<Trigger>) -> std::io::Result<()> {
    Ok(())
}

/// A file watch over the spec and the files it includes: the directories
/// that hold them, and the links on the way to them, are watched, and an
/// event about one of those names sends a trigger. So are the directories
/// the include patterns search, where an event about any name sends a
/// weaker trigger, [`Trigger::Listing`].
struct Watch {
    watcher: Mutex<notify::RecommendedWatcher>,
    /// The files a reload depends on, as named (the spec first).
    roots: Mutex<Vec<PathBuf>>,
    /// Where the include patterns of the last load searched, and what they
    /// matched.
    includes: Mutex<IncludeSearch>,
    /// Every name whose change changes what `roots` read: each root, each
    /// link on the way, and the file each ends at, as (directory, name);
    /// and the same for each directory the include patterns search.
    files: Arc<Mutex<HashSet<Key>>>,
    /// The directories the include patterns search, as the system
    /// resolves them, each with whether those below it are searched too.
    searched: Arc<Mutex<Vec<(PathBuf, bool)>>>,
    /// Those of `files`, or names in `searched`, written to since their
    /// writer last closed them.
    writing: Arc<Mutex<HashSet<Key>>>,
    /// Whether an event about one of `files` came since the last load
    /// began: a trigger can be lost to a full channel, this cannot.
    file_changed: Arc<AtomicBool>,
    /// The directories watched, each with whether those below it are.
    directories: Mutex<HashMap<PathBuf, bool>>,
    trigger: mpsc::Sender<Trigger>,
}

/// A name in a directory.
type Key = (PathBuf, OsString);

/// The most links followed on one path, as the system's own limit (`ELOOP`).
const MAX_LINKS: usize = 40;

impl Watch {
    fn start(path: &Path, trigger: mpsc::Sender<Trigger>) -> std::io::Result<Watch> {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};

        let files: Arc<Mutex<HashSet<Key>>> = Arc::default();
        let searched: Arc<Mutex<Vec<(PathBuf, bool)>>> = Arc::default();
        let writing: Arc<Mutex<HashSet<Key>>> = Arc::default();
        let file_changed: Arc<AtomicBool> = Arc::default();
        let (seen, looked_in, written, changed) = (
            Arc::clone(&files),
            Arc::clone(&searched),
            Arc::clone(&writing),
            Arc::clone(&file_changed),
        );
        let sender = trigger.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // What the event says of the file's writer: whether it is now
            // midway (it wrote), done (it closed the file, or the file was
            // replaced or removed), or neither.
            let midway = match event.kind {
                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Some(true),
                EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Remove(_) => Some(false),
                EventKind::Modify(_) => None,
                EventKind::Access(_) | EventKind::Any | EventKind::Other => return,
            };
            // A file created in a searched directory may match a pattern
            // before it is written: it is midway until it is closed.
            let created = matches!(event.kind, EventKind::Create(CreateKind::File));
            let files = lock(&seen);
            let searched = lock(&looked_in);
            let (mut touched, mut listed) = (false, false);
            for path in &event.paths {
                let Some(key) = split(path) else { continue };
                let watched = files.contains(&key);
                if watched {
                    touched = true;
                } else if searched.iter().any(|(directory, below)| {
                    key.0 == *directory || (*below && path.starts_with(directory))
                }) {
                    listed = true;
                } else {
                    continue;
                }
                match if created && !watched { Some(true) } else { midway } {
                    Some(true) if REPORTS_CLOSE_WRITE => {
                        lock(&written).insert(key);
                    }
                    Some(_) => {
                        lock(&written).remove(&key);
                    }
                    None => {}
                }
            }
            if touched {
                changed.store(true, Ordering::SeqCst);
                let _ = sender.try_send(Trigger::FileChanged);
            } else if listed {
                let _ = sender.try_send(Trigger::Listing);
            }
        })
        .map_err(std::io::Error::other)?;
        let watch = Watch {
            watcher: Mutex::new(watcher),
            roots: Mutex::new(vec![path.to_owned()]),
            includes: Mutex::default(),
            files,
            searched,
            writing,
            file_changed,
            directories: Mutex::default(),
            trigger,
        };
        // The spec's own directory must be watchable from the start.
        let (directory, _) = resolve(path).pop().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the spec path names no file")
        })?;
        watch.watch_directory(&directory, false)?;
        watch.refresh();
        Ok(watch)
    }

    /// Whether a watched file was written to and its writer has not closed it yet.
    fn being_written(&self) -> bool {
        !lock(&self.writing).is_empty()
    }

    /// Whether a watched name changed since this was last asked, which
    /// clears it.
    fn take_file_changed(&self) -> bool {
        self.file_changed.swap(false, Ordering::SeqCst)
    }

    /// Take every file being written as written whole.
    fn assume_written(&self) {
        lock(&self.writing).clear();
    }

    /// Watch `directory`, and those below it when `below` is set.
    fn watch_directory(&self, directory: &Path, below: bool) -> std::io::Result<()> {
        let before = lock(&self.directories).get(directory).copied();
        if before == Some(below) {
            return Ok(());
        }
        let mut watcher = lock(&self.watcher);
        if before.is_some() {
            let _ = watcher.unwatch(directory);
            lock(&self.directories).remove(directory);
        }
        let mode = if below { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        watcher.watch(directory, mode).map_err(std::io::Error::other)?;
        lock(&self.directories).insert(directory.to_owned(), below);
        Ok(())
    }

    /// Resolve every root, and every directory the include patterns
    /// search, again and watch what they lead to now: the directories no
    /// path leads through any more are no longer watched.
    fn refresh(&self) {
        let roots = lock(&self.roots).clone();
        let mut keys: HashSet<Key> = roots.iter().flat_map(|root| resolve(root)).collect();
        let mut searched = Vec::new();
        for (start, below) in lock(&self.includes).directories() {
            let on_the_way = resolve(&start);
            // The directory itself, when it is one: its parent watches
            // for it otherwise, as for a missing file.
            if let Some((parent, name)) = on_the_way.last() {
                let directory = parent.join(name);
                if directory.is_dir() {
                    searched.push((directory, below));
                }
            }
            keys.extend(on_the_way);
        }
        let mut wanted: HashMap<PathBuf, bool> = HashMap::new();
        for (directory, below) in keys
            .iter()
            .map(|(directory, _)| (directory.clone(), false))
            .chain(searched.iter().cloned())
        {
            *wanted.entry(directory).or_default() |= below;
        }
        // A directory below one watched with all below it is watched already.
        let whole: Vec<PathBuf> =
            wanted.iter().filter(|(_, below)| **below).map(|(d, _)| d.clone()).collect();
        wanted.retain(|directory, _| {
            !whole.iter().any(|above| directory != above && directory.starts_with(above))
        });
        for (directory, below) in &wanted {
            if let Err(error) = self.watch_directory(directory, *below) {
                tracing::warn!(path = %directory.display(), %error, "cannot watch a directory");
            }
        }
        let gone: Vec<PathBuf> = lock(&self.directories)
            .keys()
            .filter(|directory| !wanted.contains_key(*directory))
            .cloned()
            .collect();
        for directory in gone {
            // A directory that was removed is no longer watched already.
            let _ = lock(&self.watcher).unwatch(&directory);
            lock(&self.directories).remove(&directory);
        }
        lock(&self.writing).retain(|key| keys.contains(key));
        *lock(&self.searched) = searched;
        *lock(&self.files) = keys;
    }

    /// Watch the files the last load read (the spec first), in addition to
    /// the ones already watched, so an include dropped by a bad edit is still
    /// seen when the edit is undone; and the directories its include
    /// patterns searched, in place of those of the load before.
    fn follow(&self, sources: Sources) {
        {
            let mut roots = lock(&self.roots);
            for file in sources.files {
                if !roots.contains(&file) {
                    roots.push(file);
                }
            }
        }
        *lock(&self.includes) = sources.include_search;
        self.refresh();
        // A file that started to match while the directories were not
        // watched yet.
        if self.includes_changed() {
            let _ = self.trigger.try_send(Trigger::Listing);
        }
    }

    /// Whether an include pattern matches other files than at the last load.
    fn includes_changed(&self) -> bool {
        let includes = lock(&self.includes).clone();
        includes.changed()
    }
}

/// The names a change to which changes what `path` reads: the path itself,
/// each symbolic link met while resolving it, and the file it ends at (last),
/// each as (its directory, with no link in it, and its name). A part of the
/// path that does not exist ends the walk, so a missing file is still
/// watched for in its directory.
fn resolve(path: &Path) -> Vec<Key> {
    use std::path::Component;

    let absolute = std::env::current_dir().map(|here| here.join(path)).unwrap_or(path.into());
    // What is left to walk, last part first.
    let mut left: Vec<OsString> = Vec::new();
    let push = |left: &mut Vec<OsString>, path: &Path| {
        for part in path.components().rev() {
            match part {
                Component::Normal(name) => left.push(name.to_owned()),
                Component::ParentDir => left.push(OsString::from("..")),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
    };
    push(&mut left, &absolute);
    let root = absolute.ancestors().last().map_or_else(|| PathBuf::from("/"), Path::to_owned);
    let mut resolved = root.clone();
    let mut keys = Vec::new();
    let mut links = 0;
    while let Some(name) = left.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        let target = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() && links < MAX_LINKS => {
                std::fs::read_link(&candidate).ok()
            }
            _ => None,
        };
        match target {
            Some(target) => {
                links += 1;
                keys.push((resolved.clone(), name));
                if target.is_absolute() {
                    resolved = root.clone();
                }
                push(&mut left, &target);
            }
            None if left.is_empty() => {
                keys.push((resolved, name));
                break;
            }
            None if candidate.is_dir() => resolved = candidate,
            None => {
                // Missing, or not a directory: watch for it where it would be.
                keys.push((resolved, name));
                break;
            }
        }
    }
    keys
}

/// An event's path as (its directory, its name).
fn split(path: &Path) -> Option<Key> {
    Some((path.parent()?.to_owned(), path.file_name()?.to_owned()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
