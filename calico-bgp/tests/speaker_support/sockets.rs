//! A speaker's sockets in a network namespace, for the speaker tests and the BGP benches
//! (which include this file by path).

use std::sync::Arc;

use calico_bgp::speaker::socket::{OwnNamespace, SocketOpener};

/// Opens a speaker's sockets inside the network namespace at a path (such as
/// `/var/run/netns/NAME`), on a short-lived thread that entered it.
#[derive(Debug)]
pub struct NetnsSockets(pub std::path::PathBuf);

impl SocketOpener for NetnsSockets {
    fn tcp_socket(&self, addr: &std::net::SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
        calico_netns::enter_path(&self.0, || OwnNamespace.tcp_socket(addr))
            .unwrap_or_else(|e| Err(std::io::Error::new(e.source.kind(), e.to_string())))
    }

    fn udp_socket(&self, addr: &std::net::SocketAddr) -> std::io::Result<socket2::Socket> {
        calico_netns::enter_path(&self.0, || OwnNamespace.udp_socket(addr))
            .unwrap_or_else(|e| Err(std::io::Error::new(e.source.kind(), e.to_string())))
    }

    fn interface_of(
        &self,
        peer: std::net::IpAddr,
        local: std::net::SocketAddr,
    ) -> std::io::Result<Option<String>> {
        calico_netns::enter_path(&self.0, || OwnNamespace.interface_of(peer, local))
            .unwrap_or_else(|e| Err(std::io::Error::new(e.source.kind(), e.to_string())))
    }
}

/// The sockets of a speaker in the namespace at `path`.
pub fn sockets_in(path: impl Into<std::path::PathBuf>) -> Arc<dyn SocketOpener> {
    Arc::new(NetnsSockets(path.into()))
}
