//! TCP sockets in a chosen network namespace. A socket belongs to the namespace of the thread
//! that created it, for its whole life; so sockets are created on a short-lived thread that
//! entered the namespace with `setns(2)`, and used from any tokio task afterwards.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;

use tokio::net::TcpSocket;

/// Where the speaker's sockets live.
#[derive(Clone, Default)]
pub struct SocketFactory {
    netns: Option<PathBuf>,
    source: Option<std::net::IpAddr>,
    md5_password: Option<String>,
}

impl std::fmt::Debug for SocketFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password itself: this ends up in logs.
        f.debug_struct("SocketFactory")
            .field("netns", &self.netns)
            .field("source", &self.source)
            .field("md5", &self.md5_password.as_ref().map(|_| "<password>"))
            .finish()
    }
}

impl SocketFactory {
    /// Sockets in the network namespace at `path` (e.g. `/var/run/netns/NAME`), or in the
    /// process's namespace when `None`.
    pub fn new(netns: Option<PathBuf>) -> SocketFactory {
        SocketFactory {
            netns,
            source: None,
            md5_password: None,
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

    /// A socket to connect to `remote` from, bound to the source address when one is set,
    /// with the TCP MD5 key for `remote` when a password is set.
    pub fn connecting_socket(&self, remote: &SocketAddr) -> io::Result<TcpSocket> {
        let socket = self.socket_for(remote)?;
        if let Some(source) = self.source.filter(|s| s.is_ipv4() == remote.is_ipv4()) {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        if let Some(password) = &self.md5_password {
            super::md5::set_key(socket.as_fd(), remote.ip(), Some(password))
                .map_err(io::Error::other)?;
        }
        Ok(socket)
    }

    /// A TCP socket of the family of `addr`.
    pub fn socket_for(&self, addr: &SocketAddr) -> io::Result<TcpSocket> {
        let make = move || match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let Some(path) = &self.netns else {
            return make();
        };
        calico_linux::netns::enter_path(path, make).unwrap_or_else(|e| {
            let kind = match &e {
                calico_linux::netns::NetnsError::Enter { source, .. } => source.kind(),
                _ => io::ErrorKind::Other,
            };
            Err(io::Error::new(kind, e.to_string()))
        })
    }

    /// A listening socket bound to `addr`.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let socket = self.socket_for(&addr)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(128)
    }
}
