//! Block aggregation on the simulated network: hosts advertise their blocks, a workload
//! borrowed from another host's block is still reached on the host that runs it.

use calico_core::eval::Packet;
use calico_core::model::{parse_resources, Update};
use calico_mock::MockNetwork;

const MODEL: &str = "
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: BlockAffinity
cidr: 10.65.0.0/26
node: h1
---
kind: BlockAffinity
cidr: 10.65.0.64/26
node: h2
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
node: h1
interfaceName: cali-a
ipNetworks: [10.65.0.1/32]
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: borrowed
endpoint: eth0
node: h1
interfaceName: cali-b
ipNetworks: [10.65.0.70/32]
profiles: [open]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: c
endpoint: eth0
node: h2
interfaceName: cali-c
ipNetworks: [10.65.0.65/32]
profiles: [open]
";

#[test]
fn blocks_and_borrowed_addresses_route_to_the_right_host() {
    let mut net = MockNetwork::new();
    net.add_host("h1", "192.0.2.1".parse().unwrap());
    net.add_host("h2", "192.0.2.2".parse().unwrap());
    for r in parse_resources(MODEL).unwrap() {
        net.apply(Update::Upsert(r)).unwrap();
    }
    net.sync();
    let ip = |s: &str| s.parse().unwrap();
    for (src, dst) in [
        ("10.65.0.65", "10.65.0.1"),
        ("10.65.0.65", "10.65.0.70"),
        ("10.65.0.70", "10.65.0.65"),
    ] {
        let d = net.send(&Packet::tcp(ip(src), 40000, ip(dst), 80)).unwrap();
        assert!(d.delivered, "{src} → {dst}: {d}");
        let last = &d.hops.last().unwrap().host;
        let owner = if dst == "10.65.0.65" { "h2" } else { "h1" };
        assert_eq!(
            last, owner,
            "{src} → {dst} ends on the host running the workload"
        );
    }
}
