//! Host endpoints enforced by the kernel on real packets (issue 17): a host namespace
//! whose uplink `eth0` is a host endpoint, the fabric beyond it, and one workload. TCP
//! connections from the fabric to the host and to the workload, from the host to the
//! fabric, and from the workload to the host, judged by normal, `applyOnForward` and
//! pre-DNAT policy, the failsafe ports, and `defaultEndpointToHostAction`; each step
//! programmed through the incremental compiler, and the table read back equal to the IR.
//! A host endpoint found by its `expectedIPs` follows its address from interface to none,
//! as the FIB backend reads and reports the addresses; a failsafe entry with a network
//! opens its port to sources inside it only.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use calico_core::compile::{
    parse_failsafe_list, CompileConfig, EndpointToHostAction, HostConfig, HostPath,
};
use calico_core::dataplane::{AclBackend, FibBackend};
use calico_core::model::{parse_resources, Model, ResourceKey, Update};
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::{privileged, Netns};
use support::{connects, listen_all, udp_delivers, udp_in, ProgrammedHost, Topology};

const HOST: &str = "192.168.255.1";
const FABRIC: &str = "192.168.255.2";
const BLOCKED: &str = "203.0.113.7";
const WORKLOAD: &str = "10.65.0.1";

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
node: h1
interfaceName: calia
ipNetworks: [10.65.0.1/32]
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: HostEndpoint
name: h1-eth0
node: h1
interfaceName: eth0
labels: {role: uplink}
---
kind: Policy
name: uplink-in
selector: role == 'uplink'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
"#;

const FORWARD_POLICY: &str = r#"
kind: Policy
name: uplink-forward
selector: role == 'uplink'
applyOnForward: true
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
"#;

const PRE_DNAT_POLICY: &str = r#"
kind: Policy
name: uplink-pre-dnat
selector: role == 'uplink'
preDNAT: true
applyOnForward: true
ingress:
  - {action: Deny, source: {nets: [203.0.113.7/32]}}
  - {action: Allow, protocol: TCP, destination: {ports: [9443]}}
"#;

/// Untracked: TCP 7070 both ways (no conntrack entry: the replies need their own rule),
/// and a deny for 9443, which pre-DNAT policy allows.
const UNTRACKED_POLICY: &str = r#"
kind: Policy
name: uplink-untracked
selector: role == 'uplink'
doNotTrack: true
applyOnForward: true
ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [7070]}}
  - {action: Deny, protocol: TCP, destination: {ports: [9443]}}
egress:
  - {action: Allow, protocol: TCP, source: {ports: [7070]}}
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn udp(ns: &Netns, addr: &str, port: u16) -> UdpSocket {
    udp_in(ns, SocketAddr::new(ip(addr), port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_endpoint_policy_failsafe_pre_dnat_and_forwarding_on_real_packets() {
    if !privileged("host_endpoint_policy_failsafe_pre_dnat_and_forwarding_on_real_packets") {
        return;
    }
    let topo = Topology::with_outside(&[("calia", vec![WORKLOAD])], &[BLOCKED]);
    let (host_ns, fabric, wl) = (&topo.host, &topo.fabric, &topo.workloads[0].ns);
    let _host_listeners = listen_all(host_ns, &[22, 7070, 8080, 9090, 9443]);
    let _wl_listeners = listen_all(wl, &[80, 81]);
    let _fabric_listeners = listen_all(fabric, &[9000]);
    // Without ACLs everything connects: the refusals below are ours.
    for port in [22, 8080, 9090, 9443] {
        assert!(
            connects(fabric, None, HOST, port),
            "host port {port} without ACLs"
        );
    }
    assert!(connects(wl, None, HOST, 8080));

    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let mut h = ProgrammedHost::new(host_ns, CompileConfig::new("h1"), model).await;

    // Normal policy of the uplink: the host's own traffic.
    assert!(connects(fabric, None, HOST, 8080), "uplink-in allows 8080");
    assert!(
        !connects(fabric, None, HOST, 9090),
        "no rule allows 9090: default deny"
    );
    assert!(connects(fabric, None, HOST, 22), "SSH is a failsafe port");
    assert!(
        !connects(host_ns, None, FABRIC, 9000),
        "no egress policy: default deny"
    );
    let dns = udp(fabric, FABRIC, 53);
    assert!(
        udp_delivers(&udp(host_ns, HOST, 0), &dns),
        "DNS is an outbound failsafe port"
    );
    assert!(
        connects(fabric, None, WORKLOAD, 81),
        "forwarded traffic: no applyOnForward policy, allowed"
    );
    assert!(
        !connects(wl, None, HOST, 8080),
        "workload to host: defaultEndpointToHostAction Drop"
    );

    // applyOnForward: the uplink's policy now judges what it forwards to the workload.
    h.upsert(FORWARD_POLICY).await;
    assert!(
        connects(fabric, None, WORKLOAD, 80),
        "uplink-forward allows 80"
    );
    assert!(
        !connects(fabric, None, WORKLOAD, 81),
        "uplink-forward applies: 81 denied"
    );

    // Pre-DNAT: whatever the destination, before the normal policy.
    h.upsert(PRE_DNAT_POLICY).await;
    assert!(
        !connects(fabric, Some(BLOCKED), WORKLOAD, 80),
        "pre-DNAT deny, forwarded"
    );
    assert!(
        !connects(fabric, Some(BLOCKED), HOST, 8080),
        "pre-DNAT deny, to the host"
    );
    assert!(
        connects(fabric, Some(BLOCKED), HOST, 22),
        "failsafe before pre-DNAT"
    );
    assert!(
        connects(fabric, None, HOST, 9443),
        "pre-DNAT allow skips normal policy"
    );
    assert!(connects(fabric, None, WORKLOAD, 80), "the rest as before");

    // Untracked policy, before conntrack and before pre-DNAT policy.
    assert!(
        !connects(fabric, None, HOST, 7070),
        "no policy allows 7070 yet"
    );
    // Ingress alone: the connection is not tracked, so nothing lets the host's replies out.
    let ingress_only = UNTRACKED_POLICY.split("egress:").next().unwrap();
    h.upsert(ingress_only).await;
    assert!(
        h.compiler.ruleset().chains.contains_key("raw-prerouting"),
        "untracked policy brings the raw chains"
    );
    assert!(
        !connects(fabric, None, HOST, 7070),
        "untracked: the replies are not established traffic"
    );
    h.upsert(UNTRACKED_POLICY).await;
    assert!(connects(fabric, None, HOST, 7070), "untracked both ways");
    assert!(
        !connects(fabric, None, HOST, 9443),
        "untracked deny before pre-DNAT allow"
    );
    assert!(
        connects(fabric, None, HOST, 8080),
        "undecided: on to normal policy"
    );

    // Workloads may reach the host once the setting says so.
    let accept = HostConfig {
        endpoint_to_host: EndpointToHostAction::Accept,
        ..HostConfig::default()
    };
    h.reconfigure(CompileConfig {
        host: accept,
        ..CompileConfig::new("h1")
    })
    .await;
    assert!(
        connects(wl, None, HOST, 8080),
        "defaultEndpointToHostAction Accept"
    );
    assert!(
        connects(wl, None, HOST, 9090),
        "the uplink's policy is not the workload's"
    );

    // Without the host endpoint the host is open again; its policies stay in the model.
    h.update(Update::Remove(ResourceKey::HostEndpoint("h1-eth0".into())))
        .await;
    assert!(connects(fabric, None, HOST, 9090));
    assert!(connects(fabric, Some(BLOCKED), WORKLOAD, 81));
    assert!(connects(host_ns, None, FABRIC, 9000));
    assert_eq!(h.model.policies.len(), 4);
    let chains = &h.compiler.ruleset().chains;
    assert!(
        !chains
            .keys()
            .any(|c| c.starts_with("hep-") || c.starts_with("raw-")),
        "{:?}",
        chains.keys()
    );
}

/// A host endpoint naming no interface, found by the address `192.0.2.1` (expected on the
/// uplink, beside the address the fabric talks to).
const BY_ADDRESS: &str = r#"
kind: HostEndpoint
name: h1-uplink-by-ip
node: h1
expectedIPs: [192.0.2.1]
labels: {role: uplink}
---
kind: Policy
name: uplink-in
selector: role == 'uplink'
types: [Ingress]
ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
"#;

/// `ip addr <verb>`s 192.0.2.1 on the host's eth0 and waits until the FIB reports it.
async fn change_address(
    host_ns: &Netns,
    verb: &str,
    drift: &mut tokio::sync::watch::Receiver<u64>,
) {
    drift.borrow_and_update();
    host_ns
        .run(&["ip", "addr", verb, "192.0.2.1/32", "dev", "eth0"])
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), drift.changed())
        .await
        .unwrap_or_else(|_| panic!("the FIB reports the address change ({verb})"))
        .unwrap();
}

/// The agent's round for an address change: read the kernel's interface addresses (the
/// FIB backend), hand them to the compiler, program what changed.
async fn follow_addresses(h: &mut ProgrammedHost, fib: &LinuxFib) {
    let addrs = fib.interface_addresses().await.unwrap();
    h.compiler.set_interface_addresses(&h.model, addrs);
    h.acl.apply(&h.compiler.take_changes()).await.unwrap();
    assert_eq!(&h.acl.dump().await.unwrap(), h.compiler.ruleset());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_endpoint_found_by_expected_ips_is_enforced_where_its_address_is() {
    if !privileged("a_host_endpoint_found_by_expected_ips_is_enforced_where_its_address_is") {
        return;
    }
    let topo = Topology::new(&[("calia", WORKLOAD)]);
    let (host_ns, fabric) = (&topo.host, &topo.fabric);
    let _host_listeners = listen_all(host_ns, &[8080, 9090]);
    let fib = LinuxFib::in_netns(host_ns.path(), FibConfig::default()).unwrap();
    let mut drift = fib.drift().expect("rtnetlink events");
    let model = Model::from_resources(parse_resources(BY_ADDRESS).unwrap()).unwrap();
    let mut h = ProgrammedHost::new(host_ns, CompileConfig::new("h1"), model).await;
    follow_addresses(&mut h, &fib).await;
    // No interface holds 192.0.2.1 yet: nothing is enforced.
    assert!(
        connects(fabric, None, HOST, 9090),
        "no interface holds its address"
    );

    // The uplink gets the address: the endpoint's policy applies to the uplink, to every
    // address of the host behind it (host-endpoint policy is per interface).
    change_address(host_ns, "add", &mut drift).await;
    follow_addresses(&mut h, &fib).await;
    assert!(connects(fabric, None, HOST, 8080), "uplink-in allows 8080");
    assert!(!connects(fabric, None, HOST, 9090), "default deny on eth0");

    // The address goes: so does the endpoint, from the uplink.
    change_address(host_ns, "del", &mut drift).await;
    follow_addresses(&mut h, &fib).await;
    assert!(
        connects(fabric, None, HOST, 9090),
        "not enforced once the address is gone"
    );
    let chains = &h.compiler.ruleset().chains;
    assert!(
        !chains.contains_key(&HostPath::In.chain("eth0")),
        "{:?}",
        chains.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failsafe_entry_with_a_network_lets_in_only_sources_inside_it() {
    if !privileged("a_failsafe_entry_with_a_network_lets_in_only_sources_inside_it") {
        return;
    }
    let topo = Topology::with_outside(&[("calia", vec![WORKLOAD])], &[BLOCKED]);
    let (host_ns, fabric) = (&topo.host, &topo.fabric);
    let _host_listeners = listen_all(host_ns, &[8080, 9090]);
    let host = HostConfig {
        failsafe_inbound: parse_failsafe_list("tcp:192.168.255.0/30:9090").unwrap(),
        ..HostConfig::default()
    };
    let config = CompileConfig {
        host,
        ..CompileConfig::new("h1")
    };
    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let _programmed = ProgrammedHost::new(host_ns, config, model).await;
    // The uplink's policy allows 8080 only: 9090 is open by the failsafe entry alone.
    assert!(
        connects(fabric, None, HOST, 9090),
        "a source inside the failsafe network"
    );
    assert!(
        !connects(fabric, Some(BLOCKED), HOST, 9090),
        "a source outside it"
    );
    assert!(
        connects(fabric, Some(BLOCKED), HOST, 8080),
        "policy still applies"
    );
}

/// Untracked policy denying all TCP both ways on the uplink: before conntrack a reply is
/// not established traffic, so the failsafe connections' replies have rules of their own
/// in the untracked chains, as in Felix's raw chains (the host's BGP connection out to
/// tcp:179, and SSH in to tcp:22, survive).
const UNTRACKED_DENY_ALL: &str = r#"
kind: Policy
name: uplink-untracked-deny
selector: role == 'uplink'
doNotTrack: true
applyOnForward: true
ingress: [{action: Deny, protocol: TCP}]
egress: [{action: Deny, protocol: TCP}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untracked_policy_does_not_cut_the_failsafe_connections_replies() {
    if !privileged("untracked_policy_does_not_cut_the_failsafe_connections_replies") {
        return;
    }
    let topo = Topology::with_outside(&[("calia", vec![WORKLOAD])], &[BLOCKED]);
    let (host_ns, fabric) = (&topo.host, &topo.fabric);
    let _host_listeners = listen_all(host_ns, &[22, 8080]);
    let _fabric_listeners = listen_all(fabric, &[179, 8080]);
    let text = format!("{MODEL}---\n{UNTRACKED_DENY_ALL}");
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    let _programmed = ProgrammedHost::new(host_ns, CompileConfig::new("h1"), model).await;
    assert!(
        connects(fabric, None, HOST, 22),
        "SSH in: the host's SYN-ACK passes the untracked egress deny"
    );
    assert!(
        connects(host_ns, None, FABRIC, 179),
        "BGP out: the peer's SYN-ACK passes the untracked ingress deny"
    );
    assert!(
        !connects(fabric, None, HOST, 8080),
        "what is not failsafe is denied (untracked ingress)"
    );
    assert!(
        !connects(host_ns, None, FABRIC, 8080),
        "what is not failsafe is denied (untracked egress)"
    );
}
