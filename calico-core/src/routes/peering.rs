//! Which BGP sessions a node runs, from the model's `Node`, `BgpConfiguration` and `BgpPeer`
//! resources, as Calico derives them: the node-to-node mesh (on unless the `default`
//! configuration turns it off) plus explicit peerings selecting the node.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::dataplane::{BgpSettings, PeerConfig};
use crate::model::{AsNumber, Model, NodeBgp};

/// Calico's default AS.
pub const DEFAULT_AS: AsNumber = AsNumber(64512);
/// Hold time offered when a peering does not set one (RFC 4271's suggestion).
pub const DEFAULT_HOLD_TIME: u16 = 90;

/// The BGP settings of `node`, or `None` when it runs no BGP (no `Node` resource with an
/// IPv4 address, which is its router id).
pub fn bgp_settings(node: &str, model: &Model) -> Option<BgpSettings> {
    let me = model.nodes.get(node)?;
    let my_bgp = me.bgp.as_ref()?;
    let router_id = my_bgp.ipv4_address?;
    let config = model.bgp_configurations.get("default");
    let node_config = model.bgp_configurations.get(&format!("node.{node}"));
    let cluster_as = node_config
        .and_then(|c| c.as_number)
        .or(config.and_then(|c| c.as_number))
        .unwrap_or(DEFAULT_AS);
    let as_of = |b: &NodeBgp| b.as_number.unwrap_or(cluster_as);
    let listen_port = node_config
        .and_then(|c| c.listen_port)
        .or(config.and_then(|c| c.listen_port))
        .unwrap_or(179);
    let mesh = config
        .and_then(|c| c.node_to_node_mesh_enabled)
        .unwrap_or(true);
    let cluster_id = my_bgp.route_reflector_cluster_id;
    let my_addrs: Vec<IpAddr> = [
        my_bgp.ipv4_address.map(IpAddr::V4),
        my_bgp.ipv6_address.map(IpAddr::V6),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A peer that is another node acting as a client of ours, when we reflect.
    let node_of = |addr: IpAddr| {
        model.nodes.values().find(|n| {
            n.bgp.as_ref().is_some_and(|b| {
                b.ipv4_address.map(IpAddr::V4) == Some(addr)
                    || b.ipv6_address.map(IpAddr::V6) == Some(addr)
            })
        })
    };
    let is_client = |addr: IpAddr| {
        cluster_id.is_some()
            && node_of(addr)
                .and_then(|n| n.bgp.as_ref())
                .is_some_and(|b| b.route_reflector_cluster_id.is_none())
    };

    let mut peers: BTreeMap<IpAddr, PeerConfig> = BTreeMap::new();
    if mesh {
        for other in model.nodes.values().filter(|n| n.name != node) {
            let Some(b) = &other.bgp else { continue };
            let pairs = [
                (
                    my_bgp.ipv4_address.map(IpAddr::V4),
                    b.ipv4_address.map(IpAddr::V4),
                ),
                (
                    my_bgp.ipv6_address.map(IpAddr::V6),
                    b.ipv6_address.map(IpAddr::V6),
                ),
            ];
            for (mine, theirs) in pairs {
                let (Some(mine), Some(theirs)) = (mine, theirs) else {
                    continue;
                };
                peers.insert(
                    theirs,
                    PeerConfig {
                        address: theirs,
                        remote_as: as_of(b),
                        password: None,
                        hold_time: DEFAULT_HOLD_TIME,
                        // Only one side of a mesh session connects: the lower address.
                        passive: mine > theirs,
                        route_reflector_client: false,
                        bfd: None,
                        add_path: Default::default(),
                    },
                );
            }
        }
    }
    for p in model.bgp_peers.values() {
        let applies = match (&p.node, &p.node_selector) {
            (Some(n), _) => n == node,
            (None, Some(sel)) => sel.matches(&me.labels),
            (None, None) => true,
        };
        if !applies || my_addrs.contains(&p.peer_ip) {
            continue;
        }
        peers.insert(
            p.peer_ip,
            PeerConfig {
                address: p.peer_ip,
                remote_as: p.as_number,
                password: p.password.clone(),
                hold_time: p.hold_time.unwrap_or(DEFAULT_HOLD_TIME),
                passive: false,
                route_reflector_client: is_client(p.peer_ip),
                bfd: p.bfd.clone(),
                add_path: p.add_path.unwrap_or_default(),
            },
        );
    }
    Some(BgpSettings {
        local_as: as_of(my_bgp),
        router_id,
        listen_port,
        cluster_id,
        peers: peers.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::AddPathConfig;
    use crate::model::parse_resources;

    fn model(text: &str) -> Model {
        Model::from_resources(parse_resources(text).unwrap()).unwrap()
    }

    const NODES: &str = "
kind: Node
name: a
labels: {rack: r1}
bgp: {ipv4Address: 192.0.2.1, ipv6Address: 'fd00::1'}
---
kind: Node
name: b
bgp: {ipv4Address: 192.0.2.2, asNumber: 65002}
---
kind: Node
name: c
";

    #[test]
    fn the_mesh_peers_every_bgp_node_once() {
        let m = model(NODES);
        let a = bgp_settings("a", &m).unwrap();
        assert_eq!(a.local_as, DEFAULT_AS);
        assert_eq!(
            a.router_id,
            "192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()
        );
        let peers: Vec<_> = a.peers.iter().collect();
        assert_eq!(peers.len(), 1, "c has no BGP, b no IPv6: {peers:?}");
        assert_eq!(peers[0].address, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!(peers[0].remote_as, AsNumber(65002));
        assert!(!peers[0].passive, "the lower address connects");
        let b = bgp_settings("b", &m).unwrap();
        assert!(
            b.peers.iter().all(|p| p.passive),
            "the higher address waits"
        );
        assert_eq!(bgp_settings("c", &m), None, "no BGP identity, no BGP");
        assert_eq!(bgp_settings("nobody", &m), None);
    }

    #[test]
    fn explicit_peers_and_a_reflector() {
        let m = model(&format!(
            "{NODES}---
kind: BgpConfiguration
name: default
nodeToNodeMeshEnabled: false
asNumber: 65000
---
kind: Node
name: rr
bgp: {{ipv4Address: 192.0.2.9, routeReflectorClusterID: 1.1.1.1}}
---
kind: BgpPeer
name: to-rr
nodeSelector: rack == 'r1'
peerIP: 192.0.2.9
asNumber: 65000
holdTime: 9
---
kind: BgpPeer
name: rr-to-a
node: rr
peerIP: 192.0.2.1
asNumber: 65000
password: s3cret
"
        ));
        let a = bgp_settings("a", &m).unwrap();
        assert_eq!(a.local_as, AsNumber(65000));
        let peers: Vec<_> = a.peers.iter().collect();
        assert_eq!(peers.len(), 1, "mesh off: only the selected peering");
        assert_eq!(peers[0].hold_time, 9);
        assert!(!peers[0].route_reflector_client);
        assert!(
            bgp_settings("b", &m).unwrap().peers.is_empty(),
            "b is not in rack r1"
        );
        let rr = bgp_settings("rr", &m).unwrap();
        assert_eq!(rr.cluster_id, Some("1.1.1.1".parse().unwrap()));
        let to_a = rr.peers.iter().next().unwrap();
        assert!(
            to_a.route_reflector_client,
            "a is a client of the reflector"
        );
        assert_eq!(to_a.password.as_deref(), Some("s3cret"));
        assert_eq!(to_a.add_path, AddPathConfig::default(), "off unless asked");
    }

    #[test]
    fn a_peers_add_path_reaches_its_peering() {
        let m = model(&format!(
            "{NODES}---
kind: BgpPeer
name: rr-to-a
node: b
peerIP: 192.0.2.9
asNumber: 64512
addPath: {{send: true}}
"
        ));
        let b = bgp_settings("b", &m).unwrap();
        let to_rr = b
            .peers
            .iter()
            .find(|p| p.address.to_string() == "192.0.2.9");
        assert_eq!(
            to_rr.map(|p| p.add_path),
            Some(AddPathConfig {
                send: true,
                receive: false
            })
        );
        // The mesh peerings do not use it.
        assert!(b
            .peers
            .iter()
            .filter(|p| p.address.to_string() != "192.0.2.9")
            .all(|p| p.add_path == AddPathConfig::default()));
    }
}
