//! The addresses of the namespace's interfaces ([`FibBackend::interface_addresses`]), read
//! in one dump of each: addresses, then links for their names.
//!
//! [`FibBackend::interface_addresses`]: calico_core::dataplane::FibBackend::interface_addresses

use calico_core::dataplane::{BackendError, InterfaceAddresses};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::links::Links;
use super::netlink::Netlink;

/// Every interface holding an address, with its addresses (both families, every scope).
pub(crate) async fn read(netlink: &Netlink) -> Result<InterfaceAddresses, BackendError> {
    let answer = netlink
        .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .await
        .map_err(|f| f.into_error("dump interface addresses".into()))?;
    let links = Links::read(netlink).await?;
    let mut addrs = InterfaceAddresses::new();
    for message in answer {
        let RouteNetlinkMessage::NewAddress(address) = message else {
            continue;
        };
        let (Some(ip), Some(name)) = (local_address(&address), links.name(address.header.index))
        else {
            // An interface deleted between the two dumps, or an entry without an address.
            continue;
        };
        addrs.entry(name).or_default().insert(ip);
    }
    Ok(addrs)
}

/// The interface's own address: `IFA_LOCAL` when given (on a point-to-point link
/// `IFA_ADDRESS` is the peer's), else `IFA_ADDRESS` (IPv6 gives only that one).
fn local_address(message: &AddressMessage) -> Option<std::net::IpAddr> {
    let find = |local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_address_is_preferred_over_a_peers() {
        let mut m = AddressMessage::default();
        assert_eq!(local_address(&m), None);
        m.attributes
            .push(AddressAttribute::Address("192.0.2.2".parse().unwrap()));
        assert_eq!(local_address(&m), Some("192.0.2.2".parse().unwrap()));
        m.attributes
            .push(AddressAttribute::Local("192.0.2.1".parse().unwrap()));
        assert_eq!(local_address(&m), Some("192.0.2.1".parse().unwrap()));
    }
}
