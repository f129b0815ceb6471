//! The listening socket shared by every peering, the task accepting on it, and the TCP MD5
//! keys installed on it (one per peer with a password).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;

use calico_core::dataplane::{BackendError, PeerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::md5;

/// The listening socket and the task accepting on it.
pub(crate) struct Listener {
    local: SocketAddr,
    socket: Arc<TcpListener>,
    task: JoinHandle<()>,
    /// TCP MD5 passwords installed on the socket, by peer address.
    keys: HashMap<IpAddr, String>,
}

impl Listener {
    /// Accepts connections on `socket` and hands each to `sink` as `wrap(stream, from)`,
    /// until the sink's channel is closed or the listener is closed. The sink is weak: the
    /// listener does not keep its receiver's owner alive.
    pub(crate) fn serve<T: Send + 'static>(
        socket: TcpListener,
        sink: mpsc::WeakSender<T>,
        wrap: fn(TcpStream, SocketAddr) -> T,
    ) -> Listener {
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let socket = Arc::new(socket);
        let accepting = socket.clone();
        let task = tokio::spawn(async move {
            loop {
                match accepting.accept().await {
                    Ok((stream, from)) => {
                        let Some(sink) = sink.upgrade() else {
                            return;
                        };
                        if sink.send(wrap(stream, from)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tracing::info!(%local, "BGP listener ready");
        Listener {
            local,
            socket,
            task,
            keys: HashMap::new(),
        }
    }

    /// The address the socket is bound to.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting at once (a listener replaced by another).
    pub(crate) fn abort(self) {
        self.task.abort();
    }

    /// Stops accepting; the socket closes once the task is gone.
    pub(crate) async fn close(self) {
        self.task.abort();
        drop(self.socket);
        let _ = self.task.await;
    }

    /// Sends SYN-ACKs with TTL 255 when a peering uses GTSM (RFC 5082), whose peer drops
    /// anything arriving with less; the system default otherwise. Each accepted connection
    /// then gets its peering's own setting.
    pub(crate) fn sync_ttl(&self, peers: &BTreeSet<PeerConfig>) -> Result<(), BackendError> {
        let gtsm = peers.iter().any(|p| p.session.ttl_security.is_some());
        let sock = &*self.socket;
        // -1: the system default (net.ipv4.ip_default_ttl, net.ipv6.conf.*.hop_limit).
        let ttl: libc::c_int = if gtsm { 255 } else { -1 };
        let mut result = super::gtsm::set_int(sock, libc::IPPROTO_IP, libc::IP_TTL, ttl);
        if self.local.is_ipv6() {
            // A dual-stack listener: IPv4-mapped connections take IP_TTL, IPv6 ones this.
            let v6 = super::gtsm::set_int(sock, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl);
            result = v6.and(result.or(Ok(())));
        }
        result.map_err(|e| BackendError::Unavailable(format!("listener {}: TTL: {e}", self.local)))
    }

    /// Makes the socket's TCP MD5 keys those of `peers`: sets new and changed passwords,
    /// removes the keys of peers without one (or no longer configured).
    pub(crate) fn sync_keys(&mut self, peers: &BTreeSet<PeerConfig>) -> Result<(), BackendError> {
        let fd = self.socket.as_fd();
        let wanted: HashMap<IpAddr, &str> = peers
            .iter()
            .filter_map(|p| Some((p.address, p.password.as_deref()?)))
            .collect();
        let stale: Vec<IpAddr> = self
            .keys
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for peer in stale {
            md5::set_key(fd, peer, None)
                .map_err(|e| BackendError::Unavailable(format!("removing a listener key: {e}")))?;
            self.keys.remove(&peer);
            tracing::info!(%peer, "TCP MD5 key removed from the listener");
        }
        for (peer, password) in wanted {
            if self.keys.get(&peer).map(String::as_str) == Some(password) {
                continue;
            }
            match md5::set_key(fd, peer, Some(password)) {
                Ok(()) => {
                    self.keys.insert(peer, password.to_string());
                    tracing::info!(%peer, "TCP MD5 key set on the listener");
                }
                Err(e @ md5::Md5Error::FamilyMismatch { .. }) => {
                    // An IPv6 peer cannot reach an IPv4 listener anyway; we connect to it.
                    tracing::warn!(error = %e, listener = %self.local, "peer cannot connect to us; only outgoing connections are signed");
                }
                Err(e) => {
                    return Err(BackendError::Unavailable(format!(
                        "listener {}: {e}",
                        self.local
                    )))
                }
            }
        }
        Ok(())
    }
}
