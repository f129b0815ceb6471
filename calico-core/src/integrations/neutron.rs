//! OpenStack Neutron ports and security groups, as the Neutron REST API returns them, →
//! calico-rs resources, with Neutron's semantics:
//!
//! * a compute port bound to a host (`binding:host_id`) becomes a workload endpoint on that
//!   host: interface `tap` + the first 11 characters of the port id (as Nova and
//!   networking-calico name it), its fixed IPs as /32 and /128 networks, one label per
//!   security group it is in, and those groups as its profiles;
//! * a security group becomes the profile `openstack-sg-<id>`. Neutron security groups are
//!   stateful and allow-only with a default deny in both directions, which is exactly a
//!   profile of Allow rules consulted in order after no policy (several groups: the union of
//!   their allows). `remote_group_id` becomes a selector over the group-membership labels,
//!   `remote_ip_prefix` a network, `ethertype` the IP version, and the port range the ports
//!   (or, for ICMP, the type and code).
//! * a floating IP associated with a port (`port_id`) becomes one of its endpoint's
//!   `ipNATs` (`fixed_ip_address` → `floating_ip_address`), as networking-calico maps a
//!   port's floating IPs; an OpenStack endpoint's floating IPs are in effect on its host
//!   whatever the agent's floating-IP setting, as in Felix.
//!
//! Both list envelopes (`{"ports": [...]}`) and bare objects are accepted.

use serde::Deserialize;

use super::TranslateError;
use crate::model::{
    Action, EntityRule, IcmpMatch, IpNat, IpVersion, MacAddr, PortSpec, Profile, Protocol, Rule,
    WorkloadEndpoint, WorkloadEndpointId,
};
use crate::selector::Selector;

/// Prefix of the labels marking security-group membership.
pub const SG_LABEL_PREFIX: &str = "sg.projectcalico.org/openstack-";

/// One fixed IP of a port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FixedIp {
    /// The subnet.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// The address.
    pub ip_address: String,
}

/// A Neutron port (the fields we use; others are ignored, as the API adds fields freely).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Port {
    /// Port id (a UUID).
    pub id: String,
    /// MAC address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// Fixed IPs.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// The host the port is bound to.
    #[serde(default, rename = "binding:host_id")]
    pub host_id: Option<String>,
    /// `compute:<zone>` for VM ports.
    #[serde(default)]
    pub device_owner: Option<String>,
    /// The VM (instance) id.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Security group ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// A security group rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SecurityGroupRule {
    /// Rule id.
    #[serde(default)]
    pub id: Option<String>,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    #[serde(default)]
    pub ethertype: Option<String>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`/`ipv6-icmp`, another name or a number; any when null.
    #[serde(default)]
    pub protocol: Option<serde_json::Value>,
    /// First port (or ICMP type).
    #[serde(default)]
    pub port_range_min: Option<i64>,
    /// Last port (or ICMP code).
    #[serde(default)]
    pub port_range_max: Option<i64>,
    /// Remote CIDR.
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    /// Remote security group.
    #[serde(default)]
    pub remote_group_id: Option<String>,
}

/// A security group.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SecurityGroup {
    /// Group id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Rules.
    #[serde(default)]
    pub security_group_rules: Vec<SecurityGroupRule>,
}

/// A floating IP, as `GET /v2.0/floatingips` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FloatingIp {
    /// Floating IP id.
    #[serde(default)]
    pub id: Option<String>,
    /// The floating (external) address.
    pub floating_ip_address: String,
    /// The port it is associated with; `None` while it is not associated.
    #[serde(default)]
    pub port_id: Option<String>,
    /// The port's fixed IP it translates to.
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrList<T> {
    Ports { ports: Vec<T> },
    Groups { security_groups: Vec<T> },
    FloatingIps { floatingips: Vec<T> },
    Port { port: T },
    Group { security_group: T },
    FloatingIp { floatingip: T },
    List(Vec<T>),
    One(T),
}

fn unwrap_envelope<T: serde::de::DeserializeOwned>(
    json: &str,
    what: &str,
) -> Result<Vec<T>, TranslateError> {
    let v: OneOrList<T> = serde_json::from_str(json).map_err(|e| {
        TranslateError::new(format!("Neutron {what} JSON"), "(document)", e.to_string())
    })?;
    Ok(match v {
        OneOrList::Ports { ports: l }
        | OneOrList::Groups { security_groups: l }
        | OneOrList::FloatingIps { floatingips: l }
        | OneOrList::List(l) => l,
        OneOrList::Port { port: o }
        | OneOrList::Group { security_group: o }
        | OneOrList::FloatingIp { floatingip: o }
        | OneOrList::One(o) => vec![o],
    })
}

/// Parses ports from Neutron API JSON (`{"ports": [...]}`, `{"port": {...}}`, a list or one
/// object).
pub fn parse_ports(json: &str) -> Result<Vec<Port>, TranslateError> {
    unwrap_envelope(json, "ports")
}

/// Parses security groups from Neutron API JSON.
pub fn parse_security_groups(json: &str) -> Result<Vec<SecurityGroup>, TranslateError> {
    unwrap_envelope(json, "security groups")
}

/// Parses floating IPs from Neutron API JSON (`{"floatingips": [...]}`, `{"floatingip":
/// {...}}`, a list or one object).
pub fn parse_floating_ips(json: &str) -> Result<Vec<FloatingIp>, TranslateError> {
    unwrap_envelope(json, "floating IPs")
}

/// [`port_endpoint`] with the floating IPs of `floating_ips` associated with the port as its
/// `ipNATs`; refused, naming the floating IP, when one does not translate to one of the
/// port's fixed IPs.
pub fn port_endpoint_with_floating_ips(
    port: &Port,
    floating_ips: &[FloatingIp],
) -> Result<Option<WorkloadEndpoint>, TranslateError> {
    let Some(mut ep) = port_endpoint(port)? else {
        return Ok(None);
    };
    let obj = format!("port {}", port.id);
    let ours = floating_ips
        .iter()
        .filter(|f| f.port_id.as_deref() == Some(port.id.as_str()));
    for fip in ours {
        ep.ip_nats.push(floating_ip_nat(&obj, fip)?);
    }
    ep.validate()
        .map_err(|e| TranslateError::new(&obj, e.field, e.reason.to_string()))?;
    Ok(Some(ep))
}

/// One associated floating IP as a NAT.
fn floating_ip_nat(obj: &str, fip: &FloatingIp) -> Result<IpNat, TranslateError> {
    let name = fip.id.as_deref().unwrap_or(&fip.floating_ip_address);
    let addr = |field: &str, text: Option<&str>| {
        text.and_then(|t| t.parse().ok()).ok_or_else(|| {
            TranslateError::new(
                obj,
                format!("floating IP {name}: {field}"),
                format!("{text:?} is not an IP address"),
            )
        })
    };
    Ok(IpNat {
        internal_ip: addr("fixed_ip_address", fip.fixed_ip_address.as_deref())?,
        external_ip: addr("floating_ip_address", Some(&fip.floating_ip_address))?,
    })
}

/// The profile name of a security group.
pub fn profile_name(sg_id: &str) -> String {
    format!("openstack-sg-{sg_id}")
}

/// A bound compute port as a workload endpoint; `Ok(None)` for ports that are not VM ports
/// or not bound to a host (DHCP and router ports carry no workload).
pub fn port_endpoint(port: &Port) -> Result<Option<WorkloadEndpoint>, TranslateError> {
    let obj = format!("port {}", port.id);
    let is_compute = port
        .device_owner
        .as_deref()
        .is_some_and(|o| o.starts_with("compute:"));
    let host = port.host_id.as_deref().filter(|h| !h.is_empty());
    let (true, Some(host)) = (is_compute, host) else {
        return Ok(None);
    };
    if port.id.len() < 11 {
        return Err(TranslateError::new(
            &obj,
            "id",
            "a port id has at least 11 characters",
        ));
    }
    let mac = match &port.mac_address {
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|e| TranslateError::new(&obj, "mac_address", e))?,
        ),
        None => None,
    };
    let ip_networks = port
        .fixed_ips
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.ip_address
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| {
                    TranslateError::new(
                        &obj,
                        format!("fixed_ips[{i}].ip_address"),
                        format!("{:?} is not an IP address", f.ip_address),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ep = WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: "openstack".into(),
            workload: port.device_id.clone().unwrap_or_else(|| port.id.clone()),
            endpoint: port.id.clone(),
        },
        namespace: None,
        node: host.to_string(),
        interface_name: format!("tap{}", &port.id[..11]),
        mac,
        ip_networks,
        labels: port
            .security_groups
            .iter()
            .map(|sg| (format!("{SG_LABEL_PREFIX}{sg}"), String::new()))
            .collect(),
        profiles: port
            .security_groups
            .iter()
            .map(|sg| profile_name(sg))
            .collect(),
        ports: vec![],
        allow_spoofed_source_prefixes: vec![],
        ip_nats: vec![],
    };
    ep.validate()
        .map_err(|e| TranslateError::new(&obj, e.field, e.reason.to_string()))?;
    Ok(Some(ep))
}

fn protocol(
    obj: &str,
    field: &str,
    v: &serde_json::Value,
) -> Result<Option<Protocol>, TranslateError> {
    let text = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => s.to_ascii_lowercase(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(TranslateError::new(
                obj,
                field,
                format!("{other} is not a protocol"),
            ))
        }
    };
    let p = match text.as_str() {
        "any" | "" => return Ok(None),
        "icmpv6" | "ipv6-icmp" | "icmp6" => Protocol::ICMPV6,
        "ah" => Protocol(51),
        "esp" => Protocol(50),
        "gre" => Protocol(47),
        "vrrp" => Protocol(112),
        other => other
            .parse::<Protocol>()
            .map_err(|e| TranslateError::new(obj, field, e))?,
    };
    Ok(Some(p))
}

/// A security group rule as a profile rule (Allow).
fn rule(obj: &str, i: usize, r: &SecurityGroupRule) -> Result<(bool, Rule), TranslateError> {
    let field = |f: &str| format!("security_group_rules[{i}].{f}");
    let ingress = match r.direction.as_str() {
        "ingress" => true,
        "egress" => false,
        other => {
            return Err(TranslateError::new(
                obj,
                field("direction"),
                format!("{other:?} is not ingress or egress"),
            ))
        }
    };
    let mut out = Rule::new(Action::Allow);
    out.ip_version = match r.ethertype.as_deref() {
        Some("IPv4") | None => Some(IpVersion::V4),
        Some("IPv6") => Some(IpVersion::V6),
        Some(other) => {
            return Err(TranslateError::new(
                obj,
                field("ethertype"),
                format!("{other:?} is not IPv4 or IPv6"),
            ))
        }
    };
    let mut proto = protocol(
        obj,
        &field("protocol"),
        r.protocol.as_ref().unwrap_or(&serde_json::Value::Null),
    )?;
    // Neutron writes "icmp" for ICMPv6 too when the ethertype is IPv6.
    if proto == Some(Protocol::ICMP) && out.ip_version == Some(IpVersion::V6) {
        proto = Some(Protocol::ICMPV6);
    }
    out.protocol = proto;
    let entity = ports_and_icmp(obj, i, r, proto, &mut out)?;
    let mut remote = EntityRule::default();
    if let Some(prefix) = &r.remote_ip_prefix {
        let net: ipnet::IpNet = prefix.parse().map_err(|_| {
            TranslateError::new(
                obj,
                field("remote_ip_prefix"),
                format!("{prefix:?} is not a CIDR"),
            )
        })?;
        remote.nets = vec![net.trunc()];
    }
    if let Some(g) = &r.remote_group_id {
        let text = format!("has({SG_LABEL_PREFIX}{g})");
        remote.selector = Some(
            Selector::parse(&text)
                .map_err(|e| TranslateError::new(obj, field("remote_group_id"), e.to_string()))?,
        );
    }
    if ingress {
        out.source = remote;
        out.destination = entity;
    } else {
        remote.ports = entity.ports;
        out.destination = remote;
    }
    Ok((ingress, out))
}

/// The ports of a TCP/UDP-like rule (returned as the destination entity), or its ICMP type
/// and code (set on `out`; Neutron carries them in the port range fields).
fn ports_and_icmp(
    obj: &str,
    i: usize,
    r: &SecurityGroupRule,
    proto: Option<Protocol>,
    out: &mut Rule,
) -> Result<EntityRule, TranslateError> {
    let field = |f: &str| format!("security_group_rules[{i}].{f}");
    let range = |v: Option<i64>, f: &str, max: i64| -> Result<Option<i64>, TranslateError> {
        match v {
            Some(n) if !(0..=max).contains(&n) => Err(TranslateError::new(
                obj,
                field(f),
                format!("{n} is outside 0-{max}"),
            )),
            other => Ok(other),
        }
    };
    let mut entity = EntityRule::default();
    match proto {
        Some(Protocol::ICMP | Protocol::ICMPV6) => {
            let t = range(r.port_range_min, "port_range_min", 255)?;
            let c = range(r.port_range_max, "port_range_max", 255)?;
            if let Some(t) = t {
                out.icmp = Some(IcmpMatch {
                    icmp_type: Some(t as u8),
                    code: c.map(|c| c as u8),
                });
            } else if c.is_some() {
                return Err(TranslateError::new(
                    obj,
                    field("port_range_max"),
                    "an ICMP code needs a type (port_range_min)",
                ));
            }
        }
        Some(p) if p.has_ports() => {
            let lo = range(r.port_range_min, "port_range_min", 65535)?;
            let hi = range(r.port_range_max, "port_range_max", 65535)?;
            match (lo, hi) {
                (None, None) => {}
                (Some(lo), Some(hi)) if lo <= hi => {
                    entity.ports = vec![PortSpec::Range {
                        min: lo as u16,
                        max: hi as u16,
                    }];
                }
                (Some(lo), None) => entity.ports = vec![PortSpec::single(lo as u16)],
                _ => {
                    return Err(TranslateError::new(
                        obj,
                        field("port_range_max"),
                        "the port range is empty or has no start",
                    ))
                }
            }
        }
        _ => {
            if r.port_range_min.is_some() || r.port_range_max.is_some() {
                return Err(TranslateError::new(
                    obj,
                    field("port_range_min"),
                    "ports need protocol tcp, udp, sctp or udplite",
                ));
            }
        }
    }
    Ok(entity)
}

/// A security group as a profile of Allow rules.
pub fn security_group_profile(sg: &SecurityGroup) -> Result<Profile, TranslateError> {
    let obj = format!("security group {}", sg.id);
    let mut profile = Profile {
        name: profile_name(&sg.id),
        labels_to_apply: Default::default(),
        ingress: vec![],
        egress: vec![],
    };
    for (i, r) in sg.security_group_rules.iter().enumerate() {
        let (ingress, rule) = rule(&obj, i, r)?;
        if ingress {
            profile.ingress.push(rule);
        } else {
            profile.egress.push(rule);
        }
    }
    profile
        .validate()
        .map_err(|e| TranslateError::new(&obj, e.field, e.reason.to_string()))?;
    Ok(profile)
}
