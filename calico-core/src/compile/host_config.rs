//! Settings of the host's own protection: what happens to traffic from workloads to the
//! host, the failsafe ports no host-endpoint policy can close, and the packet-mark bits the
//! host chains use. Felix's `DefaultEndpointToHostAction`, `FailsafeInboundHostPorts`,
//! `FailsafeOutboundHostPorts` and `OpenstackSpecialCases`, with Felix's defaults.

use std::fmt;
use std::str::FromStr;

use crate::model::Protocol;

/// What happens to a packet from a local workload to the host itself once the workload's
/// egress policy allowed it (Felix's `DefaultEndpointToHostAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EndpointToHostAction {
    /// Drop it (Felix's default): a workload cannot reach the host's own services.
    #[default]
    Drop,
    /// Accept it in the agent's table. Other nftables tables' input chains still see it.
    Accept,
    /// Felix's `Return`: hand it back to the host's other rules. In nftables a table cannot
    /// end another table's verdict, so this accepts in the agent's table, as `Accept` does.
    Return,
}

impl FromStr for EndpointToHostAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "drop" => Ok(EndpointToHostAction::Drop),
            "accept" => Ok(EndpointToHostAction::Accept),
            "return" => Ok(EndpointToHostAction::Return),
            _ => Err(format!("{s:?} is not Drop, Accept or Return")),
        }
    }
}

/// A port no host-endpoint policy can close: inbound, packets to the host with this
/// destination port; outbound, packets from the host with this destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailsafePort {
    /// TCP or UDP (or another protocol with ports: SCTP, UDP-Lite).
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
}

impl FromStr for FailsafePort {
    type Err = String;

    /// `tcp:22`, `udp:68` (Felix's notation, without its optional network).
    fn from_str(s: &str) -> Result<Self, String> {
        let (proto, port) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not protocol:port (e.g. tcp:22)"))?;
        if port.contains(':') || port.contains('/') {
            return Err(format!(
                "{s:?}: a failsafe network (protocol:net:port) is not supported; give protocol:port"
            ));
        }
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::TCP,
            "udp" => Protocol::UDP,
            "sctp" => Protocol(132),
            _ => return Err(format!("{s:?}: the protocol must be tcp, udp or sctp")),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: {port:?} is not a port number (0-65535)"))?;
        Ok(FailsafePort { protocol, port })
    }
}

impl fmt::Display for FailsafePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::TCP => "tcp",
            Protocol::UDP => "udp",
            _ => "sctp",
        };
        write!(f, "{proto}:{}", self.port)
    }
}

/// Felix's default inbound failsafe ports: SSH, DHCP, BGP, etcd, Typha, the Kubernetes API
/// server and Calico's etcd proxy ports.
pub const DEFAULT_FAILSAFE_INBOUND: &[(Protocol, u16)] = &[
    (Protocol::TCP, 22),
    (Protocol::UDP, 68),
    (Protocol::TCP, 179),
    (Protocol::TCP, 2379),
    (Protocol::TCP, 2380),
    (Protocol::TCP, 5473),
    (Protocol::TCP, 6443),
    (Protocol::TCP, 6666),
    (Protocol::TCP, 6667),
];

/// Felix's default outbound failsafe ports: DNS, DHCP, BGP, etcd, Typha, the Kubernetes API
/// server and Calico's etcd proxy ports.
pub const DEFAULT_FAILSAFE_OUTBOUND: &[(Protocol, u16)] = &[
    (Protocol::UDP, 53),
    (Protocol::UDP, 67),
    (Protocol::TCP, 179),
    (Protocol::TCP, 2379),
    (Protocol::TCP, 2380),
    (Protocol::TCP, 5473),
    (Protocol::TCP, 6443),
    (Protocol::TCP, 6666),
    (Protocol::TCP, 6667),
];

fn ports(list: &[(Protocol, u16)]) -> Vec<FailsafePort> {
    list.iter()
        .map(|&(protocol, port)| FailsafePort { protocol, port })
        .collect()
}

/// The host's protection settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostConfig {
    /// Workload → host traffic after the workload's egress policy allowed it.
    pub endpoint_to_host: EndpointToHostAction,
    /// Ports open to the host whatever the host-endpoint policy says.
    pub failsafe_inbound: Vec<FailsafePort>,
    /// Ports the host may always reach out to.
    pub failsafe_outbound: Vec<FailsafePort>,
    /// OpenStack's special cases: workloads may always reach the host's DHCP server (UDP
    /// 68 → 67, and 546 → 547 for DHCPv6) and DNS (UDP 53), before their egress policy.
    pub openstack_special_cases: bool,
    /// Mark bit: a host-endpoint policy or profile allowed the packet.
    pub accept_mark: u32,
    /// Mark bit: the packet is going from a workload to the host.
    pub to_host_mark: u32,
    /// Mark bit: untracked or pre-DNAT policy allowed the packet (what comes after, pre-DNAT
    /// and normal policy, is skipped).
    pub early_allow_mark: u32,
    /// Priority of the untracked-policy chains (before conntrack, -200: nftables' `raw`).
    pub untracked_priority: i32,
    /// Priority of the pre-DNAT chain (below nftables' `dstnat`, -100).
    pub pre_dnat_priority: i32,
}

impl Default for HostConfig {
    /// Felix's defaults; the mark bits next to the Pass mark (0x0002_0000).
    fn default() -> Self {
        HostConfig {
            endpoint_to_host: EndpointToHostAction::Drop,
            failsafe_inbound: ports(DEFAULT_FAILSAFE_INBOUND),
            failsafe_outbound: ports(DEFAULT_FAILSAFE_OUTBOUND),
            openstack_special_cases: false,
            accept_mark: 0x0001_0000,
            to_host_mark: 0x0004_0000,
            early_allow_mark: 0x0008_0000,
            untracked_priority: -300,
            pre_dnat_priority: -110,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failsafe_ports_parse_as_felix_writes_them() {
        assert_eq!(
            "TCP:22".parse::<FailsafePort>(),
            Ok(FailsafePort {
                protocol: Protocol::TCP,
                port: 22
            })
        );
        assert_eq!(
            "udp:68".parse::<FailsafePort>().unwrap().to_string(),
            "udp:68"
        );
        for bad in ["22", "icmp:1", "tcp:70000", "tcp:10.0.0.0/8:22", "tcp:"] {
            assert!(bad.parse::<FailsafePort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_to_host_actions_parse_case_insensitively() {
        assert_eq!("ACCEPT".parse(), Ok(EndpointToHostAction::Accept));
        assert_eq!("Return".parse(), Ok(EndpointToHostAction::Return));
        assert!("allow".parse::<EndpointToHostAction>().is_err());
    }
}
