//! Which BGP sessions a node runs, from the model's `Node`, `BgpConfiguration` and `BgpPeer`
//! resources, as Calico derives them: the node-to-node mesh (on unless the `default`
//! configuration turns it off) plus explicit peerings selecting the node, with a `peerIP`
//! or with the nodes a `peerSelector` picks (and the reverse peerings on those), each with
//! its session options (keepalive, restart time, allowas-in, next hop mode, GTSM, source
//! address: the node's address of the peer's family unless `sourceAddress: None`), and
//! with the route policy of `BgpConfiguration.prefixAdvertisements` and `BgpPeer.filters`.
//!
//! A peering naming a `BgpFilter` that does not exist is held (left out) until the filter
//! exists: running it without its filters could advertise or accept routes the operator
//! meant to keep out. [`held_peers`] says which and why.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::dataplane::{BgpSettings, PeerConfig, RoutePolicy, SessionOptions};
use crate::model::{
    resolve_community, AsNumber, BgpConfiguration, BgpFilter, BgpPeer, CommunityRules, Model, Node,
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
    let listen_port = node_config
        .and_then(|c| c.listen_port)
        .or(config.and_then(|c| c.listen_port))
        .unwrap_or(179);
    let ctx = Context {
        model,
        me,
        my_bgp,
        cluster_as,
        local_as: my_bgp.as_number.unwrap_or(cluster_as),
    };
    let mut peers: BTreeMap<IpAddr, PeerConfig> = BTreeMap::new();
    if config
        .and_then(|c| c.node_to_node_mesh_enabled)
        .unwrap_or(true)
    {
        mesh_peers(&ctx, config, &mut peers);
    }
    let mut filters: BTreeMap<IpAddr, Vec<BgpFilter>> = BTreeMap::new();
    for p in model.bgp_peers.values() {
        let Ok(peer_filters) = filters_of(p, model) else {
            continue; // held until its filters exist
        };
        for address in explicit_peers(&ctx, p, &mut peers) {
            filters.insert(address, peer_filters.clone());
        }
    }
    Some(BgpSettings {
        local_as: ctx.local_as,
        router_id,
        listen_port,
        cluster_id: my_bgp.route_reflector_cluster_id,
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

/// What the peerings of one node are derived from.
struct Context<'a> {
    model: &'a Model,
    me: &'a Node,
    my_bgp: &'a NodeBgp,
    cluster_as: AsNumber,
    local_as: AsNumber,
}

impl Context<'_> {
    fn as_of(&self, b: &NodeBgp) -> AsNumber {
        b.as_number.unwrap_or(self.cluster_as)
    }

    /// Our address of `peer`'s family.
    fn my_addr(&self, peer: IpAddr) -> Option<IpAddr> {
        match peer {
            IpAddr::V4(_) => self.my_bgp.ipv4_address.map(IpAddr::V4),
            IpAddr::V6(_) => self.my_bgp.ipv6_address.map(IpAddr::V6),
        }
    }

    fn is_mine(&self, addr: IpAddr) -> bool {
        self.my_addr(addr) == Some(addr)
    }

    /// Whether the peer at `addr` is another node acting as a client of ours, when we
    /// reflect.
    fn is_client(&self, addr: IpAddr) -> bool {
        self.my_bgp.route_reflector_cluster_id.is_some()
            && self
                .model
                .nodes
                .values()
                .filter_map(|n| n.bgp.as_ref())
                .find(|b| node_addrs(b).contains(&Some(addr)))
                .is_some_and(|b| b.route_reflector_cluster_id.is_none())
    }

    /// The sessions with another node: one per family both of us have an address of. Only
    /// one side of each connects: the lower address.
    fn node_sessions(&self, other: &NodeBgp) -> Vec<(IpAddr, IpAddr)> {
        node_addrs(self.my_bgp)
            .into_iter()
            .zip(node_addrs(other))
            .filter_map(|(mine, theirs)| Some((mine?, theirs?)))
            .collect()
    }

    /// A peering at `address` of AS `remote_as` with the defaults.
    fn peer(&self, address: IpAddr, remote_as: AsNumber) -> PeerConfig {
        PeerConfig {
            address,
            remote_as,
            password: None,
            hold_time: DEFAULT_HOLD_TIME,
            passive: false,
            route_reflector_client: self.is_client(address),
            bfd: None,
            add_path: Default::default(),
            session: SessionOptions {
                source_address: self.my_addr(address),
                ..Default::default()
            },
        }
    }
}

/// A node's IPv4 and IPv6 addresses.
fn node_addrs(b: &NodeBgp) -> [Option<IpAddr>; 2] {
    [
        b.ipv4_address.map(IpAddr::V4),
        b.ipv6_address.map(IpAddr::V6),
    ]
}

/// The node-to-node mesh: every other BGP node, with the mesh password and restart time of
/// the `default` configuration.
fn mesh_peers(
    ctx: &Context,
    config: Option<&BgpConfiguration>,
    peers: &mut BTreeMap<IpAddr, PeerConfig>,
) {
    for other in ctx.model.nodes.values().filter(|n| n.name != ctx.me.name) {
        let Some(b) = &other.bgp else { continue };
        for (mine, theirs) in ctx.node_sessions(b) {
            let mut peer = ctx.peer(theirs, ctx.as_of(b));
            peer.passive = mine > theirs;
            // Mesh sessions are never reflector-client sessions.
            peer.route_reflector_client = false;
            peer.password = config.and_then(|c| c.node_mesh_password.clone());
            peer.session.restart_time = config.and_then(|c| c.node_mesh_max_restart_time);
            peers.insert(theirs, peer);
        }
    }
}

/// Whether peering `p` is for node `n` (its `node`, its `nodeSelector`, or every node).
fn applies_to(p: &BgpPeer, n: &Node) -> bool {
    match (&p.node, &p.node_selector) {
        (Some(name), _) => *name == n.name,
        (None, Some(sel)) => sel.matches(&n.labels),
        (None, None) => true,
    }
}

/// The host routes `node` needs to reach its peers (`reachableBy`): each peer's address via
/// its gateway, for the peerings of this node.
pub fn peer_routes(node: &str, model: &Model) -> Vec<(IpNet, IpAddr)> {
    let Some(me) = model.nodes.get(node) else {
        return Vec::new();
    };
    model
        .bgp_peers
        .values()
        .filter(|p| applies_to(p, me))
        .filter_map(|p| Some((IpNet::from(p.peer_ip?), p.reachable_by?)))
        .collect()
}

/// The peerings one `BgpPeer` gives this node: with its `peerIP`, or with the nodes its
/// `peerSelector` picks (and, as Calico's automatic reverse peering does, with the nodes
/// its `node`/`nodeSelector` picks when this node is among those `peerSelector` picks).
/// Returns the peers' addresses.
fn explicit_peers(
    ctx: &Context,
    p: &BgpPeer,
    peers: &mut BTreeMap<IpAddr, PeerConfig>,
) -> Vec<IpAddr> {
    let selects = |n: &Node| applies_to(p, n);
    let mut targets: Vec<(IpAddr, AsNumber, bool)> = Vec::new();
    if let (Some(ip), Some(asn)) = (p.peer_ip, p.as_number) {
        if selects(ctx.me) && !ctx.is_mine(ip) {
            targets.push((ip, asn, false));
        }
    }
    if let Some(sel) = &p.peer_selector {
        let picks = |n: &Node| sel.matches(&n.labels);
        for other in ctx.model.nodes.values().filter(|n| n.name != ctx.me.name) {
            let Some(b) = &other.bgp else { continue };
            let forward = selects(ctx.me) && picks(other);
            let reverse = picks(ctx.me) && selects(other);
            if !(forward || reverse) {
                continue;
            }
            for (mine, theirs) in ctx.node_sessions(b) {
                targets.push((theirs, ctx.as_of(b), mine > theirs));
            }
        }
    }
    let mut addresses = Vec::new();
    for (address, remote_as, passive) in targets {
        let mut peer = ctx.peer(address, remote_as);
        peer.password = p.password.clone();
        peer.hold_time = p.hold_time.unwrap_or(DEFAULT_HOLD_TIME);
        peer.passive = passive;
        peer.bfd = p.bfd.clone();
        peer.add_path = p.add_path.unwrap_or_default();
        peer.session = p.session_options(remote_as != ctx.local_as, ctx.my_addr(address));
        peers.insert(address, peer);
        addresses.push(address);
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::AddPathConfig;
    use crate::model::{parse_resources, RouteFacts};

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
        assert!(!a
            .policy
            .allows(tor, Direction::Export, &block, RouteFacts::local(None)));
        let mesh: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(
            a.policy
                .allows(mesh, Direction::Export, &block, RouteFacts::local(None)),
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

    #[test]
    fn a_peer_selector_peers_with_the_selected_nodes_both_ways() {
        let m = model(&format!(
            "{NODES}---
kind: BgpConfiguration
name: default
nodeToNodeMeshEnabled: false
nodeMeshMaxRestartTime: 30
---
kind: Node
name: rr
labels: {{role: rr}}
bgp: {{ipv4Address: 192.0.2.9, ipv6Address: 'fd00::9', routeReflectorClusterID: 1.1.1.1}}
---
kind: BgpPeer
name: to-rr
nodeSelector: rack == 'r1'
peerSelector: role == 'rr'
keepaliveTime: 10
ttlSecurity: 1
nextHopMode: Keep
"
        ));
        let a = bgp_settings("a", &m).unwrap();
        let addrs: Vec<String> = a.peers.iter().map(|p| p.address.to_string()).collect();
        assert_eq!(
            addrs,
            ["192.0.2.9", "fd00::9"],
            "one session per common family"
        );
        let v4 = a.peers.iter().next().unwrap();
        assert_eq!(v4.remote_as, DEFAULT_AS, "the selected node's (cluster) AS");
        assert!(!v4.passive, "the lower address connects");
        assert_eq!(v4.session.keepalive_time, Some(10));
        assert_eq!(v4.session.ttl_security, Some(1));
        assert_eq!(
            v4.session.next_hop_mode,
            crate::dataplane::NextHopMode::Keep
        );
        assert_eq!(
            v4.session.source_address,
            Some("192.0.2.1".parse().unwrap()),
            "UseNodeIP by default"
        );
        assert_eq!(v4.session.restart_time, None, "not a mesh session");
        // The reverse peering, on the reflector, with a as its client.
        let rr = bgp_settings("rr", &m).unwrap();
        let to_a: Vec<_> = rr.peers.iter().collect();
        assert_eq!(to_a.len(), 2, "{to_a:?}");
        assert!(to_a.iter().all(|p| p.passive && p.route_reflector_client));
        assert!(
            bgp_settings("b", &m).unwrap().peers.is_empty(),
            "b is neither selected nor selecting"
        );
    }

    #[test]
    fn mesh_sessions_take_the_mesh_password_and_restart_time() {
        let m = model(&format!(
            "{NODES}---
kind: BgpConfiguration
name: default
nodeMeshMaxRestartTime: 45
nodeMeshPassword: m3sh
"
        ));
        let a = bgp_settings("a", &m).unwrap();
        let p = a.peers.iter().next().unwrap();
        assert_eq!(p.password.as_deref(), Some("m3sh"));
        assert_eq!(p.session.restart_time, Some(45));
    }

    #[test]
    fn keep_original_next_hop_applies_to_ebgp_peers_only() {
        let m = model(&format!(
            "{NODES}---
kind: BgpPeer
name: ext
node: a
peerIP: 192.0.2.100
asNumber: 65100
keepOriginalNextHop: true
sourceAddress: None
---
kind: BgpPeer
name: int
node: a
peerIP: 192.0.2.101
asNumber: 64512
keepOriginalNextHop: true
numAllowedLocalASNumbers: 3
"
        ));
        let a = bgp_settings("a", &m).unwrap();
        let get = |ip: &str| {
            a.peers
                .iter()
                .find(|p| p.address.to_string() == ip)
                .unwrap()
        };
        use crate::dataplane::NextHopMode;
        assert_eq!(get("192.0.2.100").session.next_hop_mode, NextHopMode::Keep);
        assert_eq!(get("192.0.2.100").session.source_address, None);
        assert_eq!(get("192.0.2.101").session.next_hop_mode, NextHopMode::Auto);
        assert_eq!(get("192.0.2.101").session.allow_local_as, 3);
    }

    #[test]
    fn reachable_by_gives_the_peerings_nodes_a_host_route() {
        let m = model(&format!(
            "{NODES}---
kind: BgpPeer
name: tor
nodeSelector: rack == 'r1'
peerIP: 198.51.100.1
asNumber: 65100
reachableBy: 192.0.2.254
"
        ));
        let want = vec![(
            "198.51.100.1/32".parse().unwrap(),
            "192.0.2.254".parse().unwrap(),
        )];
        assert_eq!(peer_routes("a", &m), want);
        assert!(peer_routes("b", &m).is_empty(), "b is not in rack r1");
        let fib = crate::routes::desired_routes("a", &m, &[], false);
        assert_eq!(
            fib.get(&"198.51.100.1/32".parse().unwrap()),
            Some(&crate::dataplane::RouteTarget::Via(
                [crate::dataplane::NextHop {
                    gateway: "192.0.2.254".parse().unwrap(),
                    interface: None,
                }]
                .into()
            ))
        );
    }
}
