//! Workload and host endpoints.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::rule::Protocol;
use crate::labels::Labels;

/// Identity of a workload endpoint, unique in the whole deployment.
///
/// Calico identifies a workload endpoint by its orchestrator (`k8s`, `openstack`, ...), the
/// workload it belongs to (a pod, a VM) and the endpoint name within the workload (`eth0`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointId {
    /// The orchestrator that owns the workload, e.g. `k8s` or `openstack`.
    pub orchestrator: String,
    /// The workload (pod, VM, container) the endpoint belongs to.
    pub workload: String,
    /// The endpoint's name within its workload, e.g. `eth0`.
    pub endpoint: String,
}

impl fmt::Display for WorkloadEndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.orchestrator, self.workload, self.endpoint
        )
    }
}

/// A 48-bit Ethernet MAC address, written `aa:bb:cc:dd:ee:ff` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts
                .next()
                .ok_or_else(|| format!("MAC address {s:?} has fewer than 6 octets"))?;
            if p.len() != 2 {
                return Err(format!(
                    "MAC address {s:?}: octet {p:?} is not two hex digits"
                ));
            }
            *byte = u8::from_str_radix(p, 16)
                .map_err(|_| format!("MAC address {s:?}: octet {p:?} is not hexadecimal"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address {s:?} has more than 6 octets"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A named port on an endpoint, which rules can refer to by name (`ports: [http]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedPort {
    /// The port's name, referred to by rules.
    pub name: String,
    /// The protocol the port is for (TCP, UDP or SCTP).
    pub protocol: Protocol,
    /// The port number, 1–65535.
    pub port: u16,
}

/// A workload's network interface: one veth or tap device on this or another host, with the
/// addresses the workload owns.
///
/// Calico v3 field names; `ipNetworks` holds /32 (IPv4) and /128 (IPv6) networks only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpoint {
    /// Identity of the endpoint.
    #[serde(flatten)]
    pub id: WorkloadEndpointId,
    /// Namespace the workload lives in; `None` for orchestrators without namespaces.
    /// Namespaced policies apply only to endpoints of their own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the host the workload runs on.
    pub node: String,
    /// Name of the host-side interface (veth or tap) of the workload, at most 15 bytes.
    pub interface_name: String,
    /// MAC address of the workload's side of the interface, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The workload's addresses: /32 and /128 networks.
    #[serde(default)]
    pub ip_networks: Vec<IpNet>,
    /// The endpoint's labels.
    #[serde(default)]
    pub labels: Labels,
    /// Profiles applied to the endpoint, in order.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Named ports that rules can refer to.
    #[serde(default)]
    pub ports: Vec<NamedPort>,
    /// Networks the workload may send from besides its own addresses (Calico's
    /// `allowSpoofedSourcePrefixes`: a workload routing for others, a VM with a secondary
    /// address). Honoured only where the agent allows workload source spoofing (Felix's
    /// `WorkloadSourceSpoofing: Any`); otherwise such sources are dropped as any spoofed one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<IpNet>,
    /// 1:1 NATs (floating IPs, as OpenStack Neutron uses them): each external address is
    /// translated to one of the endpoint's own addresses for traffic sent to it, and routed
    /// to the endpoint's interface on its host (Calico's `ipNATs`). In effect only where the
    /// agent enables floating IPs or the endpoint is OpenStack's
    /// ([`WorkloadEndpoint::floating_ips`]).
    #[serde(default, rename = "ipNATs", skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<IpNat>,
}

/// The orchestrator name of OpenStack's endpoints (Calico's `OrchestratorOpenStack`), whose
/// floating IPs are in effect even where the agent does not enable floating IPs.
pub const ORCHESTRATOR_OPENSTACK: &str = "openstack";

impl WorkloadEndpoint {
    /// The 1:1 NATs in effect for this endpoint: all of them when the agent enables floating
    /// IPs (`enabled`, Felix's `FloatingIPs: Enabled`) or the endpoint is OpenStack's (Felix
    /// programs those whatever the setting), none otherwise.
    pub fn floating_ips(&self, enabled: bool) -> &[IpNat] {
        if enabled || self.id.orchestrator == ORCHESTRATOR_OPENSTACK {
            &self.ip_nats
        } else {
            &[]
        }
    }
}

/// One 1:1 NAT of a workload endpoint (Calico's `IPNAT`): packets sent to `external_ip`
/// are delivered to the endpoint at `internal_ip`, and the replies come back from
/// `external_ip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpNat {
    /// One of the endpoint's own addresses (an `ipNetworks` entry).
    #[serde(rename = "internalIP")]
    pub internal_ip: IpAddr,
    /// The floating address, of the same family.
    #[serde(rename = "externalIP")]
    pub external_ip: IpAddr,
}

/// A host's own interface (or all of them, `*`), protected by policy like a workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostEndpoint {
    /// Name of the resource.
    pub name: String,
    /// Name of the host the interface is on.
    pub node: String,
    /// The interface name, or `*` for all of the host's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Addresses expected on the interface; used to match it when no name is given and as the
    /// endpoint's addresses in selector-based IP sets.
    #[serde(default, rename = "expectedIPs")]
    pub expected_ips: Vec<IpAddr>,
    /// The endpoint's labels.
    #[serde(default)]
    pub labels: Labels,
    /// Profiles applied to the endpoint, in order.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Named ports that rules can refer to.
    #[serde(default)]
    pub ports: Vec<NamedPort>,
}
