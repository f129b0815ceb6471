//! Which interface a session runs over, as BIRD resolves a BGP route's `ifname`: for an
//! IPv6 link-local end, its scope; `lo` for a peer at one of our own addresses (the local
//! table's routes); else the interface of the kernel's most specific route to the peer
//! (main table, `/proc/thread-self/net/route` and `ipv6_route`, so in the calling thread's
//! network namespace); else the interface holding our end's address (`getifaddrs(3)`).
//!
//! `BGPFilter` rules with `interface` match a learned route by it. For a peer on a shared
//! subnet that is the subnet's interface; for a multihop peer, the interface the route to it
//! leaves by, even when the session runs from an address on `lo` or a dummy interface.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The interface a session with `peer` whose own end is `local` runs over (see the module
/// docs), or `None` when neither a route nor an address tells.
pub fn interface_of(peer: IpAddr, local: SocketAddr) -> io::Result<Option<String>> {
    if let SocketAddr::V6(v6) = local {
        if v6.scope_id() != 0 {
            return Ok(index_to_name(v6.scope_id()));
        }
    }
    let (peer, ours) = (peer.to_canonical(), addresses()?);
    // The local table comes first: a peer at one of our own addresses is reached by `lo`.
    if peer.is_loopback() || holding(&ours, peer).is_some() {
        return Ok(Some("lo".into()));
    }
    let routes = match peer {
        IpAddr::V4(_) => std::fs::read_to_string("/proc/thread-self/net/route"),
        IpAddr::V6(_) => std::fs::read_to_string("/proc/thread-self/net/ipv6_route"),
    };
    // Without /proc (a container without it), the address's interface still tells.
    match routes.ok().and_then(|t| route_interface(&t, peer)) {
        Some(iface) => Ok(Some(iface)),
        None => Ok(holding(&ours, local.ip())),
    }
}

/// The interface of the most specific usable route to `peer` in a `/proc/net/route` (IPv4)
/// or `/proc/net/ipv6_route` (IPv6) listing; among equally specific ones, the lowest metric.
pub(crate) fn route_interface(table: &str, peer: IpAddr) -> Option<String> {
    let routes = table.lines().filter_map(|l| match peer {
        IpAddr::V4(p) => ipv4_route(l, p),
        IpAddr::V6(p) => ipv6_route(l, p),
    });
    let best = routes.min_by_key(|(len, metric, _)| (std::cmp::Reverse(*len), *metric));
    best.map(|(_, _, iface)| iface.to_string())
}

/// Flags of a route that cannot carry traffic to the peer: down, reject, local.
const RTF_UP: u32 = 0x1;
const RTF_REJECT: u32 = 0x200;
const RTF_LOCAL: u32 = 0x8000_0000;

/// One line of `/proc/net/route` when its route leads to `peer`: prefix length, metric,
/// interface. The kernel prints addresses as native-endian hex of network-order bytes.
fn ipv4_route(line: &str, peer: Ipv4Addr) -> Option<(u32, u32, &str)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let (iface, dest, flags, metric, mask) = (
        f.first()?,
        hex(f.get(1)?)?,
        hex(f.get(3)?)?,
        f.get(6)?.parse().ok()?,
        hex(f.get(7)?)?,
    );
    let (dest, mask) = (
        u32::from_be_bytes(dest.to_ne_bytes()),
        u32::from_be_bytes(mask.to_ne_bytes()),
    );
    let usable = flags & RTF_UP != 0 && flags & RTF_REJECT == 0;
    (usable && u32::from(peer) & mask == dest).then_some((mask.count_ones(), metric, iface))
}

/// One line of `/proc/net/ipv6_route` when its route leads to `peer`.
fn ipv6_route(line: &str, peer: Ipv6Addr) -> Option<(u32, u32, &str)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let dest = u128::from_str_radix(f.first()?, 16).ok()?;
    let len = u32::from_str_radix(f.get(1)?, 16).ok()?.min(128);
    let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
    let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
    let iface = f.get(9)?;
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    let usable = flags & RTF_UP != 0 && flags & (RTF_REJECT | RTF_LOCAL) == 0;
    (usable && u128::from(peer) & mask == dest).then_some((len, metric, iface))
}

/// The interface of `ours` (the namespace's addresses) holding `addr`, or `None` when no
/// interface holds it (an unspecified address, or one removed since).
fn holding(ours: &[(String, IpAddr)], addr: IpAddr) -> Option<String> {
    let wanted = addr.to_canonical();
    if wanted.is_unspecified() {
        return None;
    }
    ours.iter()
        .find(|(_, a)| *a == wanted)
        .map(|(name, _)| name.clone())
}

/// Every (interface, address) pair of the namespace.
fn addresses() -> io::Result<Vec<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        // SAFETY: a non-null ifa_addr points at a sockaddr of the family it names.
        if let Some(addr) = unsafe { ip_of(ifa.ifa_addr) } {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            out.push((name.to_string_lossy().into_owned(), addr));
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The address of an IPv4 or IPv6 socket address; `None` for other families or null.
///
/// # Safety
/// `sa` is null or points at a socket address as long as its family says.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            let v4 = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            let v6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(Ipv6Addr::from(v6.sin6_addr.s6_addr).into())
        }
        _ => None,
    }
}

/// The name of interface `index`, if there is one.
fn index_to_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the kernel prints them (little-endian hex of network-order addresses).
    const ROUTES4: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t000A000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth2\t000A000A\t00000000\t0001\t0\t0\t5\t00FFFFFF\t0\t0\t0
eth3\t050A000A\t00000000\t0201\t0\t0\t0\tFFFFFFFF\t0\t0\t0
";

    const ROUTES6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth9
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0
";

    #[test]
    fn the_most_specific_usable_route_names_the_interface() {
        let v4 = |a: &str| route_interface(ROUTES4, a.parse().unwrap());
        assert_eq!(v4("192.0.2.7").as_deref(), Some("eth0"), "connected /24");
        assert_eq!(
            v4("10.0.10.9").as_deref(),
            Some("eth1"),
            "lower metric of two /24s"
        );
        assert_eq!(
            v4("10.0.10.5").as_deref(),
            Some("eth1"),
            "a reject /32 is no route"
        );
        assert_eq!(
            v4("198.51.100.1").as_deref(),
            Some("eth0"),
            "the default route"
        );
        let v6 = |a: &str| route_interface(ROUTES6, a.parse().unwrap());
        assert_eq!(v6("fd00::9").as_deref(), Some("eth0"), "connected /64");
        assert_eq!(v6("2001:db8::1").as_deref(), Some("eth9"), "default route");
        assert_eq!(
            v6("fd00::2").as_deref(),
            Some("eth0"),
            "our own address: its /64"
        );
        assert_eq!(route_interface("", "10.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn loopback_addresses_are_on_lo() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let v4 = interface_of(lo, "127.0.0.1:179".parse().unwrap()).unwrap();
        assert_eq!(v4.as_deref(), Some("lo"));
        let ours = addresses().unwrap();
        assert_eq!(holding(&ours, "0.0.0.0".parse().unwrap()), None);
        // An address no interface holds (TEST-NET-3).
        assert_eq!(holding(&ours, "203.0.113.254".parse().unwrap()), None);
        // A link-local address names its interface by scope.
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            179,
            0,
            1,
        ));
        let peer: IpAddr = "fe80::2".parse().unwrap();
        assert_eq!(interface_of(peer, scoped).unwrap().as_deref(), Some("lo"));
    }
}
