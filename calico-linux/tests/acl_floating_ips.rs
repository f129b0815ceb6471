//! Floating IPs (`ipNATs`, 1:1 NAT as OpenStack Neutron uses it) on real packets: a host
//! namespace with one workload behind it and the fabric beyond its uplink. The fabric
//! reaches the workload at its floating IP (TCP and ping) and hears back from the floating
//! IP; the workload reaches itself at its floating IP (hairpin: destination then source
//! NAT); policy on the workload's own address governs the floating IP's traffic (policy
//! sees the translated destination); removing the NAT removes the translation. Each step
//! is programmed through the incremental compiler, and the table read back equals the IR.

mod support;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use calico_core::compile::{CompileConfig, FIP_DNAT_CHAIN, NAT_PREROUTING_CHAIN};
use calico_core::model::{parse_resources, Model, Resource, Update};
use calico_netns::fixtures::{privileged, Netns};
use support::{listen_all, tcp_round_trip, ProgrammedHost, Topology};

const VM: &str = "10.65.0.2";
const FLOATING: &str = "172.16.0.5";
const FABRIC: &str = "192.168.255.2";

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: openstack
workload: vm
endpoint: tap1
node: h1
interfaceName: calivm
ipNetworks: [10.65.0.2/32]
ipNATs: [{internalIP: 10.65.0.2, externalIP: 172.16.0.5}]
labels: {app: vm}
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
"#;

/// Denies SSH to the workload's own address, allows the rest.
const DENY_SSH: &str = r#"
kind: Policy
name: vm-ssh
selector: app == 'vm'
types: [Ingress]
ingress:
  - {action: Deny, protocol: TCP, destination: {nets: [10.65.0.2/32], ports: [22]}}
  - {action: Allow}
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP connection from `ns` to `dst:port`, if it is set up.
fn connect(ns: &Netns, dst: &str, port: u16) -> Option<TcpStream> {
    let dst = SocketAddr::new(ip(dst), port);
    let s = ns
        .enter(move || TcpStream::connect_timeout(&dst, Duration::from_millis(700)))
        .unwrap()
        .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    Some(s)
}

/// Connects from `ns` to the floating IP's `port`, accepts on `listener`, and checks a
/// round trip; returns the client's and the server's view of the connection: (client's
/// local, client's peer, server's peer, server's local) addresses.
fn floating_connection(
    ns: &Netns,
    port: u16,
    listener: &TcpListener,
) -> Option<(IpAddr, IpAddr, IpAddr, IpAddr)> {
    let mut client = connect(ns, FLOATING, port)?;
    let (mut server, _) = listener.accept().unwrap();
    assert!(tcp_round_trip(&mut client, &mut server));
    Some((
        client.local_addr().unwrap().ip(),
        client.peer_addr().unwrap().ip(),
        server.peer_addr().unwrap().ip(),
        server.local_addr().unwrap().ip(),
    ))
}

/// Whether one ping from `ns` to `dst` is answered, and by whom (`ping` prints the
/// reply's source).
fn ping(ns: &Netns, dst: &str) -> Option<String> {
    let out = ns.output(&["ping", "-n", "-c1", "-W1", dst]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    out.status.success().then_some(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_ips_translate_real_connections_both_ways() {
    if !privileged("floating_ips_translate_real_connections_both_ways") {
        return;
    }
    let topo = Topology::with_outside(&[("calivm", vec![VM])], &[]);
    let (host, fabric, vm) = (&topo.host, &topo.fabric, &topo.workloads[0]);
    // Felix routes the floating IP to the workload's interface, as its own address.
    host.run(&[
        "ip",
        "route",
        "add",
        &format!("{FLOATING}/32"),
        "dev",
        "calivm",
    ])
    .unwrap();
    let listeners = listen_all(&vm.ns, &[22, 80]);
    let (ssh, web) = (&listeners[0], &listeners[1]);
    assert!(
        connect(fabric, FLOATING, 80).is_none(),
        "without the NAT, the workload does not own the floating IP"
    );

    let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let mut h = ProgrammedHost::new(host, CompileConfig::new("h1"), model).await;

    // The fabric reaches the workload at its floating IP; the workload sees the fabric's
    // address and its own; the fabric hears back from the floating IP.
    let seen = floating_connection(fabric, 80, web).expect("TCP to the floating IP");
    assert_eq!(seen, (ip(FABRIC), ip(FLOATING), ip(FABRIC), ip(VM)));
    let reply = ping(fabric, FLOATING).expect("ping to the floating IP");
    assert!(reply.contains(&format!("from {FLOATING}")), "{reply}");

    // Hairpin: the workload reaches itself at its floating IP, and sees the connection
    // come from the floating IP, not from its own address.
    let seen = floating_connection(&vm.ns, 80, web).expect("hairpin TCP");
    assert_eq!(seen, (ip(VM), ip(FLOATING), ip(FLOATING), ip(VM)));

    // Policy sees the workload's own address: denying its SSH closes the floating IP's.
    assert!(floating_connection(fabric, 22, ssh).is_some(), "SSH before");
    h.upsert(DENY_SSH).await;
    assert!(
        connect(fabric, FLOATING, 22).is_none(),
        "the deny on 10.65.0.2:22 applies to the floating IP"
    );
    assert!(
        floating_connection(fabric, 80, web).is_some(),
        "the rest as before"
    );

    // Removing the NAT removes the translation (and the NAT chains).
    let mut ep = h.model.workload_endpoints.values().next().unwrap().clone();
    ep.ip_nats.clear();
    h.update(Update::Upsert(Resource::WorkloadEndpoint(ep)))
        .await;
    let r = h.compiler.ruleset();
    assert!(!r.chains.contains_key(FIP_DNAT_CHAIN) && !r.chains.contains_key(NAT_PREROUTING_CHAIN));
    assert!(
        connect(fabric, FLOATING, 80).is_none(),
        "no NAT, no connection"
    );
    assert!(connect(&vm.ns, FLOATING, 80).is_none(), "no hairpin either");
    assert!(
        connect(fabric, VM, 80).is_some(),
        "the workload's own address still works"
    );
}
