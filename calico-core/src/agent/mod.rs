//! The agent (Felix): keeps one host's dataplane in line with the orchestrator's desired state.
//!
//! An orchestrator builds an [`Agent`] with its choice of backends, feeds it a complete
//! [`snapshot`](AgentHandle::snapshot) and then [`Update`]s, and reads back
//! [`status`](AgentHandle::status) and [`metrics`](AgentHandle::metrics). The agent
//!
//! * validates every update on entry (a bad one is rejected and changes nothing);
//! * batches updates that arrive close together into one reconciliation pass;
//! * programs nothing before the first complete snapshot;
//! * compiles policy incrementally and hands the backends the smallest change set, ACLs
//!   before routes so that a workload is reachable only once its policy is in place;
//! * resyncs periodically and on demand: reads the dataplane back and repairs drift, never
//!   touching what is right (so an agent restarted on a programmed host changes nothing);
//! * repairs drift as soon as a backend reports it ([`FibBackend::drift`],
//!   [`AclBackend::drift`]: someone else changed its routes, links or table), within
//!   milliseconds rather than at the next resync; the resync stays as the backstop;
//! * survives backend errors: retries with exponential back-off (doubling per consecutive
//!   pass that left something undone, logged when an error starts or changes), shows the
//!   error in status, and keeps the other endpoints programmed.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use calico_core::agent::Agent;
//! # use calico_core::dataplane::*;
//! # struct NoFib;
//! # #[async_trait::async_trait]
//! # impl FibBackend for NoFib {
//! #     async fn apply(&self, _: &FibChangeSet) -> Result<FibReport, BackendError> { Ok(FibReport::default()) }
//! #     async fn dump(&self) -> Result<Vec<Route>, BackendError> { Ok(vec![]) }
//! #     async fn configure_interface(&self, _: &str, _: InterfaceSettings) -> Result<(), BackendError> { Ok(()) }
//! # }
//! let agent = Agent::builder().node("host-a").fib(Arc::new(NoFib)).start().unwrap();
//! let handle = agent.handle();
//! handle.snapshot(vec![]).await.unwrap();
//! handle.flush().await;
//! assert!(handle.status().in_sync);
//! agent.shutdown().await;
//! # });
//! ```

mod engine;
mod metrics;
mod status;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::dataplane::ir::Ruleset;
use crate::dataplane::{AclBackend, BgpBackend, FibBackend, InterfaceAddresses};
use crate::model::{Model, Resource, Update, ValidationError};

pub use metrics::{Histogram, Metrics, LATENCY_BUCKETS};
pub use status::{AgentStatus, BackendHealth, EndpointState, EndpointStatus};

/// Why the agent could not be built or could not take a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A required builder setting is missing.
    #[error("agent builder: {0} is required")]
    Missing(&'static str),
    /// The update was invalid; nothing changed.
    #[error("update rejected: {0}")]
    Invalid(#[from] ValidationError),
    /// The agent has stopped.
    #[error("the agent has stopped")]
    Stopped,
    /// `start` was called outside a tokio runtime.
    #[error("the agent must be started inside a tokio runtime")]
    NoRuntime,
}

/// Timing settings of the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long to wait for more updates after one arrives before reconciling. Updates
    /// already queued are always folded into one pass, so under load batching happens
    /// without any wait (updates pile up while a pass runs); a window trades latency for
    /// fewer passes when updates trickle in.
    pub batch_window: Duration,
    /// Longest adaptive wait: updates that arrive within a pass's duration after it ended
    /// are folded together for that long (at most this), so that a steady feed of single
    /// updates is reconciled in passes that grow with the cost of a pass, not one pass per
    /// update each rewriting what the last one wrote. An idle agent adds no wait.
    pub max_batch_delay: Duration,
    /// Upper bound on requests (an update, or a group given to [`AgentHandle::apply`])
    /// folded into one pass.
    pub max_batch: usize,
    /// Interval between periodic resyncs.
    pub resync_interval: Duration,
    /// First retry delay after a backend error; doubles per consecutive failure.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            batch_window: Duration::ZERO,
            max_batch_delay: Duration::from_millis(250),
            max_batch: 100_000,
            resync_interval: Duration::from_secs(30),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Builds an [`Agent`].
#[derive(Default)]
pub struct AgentBuilder {
    node: Option<String>,
    fib: Option<Arc<dyn FibBackend>>,
    acl: Option<Arc<dyn AclBackend>>,
    bgp: Option<Arc<dyn BgpBackend>>,
    timing: Timing,
    keep_remote_routes: Option<Duration>,
    flow_logs: Option<crate::compile::FlowLogConfig>,
    host: crate::compile::HostConfig,
    spoofing: bool,
    floating_ips: bool,
}

impl AgentBuilder {
    /// The name of the node (host) this agent programs. Required.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// The FIB backend. Required.
    pub fn fib(mut self, fib: Arc<dyn FibBackend>) -> Self {
        self.fib = Some(fib);
        self
    }

    /// The ACL backend. Optional only for hosts that route but enforce no policy; a
    /// production host always sets one.
    pub fn acl(mut self, acl: Arc<dyn AclBackend>) -> Self {
        self.acl = Some(acl);
        self
    }

    /// The BGP backend. Optional: without one, no routes are exported or learned.
    pub fn bgp(mut self, bgp: Arc<dyn BgpBackend>) -> Self {
        self.bgp = Some(bgp);
        self
    }

    /// Timing settings (batching, resync, retry).
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// For an agent started after a restart with its forwarding state preserved (RFC 4724,
    /// the BGP backend told it is restarting): remote routes (to other hosts, learned over
    /// BGP by the previous run) already in the FIB stay there, even those not learned
    /// again yet, until BGP has converged — every configured peer established and its
    /// End-of-RIB received ([`crate::dataplane::PeerStatus::end_of_rib_received`]) — or
    /// `at_most` has passed since the start, whichever comes first. Then the routes no peer
    /// announced again are removed. Without this, the first pass would remove them all
    /// (the new BGP backend has learned nothing yet) and traffic to other hosts would stop
    /// until the sessions are back. Off by default.
    pub fn keep_remote_routes_until_bgp_converged(mut self, at_most: Duration) -> Self {
        self.keep_remote_routes = Some(at_most);
        self
    }

    /// Flow logs: the compiled rules report verdicts to a netlink log group (see
    /// [`crate::compile::FlowLogConfig`]). Off by default.
    pub fn flow_logs(mut self, flow_logs: crate::compile::FlowLogConfig) -> Self {
        self.flow_logs = Some(flow_logs);
        self
    }

    /// The host's own protection (see [`crate::compile::HostConfig`]): what happens to
    /// workload → host traffic, the failsafe ports host-endpoint policy cannot close.
    /// Felix's defaults unless set.
    pub fn host_protection(mut self, host: crate::compile::HostConfig) -> Self {
        self.host = host;
        self
    }

    /// Lets workloads send from the networks their endpoints list in
    /// `allowSpoofedSourcePrefixes` (Felix's `WorkloadSourceSpoofing: Any`): the ACLs
    /// accept those sources and the kernel's reverse-path filter is turned off on their
    /// interfaces. Off by default: such sources are dropped as any spoofed one.
    pub fn workload_source_spoofing(mut self, allow: bool) -> Self {
        self.spoofing = allow;
        self
    }

    /// Puts workloads' floating IPs (`ipNATs`) in effect (Felix's `FloatingIPs: Enabled`):
    /// their 1:1 NAT, their routes to the workloads' interfaces and their BGP exports. Off by
    /// default, as in Felix; an OpenStack endpoint's floating IPs are in effect either way.
    pub fn floating_ips(mut self, enabled: bool) -> Self {
        self.floating_ips = enabled;
        self
    }

    /// Starts the agent on the current tokio runtime.
    pub fn start(self) -> Result<Agent, AgentError> {
        let node = self.node.ok_or(AgentError::Missing("node"))?;
        let fib = self.fib.ok_or(AgentError::Missing("fib"))?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        let (tx, rx) = mpsc::channel(4096);
        let (status_tx, status_rx) = watch::channel(AgentStatus::default());
        let metrics = Arc::new(Mutex::new(Metrics::default()));
        let engine = engine::Engine::new(
            node,
            fib,
            self.acl,
            self.bgp,
            self.timing,
            status_tx,
            metrics.clone(),
        )
        .keep_remote_routes(self.keep_remote_routes)
        .configure(self.flow_logs, self.host, self.spoofing, self.floating_ips);
        let task = runtime.spawn(engine.run(rx));
        Ok(Agent {
            handle: AgentHandle {
                tx,
                status: status_rx,
                metrics,
            },
            task,
        })
    }
}

/// A running agent. Dropping it does not stop it; call [`Agent::shutdown`].
pub struct Agent {
    handle: AgentHandle,
    task: JoinHandle<()>,
}

impl Agent {
    /// A builder.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// A handle to feed and query the agent; cheap to clone.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// Stops the agent after the pass in progress. The dataplane is left as programmed, so a
    /// restarted agent adopts it without disturbing traffic.
    pub async fn shutdown(self) {
        let _ = self.handle.tx.send(engine::Command::Stop).await;
        let _ = self.task.await;
    }
}

/// The agent's compiled state, as [`AgentHandle::compiled`] reads it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Compiled {
    /// Counts the changes of what the rules are compiled from (the model, the agent's
    /// settings, the interface addresses): equal revisions, equal contents
    /// ([`AgentHandle::compiled_since`]).
    pub revision: u64,
    /// The desired state the rules were compiled from.
    pub model: Arc<Model>,
    /// The rules, as the agent programs them (or will, in its next pass).
    pub ruleset: Arc<Ruleset>,
    /// The interface addresses the rules were compiled with: they place the host endpoints
    /// without an `interfaceName` (see [`crate::compile::describe_with_interfaces`]).
    pub interface_addresses: InterfaceAddresses,
}

/// Feeds and queries a running [`Agent`].
#[derive(Clone)]
pub struct AgentHandle {
    tx: mpsc::Sender<engine::Command>,
    status: watch::Receiver<AgentStatus>,
    metrics: Arc<Mutex<Metrics>>,
}

impl AgentHandle {
    /// Sends one update. It is validated here: an invalid one is returned as an error and the
    /// agent's state is unchanged.
    pub async fn update(&self, update: Update) -> Result<(), AgentError> {
        self.check(&update)?;
        self.send(engine::Command::Update(Box::new(update))).await
    }

    /// Applies a group of updates as one change, reconciled in one pass (a directory of
    /// files re-read, a transaction of the orchestrator). Every upsert is validated first:
    /// if one is invalid, the error names it and none of the group is applied. Feeding a
    /// large change this way costs one compile and one dataplane transaction, where the
    /// same updates sent one by one may each be reconciled on their own.
    pub async fn apply(&self, updates: Vec<Update>) -> Result<(), AgentError> {
        for update in &updates {
            self.check(update)?;
        }
        self.send(engine::Command::Batch(updates)).await
    }

    /// Replaces the whole desired state and marks the agent in sync: programming starts (or,
    /// for a running agent, converges on the new state). Every resource is validated first;
    /// if one is invalid, nothing changes.
    pub async fn snapshot(&self, resources: Vec<Resource>) -> Result<(), AgentError> {
        let model = crate::model::Model::from_resources(resources)
            .inspect_err(|_| self.count_rejected())?;
        self.send(engine::Command::Snapshot(Box::new(model))).await
    }

    /// Asks for a resync now: the dataplane is read back and drift repaired.
    pub async fn resync(&self) -> Result<(), AgentError> {
        self.send(engine::Command::Resync).await
    }

    /// Waits until every request sent before this call has been reconciled.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(engine::Command::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// A copy of the desired state: every update taken so far (those still queued behind
    /// this request are not in it). For tools that explain the agent's decisions (a policy
    /// trace, a connectivity matrix); it costs one copy of the model per call.
    pub async fn model(&self) -> Result<Arc<Model>, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.send(engine::Command::Model(tx)).await?;
        rx.await.map_err(|_| AgentError::Stopped)
    }

    /// A copy of the desired state with the rules the agent compiled from it: with its own
    /// settings (flow logs, host protection, floating IPs, ...) and the interface addresses
    /// it placed host endpoints by. For tools that name what the dataplane reports (flow
    /// logs), which must see the chains the agent programs, not those a compile of their own
    /// would make. Updates still queued behind this request are not in it; it costs one copy
    /// of the model and of the rules per call.
    pub async fn compiled(&self) -> Result<Compiled, AgentError> {
        let compiled = self.compiled_request(None).await?;
        compiled.ok_or(AgentError::Stopped)
    }

    /// [`Self::compiled`] when it has changed since `revision` (a [`Compiled::revision`]
    /// handed out before), `None` when it has not: a watcher polls it for the price of a
    /// message, not of a copy.
    pub async fn compiled_since(&self, revision: u64) -> Result<Option<Compiled>, AgentError> {
        self.compiled_request(Some(revision)).await
    }

    async fn compiled_request(&self, known: Option<u64>) -> Result<Option<Compiled>, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.send(engine::Command::Compiled(known, tx)).await?;
        rx.await.map_err(|_| AgentError::Stopped)
    }

    /// The current status.
    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    /// Waits for the status to change.
    pub async fn status_changed(&mut self) -> Result<(), AgentError> {
        self.status.changed().await.map_err(|_| AgentError::Stopped)
    }

    /// The current metrics.
    pub fn metrics(&self) -> Metrics {
        self.metrics.lock().expect("metrics lock").clone()
    }

    /// Validates an upsert; a rejection is counted in the metrics.
    fn check(&self, update: &Update) -> Result<(), AgentError> {
        if let Update::Upsert(resource) = update {
            resource.validate().inspect_err(|_| self.count_rejected())?;
        }
        Ok(())
    }

    fn count_rejected(&self) {
        self.metrics
            .lock()
            .expect("metrics lock")
            .updates_rejected_total += 1;
    }

    async fn send(&self, cmd: engine::Command) -> Result<(), AgentError> {
        self.tx.send(cmd).await.map_err(|_| AgentError::Stopped)
    }
}

#[cfg(test)]
mod bulk_tests;
#[cfg(test)]
mod tests;
