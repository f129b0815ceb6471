//! The route policy a BGP backend applies: communities attached to advertised routes
//! (`prefixAdvertisements`) and each peering's `BGPFilter`s, resolved from the model by
//! [`crate::routes::peering`]. The semantics are in [`crate::model::BgpFilter`]'s module.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    communities_for, evaluate, resolve_community, BgpFilter, Community, CommunityRules, Direction,
    FilterAction, Resource, RouteFacts,
};

/// Route policy of one speaker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutePolicy {
    /// Communities to attach to advertised routes, by CIDR, in configuration order.
    pub communities: CommunityRules,
    /// The filters of each peering (by peer address), in the order its `filters` lists them.
    pub filters: BTreeMap<IpAddr, Vec<BgpFilter>>,
}

impl RoutePolicy {
    /// The filters of the peering with `peer` (none for a mesh peering).
    pub fn peer_filters(&self, peer: IpAddr) -> &[BgpFilter] {
        self.filters.get(&peer).map_or(&[], Vec::as_slice)
    }

    /// Whether a route to `prefix` (of which `route` tells where it came from and which
    /// interface it leaves by) may cross the peering with `peer` going `direction`.
    pub fn allows(
        &self,
        peer: IpAddr,
        direction: Direction,
        prefix: &IpNet,
        route: RouteFacts<'_>,
    ) -> bool {
        evaluate(self.peer_filters(peer), direction, prefix, route) == FilterAction::Accept
    }

    /// The communities an advertised route to `prefix` gets.
    pub fn communities_for(&self, prefix: &IpNet) -> Vec<Community> {
        communities_for(&self.communities, prefix)
    }

    /// A policy from resources, for tests and tools: every `BgpFilter` of `resources`, in
    /// order, on each of `peers`, and the `prefixAdvertisements` of every
    /// `BgpConfiguration` (entries that do not resolve are left out).
    pub fn from_resources(resources: &[Resource], peers: &[IpAddr]) -> RoutePolicy {
        let mut policy = RoutePolicy::default();
        for r in resources {
            match r {
                Resource::BgpFilter(f) => {
                    for p in peers {
                        policy.filters.entry(*p).or_default().push(f.clone());
                    }
                }
                Resource::BgpConfiguration(c) => {
                    for ad in &c.prefix_advertisements {
                        let list = ad.communities.iter();
                        let list = list.filter_map(|e| resolve_community(&c.communities, e).ok());
                        policy.communities.push((ad.cidr, list.collect()));
                    }
                }
                _ => {}
            }
        }
        policy
    }

    /// Checks every filter as the model does ([`BgpFilter::validate`]), for a backend
    /// handed settings that did not come from a validated model.
    pub fn validate(&self) -> Result<(), crate::model::ValidationError> {
        self.filters
            .values()
            .flatten()
            .try_for_each(BgpFilter::validate)
    }

    /// Whether there is any policy at all.
    pub fn is_empty(&self) -> bool {
        self.communities.is_empty() && self.filters.values().all(Vec::is_empty)
    }
}
