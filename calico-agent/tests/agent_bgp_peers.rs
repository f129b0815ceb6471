//! A `BgpPeer`'s `reachableBy` on the real kernel: the agent installs the host route to the
//! peer via the gateway (as Calico's BIRD static route does), whichever BGP backend runs,
//! and removes it with the peering.

mod support;

use std::time::Duration;

use calico_netns::fixtures::privileged;
use support::{wait_until, Host};

fn resources(reachable_by: &str) -> String {
    format!(
        "kind: BgpConfiguration\nname: default\nnodeToNodeMeshEnabled: false\n\
         ---\nkind: Node\nname: rb-a\nbgp: {{ipv4Address: 192.168.76.1}}\n\
         ---\nkind: BgpPeer\nname: tor\nnode: rb-a\npeerIP: 198.51.100.1\nasNumber: 65100\n{reachable_by}"
    )
}

#[test]
fn a_peer_reachable_by_a_gateway_gets_a_host_route() {
    if !privileged("a_peer_reachable_by_a_gateway_gets_a_host_route") {
        return;
    }
    let mut host = Host::new("rb-a", None, "192.168.76.1", &[]);
    host.write("cluster.yaml", &resources("reachableBy: 192.168.76.254\n"));
    host.start_agent(&["--bgp", "native", "--http", "127.0.0.1:0"]);
    let routed = |h: &Host| h.routes().contains("198.51.100.1 via 192.168.76.254");
    assert!(
        wait_until(Duration::from_secs(20), || routed(&host)).is_some(),
        "{}\n{}",
        host.routes(),
        host.log()
    );
    // Without reachableBy the route goes.
    host.write("cluster.yaml", &resources(""));
    assert!(
        wait_until(Duration::from_secs(20), || !host
            .routes()
            .contains("198.51.100.1"))
        .is_some(),
        "{}\n{}",
        host.routes(),
        host.log()
    );
}
