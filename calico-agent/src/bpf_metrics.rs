//! Per-interface metrics of the eBPF dataplane (`--dataplane bpf`): what each interface's
//! programs judged, accepted and dropped, from the counters they keep in the kernel
//! (`calico_ebpf::counters`). A poller reads them every few seconds, off the async
//! threads (the read waits while an apply holds the backend); a collector turns the last
//! reading into metrics at each scrape. Every series is labelled by `interface` and
//! `direction`: `ingress` for packets the host receives from the interface (a workload's
//! egress), `egress` for packets it sends into it (the workload's ingress).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calico_ebpf::backend::EbpfBackend;
use calico_ebpf::counters::{Counts, InterfaceCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// The last counters read; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct BpfMetrics(Arc<Mutex<BTreeMap<String, InterfaceCounters>>>);

impl BpfMetrics {
    /// Reads `backend`'s counters every `every` into the shared reading, until aborted.
    pub async fn poll(self, backend: Arc<EbpfBackend>, every: Duration) {
        loop {
            let b = backend.clone();
            let read = tokio::task::spawn_blocking(move || b.interface_counters_blocking()).await;
            match read {
                Ok(Ok(all)) => *self.0.lock().unwrap_or_else(|e| e.into_inner()) = all,
                Ok(Err(e)) => tracing::warn!(error = %e, "eBPF counters not read"),
                Err(e) => tracing::warn!(error = %e, "eBPF counters not read"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The last reading, by interface.
    pub fn reading(&self) -> BTreeMap<String, InterfaceCounters> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last reading as `/status` shows it: per interface, per direction, the counts.
    pub fn status_json(&self) -> serde_json::Value {
        let counts = |c: &Counts| {
            serde_json::json!({
                "packets": c.packets, "bytes": c.bytes, "accepted": c.accepted,
                "dropped": c.dropped, "malformed": c.malformed, "non_ip": c.not_ip,
            })
        };
        let all: serde_json::Map<String, serde_json::Value> = self
            .reading()
            .iter()
            .map(|(iface, c)| {
                let v =
                    serde_json::json!({"ingress": counts(&c.ingress), "egress": counts(&c.egress)});
                (iface.clone(), v)
            })
            .collect();
        serde_json::Value::Object(all)
    }
}

/// One metric family: its name, help, and which counter it shows.
type Family = (&'static str, &'static str, fn(&Counts) -> u64);

const FAMILIES: [Family; 6] = [
    (
        "calico_agent_bpf_packets",
        "IP packets the interface's eBPF program judged.",
        |c| c.packets,
    ),
    (
        "calico_agent_bpf_bytes",
        "Bytes of the IP packets the interface's eBPF program judged.",
        |c| c.bytes,
    ),
    (
        "calico_agent_bpf_accepted",
        "Packets the policy accepted.",
        |c| c.accepted,
    ),
    (
        "calico_agent_bpf_dropped",
        "Packets the policy dropped (deny rules, default deny, anti-spoofing).",
        |c| c.dropped,
    ),
    (
        "calico_agent_bpf_malformed",
        "IP packets dropped before any rule as too short or malformed.",
        |c| c.malformed,
    ),
    (
        "calico_agent_bpf_non_ip",
        "Non-IP frames (ARP, say), left alone.",
        |c| c.not_ip,
    ),
];

impl Collector for BpfMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let all = self.reading();
        for (name, help, field) in FAMILIES {
            let c = ConstCounter::new(0u64);
            let mut family = e.encode_descriptor(name, help, None, c.metric_type())?;
            for (iface, counters) in &all {
                for (direction, counts) in
                    [("ingress", &counters.ingress), ("egress", &counters.egress)]
                {
                    let labels = [("interface", iface.as_str()), ("direction", direction)];
                    ConstCounter::new(field(counts)).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn each_interface_and_direction_is_a_series() {
        let m = BpfMetrics::default();
        let counts = |packets| Counts {
            packets,
            accepted: packets - 1,
            dropped: 1,
            ..Counts::default()
        };
        m.0.lock().unwrap().insert(
            "cali1".into(),
            InterfaceCounters {
                ingress: counts(5),
                egress: counts(7),
            },
        );
        let mut r = Registry::default();
        r.register_collector(Box::new(m));
        let text = crate::metrics::render(&r);
        for line in [
            "calico_agent_bpf_packets_total{interface=\"cali1\",direction=\"ingress\"} 5",
            "calico_agent_bpf_packets_total{interface=\"cali1\",direction=\"egress\"} 7",
            "calico_agent_bpf_accepted_total{interface=\"cali1\",direction=\"egress\"} 6",
            "calico_agent_bpf_dropped_total{interface=\"cali1\",direction=\"ingress\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
