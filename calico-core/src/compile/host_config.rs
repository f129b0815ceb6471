//! Settings of the host's own protection: what happens to traffic from workloads to the
//! host, the failsafe ports no host-endpoint policy can close, and the packet-mark bits the
//! host chains use. Felix's `DefaultEndpointToHostAction`, `FailsafeInboundHostPorts`,
//! `FailsafeOutboundHostPorts` and `OpenstackSpecialCases`, with Felix's defaults.

use std::str::FromStr;

pub use super::failsafe::FailsafePort;
use super::failsafe::{ports, DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND};

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

/// The host's protection settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostConfig {
    /// Workload → host traffic after the workload's egress policy allowed it.
    pub endpoint_to_host: EndpointToHostAction,
    /// Ports open to the host whatever the host-endpoint policy says (from their
    /// networks, when they name one).
    pub failsafe_inbound: Vec<FailsafePort>,
    /// Ports the host may always reach out to (in their networks, when they name one).
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
    fn endpoint_to_host_actions_parse_case_insensitively() {
        assert_eq!("ACCEPT".parse(), Ok(EndpointToHostAction::Accept));
        assert_eq!("Return".parse(), Ok(EndpointToHostAction::Return));
        assert!("allow".parse::<EndpointToHostAction>().is_err());
    }
}
