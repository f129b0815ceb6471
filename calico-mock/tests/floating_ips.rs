//! Floating IPs (`ipNATs`) on the simulated network, as the kernel test
//! (`calico-linux/tests/acl_floating_ips.rs`) checks them on Linux: a client on another host
//! reaches a workload at its floating IP (TCP and ping) and the replies come back from the
//! floating IP; the workload reaches itself at its floating IP (hairpin); policy sees the
//! internal address; removing the NAT removes the translation and the route.

use std::net::IpAddr;

use calico_core::eval::Packet;
use calico_core::model::{parse_resources, Resource, Update, WorkloadEndpoint};
use calico_mock::{Delivery, MockNetwork};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: vm
endpoint: eth0
node: h1
interfaceName: cali-vm
ipNetworks: [10.65.0.2/32]
ipNATs: [{internalIP: 10.65.0.2, externalIP: 172.16.0.5}]
labels: {app: vm}
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: client
endpoint: eth0
node: h2
interfaceName: cali-client
ipNetworks: [10.65.1.1/32]
labels: {app: client}
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
"#;

const DENY_SSH: &str = r#"
kind: Policy
name: vm-ssh
selector: app == 'vm'
ingress:
  - {action: Deny, protocol: TCP, destination: {nets: [10.65.0.2/32], ports: [22]}}
  - {action: Allow}
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const VM: &str = "10.65.0.2";
const FLOATING: &str = "172.16.0.5";
const CLIENT: &str = "10.65.1.1";

fn network(floating_ips: bool) -> MockNetwork {
    let mut net = if floating_ips {
        MockNetwork::with_floating_ips()
    } else {
        MockNetwork::new()
    };
    net.add_host("h1", ip("192.0.2.1"));
    net.add_host("h2", ip("192.0.2.2"));
    upsert(&mut net, MODEL);
    net
}

/// Applies every resource of `yaml`.
fn upsert(net: &mut MockNetwork, yaml: &str) {
    for r in parse_resources(yaml).unwrap() {
        net.apply(Update::Upsert(r)).unwrap();
    }
}

/// The workload with the floating IP, as the network holds it.
fn vm(net: &MockNetwork) -> WorkloadEndpoint {
    let eps = &net.model().workload_endpoints;
    eps.values()
        .find(|ep| ep.id.workload == "vm")
        .cloned()
        .unwrap()
}

/// Sends a TCP packet from `src` to the floating IP's `port`.
fn to_floating(net: &MockNetwork, src: &str, port: u16) -> Delivery {
    net.send(&Packet::tcp(ip(src), 40000, ip(FLOATING), port))
        .unwrap()
}

fn addresses(d: &Delivery) -> (IpAddr, IpAddr) {
    let p = d.received.as_ref().expect("delivered");
    (p.src, p.dst)
}

/// Sends `p`, expects it delivered as `(src, dst)`, replies and expects the reply delivered
/// as the reverse of `p`'s own addresses.
fn connect(net: &MockNetwork, p: &Packet, seen_as: (&str, &str)) {
    let there = net.send(p).unwrap();
    assert!(there.delivered, "{there}");
    assert_eq!(addresses(&there), (ip(seen_as.0), ip(seen_as.1)), "{there}");
    let back = net.reply(&there).unwrap();
    assert!(back.delivered, "{back}");
    assert_eq!(
        addresses(&back),
        (p.dst, p.src),
        "from the floating IP: {back}"
    );
}

#[test]
fn a_client_reaches_the_workload_at_its_floating_ip_and_hears_back_from_it() {
    let net = network(true);
    let tcp = Packet::tcp(ip(CLIENT), 40000, ip(FLOATING), 80);
    connect(&net, &tcp, (CLIENT, VM));
    let ping = Packet::icmp(ip(CLIENT), ip(FLOATING), 8, 0);
    connect(&net, &ping, (CLIENT, VM));
    // The translation happened on the workload's host, after the route learned by BGP.
    let d = net.send(&tcp).unwrap();
    let nat_hosts: Vec<&str> = d
        .hops
        .iter()
        .filter(|h| h.nat.is_some())
        .map(|h| h.host.as_str())
        .collect();
    assert_eq!(nat_hosts, ["h1"]);
}

#[test]
fn the_workload_reaches_itself_at_its_floating_ip() {
    let net = network(true);
    let hairpin = Packet::tcp(ip(VM), 40000, ip(FLOATING), 80);
    // DNAT to itself, then SNAT from the floating IP: it does not see its own address
    // as the source.
    connect(&net, &hairpin, (FLOATING, VM));
}

#[test]
fn policy_on_the_internal_address_governs_the_floating_ip() {
    let mut net = network(true);
    upsert(&mut net, DENY_SSH);
    let ssh = to_floating(&net, CLIENT, 22);
    assert!(!ssh.delivered, "{ssh}");
    assert!(ssh.to_string().contains("vm-ssh"), "{ssh}");
    let web = to_floating(&net, CLIENT, 80);
    assert!(web.delivered, "{web}");
}

#[test]
fn removing_the_nat_removes_the_translation_and_the_route() {
    let mut net = network(true);
    let vm = vm(&net);
    let without = WorkloadEndpoint {
        ip_nats: vec![],
        ..vm
    };
    net.apply(Update::Upsert(Resource::WorkloadEndpoint(without)))
        .unwrap();
    let d = to_floating(&net, CLIENT, 80);
    assert!(!d.delivered, "{d}");
    assert!(d.to_string().contains("no route to 172.16.0.5"), "{d}");
    let hairpin = to_floating(&net, VM, 80);
    assert!(!hairpin.delivered, "{hairpin}");
}

#[test]
fn floating_ips_are_off_unless_enabled_or_openstack() {
    let net = network(false);
    let d = to_floating(&net, CLIENT, 80);
    assert!(!d.delivered, "{d}");
    let mut net = network(false);
    let vm = vm(&net);
    net.apply(Update::Remove(
        calico_core::model::ResourceKey::WorkloadEndpoint(vm.id.clone()),
    ))
    .unwrap();
    let mut openstack = vm;
    openstack.id.orchestrator = calico_core::model::ORCHESTRATOR_OPENSTACK.into();
    net.apply(Update::Upsert(Resource::WorkloadEndpoint(openstack)))
        .unwrap();
    let tcp = Packet::tcp(ip(CLIENT), 40000, ip(FLOATING), 80);
    connect(&net, &tcp, (CLIENT, VM));
}

#[test]
fn a_reply_needs_a_delivered_packet() {
    let mut net = network(true);
    upsert(&mut net, DENY_SSH);
    let dropped = to_floating(&net, CLIENT, 22);
    assert!(net.reply(&dropped).is_err());
}
