//! Per-peer BGP metrics: a poller reads the BGP backend's peer status every few seconds,
//! and a collector turns the last reading into metrics at each scrape (what Calico users
//! otherwise run a `bird_exporter` sidecar for). Every series is labelled by `peer`, the
//! peer's address; counters a backend cannot tell (BIRD has no UPDATE counts) are left out.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use calico_core::dataplane::{BgpBackend, PeerState, PeerStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The last peer status read; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics(Arc<Mutex<Vec<PeerStatus>>>);

impl PeerMetrics {
    /// Reads `bgp`'s peer status every `every` into the shared reading, until aborted or
    /// until the backend is dropped. Holds the backend only while reading, so that its
    /// owner can take it back (the native speaker must be the last holder to close its
    /// sessions gracefully).
    pub async fn poll(self, bgp: std::sync::Weak<dyn BgpBackend>, every: Duration) {
        loop {
            let Some(backend) = bgp.upgrade() else { return };
            let read = backend.peer_status().await;
            drop(backend);
            match read {
                Ok(peers) => *self.0.lock().unwrap_or_else(|e| e.into_inner()) = peers,
                Err(e) => tracing::debug!(error = %e, "peer status for metrics not read"),
            }
            tokio::time::sleep(every).await;
        }
    }

    fn reading(&self) -> Vec<PeerStatus> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Collector for PeerMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let peers = self.reading();
        let now = SystemTime::now();
        let series = |f: &dyn Fn(&PeerStatus) -> Option<u64>| -> Vec<(String, u64)> {
            peers
                .iter()
                .filter_map(|p| Some((p.address.to_string(), f(p)?)))
                .collect()
        };
        let up = |p: &PeerStatus| Some(u64::from(p.state == PeerState::Established));
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_up",
            "1 when the session is established.",
            series(&up),
            gauge,
        )?;
        let uptime = |p: &PeerStatus| {
            let since = p.counters.established_since?;
            Some(now.duration_since(since).unwrap_or_default().as_secs())
        };
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_uptime_seconds",
            "Seconds since the session was established (absent when it is not).",
            series(&uptime),
            gauge,
        )?;
        let received = |p: &PeerStatus| Some(p.prefixes_received as u64);
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_prefixes_received",
            "Prefixes accepted from the peer.",
            series(&received),
            gauge,
        )?;
        let advertised = |p: &PeerStatus| p.counters.prefixes_advertised.map(|n| n as u64);
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_prefixes_advertised",
            "Prefixes advertised to the peer.",
            series(&advertised),
            gauge,
        )?;
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_flaps",
            "Established sessions that ended.",
            series(&|p| p.counters.flaps),
            counter,
        )?;
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_updates_received",
            "UPDATE messages received.",
            series(&|p| p.counters.updates_received),
            counter,
        )?;
        per_peer(
            &mut e,
            "calico_agent_bgp_peer_updates_sent",
            "UPDATE messages sent.",
            series(&|p| p.counters.updates_sent),
            counter,
        )?;
        info(&mut e, &peers)
    }
}

/// One metric family with a series per peer, each value made into a metric by `metric`
/// (a gauge or a counter).
fn per_peer<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(String, u64)>,
    metric: impl Fn(u64) -> M,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, metric(0).metric_type())?;
    for (peer, v) in series {
        let labels = vec![("peer", peer)];
        metric(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

fn counter(v: u64) -> ConstCounter {
    ConstCounter::new(v)
}

/// `calico_agent_bgp_peer_info{peer, state, last_error} 1`: the FSM state and last error
/// as labels (one series per peer).
fn info(e: &mut DescriptorEncoder, peers: &[PeerStatus]) -> fmt::Result {
    let g = ConstGauge::new(1i64);
    let help = "The session's FSM state and last error, as labels; always 1.";
    let mut family =
        e.encode_descriptor("calico_agent_bgp_peer_info", help, None, g.metric_type())?;
    for p in peers {
        let labels = vec![
            ("peer", p.address.to_string()),
            ("state", format!("{:?}", p.state)),
            ("last_error", p.last_error.clone().unwrap_or_default()),
        ];
        ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use calico_core::dataplane::PeerCounters;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn every_series_is_labelled_by_peer_and_unknowns_are_left_out() {
        let m = PeerMetrics::default();
        *m.0.lock().unwrap() = vec![
            PeerStatus {
                address: "192.0.2.2".parse().unwrap(),
                state: PeerState::Established,
                prefixes_received: 7,
                end_of_rib_received: true,
                last_error: None,
                counters: PeerCounters {
                    established_since: Some(SystemTime::now() - Duration::from_secs(30)),
                    flaps: Some(2),
                    updates_received: Some(9),
                    updates_sent: Some(4),
                    prefixes_advertised: None,
                },
            },
            PeerStatus {
                address: "fd00::2".parse().unwrap(),
                state: PeerState::Active,
                prefixes_received: 0,
                end_of_rib_received: false,
                last_error: Some("BFD session down".into()),
                counters: PeerCounters::default(),
            },
        ];
        let mut r = Registry::default();
        r.register_collector(Box::new(m));
        let text = crate::metrics::render(&r);
        for want in [
            "calico_agent_bgp_peer_up{peer=\"192.0.2.2\"} 1",
            "calico_agent_bgp_peer_up{peer=\"fd00::2\"} 0",
            "calico_agent_bgp_peer_uptime_seconds{peer=\"192.0.2.2\"} 30",
            "calico_agent_bgp_peer_prefixes_received{peer=\"192.0.2.2\"} 7",
            "calico_agent_bgp_peer_flaps_total{peer=\"192.0.2.2\"} 2",
            "calico_agent_bgp_peer_updates_received_total{peer=\"192.0.2.2\"} 9",
            "calico_agent_bgp_peer_updates_sent_total{peer=\"192.0.2.2\"} 4",
            "calico_agent_bgp_peer_info{peer=\"fd00::2\",state=\"Active\",last_error=\"BFD session down\"} 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("uptime_seconds{peer=\"fd00::2\"}"), "{text}");
        assert!(
            !text.contains("flaps_total{peer=\"fd00::2\"}"),
            "unknown, not 0: {text}"
        );
        assert!(!text.contains("prefixes_advertised{"), "{text}");
    }
}
