//! Conversions between the agent's [`Route`] and the kernel's route messages, and the
//! `ip route`-style description of each change used in errors and logs.
//!
//! Encoding (what the agent's route becomes):
//!
//! | [`RouteTarget`] | kernel route |
//! | --- | --- |
//! | `Workload { interface }` | unicast, scope link, `dev <interface>` |
//! | `Blackhole` | type blackhole |
//! | `Via` one next hop | unicast, `via <gateway>`; with a pinned interface `dev <if> onlink` |
//! | `Via` several | unicast, one `nexthop` per hop (ECMP), pinned ones `dev <if> onlink` |
//!
//! Every route carries the agent's protocol number and table. A pinned next hop is always
//! `onlink` (the gateway need not be in a connected subnet of the interface, as with tunnel
//! devices), and that flag is how a dump tells a pinned interface from one the kernel
//! resolved by itself: an unpinned next hop reads back without an interface, exactly as it
//! was applied.

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_core::dataplane::{BackendError, NextHop, Route, RouteTarget};
use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;

/// Whose routes these are: the agent's protocol number and routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// Route protocol number (`proto` in `ip route`).
    pub protocol: u8,
    /// Routing table id.
    pub table: u32,
}

impl Owner {
    fn suffix(&self) -> String {
        if self.table == u32::from(RouteHeader::RT_TABLE_MAIN) {
            format!("proto {}", self.protocol)
        } else {
            format!("proto {} table {}", self.protocol, self.table)
        }
    }
}

/// The metric the kernel gives a route added without one: 0 for IPv4, 1024 for IPv6. Two
/// routes to one destination in one table are the same route (replace targets it) only when
/// their metrics are equal.
pub(crate) fn default_metric(dst: &IpNet) -> u32 {
    match dst {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1024,
    }
}

/// `ip route` words for a route's target, e.g. `dev cali1 scope link`.
fn describe_target(target: &RouteTarget) -> String {
    match target {
        RouteTarget::Workload { interface } => format!("dev {interface} scope link"),
        RouteTarget::Blackhole => "type blackhole".to_string(),
        RouteTarget::Via(hops) if hops.len() == 1 => describe_hop(hops.first().expect("one hop")),
        RouteTarget::Via(hops) => hops
            .iter()
            .map(|hop| format!("nexthop {}", describe_hop(hop)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn describe_hop(hop: &NextHop) -> String {
    match &hop.interface {
        Some(interface) => format!("via {} dev {interface} onlink", hop.gateway),
        None => format!("via {}", hop.gateway),
    }
}

/// Describes an upsert the way an operator would type it, e.g.
/// `replace route 10.0.0.1/32 dev cali1 scope link proto 80`.
pub(crate) fn describe_upsert(verb: &str, route: &Route, owner: &Owner) -> String {
    format!(
        "{verb} route {} {} {}",
        route.dst,
        describe_target(&route.target),
        owner.suffix()
    )
}

/// Describes a removal, e.g. `delete route 10.0.0.1/32 proto 80`.
pub(crate) fn describe_removal(dst: &IpNet, owner: &Owner) -> String {
    format!("delete route {dst} {}", owner.suffix())
}

fn family(addr: &IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A header for the owner's table and protocol, and `dst` as destination attribute.
fn base_message(dst: &IpNet, owner: &Owner) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family(&dst.addr());
    message.header.destination_prefix_length = dst.prefix_len();
    message.header.table = table_in_header(owner.table);
    message.header.protocol = RouteProtocol::from(owner.protocol);
    message
        .attributes
        .push(RouteAttribute::Destination(dst.addr().into()));
    message.attributes.push(RouteAttribute::Table(owner.table));
    message
}

/// Table ids above 255 only fit the `RTA_TABLE` attribute; the header then says "unspec".
fn table_in_header(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

/// The message that creates or replaces `route`. `ifindex` resolves interface names; an
/// unknown name is [`BackendError::MissingInterface`].
pub(crate) fn route_message(
    route: &Route,
    owner: &Owner,
    ifindex: impl Fn(&str) -> Option<u32>,
) -> Result<RouteMessage, BackendError> {
    let dst = route.dst;
    if dst != dst.trunc() {
        return Err(BackendError::Unsupported(format!(
            "route destination {dst} has host bits set (the prefix is {})",
            dst.trunc()
        )));
    }
    let index_of =
        |name: &str| ifindex(name).ok_or_else(|| BackendError::MissingInterface(name.to_string()));
    let mut message = base_message(&dst, owner);
    match &route.target {
        RouteTarget::Workload { interface } => {
            message.header.kind = RouteType::Unicast;
            message.header.scope = RouteScope::Link;
            message
                .attributes
                .push(RouteAttribute::Oif(index_of(interface)?));
        }
        RouteTarget::Blackhole => {
            message.header.kind = RouteType::BlackHole;
            message.header.scope = RouteScope::Universe;
        }
        RouteTarget::Via(hops) => {
            message.header.kind = RouteType::Unicast;
            message.header.scope = RouteScope::Universe;
            for hop in hops {
                if family(&hop.gateway) != message.header.address_family {
                    return Err(BackendError::Unsupported(format!(
                        "route {dst} via {}: the next hop's address family differs from the \
                         destination's",
                        hop.gateway
                    )));
                }
            }
            match hops.len() {
                0 => {
                    return Err(BackendError::Unsupported(format!(
                        "route {dst} via no next hop"
                    )))
                }
                1 => {
                    let hop = hops.first().expect("one hop");
                    message
                        .attributes
                        .push(RouteAttribute::Gateway(hop.gateway.into()));
                    if let Some(interface) = &hop.interface {
                        message
                            .attributes
                            .push(RouteAttribute::Oif(index_of(interface)?));
                        message.header.flags.insert(RouteFlags::Onlink);
                    }
                }
                _ => {
                    let mut nexthops = Vec::with_capacity(hops.len());
                    for hop in hops {
                        let mut nexthop = RouteNextHop::default();
                        nexthop
                            .attributes
                            .push(RouteAttribute::Gateway(hop.gateway.into()));
                        if let Some(interface) = &hop.interface {
                            nexthop.interface_index = index_of(interface)?;
                            nexthop.flags.insert(RouteNextHopFlags::Onlink);
                        }
                        nexthops.push(nexthop);
                    }
                    message.attributes.push(RouteAttribute::MultiPath(nexthops));
                }
            }
        }
    }
    Ok(message)
}

/// The message that deletes the owner's route to `dst`, whatever its type, scope or next
/// hops: the kernel matches only a route carrying the owner's protocol, so a foreign route to
/// the same destination is never deleted.
pub(crate) fn delete_message(dst: &IpNet, owner: &Owner) -> RouteMessage {
    let mut message = base_message(dst, owner);
    message.header.kind = RouteType::Unspec;
    // "No scope" is the wildcard of a delete.
    message.header.scope = RouteScope::NoWhere;
    message
}

/// A dump request for one address family of the owner's table; `protocol` 0 means every
/// protocol. Needs a strict-checking socket for the kernel to apply the filters.
pub(crate) fn dump_request(family: AddressFamily, table: u32, protocol: u8) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = family;
    message.header.table = table_in_header(table);
    message.header.protocol = RouteProtocol::from(protocol);
    message.attributes.push(RouteAttribute::Table(table));
    message
}

/// What conflict detection needs to know about any route in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KernelRoute {
    /// Destination.
    pub dst: IpNet,
    /// Protocol number.
    pub protocol: u8,
    /// Table id.
    pub table: u32,
    /// Metric (priority).
    pub metric: u32,
}

/// Reads the destination, protocol, table and metric of a route message. `None` for
/// messages that are not FIB entries of an IP family (cloned cache entries, other families).
pub(crate) fn kernel_route(message: &RouteMessage) -> Option<KernelRoute> {
    if message.header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let len = message.header.destination_prefix_length;
    let mut dst_addr = None;
    let mut table = u32::from(message.header.table);
    let mut metric = 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst_addr = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst_addr = Some(IpAddr::V6(*a)),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    let addr = match (dst_addr, message.header.address_family) {
        (Some(addr), _) => addr,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    let dst = IpNet::new(addr, len).ok()?;
    Some(KernelRoute {
        dst,
        protocol: u8::from(message.header.protocol),
        table,
        metric,
    })
}

/// Converts a route read from the kernel back into the agent's [`Route`]; `ifname` resolves
/// interface indexes. `Err` says why the route is not one this backend programs.
pub(crate) fn to_route(
    message: &RouteMessage,
    ifname: impl Fn(u32) -> Option<String>,
) -> Result<Route, String> {
    let dst = kernel_route(message)
        .ok_or_else(|| "not a FIB entry of an IP family".to_string())?
        .dst;
    let name_of =
        |index: u32| ifname(index).ok_or_else(|| format!("route {dst}: unknown ifindex {index}"));
    let target = match message.header.kind {
        RouteType::BlackHole => RouteTarget::Blackhole,
        RouteType::Unicast => {
            let mut gateway = None;
            let mut oif = None;
            let mut multipath = None;
            for attribute in &message.attributes {
                match attribute {
                    RouteAttribute::Gateway(address) => gateway = Some(address_of(address)?),
                    RouteAttribute::Oif(index) => oif = Some(*index),
                    RouteAttribute::MultiPath(hops) => multipath = Some(hops),
                    _ => {}
                }
            }
            if let Some(hops) = multipath {
                let mut set = BTreeSet::new();
                for hop in hops {
                    let gateway = hop
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            RouteAttribute::Gateway(address) => Some(address_of(address)),
                            _ => None,
                        })
                        .ok_or_else(|| format!("route {dst}: a next hop without gateway"))??;
                    let interface = if hop.flags.contains(RouteNextHopFlags::Onlink) {
                        Some(name_of(hop.interface_index)?)
                    } else {
                        None
                    };
                    set.insert(NextHop { gateway, interface });
                }
                RouteTarget::Via(set)
            } else if let Some(gateway) = gateway {
                let interface = match oif {
                    Some(index) if message.header.flags.contains(RouteFlags::Onlink) => {
                        Some(name_of(index)?)
                    }
                    _ => None,
                };
                RouteTarget::Via(BTreeSet::from([NextHop { gateway, interface }]))
            } else if let Some(index) = oif {
                RouteTarget::Workload {
                    interface: name_of(index)?,
                }
            } else {
                return Err(format!("route {dst}: unicast without interface or gateway"));
            }
        }
        other => {
            return Err(format!(
                "route {dst}: type {other:?} is not one the agent programs"
            ))
        }
    };
    Ok(Route { dst, target })
}

fn address_of(address: &RouteAddress) -> Result<IpAddr, String> {
    match address {
        RouteAddress::Inet(a) => Ok(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Ok(IpAddr::V6(*a)),
        other => Err(format!("unexpected gateway address {other:?}")),
    }
}

#[cfg(test)]
mod tests;
