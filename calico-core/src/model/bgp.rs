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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The remote speaker's address.
    #[serde(rename = "peerIP")]
    pub peer_ip: IpAddr,
    /// The remote speaker's AS.
    #[serde(rename = "asNumber")]
    pub as_number: AsNumber,
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
}
