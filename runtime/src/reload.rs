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

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use sluice_compiler::Plan;
use tokio::sync::mpsc;

/// How long the file must be quiet before a change is loaded.
const SETTLE: Duration = Duration::from_millis(150);

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
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Start reloading `path` on SIGHUP and, when `watch` is set, whenever it
/// changes. New plans go to `plans`. Call from within a tokio runtime.
pub(crate) fn start(
    path: PathBuf,
    watch: bool,
    plans: mpsc::Sender<Plan>,
) -> std::io::Result<Reloads> {
    let (trigger, mut triggers) = mpsc::channel::<Trigger>(1);
    on_hangup(trigger.clone())?;
    let watcher = if watch { Some(watch_file(&path, trigger)?) } else { None };

    tokio::spawn(async move {
        while let Some(first) = triggers.recv().await {
            if first == Trigger::FileChanged {
                // Let a burst of events settle.
                while let Ok(Some(_)) = tokio::time::timeout(SETTLE, triggers.recv()).await {}
            }
            let source = path.clone();
            let loaded = tokio::task::spawn_blocking(move || sluice_compiler::load_plan(&source));
            match loaded.await {
                Ok(Ok(plan)) => {
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
    Ok(Reloads { _watcher: watcher })
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

/// Watch `path`'s directory and send a trigger when `path` may have changed.
// TODO: files a spec pulls in with `include:` are not watched; the loader
// would have to return the files it read so that their directories join the watch.
fn watch_file(
    path: &Path,
    trigger: mpsc::Sender<Trigger>,
) -> std::io::Result<notify::RecommendedWatcher> {
    let name = path.file_name().map(ToOwned::to_owned);
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = match event.kind {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            ))
            | EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_) => true,
            EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
        };
        if relevant && event.paths.iter().any(|p| p.file_name() == name.as_deref()) {
            let _ = trigger.try_send(Trigger::FileChanged);
        }
    })
    .map_err(std::io::Error::other)?;
    watcher.watch(&directory, RecursiveMode::NonRecursive).map_err(std::io::Error::other)?;
    Ok(watcher)
}
