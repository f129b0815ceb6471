//! Whether one rule matches one packet.

use std::net::IpAddr;

use super::packet::Packet;
use crate::calc::effective::{self, SelectableEndpoint};
use crate::model::{EntityRule, IcmpMatch, IpVersion, PortSpec, Protocol, Rule};
use crate::selector::Selector;

/// Whether `rule`, in a policy of `namespace` (`None` for global policies and profiles),
/// matches `packet`. `endpoints` are every endpoint of the model as rule selectors see them
/// ([`effective::selectable_endpoints`]).
pub(super) fn rule_matches(
    endpoints: &[SelectableEndpoint],
    namespace: Option<&str>,
    rule: &Rule,
    packet: &Packet,
) -> bool {
    if let Some(v) = rule.ip_version {
        if (v == IpVersion::V4) != packet.is_ipv4() {
            return false;
        }
    }
    if rule.protocol.is_some_and(|p| p != packet.protocol) {
        return false;
    }
    if rule.not_protocol == Some(packet.protocol) {
        return false;
    }
    if let Some(icmp) = &rule.icmp {
        if !icmp_matches(icmp, packet) {
            return false;
        }
    }
    if let Some(icmp) = &rule.not_icmp {
        if icmp_matches(icmp, packet) {
            return false;
        }
    }
    let sides = [
        (&rule.source, packet.src, packet.src_port),
        (&rule.destination, packet.dst, packet.dst_port),
    ];
    sides.into_iter().all(|(entity, addr, port)| {
        Side {
            endpoints,
            namespace,
            entity,
            addr,
            port,
            protocol: packet.protocol,
        }
        .matches()
    })
}

/// ICMP type (and code, if given) of an ICMP or ICMPv6 packet.
fn icmp_matches(m: &IcmpMatch, packet: &Packet) -> bool {
    if !matches!(packet.protocol, Protocol::ICMP | Protocol::ICMPV6) {
        return false;
    }
    let type_ok = m.icmp_type.is_none_or(|t| packet.icmp_type == Some(t));
    let code_ok = m.code.is_none_or(|c| packet.icmp_code == Some(c));
    type_ok && code_ok
}

/// One side (source or destination) of a rule, applied to one side of a packet.
struct Side<'a> {
    endpoints: &'a [SelectableEndpoint],
    namespace: Option<&'a str>,
    entity: &'a EntityRule,
    addr: IpAddr,
    port: Option<u16>,
    protocol: Protocol,
}

impl Side<'_> {
    fn matches(&self) -> bool {
        let e = self.entity;
        if !e.nets.is_empty() && !e.nets.iter().any(|n| n.contains(&self.addr)) {
            return false;
        }
        if e.not_nets.iter().any(|n| n.contains(&self.addr)) {
            return false;
        }
        if let Some(sel) = effective::effective_selector(self.namespace, e) {
            if !self.owned_by_match(&sel) {
                return false;
            }
        }
        if let Some(sel) = effective::effective_not_selector(self.namespace, e) {
            if self.owned_by_match(&sel) {
                return false;
            }
        }
        if !e.ports.is_empty() {
            let Some(port) = self.port else { return false };
            if !e.ports.iter().any(|p| self.port_matches(p, port)) {
                return false;
            }
        }
        if let Some(port) = self.port {
            if e.not_ports.iter().any(|p| self.port_matches(p, port)) {
                return false;
            }
        }
        true
    }

    /// Whether the address belongs to an endpoint the selector matches, or falls in a
    /// network of a network set it matches (Calico puts both in the selector's IP set).
    fn owned_by_match(&self, sel: &Selector) -> bool {
        self.endpoints
            .iter()
            .any(|ep| ep.owns(&self.addr) && sel.matches(&ep.labels))
    }

    fn port_matches(&self, spec: &PortSpec, port: u16) -> bool {
        match spec {
            PortSpec::Range { min, max } => (*min..=*max).contains(&port),
            PortSpec::Named(name) => {
                let sel = effective::named_port_selector(self.namespace, self.entity);
                self.endpoints.iter().any(|ep| {
                    ep.addresses.contains(&self.addr)
                        && sel.matches(&ep.labels)
                        && ep.ports.iter().any(|np| {
                            &np.name == name && np.protocol == self.protocol && np.port == port
                        })
                })
            }
        }
    }
}
