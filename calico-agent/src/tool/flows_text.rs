//! `calico-rs flows`'s words: the JSON lines of `/flows` (`calico_agent::flows::FlowRecord`,
//! camelCase fields) as a table.

use serde_json::Value;

fn field<'a>(f: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().map(|n| &f[*n]).find(|v| !v.is_null())
}

fn text(f: &Value, names: &[&str]) -> String {
    match field(f, names) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

/// Whether a flow record was denied.
pub fn is_denied(f: &Value) -> bool {
    matches!(
        text(f, &["verdict", "action"])
            .to_ascii_lowercase()
            .as_str(),
        "deny" | "denied" | "drop" | "dropped"
    )
}

/// The records of a `/flows` body; lines that are not JSON objects are skipped.
pub fn parse(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

/// The table header.
pub const HEADER: &str = "LAST SEEN (UTC)  VERDICT  PROTO   SOURCE                                   DESTINATION                              PACKETS  DECIDED BY";

/// A protocol number by name.
fn proto_name(p: &Value) -> String {
    match p.as_u64() {
        Some(1) => "icmp".into(),
        Some(6) => "tcp".into(),
        Some(17) => "udp".into(),
        Some(58) => "icmpv6".into(),
        Some(132) => "sctp".into(),
        Some(n) => n.to_string(),
        None => text_of(p),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// Unix milliseconds as `HH:MM:SS.mmm` (UTC).
pub fn time_of_day(ms: u64) -> String {
    let day_ms = ms % 86_400_000;
    let (h, m, s) = (day_ms / 3_600_000, day_ms / 60_000 % 60, day_ms / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", day_ms % 1000)
}

/// One record as a table row.
pub fn row(f: &Value) -> String {
    let end = |who: &str, ip: &str, port: &str| {
        let port = match f[port].as_u64() {
            Some(0) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        let addr = format!("{}{port}", text(f, &[ip]));
        match f[who].as_str() {
            Some(name) => format!("{name} ({addr})"),
            None => addr,
        }
    };
    format!(
        "{:<16} {:<8} {:<7} {:<40} {:<40} {:>7}  {}",
        f["lastSeenMs"]
            .as_u64()
            .map_or_else(|| "-".into(), time_of_day),
        text(f, &["verdict"]).to_ascii_uppercase(),
        proto_name(&f["proto"]),
        end("srcEndpoint", "srcIp", "srcPort"),
        end("dstEndpoint", "dstIp", "dstPort"),
        text(f, &["packets"]),
        text(f, &["reason", "policy"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_as_a_row() {
        let f: Value = serde_json::from_str(
            r#"{"lastSeenMs": 1764806400123, "srcIp": "10.0.0.1", "dstIp": "10.0.0.2", "proto": 6,
                "srcPort": 40000, "dstPort": 22, "verdict": "deny", "srcEndpoint": "k8s/a/eth0",
                "dstEndpoint": null, "reason": "policy shop/db ingress rule 0", "packets": 3}"#,
        )
        .unwrap();
        assert!(is_denied(&f));
        let r = row(&f);
        assert!(
            r.starts_with("00:00:00.123     DENY     tcp     k8s/a/eth0 (10.0.0.1:40000)"),
            "{r}"
        );
        assert!(
            r.contains(" 10.0.0.2:22 ") && r.ends_with("3  policy shop/db ingress rule 0"),
            "{r}"
        );
        assert_eq!(parse("not json\n{}\n[1]\n").len(), 1);
    }
}
