//! The backends the daemon runs: the Linux FIB and ACL table, and the BGP backend the command
//! line picks (the native speaker, with graceful restart as the kernel's routes say, BIRD or
//! FRR).

use std::sync::Arc;
use std::time::Duration;

use calico_bgp::bird::BirdConfig;
use calico_bgp::frr::{FrrBgp, FrrConfig};
use calico_bgp::speaker::{GracefulRestartOptions, Speaker, SpeakerError, SpeakerOptions};
use calico_core::agent::AgentBuilder;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::{AclBackend, BackendError, BgpBackend, ChangeSet, FibBackend};
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::LinuxFib;
use tracing::{info, warn};

use crate::bird_on_linux::bird_bgp;
use crate::cli::{BgpChoice, Options};

/// Whether a previous run left its forwarding state in the kernel: the number of routes
/// with our route protocol number there (0 if they cannot be read).
pub async fn routes_of_ours(fib: &LinuxFib) -> usize {
    match fib.dump().await {
        Ok(routes) => routes.len(),
        Err(e) => {
            warn!(
                error = %e,
                "cannot read the kernel's routes to tell whether this is a restart; \
                 starting as if fresh (peers drop our old routes when we connect)"
            );
            0
        }
    }
}

/// The native speaker, graceful restart as the options and the kernel's routes say (`ours`:
/// routes of a previous run found there); also whether it is restarting.
fn native_speaker(
    o: &Options,
    fib: &LinuxFib,
    ours: usize,
) -> Result<(Speaker, bool), SpeakerError> {
    let Some(restart_time) = o.graceful_restart() else {
        info!("graceful restart off: peers withdraw our routes as soon as we stop");
        let options = SpeakerOptions {
            graceful_restart: None,
            ..SpeakerOptions::default()
        };
        return Ok((Speaker::with_options(options)?, false));
    };
    let restarting = ours > 0;
    if restarting {
        info!(
            routes = ours,
            protocol = fib.config().protocol,
            "restarting with forwarding state preserved: {ours} routes of ours in the kernel; \
             peers asked to keep our routes"
        );
    } else {
        info!("no routes of ours in the kernel: a fresh start, not a graceful restart");
    }
    let speaker = Speaker::with_options(SpeakerOptions {
        graceful_restart: Some(GracefulRestartOptions {
            restart_time,
            restarting,
            ..GracefulRestartOptions::default()
        }),
        ..SpeakerOptions::default()
    })?;
    Ok((speaker, restarting))
}

/// The BGP backend chosen: the native speaker when it is one (kept to close its sessions
/// gracefully at exit), and the backend as the agent uses it (read for peer metrics).
pub struct ChosenBgp {
    /// The native speaker, when `--bgp native`.
    pub native: Option<Arc<Speaker>>,
    /// The backend, unless `--bgp none`.
    pub backend: Option<Arc<dyn BgpBackend>>,
}

/// Adds the chosen BGP backend to `builder` (`ours`: routes of a previous run in the
/// kernel, from [`routes_of_ours`]).
pub fn with_bgp(
    o: &Options,
    fib: &LinuxFib,
    ours: usize,
    mut builder: AgentBuilder,
) -> Result<(AgentBuilder, ChosenBgp), String> {
    let mut native = None;
    let bgp: Option<Arc<dyn BgpBackend>> = match o.bgp_choice() {
        BgpChoice::Native => {
            let (speaker, restarting) = native_speaker(o, fib, ours).map_err(|e| e.to_string())?;
            if let (true, Some(restart_time)) = (restarting, o.graceful_restart()) {
                // Our routes to other hosts stay in the kernel until the peers have sent
                // theirs again: the new speaker has learned nothing yet.
                builder = builder.keep_remote_routes_until_bgp_converged(restart_time);
            }
            let speaker = Arc::new(speaker);
            native = Some(speaker.clone());
            Some(speaker)
        }
        BgpChoice::Bird => {
            let mut config = BirdConfig::new(&o.bird_dir);
            config.stop_on_drop = false;
            Some(Arc::new(bird_bgp(config).map_err(|e| e.to_string())?))
        }
        BgpChoice::Frr => {
            let mut config = FrrConfig::new(&o.frr_dir);
            config.stop_on_drop = false;
            Some(Arc::new(FrrBgp::new(config).map_err(|e| e.to_string())?))
        }
        BgpChoice::None => None,
    };
    info!(bgp = ?o.bgp_choice(), "BGP backend");
    if let Some(bgp) = &bgp {
        builder = builder.bgp(bgp.clone());
    }
    Ok((
        builder,
        ChosenBgp {
            native,
            backend: bgp,
        },
    ))
}

/// Ends the native speaker's sessions: without a NOTIFICATION when graceful restart is on
/// (peers keep our routes for the restart time, and a restarted agent takes over), else
/// with a Cease (peers withdraw our routes).
pub async fn stop_speaker(speaker: Arc<Speaker>, graceful_restart: Option<Duration>) {
    let speaker = match Arc::try_unwrap(speaker) {
        Ok(s) => s,
        Err(_) => {
            // The agent has stopped and holds it no more; should that ever change, the
            // sessions end with the process, as when it is killed.
            warn!("BGP speaker still in use at exit: sessions end without a graceful restart");
            return;
        }
    };
    match graceful_restart {
        Some(restart_time) => {
            speaker.stop_for_restart().await;
            info!(
                restart_time_s = restart_time.as_secs(),
                "BGP sessions closed for a graceful restart: peers keep our routes for up to \
                 {} s; start the agent again before then",
                restart_time.as_secs()
            );
        }
        None => {
            drop(speaker);
            // The Cease goes out from the speaker's task: give it a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
            info!("BGP sessions closed (Cease): peers withdraw our routes");
        }
    }
}

/// The ACL backend the agent programs through: `acl`, or with `no_drift_watch` the same
/// table with its drift events unheard (`--no-acl-drift-watch`: only the periodic resync
/// repairs the table, so that drift can be seen with `calico-rs trace`).
pub fn acl_backend(acl: LinuxAcl, no_drift_watch: bool) -> Arc<dyn AclBackend> {
    if no_drift_watch {
        warn!("--no-acl-drift-watch: changes made to the ACL table behind the agent's back are repaired only at the periodic resync");
        Arc::new(Unwatched(acl))
    } else {
        Arc::new(acl)
    }
}

/// An ACL backend whose drift signal is not offered to the agent.
struct Unwatched(LinuxAcl);

#[async_trait::async_trait]
impl AclBackend for Unwatched {
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        self.0.apply(changes).await
    }

    async fn dump(&self) -> Result<Ruleset, BackendError> {
        self.0.dump().await
    }
}
