//! Validation of every resource, with Calico's rules and limits, so an orchestrator gets the
//! same answers from us as from `calicoctl`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::bgp::{BgpConfiguration, BgpPeer, Node};
use super::endpoint::{HostEndpoint, NamedPort, WorkloadEndpoint};
use super::error::{Reason, ResourceRef, ValidationError};
use super::pool::{BlockAffinity, IpPool};
use super::resource::{Resource, ResourceKind};
use super::rule::{EntityRule, IcmpMatch, IpVersion, PortSpec, Protocol, Rule};
use crate::labels::Labels;

mod policy;

/// Most rules in one direction of a policy or profile.
pub const MAX_RULES_PER_DIRECTION: usize = 1024;
/// Most entries in `nets` (and, separately, `notNets`) of an entity rule.
pub const MAX_NETS: usize = 256;
/// Most entries in `ports` (and, separately, `notPorts`) of an entity rule.
pub const MAX_PORTS: usize = 50;
/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_INTERFACE_NAME: usize = 15;
/// Longest resource name (a DNS-1123 subdomain).
pub const MAX_NAME: usize = 253;
/// Longest label value (Kubernetes).
pub const MAX_LABEL_VALUE: usize = 63;
/// Largest ICMP type a rule may match (Calico reserves 255).
pub const MAX_ICMP_TYPE: u8 = 254;

/// Collects the resource reference and builds errors for fields under it.
pub(super) struct Check {
    resource: ResourceRef,
}

impl Check {
    pub(super) fn new(kind: ResourceKind, name: String) -> Self {
        Check {
            resource: ResourceRef { kind, name },
        }
    }

    pub(super) fn err(&self, field: impl Into<String>, reason: Reason) -> ValidationError {
        ValidationError {
            resource: self.resource.clone(),
            field: field.into(),
            reason,
        }
    }

    pub(super) fn invalid(
        &self,
        field: impl Into<String>,
        why: impl Into<String>,
    ) -> ValidationError {
        self.err(field, Reason::Invalid(why.into()))
    }

    /// A DNS-1123 subdomain: lower-case alphanumerics, '-' and '.', starting and ending with
    /// an alphanumeric.
    pub(super) fn name(&self, field: &str, name: &str) -> Result<(), ValidationError> {
        if name.is_empty() {
            return Err(self.err(field, Reason::Empty));
        }
        if name.len() > MAX_NAME {
            return Err(self.err(
                field,
                Reason::TooLong {
                    len: name.len(),
                    limit: MAX_NAME,
                },
            ));
        }
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        let alnum =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !name.chars().all(ok_char) || !alnum(name.chars().next()) || !alnum(name.chars().last())
        {
            return Err(self.invalid(
                field,
                format!("{name:?} is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"),
            ));
        }
        Ok(())
    }

    fn non_empty(&self, field: &str, value: &str) -> Result<(), ValidationError> {
        if value.is_empty() {
            Err(self.err(field, Reason::Empty))
        } else {
            Ok(())
        }
    }

    fn interface(&self, field: &str, name: &str) -> Result<(), ValidationError> {
        self.non_empty(field, name)?;
        if name.len() > MAX_INTERFACE_NAME {
            return Err(self.err(
                field,
                Reason::TooLong {
                    len: name.len(),
                    limit: MAX_INTERFACE_NAME,
                },
            ));
        }
        if name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(self.invalid(
                field,
                format!("{name:?} is not a valid interface name (no '/', ':' or whitespace)"),
            ));
        }
        Ok(())
    }

    /// Kubernetes label rules: key `[prefix/]name`, name ≤ 63 of `[A-Za-z0-9_.-]` starting and
    /// ending alphanumeric, prefix a DNS subdomain; value ≤ 63, same characters, may be empty.
    pub(super) fn labels(&self, field: &str, labels: &Labels) -> Result<(), ValidationError> {
        let segment = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        };
        for (k, v) in labels {
            let (prefix, name) = match k.rsplit_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, k.as_str()),
            };
            let prefix_ok = prefix.is_none_or(|p| {
                !p.is_empty()
                    && p.len() <= MAX_NAME
                    && p.split('.').all(|part| {
                        !part.is_empty()
                            && part
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    })
            });
            if !prefix_ok || !segment(name) {
                return Err(self.invalid(
                    format!("{field}.{k}"),
                    format!("{k:?} is not a valid label key ([prefix/]name, name of up to 63 letters, digits, '-', '_' or '.')"),
                ));
            }
            if !v.is_empty() && !segment(v) {
                return Err(self.invalid(
                    format!("{field}.{k}"),
                    format!("{v:?} is not a valid label value (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"),
                ));
            }
        }
        Ok(())
    }

    fn named_ports(&self, ports: &[NamedPort]) -> Result<(), ValidationError> {
        let mut seen = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let field = format!("ports[{i}]");
            if p.name.is_empty()
                || p.name.len() > 15
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                || p.name.chars().all(|c| c.is_ascii_digit())
            {
                return Err(self.invalid(
                    format!("{field}.name"),
                    format!("{:?} is not a valid port name (1-15 lower-case letters, digits and '-', not all digits)", p.name),
                ));
            }
            if !seen.insert(&p.name) {
                return Err(self.err(format!("{field}.name"), Reason::Duplicate(p.name.clone())));
            }
            if !matches!(p.protocol, Protocol::TCP | Protocol::UDP | Protocol::SCTP) {
                return Err(self.invalid(
                    format!("{field}.protocol"),
                    format!("named ports are for TCP, UDP or SCTP, not {}", p.protocol),
                ));
            }
            if p.port == 0 {
                return Err(self.err(
                    format!("{field}.port"),
                    Reason::OutOfRange {
                        value: 0,
                        min: 1,
                        max: 65535,
                    },
                ));
            }
        }
        Ok(())
    }

    fn rules(&self, direction: &str, rules: &[Rule]) -> Result<(), ValidationError> {
        if rules.len() > MAX_RULES_PER_DIRECTION {
            return Err(self.err(
                direction,
                Reason::TooMany {
                    len: rules.len(),
                    limit: MAX_RULES_PER_DIRECTION,
                },
            ));
        }
        for (i, rule) in rules.iter().enumerate() {
            self.rule(&format!("{direction}[{i}]"), rule)?;
        }
        Ok(())
    }

    fn rule(&self, field: &str, rule: &Rule) -> Result<(), ValidationError> {
        if let (Some(p), Some(np)) = (rule.protocol, rule.not_protocol) {
            if p == np {
                return Err(self.err(
                    format!("{field}.notProtocol"),
                    Reason::Conflicts(format!("protocol {p}: the rule could never match")),
                ));
            }
        }
        for (name, icmp) in [("icmp", &rule.icmp), ("notICMP", &rule.not_icmp)] {
            if let Some(icmp) = icmp {
                self.icmp(&format!("{field}.{name}"), rule, icmp)?;
            }
        }
        let ported = rule.protocol.is_some_and(Protocol::has_ports);
        for (side, entity) in [("source", &rule.source), ("destination", &rule.destination)] {
            self.entity(&format!("{field}.{side}"), rule, entity, ported)?;
        }
        Ok(())
    }

    fn icmp(&self, field: &str, rule: &Rule, icmp: &IcmpMatch) -> Result<(), ValidationError> {
        match rule.protocol {
            Some(Protocol::ICMP) => {
                if rule.ip_version == Some(IpVersion::V6) {
                    return Err(self.err(
                        field,
                        Reason::Requires(
                            "ipVersion 4 for protocol ICMP (use ICMPv6 for IPv6)".into(),
                        ),
                    ));
                }
            }
            Some(Protocol::ICMPV6) => {
                if rule.ip_version == Some(IpVersion::V4) {
                    return Err(self.err(
                        field,
                        Reason::Requires(
                            "ipVersion 6 for protocol ICMPv6 (use ICMP for IPv4)".into(),
                        ),
                    ));
                }
            }
            _ => {
                return Err(self.err(field, Reason::Requires("protocol ICMP or ICMPv6".into())));
            }
        }
        if let Some(t) = icmp.icmp_type {
            if t > MAX_ICMP_TYPE {
                return Err(self.err(
                    format!("{field}.type"),
                    Reason::OutOfRange {
                        value: t.into(),
                        min: 0,
                        max: MAX_ICMP_TYPE.into(),
                    },
                ));
            }
        }
        if icmp.code.is_some() && icmp.icmp_type.is_none() {
            return Err(self.err(
                format!("{field}.code"),
                Reason::Requires("an ICMP type".into()),
            ));
        }
        Ok(())
    }

    fn entity(
        &self,
        field: &str,
        rule: &Rule,
        e: &EntityRule,
        ported: bool,
    ) -> Result<(), ValidationError> {
        for (name, nets) in [("nets", &e.nets), ("notNets", &e.not_nets)] {
            if nets.len() > MAX_NETS {
                return Err(self.err(
                    format!("{field}.{name}"),
                    Reason::TooMany {
                        len: nets.len(),
                        limit: MAX_NETS,
                    },
                ));
            }
            if let Some(version) = rule.ip_version {
                for (i, net) in nets.iter().enumerate() {
                    let matches = matches!(
                        (version, net),
                        (IpVersion::V4, IpNet::V4(_)) | (IpVersion::V6, IpNet::V6(_))
                    );
                    if !matches {
                        return Err(self.err(
                            format!("{field}.{name}[{i}]"),
                            Reason::IpVersionMismatch {
                                value: net.to_string(),
                                version: if version == IpVersion::V4 { 4 } else { 6 },
                            },
                        ));
                    }
                }
            }
        }
        for (name, ports) in [("ports", &e.ports), ("notPorts", &e.not_ports)] {
            if ports.is_empty() {
                continue;
            }
            if ports.len() > MAX_PORTS {
                return Err(self.err(
                    format!("{field}.{name}"),
                    Reason::TooMany {
                        len: ports.len(),
                        limit: MAX_PORTS,
                    },
                ));
            }
            if !ported {
                return Err(self.err(
                    format!("{field}.{name}"),
                    Reason::Requires("protocol TCP, UDP, SCTP or UDPLite".into()),
                ));
            }
            for (i, p) in ports.iter().enumerate() {
                match p {
                    PortSpec::Range { min, max } if min > max => {
                        return Err(self.invalid(
                            format!("{field}.{name}[{i}]"),
                            format!("port range {min}:{max} has its minimum above its maximum"),
                        ));
                    }
                    PortSpec::Named(n) if n.is_empty() => {
                        return Err(self.err(format!("{field}.{name}[{i}]"), Reason::Empty));
                    }
                    _ => {}
                }
            }
        }
        if let Some(accounts) = &e.service_accounts {
            for (i, n) in accounts.names.iter().enumerate() {
                self.name(&format!("{field}.serviceAccounts.names[{i}]"), n)?;
            }
        }
        Ok(())
    }
}

impl WorkloadEndpoint {
    /// Checks the endpoint against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::WorkloadEndpoint, self.id.to_string());
        c.non_empty("orchestrator", &self.id.orchestrator)?;
        c.non_empty("workload", &self.id.workload)?;
        c.non_empty("endpoint", &self.id.endpoint)?;
        c.non_empty("node", &self.node)?;
        if let Some(ns) = &self.namespace {
            c.name("namespace", ns)?;
        }
        c.interface("interfaceName", &self.interface_name)?;
        let mut seen = BTreeSet::new();
        for (i, net) in self.ip_networks.iter().enumerate() {
            let full = match net {
                IpNet::V4(_) => 32,
                IpNet::V6(_) => 128,
            };
            if net.prefix_len() != full {
                return Err(c.invalid(
                    format!("ipNetworks[{i}]"),
                    format!("{net} must be a single address (/{full})"),
                ));
            }
            if !seen.insert(net.addr()) {
                return Err(c.err(
                    format!("ipNetworks[{i}]"),
                    Reason::Duplicate(net.to_string()),
                ));
            }
        }
        c.labels("labels", &self.labels)?;
        c.named_ports(&self.ports)?;
        for (i, p) in self.profiles.iter().enumerate() {
            c.non_empty(&format!("profiles[{i}]"), p)?;
        }
        for (i, net) in self.allow_spoofed_source_prefixes.iter().enumerate() {
            network_address(&c, &format!("allowSpoofedSourcePrefixes[{i}]"), *net)?;
        }
        self.validate_ip_nats(&c)
    }

    /// Calico's checks of `ipNATs`: both addresses of one family, the internal one an address
    /// of the endpoint's own (`ipNetworks`).
    fn validate_ip_nats(&self, c: &Check) -> Result<(), ValidationError> {
        for (i, nat) in self.ip_nats.iter().enumerate() {
            let (int, ext) = (nat.internal_ip, nat.external_ip);
            if int.is_ipv4() != ext.is_ipv4() {
                return Err(c.invalid(
                    format!("ipNATs[{i}].externalIP"),
                    format!("{ext} is not of the family of internalIP {int}: a 1:1 NAT translates within one family"),
                ));
            }
            if !self.ip_networks.iter().any(|n| n.addr() == int) {
                return Err(c.invalid(
                    format!("ipNATs[{i}].internalIP"),
                    format!("{int} is not one of the endpoint's ipNetworks: a floating IP translates to an address the workload owns"),
                ));
            }
        }
        Ok(())
    }
}

impl HostEndpoint {
    /// Checks the host endpoint against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::HostEndpoint, self.name.clone());
        c.name("name", &self.name)?;
        c.non_empty("node", &self.node)?;
        match &self.interface_name {
            Some(n) if n == "*" => {}
            Some(n) => c.interface("interfaceName", n)?,
            None if self.expected_ips.is_empty() => {
                return Err(c.err(
                    "interfaceName",
                    Reason::Requires("interfaceName or expectedIPs".into()),
                ))
            }
            None => {}
        }
        let mut seen: BTreeSet<&IpAddr> = BTreeSet::new();
        for (i, ip) in self.expected_ips.iter().enumerate() {
            if !seen.insert(ip) {
                return Err(c.err(
                    format!("expectedIPs[{i}]"),
                    Reason::Duplicate(ip.to_string()),
                ));
            }
        }
        c.labels("labels", &self.labels)?;
        c.named_ports(&self.ports)
    }
}

/// Refuses a CIDR with host bits set, suggesting the network it probably means.
fn network_address(c: &Check, field: &str, cidr: IpNet) -> Result<(), ValidationError> {
    if cidr.trunc() != cidr {
        return Err(c.invalid(
            field,
            format!("{cidr} has host bits set; did you mean {}?", cidr.trunc()),
        ));
    }
    Ok(())
}

/// The block prefix lengths Calico allows for the family of `cidr`.
fn block_sizes(cidr: IpNet) -> (u8, u8) {
    match cidr {
        IpNet::V4(_) => (20, 32),
        IpNet::V6(_) => (116, 128),
    }
}

impl BlockAffinity {
    /// Checks the block: a network address of a block size Calico allows, and a node.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::BlockAffinity, self.cidr.to_string());
        network_address(&c, "cidr", self.cidr)?;
        let (min, max) = block_sizes(self.cidr);
        if !(min..=max).contains(&self.cidr.prefix_len()) {
            return Err(c.invalid(
                "cidr",
                format!(
                    "a block of /{} is outside Calico's block sizes /{min} to /{max}",
                    self.cidr.prefix_len()
                ),
            ));
        }
        c.name("node", &self.node)
    }
}

impl IpPool {
    /// The block size in effect (the default when unset).
    pub fn effective_block_size(&self) -> u8 {
        self.block_size.unwrap_or(match self.cidr {
            IpNet::V4(_) => 26,
            IpNet::V6(_) => 122,
        })
    }

    /// Checks the pool against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::IpPool, self.name.clone());
        c.name("name", &self.name)?;
        network_address(&c, "cidr", self.cidr)?;
        let (min, max) = block_sizes(self.cidr);
        let bs = self.effective_block_size();
        if !(min..=max).contains(&bs) {
            return Err(c.err(
                "blockSize",
                Reason::OutOfRange {
                    value: bs.into(),
                    min: min.into(),
                    max: max.into(),
                },
            ));
        }
        if bs < self.cidr.prefix_len() {
            return Err(c.invalid(
                "blockSize",
                format!("/{bs} blocks are larger than the pool {}", self.cidr),
            ));
        }
        Ok(())
    }
}

impl BgpConfiguration {
    /// Checks the configuration against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::BgpConfiguration, self.name.clone());
        let node = self.name.strip_prefix("node.");
        if self.name != "default" && node.is_none_or(str::is_empty) {
            return Err(c.invalid(
                "name",
                format!("{:?} must be \"default\" or \"node.<nodename>\"", self.name),
            ));
        }
        if self.listen_port == Some(0) {
            return Err(c.err(
                "listenPort",
                Reason::OutOfRange {
                    value: 0,
                    min: 1,
                    max: 65535,
                },
            ));
        }
        if let Some(p) = &self.node_mesh_password {
            if p.is_empty() || p.len() > 80 {
                return Err(c.invalid("nodeMeshPassword", "a TCP MD5 key must be 1-80 bytes"));
            }
        }
        if let Some(r) = self.node_mesh_max_restart_time.filter(|r| *r > 4095) {
            return Err(c.err(
                "nodeMeshMaxRestartTime",
                Reason::OutOfRange {
                    value: r.into(),
                    min: 0,
                    max: 4095,
                },
            ));
        }
        if let Some(asn) = self.as_number {
            if asn.0 == 0 {
                return Err(c.err(
                    "asNumber",
                    Reason::OutOfRange {
                        value: 0,
                        min: 1,
                        max: u32::MAX.into(),
                    },
                ));
            }
        }
        super::bgp_filter::check_communities(&c, &self.communities, &self.prefix_advertisements)
    }
}

impl BgpPeer {
    /// Checks the peering against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::BgpPeer, self.name.clone());
        c.name("name", &self.name)?;
        if self.node.is_some() && self.node_selector.is_some() {
            return Err(c.err("nodeSelector", Reason::Conflicts("node".into())));
        }
        if self.as_number.is_some_and(|a| a.0 == 0) {
            return Err(c.err(
                "asNumber",
                Reason::OutOfRange {
                    value: 0,
                    min: 1,
                    max: u32::MAX.into(),
                },
            ));
        }
        if let Some(h) = self.hold_time {
            if h != 0 && h < 3 {
                return Err(c.invalid(
                    "holdTime",
                    format!("{h} s: must be 0 or at least 3 s (RFC 4271)"),
                ));
            }
        }
        if let Some(Err((field, why))) =
            self.bfd.as_ref().map(crate::dataplane::BfdConfig::validate)
        {
            return Err(c.invalid(field, why));
        }
        if let Some(p) = &self.password {
            if p.is_empty() || p.len() > 80 {
                return Err(c.invalid("password", "a TCP MD5 key must be 1-80 bytes"));
            }
        }
        if let Some(ip) = self
            .peer_ip
            .filter(|ip| ip.is_unspecified() || ip.is_multicast())
        {
            return Err(c.invalid("peerIP", format!("{ip} is not a unicast address")));
        }
        let mut seen = BTreeSet::new();
        for (i, f) in self.filters.iter().enumerate() {
            c.name(&format!("filters[{i}]"), f)?;
            if !seen.insert(f) {
                return Err(c.err(format!("filters[{i}]"), Reason::Duplicate(f.clone())));
            }
        }
        self.validate_session(&c)
    }
}

impl Node {
    /// Checks the node against Calico's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::Node, self.name.clone());
        c.name("name", &self.name)?;
        c.labels("labels", &self.labels)
    }
}

impl Resource {
    /// Checks the resource against Calico's rules and limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Resource::WorkloadEndpoint(r) => r.validate(),
            Resource::HostEndpoint(r) => r.validate(),
            Resource::Policy(r) => r.validate(),
            Resource::Profile(r) => r.validate(),
            Resource::IpPool(r) => r.validate(),
            Resource::BlockAffinity(r) => r.validate(),
            Resource::BgpConfiguration(r) => r.validate(),
            Resource::BgpPeer(r) => r.validate(),
            Resource::Node(r) => r.validate(),
            Resource::NetworkSet(r) => r.validate(),
            Resource::BgpFilter(r) => r.validate(),
            Resource::Tier(r) => r.validate(),
        }
    }
}
