//! The Prometheus registry (prometheus-client): the agent's own counters, read at each
//! scrape, and the daemon's (resource files, held deletions, HTTP).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use calico_core::agent::{AgentHandle, LATENCY_BUCKETS};
use calico_core::datastore::follow::FollowStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// The daemon's own metrics; cheap to clone (the values are shared).
#[derive(Clone, Debug, Default)]
pub struct DaemonMetrics {
    /// Resource file versions refused (parse errors, duplicates, unreadable files).
    pub file_rejections: Counter,
    /// Resource files whose current content is refused.
    pub files_rejected: Gauge,
    /// Resource removals held by the deletion guard.
    pub deletions_held: Gauge,
    /// Reads of the resource directory.
    pub dir_reads: Counter,
    /// Reads of the resource directory that failed as a whole.
    pub dir_read_errors: Counter,
    /// HTTP connections refused or closed for being idle or slow.
    pub http_connections_dropped: Counter,
}

/// Reads the agent's metrics at each scrape.
struct AgentCollector(AgentHandle);

impl fmt::Debug for AgentCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentCollector")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for AgentCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let m = self.0.metrics();
        // Counters are named without `_total`: the encoder appends it.
        counter(
            &mut e,
            "calico_updates",
            "Updates accepted from the orchestrator.",
            m.updates_total,
        )?;
        counter(
            &mut e,
            "calico_updates_rejected",
            "Updates rejected by validation.",
            m.updates_rejected_total,
        )?;
        counter(
            &mut e,
            "calico_reconciles",
            "Reconciliation passes run.",
            m.reconciles_total,
        )?;
        counter(
            &mut e,
            "calico_apply_errors",
            "Change sets a backend failed to apply.",
            m.apply_errors_total,
        )?;
        counter(&mut e, "calico_resyncs", "Resyncs run.", m.resyncs_total)?;
        counter(
            &mut e,
            "calico_resync_repairs",
            "Drifted items repaired.",
            m.resync_repairs_total,
        )?;
        gauge(
            &mut e,
            "calico_routes_programmed",
            "Routes programmed by the agent.",
            m.routes_programmed,
        )?;
        gauge(
            &mut e,
            "calico_local_endpoints",
            "Local workload endpoints.",
            m.local_endpoints,
        )?;
        let h = &m.apply_latency;
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .zip(h.buckets)
            .map(|(bound, cumulative)| {
                let n = cumulative.saturating_sub(below);
                below = cumulative;
                (*bound, n)
            })
            .collect();
        buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
        e.encode_descriptor(
            "calico_apply_latency_seconds",
            "Time to apply a reconciliation pass.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
    }
}

/// Reads how following the datastore stands at each scrape.
struct FollowCollector(watch::Receiver<FollowStatus>, Arc<AtomicU64>);

impl fmt::Debug for FollowCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FollowCollector")
    }
}

impl Collector for FollowCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = self.0.borrow().clone();
        gauge(
            &mut e,
            "calico_agent_datastore_ready",
            "1 when the first snapshot is in and the datastore is reachable, else 0.",
            u64::from(s.ready()),
        )?;
        gauge(
            &mut e,
            "calico_agent_datastore_revision",
            "The last datastore revision handed to the agent.",
            s.revision,
        )?;
        gauge(
            &mut e,
            "calico_agent_datastore_programmed_revision",
            "The last datastore revision whose changes are reconciled into the dataplane.",
            self.1.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut e,
            "calico_agent_datastore_entries_refused",
            "Datastore entries refused now (bad value, wrong kind, failed validation, duplicate).",
            s.refused.len() as u64,
        )?;
        counter(
            &mut e,
            "calico_agent_datastore_refusals",
            "Datastore entry versions refused.",
            s.refusals_total,
        )?;
        counter(
            &mut e,
            "calico_agent_datastore_snapshots",
            "Full snapshots handed to the agent (the first, then one per lost history).",
            s.snapshots,
        )
    }
}

/// The registry: the agent's metrics (read from `handle` at each scrape), how the
/// datastore is followed (`follow`, and the revision reconciled, `programmed`) and
/// `daemon`'s.
pub fn registry(
    handle: AgentHandle,
    daemon: &DaemonMetrics,
    follow: watch::Receiver<FollowStatus>,
    programmed: Arc<AtomicU64>,
) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(AgentCollector(handle)));
    r.register_collector(Box::new(FollowCollector(follow, programmed)));
    let counters = [
        (
            "calico_agent_resource_file_rejections",
            "Resource file versions refused (parse errors, duplicate resources, unreadable files).",
            &daemon.file_rejections,
        ),
        (
            "calico_agent_resource_dir_reads",
            "Reads of the resource directory.",
            &daemon.dir_reads,
        ),
        (
            "calico_agent_resource_dir_read_errors",
            "Reads of the resource directory that failed as a whole.",
            &daemon.dir_read_errors,
        ),
        (
            "calico_agent_http_connections_dropped",
            "HTTP connections closed for being idle or slow.",
            &daemon.http_connections_dropped,
        ),
    ];
    for (name, help, c) in counters {
        r.register(name, help, c.clone());
    }
    let gauges = [
        (
            "calico_agent_resource_files_rejected",
            "Resource files whose current content is refused (their last good version is in force).",
            &daemon.files_rejected,
        ),
        (
            "calico_agent_deletions_held",
            "Resource removals held by the deletion guard until confirmed.",
            &daemon.deletions_held,
        ),
    ];
    for (name, help, g) in gauges {
        r.register(name, help, g.clone());
    }
    r
}

/// The registry in the OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
