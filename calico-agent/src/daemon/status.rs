//! What the HTTP server shows: `/status` as JSON (the agent's endpoints, peers and backends,
//! the datastore followed, and the resource directory's files), Felix-style `/liveness` and
//! `/readiness`, and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calico_core::agent::{AgentHandle, AgentStatus, BackendHealth, EndpointState};
use calico_core::datastore::follow::FollowStatus;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

use crate::http::{Page, Pages};
use crate::resource_dir::{FileStatus, HeldDeletion};

/// The resource directory as last read, for `/status` and `/readiness`.
#[derive(Clone, Debug, Default)]
pub struct DirView {
    /// Each file's state.
    pub files: Vec<FileStatus>,
    /// Removals held by the deletion guard.
    pub held: Option<HeldDeletion>,
    /// Why the directory could not be read, if it could not.
    pub error: Option<String>,
}

/// State the daemon's loop shares with the HTTP server.
#[derive(Debug)]
pub struct Shared {
    /// The resource directory (empty with another datastore).
    pub dir: Arc<Mutex<DirView>>,
    /// When the daemon's loop last went round.
    pub heartbeat: Mutex<Instant>,
    /// The last datastore revision whose changes the agent has reconciled.
    pub programmed_revision: Arc<AtomicU64>,
}

impl Shared {
    /// A fresh state.
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            dir: Arc::default(),
            heartbeat: Mutex::new(Instant::now()),
            programmed_revision: Arc::default(),
        })
    }

    /// Records that the loop is alive.
    pub fn beat(&self) {
        *lock(&self.heartbeat) = Instant::now();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these small locks leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The daemon's pages.
pub struct DaemonPages {
    /// The agent.
    pub handle: AgentHandle,
    /// The loop's shared state.
    pub shared: Arc<Shared>,
    /// How following the datastore stands.
    pub follow: tokio::sync::watch::Receiver<FollowStatus>,
    /// The metrics registry.
    pub registry: Registry,
    /// `/liveness` fails when the loop has not gone round for this long.
    pub liveness_limit: Duration,
    /// The API and the page (`/`, `/api/...`).
    pub api: super::api::Api,
    /// The flow logs' records and metrics (`--flow-logs`), for `/flows` and `/status`.
    pub flows: Option<(Arc<crate::flows::FlowState>, crate::flows::FlowMetrics)>,
    /// The eBPF programs' per-interface counters (`--dataplane bpf`), for `/status`.
    pub bpf: Option<crate::bpf_metrics::BpfMetrics>,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

#[async_trait::async_trait]
impl Pages for DaemonPages {
    async fn get(&self, path: &str, query: &str) -> Option<Page> {
        if path == "/flows" {
            return Some(match &self.flows {
                Some((state, _)) => super::flowlogs::page(state, query),
                None => Page::with_status(
                    hyper::StatusCode::NOT_FOUND,
                    TEXT,
                    "flow logs are off (--flow-logs)\n".into(),
                ),
            });
        }
        match self.api.get(path, query).await {
            Some(page) => Some(page),
            None => self.page(path),
        }
    }

    fn page(&self, path: &str) -> Option<Page> {
        Some(match path {
            "/metrics" => Page::ok(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                crate::metrics::render(&self.registry),
            ),
            "/status" => Page::ok(JSON, format!("{:#}\n", self.status_json())),
            "/liveness" => health(self.liveness()),
            "/readiness" => health(self.readiness()),
            _ => return None,
        })
    }
}

fn health(problems: Vec<String>) -> Page {
    if problems.is_empty() {
        Page::ok(TEXT, "ok\n".into())
    } else {
        Page::with_status(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            problems.join("\n") + "\n",
        )
    }
}

impl DaemonPages {
    fn liveness(&self) -> Vec<String> {
        let idle = lock(&self.shared.heartbeat).elapsed();
        if idle > self.liveness_limit {
            vec![format!(
                "the daemon's loop has not run for {} s",
                idle.as_secs()
            )]
        } else {
            vec![]
        }
    }

    /// Ready: the datastore is followed (first snapshot in, reachable now), the agent is
    /// in sync, every backend's last action succeeded, every resource file is in force and
    /// no removal is held. An entry refused in a cluster datastore is shown in `/status`
    /// and counted, but does not make this host unready: it is the same on every host.
    fn readiness(&self) -> Vec<String> {
        let s = self.handle.status();
        let dir = lock(&self.shared.dir).clone();
        let follow = self.follow.borrow().clone();
        let mut problems = Vec::new();
        if let Some(why) = follow.not_ready_reason() {
            problems.push(why);
        } else if !s.in_sync {
            problems.push("the agent is not in sync yet".into());
        }
        for (name, h) in backends(&s) {
            if let Some(e) = &h.last_error {
                problems.push(format!("backend {name}: {e}"));
            }
        }
        for f in dir.files.iter().filter(|f| f.state == "rejected") {
            problems.push(format!(
                "resource file {}: {}",
                f.name,
                f.error.as_deref().unwrap_or("")
            ));
        }
        if let Some(h) = dir.held {
            problems.push(format!(
                "{} of {} resources removed from the directory, removal held",
                h.resources, h.of
            ));
        }
        if let Some(e) = dir.error {
            problems.push(e);
        }
        problems
    }

    fn status_json(&self) -> Value {
        let s = self.handle.status();
        let dir = lock(&self.shared.dir).clone();
        let follow = self.follow.borrow().clone();
        let backends: serde_json::Map<String, Value> = backends(&s)
            .into_iter()
            .map(|(n, h)| {
                (
                    n.to_string(),
                    json!({"ok": h.last_error.is_none(), "last_error": h.last_error}),
                )
            })
            .collect();
        json!({
            "in_sync": s.in_sync,
            "ready": self.readiness().is_empty(),
            "backends": backends,
            "endpoints": s.endpoints.iter().map(|(id, ep)| {
                let (state, error) = match &ep.state {
                    EndpointState::Pending => ("pending", None),
                    EndpointState::WaitingForInterface => ("waiting for interface", None),
                    EndpointState::Programmed => ("programmed", None),
                    EndpointState::Error(e) => ("error", Some(e.clone())),
                    _ => ("unknown", None),
                };
                json!({"orchestrator": id.orchestrator, "workload": id.workload, "endpoint": id.endpoint,
                       "interface": ep.interface, "state": state, "error": error})
            }).collect::<Vec<_>>(),
            "peers": s.peers.iter().map(|p| json!({
                "address": p.address.to_string(), "state": format!("{:?}", p.state),
                "prefixes_received": p.prefixes_received, "end_of_rib_received": p.end_of_rib_received,
                "last_error": p.last_error,
            })).collect::<Vec<_>>(),
            "notes": s.notes,
            "datastore": {
                "source": follow.source,
                "ready": follow.ready(),
                "snapshot_loaded": follow.snapshot_loaded,
                "revision": follow.revision,
                "programmed_revision": self.shared.programmed_revision.load(Ordering::Relaxed),
                "unavailable": follow.unavailable,
                "refused": follow.refused,
                "snapshots": follow.snapshots,
                "change_groups": follow.change_groups,
            },
            "flow_logs": super::flowlogs::status(
                self.flows.as_ref().map(|f| &*f.0),
                self.flows.as_ref().map(|f| &f.1),
            ),
            "resource_dir": {
                "files": dir.files,
                "held_deletion": dir.held,
                "error": dir.error,
            },
            "bpf_interfaces": self.bpf.as_ref().map(|b| b.status_json()),
        })
    }
}

fn backends(s: &AgentStatus) -> [(&'static str, &BackendHealth); 3] {
    [("fib", &s.fib), ("acl", &s.acl), ("bgp", &s.bgp)]
}
