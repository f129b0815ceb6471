//! Network sets enforced by the kernel on real packets: a workload admits UDP only from a
//! GlobalNetworkSet's networks; datagrams come from outside addresses held by the fabric
//! namespace. Changing the set's networks reaches the kernel as set-element changes only,
//! through the incremental compiler, and takes effect for new flows at once.

mod support;

use std::net::{SocketAddr, UdpSocket};

use calico_core::compile::{CompileConfig, Compiler};
use calico_core::dataplane::{AclBackend, Change};
use calico_core::model::{parse_resources, Model, NetworkSet, Resource, Update};
use calico_linux::acl::LinuxAcl;
use calico_netns::fixtures::{privileged, Netns};
use support::{udp_delivers, Topology};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.db
endpoint: eth0
namespace: shop
node: h1
interfaceName: calia
ipNetworks: [10.65.0.10/32]
labels: {app: db}
---
kind: Policy
name: partners-to-db
selector: app == 'db'
types: [Ingress]
ingress:
  - action: Allow
    protocol: UDP
    source: {selector: role == 'partner'}
    destination: {ports: [5432]}
---
kind: NetworkSet
name: partners
labels: {role: partner}
nets: [198.51.100.0/28]
"#;

const INSIDE: &str = "198.51.100.5";
const LATER: &str = "203.0.113.9";

/// A UDP socket in the fabric, bound to one of its outside addresses (a new port each time,
/// so that each datagram is a new flow for conntrack).
fn outside(fabric: &Netns, ip: &str) -> UdpSocket {
    let addr = SocketAddr::new(ip.parse().unwrap(), 0);
    fabric
        .enter(move || UdpSocket::bind(addr))
        .unwrap()
        .unwrap()
}

fn partners(nets: &[&str]) -> Update {
    Update::Upsert(Resource::NetworkSet(NetworkSet {
        name: "partners".into(),
        namespace: None,
        labels: [("role".to_string(), "partner".to_string())].into(),
        nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_network_set_admits_its_networks_and_follows_their_changes() {
    if !privileged("a_global_network_set_admits_its_networks_and_follows_their_changes") {
        return;
    }
    let topo = Topology::with_outside(&[("calia", vec!["10.65.0.10"])], &[INSIDE, LATER]);
    let db = &topo.workloads[0];
    let server = db.udp(db.ip, 5432);
    // Without ACLs both outside addresses reach the workload: the drops below are ours.
    assert!(udp_delivers(&outside(&topo.fabric, INSIDE), &server));
    assert!(udp_delivers(&outside(&topo.fabric, LATER), &server));

    let acl = LinuxAcl::in_netns(topo.host.path().as_ref(), "calico").unwrap();
    let mut model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let mut compiler = Compiler::from_model(CompileConfig::new("h1"), &model);
    acl.apply(&compiler.take_changes()).await.unwrap();
    assert!(
        udp_delivers(&outside(&topo.fabric, INSIDE), &server),
        "a source in the set's network is allowed"
    );
    assert!(
        !udp_delivers(&outside(&topo.fabric, LATER), &server),
        "a source outside every selected set is dropped"
    );

    // The set now holds the other network: element changes only, no chain touched.
    let applied = model.apply_valid(partners(&["203.0.113.0/24"]));
    compiler.apply(&model, &applied);
    let changes = compiler.take_changes();
    assert!(!changes.is_empty());
    for c in &changes.changes {
        assert!(
            matches!(c, Change::AddElements { .. } | Change::DelElements { .. }),
            "not an element change: {c:?}"
        );
    }
    acl.apply(&changes).await.unwrap();
    assert!(
        !udp_delivers(&outside(&topo.fabric, INSIDE), &server),
        "the old network no longer admits"
    );
    assert!(
        udp_delivers(&outside(&topo.fabric, LATER), &server),
        "the new network admits"
    );
    // What the kernel holds is what the compiler holds.
    assert_eq!(&acl.dump().await.unwrap(), compiler.ruleset());
}
