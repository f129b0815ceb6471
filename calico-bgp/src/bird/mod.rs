//! A [`BgpBackend`] that drives a BIRD 2 daemon, the BGP daemon Calico itself uses.
//!
//! The driver owns one `bird` process (started on the first [`BgpBackend::configure`],
//! killed when the driver is dropped) and its configuration file:
//!
//! * exports become static routes of protocols `calico_exports4/6`, the only routes the BGP
//!   protocols export: a block a blackhole, a workload address a device route of its
//!   interface (so that `BGPFilter` rules with `interface` see its `ifname`);
//! * every peering is one BGP protocol (`peer_<address>`);
//! * kernel protocols copy the best BGP routes, merged into ECMP routes, into a kernel table
//!   of their own (251 by default), which the driver reads back as the learned routes
//!   through the [`KernelTable`] it is given (on Linux, a FIB backend opened on that table).
//!   The agent then programs them into the main table itself.
//!
//! A new configuration is checked with `bird -p` before it replaces the running one, and
//! applied with `birdc configure`, which keeps established sessions whose peering did not
//! change.
//!
//! ```no_run
//! # async fn demo(
//! #     settings: calico_core::dataplane::BgpSettings,
//! #     table: std::sync::Arc<dyn calico_bgp::bird::KernelTable>,
//! # ) -> Result<(), calico_core::dataplane::BackendError> {
//! use calico_bgp::bird::{BirdBgp, BirdConfig};
//! use calico_core::dataplane::BgpBackend;
//! // `table`: e.g. calico-linux's LinuxFib on table 251, protocol RTPROT_BIRD.
//! let bird = BirdBgp::new(BirdConfig::new("/run/calico-rs/bird"), table)?;
//! bird.configure(&settings).await?;
//! bird.set_exports(&["10.65.0.0/26".parse().unwrap()].into()).await?;
//! let learned = bird.learned_routes().await?;
//! # Ok(()) }
//! ```

pub mod conf;
pub mod control;
mod policy;
mod session;
mod table;

pub use table::KernelTable;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use calico_core::dataplane::{
    BackendError, BgpBackend, BgpSettings, ExportedRoutes, LearnedRoute, PeerStatus, RouteTarget,
};
use tokio::process::{Child, Command};
use tokio::sync::{watch, Mutex};

use crate::daemon::{write_private, Observe, Watcher};

/// The kernel's route protocol number for routes BIRD installs (`RTPROT_BIRD`).
pub const RTPROT_BIRD: u8 = 12;

/// Where and how BIRD runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdConfig {
    /// Directory for `bird.conf`, the control socket and BIRD's log (created if missing).
    pub dir: PathBuf,
    /// Run BIRD in this network namespace (e.g. `/var/run/netns/host-a`); `None`: ours.
    pub netns: Option<PathBuf>,
    /// Kernel table BIRD writes its best BGP routes to, read back as learned routes.
    pub kernel_table: u32,
    /// The `bird` binary.
    pub bird: PathBuf,
    /// The `birdc` binary.
    pub birdc: PathBuf,
    /// How often the driver looks at BIRD for news for [`BgpBackend::subscribe`].
    pub poll: Duration,
    /// Stop BIRD when the driver is dropped. When `false`, BIRD keeps its sessions (and the
    /// other hosts their routes to this one) across an agent restart; the next driver on the
    /// same directory adopts the running daemon.
    pub stop_on_drop: bool,
}

impl BirdConfig {
    /// Defaults: BIRD from `$PATH` in our namespace, kernel table 251, polled every second.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BirdConfig {
            dir: dir.into(),
            netns: None,
            kernel_table: 251,
            bird: "bird".into(),
            birdc: "birdc".into(),
            poll: Duration::from_secs(1),
            stop_on_drop: true,
        }
    }
}

struct State {
    settings: Option<BgpSettings>,
    exports: ExportedRoutes,
    child: Option<Child>,
    /// A daemon started by an earlier driver is in use.
    adopted: bool,
}

/// BGP through a BIRD 2 daemon. Create it inside a tokio runtime.
///
/// BIRD tells nobody when its routes or sessions change, so the first
/// [`BgpBackend::subscribe`] starts a task that looks every [`BirdConfig::poll`] and tells
/// every subscriber when what it sees differs from the last look. The task ends with the
/// driver.
pub struct BirdBgp {
    driver: Arc<Driver>,
    watcher: Watcher,
}

/// The driver proper, shared with the task that watches BIRD.
struct Driver {
    config: BirdConfig,
    table: Arc<dyn KernelTable>,
    state: Mutex<State>,
}

fn unavailable(what: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(format!("BIRD: {what}"))
}

impl BirdBgp {
    /// A driver that reads BIRD's best routes back from `table`, which must read table
    /// [`BirdConfig::kernel_table`] of namespace [`BirdConfig::netns`], routes of protocol
    /// [`RTPROT_BIRD`]. BIRD itself starts at the first [`BgpBackend::configure`].
    pub fn new(config: BirdConfig, table: Arc<dyn KernelTable>) -> Result<BirdBgp, BackendError> {
        // bird.conf holds the peers' MD5 passwords: a directory we create is ours alone.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", config.dir.display())))?;
        let driver = Driver {
            config,
            table,
            state: Mutex::new(State {
                settings: None,
                exports: ExportedRoutes::new(),
                child: None,
                adopted: false,
            }),
        };
        Ok(BirdBgp {
            driver: Arc::new(driver),
            watcher: Watcher::new("BIRD"),
        })
    }
}

impl Driver {
    fn path(&self, file: &str) -> PathBuf {
        self.config.dir.join(file)
    }

    fn command(&self, program: &Path) -> Command {
        match &self.config.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    async fn birdc(&self, args: &[&str]) -> Result<String, BackendError> {
        let out = Command::new(&self.config.birdc)
            .arg("-s")
            .arg(self.path("bird.ctl"))
            .args(args)
            .output()
            .await
            .map_err(|e| unavailable(format!("cannot run birdc: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(unavailable(format!(
                "birdc {}: {}{}",
                args.join(" "),
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(text)
    }

    /// Writes the configuration for `state`, checked by `bird -p` first, then starts BIRD or
    /// makes the running one re-read it.
    async fn converge(&self, state: &mut State) -> Result<(), BackendError> {
        let Some(settings) = &state.settings else {
            return Ok(());
        };
        let text = conf::render(settings, &state.exports, self.config.kernel_table)
            .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        let (conf, candidate) = (self.path("bird.conf"), self.path("bird.conf.new"));
        write_private(&candidate, &text)
            .map_err(|e| unavailable(format!("cannot write {}: {e}", candidate.display())))?;
        let check = Command::new(&self.config.bird)
            .arg("-p")
            .arg("-c")
            .arg(&candidate)
            .output()
            .await
            .map_err(|e| unavailable(format!("cannot run bird: {e}")))?;
        if !check.status.success() {
            return Err(BackendError::Unsupported(format!(
                "BIRD rejects the configuration: {}",
                String::from_utf8_lossy(&check.stderr).trim()
            )));
        }
        std::fs::rename(&candidate, &conf)
            .map_err(|e| unavailable(format!("cannot replace {}: {e}", conf.display())))?;
        let running = match state.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            // A daemon left running by an earlier driver on this directory: adopt it.
            None => {
                let adopted = self.birdc(&["show", "status"]).await.is_ok();
                if adopted {
                    tracing::info!(dir = %self.config.dir.display(), "adopting the running BIRD");
                    state.adopted = true;
                }
                adopted
            }
        } || (state.adopted && self.birdc(&["show", "status"]).await.is_ok());
        if running {
            let out = self.birdc(&["configure"]).await?;
            if !(out.contains("Reconfigured") || out.contains("Reconfiguration in progress")) {
                return Err(unavailable(format!("configure: {}", out.trim())));
            }
            tracing::debug!(dir = %self.config.dir.display(), "BIRD reconfigured");
            return Ok(());
        }
        let log = std::fs::File::create(self.path("bird.log"))
            .map_err(|e| unavailable(format!("cannot create bird.log: {e}")))?;
        let child = self
            .command(&self.config.bird)
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(self.path("bird.ctl"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(self.config.stop_on_drop)
            .spawn()
            .map_err(|e| unavailable(format!("cannot start bird: {e}")))?;
        state.child = Some(child);
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.birdc(&["show", "status"]).await.is_ok() {
                tracing::info!(dir = %self.config.dir.display(), "BIRD started");
                return Ok(());
            }
            if let Some(Ok(Some(status))) = state.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.path("bird.log")).unwrap_or_default();
                return Err(unavailable(format!(
                    "bird exited with {status}: {}",
                    log.trim()
                )));
            }
        }
        Err(unavailable(
            "bird did not open its control socket within 5 s",
        ))
    }

    async fn configure(&self, settings: &BgpSettings) -> Result<(), BackendError> {
        let mut state = self.state.lock().await;
        let previous = state.settings.replace(settings.clone());
        let result = self.converge(&mut state).await;
        if result.is_err() {
            state.settings = previous;
        }
        result
    }

    async fn set_exported_routes(&self, routes: &ExportedRoutes) -> Result<(), BackendError> {
        let mut state = self.state.lock().await;
        if state.exports == *routes {
            return Ok(());
        }
        let previous = std::mem::replace(&mut state.exports, routes.clone());
        let result = self.converge(&mut state).await;
        if result.is_err() {
            state.exports = previous;
        }
        result
    }

    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        let routes = self.table.routes().await?;
        Ok(routes
            .into_iter()
            .filter_map(|r| match r.target {
                RouteTarget::Via(hops) => Some(LearnedRoute {
                    prefix: r.dst,
                    next_hops: hops.into_iter().map(|h| h.gateway).collect(),
                }),
                _ => None,
            })
            .collect())
    }

    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError> {
        {
            let state = self.state.lock().await;
            if state.child.is_none() && !state.adopted {
                return Ok(Vec::new());
            }
        }
        Ok(control::parse_protocols(
            &self.birdc(&["show", "protocols", "all"]).await?,
        ))
    }
}

#[async_trait]
impl Observe for Driver {
    fn poll(&self) -> Duration {
        self.config.poll
    }

    async fn routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        self.learned_routes().await
    }

    async fn peers(&self) -> Result<Vec<PeerStatus>, BackendError> {
        self.peer_status().await
    }
}

#[async_trait]
impl BgpBackend for BirdBgp {
    async fn configure(&self, settings: &BgpSettings) -> Result<(), BackendError> {
        self.driver.configure(settings).await
    }

    async fn set_exported_routes(&self, routes: &ExportedRoutes) -> Result<(), BackendError> {
        self.driver.set_exported_routes(routes).await
    }

    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        self.driver.learned_routes().await
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.watcher.subscribe(&self.driver)
    }

    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError> {
        self.driver.peer_status().await
    }
}
