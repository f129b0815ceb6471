//! The daemon's loop over the resource directory: read it off the async loop when inotify,
//! a settling file or the periodic re-read says so, plan with [`DirState`], and hand the
//! agent the first snapshot and then each change as one group.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use calico_core::agent::{AgentError, AgentHandle};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::status::Shared;
use crate::cli::Options;
use crate::metrics::DaemonMetrics;
use crate::resource_dir::watch::DirWatch;
use crate::resource_dir::{
    read_dir, DirRead, DirState, HeldDeletion, Plan, ReadError, Settings, CONFIRM_FILE,
};

/// Longest wait for one read of the directory (a hung file system must not hang the loop).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Follows the resource directory and feeds the agent.
pub struct Follower {
    dir: PathBuf,
    cap: u64,
    settle: Duration,
    rescan: Duration,
    /// Shared with the blocking thread that reads and parses (a 10,000-policy file is not
    /// parsed on the async loop).
    state: Arc<Mutex<DirState>>,
    watch: DirWatch,
    handle: AgentHandle,
    shared: Arc<Shared>,
    metrics: DaemonMetrics,
    /// Routes of a previous run were found in the kernel: an empty directory at start is
    /// then not taken as "remove them all" without confirmation.
    kernel_has_state: bool,
    snapshot_sent: bool,
    held: Option<HeldDeletion>,
    /// A read that overran [`READ_TIMEOUT`] and still runs: no new read starts before it ends.
    stuck: Option<JoinHandle<Result<(Plan, bool), ReadError>>>,
}

impl Follower {
    /// A follower of `o.resources` feeding `handle`.
    pub fn new(
        o: &Options,
        handle: AgentHandle,
        shared: Arc<Shared>,
        metrics: DaemonMetrics,
        kernel_has_state: bool,
    ) -> Follower {
        let settings = Settings {
            settle: Duration::from_millis(o.settle_ms),
            max_delete_fraction: o.max_delete_fraction,
            delete_guard_min: o.delete_guard_min,
        };
        Follower {
            dir: o.resources.clone(),
            cap: o.max_file_bytes,
            settle: settings.settle,
            rescan: Duration::from_secs(o.rescan_secs),
            state: Arc::new(Mutex::new(DirState::new(settings))),
            watch: DirWatch::new(&o.resources),
            handle,
            shared,
            metrics,
            kernel_has_state,
            snapshot_sent: false,
            held: None,
            stuck: None,
        }
    }

    /// Runs until the agent stops (an error) or the future is dropped (at a signal).
    pub async fn run(mut self) -> Result<(), AgentError> {
        let mut rescan = tokio::time::interval(self.rescan);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut wake_at = Some(Instant::now());
        loop {
            self.shared.beat();
            let sleep = wake_at.map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = self.watch.changed() => {
                    // Fold a burst of events (an editor's save) into one read.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ = rescan.tick() => self.watch.refresh(),
                _ = sleep_until(sleep), if sleep.is_some() => {}
            }
            wake_at = self.read_once().await?;
        }
    }

    /// One read and what follows from it; when to read again for a settling file.
    async fn read_once(&mut self) -> Result<Option<Instant>, AgentError> {
        let Some((plan, confirm)) = self.read().await else {
            return Ok(None);
        };
        for (file, e) in &plan.rejected {
            error!(file = %file, error = %e, "resource file refused");
            self.metrics.file_rejections.inc();
        }
        let wake = plan.wake_at;
        if self.snapshot_sent {
            self.apply(plan, confirm).await?;
        } else {
            self.first_snapshot(plan, confirm).await?;
        }
        let files = self.state().files();
        let rejected = files.iter().filter(|f| f.state == "rejected").count();
        self.metrics.files_rejected.set(rejected as i64);
        let held = self.held.clone();
        self.metrics
            .deletions_held
            .set(held.as_ref().map_or(0, |h| h.resources as i64));
        self.shared.set_dir(|d| {
            d.files = files;
            d.held = held;
            d.error = None;
        });
        Ok(wake)
    }

    fn state(&self) -> MutexGuard<'_, DirState> {
        // The state is plain data: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the directory and plans on a blocking thread, within [`READ_TIMEOUT`]; the plan
    /// and whether removals are confirmed.
    async fn read(&mut self) -> Option<(Plan, bool)> {
        self.metrics.dir_reads.inc();
        if let Some(stuck) = &self.stuck {
            if !stuck.is_finished() {
                self.dir_error(
                    "the previous read of the resource directory has not finished".into(),
                );
                return None;
            }
            self.stuck = None;
        }
        let (dir, cap, state) = (self.dir.clone(), self.cap, self.state.clone());
        let settle = self.settle;
        let mut task = tokio::task::spawn_blocking(move || {
            let DirRead { files, confirm } = read_dir(&dir, cap, settle)?;
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            Ok::<_, ReadError>((state.observe(Instant::now(), files, confirm), confirm))
        });
        let outcome = match tokio::time::timeout(READ_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(read))) => return Some(read),
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(e)) => format!("the read of the resource directory failed: {e}"),
            Err(_) => {
                self.stuck = Some(task);
                format!(
                    "{}: reading the resource directory took over {} s",
                    self.dir.display(),
                    READ_TIMEOUT.as_secs()
                )
            }
        };
        self.dir_error(outcome);
        None
    }

    fn dir_error(&self, e: String) {
        self.metrics.dir_read_errors.inc();
        warn!(error = %e, "resource directory not read; everything stays as it is");
        self.shared.set_dir(|d| d.error = Some(e));
    }

    /// The first snapshot, once every file has settled and is in force, and not an empty
    /// one over a programmed kernel unless confirmed.
    async fn first_snapshot(&mut self, plan: Plan, confirm: bool) -> Result<(), AgentError> {
        let files = self.state().files();
        let waiting = if plan.wake_at.is_some() {
            Some("resource files are settling".to_string())
        } else if let Some(f) = files.iter().find(|f| f.state == "rejected") {
            Some(format!(
                "resource file {} is refused; nothing is programmed until every file is in \
                 force (what a previous run programmed stays): {}",
                f.name,
                f.error.as_deref().unwrap_or("")
            ))
        } else if plan.resources().is_empty() && self.kernel_has_state && !confirm {
            Some(format!(
                "the resource directory holds no resources but a previous run's routes are in \
                 the kernel; nothing is removed until resources appear or {CONFIRM_FILE} is \
                 created in the directory"
            ))
        } else {
            None
        };
        if let Some(w) = waiting {
            if self
                .shared
                .dir
                .lock()
                .map(|d| d.waiting.as_ref() != Some(&w))
                .unwrap_or(true)
            {
                warn!("{w}");
            }
            self.shared.set_dir(|d| d.waiting = Some(w));
            return Ok(());
        }
        let resources = plan.resources();
        let count = resources.len();
        self.handle.snapshot(resources).await?;
        self.state().commit(plan);
        self.snapshot_sent = true;
        self.shared.set_dir(|d| {
            d.snapshot_sent = true;
            d.waiting = None;
        });
        info!(resources = count, dir = %self.dir.display(), "snapshot loaded; programming starts");
        self.consume_confirmation(confirm);
        Ok(())
    }

    /// A change after the first snapshot: the updates as one group; held removals logged.
    async fn apply(&mut self, plan: Plan, confirm: bool) -> Result<(), AgentError> {
        if plan.held != self.held {
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
        if plan.updates.is_empty() {
            self.state().commit(plan);
            self.consume_confirmation(confirm);
            return Ok(());
        }
        let removals = plan
            .updates
            .iter()
            .filter(|u| matches!(u, calico_core::model::Update::Remove(_)))
            .count();
        let upserts = plan.updates.len() - removals;
        match self.handle.apply(plan.updates.clone()).await {
            Ok(()) => {
                info!(upserts, removals, "resource directory changed");
                self.state().commit(plan);
                self.consume_confirmation(confirm);
                Ok(())
            }
            Err(AgentError::Stopped) => Err(AgentError::Stopped),
            Err(e) => {
                // Files are validated when read; the agent refusing a group is a bug to
                // report, not a reason to stop: nothing of the group is applied.
                error!(error = %e, "the agent refused a change of the resource directory");
                Ok(())
            }
        }
    }

    fn consume_confirmation(&self, confirm: bool) {
        if confirm {
            match std::fs::remove_file(self.dir.join(CONFIRM_FILE)) {
                Ok(()) => info!("{CONFIRM_FILE} taken: confirmed removals applied"),
                Err(e) => warn!(error = %e, "cannot remove {CONFIRM_FILE}; remove it by hand"),
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
