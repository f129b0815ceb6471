//! Which interface a session runs over: the interface holding our end's address (for an
//! IPv6 link-local address, its scope), found with `getifaddrs(3)` in the calling
//! thread's network namespace.
//!
//! `BGPFilter` rules with `interface` match a learned route by it. For a peer on a shared
//! subnet this is the interface BIRD resolves the route's next hop to. For a multihop
//! session from an address on `lo` or a dummy interface it is that interface, where BIRD
//! would name the interface its IGP route to the next hop leaves by.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The interface holding `local` (a session's own end), or `None` when no interface holds
/// it (an unspecified address, or one removed since).
pub fn interface_of(local: SocketAddr) -> io::Result<Option<String>> {
    if let SocketAddr::V6(v6) = local {
        if v6.scope_id() != 0 {
            return Ok(index_to_name(v6.scope_id()));
        }
    }
    let wanted = local.ip().to_canonical();
    if wanted.is_unspecified() {
        return Ok(None);
    }
    Ok(addresses()?
        .into_iter()
        .find(|(_, addr)| *addr == wanted)
        .map(|(name, _)| name))
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

    #[test]
    fn loopback_addresses_are_on_lo() {
        let v4 = interface_of("127.0.0.1:179".parse().unwrap()).unwrap();
        assert_eq!(v4.as_deref(), Some("lo"));
        let none = interface_of("0.0.0.0:179".parse().unwrap()).unwrap();
        assert_eq!(none, None);
        // An address no interface holds (TEST-NET-3).
        let stray = interface_of("203.0.113.254:179".parse().unwrap()).unwrap();
        assert_eq!(stray, None);
        // A link-local address names its interface by scope.
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            179,
            0,
            1,
        ));
        assert_eq!(interface_of(scoped).unwrap().as_deref(), Some("lo"));
    }
}
