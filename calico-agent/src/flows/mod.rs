//! Flow logs: the packets the kernel logs to the netlink log group (see
//! [`calico_core::compile::FlowLogConfig`]) aggregated into [`FlowRecord`]s per interval,
//! named by policy and rule, and exported: the recent records over HTTP (`GET /flows`, JSON
//! lines), per-policy Prometheus counters, and a JSON-lines file.

mod aggregate;
mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calico_core::compile::LogVerdict;
use calico_linux::flowlog::FlowLogReader;
use hyper::body::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, Semaphore};
use tracing::warn;

pub use aggregate::{append_to_file, json_lines, Aggregator, RecentFlows};
pub use record::{FlowRecord, Namer};

/// Settings of the flow logs (`--flow-log-*`).
#[derive(Clone, Debug)]
pub struct FlowSettings {
    /// The netlink log group.
    pub group: u16,
    /// The aggregation interval.
    pub interval: Duration,
    /// Distinct flows counted per interval at most.
    pub max_flows: usize,
    /// Records kept for `GET /flows`.
    pub recent: usize,
    /// The file records are appended to, if any.
    pub file: Option<std::path::PathBuf>,
}

/// Labels of the per-policy counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// The deciding policy, profile or endpoint by name.
    pub policy: String,
    /// `allow` or `deny`.
    pub verdict: String,
}

/// Labels of the staged-policy counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StagedLabels {
    /// The staged policy (`staged:<name>`, namespaced as `<namespace>/staged:<name>`).
    pub policy: String,
    /// Its tier.
    pub tier: String,
}

/// The flow-log metrics.
#[derive(Clone, Debug, Default)]
pub struct FlowMetrics {
    /// Packets logged, per deciding policy and verdict.
    pub packets: Family<PolicyLabels, Counter>,
    /// Packets staged policies would have denied, per staged policy.
    pub staged_denied: Family<StagedLabels, Counter>,
    /// Packets of flows not recorded because the interval's table was full.
    pub dropped: Counter,
    /// Allowed first packets the rules replayed do not allow (not recorded).
    pub unattributed: Counter,
}

impl FlowMetrics {
    /// Registers the metrics.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "calico_agent_flow_log_packets",
            "Packets logged by the ACLs, by deciding policy and verdict (allowed: one per connection; denied: rate-limited).",
            self.packets.clone(),
        );
        r.register(
            "calico_agent_staged_policy_denied_packets",
            "Packets a staged policy would have denied, had it been enforced (a connection's first packet; by rule or at the end of its tier), by staged policy. Nothing is denied: staged policies are not enforced.",
            self.staged_denied.clone(),
        );
        r.register(
            "calico_agent_flow_log_unattributed_packets",
            "Connections' first packets the kernel allowed and logged but the rules the agent replays them through do not allow (not recorded): the rules changed in between, or the kernel's table drifted from them (calico-rs trace shows which).",
            self.unattributed.clone(),
        );
        r.register(
            "calico_agent_flow_log_dropped_packets",
            "Logged packets of flows not recorded because --flow-log-max-flows were already recorded in the interval.",
            self.dropped.clone(),
        );
    }
}

impl FlowMetrics {
    /// Counts one logged packet's decision.
    fn count(&self, d: &record::Decision) {
        let verdict = match d.verdict {
            LogVerdict::Allow => "allow",
            LogVerdict::Deny => "deny",
            LogVerdict::StagedDeny => {
                let labels = StagedLabels {
                    policy: d.policy.clone(),
                    tier: d.tier.clone(),
                };
                self.staged_denied.get_or_create(&labels).inc();
                return;
            }
        };
        let labels = PolicyLabels {
            policy: d.policy.clone(),
            verdict: verdict.into(),
        };
        self.packets.get_or_create(&labels).inc();
    }
}

/// What the HTTP server and `/status` read.
#[derive(Debug)]
pub struct FlowState {
    /// The recent records.
    pub recent: Mutex<RecentFlows>,
    /// Naming of the current model and ruleset (replaced by the agent on change).
    pub namer: Mutex<Arc<Namer>>,
    /// Flows recorded so far.
    pub recorded: std::sync::atomic::AtomicU64,
    /// Each interval's records as JSON lines, for the clients that follow.
    live: broadcast::Sender<Bytes>,
    /// Clients that may follow at once.
    pub followers: Arc<Semaphore>,
}

/// Intervals' records a follower may fall behind by before its stream ends.
const FOLLOW_BACKLOG: usize = 16;

impl FlowState {
    /// No records yet; `recent` kept for `GET /flows`, at most `followers` clients
    /// following at once.
    pub fn new(recent: usize, followers: usize) -> FlowState {
        FlowState {
            recent: Mutex::new(RecentFlows::new(recent)),
            namer: Mutex::new(Arc::new(Namer::default())),
            recorded: Default::default(),
            live: broadcast::channel(FOLLOW_BACKLOG).0,
            followers: Arc::new(Semaphore::new(followers)),
        }
    }

    /// Adds an interval's records: to the recent ones, and to every follower's stream.
    pub fn publish(&self, records: &[FlowRecord]) {
        if records.is_empty() {
            return;
        }
        let lines = Bytes::from(json_lines(records.iter()));
        let mut recent = self.recent();
        recent.extend(records);
        // Under the lock, so that a new follower sees each record exactly once.
        let _ = self.live.send(lines);
    }

    /// The recent records as JSON lines.
    pub fn recent_lines(&self) -> String {
        self.recent().json_lines()
    }

    /// The recent records as JSON lines, and the records published from then on.
    pub fn follow(&self) -> (String, broadcast::Receiver<Bytes>) {
        let recent = self.recent();
        (recent.json_lines(), self.live.subscribe())
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentFlows> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads `reader` until `stop`, aggregating per `settings.interval` into `state`,
/// `metrics` and the file. Blocking: run it on its own thread.
pub fn run(
    mut reader: FlowLogReader,
    settings: &FlowSettings,
    state: &FlowState,
    metrics: &FlowMetrics,
    stop: &AtomicBool,
) {
    let mut agg = Aggregator::new(settings.max_flows);
    let mut next_flush = Instant::now() + settings.interval;
    let (mut dropped_seen, mut unattributed_seen) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let packets = match reader.recv() {
            Ok((packets, _errors)) => packets,
            Err(e) => {
                warn!(error = %e, "flow logs: reading the log group failed; flow logs stop");
                return;
            }
        };
        let namer = state.namer.lock().map(|n| n.clone()).unwrap_or_default();
        let now = now_ms();
        let iface = |i| reader.interface_name(i);
        for p in &packets {
            for d in agg.add(&namer, p, &iface, now) {
                metrics.count(&d);
            }
        }
        metrics.dropped.inc_by(agg.dropped_packets - dropped_seen);
        dropped_seen = agg.dropped_packets;
        metrics
            .unattributed
            .inc_by(agg.unattributed - unattributed_seen);
        unattributed_seen = agg.unattributed;
        if Instant::now() >= next_flush {
            next_flush = Instant::now() + settings.interval;
            let records = agg.flush(&namer);
            state
                .recorded
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            if let Some(path) = &settings.file {
                if let Err(e) = append_to_file(path, &records) {
                    warn!(error = %e, path = %path.display(), "flow logs: cannot append to the file");
                }
            }
            state.publish(&records);
        }
    }
}

#[cfg(test)]
mod tests;
