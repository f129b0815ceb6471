//! The packet description the evaluator judges.

use std::net::IpAddr;

use crate::model::{PolicyType, Protocol};

/// Direction of a packet relative to a local endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Arriving at the endpoint (its address is the destination).
    Ingress,
    /// Leaving the endpoint (its address is the source).
    Egress,
}

impl Direction {
    /// The policy type governing this direction.
    pub fn policy_type(self) -> PolicyType {
        match self {
            Direction::Ingress => PolicyType::Ingress,
            Direction::Egress => PolicyType::Egress,
        }
    }
}

/// The first packet of a flow: addresses, protocol, and ports or ICMP type/code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub protocol: Protocol,
    /// Source port (protocols with ports).
    pub src_port: Option<u16>,
    /// Destination port (protocols with ports).
    pub dst_port: Option<u16>,
    /// ICMP type (ICMP and ICMPv6).
    pub icmp_type: Option<u8>,
    /// ICMP code (ICMP and ICMPv6).
    pub icmp_code: Option<u8>,
}

impl Packet {
    /// A packet of a protocol with ports.
    pub fn ported(protocol: Protocol, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Packet {
            src,
            dst,
            protocol,
            src_port: Some(sport),
            dst_port: Some(dport),
            icmp_type: None,
            icmp_code: None,
        }
    }

    /// A TCP packet.
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::ported(Protocol::TCP, src, sport, dst, dport)
    }

    /// A UDP packet.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::ported(Protocol::UDP, src, sport, dst, dport)
    }

    /// An ICMP (IPv4) packet.
    pub fn icmp(src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8) -> Self {
        Self::icmp_of(Protocol::ICMP, src, dst, icmp_type, code)
    }

    /// An ICMPv6 packet.
    pub fn icmpv6(src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8) -> Self {
        Self::icmp_of(Protocol::ICMPV6, src, dst, icmp_type, code)
    }

    fn icmp_of(protocol: Protocol, src: IpAddr, dst: IpAddr, icmp_type: u8, code: u8) -> Self {
        Packet {
            src,
            dst,
            protocol,
            src_port: None,
            dst_port: None,
            icmp_type: Some(icmp_type),
            icmp_code: Some(code),
        }
    }

    /// A packet of any other protocol (no ports, no ICMP fields).
    pub fn other(protocol: Protocol, src: IpAddr, dst: IpAddr) -> Self {
        Packet {
            src,
            dst,
            protocol,
            src_port: None,
            dst_port: None,
            icmp_type: None,
            icmp_code: None,
        }
    }

    /// Whether this is an IPv4 packet.
    pub fn is_ipv4(&self) -> bool {
        self.src.is_ipv4()
    }
}
