//! BGP settings: the cluster's AS, peers, and each node's BGP identity.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::AsNumber;
use crate::selector::Selector;

/// Cluster-wide (name `default`) or per-node (name `node.<name>`) BGP settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpConfiguration {
    /// `default`, or `node.<nodename>` for one node's overrides.
    pub name: String,
    /// The AS of nodes that do not set their own (default 64512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Whether every node peers with every other (Calico's node-to-node mesh; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// TCP port the speaker listens on (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// Named communities that `prefix_advertisements` may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<super::CommunityDef>,
    /// Communities to attach to advertised routes, by CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<super::PrefixAdvertisement>,
    /// Graceful restart time (seconds) advertised on node-to-node mesh sessions (Calico's
    /// `nodeMeshMaxRestartTime`); the speaker's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<u16>,
    /// TCP MD5 password (RFC 2385) of every node-to-node mesh session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<String>,
}

/// A node's BGP identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBgp {
    /// The node's IPv4 address (and its BGP router id), as `a.b.c.d` or `a.b.c.d/len`.
    #[serde(
        default,
        rename = "ipv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<Ipv4Addr>,
    /// The node's IPv6 address, for IPv6 peerings.
    #[serde(
        default,
        rename = "ipv6Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_address: Option<Ipv6Addr>,
    /// The node's own AS, overriding the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Set on a route reflector: its cluster id (RFC 4456), an IPv4-formatted 32-bit value.
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

/// A host of the cluster, with its labels (matched by `BgpPeer::node_selector`) and BGP
/// identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// The node's name, as used in endpoints' `node` field.
    pub name: String,
    /// The node's labels.
    #[serde(default)]
    pub labels: super::Labels,
    /// BGP identity; `None` for a node that runs no BGP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgp>,
}

/// A BGP peering: the nodes it applies to and the remote speaker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeer {
    /// Name of the resource.
    pub name: String,
    /// The one node this peering is for; exclusive with `node_selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The nodes this peering is for; all nodes when neither this nor `node` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<Selector>,
    /// The remote speaker's address; exclusive with `peer_selector`, one of them is set.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<IpAddr>,
    /// The remote speaker's AS; set with `peer_ip`, never with `peer_selector`.
    #[serde(default, rename = "asNumber", skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Peer with the nodes this selects, at their node addresses and with their AS numbers
    /// (Calico's `peerSelector`): an IPv4 session where both ends have an IPv4 address, an
    /// IPv6 one where both have an IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<Box<Selector>>,
    /// TCP MD5 password (RFC 2385) for the session, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Hold time in seconds to offer (0 or 3–65535; default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    /// BFD for the peering (single hop, RFC 5881): `{}` for the defaults (300 ms × 3),
    /// absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<crate::dataplane::BfdConfig>,
    /// ADD-PATH (RFC 7911) for the peering, e.g. `{send: true}` on a route reflector so
    /// that its clients keep every equal-cost path; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_path: Option<crate::dataplane::AddPathConfig>,
    /// Names of the `BgpFilter`s applied to the peering, in order. A peering naming a
    /// filter that does not exist is held (not started) until it does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Seconds between KEEPALIVEs (default: a third of the hold time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<u16>,
    /// Graceful restart time (seconds) advertised to the peer (RFC 4724).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<u16>,
    /// How many times our AS may be in a received AS_PATH (allowas-in; default 0).
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<u32>,
    /// Next hop handling towards the peer (default `Auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<crate::dataplane::NextHopMode>,
    /// Deprecated form of `next_hop_mode: Keep`, applied to eBGP peers only (as Calico
    /// does); ignored when `next_hop_mode` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_original_next_hop: Option<bool>,
    /// GTSM (RFC 5082): the peer's distance in hops (1: directly connected).
    #[serde(
        default,
        rename = "ttlSecurity",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_security: Option<u16>,
    /// The session's local address: the node's address (`UseNodeIP`, the default) or the
    /// speaker's choice (`None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
    /// The gateway through which `peer_ip` is reached: the nodes of this peering get a host
    /// route to the peer via it (as Calico does for a peer on no connected network, so
    /// that the session does not follow routes it learns itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<IpAddr>,
}

/// Calico's `sourceAddress` of a `BGPPeer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceAddress {
    /// The node's address of the peer's family.
    #[default]
    UseNodeIP,
    /// Whatever the speaker picks (the kernel's source address selection).
    None,
}
