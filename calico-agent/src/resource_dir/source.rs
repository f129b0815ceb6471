//! The resource directory as a [`ResourceSource`]: read off the async loop when inotify, a
//! settling file or the periodic re-read says so, planned with [`DirState`], delivered as
//! the first snapshot and then one group of changes per read that changed something.
//!
//! A refused file is a [`Refusal`] keyed by its file name. Reasons to wait before the first
//! snapshot (settling files, a refused file, an empty directory over a programmed kernel)
//! and a directory that cannot be read are [`SourceEvent::Unavailable`]: nothing changes
//! while they last.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use calico_core::datastore::{
    Changes, DatastoreError, Refusal, ResourceSource, Revision, Snapshot, SourceEvent,
};
use calico_core::model::Update;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::watch::DirWatch;
use super::{
    read_dir, DirRead, DirState, FileStatus, HeldDeletion, Plan, ReadError, Settings, CONFIRM_FILE,
};
use crate::daemon::status::DirView;
use crate::metrics::DaemonMetrics;

/// Longest wait for one read of the directory (a hung file system must not hang the loop).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the directory is read.
#[derive(Clone, Debug)]
pub struct DirOptions {
    /// The directory.
    pub dir: PathBuf,
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// The full re-read period (the backstop of inotify).
    pub rescan: Duration,
    /// The safety settings.
    pub settings: Settings,
    /// Routes of a previous run are in the kernel: an empty directory at start is then not
    /// taken as "remove them all" without confirmation.
    pub kernel_has_state: bool,
}

/// Follows the resource directory.
pub struct DirSource {
    options: DirOptions,
    /// Shared with the blocking thread that reads and parses (a 10,000-policy file is not
    /// parsed on the async loop).
    state: Arc<Mutex<DirState>>,
    watch: DirWatch,
    rescan: tokio::time::Interval,
    view: Arc<Mutex<DirView>>,
    metrics: DaemonMetrics,
    snapshot_sent: bool,
    held: Option<HeldDeletion>,
    /// A read that overran [`READ_TIMEOUT`] and still runs: no new read starts before it ends.
    stuck: Option<JoinHandle<Result<(Plan, bool), ReadError>>>,
    wake_at: Option<Instant>,
    revision: Revision,
    /// Files refused now, with why.
    refused: BTreeMap<String, String>,
    /// The unavailability last reported, until something is delivered again.
    unavailable: Option<String>,
}

impl DirSource {
    /// A source reading `options.dir`; `view` receives the files' states for `/status`.
    pub fn new(options: DirOptions, view: Arc<Mutex<DirView>>, metrics: DaemonMetrics) -> Self {
        let mut rescan = tokio::time::interval(options.rescan);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        DirSource {
            state: Arc::new(Mutex::new(DirState::new(options.settings.clone()))),
            watch: DirWatch::new(&options.dir),
            rescan,
            options,
            view,
            metrics,
            snapshot_sent: false,
            held: None,
            stuck: None,
            wake_at: Some(Instant::now()),
            revision: 0,
            refused: BTreeMap::new(),
            unavailable: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, DirState> {
        // The state is plain data: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_view(&self, f: impl FnOnce(&mut DirView)) {
        f(&mut self.view.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Waits for a reason to read: inotify, the re-read period, a settling file.
    async fn wait(&mut self) {
        let sleep = self.wake_at.map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = self.watch.changed() => {
                // Fold a burst of events (an editor's save) into one read.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = self.rescan.tick() => self.watch.refresh(),
            _ = sleep_until(sleep), if sleep.is_some() => {}
        }
    }

    /// Reads the directory and plans on a blocking thread, within [`READ_TIMEOUT`]; the plan
    /// and whether removals are confirmed, or why the directory could not be read.
    async fn read(&mut self) -> Result<(Plan, bool), String> {
        self.metrics.dir_reads.inc();
        if let Some(stuck) = &self.stuck {
            if !stuck.is_finished() {
                return Err("the previous read of the resource directory has not finished".into());
            }
            self.stuck = None;
        }
        let (dir, cap, state) = (
            self.options.dir.clone(),
            self.options.max_file_bytes,
            self.state.clone(),
        );
        let settle = self.options.settings.settle;
        let mut task = tokio::task::spawn_blocking(move || {
            let DirRead { files, confirm } = read_dir(&dir, cap, settle)?;
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            Ok::<_, ReadError>((state.observe(Instant::now(), files, confirm), confirm))
        });
        match tokio::time::timeout(READ_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(read))) => Ok(read),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(e)) => Err(format!("the read of the resource directory failed: {e}")),
            Err(_) => {
                self.stuck = Some(task);
                Err(format!(
                    "{}: reading the resource directory took over {} s",
                    self.options.dir.display(),
                    READ_TIMEOUT.as_secs()
                ))
            }
        }
    }

    /// One read and the event it gives, if any.
    async fn read_once(&mut self) -> Option<SourceEvent> {
        let (mut plan, confirm) = match self.read().await {
            Ok(read) => read,
            Err(e) => {
                self.metrics.dir_read_errors.inc();
                warn!(error = %e, "resource directory not read; everything stays as it is");
                self.set_view(|d| d.error = Some(e.clone()));
                return self.unavailable(e);
            }
        };
        self.wake_at = plan.wake_at;
        let files = self.state().files();
        let (refused, cleared) = self.refusals(&plan, &files);
        // Removals are held only of applied resources: never before the first snapshot.
        self.note_held(&plan);
        self.publish(files);
        if !self.snapshot_sent {
            return match self.waiting(&plan, confirm) {
                Some(why) => self.unavailable(why),
                None => Some(self.first_snapshot(plan, confirm)),
            };
        }
        let quiet = plan.updates.is_empty() && refused.is_empty() && cleared.is_empty();
        // `commit` records what is desired; the updates themselves go to the agent.
        let updates = std::mem::take(&mut plan.updates);
        self.state().commit(plan);
        self.consume_confirmation(confirm);
        if quiet && self.unavailable.is_none() {
            return None;
        }
        self.unavailable = None;
        if !updates.is_empty() {
            let removals = updates
                .iter()
                .filter(|u| matches!(u, Update::Remove(_)))
                .count();
            info!(
                upserts = updates.len() - removals,
                removals, "resource directory changed"
            );
        }
        self.revision += 1;
        Some(SourceEvent::Changes(Changes {
            revision: self.revision,
            updates,
            refused,
            cleared,
        }))
    }

    /// Reports `why` once, until something is delivered again.
    fn unavailable(&mut self, why: String) -> Option<SourceEvent> {
        if self.unavailable.as_ref() == Some(&why) {
            return None;
        }
        self.unavailable = Some(why.clone());
        Some(SourceEvent::Unavailable { reason: why })
    }

    /// Files refused since the last read, and files no longer refused.
    fn refusals(&mut self, plan: &Plan, files: &[FileStatus]) -> (Vec<Refusal>, Vec<String>) {
        for (file, e) in &plan.rejected {
            error!(file = %file, error = %e, "resource file refused");
            self.metrics.file_rejections.inc();
        }
        let now: BTreeMap<String, String> = files
            .iter()
            .filter(|f| f.state == "rejected")
            .map(|f| (f.name.clone(), f.error.clone().unwrap_or_default()))
            .collect();
        let refused = now
            .iter()
            .filter(|(k, v)| self.refused.get(*k) != Some(*v))
            .map(|(k, v)| Refusal {
                key: k.clone(),
                reason: v.clone(),
            })
            .collect();
        let cleared = self
            .refused
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        self.refused = now;
        (refused, cleared)
    }

    /// Publishes the files' states and the held removals for `/status` and the metrics.
    fn publish(&self, files: Vec<FileStatus>) {
        self.metrics.files_rejected.set(self.refused.len() as i64);
        let held = self.held.clone();
        self.metrics
            .deletions_held
            .set(held.as_ref().map_or(0, |h| h.resources as i64));
        self.set_view(|d| {
            d.files = files;
            d.held = held;
            d.error = None;
        });
    }

    /// Why the first snapshot must wait, if it must.
    fn waiting(&self, plan: &Plan, confirm: bool) -> Option<String> {
        if plan.wake_at.is_some() {
            Some("resource files are settling".to_string())
        } else if let Some((name, why)) = self.refused.iter().next() {
            Some(format!(
                "resource file {name} is refused; nothing is programmed until every file is in \
                 force (what a previous run programmed stays): {why}"
            ))
        } else if plan.resources().is_empty() && self.options.kernel_has_state && !confirm {
            Some(format!(
                "the resource directory holds no resources but a previous run's routes are in \
                 the kernel; nothing is removed until resources appear or {CONFIRM_FILE} is \
                 created in the directory"
            ))
        } else {
            None
        }
    }

    fn first_snapshot(&mut self, plan: Plan, confirm: bool) -> SourceEvent {
        let resources = plan.resources();
        self.state().commit(plan);
        self.snapshot_sent = true;
        self.unavailable = None;
        info!(resources = resources.len(), dir = %self.options.dir.display(), "resource directory read in full");
        self.consume_confirmation(confirm);
        self.revision += 1;
        SourceEvent::Snapshot(Snapshot {
            revision: self.revision,
            resources,
            refused: Vec::new(),
        })
    }

    /// Logs a change of the held removals.
    fn note_held(&mut self, plan: &Plan) {
        if plan.held == self.held {
            return;
        }
        if let Some(h) = &plan.held {
            error!(
                removed = h.resources,
                applied = h.of,
                "{} of the {} applied resources are gone from the resource directory: the \
                 removal is held (guard --max-delete-fraction); restore the files, or create \
                 {CONFIRM_FILE} in the directory to confirm",
                h.resources,
                h.of
            );
        }
        self.held = plan.held.clone();
    }

    fn consume_confirmation(&self, confirm: bool) {
        if confirm {
            match std::fs::remove_file(self.options.dir.join(CONFIRM_FILE)) {
                Ok(()) => info!("{CONFIRM_FILE} taken: confirmed removals applied"),
                Err(e) => warn!(error = %e, "cannot remove {CONFIRM_FILE}; remove it by hand"),
            }
        }
    }
}

#[async_trait]
impl ResourceSource for DirSource {
    fn describe(&self) -> String {
        format!("resource directory {}", self.options.dir.display())
    }

    async fn next(&mut self) -> Result<SourceEvent, DatastoreError> {
        loop {
            self.wait().await;
            if let Some(event) = self.read_once().await {
                return Ok(event);
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
