//! inotify on the resource directory (through `notify`): a wake-up at every change, so that
//! an edit counts within the settle time rather than at the next poll. If the directory is
//! replaced (renamed over), the watch is set up again on the new one at the next periodic
//! re-read.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tracing::{info, warn};

/// Watches one directory; [`DirWatch::changed`] resolves at the next change.
pub struct DirWatch {
    dir: PathBuf,
    wake: Arc<Notify>,
    watcher: Option<(RecommendedWatcher, u64)>,
    /// The last attempt to watch failed (warned once, not at every re-read).
    failed: bool,
}

impl DirWatch {
    /// A watch on `dir`, set up at once if the directory exists.
    pub fn new(dir: &Path) -> DirWatch {
        let mut w = DirWatch {
            dir: dir.to_path_buf(),
            wake: Arc::new(Notify::new()),
            watcher: None,
            failed: false,
        };
        w.refresh();
        w
    }

    /// Sets the watch up again if the directory was replaced (or is back after being
    /// gone); call it at every periodic re-read.
    pub fn refresh(&mut self) {
        let ino = std::fs::metadata(&self.dir).map(|m| m.ino()).ok();
        match (ino, &self.watcher) {
            (Some(now), Some((_, was))) if now == *was => {}
            (None, _) => self.watcher = None,
            (Some(now), _) => {
                let wake = self.wake.clone();
                let made = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
                    wake.notify_one();
                })
                .and_then(|mut w| {
                    w.watch(&self.dir, RecursiveMode::NonRecursive)?;
                    Ok(w)
                });
                match made {
                    Ok(w) => {
                        if self.watcher.is_some() {
                            info!(dir = %self.dir.display(), "resource directory replaced; watching the new one");
                        }
                        self.watcher = Some((w, now));
                        self.failed = false;
                        // Whatever changed while unwatched is read now.
                        self.wake.notify_one();
                    }
                    Err(e) if !self.failed => {
                        self.failed = true;
                        warn!(dir = %self.dir.display(), error = %e,
                              "cannot watch the resource directory; changes are seen at the periodic re-read only");
                        self.watcher = None;
                    }
                    Err(_) => self.watcher = None,
                }
            }
        }
    }

    /// Resolves at the next change seen by inotify (at once if one came since the last call).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}
