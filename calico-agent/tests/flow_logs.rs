//! Flow logs end to end: an agent with `--flow-logs` in a network namespace, two workloads
//! and a policy allowing one port and denying the rest by a named rule; an allowed and a
//! denied TCP connect show in `GET /flows` named by policy, rule and verdict, and in the
//! per-policy counters of `/metrics` and the `/status` section.

mod support;

use std::time::Duration;

use calico_netns::fixtures::privileged;
use serde_json::Value;
use support::{endpoints_yaml, http_get, wait_until, Host};

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
- action: Deny
  metadata: {annotations: {name: rest}}
";

/// The body of a response (after the blank line).
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The records `/flows` serves.
fn flows(host: &Host) -> Vec<Value> {
    body(&http_get(host, "/flows"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn allowed_and_denied_connects_show_in_flows_metrics_and_status_by_policy() {
    if !privileged("allowed_and_denied_connects_show_in_flows_metrics_and_status_by_policy") {
        return;
    }
    let wls = [("califl0", "10.71.0.10"), ("califl1", "10.71.0.11")];
    let mut host = Host::new("flw-a", None, "192.168.81.1", &wls);
    host.write("all.yaml", &(endpoints_yaml("flw-a", &wls) + POLICY));
    host.start_agent(&["--no-bgp", "--flow-logs", "--flow-log-interval-secs", "1"]);
    let programmed = wait_until(Duration::from_secs(30), || {
        http_get(&host, "/api/endpoints")
            .matches("\"programmed\"")
            .count()
            == 2
    });
    assert!(programmed.is_some(), "{}", host.log());
    // The records are named after the model the agent last saw; it is looked at every second.
    std::thread::sleep(Duration::from_millis(1500));

    let web = "10.71.0.11:8080".parse().unwrap();
    let ssh = "10.71.0.11:2222".parse().unwrap();
    let (_web, _ssh) = (host.listen(1, web), host.listen(1, ssh));
    assert!(host.connect(0, web), "allowed");
    assert!(!host.connect(0, ssh), "denied");

    let ingress = |f: &Value, port: u64| f["direction"] == "ingress" && f["dstPort"] == port;
    let mut records = vec![];
    let both = wait_until(Duration::from_secs(10), || {
        records = flows(&host);
        records.iter().any(|f| ingress(f, 8080)) && records.iter().any(|f| ingress(f, 2222))
    });
    assert!(both.is_some(), "{records:#?}\n{}", host.log());
    let allowed = records.iter().find(|f| ingress(f, 8080)).unwrap();
    assert_eq!(allowed["verdict"], "allow", "{allowed:#}");
    assert_eq!(allowed["policy"], "default/w1-web", "{allowed:#}");
    assert_eq!(allowed["policyKind"], "policy", "{allowed:#}");
    assert_eq!(allowed["rule"], 0, "{allowed:#}");
    assert_eq!(allowed["srcIp"], "10.71.0.10", "{allowed:#}");
    assert_eq!(allowed["proto"], 6, "{allowed:#}");
    assert_eq!(
        allowed["dstEndpoint"], "k8s/default.flw-a-w1/eth0",
        "{allowed:#}"
    );
    let denied = records.iter().find(|f| ingress(f, 2222)).unwrap();
    assert_eq!(denied["verdict"], "deny", "{denied:#}");
    assert_eq!(denied["policy"], "default/w1-web", "{denied:#}");
    assert_eq!(denied["rule"], 1, "{denied:#}");
    assert_eq!(denied["ruleName"], "rest", "{denied:#}");
    // w0's egress is allowed by its profile.
    assert!(
        records.iter().any(|f| f["direction"] == "egress"
            && f["dstPort"] == 8080
            && f["policy"] == "kns.default"
            && f["verdict"] == "allow"),
        "{records:#?}"
    );

    let metrics = http_get(&host, "/metrics");
    for verdict in ["allow", "deny"] {
        let line = format!(
            "calico_agent_flow_log_packets_total{{policy=\"default/w1-web\",verdict=\"{verdict}\"}}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let status: Value = serde_json::from_str(body(&http_get(&host, "/status"))).unwrap();
    assert_eq!(status["flow_logs"]["enabled"], true, "{status:#}");
    assert!(
        status["flow_logs"]["records"].as_u64() >= Some(3),
        "{status:#}"
    );
    assert_eq!(status["flow_logs"]["dropped"], 0, "{status:#}");
}
