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
    for n in status["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(t, "note: {}", s(n));
    }
    t
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
    }
}
