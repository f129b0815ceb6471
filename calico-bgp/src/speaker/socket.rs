//! Where the speaker's TCP sockets come from.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole
//! life. The speaker itself knows nothing of namespaces: it asks a [`SocketOpener`] for bare
//! sockets and binds, keys (TCP MD5), connects or listens on them itself. The default,
//! [`OwnNamespace`], opens them in the process's own namespace; an embedder that runs the
//! speaker for another namespace injects an opener that creates them there (on Linux, on a
//! short-lived thread that entered the namespace with `setns(2)`, as the calico-rs daemon
//! does).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::net::TcpSocket;

/// Creates the bare sockets a speaker uses: TCP for its listener and its outgoing
/// connections, UDP for BFD ([`crate::bfd`]).
pub trait SocketOpener: Send + Sync + fmt::Debug {
    /// A new TCP socket of the family of `addr`, not bound yet.
    fn tcp_socket(&self, addr: &SocketAddr) -> io::Result<TcpSocket>;

    /// A new UDP socket of the family of `addr`, not bound yet.
    fn udp_socket(&self, addr: &SocketAddr) -> io::Result<socket2::Socket>;

    /// The interface a session with `peer` from `local` (our end) runs over, in the
    /// sockets' namespace ([`super::interface::interface_of`] run there). The default looks
    /// in the calling thread's namespace: an opener for another namespace looks in that one.
    fn interface_of(
        &self,
        peer: std::net::IpAddr,
        local: SocketAddr,
    ) -> io::Result<Option<String>> {
        super::interface::interface_of(peer, local)
    }
}

/// Opens sockets in the process's own network namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnNamespace;

impl SocketOpener for OwnNamespace {
    fn tcp_socket(&self, addr: &SocketAddr) -> io::Result<TcpSocket> {
        match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
    }

    fn udp_socket(&self, addr: &SocketAddr) -> io::Result<socket2::Socket> {
        let domain = socket2::Domain::for_address(*addr);
        socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
    }
}

/// The speaker's sockets: opened by a [`SocketOpener`], bound to the source address and
/// keyed for TCP MD5 as configured.
#[derive(Clone)]
pub struct SocketFactory {
    opener: Arc<dyn SocketOpener>,
    source: Option<std::net::IpAddr>,
    md5_password: Option<String>,
    /// GTSM (RFC 5082): the lowest TTL accepted from the peer; `None`: off.
    gtsm_min_ttl: Option<u8>,
}

impl Default for SocketFactory {
    fn default() -> Self {
        SocketFactory::new(Arc::new(OwnNamespace))
    }
}

impl fmt::Debug for SocketFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password itself: this ends up in logs.
        f.debug_struct("SocketFactory")
            .field("opener", &self.opener)
            .field("source", &self.source)
            .field("md5", &self.md5_password.as_ref().map(|_| "<password>"))
            .field("gtsm_min_ttl", &self.gtsm_min_ttl)
            .finish()
    }
}

impl SocketFactory {
    /// Sockets opened by `opener` ([`OwnNamespace`]: in the process's namespace).
    pub fn new(opener: Arc<dyn SocketOpener>) -> SocketFactory {
        SocketFactory {
            opener,
            source: None,
            md5_password: None,
            gtsm_min_ttl: None,
        }
    }

    /// Outgoing connections to peers of `source`'s family are made from `source`.
    pub fn with_source(self, source: std::net::IpAddr) -> SocketFactory {
        SocketFactory {
            source: (!source.is_unspecified()).then_some(source),
            ..self
        }
    }

    /// Outgoing connections carry TCP MD5 signatures (RFC 2385) with this password.
    pub fn with_md5_password(self, password: Option<String>) -> SocketFactory {
        SocketFactory {
            md5_password: password,
            ..self
        }
    }

    /// The sockets of one peering: its session options' source address (when set) in
    /// place of the speaker's, and GTSM when `ttl_security` is set.
    pub fn with_session(self, session: &calico_core::dataplane::SessionOptions) -> SocketFactory {
        let with_source = match session.source_address {
            Some(source) => self.with_source(source),
            None => self,
        };
        SocketFactory {
            gtsm_min_ttl: session.min_ttl(),
            ..with_source
        }
    }

    /// The interface a session with `peer` whose end is `local` runs over, for `BGPFilter`
    /// rules that match on it; `None` (logged) when it cannot be found.
    pub fn interface_of(&self, peer: std::net::IpAddr, local: SocketAddr) -> Option<String> {
        self.opener.interface_of(peer, local).unwrap_or_else(|e| {
            tracing::warn!(%local, error = %e, "cannot list the interfaces: interface rules of BGP filters will not match this session's routes");
            None
        })
    }

    /// Applies the peering's GTSM to a connection accepted on the shared listener.
    pub fn secure_accepted(&self, stream: &tokio::net::TcpStream) -> io::Result<()> {
        match self.gtsm_min_ttl {
            Some(min) => {
                // The peer's family decides: an IPv4 peer on a dual-stack listener comes as
                // an IPv4-mapped address, governed by the IPv4 options.
                let ipv6 = stream.peer_addr()?.ip().to_canonical().is_ipv6();
                super::gtsm::apply(stream, ipv6, Some(min))
            }
            None => Ok(()),
        }
    }

    /// A socket to connect to `remote` from, bound to the source address when one is set,
    /// with the TCP MD5 key for `remote` when a password is set, and GTSM when on.
    pub fn connecting_socket(&self, remote: &SocketAddr) -> io::Result<TcpSocket> {
        let socket = self.socket_for(remote)?;
        if let Some(source) = self.source.filter(|s| s.is_ipv4() == remote.is_ipv4()) {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        if let Some(password) = &self.md5_password {
            super::md5::set_key(socket.as_fd(), remote.ip(), Some(password))
                .map_err(io::Error::other)?;
        }
        if let Some(min) = self.gtsm_min_ttl {
            super::gtsm::apply(&socket, remote.is_ipv6(), Some(min))?;
        }
        Ok(socket)
    }

    /// A TCP socket of the family of `addr`.
    pub fn socket_for(&self, addr: &SocketAddr) -> io::Result<TcpSocket> {
        self.opener.tcp_socket(addr)
    }

    /// A listening socket bound to `addr`.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let socket = self.socket_for(&addr)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(128)
    }
}
