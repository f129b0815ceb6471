//! IP pools: the address ranges workloads get their addresses from.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An IP pool. Addresses are handed to hosts in blocks of `blockSize`; a host advertises its
/// blocks rather than every workload address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPool {
    /// Name of the pool.
    pub name: String,
    /// The pool's range.
    pub cidr: IpNet,
    /// Prefix length of the blocks the pool is cut into: 20–32 for IPv4 (default 26),
    /// 116–128 for IPv6 (default 122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// A disabled pool hands out no new addresses.
    #[serde(default)]
    pub disabled: bool,
}

/// A block of addresses that IPAM gave to one node (Calico's `BlockAffinity`). The node
/// advertises the whole block over BGP instead of each workload's address, and blackholes
/// the block's unused addresses; a workload address inside another node's block ("borrowed")
/// is advertised as a /32 (or /128) by the node that runs the workload, and wins by being
/// more specific.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinity {
    /// The block (its network address, prefix length 20–32 for IPv4, 116–128 for IPv6).
    pub cidr: IpNet,
    /// The node the block belongs to.
    pub node: String,
}
