//! The eBPF backend on real packets: the nft backend's packet test (calico-linux's
//! `acl_packets.rs`: a host namespace with three workloads, a model, ping, TCP and UDP),
//! programmed through `AclBackend` by `EbpfBackend`, on calico-linux's test topology.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_core::model::parse_resources;
use calico_core::model::Model;
use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
use calico_netns::fixtures::privileged;
use support::{tcp_round_trip, udp_delivers, Topology};

const MODEL: &str = r#"
kind: Profile
name: kns.shop
egress:
  - action: Allow
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.frontend
endpoint: eth0
namespace: shop
node: h1
interfaceName: calia
ipNetworks: [10.65.0.10/32]
labels: {app: frontend}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.backend
endpoint: eth0
namespace: shop
node: h1
interfaceName: calib
ipNetworks: [10.65.0.20/32]
labels: {app: backend}
profiles: [kns.shop]
ports:
  - {name: http, protocol: TCP, port: 8080}
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.other
endpoint: eth0
namespace: shop
node: h1
interfaceName: calic
ipNetworks: [10.65.0.30/32]
labels: {app: other}
profiles: [kns.shop]
---
kind: Policy
name: backend-ingress
namespace: shop
order: 100
selector: app == 'backend'
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'frontend'}
    destination: {ports: [HTTP_PORT]}
  - action: Allow
    protocol: ICMP
    source: {selector: app == 'frontend'}
  - action: Allow
    protocol: UDP
    destination: {ports: [5353]}
"#;

fn model(http_port: &str) -> Model {
    let text = MODEL.replace("HTTP_PORT", http_port);
    Model::from_resources(parse_resources(&text).unwrap()).unwrap()
}

fn backend(topo: &Topology) -> EbpfBackend {
    EbpfBackend::new(EbpfConfig {
        netns: Some(topo.host.path().into()),
        host_interfaces: vec!["eth0".into()],
        set_capacity: 1024,
        // The conntrack kfuncs need a GPL-compatible declaration (see EbpfConfig).
        license: c"GPL".into(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_is_enforced_on_real_packets() {
    if !privileged("policy_is_enforced_on_real_packets") {
        return;
    }
    let topo = Topology::new(&[
        ("calia", "10.65.0.10"),
        ("calib", "10.65.0.20"),
        ("calic", "10.65.0.30"),
    ]);
    let [front, back, other] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = backend(&topo);

    // Without ACLs everything flows, spoofed sources included: the drops below are ours.
    let spoofed_ip = "10.65.0.99".parse().unwrap();
    front
        .ns
        .run(&["ip", "addr", "add", "10.65.0.99/32", "dev", "eth0"])
        .unwrap();
    let udp_server = back.udp(back.ip, 5353);
    assert!(other.ping(back.ip));
    assert!(udp_delivers(&front.udp(spoofed_ip, 0), &udp_server));

    let config = CompileConfig::new("h1");
    let v1 = compile(&config, &model("http"));
    acl.apply(&diff(&Ruleset::default(), &v1)).await.unwrap();

    // ICMP: frontend only.
    assert!(front.ping(back.ip), "frontend → backend ping is allowed");
    assert!(!other.ping(back.ip), "other → backend ping is denied");
    assert!(!back.ping(front.ip), "the profile has no ingress rules");

    // TCP: frontend to the named port only.
    let listener = back.listen_tcp(8080);
    let _closed = back.listen_tcp(9090);
    let mut client = front
        .connect_tcp(back.ip, 8080)
        .expect("frontend → backend:http connects");
    let (mut server, _) = listener.accept().unwrap();
    assert!(tcp_round_trip(&mut client, &mut server));
    assert!(
        other.connect_tcp(back.ip, 8080).is_none(),
        "other → backend:http is denied"
    );
    assert!(
        front.connect_tcp(back.ip, 9090).is_none(),
        "frontend → backend:9090 is denied"
    );

    // UDP 5353 from anyone, but never from a spoofed source.
    assert!(udp_delivers(&other.udp(other.ip, 0), &udp_server));
    assert!(udp_delivers(&front.udp(front.ip, 0), &udp_server));
    assert!(
        !udp_delivers(&front.udp(spoofed_ip, 0), &udp_server),
        "spoofed source is dropped"
    );

    // A policy change: http moves to 9090. New connections follow the new policy; the
    // established one keeps working.
    let v2 = compile(&config, &model("9090"));
    let changes = diff(&v1, &v2);
    assert!(!changes.is_empty());
    acl.apply(&changes).await.unwrap();
    assert!(
        front.connect_tcp(back.ip, 8080).is_none(),
        "8080 is closed by the new policy"
    );
    assert!(
        front.connect_tcp(back.ip, 9090).is_some(),
        "9090 is open by the new policy"
    );
    assert!(
        tcp_round_trip(&mut client, &mut server),
        "the established flow survives"
    );
    assert_eq!(acl.dump().await.unwrap(), v2);

    // Removing everything detaches everything: all flows again.
    acl.apply(&diff(&v2, &Ruleset::default())).await.unwrap();
    assert!(other.ping(back.ip), "no program left");
    assert!(other.connect_tcp(back.ip, 9090).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interface_gets_its_programs_at_the_resync_after_it_appears() {
    if !privileged("a_missing_interface_gets_its_programs_at_the_resync_after_it_appears") {
        return;
    }
    // calic is in the model, not on the host.
    let topo = Topology::new(&[("calia", "10.65.0.10"), ("calib", "10.65.0.20")]);
    let acl = backend(&topo);
    let v1 = compile(&CompileConfig::new("h1"), &model("http"));
    acl.apply(&diff(&Ruleset::default(), &v1)).await.unwrap();
    let seen = acl.dump().await.unwrap();
    assert_ne!(seen, v1, "calic's entries are not in effect");
    assert!(seen
        .maps
        .values()
        .all(|m| !m.elements.contains_key("calic")));
    // Nothing changes while it is missing: the resync finds the same difference.
    acl.apply(&diff(&seen, &v1)).await.unwrap();
    assert_ne!(acl.dump().await.unwrap(), v1);

    topo.host
        .run(&[
            "ip", "link", "add", "calic", "type", "veth", "peer", "name", "calic-p",
        ])
        .unwrap();
    let seen = acl.dump().await.unwrap();
    acl.apply(&diff(&seen, &v1)).await.unwrap();
    assert_eq!(acl.dump().await.unwrap(), v1, "attached once it exists");

    // Deleted, it lost its programs: the dump shows it, and the resync attaches anew.
    topo.host.run(&["ip", "link", "del", "calic"]).unwrap();
    topo.host
        .run(&[
            "ip", "link", "add", "calic", "type", "veth", "peer", "name", "calic-p",
        ])
        .unwrap();
    let seen = acl.dump().await.unwrap();
    assert_ne!(seen, v1, "made again: its programs went with the old one");
    acl.apply(&diff(&seen, &v1)).await.unwrap();
    assert_eq!(acl.dump().await.unwrap(), v1);
}
