//! The desired forwarding table of one host, and the change set that brings a programmed FIB
//! to it; [`peering`]: the BGP sessions the host runs to spread and learn routes.
//!
//! The desired FIB is a pure function of the model and the routes BGP learned:
//!
//! * every address of a workload endpoint on this node gets a scope-link route (`/32` or
//!   `/128`) to the endpoint's host-side interface;
//! * every floating IP in effect for such an endpoint (`ipNATs`: all of them with floating
//!   IPs enabled, an OpenStack endpoint's in any case) gets the same route to the
//!   endpoint's interface, as Felix routes it (the endpoint's own addresses win a clash);
//! * every block IPAM gave this node (`BlockAffinity`) gets a blackhole route, so its unused
//!   addresses are dropped here;
//! * every route learned from a peer gets a route via its next hops (several means ECMP),
//!   unless the prefix is one of this host's own workload addresses or blocks (local always
//!   wins). A workload borrowed from another node's block is a /32 (/128), more specific
//!   than the block, so the longest-prefix match takes traffic to the right host;
//! * every BGP peer of this node with a `reachableBy` gateway gets a host route via it,
//!   ahead of what BGP learned.
//!
//! ```
//! use calico_core::dataplane::RouteTarget;
//! use calico_core::model::{Model, Resource, WorkloadEndpoint, WorkloadEndpointId};
//! use calico_core::routes::desired_routes;
//!
//! let mut model = Model::new();
//! let ep: WorkloadEndpoint = serde_json::from_value(serde_json::json!({
//!     "orchestrator": "k8s", "workload": "default.web", "endpoint": "eth0",
//!     "node": "host-a", "interfaceName": "cali0123456789a",
//!     "ipNetworks": ["10.65.0.10/32"],
//! })).unwrap();
//! model.apply(calico_core::model::Update::Upsert(Resource::WorkloadEndpoint(ep))).unwrap();
//!
//! let fib = desired_routes("host-a", &model, &[], false);
//! let target = &fib[&"10.65.0.10/32".parse().unwrap()];
//! assert_eq!(target, &RouteTarget::Workload { interface: "cali0123456789a".into() });
//! assert!(desired_routes("host-b", &model, &[], false).is_empty());
//! ```

pub mod peering;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::dataplane::{ExportedRoutes, FibChangeSet, LearnedRoute, NextHop, Route, RouteTarget};
use crate::model::Model;

/// The desired FIB: destination prefix → where it goes.
pub type DesiredFib = BTreeMap<IpNet, RouteTarget>;

/// Computes the routes this node (`node`) should have, from the model and the routes learned
/// by BGP; `floating_ips`: whether workloads' floating IPs are in effect (Felix's
/// `FloatingIPs: Enabled`; OpenStack's are in any case).
pub fn desired_routes(
    node: &str,
    model: &Model,
    learned: &[LearnedRoute],
    floating_ips: bool,
) -> DesiredFib {
    let mut fib = DesiredFib::new();
    for ep in local_endpoints(node, model) {
        for net in &ep.ip_networks {
            fib.insert(
                net.trunc(),
                RouteTarget::Workload {
                    interface: ep.interface_name.clone(),
                },
            );
        }
    }
    for (net, interface) in floating_ip_routes(node, model, floating_ips) {
        fib.entry(net)
            .or_insert(RouteTarget::Workload { interface });
    }
    // The node's blocks: unused addresses are dropped here rather than sent back out.
    for block in own_blocks(node, model) {
        fib.entry(block).or_insert(RouteTarget::Blackhole);
    }
    // Peers reached through a gateway (`reachableBy`): configured, so ahead of BGP.
    for (peer, gateway) in peering::peer_routes(node, model) {
        let hop = NextHop {
            gateway,
            interface: None,
        };
        fib.entry(peer)
            .or_insert_with(|| RouteTarget::Via(BTreeSet::from([hop])));
    }
    for route in learned {
        let prefix = route.prefix.trunc();
        if fib.contains_key(&prefix) || route.next_hops.is_empty() {
            continue;
        }
        let hops: BTreeSet<NextHop> = route
            .next_hops
            .iter()
            .map(|gw| NextHop {
                gateway: *gw,
                interface: None,
            })
            .collect();
        fib.insert(prefix, RouteTarget::Via(hops));
    }
    fib
}

/// The blocks IPAM gave this node (`BlockAffinity` resources).
pub fn own_blocks(node: &str, model: &Model) -> BTreeSet<IpNet> {
    model
        .block_affinities
        .values()
        .filter(|b| b.node == node)
        .map(|b| b.cidr)
        .collect()
}

/// The workload endpoints of `node`.
fn local_endpoints<'m>(
    node: &'m str,
    model: &'m Model,
) -> impl Iterator<Item = &'m crate::model::WorkloadEndpoint> {
    model
        .workload_endpoints
        .values()
        .filter(move |ep| ep.node == node)
}

/// The floating IPs in effect on `node`'s workloads, as /32 (/128) networks, each with its
/// workload's interface.
fn floating_ip_routes<'m>(
    node: &'m str,
    model: &'m Model,
    enabled: bool,
) -> impl Iterator<Item = (IpNet, String)> + 'm {
    local_endpoints(node, model).flat_map(move |ep| {
        ep.floating_ips(enabled)
            .iter()
            .map(|nat| (IpNet::from(nat.external_ip), ep.interface_name.clone()))
    })
}

/// The local routes this node exports to BGP, as Calico aggregates them: its blocks (with
/// no interface: they are blackholes), plus the addresses of its workloads and the floating
/// IPs in effect for them (`floating_ips` as for [`desired_routes`]) that lie outside them
/// (borrowed from another node's block, or in no block at all), each with its workload's
/// interface: a floating IP is announced as a /32 (/128) like a workload's address.
pub fn local_exports(node: &str, model: &Model, floating_ips: bool) -> ExportedRoutes {
    let blocks = own_blocks(node, model);
    let own = local_endpoints(node, model).flat_map(|ep| {
        let iface = &ep.interface_name;
        ep.ip_networks
            .iter()
            .map(|n| (n.trunc(), Some(iface.clone())))
    });
    let floating = floating_ip_routes(node, model, floating_ips).map(|(n, i)| (n, Some(i)));
    // The endpoints' own addresses last: they win a clash with a floating IP.
    let loose = floating
        .chain(own)
        .filter(|(net, _)| !blocks.iter().any(|b| b.contains(net)));
    blocks.iter().map(|b| (*b, None)).chain(loose).collect()
}

/// The smallest change set that turns the `programmed` routes into the `desired` ones:
/// routes that are right are not touched, so traffic on healthy endpoints is never
/// interrupted.
pub fn fib_diff(desired: &DesiredFib, programmed: &[Route]) -> FibChangeSet {
    let programmed: BTreeMap<&IpNet, &RouteTarget> =
        programmed.iter().map(|r| (&r.dst, &r.target)).collect();
    let remove = programmed
        .keys()
        .filter(|dst| !desired.contains_key(**dst))
        .map(|dst| **dst)
        .collect();
    let upsert = desired
        .iter()
        .filter(|(dst, target)| programmed.get(dst) != Some(target))
        .map(|(dst, target)| Route {
            dst: *dst,
            target: target.clone(),
        })
        .collect();
    FibChangeSet { remove, upsert }
}

#[cfg(test)]
mod tests;
