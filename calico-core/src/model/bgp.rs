//! BGP settings: the cluster's AS, peers, and each node's BGP identity.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::selector::Selector;

/// An autonomous system number, 4-byte (RFC 6793). On the wire a number, a decimal string or
/// the "asdot" form `high.low`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsNumber(pub u32);

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for AsNumber {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((hi, lo)) = s.split_once('.') {
            let hi: u16 = hi
                .parse()
                .map_err(|_| format!("AS number {s:?}: {hi:?} is not a number 0-65535"))?;
            let lo: u16 = lo
                .parse()
                .map_err(|_| format!("AS number {s:?}: {lo:?} is not a number 0-65535"))?;
            return Ok(AsNumber(((hi as u32) << 16) | lo as u32));
        }
        s.parse()
            .map(AsNumber)
            .map_err(|_| format!("AS number {s:?} is not a number 0-4294967295"))
    }
}

impl Serialize for AsNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => u32::try_from(n).map(AsNumber).map_err(|_| {
                serde::de::Error::custom(format!("AS number {n} is out of range 0-4294967295"))
            }),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

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
}
