//! A [`BgpBackend`] that drives FRR (FRRouting, the maintained successor of Quagga): its
//! zebra, bfdd and bgpd daemons.
//!
//! The driver owns the daemons (started on the first [`BgpBackend::configure`], killed when
//! the driver is dropped unless [`FrrConfig::stop_on_drop`] is off) and their integrated
//! configuration `frr.conf` ([`conf`]):
//!
//! * exports become `network` statements, announced through export route-maps that pass our
//!   prefixes only (a route reflector also passes on what it learned);
//! * every peering is one `neighbor`, active in its own address family, with ECMP
//!   (`maximum-paths`), graceful restart, MD5 and a BFD profile as the model says;
//! * bgpd installs nothing in the kernel (`--no_kernel`): the driver reads the best routes
//!   and their multipath next hops from bgpd (`show bgp … json`), and the agent programs them.
//!
//! The daemons start without configuration; once all three answer, the driver applies
//! `frr.conf` with `vtysh -f`, as FRR's init script does with `vtysh -b`. Daemons that died
//! are started anew at the next change (what is left of them stopped first).
//!
//! A new configuration is checked by vtysh's dry run (`vtysh -C`), then applied to the
//! running daemons with `vtysh -f`: first the removal of what the running configuration has
//! and the new one has not ([`reload`]), then the new configuration, whose commands already
//! in force change nothing. bgpd is never restarted and unchanged sessions stay up (Debian's
//! `frr-reload.py` is in the separate `frr-pythontools` package; the driver needs only
//! `vtysh`).
//!
//! ```no_run
//! # async fn demo(settings: calico_core::dataplane::BgpSettings)
//! #     -> Result<(), calico_core::dataplane::BackendError> {
//! use calico_bgp::frr::{FrrBgp, FrrConfig};
//! use calico_core::dataplane::BgpBackend;
//! let frr = FrrBgp::new(FrrConfig::new("/run/calico-rs/frr"))?;
//! frr.configure(&settings).await?;
//! frr.set_exports(&["10.65.0.0/26".parse().unwrap()].into()).await?;
//! let learned = frr.learned_routes().await?;
//! # Ok(()) }
//! ```

pub mod conf;
mod daemons;
mod policy;
pub mod reload;
mod session;
pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use calico_core::dataplane::{
    BackendError, BgpBackend, BgpSettings, ExportedRoutes, LearnedRoute, PeerConfig, PeerStatus,
};
use ipnet::IpNet;
use tokio::process::Child;
use tokio::sync::{watch, Mutex};

use crate::daemon::{write_private, Observe, Watcher};

/// Where and how FRR runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrrConfig {
    /// Directory for `frr.conf`, the daemons' pid files, vty sockets and log (created if
    /// missing, owned by [`FrrConfig::user`], mode 0700).
    pub dir: PathBuf,
    /// Run FRR in this network namespace (e.g. `/var/run/netns/host-a`); `None`: ours.
    pub netns: Option<PathBuf>,
    /// Where the daemons are (`zebra`, `bfdd`, `bgpd`).
    pub bin_dir: PathBuf,
    /// The `vtysh` binary.
    pub vtysh: PathBuf,
    /// The user (and group) the daemons run as.
    pub user: String,
    /// How often the driver looks at FRR for news for [`BgpBackend::subscribe`].
    pub poll: Duration,
    /// Stop FRR when the driver is dropped. When `false`, FRR keeps its sessions across an
    /// agent restart; the next driver on the same directory adopts the running daemons.
    pub stop_on_drop: bool,
}

impl FrrConfig {
    /// Defaults: Debian's FRR (`/usr/lib/frr`, user `frr`) in our namespace, polled every
    /// second.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FrrConfig {
            dir: dir.into(),
            netns: None,
            bin_dir: "/usr/lib/frr".into(),
            vtysh: "vtysh".into(),
            user: "frr".into(),
            poll: Duration::from_secs(1),
            stop_on_drop: true,
        }
    }
}

struct State {
    /// What was asked for, and what FRR runs (set once applied).
    settings: Option<BgpSettings>,
    applied: Option<BgpSettings>,
    exports: BTreeSet<IpNet>,
    children: Vec<Child>,
    /// bgpd's listening port, which it takes when it starts.
    port: Option<u16>,
    /// Daemons started by an earlier driver are in use.
    adopted: bool,
}

/// BGP through FRR. Create it inside a tokio runtime.
///
/// FRR tells nobody when its routes or sessions change, so the first
/// [`BgpBackend::subscribe`] starts a task that looks every [`FrrConfig::poll`].
pub struct FrrBgp {
    driver: Arc<Driver>,
    watcher: Watcher,
}

/// The driver proper, shared with the task that watches FRR.
struct Driver {
    config: FrrConfig,
    state: Mutex<State>,
}

fn unavailable(what: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(format!("FRR: {what}"))
}

impl FrrBgp {
    /// A driver for `config`; FRR itself starts at the first [`BgpBackend::configure`].
    pub fn new(config: FrrConfig) -> Result<FrrBgp, BackendError> {
        if config.dir.to_string_lossy().contains(char::is_whitespace) {
            return Err(BackendError::Unsupported(format!(
                "FRR directory {:?}: must not contain whitespace (frr.conf names its log file)",
                config.dir
            )));
        }
        // frr.conf holds the peers' MD5 passwords: the directory is FRR's user's alone.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", config.dir.display())))?;
        daemons::give(&config, &config.dir)?;
        let state = State {
            settings: None,
            applied: None,
            exports: BTreeSet::new(),
            children: Vec::new(),
            port: None,
            adopted: false,
        };
        Ok(FrrBgp {
            driver: Arc::new(Driver {
                config,
                state: Mutex::new(state),
            }),
            watcher: Watcher::new("FRR"),
        })
    }
}

/// Peerings of `old` that changed in `new` other than in their BFD timers (those FRR
/// changes on the running session): FRR takes most neighbor settings (hold time, for one)
/// only at the next session, so these are removed and added anew, as BIRD restarts a
/// changed protocol.
/// Whether zebra's `show zebra client` lists bfdd and bgpd, and counts interface
/// addresses sent to bgpd (its `Intf Addr` line, in the `Client: bgp` section).
fn zebra_clients_ready(out: &str) -> bool {
    let mut client = "";
    let (mut bfd, mut bgp_addresses) = (false, false);
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("Client:") {
            client = name.split_whitespace().next().unwrap_or_default();
            bfd |= client == "bfd";
        } else if let Some(counts) = line.strip_prefix("Intf Addr") {
            let added = counts
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
            bgp_addresses |= client == "bgp" && added.is_some_and(|n| n > 0);
        }
    }
    bfd && bgp_addresses
}

fn changed_peers(old: Option<&BgpSettings>, new: &BgpSettings) -> BTreeSet<IpAddr> {
    let Some(old) = old else {
        return BTreeSet::new();
    };
    let key = |p: &PeerConfig| PeerConfig {
        bfd: None,
        ..p.clone()
    };
    let before: HashMap<IpAddr, PeerConfig> =
        old.peers.iter().map(|p| (p.address, key(p))).collect();
    new.peers
        .iter()
        .filter(|p| before.get(&p.address).is_some_and(|b| *b != key(p)))
        .map(|p| p.address)
        .collect()
}

impl Driver {
    fn path(&self, file: &str) -> PathBuf {
        self.config.dir.join(file)
    }

    async fn vtysh(&self, args: &[&str]) -> Result<String, BackendError> {
        daemons::vtysh(&self.config, args).await
    }

    /// Whether the daemons run (ours, or adopted from an earlier driver).
    async fn running(&self, state: &mut State) -> bool {
        if !state.children.is_empty() {
            return state
                .children
                .iter_mut()
                .all(|c| matches!(c.try_wait(), Ok(None)));
        }
        let up = self.vtysh(&["-c", "show bgp summary json"]).await.is_ok();
        if up && !state.adopted {
            state.port = daemons::running_bgpd_port(&self.config);
            tracing::info!(dir = %self.config.dir.display(), port = ?state.port, "adopting the running FRR");
            state.adopted = true;
        }
        up
    }

    /// Writes `text` as a file of FRR's user, mode 0600.
    fn write(&self, file: &str, text: &str) -> Result<PathBuf, BackendError> {
        let path = self.path(file);
        write_private(&path, text)
            .map_err(|e| unavailable(format!("cannot write {}: {e}", path.display())))?;
        daemons::give(&self.config, &path)?;
        Ok(path)
    }

    /// Writes the configuration for `state`, checked by vtysh's dry run, then starts FRR or
    /// reloads the running one.
    async fn converge(&self, state: &mut State) -> Result<(), BackendError> {
        let Some(settings) = state.settings.clone() else {
            return Ok(());
        };
        let text = conf::render(&settings, &state.exports, &self.path("frr.log"))
            .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        let candidate = self.write("frr.conf.new", &text)?;
        if let Err(why) = daemons::check(&self.config, &candidate).await? {
            return Err(BackendError::Unsupported(format!(
                "FRR rejects the configuration: {why}"
            )));
        }
        let running = self.running(state).await;
        let moved = running && state.port.is_some_and(|p| p != settings.listen_port);
        if moved {
            // bgpd takes its port at start (`-p`): a new one needs a new bgpd. Its peers
            // see a restart (graceful when they negotiated it) and reconnect.
            tracing::info!(from = ?state.port, to = settings.listen_port, "BGP listen port changed: restarting FRR");
        }
        if running && !moved {
            self.reload(state, &settings, &text).await?;
        } else {
            self.start(state, &settings, &candidate).await?;
        }
        state.applied = Some(settings);
        Ok(())
    }

    /// Applies `text` to the running daemons: the removals first, then the configuration.
    async fn reload(
        &self,
        state: &State,
        settings: &BgpSettings,
        text: &str,
    ) -> Result<(), BackendError> {
        let running = reload::parse_running(&self.vtysh(&["-c", "show running-config"]).await?);
        let reset = changed_peers(state.applied.as_ref(), settings);
        let removals = reload::removals(&running, settings, &state.exports, &reset);
        let text = match running.graceful_restart && running.routers.contains(&settings.local_as.0)
        {
            true => text.replacen(conf::GRACEFUL_RESTART, "", 1),
            false => text.to_string(),
        };
        let stale = reload::stale_policy(&running, settings);
        let script = self.write("frr.reload", &format!("{removals}{text}{stale}"))?;
        let file = script.to_string_lossy();
        self.vtysh(&["-f", &file]).await.map_err(|e| {
            unavailable(format!(
                "reloading the configuration ({}): {e}",
                file.trim()
            ))
        })?;
        let conf = self.path("frr.conf");
        std::fs::rename(self.path("frr.conf.new"), &conf)
            .map_err(|e| unavailable(format!("cannot replace {}: {e}", conf.display())))?;
        tracing::debug!(dir = %self.config.dir.display(), "FRR reloaded");
        Ok(())
    }

    /// Starts zebra, bfdd and bgpd, waits for them, and applies `candidate` (become
    /// `frr.conf`) with vtysh.
    async fn start(
        &self,
        state: &mut State,
        settings: &BgpSettings,
        candidate: &std::path::Path,
    ) -> Result<(), BackendError> {
        let conf = self.path("frr.conf");
        std::fs::rename(candidate, &conf)
            .map_err(|e| unavailable(format!("cannot replace {}: {e}", conf.display())))?;
        for mut child in state.children.drain(..) {
            let _ = child.kill().await;
        }
        daemons::stop_leftovers(&self.config).await;
        // A socket left by an earlier zebra would pass for the new one's.
        let _ = std::fs::remove_file(self.path("zserv.api"));
        state.adopted = false;
        for d in daemons::DAEMONS {
            let child = daemons::start(&self.config, d, settings.listen_port)?;
            state.children.push(child);
            if d == "zebra" {
                // bfdd and bgpd started before zebra listens retry only seconds later
                // (bfdd after about 7 s): start them once zebra's socket is there.
                self.wait_for_zserv().await;
            }
        }
        state.port = Some(settings.listen_port);
        for round in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let vty = |d: &str| self.path(&format!("{d}.vty")).exists();
            // bgpd learns the interfaces' addresses from zebra once it is zebra's client; a
            // session that comes up before that is taken for multihop (no shared network),
            // and so is its BFD session, which then never starts. Wait for it, up to 8 s.
            let registered = self.zebra_clients_ready().await;
            if round == 80 && !registered {
                tracing::warn!(dir = %self.config.dir.display(), "bgpd and bfdd are not zebra's clients with the interfaces' addresses after 8 s; applying the configuration anyway (single-hop BFD sessions may not start)");
            }
            let registered = registered || round >= 80;
            if daemons::DAEMONS.iter().all(|d| vty(d))
                && self.vtysh(&["-c", "show bgp summary json"]).await.is_ok()
                && registered
            {
                let file = conf.to_string_lossy();
                self.vtysh(&["-f", &file])
                    .await
                    .map_err(|e| unavailable(format!("applying {file}: {e}")))?;
                tracing::info!(dir = %self.config.dir.display(), "FRR started");
                return Ok(());
            }
            for (d, child) in daemons::DAEMONS.iter().zip(state.children.iter_mut()) {
                if let Ok(Some(status)) = child.try_wait() {
                    let err = std::fs::read_to_string(self.path(&format!("{d}.err")));
                    let err = err.unwrap_or_default();
                    state.children.clear();
                    return Err(unavailable(format!(
                        "{d} exited with {status}: {}",
                        err.trim()
                    )));
                }
            }
        }
        state.children.clear();
        Err(unavailable("bgpd did not answer vtysh within 10 s"))
    }

    /// Waits up to 2 s for zebra's API socket.
    async fn wait_for_zserv(&self) {
        let socket = self.path("zserv.api");
        for _ in 0..40 {
            if socket.exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(socket = %socket.display(), "zebra's API socket is not there after 2 s; starting bfdd and bgpd anyway");
    }

    /// Whether bgpd and bfdd are zebra's clients and zebra has sent bgpd the interfaces'
    /// addresses (`show zebra client`).
    async fn zebra_clients_ready(&self) -> bool {
        let Ok(out) = self.vtysh(&["-c", "show zebra client"]).await else {
            return false;
        };
        zebra_clients_ready(&out)
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

    async fn set_exports(&self, prefixes: &BTreeSet<IpNet>) -> Result<(), BackendError> {
        let mut state = self.state.lock().await;
        if state.exports == *prefixes {
            return Ok(());
        }
        let previous = std::mem::replace(&mut state.exports, prefixes.clone());
        let result = self.converge(&mut state).await;
        if result.is_err() {
            state.exports = previous;
        }
        result
    }

    /// Whether FRR has been started or adopted (else there is nothing to ask it).
    async fn started(&self) -> bool {
        let state = self.state.lock().await;
        !state.children.is_empty() || state.adopted
    }

    async fn learned_routes(&self) -> Result<Vec<LearnedRoute>, BackendError> {
        if !self.started().await {
            return Ok(Vec::new());
        }
        let mut routes = Vec::new();
        for family in ["ipv4", "ipv6"] {
            let command = format!("show bgp {family} unicast json");
            let text = self.vtysh(&["-c", &command]).await?;
            routes.extend(status::parse_routes(&text).map_err(unavailable)?);
        }
        Ok(routes)
    }

    async fn peer_status(&self) -> Result<Vec<PeerStatus>, BackendError> {
        if !self.started().await {
            return Ok(Vec::new());
        }
        let text = self.vtysh(&["-c", "show bgp neighbors json"]).await?;
        status::parse_neighbors(&text).map_err(unavailable)
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
impl BgpBackend for FrrBgp {
    async fn configure(&self, settings: &BgpSettings) -> Result<(), BackendError> {
        self.driver.configure(settings).await
    }

    /// The interfaces are not used: the FRR driver refuses `interface` filter rules.
    async fn set_exported_routes(&self, routes: &ExportedRoutes) -> Result<(), BackendError> {
        self.driver
            .set_exports(&routes.keys().copied().collect())
            .await
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

#[cfg(test)]
mod tests {
    /// `show zebra client` as FRR 8.4 prints it (abridged): bgpd registered with no
    /// interface address sent yet, then with three.
    const CLIENTS: &str = "Client: bgp\nFD: 22\nType        Add         Update      Del \n\
        ==================================================\nIPv4        0           0           0\n\
        Interface   2           0           0\nIntf Addr   0           0           0\n\
        BFD peer    0           0           0\n\nClient: bfd\nFD: 23\n\
        Intf Addr   3           0           0\n";

    #[test]
    fn bgpd_is_ready_once_zebra_sent_it_the_interfaces_addresses() {
        assert!(
            !super::zebra_clients_ready(CLIENTS),
            "bgpd has no address yet"
        );
        let sent = CLIENTS.replacen("Intf Addr   0", "Intf Addr   3", 1);
        assert!(super::zebra_clients_ready(&sent));
        let no_bfdd = sent.split("Client: bfd").next().unwrap();
        assert!(!super::zebra_clients_ready(no_bfdd));
    }
}
