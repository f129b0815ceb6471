//! `calico-rs trace` against a live agent in a network namespace: the model and the kernel
//! agree and the policy is named as written; then the table is changed behind the agent's
//! back (its drift watch off, its resync an hour away) and the tool warns and exits 2.

mod support;

use std::process::Output;
use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{endpoints_yaml, wait_until, Host};

const POLICY: &str = "
---
kind: Policy
name: w1-web
namespace: default
selector: app == 'w1'
types: [Ingress]
ingress:
- action: Allow
  protocol: TCP
  source: {selector: app == 'w0'}
  destination: {ports: [8080]}
";

fn calico_rs(host: &Host, args: &[&str]) -> Output {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            host.ns.name(),
            env!("CARGO_BIN_EXE_calico-rs"),
        ])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The chain holding the policy's ingress rules (the only policy: the only `pol-in-`).
fn policy_chain(host: &Host) -> String {
    let table = host.ruleset();
    table
        .lines()
        .find_map(|l| {
            let name = l.trim().strip_prefix("chain ")?.trim_end_matches(" {");
            name.starts_with("pol-in").then(|| name.to_string())
        })
        .unwrap_or_else(|| panic!("no policy chain in\n{table}"))
}

#[test]
fn trace_names_the_policy_and_warns_of_drift_with_exit_2() {
    if !privileged("trace_names_the_policy_and_warns_of_drift_with_exit_2") {
        return;
    }
    let wls = [("calitr0", "10.67.0.10"), ("calitr1", "10.67.0.11")];
    let mut host = Host::new("trc-a", None, "192.168.78.1", &wls);
    host.write("all.yaml", &(endpoints_yaml("trc-a", &wls) + POLICY));
    host.start_agent(&["--no-bgp", "--no-acl-drift-watch", "--resync-secs", "3600"]);
    let allowed = [
        "trace",
        "--from",
        "default.trc-a-w0",
        "--to",
        "10.67.0.11",
        "--port",
        "8080",
    ];
    let mut last = None;
    let agreed = wait_until(Duration::from_secs(30), || {
        let o = calico_rs(&host, &allowed);
        let ok = o.status.code() == Some(0) && text(&o).contains("kernel agrees");
        last = Some(o);
        ok
    });
    let out = text(last.as_ref().unwrap());
    assert!(agreed.is_some(), "{out}\n{}", host.log());
    assert!(out.contains("model (reference evaluator): ALLOW"), "{out}");
    assert!(
        out.contains("decided by: policy default/w1-web ingress rule 0 (Allow)"),
        "{out}"
    );
    assert!(!out.contains("WARNING"), "{out}");

    let denied = calico_rs(
        &host,
        &[
            "trace",
            "--from",
            "calitr0",
            "--to",
            "default.trc-a-w1",
            "--port",
            "22",
        ],
    );
    let out = text(&denied);
    assert_eq!(
        denied.status.code(),
        Some(0),
        "a denial is an answer: {out}"
    );
    assert!(out.contains("model (reference evaluator): DENY"), "{out}");
    assert!(out.contains("kernel agrees"), "{out}");

    // Behind the agent's back: the policy's chain now drops everything first.
    let chain = policy_chain(&host);
    host.ns
        .run(&["nft", "insert", "rule", "inet", "calico", &chain, "drop"])
        .unwrap();
    let drifted = calico_rs(&host, &allowed);
    let out = text(&drifted);
    println!("{out}");
    assert_eq!(drifted.status.code(), Some(2), "{out}");
    assert!(
        out.contains("WARNING: THE KERNEL DISAGREES WITH THE MODEL"),
        "{out}"
    );
    assert!(
        out.contains("the model says ALLOW, the kernel's table says DENY"),
        "{out}"
    );
    assert!(out.contains("drift"), "{out}");
    assert!(
        out.contains("policy default/w1-web ingress: IR rule 0, not one the model compiles to"),
        "the rule inserted by hand is named by its policy: {out}"
    );

    let json = calico_rs(
        &host,
        &[
            "--json", "trace", "--from", "calitr0", "--to", "calitr1", "--port", "8080",
        ],
    );
    assert_eq!(json.status.code(), Some(2), "{}", text(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["drift"], true);
    assert_eq!(report["model"]["verdict"], "allow");
    assert_eq!(report["kernel"]["verdict"], "deny");

    // The agent is reachable or not: exit 1 and why.
    let gone = calico_rs(&host, &["--agent", "http://127.0.0.1:1", "status"]);
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone));
    assert!(text(&gone).contains("cannot reach the agent"));
    let status = calico_rs(&host, &["status"]);
    assert!(
        text(&status).contains("endpoints: 2 (2 programmed)"),
        "{}",
        text(&status)
    );
}
