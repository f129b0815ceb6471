//! The demo's last act: why a packet is allowed or denied, asked of a host's agent with
//! `calico-rs trace` (the model's trace with the policy and rule as written, the kernel's
//! table read back and compared); on the simulated network, the same report from the
//! library.

use std::path::Path;
use std::process::Command;

use calico_agent::explain::{trace, Proto, TraceRequest, DEFAULT_SRC_PORT};
use calico_agent::tool::trace_text;
use calico_mock::MockNetwork;

use crate::cluster::{step, Cluster};
use crate::scenario::{HOSTS, PORT};

/// The traces shown: (host asked, from, to). frontend-1 → db-1 is denied by the db's
/// policy; backend-1 → db-1 is allowed by it.
const TRACES: [(usize, &str, &str); 2] = [
    (2, "shop.frontend-1", "shop.db-1"),
    (2, "shop.backend-1", "shop.db-1"),
];

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Runs `calico-rs trace` in the hosts' namespaces, against their agents.
pub fn real(cluster: &Cluster, tool: &Path) -> Result<(), String> {
    for (host, from, to) in TRACES {
        let ns = &cluster.hosts[host];
        step(&format!(
            "why? `calico-rs trace --from {from} --to {to} --port {PORT}` asks {}'s agent",
            HOSTS[host].0
        ));
        let out = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(tool)
            .args([
                "trace",
                "--from",
                from,
                "--to",
                to,
                "--port",
                &PORT.to_string(),
            ])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
        print!("{}", indent(&String::from_utf8_lossy(&out.stdout)));
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("calico-rs trace: {:?}: {err}", out.status.code()));
        }
    }
    Ok(())
}

/// The flows host-c's agent logged while the demo probed (`--flow-logs`): the last few
/// lines of `calico-rs flows`, each with the policy that decided it.
pub fn flows(cluster: &Cluster, tool: &Path) -> Result<(), String> {
    const HOST: usize = 2;
    const SHOWN: usize = 8;
    step(&format!(
        "what was seen? `calico-rs flows` asks {}'s agent (last {SHOWN} lines)",
        HOSTS[HOST].0
    ));
    let ns = &cluster.hosts[HOST];
    // Records appear at the end of each 1 s interval: a few tries at most.
    for _ in 0..5 {
        let out = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(tool)
            .arg("flows")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
        if !out.status.success() {
            return Err(format!(
                "calico-rs flows: {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        // The header, then the records.
        if let [header, records @ ..] = &lines[..] {
            if !records.is_empty() {
                let tail = &records[records.len().saturating_sub(SHOWN)..];
                print!("{}", indent(&format!("{header}\n{}", tail.join("\n"))));
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    println!("    (no flows recorded yet)");
    Ok(())
}

/// The same reports from the library, against the simulated host's ruleset.
pub fn simulated(net: &MockNetwork) {
    for (_, from, to) in TRACES.iter().filter(|(h, _, _)| *h == 2) {
        let Some(host) = net.hosts().find(|h| h.name == "host-c") else {
            return;
        };
        step(&format!(
            "why? the trace of {from} → {to} TCP {PORT} on host-c"
        ));
        let req = TraceRequest {
            from: from.to_string(),
            to: to.to_string(),
            proto: Proto::Tcp,
            port: Some(PORT),
            src_port: DEFAULT_SRC_PORT,
        };
        let ruleset = host.acl.ruleset();
        let compiler = host.compiler();
        let (compiled, addrs) = (compiler.ruleset(), compiler.interface_addresses());
        match trace(net.model(), compiled, addrs, &host.name, Ok(&ruleset), &req) {
            Ok(report) => print!("{}", indent(&trace_text::render(&report))),
            Err(e) => println!("    {e}"),
        }
    }
}
