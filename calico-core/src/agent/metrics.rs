//! Prometheus-style metrics of the agent: counters and an apply-latency histogram, rendered in
//! the Prometheus text exposition format.

use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds (seconds) of the apply-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A cumulative latency histogram with fixed buckets ([`LATENCY_BUCKETS`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each bucket bound (same order as [`LATENCY_BUCKETS`]).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    /// Number of observations.
    pub count: u64,
    /// Sum of all observations, seconds.
    pub sum: f64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if s <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }
}

/// Everything the agent counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Updates accepted from the orchestrator.
    pub updates_total: u64,
    /// Updates rejected by validation.
    pub updates_rejected_total: u64,
    /// Reconciliation passes run.
    pub reconciles_total: u64,
    /// Change sets a backend failed to apply.
    pub apply_errors_total: u64,
    /// Resyncs run (periodic and on demand).
    pub resyncs_total: u64,
    /// Drifted items a resync found and repaired (routes and ACL objects).
    pub resync_repairs_total: u64,
    /// Passes run because a backend reported drift (someone else changed its state).
    pub drift_passes_total: u64,
    /// Drifted items repaired by those passes (routes and ACL changes).
    pub drift_repairs_total: u64,
    /// Routes currently programmed by the agent.
    pub routes_programmed: u64,
    /// Local endpoints known.
    pub local_endpoints: u64,
    /// Time from the start of a reconciliation pass to the backends' acknowledgement.
    pub apply_latency: Histogram,
}

impl Metrics {
    /// Renders the metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, u64); 8] = [
            (
                "calico_updates_total",
                "Updates accepted from the orchestrator.",
                self.updates_total,
            ),
            (
                "calico_updates_rejected_total",
                "Updates rejected by validation.",
                self.updates_rejected_total,
            ),
            (
                "calico_reconciles_total",
                "Reconciliation passes run.",
                self.reconciles_total,
            ),
            (
                "calico_apply_errors_total",
                "Change sets a backend failed to apply.",
                self.apply_errors_total,
            ),
            ("calico_resyncs_total", "Resyncs run.", self.resyncs_total),
            (
                "calico_resync_repairs_total",
                "Drifted items repaired by resync.",
                self.resync_repairs_total,
            ),
            (
                "calico_drift_passes_total",
                "Passes run because a backend reported drift.",
                self.drift_passes_total,
            ),
            (
                "calico_drift_repairs_total",
                "Drifted items repaired as soon as a backend reported drift.",
                self.drift_repairs_total,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let gauges: [(&str, &str, u64); 2] = [
            (
                "calico_routes_programmed",
                "Routes programmed by the agent.",
                self.routes_programmed,
            ),
            (
                "calico_local_endpoints",
                "Local workload endpoints.",
                self.local_endpoints,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let name = "calico_apply_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to apply a reconciliation pass.\n# TYPE {name} histogram"
        );
        for (count, bound) in self.apply_latency.buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let h = &self.apply_latency;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], 1, "0.5 ms bucket");
        assert_eq!(h.buckets[3], 2, "5 ms bucket");
        assert_eq!(
            h.buckets[LATENCY_BUCKETS.len() - 1],
            2,
            "10 s is above every bound"
        );
    }

    #[test]
    fn prometheus_text_has_every_series() {
        let m = Metrics {
            updates_total: 7,
            resync_repairs_total: 2,
            ..Default::default()
        };
        let text = m.to_prometheus();
        assert!(text.contains("calico_updates_total 7\n"));
        assert!(text.contains("calico_resync_repairs_total 2\n"));
        assert!(text.contains("# TYPE calico_apply_latency_seconds histogram"));
        assert!(text.contains("calico_apply_latency_seconds_bucket{le=\"+Inf\"} 0"));
    }
}
