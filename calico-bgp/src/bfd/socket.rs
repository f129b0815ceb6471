//! BFD's UDP sockets (RFC 5881): one receiving socket per family on port 3784, and one
//! sending socket per session from a port in 49152–65535, with TTL (hop limit) 255 out and
//! the received TTL reported so that packets from further than one hop away are dropped
//! (the Generalized TTL Security Mechanism, RFC 5881 §5).

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::speaker::socket::SocketOpener;

/// The destination port of single-hop BFD Control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;

/// The source ports a session may use (RFC 5881 §4).
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The TTL every packet is sent with, and the only one accepted.
pub const TTL: u8 = 255;

/// The receiving socket of a family, bound to `addr` (port [`CONTROL_PORT`]).
pub fn receiver(opener: &dyn SocketOpener, addr: IpAddr) -> io::Result<UdpSocket> {
    let at = SocketAddr::new(addr, CONTROL_PORT);
    let socket = opener.udp_socket(&at)?;
    if at.is_ipv6() {
        // Keep IPv4 to its own socket (a dual-stack one would take port 3784 of both).
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    let (level, option) = match at {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_RECVTTL),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT),
    };
    set_int(socket.as_raw_fd(), level, option, 1)?;
    socket.bind(&at.into())?;
    tokio_socket(socket)
}

/// A session's sending socket, bound to `local` (unspecified: the kernel's choice) and a
/// free port in 49152–65535, sending with TTL 255.
pub fn sender(opener: &dyn SocketOpener, local: IpAddr, seed: u32) -> io::Result<UdpSocket> {
    let socket = opener.udp_socket(&SocketAddr::new(local, 0))?;
    match local {
        IpAddr::V4(_) => socket.set_ttl_v4(TTL.into())?,
        IpAddr::V6(_) => socket.set_unicast_hops_v6(TTL.into())?,
    }
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for i in 0..span {
        let port = SOURCE_PORTS.start() + ((seed.wrapping_add(i)) % span) as u16;
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => return tokio_socket(socket),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn tokio_socket(socket: socket2::Socket) -> io::Result<UdpSocket> {
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Sets an integer socket option.
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A datagram received: its length in the buffer, its source, and its TTL (hop limit) when
/// the kernel reported one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the datagram in the buffer.
    pub len: usize,
    /// Where it came from.
    pub from: SocketAddr,
    /// Its IP TTL or IPv6 hop limit.
    pub ttl: Option<u8>,
}

/// Receives one datagram into `buf`, with its TTL.
pub async fn receive(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    socket
        .async_io(Interest::READABLE, || recvmsg(socket.as_raw_fd(), buf))
        .await
}

fn recvmsg(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    // Room for one int-sized control message per family (u64 for alignment).
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>() as _;
    // SAFETY: `msg` describes valid buffers of the given sizes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then (partly) written by the kernel.
    let from = source_of(unsafe { &name.assume_init() })
        .ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
    Ok(Received {
        len: n as usize,
        from,
        ttl: ttl_of(&msg),
    })
}

/// The IPv4 or IPv6 address and port in a socket address the kernel filled.
fn source_of(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let storage: *const libc::sockaddr_storage = name;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits in the storage.
            let a = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6, which fits in the storage.
            let a = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// The TTL or hop limit among the control messages of `msg`.
fn ttl_of(msg: &libc::msghdr) -> Option<u8> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros stay within msg_controllen, and
    // the data of IP_TTL / IPV6_HOPLIMIT messages is one int.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let is_ttl = (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return u8::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}
