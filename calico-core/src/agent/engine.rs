//! The agent's event loop: batching, reconciliation passes, resync, drift repair and retry.

mod converge;
mod drift;
mod forget;
mod pass;
mod steps;

mod batching;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::metrics::Metrics;
use super::status::{AgentStatus, BackendHealth, EndpointState, EndpointStatus};
use super::Timing;
use crate::compile::{CompileConfig, Compiler, FlowLogConfig, HostConfig};
use crate::dataplane::{
    AclBackend, BackendError, BgpBackend, BgpSettings, ExportedRoutes, FibBackend,
    InterfaceAddresses, InterfaceSettings, LearnedRoute, RouteTarget,
};
use crate::model::{Model, Update};
use drift::{DriftWatch, Drifted};
use pass::Repairs;

/// A request to the engine.
pub(super) enum Command {
    Update(Box<Update>),
    /// Updates validated together, applied in one pass.
    Batch(Vec<Update>),
    Snapshot(Box<Model>),
    Resync,
    Flush(oneshot::Sender<()>),
    /// A copy of the desired state (every update taken so far).
    Model(oneshot::Sender<Arc<Model>>),
    /// The desired state with the rules compiled from it, unless its revision is still the
    /// one given.
    Compiled(Option<u64>, oneshot::Sender<Option<super::Compiled>>),
    Stop,
}

pub(super) struct Engine {
    node: String,
    /// Flow-log rules compiled in (`AgentBuilder::flow_logs`).
    flow_logs: Option<FlowLogConfig>,
    /// The host's protection (`AgentBuilder::host_protection`).
    host: HostConfig,
    /// Whether workloads may send from their `allowSpoofedSourcePrefixes`
    /// (`AgentBuilder::workload_source_spoofing`).
    spoofing: bool,
    /// Whether workloads' floating IPs are in effect (`AgentBuilder::floating_ips`).
    floating_ips: bool,
    fib: Arc<dyn FibBackend>,
    acl: Option<Arc<dyn AclBackend>>,
    bgp: Option<Arc<dyn BgpBackend>>,
    timing: Timing,
    status_tx: watch::Sender<AgentStatus>,
    metrics: Arc<Mutex<Metrics>>,

    in_sync: bool,
    /// The desired state: every accepted update, validated. The one store; the compiler,
    /// routes and BGP settings read it.
    model: Model,
    /// The incremental rule compiler, told of every accepted update.
    compiler: Compiler,
    /// Whether the ACL dataplane holds exactly the compiler's previous output, so that the
    /// compiler's own change set can be applied; otherwise the table is read back and diffed.
    acl_in_step: bool,
    acl_health: BackendHealth,
    /// What we believe the FIB holds; `None` means "read it back first".
    programmed_routes: Option<BTreeMap<IpNet, RouteTarget>>,
    /// The host's interface addresses as last read (host endpoints without an interface
    /// name govern the interfaces holding their `expectedIPs`), or why they could not be.
    interface_addrs: Result<InterfaceAddresses, String>,
    /// Whether they may have changed since (read again when a local host endpoint needs
    /// them: after a resync, FIB drift, a new snapshot).
    interface_addrs_stale: bool,
    /// Interfaces already configured for routing, with the settings they were given.
    configured_interfaces: BTreeMap<String, InterfaceSettings>,
    /// Interface problems by interface name.
    interface_state: BTreeMap<String, EndpointState>,
    /// Route failures by destination.
    route_errors: BTreeMap<IpNet, String>,
    /// Workload addresses that left this host, whose connections are to be forgotten.
    forgetting: forget::Forgetting,
    exported: Option<ExportedRoutes>,
    /// The BGP settings last handed to the backend.
    bgp_configured: Option<Option<BgpSettings>>,
    /// The BGP settings last logged (kept across resyncs, which reconfigure).
    bgp_logged: Option<BgpSettings>,
    learned: Vec<LearnedRoute>,
    peers: Vec<crate::dataplane::PeerStatus>,
    fib_health: BackendHealth,
    bgp_health: BackendHealth,
    /// Set when the last pass left something to retry.
    retry_at: Option<tokio::time::Instant>,
    /// Set while a resync pass runs: changes found are drift repairs.
    resyncing: bool,
    /// Set while a pass repairs drift a backend reported: what it reported.
    repairing: Option<Drifted>,
    /// Consecutive passes that left something to retry (the retry back-off's exponent).
    unsettled_passes: u32,
    /// Until when remote routes found in the FIB are kept while BGP converges after a
    /// restart (see `AgentBuilder::keep_remote_routes_until_bgp_converged`); `None`: not
    /// (or no longer) keeping them.
    keep_remote_until: Option<tokio::time::Instant>,
    /// When the agent started (for the log of how long BGP took to converge).
    started: Instant,
    /// When the last reconciliation pass ended, and how long it took (adaptive batching).
    last_pass: Option<(tokio::time::Instant, Duration)>,
    /// Counts the changes of what the compiler compiles from: the model, the settings, the
    /// interface addresses ([`super::Compiled::revision`]).
    revision: u64,
}

impl Engine {
    pub(super) fn new(
        node: String,
        fib: Arc<dyn FibBackend>,
        acl: Option<Arc<dyn AclBackend>>,
        bgp: Option<Arc<dyn BgpBackend>>,
        timing: Timing,
        status_tx: watch::Sender<AgentStatus>,
        metrics: Arc<Mutex<Metrics>>,
    ) -> Self {
        let compiler = Compiler::new(CompileConfig::new(node.clone()));
        Engine {
            node,
            flow_logs: None,
            host: HostConfig::default(),
            spoofing: false,
            floating_ips: false,
            fib,
            acl,
            bgp,
            timing,
            status_tx,
            metrics,
            in_sync: false,
            model: Model::new(),
            compiler,
            acl_in_step: false,
            acl_health: BackendHealth::default(),
            programmed_routes: None,
            interface_addrs: Ok(InterfaceAddresses::new()),
            interface_addrs_stale: true,
            configured_interfaces: BTreeMap::new(),
            interface_state: BTreeMap::new(),
            route_errors: BTreeMap::new(),
            forgetting: forget::Forgetting::default(),
            exported: None,
            bgp_configured: None,
            bgp_logged: None,
            learned: Vec::new(),
            peers: Vec::new(),
            fib_health: BackendHealth::default(),
            bgp_health: BackendHealth::default(),
            retry_at: None,
            resyncing: false,
            repairing: None,
            unsettled_passes: 0,
            keep_remote_until: None,
            started: Instant::now(),
            last_pass: None,
            revision: 0,
        }
    }

    /// Keeps remote routes found in the FIB for at most `at_most` while BGP converges.
    pub(super) fn keep_remote_routes(mut self, at_most: Option<Duration>) -> Self {
        self.keep_remote_until = match (at_most, &self.bgp) {
            (Some(d), Some(_)) => Some(tokio::time::Instant::now() + d),
            _ => None,
        };
        self
    }

    pub(super) fn configure(
        mut self,
        flow_logs: Option<FlowLogConfig>,
        host: HostConfig,
        spoofing: bool,
        floating_ips: bool,
    ) -> Self {
        self.flow_logs = flow_logs;
        self.host = host;
        self.spoofing = spoofing;
        self.floating_ips = floating_ips;
        self.compiler = Compiler::new(self.compile_config());
        self.revision += 1;
        self
    }

    fn compile_config(&self) -> CompileConfig {
        CompileConfig {
            flow_logs: self.flow_logs,
            host: self.host.clone(),
            workload_source_spoofing: self.spoofing,
            floating_ips: self.floating_ips,
            ..CompileConfig::new(self.node.clone())
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        info!(node = %self.node, "agent started; waiting for the first snapshot");
        let mut resync = tokio::time::interval(self.timing.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let mut bgp_news = self.bgp.as_ref().map(|b| b.subscribe());
        let mut drift = DriftWatch::new(self.fib.as_ref(), self.acl.as_deref());
        // A drift signal waits out `drift::DEBOUNCE` (folding the burst of events of one
        // change) without holding up commands meanwhile.
        let mut drift_due: Option<(tokio::time::Instant, Drifted)> = None;
        loop {
            let retry_at = self.retry_at;
            let mut flushes = Vec::new();
            let mut dirty = false;
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if !self.take(cmd, &mut flushes, &mut dirty) {
                        break;
                    }
                    // Batch: fold in whatever arrives within the window.
                    let stop = !self.fold(&mut rx, &mut flushes, &mut dirty).await;
                    if dirty {
                        self.reconcile().await;
                    }
                    for f in flushes.drain(..) {
                        let _ = f.send(());
                    }
                    if stop {
                        break;
                    }
                }
                _ = resync.tick() => self.resync().await,
                drifted = drift.changed(), if drift.is_active() && drift_due.is_none() => {
                    drift_due = Some((tokio::time::Instant::now() + drift::DEBOUNCE, drifted));
                }
                _ = sleep_until(drift_due.map(|(at, _)| at)), if drift_due.is_some() => {
                    if let Some((_, drifted)) = drift_due.take() {
                        self.repair_drift(drift.fold(drifted)).await;
                    }
                }
                _ = sleep_until(retry_at), if retry_at.is_some() => {
                    debug!("retrying after backend errors");
                    self.reconcile().await;
                }
                news = next_news(&mut bgp_news), if bgp_news.is_some() => {
                    if news.is_err() {
                        warn!("the BGP backend has stopped: learned routes are kept as they are");
                        bgp_news = None;
                        continue;
                    }
                    self.refresh_learned().await;
                    self.reconcile().await;
                }
            }
        }
        info!(node = %self.node, "agent stopped; dataplane left as programmed");
    }

    /// Takes one command; returns false on Stop.
    pub(super) fn take(
        &mut self,
        cmd: Command,
        flushes: &mut Vec<oneshot::Sender<()>>,
        dirty: &mut bool,
    ) -> bool {
        match cmd {
            Command::Batch(updates) => {
                for u in updates {
                    self.take_update(u, dirty);
                }
            }
            Command::Update(u) => self.take_update(*u, dirty),
            Command::Snapshot(model) => {
                self.model = *model;
                self.compiler = Compiler::from_model(self.compile_config(), &self.model);
                // Host endpoints found by address stay where they were until the
                // addresses are read again.
                if let Ok(addrs) = &self.interface_addrs {
                    self.compiler
                        .set_interface_addresses(&self.model, addrs.clone());
                }
                self.interface_addrs_stale = true;
                self.revision += 1;
                // The compiler's change log no longer describes the table: diff afresh.
                self.acl_in_step = false;
                if !self.in_sync {
                    info!(node = %self.node, "first snapshot complete; programming starts");
                }
                self.in_sync = true;
                self.metrics().updates_total += 1;
                *dirty = true;
            }
            Command::Resync => {
                self.interface_addrs_stale = true;
                self.acl_in_step = false;
                self.programmed_routes = None;
                self.configured_interfaces.clear();
                self.exported = None;
                self.bgp_configured = None;
                self.resyncing = true;
                *dirty = true;
            }
            Command::Flush(tx) => flushes.push(tx),
            Command::Model(tx) => {
                let _ = tx.send(Arc::new(self.model.clone()));
            }
            Command::Compiled(known, tx) => {
                let changed = known != Some(self.revision);
                let _ = tx.send(changed.then(|| self.compiled()));
            }
            Command::Stop => return false,
        }
        true
    }

    /// The model and the rules compiled from it, the interfaces updates reached rendered
    /// now (the pass renders nothing twice: they are no longer staged then).
    fn compiled(&mut self) -> super::Compiled {
        self.compiler.render_staged(&self.model);
        super::Compiled {
            revision: self.revision,
            model: Arc::new(self.model.clone()),
            ruleset: Arc::new(self.compiler.ruleset().clone()),
            interface_addresses: self.compiler.interface_addresses().clone(),
        }
    }

    /// Takes one update into the model and the compiler (or counts it rejected).
    fn take_update(&mut self, u: Update, dirty: &mut bool) {
        // Validated by the handle already; checked again so that nothing invalid
        // can reach the model (the agent's one copy of the state).
        let invalid = match &u {
            Update::Upsert(r) => r.validate().err(),
            Update::Remove(_) => None,
        };
        if let Some(e) = invalid {
            warn!(error = %e, "update rejected");
            self.metrics().updates_rejected_total += 1;
        } else {
            let applied = self.model.apply_valid(u);
            // The interfaces it reaches are rendered once for the pass (reconcile_acl).
            self.compiler.stage(&self.model, &applied);
            self.revision += 1;
            self.metrics().updates_total += 1;
            *dirty = true;
        }
    }

    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().expect("metrics lock")
    }

    async fn resync(&mut self) {
        self.interface_addrs_stale = true;
        self.acl_in_step = false;
        self.programmed_routes = None;
        self.configured_interfaces.clear();
        self.exported = None;
        self.bgp_configured = None;
        self.resyncing = true;
        self.refresh_learned().await;
        self.reconcile().await;
    }

    async fn refresh_learned(&mut self) {
        let Some(bgp) = self.bgp.clone() else { return };
        match bgp.learned_routes().await {
            Ok(routes) => self.learned = routes,
            Err(e) => record_failure(&mut self.bgp_health, &e, "read learned routes"),
        }
        match bgp.peer_status().await {
            Ok(peers) => self.peers = peers,
            Err(e) => record_failure(&mut self.bgp_health, &e, "read peer status"),
        }
    }

    /// One reconciliation pass over interfaces, routes and BGP exports.
    async fn reconcile(&mut self) {
        if !self.in_sync {
            self.publish_status();
            return;
        }
        // Tokio's clock: the same as the system's, except in tests that pause time.
        let started = tokio::time::Instant::now();
        debug!("reconciling");
        let was_resync = std::mem::take(&mut self.resyncing);
        let repairing = self.repairing.take();
        let mut repairs = Repairs::default();
        let mut failed = false;

        self.configure_interfaces().await;
        if !self.refresh_interface_addresses().await {
            failed = true;
        }
        // ACLs before routes: a workload becomes reachable only once its policy is in place.
        // (Routes are not touched at all while the ACLs cannot be programmed.)
        if !self.reconcile_acl(&mut repairs.acl).await
            || !self.reconcile_routes(&mut repairs.routes).await
        {
            failed = true;
        }
        if !self.reconcile_exports().await {
            failed = true;
        }
        if self
            .interface_state
            .values()
            .any(|s| matches!(s, EndpointState::Error(_)))
        {
            failed = true;
        }

        self.last_pass = Some((tokio::time::Instant::now(), started.elapsed()));
        self.count_pass(started, was_resync, repairing, repairs);
        let waiting = self
            .interface_state
            .values()
            .any(|s| *s == EndpointState::WaitingForInterface);
        self.retry_at = self
            .retry_delay(failed, waiting)
            .map(|delay| tokio::time::Instant::now() + delay);
        // Wake up when the remote routes kept across a restart are due, should BGP say
        // nothing more before then.
        if let Some(until) = self.keep_remote_until {
            self.retry_at = Some(self.retry_at.map_or(until, |r| r.min(until)));
        }
        self.publish_status();
    }

    fn publish_status(&self) {
        let mut endpoints = BTreeMap::new();
        for (id, ep) in &self.model.workload_endpoints {
            if ep.node != self.node {
                continue;
            }
            let state = if !self.in_sync {
                EndpointState::Pending
            } else if let Some(e) = &self.acl_health.last_error {
                EndpointState::Error(e.clone())
            } else if let Some(s) = self.interface_state.get(&ep.interface_name) {
                s.clone()
            } else if let Some(e) = ep
                .ip_networks
                .iter()
                .find_map(|n| self.route_errors.get(&n.trunc()))
            {
                EndpointState::Error(e.clone())
            } else {
                EndpointState::Programmed
            };
            endpoints.insert(
                id.clone(),
                EndpointStatus {
                    interface: ep.interface_name.clone(),
                    state,
                },
            );
        }
        self.metrics().local_endpoints = endpoints.len() as u64;
        let status = AgentStatus {
            in_sync: self.in_sync,
            endpoints,
            peers: self.peers.clone(),
            fib: self.fib_health.clone(),
            acl: self.acl_health.clone(),
            bgp: self.bgp_health.clone(),
            notes: self
                .model
                .host_endpoints
                .values()
                .filter(|h| h.node == self.node)
                .filter_map(|h| {
                    let addrs = self.interface_addrs.as_ref().map_err(String::as_str);
                    h.address_note(addrs)
                })
                .collect(),
        };
        self.status_tx.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                *s = status;
                true
            }
        });
    }
}

fn record_failure(health: &mut BackendHealth, e: &BackendError, what: &str) {
    let error = format!("{what}: {e}");
    // Logged when it starts or changes, not at every retry.
    if health.last_error.as_ref() != Some(&error) {
        warn!(error = %e, "{what} failed; will retry");
    } else {
        debug!(error = %e, "{what} failed again");
    }
    health.consecutive_failures += 1;
    health.last_error = Some(error);
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next change the BGP backend reports; `Err` once it has stopped for good.
async fn next_news(
    news: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match news {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}
