//! The agent's page (`GET /`): the endpoints on this host with their state, the connectivity
//! matrix policy predicts between them, and recent flows with their deciding policy (denied
//! ones highlighted). Rendered on the server; a little inline script refreshes the flows
//! from `/flows` (and says so when this agent has no flow logs).

use std::fmt::Write as _;

use crate::explain::{EndpointList, Matrix, MatrixCell};

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;\
margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:.25em .5em;font-size:90%;\
vertical-align:top}th{background:#eee}.allow{background:#d8f5d0}.deny{background:#f8d0d0}\
.partial{background:#fff3c4}.drift{outline:3px solid #c00}.error{color:#c00}\
tr.denied{background:#f8d0d0;font-weight:bold}code{font-size:95%}";

/// The whole page.
pub fn render(endpoints: &EndpointList, matrix: &Matrix) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>calico-rs: {node}</title>\
         <style>{STYLE}</style></head><body>\n<h1>calico-rs agent on <code>{node}</code></h1>\n\
         <p id=\"sync\">{sync}</p>\n",
        node = escape(&endpoints.node),
        sync = if endpoints.in_sync {
            "in sync with the datastore"
        } else {
            "waiting for the first complete snapshot"
        },
    );
    endpoints_table(&mut h, endpoints);
    matrix_table(&mut h, matrix);
    h.push_str(FLOWS);
    h.push_str("</body></html>\n");
    h
}

fn endpoints_table(h: &mut String, list: &EndpointList) {
    h.push_str(
        "<h2>Endpoints on this host</h2>\n<table id=\"endpoints\"><tr><th>endpoint</th>\
        <th>state</th><th>interface</th><th>addresses</th><th>labels</th>\
        <th>ingress policies</th><th>egress policies</th><th>profiles</th></tr>\n",
    );
    for ep in &list.endpoints {
        let labels: Vec<String> = ep.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let state = match &ep.error {
            Some(e) => format!(
                "<span class=\"error\">{}: {}</span>",
                escape(&ep.state),
                escape(e)
            ),
            None => escape(&ep.state),
        };
        let _ = writeln!(
            h,
            "<tr data-endpoint=\"{name}\"><td>{name}</td><td class=\"state\">{state}</td>\
             <td>{iface}</td><td>{addrs}</td><td>{labels}</td><td>{ing}</td><td>{eg}</td>\
             <td>{prof}</td></tr>",
            name = escape(&ep.name),
            iface = escape(&ep.interface),
            addrs = escape(&ep.addresses.join(", ")),
            labels = escape(&labels.join(", ")),
            ing = escape(&ep.ingress_policies.join(", ")),
            eg = escape(&ep.egress_policies.join(", ")),
            prof = escape(&ep.profiles.join(", ")),
        );
    }
    if list.endpoints.is_empty() {
        h.push_str("<tr><td colspan=\"8\">no workload endpoint on this host</td></tr>\n");
    }
    h.push_str("</table>\n");
}

/// A cell's class and text: every probe allowed, none, or some; drift when the kernel
/// disagrees with the model on any probe.
fn cell_summary(cell: &MatrixCell) -> (String, String) {
    let allowed: Vec<&str> = cell
        .probes
        .iter()
        .filter(|p| p.model == "allow")
        .map(|p| p.probe.as_str())
        .collect();
    let drift = cell
        .probes
        .iter()
        .any(|p| p.kernel.as_ref().is_some_and(|k| *k != p.model));
    let (class, text) = if allowed.len() == cell.probes.len() {
        ("allow", "all allowed".to_string())
    } else if allowed.is_empty() {
        ("deny", "all denied".to_string())
    } else {
        ("partial", format!("allowed: {}", allowed.join(", ")))
    };
    let mut class = class.to_string();
    let mut text = text;
    if drift {
        class += " drift";
        text += " (KERNEL DIFFERS: drift)";
    }
    (class, text)
}

fn matrix_table(h: &mut String, m: &Matrix) {
    let _ = writeln!(
        h,
        "<h2>Connectivity policy predicts</h2>\n<p>Probes per pair: {}. Rows: from; \
         columns: to.{}{}</p>",
        escape(&m.probes.join(", ")),
        if m.omitted > 0 {
            format!(" {} endpoints left out.", m.omitted)
        } else {
            String::new()
        },
        m.kernel_error
            .as_ref()
            .map(|e| format!(
                " <span class=\"error\">Kernel not compared: {}</span>",
                escape(e)
            ))
            .unwrap_or_default(),
    );
    h.push_str("<table id=\"matrix\"><tr><th>from \\ to</th>");
    for to in &m.endpoints {
        let _ = write!(h, "<th>{}</th>", escape(to));
    }
    h.push_str("</tr>\n");
    for from in &m.endpoints {
        let _ = write!(h, "<tr><th>{}</th>", escape(from));
        for to in &m.endpoints {
            match m.cells.iter().find(|c| &c.from == from && &c.to == to) {
                Some(cell) => {
                    let (class, text) = cell_summary(cell);
                    let title: Vec<String> = cell
                        .probes
                        .iter()
                        .map(|p| format!("{}: {} by {}", p.probe, p.model, p.decided_by))
                        .collect();
                    let _ = write!(
                        h,
                        "<td class=\"{class}\" data-from=\"{f}\" data-to=\"{t}\" title=\"{title}\">{text}</td>",
                        f = escape(from),
                        t = escape(to),
                        title = escape(&title.join("\n")),
                        text = escape(&text),
                    );
                }
                None => h.push_str("<td>-</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// The flows panel: filled from `/flows` (JSON lines of `calico_agent::flows::FlowRecord`,
/// camelCase fields) every two seconds; a 404 means the agent runs without flow logs.
const FLOWS: &str = r##"<h2>Recent flows</h2>
<p id="flows-status">loading flows...</p>
<table id="flows"><thead><tr><th>last seen</th><th>source</th><th>destination</th><th>protocol</th>
<th>verdict</th><th>deciding policy</th><th>packets</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
function txt(v) { return v === undefined || v === null ? "" : String(v); }
var PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"};
function end(endpoint, ip, port) {
  var addr = txt(ip) + (port ? ":" + port : "");
  return endpoint ? endpoint + " (" + addr + ")" : addr;
}
function row(f) {
  var tr = document.createElement("tr");
  var verdict = txt(f.verdict).toLowerCase();
  if (verdict === "deny") tr.className = "denied";
  tr.setAttribute("data-verdict", verdict);
  var seen = f.lastSeenMs ? new Date(f.lastSeenMs).toISOString().replace("T", " ").replace("Z", "") : "";
  var proto = PROTOS[f.proto] || txt(f.proto);
  var cells = [seen, end(f.srcEndpoint, f.srcIp, f.srcPort), end(f.dstEndpoint, f.dstIp, f.dstPort),
               proto, verdict, txt(f.reason || f.policy), txt(f.packets)];
  cells.forEach(function (c) { var td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
  return tr;
}
function refresh() {
  var status = document.getElementById("flows-status");
  fetch("/flows").then(function (r) {
    if (r.status === 404) { status.textContent = "this agent has no flow logs (start it with --flow-logs)"; return null; }
    if (!r.ok) { status.textContent = "/flows: HTTP " + r.status; return null; }
    return r.text();
  }).then(function (body) {
    if (body === null) return;
    var flows = body.split("\n").filter(function (l) { return l.trim() !== ""; })
      .map(function (l) { try { return JSON.parse(l); } catch (e) { return null; } })
      .filter(function (f) { return f !== null; });
    var tbody = document.querySelector("#flows tbody");
    tbody.textContent = "";
    flows.slice(-200).reverse().forEach(function (f) { tbody.appendChild(row(f)); });
    status.textContent = flows.length + " flows";
  }).catch(function (e) { status.textContent = "/flows: " + e; });
}
refresh();
setInterval(refresh, 2000);
</script>
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{EndpointInfo, ProbeResult};

    #[test]
    fn names_are_escaped_and_drift_is_marked() {
        let list = EndpointList {
            node: "h<1>".into(),
            in_sync: true,
            endpoints: vec![EndpointInfo {
                name: "k8s/a&b/eth0".into(),
                workload: "a&b".into(),
                namespace: None,
                interface: "cali1".into(),
                addresses: vec!["10.0.0.1".into()],
                labels: [("app".to_string(), "<x>".to_string())].into(),
                profiles: vec![],
                state: "programmed".into(),
                error: None,
                ingress_policies: vec!["p\"q".into()],
                egress_policies: vec![],
            }],
        };
        let probe = |model: &str, kernel: &str| ProbeResult {
            probe: "tcp/80".into(),
            model: model.into(),
            kernel: Some(kernel.into()),
            decided_by: "policy p".into(),
        };
        let matrix = Matrix {
            endpoints: vec!["a".into(), "b".into()],
            probes: vec!["tcp/80".into()],
            cells: vec![
                MatrixCell {
                    from: "a".into(),
                    to: "b".into(),
                    probes: vec![probe("allow", "deny")],
                },
                MatrixCell {
                    from: "b".into(),
                    to: "a".into(),
                    probes: vec![probe("deny", "deny")],
                },
            ],
            omitted: 0,
            kernel_error: None,
        };
        let page = render(&list, &matrix);
        assert!(page.contains("h&lt;1&gt;") && !page.contains("h<1>"));
        assert!(page.contains("k8s/a&amp;b/eth0") && page.contains("app=&lt;x&gt;"));
        assert!(page.contains("p&quot;q"));
        assert!(page.contains("class=\"allow drift\""), "{page}");
        assert!(page.contains("class=\"deny\""));
    }
}
