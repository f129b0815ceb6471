//! The daemon on the eBPF dataplane (`--dataplane bpf`): real workloads in namespaces,
//! policy enforced by the programs the agent attaches (and no nftables table), a policy
//! change followed, the programs gone with the agent.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{wait_until, Host};

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

/// The eBPF programs loaded in the kernel (`bpftool prog show`; the backend names each
/// after its direction and interface, `i_calib1`, `e_calib1`).
fn loaded() -> String {
    std::process::Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .expect("bpftool (Debian package bpftool; `make deps` installs it)")
}

#[test]
fn the_bpf_dataplane_enforces_policy_and_follows_a_change() {
    if !privileged("the_bpf_dataplane_enforces_policy_and_follows_a_change") {
        return;
    }
    let mut host = Host::new(NODE, None, "192.168.78.1", &WORKLOADS);
    host.write("model.yaml", &model(false));
    host.start_agent(&["--no-bgp", "--dataplane", "bpf", "--bpf-license", "GPL"]);
    host.wait_programmed(2, Duration::from_secs(30));
    let programs = loaded();
    assert!(
        programs.contains("i_calib1") && programs.contains("e_calib1"),
        "programs for the workload interfaces:\n{programs}"
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

    host.write("model.yaml", &model(true));
    assert!(
        wait_until(Duration::from_secs(20), || host.connect(0, server)).is_some(),
        "the policy change lets TCP to 8080 through\n{}",
        host.log()
    );
    assert!(host.ping(0, WORKLOADS[1].1));

    // The links are not pinned: the programs go with the agent (the README says so).
    host.signal_agent(libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(5), || !loaded().contains("_calib1")).is_some(),
        "programs gone at exit:\n{}",
        loaded()
    );
}
