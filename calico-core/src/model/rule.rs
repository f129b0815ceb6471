//! Policy rules: what a packet must look like for a rule's action to apply.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::selector::Selector;
use crate::wire::number_or_string;

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Accept the packet; no later rule or policy is consulted.
    Allow,
    /// Drop the packet.
    Deny,
    /// Log the packet and go on with the next rule.
    Log,
    /// In a policy: skip the remaining policies of its tier and go on with the next tier
    /// (after the last, the endpoint's profiles). In a profile: go on with the next profile.
    Pass,
}

/// IP version a rule is restricted to. Written `4` or `6` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Serialize for IpVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        })
    }
}

impl<'de> Deserialize<'de> for IpVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            4 => Ok(IpVersion::V4),
            6 => Ok(IpVersion::V6),
            n => Err(serde::de::Error::custom(format!(
                "ipVersion must be 4 or 6, not {n}"
            ))),
        }
    }
}

/// An IP protocol, by its number. On the wire a name (`TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`,
/// `UDPLite`, case-insensitive) or a number 0–255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u8);

impl Protocol {
    /// ICMP (1).
    pub const ICMP: Protocol = Protocol(crate::dataplane::ir::IPPROTO_ICMP);
    /// TCP (6).
    pub const TCP: Protocol = Protocol(6);
    /// UDP (17).
    pub const UDP: Protocol = Protocol(17);
    /// ICMPv6 (58).
    pub const ICMPV6: Protocol = Protocol(crate::dataplane::ir::IPPROTO_ICMPV6);
    /// SCTP (132).
    pub const SCTP: Protocol = Protocol(132);
    /// UDP-Lite (136).
    pub const UDPLITE: Protocol = Protocol(136);

    const NAMES: [(&'static str, Protocol); 6] = [
        ("TCP", Protocol::TCP),
        ("UDP", Protocol::UDP),
        ("ICMP", Protocol::ICMP),
        ("ICMPv6", Protocol::ICMPV6),
        ("SCTP", Protocol::SCTP),
        ("UDPLite", Protocol::UDPLITE),
    ];

    /// Whether the protocol carries ports (TCP, UDP, SCTP, UDP-Lite), so that port matches
    /// make sense for it.
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::TCP | Protocol::UDP | Protocol::SCTP | Protocol::UDPLITE
        )
    }

    /// The canonical name of the protocol if it has one.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((_, p)) = Self::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(*p);
        }
        s.parse::<u8>().map(Protocol).map_err(|_| {
            format!("unknown protocol {s:?}: expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 0-255")
        })
    }
}

impl Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(n) => s.serialize_str(n),
            None => s.serialize_u8(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_string(d, Protocol, |n| {
            format!("protocol number {n} is out of range 0-255")
        })
    }
}

/// One entry of a rule's `ports`/`notPorts` list.
///
/// On the wire a number (`80`), a range string (`"1000:2000"`, both ends included) or the
/// name of a named port on the endpoint (`"http"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSpec {
    /// A range of port numbers, both ends included; a single port has `min == max`.
    Range {
        /// First port of the range.
        min: u16,
        /// Last port of the range.
        max: u16,
    },
    /// A named port, resolved against the endpoint the rule is about.
    Named(String),
}

impl PortSpec {
    /// A single port.
    pub fn single(port: u16) -> Self {
        PortSpec::Range {
            min: port,
            max: port,
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Range { min, max } if min == max => write!(f, "{min}"),
            PortSpec::Range { min, max } => write!(f, "{min}:{max}"),
            PortSpec::Named(n) => f.write_str(n),
        }
    }
}

impl FromStr for PortSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let num = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("port {p:?} in {s:?} is not a number 0-65535"))
        };
        if let Some((a, b)) = s.split_once(':') {
            let (min, max) = (num(a)?, num(b)?);
            if min > max {
                return Err(format!(
                    "port range {s:?} has its minimum above its maximum"
                ));
            }
            return Ok(PortSpec::Range { min, max });
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return Ok(PortSpec::single(num(s)?));
        }
        if s.is_empty() {
            return Err("empty port".to_string());
        }
        Ok(PortSpec::Named(s.to_string()))
    }
}

impl Serialize for PortSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PortSpec::Range { min, max } if min == max => s.serialize_u16(*min),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number_or_string(d, PortSpec::single, |n| {
            format!("port {n} is out of range 0-65535")
        })
    }
}

/// ICMP type and code to match. A code requires a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpMatch {
    /// ICMP type, 0–254.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code, 0–255; only with a type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// The source or destination half of a rule. All given fields must match (AND); within a
/// list, any entry may match (OR).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    /// The address must be in one of these networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<IpNet>,
    /// The address must be in none of these networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<IpNet>,
    /// The address must belong to an endpoint matching this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// The address must not belong to an endpoint matching this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_selector: Option<Selector>,
    /// Restricts `selector` to endpoints in namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<Selector>,
    /// The address must belong to an endpoint running as one of these Kubernetes service
    /// accounts (counts as a selector: see [`crate::calc::effective::effective_selector`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountMatch>,
    /// The port must be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// The port must be none of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<PortSpec>,
}

/// Kubernetes service accounts a rule side matches (Calico's `ServiceAccountMatch`): by
/// name, and by the account's labels; both must hold when both are given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountMatch {
    /// The account's name is one of these (in the endpoint's own namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The account's labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
}

/// One rule of a policy or profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// What to do with a matching packet.
    pub action: Action,
    /// Restrict to one IP version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<IpVersion>,
    /// The packet's protocol must be this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The packet's protocol must not be this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    /// ICMP type/code to match (needs protocol ICMP or ICMPv6).
    #[serde(default, rename = "icmp", skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    /// ICMP type/code that must not match (needs protocol ICMP or ICMPv6).
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpMatch>,
    /// Conditions on the packet's source.
    #[serde(default)]
    pub source: EntityRule,
    /// Conditions on the packet's destination.
    #[serde(default)]
    pub destination: EntityRule,
    /// Per-rule metadata, as Calico v3 writes it (`metadata: {annotations: {...}}`): no
    /// effect on what the rule matches; its [`RULE_NAME_ANNOTATION`] names the rule in
    /// traces and flow logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

/// The annotation holding a rule's own name (`metadata: {annotations: {name: web}}`),
/// printed beside the rule's index wherever a verdict is explained.
pub const RULE_NAME_ANNOTATION: &str = "name";

/// A rule's metadata (Calico v3 `RuleMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleMetadata {
    /// Free-form key/value data for people and tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// A rule with the given action and no conditions: it matches every packet.
    pub fn new(action: Action) -> Self {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: EntityRule::default(),
            destination: EntityRule::default(),
            metadata: None,
        }
    }

    /// The rule's own name: its [`RULE_NAME_ANNOTATION`] annotation, if any.
    pub fn name(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .annotations
            .get(RULE_NAME_ANNOTATION)
            .map(String::as_str)
    }
}
