//! The resource union, resource keys and the updates an orchestrator sends.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::bgp::{BgpConfiguration, BgpPeer, Node};
use super::bgp_filter::BgpFilter;
use super::endpoint::{HostEndpoint, WorkloadEndpoint, WorkloadEndpointId};
use super::network_set::NetworkSet;
use super::policy::{Policy, Profile};
use super::pool::{BlockAffinity, IpPool};
use super::tier::Tier;

/// The kinds of resource the agent understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResourceKind {
    /// [`WorkloadEndpoint`].
    WorkloadEndpoint,
    /// [`HostEndpoint`].
    HostEndpoint,
    /// [`Policy`] (namespaced `NetworkPolicy` or `GlobalNetworkPolicy`).
    Policy,
    /// [`Profile`].
    Profile,
    /// [`IpPool`].
    IpPool,
    /// [`BlockAffinity`].
    BlockAffinity,
    /// [`BgpConfiguration`].
    BgpConfiguration,
    /// [`BgpPeer`].
    BgpPeer,
    /// [`Node`].
    Node,
    /// [`NetworkSet`] (namespaced `NetworkSet` or `GlobalNetworkSet`).
    NetworkSet,
    /// [`BgpFilter`].
    BgpFilter,
    /// [`Tier`].
    Tier,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Any resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum Resource {
    /// A workload endpoint.
    WorkloadEndpoint(WorkloadEndpoint),
    /// A host endpoint.
    HostEndpoint(HostEndpoint),
    /// A policy.
    Policy(Policy),
    /// A profile.
    Profile(Profile),
    /// An IP pool.
    IpPool(IpPool),
    /// A node's address block.
    BlockAffinity(BlockAffinity),
    /// BGP settings.
    BgpConfiguration(BgpConfiguration),
    /// A BGP peering.
    BgpPeer(BgpPeer),
    /// A node.
    Node(Node),
    /// A network set.
    NetworkSet(NetworkSet),
    /// A BGP route filter.
    BgpFilter(BgpFilter),
    /// A policy tier.
    Tier(Tier),
}

/// The identity of a resource: what an update replaces or removes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResourceKey {
    /// A workload endpoint, by id.
    WorkloadEndpoint(WorkloadEndpointId),
    /// A host endpoint, by name.
    HostEndpoint(String),
    /// A policy, by namespace (`None` for global) and name.
    Policy {
        /// The namespace, `None` for a global policy.
        namespace: Option<String>,
        /// The name.
        name: String,
    },
    /// A profile, by name.
    Profile(String),
    /// An IP pool, by name.
    IpPool(String),
    /// A block affinity, by block.
    BlockAffinity(ipnet::IpNet),
    /// BGP settings, by name.
    BgpConfiguration(String),
    /// A BGP peering, by name.
    BgpPeer(String),
    /// A node, by name.
    Node(String),
    /// A network set, by namespace (`None` for a global set) and name.
    NetworkSet {
        /// The namespace, `None` for a global set.
        namespace: Option<String>,
        /// The name.
        name: String,
    },
    /// A BGP filter, by name.
    BgpFilter(String),
    /// A tier, by name.
    Tier(String),
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Resource::WorkloadEndpoint(_) => ResourceKind::WorkloadEndpoint,
            Resource::HostEndpoint(_) => ResourceKind::HostEndpoint,
            Resource::Policy(_) => ResourceKind::Policy,
            Resource::Profile(_) => ResourceKind::Profile,
            Resource::IpPool(_) => ResourceKind::IpPool,
            Resource::BlockAffinity(_) => ResourceKind::BlockAffinity,
            Resource::BgpConfiguration(_) => ResourceKind::BgpConfiguration,
            Resource::BgpPeer(_) => ResourceKind::BgpPeer,
            Resource::Node(_) => ResourceKind::Node,
            Resource::NetworkSet(_) => ResourceKind::NetworkSet,
            Resource::BgpFilter(_) => ResourceKind::BgpFilter,
            Resource::Tier(_) => ResourceKind::Tier,
        }
    }

    /// The resource's key.
    pub fn key(&self) -> ResourceKey {
        match self {
            Resource::WorkloadEndpoint(r) => ResourceKey::WorkloadEndpoint(r.id.clone()),
            Resource::HostEndpoint(r) => ResourceKey::HostEndpoint(r.name.clone()),
            Resource::Policy(r) => ResourceKey::Policy {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            },
            Resource::Profile(r) => ResourceKey::Profile(r.name.clone()),
            Resource::IpPool(r) => ResourceKey::IpPool(r.name.clone()),
            Resource::BlockAffinity(r) => ResourceKey::BlockAffinity(r.cidr),
            Resource::BgpConfiguration(r) => ResourceKey::BgpConfiguration(r.name.clone()),
            Resource::BgpPeer(r) => ResourceKey::BgpPeer(r.name.clone()),
            Resource::Node(r) => ResourceKey::Node(r.name.clone()),
            Resource::NetworkSet(r) => ResourceKey::NetworkSet {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            },
            Resource::BgpFilter(r) => ResourceKey::BgpFilter(r.name.clone()),
            Resource::Tier(r) => ResourceKey::Tier(r.name.clone()),
        }
    }
}

/// One change from the orchestrator.
// An update lives only while it is applied, one at a time per datastore event: the
// ~300 bytes of the largest resource inline cost less than a box per update would.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Update {
    /// Create or replace a resource.
    Upsert(Resource),
    /// Remove a resource (removing an absent one is not an error).
    Remove(ResourceKey),
}
