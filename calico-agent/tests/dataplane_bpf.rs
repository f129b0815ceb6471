//! The daemon on the eBPF dataplane (`--dataplane bpf`): real workloads in namespaces,
//! policy enforced by the programs the agent attaches (and no nftables table), a policy
//! change followed, per-interface counters in the metrics, the programs still enforcing it
//! after the agent exits (tc filters stay, like nftables rules), and removed by the agent
//! when the host goes over to nftables.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{http_get, wait_until, Host};

const NODE: &str = "bpf-host";
const WORKLOADS: [(&str, &str); 2] = [("calib0", "10.74.0.10"), ("calib1", "10.74.0.11")];

/// Both workloads; the server (`w1`) admits ICMP and, if `tcp`, TCP to port 8080 too.
fn model(tcp: bool) -> String {
    let tcp_rule = if tcp {
        ", {action: Allow, protocol: TCP, destination: {ports: [8080]}}"
    } else {
        ""
    };
    let mut y = format!(
        "kind: Profile\nname: client\ningress: [{{action: Allow}}]\negress: [{{action: Allow}}]\n\
         ---\nkind: Profile\nname: server\n\
         ingress: [{{action: Allow, protocol: ICMP}}{tcp_rule}]\negress: [{{action: Allow}}]\n"
    );
    for (i, ((iface, ip), profile)) in WORKLOADS.iter().zip(["client", "server"]).enumerate() {
        y += &format!(
            "---\nkind: WorkloadEndpoint\norchestrator: k8s\nworkload: default.w{i}\n\
             endpoint: eth0\nnamespace: default\nnode: {NODE}\ninterfaceName: {iface}\n\
             ipNetworks: [{ip}/32]\nprofiles: [{profile}]\n"
        );
    }
    y
}

/// The eBPF backend's programs loaded in the kernel (`bpftool prog show`): id and name.
/// Programs are shared by the interfaces whose generated code is the same, so they are
/// named after their direction and load order (`cali_i1`, `cali_e2`), not an interface.
fn loaded() -> BTreeSet<(u32, String)> {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .expect("bpftool (Debian package bpftool; `make deps` installs it)");
    out.lines()
        .filter_map(|l| {
            let (id, rest) = l.split_once(": sched_cls")?;
            let name = rest
                .split_whitespace()
                .skip_while(|w| *w != "name")
                .nth(1)?;
            if !(name.starts_with("cali_i") || name.starts_with("cali_e")) {
                return None;
            }
            Some((id.trim().parse().ok()?, name.to_string()))
        })
        .collect()
}

/// The value of the series `series` (name and labels) in a Prometheus text page; 0
/// when it is absent.
fn metric(page: &str, series: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_bpf_dataplane_enforces_policy_and_follows_a_change() {
    if !privileged("the_bpf_dataplane_enforces_policy_and_follows_a_change") {
        return;
    }
    let before = loaded();
    let mut host = Host::new(NODE, None, "192.168.78.1", &WORKLOADS);
    host.write("model.yaml", &model(false));
    host.start_agent(&["--no-bgp", "--dataplane", "bpf", "--bpf-license", "GPL"]);
    host.wait_programmed(2, Duration::from_secs(30));
    // What appeared since the agent started (another process loading such programs
    // meanwhile would be counted too: the bench, say, not run beside the tests).
    let programs: BTreeSet<_> = loaded().difference(&before).cloned().collect();
    let has = |prefix: &str| programs.iter().any(|(_, n)| n.starts_with(prefix));
    assert!(
        has("cali_i") && has("cali_e"),
        "ingress and egress programs for the workload interfaces: {programs:?}"
    );
    assert!(
        host.ruleset().is_empty(),
        "no nftables table on the eBPF dataplane"
    );

    let server: SocketAddr = format!("{}:8080", WORKLOADS[1].1).parse().unwrap();
    let _listener = host.listen(1, server);
    assert!(
        host.ping(0, WORKLOADS[1].1),
        "ICMP is allowed\n{}",
        host.log()
    );
    assert!(!host.connect(0, server), "TCP to 8080 is not, yet");
    // The programs count what they judged, per interface and direction: the SYN was
    // accepted in from the client's interface and dropped out into the server's.
    let counted = |name: &str, iface: &str, dir: &str| {
        metric(
            &http_get(&host, "/metrics"),
            &format!("calico_agent_bpf_{name}_total{{interface=\"{iface}\",direction=\"{dir}\"}}"),
        )
    };
    assert!(
        wait_until(Duration::from_secs(15), || {
            counted("dropped", WORKLOADS[1].0, "egress") >= 1
                && counted("accepted", WORKLOADS[0].0, "ingress") >= 1
        })
        .is_some(),
        "the drop and the accept in the metrics:\n{}",
        http_get(&host, "/metrics")
    );
    let status = http_get(&host, "/status");
    let body = status.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).expect("/status is JSON");
    let to_server = &v["bpf_interfaces"][WORKLOADS[1].0]["egress"];
    assert!(
        to_server["dropped"].as_u64() >= Some(1),
        "/status shows the drop: {status}"
    );

    host.write("model.yaml", &model(true));
    assert!(
        wait_until(Duration::from_secs(20), || host.connect(0, server)).is_some(),
        "the policy change lets TCP to 8080 through\n{}",
        host.log()
    );
    assert!(host.ping(0, WORKLOADS[1].1));

    // The filters stay when the agent exits: the policy is still enforced.
    let denied: SocketAddr = format!("{}:9090", WORKLOADS[1].1).parse().unwrap();
    let _other = host.listen(1, denied);
    assert!(!host.connect(0, denied), "TCP to 9090 is denied");
    let running: BTreeSet<_> = loaded().difference(&before).cloned().collect();
    host.signal_agent(libc::SIGTERM);
    assert!(
        running.is_subset(&loaded()),
        "programs kept at exit: {running:?}, loaded {:?}",
        loaded()
    );
    assert!(host.connect(0, server), "TCP to 8080 still allowed");
    assert!(host.ping(0, WORKLOADS[1].1), "ICMP still allowed");
    assert!(!host.connect(0, denied), "TCP to 9090 still denied");

    // The host goes over to nftables with a policy admitting 9090 too: the agent removes
    // the filters the eBPF dataplane left, which would still deny it.
    host.write(
        "model.yaml",
        &model(true).replace("ports: [8080]", "ports: [8080, 9090]"),
    );
    host.start_agent(&["--no-bgp", "--dataplane", "nft"]);
    host.wait_programmed(2, Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(10), || loaded().is_disjoint(&running)).is_some(),
        "the eBPF filters removed and their programs unloaded: {running:?} still in {:?}\n{}",
        loaded(),
        host.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || host.connect(0, denied)).is_some(),
        "TCP to 9090 admitted by the nftables dataplane\n{}",
        host.log()
    );
    assert!(host.ping(0, WORKLOADS[1].1));
}
