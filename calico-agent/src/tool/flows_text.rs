//! `calico-rs flows`'s words: the JSON lines of `/flows` as a table.

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
pub const HEADER: &str = "LAST SEEN             VERDICT  PROTO  SOURCE                                 DESTINATION                            PACKETS  POLICY";

/// One record as a table row.
pub fn row(f: &Value) -> String {
    let end = |who: &[&str], addr: &[&str], port: &[&str]| {
        let name = text(f, who);
        let addr = text(f, addr);
        let port = match field(f, port) {
            Some(p) => format!(
                ":{}",
                p.as_u64()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| p.to_string())
            ),
            None => String::new(),
        };
        if name == "-" {
            format!("{addr}{port}")
        } else {
            format!("{name} ({addr}{port})")
        }
    };
    let verdict = text(f, &["verdict", "action"]).to_ascii_uppercase();
    format!(
        "{:<21} {:<8} {:<6} {:<38} {:<38} {:>7}  {}",
        text(f, &["last_seen", "end", "time"]),
        verdict,
        text(f, &["protocol", "proto"]),
        end(
            &["src_endpoint", "source_endpoint"],
            &["src", "src_ip", "source"],
            &["src_port", "source_port"]
        ),
        end(
            &["dst_endpoint", "dest_endpoint"],
            &["dst", "dst_ip", "dest"],
            &["dst_port", "dest_port"]
        ),
        text(f, &["packets"]),
        text(f, &["policy", "deciding_policy"]),
    )
}
