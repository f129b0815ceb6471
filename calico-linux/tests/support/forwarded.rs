//! Random first packets between a host's workloads and the outside, for the equivalence
//! tests of the ACL backends: what the reference evaluator says of one forwarded by the
//! host, and delivering it for real.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use calico_core::eval::{evaluate, Direction, EndpointRef, Packet};
use calico_core::model::{Model, Protocol};
use calico_netns::fixtures::Netns;

use super::udp_delivers;

/// The reference verdict for a packet forwarded by `node` (egress of a local source, then
/// ingress of a local destination).
pub fn reference(model: &Model, node: &str, p: &Packet) -> bool {
    let local = |a: IpAddr| {
        model
            .workload_endpoints
            .values()
            .find(|ep| ep.node == node && ep.ip_networks.iter().any(|n| n.addr() == a))
    };
    let mut allowed = true;
    for (ep, dir) in [
        (local(p.src), Direction::Egress),
        (local(p.dst), Direction::Ingress),
    ] {
        if let Some(ep) = ep {
            allowed &= evaluate(model, &EndpointRef::Workload(ep.id.clone()), dir, p)
                .unwrap()
                .verdict
                .is_allow();
        }
    }
    allowed
}

/// Sends the packet for real; whether it was delivered.
pub fn deliver(src: &Netns, dst: &Netns, p: &Packet) -> bool {
    let (s, d) = (p.src, p.dst);
    match p.protocol {
        Protocol::TCP => {
            let (sport, dport) = (p.src_port.unwrap(), p.dst_port.unwrap());
            let _listener = dst
                .enter(move || TcpListener::bind(SocketAddr::new(d, dport)))
                .unwrap()
                .unwrap();
            src.output(&[
                "nc",
                "-z",
                "-w1",
                "-s",
                &s.to_string(),
                "-p",
                &sport.to_string(),
                &d.to_string(),
                &dport.to_string(),
            ])
            .unwrap()
            .status
            .success()
        }
        Protocol::UDP => {
            let (sport, dport) = (p.src_port.unwrap(), p.dst_port.unwrap());
            let rx = dst
                .enter(move || UdpSocket::bind(SocketAddr::new(d, dport)))
                .unwrap()
                .unwrap();
            rx.set_read_timeout(Some(std::time::Duration::from_millis(500)))
                .unwrap();
            let tx = src
                .enter(move || UdpSocket::bind(SocketAddr::new(s, sport)))
                .unwrap()
                .unwrap();
            udp_delivers(&tx, &rx)
        }
        _ => src
            .output(&["ping", "-c1", "-W1", "-I", &s.to_string(), &d.to_string()])
            .unwrap()
            .status
            .success(),
    }
}

/// Whether the harness can send this packet: IPv4, between different namespaces, a TCP or
/// UDP first packet or an echo request.
pub fn sendable(p: &Packet) -> bool {
    p.src.is_ipv4()
        && p.src != p.dst
        && match p.protocol {
            Protocol::TCP | Protocol::UDP => true,
            Protocol::ICMP => p.icmp_type == Some(8) && p.icmp_code == Some(0),
            _ => false,
        }
}
