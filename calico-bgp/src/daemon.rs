//! What the drivers of BGP daemons (BIRD, FRR) share: configuration files for the owner's
//! eyes only, and a task that polls a daemon that tells nobody of its changes and turns
//! what it sees change into news for [`BgpBackend::subscribe`](calico_core::dataplane::BgpBackend::subscribe).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use calico_core::dataplane::{BackendError, LearnedRoute, PeerState, PeerStatus};
use tokio::sync::watch;

/// Writes `text` to `path`, readable and writable by the owner only (mode 0600, also when the
/// file exists already with a looser mode): daemon configurations hold the MD5 passwords.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// What a look at a daemon shows: its learned routes (sorted) and its peerings.
type Seen = (Vec<LearnedRoute>, Vec<PeerStatus>);

/// A daemon driver the [`Watcher`] can look at.
#[async_trait]
pub(crate) trait Observe: Send + Sync + 'static {
    /// How long between two looks.
    fn poll(&self) -> Duration;
    /// The daemon's best learned routes now.
    async fn routes(&self) -> Result<Vec<LearnedRoute>, BackendError>;
    /// The daemon's peerings now.
    async fn peers(&self) -> Result<Vec<PeerStatus>, BackendError>;
}

/// What the daemon reports now, routes sorted; `None` when it cannot be read.
async fn observe<D: Observe>(d: &D) -> Option<Seen> {
    let mut routes = d.routes().await.ok()?;
    routes.sort();
    Some((routes, d.peers().await.ok()?))
}

/// A peering's state as BIRD and FRR name it (RFC 4271's names; anything else is Idle).
pub(crate) fn peer_state(s: &str) -> PeerState {
    match s {
        "Established" => PeerState::Established,
        "Connect" => PeerState::Connect,
        "Active" => PeerState::Active,
        "OpenSent" => PeerState::OpenSent,
        "OpenConfirm" => PeerState::OpenConfirm,
        _ => PeerState::Idle,
    }
}

/// The news of one driver, and the task that makes it (started by the first subscriber,
/// ended with the watcher).
pub(crate) struct Watcher {
    news: Arc<watch::Sender<u64>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    daemon: &'static str,
}

impl Watcher {
    /// A watcher of the daemon named `daemon` (for log messages).
    pub(crate) fn new(daemon: &'static str) -> Watcher {
        Watcher {
            news: Arc::new(watch::channel(0).0),
            task: std::sync::Mutex::new(None),
            daemon,
        }
    }

    /// A subscription to the news of `driver`; starts the polling task on first use.
    pub(crate) fn subscribe<D: Observe>(&self, driver: &Arc<D>) -> watch::Receiver<u64> {
        let receiver = self.news.subscribe();
        let Ok(mut task) = self.task.lock() else {
            return receiver;
        };
        if task.is_none() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let watch = watch_daemon(Arc::downgrade(driver), self.news.clone());
                    *task = Some(runtime.spawn(watch));
                }
                Err(_) => tracing::error!(
                    daemon = self.daemon,
                    "driver subscribed to outside a tokio runtime: \
                     changes will not be reported until a subscription inside one"
                ),
            }
        }
        receiver
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }
}

/// Looks at the daemon every poll while the driver lives; a look that differs from the last
/// one (the first one included) is news for every subscriber.
async fn watch_daemon<D: Observe>(driver: Weak<D>, news: Arc<watch::Sender<u64>>) {
    let mut last = None;
    loop {
        let Some(d) = driver.upgrade() else { return };
        let poll = d.poll();
        if let Some(seen) = observe(&*d).await {
            if last.as_ref() != Some(&seen) {
                last = Some(seen);
                news.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        drop(d);
        tokio::time::sleep(poll).await;
    }
}
