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

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use sluice_compiler::Plan;
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
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChanged => "file changed",
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
    let watch = if watch { Some(Arc::new(Watch::start(&path, trigger)?)) } else { None };

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
            if let Ok(Ok((_, files))) = loaded.await {
                let watch = Arc::clone(watch);
                let _ = tokio::task::spawn_blocking(move || watch.follow(&files)).await;
            }
        }
        while let Some(first) = triggers.recv().await {
            if first == Trigger::FileChanged {
                settle(&mut triggers, watching.as_deref()).await;
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
                Ok(Ok((plan, files))) => {
                    if let Some(watch) = watching.clone() {
                        let _ = tokio::task::spawn_blocking(move || watch.follow(&files)).await;
                    }
                    let bytes = plan.to_bytes();
                    if first == Trigger::FileChanged && last.as_ref() == Some(&bytes) {
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
/// module doc). Triggers that arrive meanwhile merge into this one.
async fn settle(triggers: &mut mpsc::Receiver<Trigger>, watch: Option<&Watch>) {
    loop {
        while let Ok(Some(_)) = tokio::time::timeout(SETTLE, triggers.recv()).await {}
        let Some(watch) = watch.filter(|w| w.being_written()) else { return };
        tracing::debug!("a watched file is open for writing; waiting for its writer to close it");
        match tokio::time::timeout(OPEN_WRITE_GRACE - SETTLE, triggers.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(_) => {
                tracing::warn!(
                    grace = ?OPEN_WRITE_GRACE,
                    "a watched file was written to and is still open, but quiet; loading it"
                );
                watch.assume_written();
                return;
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
/// event about one of those names sends a trigger.
// TODO: a file that starts to match an include glob later is seen only at
// the next reload; watching the glob's directory for new names would fix it.
struct Watch {
    watcher: Mutex<notify::RecommendedWatcher>,
    /// The files a reload depends on, as named (the spec first).
    roots: Mutex<Vec<PathBuf>>,
    /// Every name whose change changes what `roots` read: each root, each
    /// link on the way, and the file each ends at, as (directory, name).
    files: Arc<Mutex<HashSet<Key>>>,
    /// Those of `files` written to since their writer last closed them.
    writing: Arc<Mutex<HashSet<Key>>>,
    directories: Mutex<HashSet<PathBuf>>,
}

/// A name in a directory.
type Key = (PathBuf, OsString);

/// The most links followed on one path, as the system's own limit (`ELOOP`).
const MAX_LINKS: usize = 40;

impl Watch {
    fn start(path: &Path, trigger: mpsc::Sender<Trigger>) -> std::io::Result<Watch> {
        use notify::event::{AccessKind, AccessMode, ModifyKind};

        let files: Arc<Mutex<HashSet<Key>>> = Arc::default();
        let writing: Arc<Mutex<HashSet<Key>>> = Arc::default();
        let (seen, written) = (Arc::clone(&files), Arc::clone(&writing));
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
            let files = lock(&seen);
            let mut touched = false;
            for key in event.paths.iter().filter_map(|p| split(p)) {
                if !files.contains(&key) {
                    continue;
                }
                touched = true;
                match midway {
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
                let _ = trigger.try_send(Trigger::FileChanged);
            }
        })
        .map_err(std::io::Error::other)?;
        let watch = Watch {
            watcher: Mutex::new(watcher),
            roots: Mutex::new(vec![path.to_owned()]),
            files,
            writing,
            directories: Mutex::default(),
        };
        // The spec's own directory must be watchable from the start.
        let (directory, _) = resolve(path).pop().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the spec path names no file")
        })?;
        watch.watch_directory(&directory)?;
        watch.refresh();
        Ok(watch)
    }

    /// Whether a watched file was written to and its writer has not closed it yet.
    fn being_written(&self) -> bool {
        !lock(&self.writing).is_empty()
    }

    /// Take every file being written as written whole.
    fn assume_written(&self) {
        lock(&self.writing).clear();
    }

    fn watch_directory(&self, directory: &Path) -> std::io::Result<()> {
        if lock(&self.directories).contains(directory) {
            return Ok(());
        }
        let mut watcher = lock(&self.watcher);
        watcher.watch(directory, RecursiveMode::NonRecursive).map_err(std::io::Error::other)?;
        lock(&self.directories).insert(directory.to_owned());
        Ok(())
    }

    /// Resolve every root again and watch what they lead to now: the
    /// directories no path leads through any more are no longer watched.
    fn refresh(&self) {
        let roots = lock(&self.roots).clone();
        let keys: HashSet<Key> = roots.iter().flat_map(|root| resolve(root)).collect();
        let wanted: HashSet<PathBuf> =
            keys.iter().map(|(directory, _)| directory.clone()).collect();
        for directory in &wanted {
            if let Err(error) = self.watch_directory(directory) {
                tracing::warn!(path = %directory.display(), %error, "cannot watch a directory");
            }
        }
        let gone: Vec<PathBuf> = lock(&self.directories).difference(&wanted).cloned().collect();
        for directory in gone {
            // A directory that was removed is no longer watched already.
            let _ = lock(&self.watcher).unwatch(&directory);
            lock(&self.directories).remove(&directory);
        }
        lock(&self.writing).retain(|key| keys.contains(key));
        *lock(&self.files) = keys;
    }

    /// Watch the files the last load read (the spec first), in addition to
    /// the ones already watched, so an include dropped by a bad edit is still
    /// seen when the edit is undone.
    fn follow(&self, files: &[PathBuf]) {
        {
            let mut roots = lock(&self.roots);
            for file in files {
                if !roots.contains(file) {
                    roots.push(file.clone());
                }
            }
        }
        self.refresh();
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
