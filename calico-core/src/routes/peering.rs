//! Which BGP sessions a node runs, from the model's `Node`, `BgpConfiguration` and `BgpPeer`
//! resources, as Calico derives them: the node-to-node mesh (on unless the `default`
//! configuration turns it off) plus explicit peerings selecting the node, with the route
//! policy of `BgpConfiguration.prefixAdvertisements` and `BgpPeer.filters`.
//!
//! A peering naming a `BgpFilter` that does not exist is held (left out) until the filter
//! exists: running it without its filters could advertise or accept routes the operator
//! meant to keep out. [`held_peers`] says which and why.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::dataplane::{BgpSettings, PeerConfig, RoutePolicy};
use crate::model::{
    resolve_community, AsNumber, BgpConfiguration, BgpFilter, BgpPeer, CommunityRules, Model,
    NodeBgp,
};

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
    let mut filters: BTreeMap<IpAddr, Vec<BgpFilter>> = BTreeMap::new();
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
        let Ok(peer_filters) = filters_of(p, model) else {
            continue; // held until its filters exist
        };
        filters.insert(p.peer_ip, peer_filters);
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
        policy: RoutePolicy {
            communities: community_rules(config, node_config),
            filters: filters.into_iter().filter(|(_, f)| !f.is_empty()).collect(),
        },
    })
}

/// The filters a peering names, in order; the first missing one's name as the error.
fn filters_of(peer: &BgpPeer, model: &Model) -> Result<Vec<BgpFilter>, String> {
    peer.filters
        .iter()
        .map(|name| {
            model
                .bgp_filters
                .get(name)
                .cloned()
                .ok_or_else(|| name.clone())
        })
        .collect()
}

/// The peerings of the model held back because they name a filter that does not exist:
/// (peering name, why), for an operator.
pub fn held_peers(model: &Model) -> Vec<(String, String)> {
    model
        .bgp_peers
        .values()
        .filter_map(|p| {
            let missing = filters_of(p, model).err()?;
            Some((
                p.name.clone(),
                format!("filters: BgpFilter {missing:?} does not exist"),
            ))
        })
        .collect()
}

/// `prefixAdvertisements` resolved: the node's own configuration's when it sets any,
/// else the `default` one's (as Calico's confd picks them).
fn community_rules(
    config: Option<&BgpConfiguration>,
    node_config: Option<&BgpConfiguration>,
) -> CommunityRules {
    let chosen = node_config
        .filter(|c| !c.prefix_advertisements.is_empty())
        .or(config);
    let Some(c) = chosen else {
        return CommunityRules::new();
    };
    c.prefix_advertisements
        .iter()
        .map(|ad| {
            let list = ad
                .communities
                .iter()
                .filter_map(|e| resolve_community(&c.communities, e).ok())
                .collect();
            (ad.cidr, list)
        })
        .collect()
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

    const POLICY: &str = "---
kind: BgpConfiguration
name: default
communities: [{name: gold, value: '65001:100'}]
prefixAdvertisements: [{cidr: 10.65.0.0/16, communities: [gold, '1:2:3']}]
---
kind: BgpConfiguration
name: node.b
communities: [{name: gold, value: '65002:200'}]
prefixAdvertisements: [{cidr: 10.66.0.0/16, communities: [gold]}]
---
kind: BgpPeer
name: tor
peerIP: 192.0.2.9
asNumber: 65009
filters: [second, first]
---
kind: BgpFilter
name: first
exportV4: [{action: Accept}]
---
kind: BgpFilter
name: second
exportV4: [{action: Reject, matchOperator: In, cidr: 10.65.0.0/16}]
";

    #[test]
    fn communities_and_filters_reach_the_settings() {
        use crate::model::{Community, Direction};
        let m = model(&format!("{NODES}{POLICY}"));
        let a = bgp_settings("a", &m).unwrap();
        let gold = Community::Standard(65001 << 16 | 100);
        assert_eq!(
            a.policy.communities,
            vec![(
                "10.65.0.0/16".parse().unwrap(),
                vec![gold, Community::Large(1, 2, 3)]
            )]
        );
        let tor: IpAddr = "192.0.2.9".parse().unwrap();
        let names: Vec<_> = a
            .policy
            .peer_filters(tor)
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["second", "first"], "in the peer's order");
        let block = "10.65.1.0/26".parse().unwrap();
        assert!(!a.policy.allows(tor, Direction::Export, &block, false));
        let mesh: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(
            a.policy.allows(mesh, Direction::Export, &block, false),
            "mesh: no filters"
        );
        // b's own configuration replaces the default advertisements, with its own names.
        let b = bgp_settings("b", &m).unwrap();
        let rules = &b.policy.communities;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].1, vec![Community::Standard(65002 << 16 | 200)]);
    }

    #[test]
    fn a_peer_naming_a_missing_filter_is_held_until_it_exists() {
        let without = POLICY.replace(
            "kind: BgpFilter\nname: first",
            "kind: BgpFilter\nname: other",
        );
        let m = model(&format!("{NODES}{without}"));
        let a = bgp_settings("a", &m).unwrap();
        let tor: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(a.peers.iter().all(|p| p.address != tor), "{:?}", a.peers);
        let held = held_peers(&m);
        assert_eq!(held.len(), 1);
        assert!(held[0].1.contains("\"first\" does not exist"), "{held:?}");
        let m = model(&format!("{NODES}{POLICY}"));
        assert!(bgp_settings("a", &m)
            .unwrap()
            .peers
            .iter()
            .any(|p| p.address == tor));
        assert!(held_peers(&m).is_empty());
    }
}
