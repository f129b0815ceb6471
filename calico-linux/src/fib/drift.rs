//! Which rtnetlink notifications are drift of the FIB's state: a route of the agent's
//! protocol and table added, changed or removed by anyone but the backend's own socket, and
//! links created, deleted, or brought up or down (a workload interface deleted and created
//! again has lost its routes and its settings, and the kernel sends no `RTM_DELROUTE` for the
//! IPv4 routes it flushes with a device), and addresses added to or removed from an
//! interface (host endpoints without an interface name follow them). IPv6 link-local
//! addresses are not: every workload interface gets one about a second after it comes up
//! (once duplicate address detection is done), and each would cost the agent a repair
//! pass; a host endpoint expecting one is found at the next resync.
//!
//! Notifications carry in `nlmsg_pid` the port id of the socket whose request caused them,
//! so the backend's own changes are recognised and ignored (else each repair would trigger
//! the next). A message that does not parse is ignored (debug log).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::sys::protocols::NETLINK_ROUTE;

use super::route_msg::{kernel_route, Owner};
use crate::events::DriftListener;

/// `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_IFADDR`,
/// `RTNLGRP_IPV6_ROUTE`.
const GROUPS: [u32; 5] = [1, 5, 7, 9, 11];
/// Size of a netlink message header.
const HEADER_LEN: usize = 16;

/// A listener for FIB drift in the calling thread's network namespace; `own_portid` is the
/// port id of the socket the backend changes routes through (updated when it reconnects).
pub(crate) fn listener(own_portid: Arc<AtomicU32>, owner: Owner) -> DriftListener {
    let mut filter = FibEvents::new(own_portid, owner);
    DriftListener::open(
        "rtnetlink",
        NETLINK_ROUTE,
        &GROUPS,
        Box::new(move |datagram| filter.is_drift(datagram)),
    )
}

/// The filter's state: the links and addresses seen so far, to tell a new or changed one
/// from a repeat.
pub(crate) struct FibEvents {
    own_portid: Arc<AtomicU32>,
    owner: Owner,
    /// Up and lower-up flags of each link index seen.
    links: HashMap<u32, (bool, bool)>,
    /// Addresses seen, by link index (the kernel reports an address again when only its
    /// flags change, e.g. an IPv6 address done with duplicate address detection).
    addresses: HashSet<(u32, IpAddr)>,
}

impl FibEvents {
    pub(crate) fn new(own_portid: Arc<AtomicU32>, owner: Owner) -> FibEvents {
        FibEvents {
            own_portid,
            owner,
            links: HashMap::new(),
            addresses: HashSet::new(),
        }
    }

    /// Whether a datagram of notifications reports drift (every message is looked at, so
    /// that the link states stay current).
    pub(crate) fn is_drift(&mut self, datagram: &[u8]) -> bool {
        let own = self.own_portid.load(Ordering::Relaxed);
        let mut drift = false;
        let mut rest = datagram;
        while rest.len() >= HEADER_LEN {
            let len = rest
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, |b| u32::from_ne_bytes(b) as usize);
            let Some(bytes) = rest.get(..len).filter(|_| len >= HEADER_LEN) else {
                tracing::debug!("malformed rtnetlink notification ignored");
                break;
            };
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                Ok(message) if message.header.port_number != own => {
                    drift |= self.message_is_drift(&message.payload);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "malformed rtnetlink notification ignored"),
            }
        }
        drift
    }

    fn message_is_drift(&mut self, payload: &NetlinkPayload<RouteNetlinkMessage>) -> bool {
        let NetlinkPayload::InnerMessage(message) = payload else {
            return false;
        };
        match message {
            RouteNetlinkMessage::NewRoute(route) | RouteNetlinkMessage::DelRoute(route) => {
                kernel_route(route).is_some_and(|k| {
                    k.protocol == self.owner.protocol && k.table == self.owner.table
                })
            }
            RouteNetlinkMessage::NewLink(link) => self.link_changed(link),
            RouteNetlinkMessage::DelLink(link) => {
                let index = link.header.index;
                self.links.remove(&index);
                self.addresses.retain(|(i, _)| *i != index);
                true
            }
            RouteNetlinkMessage::NewAddress(address) => match address_key(address) {
                Some(key) => self.addresses.insert(key),
                None => false,
            },
            RouteNetlinkMessage::DelAddress(address) => match address_key(address) {
                Some(key) => {
                    self.addresses.remove(&key);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Whether a link notification is of a new link or a link brought up or down.
    ///
    /// (An address notification is drift when the address is new to the filter or gone.)
    fn link_changed(&mut self, link: &LinkMessage) -> bool {
        let flags = link.header.flags;
        let state = (
            flags.contains(LinkFlags::Up),
            flags.contains(LinkFlags::LowerUp),
        );
        self.links.insert(link.header.index, state) != Some(state)
    }
}

/// The link index and address an address notification is about; `None` for an IPv6
/// link-local address (see the module docs).
fn address_key(message: &AddressMessage) -> Option<(u32, IpAddr)> {
    let ip = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })?;
    let link_local = matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
    (!link_local).then_some((message.header.index, ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
    use netlink_packet_route::AddressFamily;
    use rtnetlink::packet_core::NetlinkHeader;

    fn owner() -> Owner {
        Owner {
            protocol: 80,
            table: 254,
        }
    }

    fn bytes(inner: RouteNetlinkMessage, pid: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.port_number = pid;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }

    fn route(protocol: u8) -> RouteMessage {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.destination_prefix_length = 32;
        route.header.table = 254;
        route.header.protocol = RouteProtocol::from(protocol);
        route
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                "10.65.0.1".parse().unwrap(),
            )));
        route
    }

    fn link(index: u32, up: bool) -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = index;
        if up {
            link.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        }
        link
    }

    #[test]
    fn someone_elses_change_to_our_routes_is_drift_and_ours_is_not() {
        let mut events = FibEvents::new(Arc::new(AtomicU32::new(42)), owner());
        assert!(events.is_drift(&bytes(RouteNetlinkMessage::DelRoute(route(80)), 999)));
        assert!(events.is_drift(&bytes(RouteNetlinkMessage::DelRoute(route(80)), 0)));
        assert!(!events.is_drift(&bytes(RouteNetlinkMessage::NewRoute(route(80)), 42)));
        assert!(!events.is_drift(&bytes(RouteNetlinkMessage::NewRoute(route(4)), 999)));
    }

    #[test]
    fn new_deleted_and_flapped_links_are_drift_repeats_are_not() {
        let mut events = FibEvents::new(Arc::new(AtomicU32::new(42)), owner());
        assert!(events.is_drift(&bytes(RouteNetlinkMessage::NewLink(link(7, false)), 0)));
        assert!(!events.is_drift(&bytes(RouteNetlinkMessage::NewLink(link(7, false)), 0)));
        assert!(events.is_drift(&bytes(RouteNetlinkMessage::NewLink(link(7, true)), 0)));
        assert!(events.is_drift(&bytes(RouteNetlinkMessage::DelLink(link(7, true)), 0)));
    }

    #[test]
    fn an_address_added_or_removed_is_drift_a_repeat_is_not() {
        let mut events = FibEvents::new(Arc::new(AtomicU32::new(42)), owner());
        let address = |ip: &str| {
            let mut address = AddressMessage::default();
            address.header.index = 7;
            address
                .attributes
                .push(AddressAttribute::Address(ip.parse().unwrap()));
            address
        };
        let new = bytes(RouteNetlinkMessage::NewAddress(address("2001:db8::1")), 0);
        assert!(events.is_drift(&new));
        // Reported again with other flags (duplicate address detection done): no change.
        assert!(!events.is_drift(&new));
        let gone = RouteNetlinkMessage::DelAddress(address("2001:db8::1"));
        assert!(events.is_drift(&bytes(gone, 0)));
        assert!(events.is_drift(&new), "back again");
        // Every interface's IPv6 link-local address is not news.
        let link_local = RouteNetlinkMessage::NewAddress(address("fe80::1"));
        assert!(!events.is_drift(&bytes(link_local, 0)));
        let v4 = RouteNetlinkMessage::NewAddress(address("192.0.2.1"));
        assert!(events.is_drift(&bytes(v4, 0)));
    }

    #[test]
    fn malformed_notifications_are_ignored_without_panic() {
        let mut events = FibEvents::new(Arc::new(AtomicU32::new(42)), owner());
        let good = bytes(RouteNetlinkMessage::DelRoute(route(80)), 999);
        for cut in 0..good.len() {
            let _ = events.is_drift(&good[..cut]);
        }
        let mut garbage = good.clone();
        for b in garbage.iter_mut().skip(HEADER_LEN) {
            *b = 0xff;
        }
        let _ = events.is_drift(&garbage);
        assert!(!events.is_drift(&[0xff; 3]));
    }
}
