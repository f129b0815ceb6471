//! Floating IPs (`ipNATs`, 1:1 NAT as OpenStack Neutron uses it) on real packets, IPv4 and
//! IPv6: a host namespace with one workload behind it and the fabric beyond its uplink. The
//! fabric reaches the workload at its floating IP (TCP and ping) and hears back from the
//! floating IP; the workload reaches itself at its floating IP (hairpin: destination then
//! source NAT); policy on the workload's own address governs the floating IP's traffic
//! (policy sees the translated destination); removing the NAT removes the translation.
//! Each step is programmed through the incremental compiler, and the table read back equals
//! the IR.

mod support;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use calico_core::compile::{CompileConfig, FIP_DNAT_CHAIN, NAT_PREROUTING_CHAIN};
use calico_core::model::{parse_resources, Model, Resource, Update};
use calico_netns::fixtures::{privileged, Netns};
use support::{host_prefix, tcp_round_trip, ProgrammedHost, Topology};

/// The addresses of one IP family: the workload's own, its floating IP, and the fabric's
/// (the uplink's far end, [`Topology::with_outside`]).
struct Addresses {
    vm: &'static str,
    floating: &'static str,
    fabric: &'static str,
}

const IPV4: Addresses = Addresses {
    vm: "10.65.0.2",
    floating: "172.16.0.5",
    fabric: "192.168.255.2",
};

const IPV6: Addresses = Addresses {
    vm: "fd00:65::2",
    floating: "fd00:172::5",
    fabric: "fd00:255::2",
};

impl Addresses {
    /// The workload with its floating IP, and a profile allowing everything.
    fn model(&self) -> String {
        let (vm, floating) = (self.vm, self.floating);
        format!(
            r#"
kind: WorkloadEndpoint
orchestrator: openstack
workload: vm
endpoint: tap1
node: h1
interfaceName: calivm
ipNetworks: ["{vm_net}"]
ipNATs: [{{internalIP: "{vm}", externalIP: "{floating}"}}]
labels: {{app: vm}}
profiles: [open]
---
kind: Profile
name: open
ingress: [{{action: Allow}}]
egress: [{{action: Allow}}]
"#,
            vm_net = host_prefix(vm),
        )
    }

    /// Denies SSH to the workload's own address, allows the rest.
    fn deny_ssh(&self) -> String {
        format!(
            r#"
kind: Policy
name: vm-ssh
selector: app == 'vm'
types: [Ingress]
ingress:
  - {{action: Deny, protocol: TCP, destination: {{nets: ["{}"], ports: [22]}}}}
  - {{action: Allow}}
"#,
            host_prefix(self.vm)
        )
    }
}

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

/// Connects from `ns` to `floating:port`, accepts on `listener`, and checks a round trip;
/// returns the client's and the server's view of the connection: (client's local, client's
/// peer, server's peer, server's local) addresses.
fn floating_connection(
    ns: &Netns,
    floating: &str,
    port: u16,
    listener: &TcpListener,
) -> Option<(IpAddr, IpAddr, IpAddr, IpAddr)> {
    let mut client = connect(ns, floating, port)?;
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
    translate_real_connections(&IPV4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_floating_ips_translate_real_connections_both_ways() {
    if !privileged("ipv6_floating_ips_translate_real_connections_both_ways") {
        return;
    }
    translate_real_connections(&IPV6).await;
}

/// The whole story for the addresses `a` of one family.
async fn translate_real_connections(a: &Addresses) {
    let topo = Topology::with_outside(&[("calivm", vec![a.vm])], &[]);
    let (host, fabric, vm) = (&topo.host, &topo.fabric, &topo.workloads[0]);
    // Felix routes the floating IP to the workload's interface, as its own address.
    let route = host_prefix(a.floating);
    host.run(&["ip", "route", "add", &route, "dev", "calivm"])
        .unwrap();
    let (ssh, web) = (&vm.listen_tcp(22), &vm.listen_tcp(80));
    assert!(
        connect(fabric, a.floating, 80).is_none(),
        "without the NAT, the workload does not own the floating IP"
    );

    let model = Model::from_resources(parse_resources(&a.model()).unwrap()).unwrap();
    let mut h = ProgrammedHost::new(host, CompileConfig::new("h1"), model).await;

    // The fabric reaches the workload at its floating IP; the workload sees the fabric's
    // address and its own; the fabric hears back from the floating IP.
    let (fab, fip, own) = (ip(a.fabric), ip(a.floating), ip(a.vm));
    let seen = floating_connection(fabric, a.floating, 80, web).expect("TCP to the floating IP");
    assert_eq!(seen, (fab, fip, fab, own));
    let reply = ping(fabric, a.floating).expect("ping to the floating IP");
    assert!(reply.contains(&format!("from {}", a.floating)), "{reply}");

    // Hairpin: the workload reaches itself at its floating IP, and sees the connection
    // come from the floating IP, not from its own address.
    let seen = floating_connection(&vm.ns, a.floating, 80, web).expect("hairpin TCP");
    assert_eq!(seen, (own, fip, fip, own));

    // Policy sees the workload's own address: denying its SSH closes the floating IP's.
    assert!(
        floating_connection(fabric, a.floating, 22, ssh).is_some(),
        "SSH before"
    );
    h.upsert(&a.deny_ssh()).await;
    assert!(
        connect(fabric, a.floating, 22).is_none(),
        "the deny on {}:22 applies to the floating IP",
        a.vm
    );
    assert!(
        floating_connection(fabric, a.floating, 80, web).is_some(),
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
        connect(fabric, a.floating, 80).is_none(),
        "no NAT, no connection"
    );
    assert!(
        connect(&vm.ns, a.floating, 80).is_none(),
        "no hairpin either"
    );
    assert!(
        connect(fabric, a.vm, 80).is_some(),
        "the workload's own address still works"
    );
}
