//! TCP MD5 signatures (RFC 2385) on the speaker's sockets: the only `unsafe` of the speaker
//! besides `setns`, kept here.
//!
//! Linux keeps MD5 keys per socket and per peer address (`setsockopt(IPPROTO_TCP,
//! TCP_MD5SIG)`). A listening socket holds one key per peer with a password; the
//! connections it accepts inherit them. An outgoing socket gets its peer's key before
//! `connect`. Segments without the right signature are dropped by the kernel, so a wrong
//! password shows as a connection that never comes up, not as an error.
//!
//! The key's address must be of the socket's family: on an IPv6 socket (such as the
//! dual-stack `::` listener) an IPv4 peer is given as its v4-mapped address
//! (`::ffff:a.b.c.d`), which the kernel files as an IPv4 key; an IPv4 socket cannot hold a
//! key for an IPv6 peer.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Longest key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// Why a key could not be set or removed.
#[derive(Debug, thiserror::Error)]
pub enum Md5Error {
    /// The password does not fit the kernel's key.
    #[error("peer {peer}: TCP MD5 password is {len} bytes, at most {MAX_KEY_LEN} are possible")]
    KeyTooLong {
        /// The peer.
        peer: IpAddr,
        /// The password's length in bytes.
        len: usize,
    },
    /// The password is empty (the kernel reads an empty key as "remove the key").
    #[error("peer {peer}: TCP MD5 password is empty")]
    EmptyKey {
        /// The peer.
        peer: IpAddr,
    },
    /// An IPv4 socket cannot hold a key for an IPv6 peer.
    #[error("peer {peer}: an IPv4 socket cannot carry a TCP MD5 key for an IPv6 peer")]
    FamilyMismatch {
        /// The peer.
        peer: IpAddr,
    },
    /// The kernel refused the key.
    #[error("peer {peer}: setting the TCP MD5 key failed: {source}")]
    Setsockopt {
        /// The peer.
        peer: IpAddr,
        /// What the kernel said.
        source: io::Error,
    },
}

impl Md5Error {
    /// The peer the error is about.
    pub fn peer(&self) -> IpAddr {
        match self {
            Md5Error::KeyTooLong { peer, .. }
            | Md5Error::EmptyKey { peer }
            | Md5Error::FamilyMismatch { peer }
            | Md5Error::Setsockopt { peer, .. } => *peer,
        }
    }
}

/// Checks that `password` can be a key for `peer` (without touching a socket).
pub fn validate(peer: IpAddr, password: &str) -> Result<(), Md5Error> {
    match password.len() {
        0 => Err(Md5Error::EmptyKey { peer }),
        len if len > MAX_KEY_LEN => Err(Md5Error::KeyTooLong { peer, len }),
        _ => Ok(()),
    }
}

/// `struct tcp_md5sig` of `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

/// Sets (`Some`) or removes (`None`) the key for `peer` on `socket` (listening or about to
/// connect). Removing a key that is not there is not an error.
pub fn set_key(
    socket: BorrowedFd<'_>,
    peer: IpAddr,
    password: Option<&str>,
) -> Result<(), Md5Error> {
    let peer = peer.to_canonical();
    if let Some(password) = password {
        validate(peer, password)?;
    }
    let ipv6_socket =
        socket_is_ipv6(socket).map_err(|source| Md5Error::Setsockopt { peer, source })?;
    // SAFETY: all-zero bytes are a valid value of this plain C struct (sockaddr_storage
    // included); every field used is written below.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    match (peer, ipv6_socket) {
        (IpAddr::V4(v4), false) => write_v4(&mut sig.addr, v4),
        (IpAddr::V4(v4), true) => write_v6(&mut sig.addr, v4.to_ipv6_mapped()),
        (IpAddr::V6(v6), true) => write_v6(&mut sig.addr, v6),
        (IpAddr::V6(_), false) => return Err(Md5Error::FamilyMismatch { peer }),
    }
    if let Some(password) = password {
        let bytes = password.as_bytes();
        sig.key[..bytes.len()].copy_from_slice(bytes);
        // validate() bounded the length by MAX_KEY_LEN (80).
        sig.keylen = bytes.len() as u16;
    }
    // SAFETY: `sig` is a live, initialised `struct tcp_md5sig` and the length passed is its
    // size; the kernel only reads it. The descriptor is borrowed, so open for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    if password.is_none() && source.raw_os_error() == Some(libc::ENOENT) {
        return Ok(());
    }
    Err(Md5Error::Setsockopt { peer, source })
}

fn socket_is_ipv6(socket: BorrowedFd<'_>) -> io::Result<bool> {
    let mut domain: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are live locals of the sizes the kernel writes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(domain == libc::AF_INET6)
}

fn write_v4(storage: &mut libc::sockaddr_storage, addr: Ipv4Addr) {
    // SAFETY: sockaddr_storage is large and aligned enough for any socket address, so
    // viewing it as a sockaddr_in is sound.
    let sin = unsafe { &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(addr.octets()),
    };
}

fn write_v6(storage: &mut libc::sockaddr_storage, addr: Ipv6Addr) {
    // SAFETY: as in write_v4, for sockaddr_in6.
    let sin6 =
        unsafe { &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_addr = libc::in6_addr {
        s6_addr: addr.octets(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn struct_matches_the_kernel_layout() {
        // 128 (sockaddr_storage) + 1 + 1 + 2 + 4 + 80.
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn keys_are_set_and_removed_on_both_families() {
        let v6 = std::net::TcpListener::bind("[::1]:0");
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p4: IpAddr = "192.0.2.1".parse().unwrap();
        let p6: IpAddr = "2001:db8::1".parse().unwrap();
        set_key(v4.as_fd(), p4, Some("secret")).unwrap();
        set_key(v4.as_fd(), p4, Some("other")).unwrap();
        set_key(v4.as_fd(), p4, None).unwrap();
        set_key(v4.as_fd(), p4, None).unwrap();
        assert!(matches!(
            set_key(v4.as_fd(), p6, Some("x")),
            Err(Md5Error::FamilyMismatch { .. })
        ));
        if let Ok(v6) = v6 {
            // An IPv4 peer on an IPv6 socket: by its v4-mapped address.
            set_key(v6.as_fd(), p4, Some("secret")).unwrap();
            set_key(v6.as_fd(), p6, Some("secret")).unwrap();
            set_key(v6.as_fd(), p4, None).unwrap();
            set_key(v6.as_fd(), p6, None).unwrap();
        }
        let long = "x".repeat(81);
        let err = set_key(v4.as_fd(), p4, Some(&long)).unwrap_err();
        assert!(matches!(err, Md5Error::KeyTooLong { len: 81, .. }), "{err}");
        assert_eq!(err.peer(), p4);
        assert!(err.to_string().contains("192.0.2.1"), "{err}");
        assert!(matches!(
            set_key(v4.as_fd(), p4, Some("")),
            Err(Md5Error::EmptyKey { .. })
        ));
    }
}
