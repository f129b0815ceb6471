//! `calico-rs status`'s words: `/status` summarised.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The summary of a `/status` document.
pub fn render(status: &Value) -> String {
    let mut t = String::new();
    let yes = |b: &Value| {
        if b.as_bool() == Some(true) {
            "yes"
        } else {
            "NO"
        }
    };
    let _ = writeln!(t, "in sync:   {}", yes(&status["in_sync"]));
    let _ = writeln!(t, "ready:     {}", yes(&status["ready"]));
    if let Some(backends) = status["backends"].as_object() {
        for (name, b) in backends {
            let state = match b["last_error"].as_str() {
                Some(e) => format!("ERROR: {e}"),
                None => "ok".into(),
            };
            let _ = writeln!(t, "backend {name:<5} {state}");
        }
    }
    let ds = &status["datastore"];
    if !ds.is_null() {
        let _ = writeln!(
            t,
            "datastore: {} (revision {}, programmed {})",
            s(&ds["source"]),
            s(&ds["revision"]),
            s(&ds["programmed_revision"])
        );
    }
    let endpoints = status["endpoints"].as_array().cloned().unwrap_or_default();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for ep in &endpoints {
        *states.entry(s(&ep["state"])).or_default() += 1;
    }
    let counts: Vec<String> = states.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(t, "endpoints: {} ({})", endpoints.len(), counts.join(", "));
    for ep in endpoints.iter().filter(|ep| ep["state"] != "programmed") {
        let _ = writeln!(
            t,
            "  {}/{}/{} on {}: {}{}",
            s(&ep["orchestrator"]),
            s(&ep["workload"]),
            s(&ep["endpoint"]),
            s(&ep["interface"]),
            s(&ep["state"]),
            ep["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let peers = status["peers"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(t, "BGP peers: {}", peers.len());
    for p in &peers {
        let _ = writeln!(
            t,
            "  {} {} ({} prefixes received)",
            s(&p["address"]),
            s(&p["state"]),
            s(&p["prefixes_received"])
        );
    }
    bpf_drops(&mut t, &status["bpf_interfaces"]);
    for n in status["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(t, "note: {}", s(n));
    }
    t
}

/// Interfaces listed at most by [`bpf_drops`].
const DROPS_LISTED: usize = 20;

/// The eBPF dataplane's counters (`--dataplane bpf`): how many interfaces, then those
/// whose programs dropped packets, the most first.
fn bpf_drops(t: &mut String, ifaces: &Value) {
    let Some(ifaces) = ifaces.as_object() else {
        return;
    };
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut drops: Vec<(u64, &String, &Value)> = ifaces
        .iter()
        .map(|(name, c)| {
            let dropped = |d: &str| n(&c[d]["dropped"]) + n(&c[d]["malformed"]);
            (dropped("ingress") + dropped("egress"), name, c)
        })
        .filter(|(d, _, _)| *d > 0)
        .collect();
    drops.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let _ = writeln!(
        t,
        "eBPF programs: {} interfaces, {} with drops",
        ifaces.len(),
        drops.len()
    );
    for (_, name, c) in drops.iter().take(DROPS_LISTED) {
        let dir = |d: &str| {
            let c = &c[d];
            format!(
                "{} packets, {} accepted, {} dropped, {} malformed",
                n(&c["packets"]),
                n(&c["accepted"]),
                n(&c["dropped"]),
                n(&c["malformed"])
            )
        };
        let _ = writeln!(
            t,
            "  {name}: from it {}; to it {}",
            dir("ingress"),
            dir("egress")
        );
    }
    if drops.len() > DROPS_LISTED {
        let _ = writeln!(t, "  ... and {} more", drops.len() - DROPS_LISTED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_states_and_shows_errors() {
        let v: Value = serde_json::from_str(
            r#"{"in_sync": true, "ready": false,
                "backends": {"acl": {"ok": false, "last_error": "boom"}, "fib": {"ok": true, "last_error": null}},
                "endpoints": [{"orchestrator":"k8s","workload":"a","endpoint":"eth0","interface":"c1","state":"programmed"},
                              {"orchestrator":"k8s","workload":"b","endpoint":"eth0","interface":"c2","state":"error","error":"no"}],
                "peers": []}"#,
        )
        .unwrap();
        let t = render(&v);
        assert!(t.contains("ready:     NO"), "{t}");
        assert!(t.contains("backend acl   ERROR: boom"), "{t}");
        assert!(t.contains("endpoints: 2 (1 error, 1 programmed)"), "{t}");
        assert!(t.contains("k8s/b/eth0 on c2: error: no"), "{t}");
        assert!(!t.contains("eBPF"), "no eBPF dataplane, no counters: {t}");
    }

    #[test]
    fn ebpf_counters_list_the_interfaces_that_dropped_the_most_first() {
        let row = |dropped: u64| {
            serde_json::json!({"packets": 10, "accepted": 10 - dropped, "dropped": dropped,
                               "malformed": 0, "bytes": 840, "non_ip": 0})
        };
        let v = serde_json::json!({"in_sync": true, "ready": true, "endpoints": [], "peers": [],
        "bpf_interfaces": {
            "cali1": {"ingress": row(0), "egress": row(0)},
            "cali2": {"ingress": row(1), "egress": row(0)},
            "cali3": {"ingress": row(0), "egress": row(4)},
        }});
        let t = render(&v);
        assert!(
            t.contains("eBPF programs: 3 interfaces, 2 with drops"),
            "{t}"
        );
        let (three, two) = (t.find("  cali3: ").unwrap(), t.find("  cali2: ").unwrap());
        assert!(three < two, "most drops first: {t}");
        assert!(!t.contains("cali1:"), "no drops, not listed: {t}");
        assert!(
            t.contains("cali3: from it 10 packets, 10 accepted, 0 dropped, 0 malformed; to it 10 packets, 6 accepted, 4 dropped, 0 malformed"),
            "{t}"
        );
    }
}
