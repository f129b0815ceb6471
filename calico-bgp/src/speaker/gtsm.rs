//! The Generalized TTL Security Mechanism (RFC 5082) on the speaker's sockets: packets to a
//! peer leave with TTL (hop limit) 255, and packets from it are dropped by the kernel unless
//! they arrive with at least `256 − hops`, so that nobody further away than the configured
//! number of hops can reach the session.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// The TTL (hop limit) GTSM sends with.
pub const GTSM_TTL: libc::c_int = 255;

/// Sends with TTL 255 and, when `min_ttl` is set, drops what arrives with a lower TTL, on
/// a socket whose traffic is IPv6 (`ipv6`) or IPv4 (`IP_TTL`/`IP_MINTTL`, which also govern
/// IPv4-mapped connections of an IPv6 socket).
pub fn apply(socket: &impl AsFd, ipv6: bool, min_ttl: Option<u8>) -> io::Result<()> {
    let (level, ttl, min) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            libc::IPV6_MINHOPCOUNT,
        )
    } else {
        (libc::IPPROTO_IP, libc::IP_TTL, libc::IP_MINTTL)
    };
    set_int(socket, level, ttl, GTSM_TTL)?;
    match min_ttl {
        Some(m) => set_int(socket, level, min, libc::c_int::from(m)),
        None => Ok(()),
    }
}

/// Sets an integer socket option.
pub(crate) fn set_int(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    crate::bfd::socket::set_int(socket.as_fd().as_raw_fd(), level, name, value)
}

/// The minimum TTL set on `socket` (0: none), for tests and diagnostics.
pub fn min_ttl(socket: &impl AsFd, ipv6: bool) -> io::Result<u8> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
    } else {
        (libc::IPPROTO_IP, libc::IP_MINTTL)
    };
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid socket, and value/len describe a c_int buffer.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(u8::try_from(value).unwrap_or(u8::MAX))
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_minimum_are_set_on_both_families() {
        for ipv6 in [false, true] {
            let domain = if ipv6 {
                socket2::Domain::IPV6
            } else {
                socket2::Domain::IPV4
            };
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
            assert_eq!(min_ttl(&s, ipv6).unwrap(), 0);
            apply(&s, ipv6, Some(254)).unwrap();
            assert_eq!(min_ttl(&s, ipv6).unwrap(), 254);
            let ttl = if ipv6 {
                s.unicast_hops_v6().unwrap()
            } else {
                s.ttl_v4().unwrap()
            };
            assert_eq!(ttl, 255);
        }
    }

    #[test]
    fn ipv4_options_take_on_an_ipv6_socket_for_mapped_traffic() {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        apply(&s, false, Some(255)).unwrap();
        assert_eq!(min_ttl(&s, false).unwrap(), 255);
        assert_eq!(s.ttl_v4().unwrap(), 255);
    }
}
