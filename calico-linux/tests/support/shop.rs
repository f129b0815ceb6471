//! The shop scenario the ACL backends' packet tests share: a frontend, a backend and an
//! outsider workload, a model whose policy lets the frontend reach the backend's named
//! port and pings, then a policy edit that opens another port while an established flow
//! carries on.

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_core::model::{parse_resources, Model};

use super::{tcp_round_trip, udp_delivers, Topology};

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

pub fn model(http_port: &str) -> Model {
    let text = MODEL.replace("HTTP_PORT", http_port);
    Model::from_resources(parse_resources(&text).unwrap()).unwrap()
}

/// The three workloads of the scenario (frontend, backend, other), for [`Topology::new`].
pub const WORKLOADS: [(&str, &str); 3] = [
    ("calia", "10.65.0.10"),
    ("calib", "10.65.0.20"),
    ("calic", "10.65.0.30"),
];

/// Runs the scenario on `topo` (made from [`WORKLOADS`]) with `acl` programming its host:
/// every check on real packets; returns the ruleset left programmed.
pub async fn policy_on_real_packets(topo: &Topology, acl: &dyn AclBackend) -> Ruleset {
    let [front, back, other] = &topo.workloads[..] else {
        unreachable!()
    };
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
    // The frontend's profile admits nothing in: its ping got its reply only as part of an
    // established flow; a ping the other way is denied.
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
    v2
}
