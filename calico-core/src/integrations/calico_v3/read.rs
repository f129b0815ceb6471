//! The reader: `projectcalico.org/v3` YAML → calico-rs resources (see the module docs of
//! [`super`]).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use crate::integrations::TranslateError;
use crate::model::{
    AsNumber, BgpConfiguration, BgpPeer, HostEndpoint, IpNat, IpPool, Labels, NamedPort, Node,
    NodeBgp, Profile, Resource, Rule, WorkloadEndpoint, WorkloadEndpointId,
};
use crate::selector::Selector;

use super::duration::{seconds, GoDuration};

/// The API version accepted.
pub const API_VERSION: &str = "projectcalico.org/v3";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Meta {
    pub(super) name: String,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) labels: Labels,
    // Accepted (calicoctl writes them) but without effect on the dataplane.
    #[serde(default, rename = "annotations")]
    _annotations: BTreeMap<String, String>,
    #[serde(default, rename = "uid")]
    _uid: Option<String>,
    #[serde(default, rename = "resourceVersion")]
    _resource_version: Option<String>,
    #[serde(default, rename = "creationTimestamp")]
    _creation_timestamp: Option<Value>,
    #[serde(default, rename = "generation")]
    _generation: Option<i64>,
    // Calico 3.32 keeps a Tier while policies still name it with a finalizer.
    #[serde(default, rename = "finalizers")]
    _finalizers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileSpec {
    #[serde(default)]
    labels_to_apply: Labels,
    #[serde(default)]
    ingress: Vec<Rule>,
    #[serde(default)]
    egress: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndpointPort {
    name: String,
    port: u16,
    protocol: crate::model::Protocol,
}

/// An endpoint's named ports as the model holds them.
fn named_ports(ports: Vec<EndpointPort>) -> Vec<NamedPort> {
    ports
        .into_iter()
        .map(|p| NamedPort {
            name: p.name,
            protocol: p.protocol,
            port: p.port,
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HostEndpointSpec {
    node: String,
    #[serde(default)]
    interface_name: Option<String>,
    #[serde(default, rename = "expectedIPs")]
    expected_ips: Vec<std::net::IpAddr>,
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    ports: Vec<EndpointPort>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IpPoolSpec {
    cidr: ipnet::IpNet,
    #[serde(default)]
    block_size: Option<u8>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BgpConfigurationSpec {
    #[serde(default)]
    as_number: Option<AsNumber>,
    #[serde(default)]
    node_to_node_mesh_enabled: Option<bool>,
    #[serde(default)]
    listen_port: Option<u16>,
    #[serde(default)]
    communities: Vec<crate::model::CommunityDef>,
    #[serde(default)]
    prefix_advertisements: Vec<crate::model::PrefixAdvertisement>,
    #[serde(default)]
    node_mesh_max_restart_time: Option<GoDuration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BgpPeerSpec {
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    node_selector: Option<Selector>,
    #[serde(default, rename = "peerIP")]
    peer_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    as_number: Option<AsNumber>,
    #[serde(default)]
    peer_selector: Option<Selector>,
    #[serde(default)]
    keepalive_time: Option<GoDuration>,
    #[serde(default)]
    max_restart_time: Option<GoDuration>,
    #[serde(default, rename = "numAllowedLocalASNumbers")]
    num_allowed_local_as_numbers: Option<u32>,
    #[serde(default)]
    next_hop_mode: Option<crate::dataplane::NextHopMode>,
    #[serde(default)]
    keep_original_next_hop: Option<bool>,
    #[serde(default, rename = "ttlSecurity")]
    ttl_security: Option<u16>,
    #[serde(default)]
    source_address: Option<crate::model::SourceAddress>,
    #[serde(default)]
    reachable_by: Option<std::net::IpAddr>,
    #[serde(default)]
    filters: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeBgpSpec {
    #[serde(default, rename = "ipv4Address")]
    ipv4_address: Option<String>,
    #[serde(default, rename = "ipv6Address")]
    ipv6_address: Option<String>,
    #[serde(default)]
    as_number: Option<AsNumber>,
    #[serde(default, rename = "routeReflectorClusterID")]
    route_reflector_cluster_id: Option<std::net::Ipv4Addr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeSpec {
    #[serde(default)]
    bgp: Option<NodeBgpSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkloadEndpointSpec {
    orchestrator: String,
    #[serde(default)]
    workload: Option<String>,
    #[serde(default)]
    pod: Option<String>,
    endpoint: String,
    node: String,
    interface_name: String,
    #[serde(default)]
    mac: Option<crate::model::MacAddr>,
    #[serde(default)]
    ip_networks: Vec<ipnet::IpNet>,
    #[serde(default)]
    allow_spoofed_source_prefixes: Vec<ipnet::IpNet>,
    #[serde(default, rename = "ipNATs")]
    ip_nats: Vec<IpNatSpec>,
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    ports: Vec<EndpointPort>,
}

/// One `ipNATs` entry: Calico takes an address or a single-address CIDR for each.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpNatSpec {
    #[serde(rename = "internalIP")]
    internal_ip: String,
    #[serde(rename = "externalIP")]
    external_ip: String,
}

/// `ipNATs[i]` of `obj` as the model's [`IpNat`].
fn ip_nat(obj: &str, i: usize, s: &IpNatSpec) -> Result<IpNat, TranslateError> {
    let addr = |field: &str, text: &str| {
        single_address(text).ok_or_else(|| {
            TranslateError::new(
                obj,
                format!("spec.ipNATs[{i}].{field}"),
                format!("{text:?} is not an IP address (or a /32 or /128 network)"),
            )
        })
    };
    Ok(IpNat {
        internal_ip: addr("internalIP", &s.internal_ip)?,
        external_ip: addr("externalIP", &s.external_ip)?,
    })
}

/// An address written alone or as a single-address network (`10.0.0.1/32`).
fn single_address(text: &str) -> Option<std::net::IpAddr> {
    text.parse().ok().or_else(|| {
        text.parse::<ipnet::IpNet>()
            .ok()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr())
    })
}

/// Fields calico-rs rejects wherever they appear, with the reason; `None`: reject any value;
/// `Some(v)`: only the value `v` (the default) is accepted.
const UNSUPPORTED: &[(&str, Option<&str>, &str)] = &[
    ("http", None, "HTTP match criteria need an application-layer proxy, which calico-rs does not run"),
    ("services", None, "matching Kubernetes Services in rules is not supported"),
    ("ipipMode", Some("Never"), "IP-in-IP encapsulation is not supported: calico-rs routes without overlay"),
    ("vxlanMode", Some("Never"), "VXLAN encapsulation is not supported: calico-rs routes without overlay"),
    ("natOutgoing", Some("false"), "outgoing NAT is not supported"),
    ("password", None, "secret references cannot be resolved by calico-rs: set the password on the BgpPeer resource through the orchestrator API"),
    ("nodeMeshPassword", None, "secret references cannot be resolved by calico-rs: set nodeMeshPassword on the BgpConfiguration resource through the orchestrator API"),
    ("localASNumber", None, "a per-peer local AS is not supported: set the node's asNumber"),
    ("localWorkloadSelector", None, "peering with local workloads is not supported"),
    ("reversePeering", Some("Auto"), "a manual reverse peering is not supported: the reverse peering is always automatic (Auto)"),
    ("bindMode", Some("None"), "bindMode NodeIP is not supported: the speaker listens on every address"),
    ("ignoredInterfaces", Some("[]"), "ignoredInterfaces is not supported: calico-rs exports only its pools' blocks, never interface routes"),
    ("localWorkloadPeeringIPV4", Some(""), "peering with local workloads is not supported"),
    ("localWorkloadPeeringIPV6", Some(""), "peering with local workloads is not supported"),
    ("serviceLoadBalancerAggregation", Some("Enabled"), "advertising service IPs is not supported"),
    ("programClusterRoutes", None, "programClusterRoutes is not supported: BGP-learned routes are always programmed"),
    ("ipv4NormalRoutePriority", None, "route priorities are not supported"),
    ("ipv6NormalRoutePriority", None, "route priorities are not supported"),
    ("logSeverityScreen", Some("Info"), "BIRD log levels other than the default (Info) are not supported"),
    ("serviceClusterIPs", Some("[]"), "advertising service IPs is not supported"),
    ("serviceExternalIPs", Some("[]"), "advertising service IPs is not supported"),
    ("serviceLoadBalancerIPs", Some("[]"), "advertising service IPs is not supported"),
    // Calico writes both on every WorkloadEndpoint port (Go's encoder has no omitempty there).
    ("hostPort", Some("0"), "host ports are not supported"),
    ("hostIP", Some(""), "host ports are not supported"),
];

/// Fields accepted and deliberately ignored (they do not change forwarding or policy).
const IGNORED: &[&str] = &[
    "serviceAccountName",
    "containerID",
    "ipv4Gateway",
    "ipv6Gateway",
    "orchRefs",
    "addresses",
    "disableBGPExport",
    "allowedUses",
    "nodeSelector", // IPPool: every node may use every pool here
];

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Sequence(s) if s.is_empty() => "[]".into(),
        Value::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Rejects unsupported fields (with their path) and strips ignored ones, recursively.
fn screen(v: &mut Value, path: &str, kind: &str, obj: &str) -> Result<(), TranslateError> {
    match v {
        Value::Mapping(m) => {
            let keys: Vec<String> = m
                .keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect();
            for k in keys {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                // `nodeSelector` is meaningful on BGPPeer.
                let ignorable =
                    IGNORED.contains(&k.as_str()) && !(k == "nodeSelector" && kind == "BGPPeer");
                if ignorable {
                    m.remove(k.as_str());
                    continue;
                }
                if let Some((_, default, why)) = UNSUPPORTED.iter().find(|(n, _, _)| *n == k) {
                    let value = m.get(k.as_str()).map(scalar_text).unwrap_or_default();
                    if default.is_none_or(|d| d != value && value != "null") {
                        return Err(TranslateError::new(
                            obj,
                            field,
                            format!("{why} (found {value})"),
                        ));
                    }
                    m.remove(k.as_str());
                    continue;
                }
                if let Some(child) = m.get_mut(k.as_str()) {
                    // Labels and annotations are data, not schema.
                    if !matches!(k.as_str(), "labels" | "labelsToApply" | "annotations") {
                        screen(child, &field, kind, obj)?;
                    }
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                screen(item, &format!("{path}[{i}]"), kind, obj)?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn typed<T: DeserializeOwned>(
    v: Value,
    prefix: &str,
    obj: &str,
) -> Result<T, TranslateError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        let field = if p == "." || p.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{p}")
        };
        TranslateError::new(obj, field, e.into_inner().to_string())
    })
}

fn strip_prefix_len(obj: &str, field: &str, s: &str) -> Result<std::net::IpAddr, TranslateError> {
    s.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| TranslateError::new(obj, field, format!("{s:?} is not an address")))
}

fn object(doc: usize, kind: &str, mut v: Mapping) -> Result<Resource, TranslateError> {
    let name_hint = v
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let obj = format!("document {doc}: {kind} {name_hint}");
    let meta: Meta = typed(
        v.remove("metadata").unwrap_or(Value::Null),
        "metadata",
        &obj,
    )?;
    let mut spec = v.remove("spec").unwrap_or(Value::Mapping(Mapping::new()));
    if let Some(k) = v.keys().next() {
        return Err(TranslateError::new(
            &obj,
            format!("{k:?}"),
            "unknown top-level field (expected apiVersion, kind, metadata, spec)",
        ));
    }
    screen(&mut spec, "spec", kind, &obj)?;
    let resource = match kind {
        "NetworkPolicy"
        | "GlobalNetworkPolicy"
        | "StagedNetworkPolicy"
        | "StagedGlobalNetworkPolicy" => super::policy::policy(kind, meta, spec, &obj)?,
        "StagedKubernetesNetworkPolicy" => {
            super::policy::staged_kubernetes_policy(meta, spec, &obj)?
        }
        "Profile" => {
            let s: ProfileSpec = typed(spec, "spec", &obj)?;
            Resource::Profile(Profile {
                name: meta.name,
                labels_to_apply: s.labels_to_apply,
                ingress: s.ingress,
                egress: s.egress,
            })
        }
        "HostEndpoint" => {
            let s: HostEndpointSpec = typed(spec, "spec", &obj)?;
            Resource::HostEndpoint(HostEndpoint {
                name: meta.name,
                node: s.node,
                interface_name: s.interface_name,
                expected_ips: s.expected_ips,
                labels: meta.labels,
                profiles: s.profiles,
                ports: named_ports(s.ports),
            })
        }
        "IPPool" => {
            let s: IpPoolSpec = typed(spec, "spec", &obj)?;
            Resource::IpPool(IpPool {
                name: meta.name,
                cidr: s.cidr,
                block_size: s.block_size,
                disabled: s.disabled,
            })
        }
        "BGPConfiguration" => {
            let s: BgpConfigurationSpec = typed(spec, "spec", &obj)?;
            Resource::BgpConfiguration(BgpConfiguration {
                name: meta.name,
                as_number: s.as_number,
                node_to_node_mesh_enabled: s.node_to_node_mesh_enabled,
                listen_port: s.listen_port,
                communities: s.communities,
                prefix_advertisements: s.prefix_advertisements,
                node_mesh_max_restart_time: seconds(
                    &obj,
                    "spec.nodeMeshMaxRestartTime",
                    s.node_mesh_max_restart_time,
                )?,
                node_mesh_password: None,
            })
        }
        "BGPPeer" => {
            let s: BgpPeerSpec = typed(spec, "spec", &obj)?;
            Resource::BgpPeer(BgpPeer {
                name: meta.name,
                node: s.node,
                node_selector: s.node_selector,
                peer_ip: s.peer_ip,
                as_number: s.as_number,
                peer_selector: s.peer_selector.map(Box::new),
                password: None,
                hold_time: None,
                bfd: None,
                add_path: None,
                filters: s.filters,
                keepalive_time: seconds(&obj, "spec.keepaliveTime", s.keepalive_time)?,
                max_restart_time: seconds(&obj, "spec.maxRestartTime", s.max_restart_time)?,
                num_allowed_local_as_numbers: s.num_allowed_local_as_numbers,
                next_hop_mode: s.next_hop_mode,
                keep_original_next_hop: s.keep_original_next_hop,
                ttl_security: s.ttl_security,
                source_address: s.source_address,
                reachable_by: s.reachable_by,
            })
        }
        "BGPFilter" => super::bgp_filter::read(meta, spec, &obj)?,
        "Node" => node(meta, spec, &obj)?,
        "WorkloadEndpoint" => workload_endpoint(meta, spec, &obj)?,
        "NetworkSet" | "GlobalNetworkSet" => super::network_set::read(kind, meta, spec, &obj)?,
        "Tier" => super::tier::read(meta, spec, &obj)?,
        other => {
            return Err(TranslateError::new(&obj, "kind", format!("{other:?} is not a supported kind (NetworkPolicy, GlobalNetworkPolicy, StagedNetworkPolicy, StagedGlobalNetworkPolicy, StagedKubernetesNetworkPolicy, Tier, NetworkSet, GlobalNetworkSet, Profile, HostEndpoint, IPPool, BGPConfiguration, BGPPeer, BGPFilter, Node, WorkloadEndpoint, List)")));
        }
    };
    resource
        .validate()
        .map_err(|e| TranslateError::new(&obj, e.field, e.reason.to_string()))?;
    Ok(resource)
}

/// A `Node`.
fn node(meta: Meta, spec: Value, obj: &str) -> Result<Resource, TranslateError> {
    let s: NodeSpec = typed(spec, "spec", obj)?;
    let bgp = match s.bgp {
        Some(b) => Some(NodeBgp {
            ipv4_address: match &b.ipv4_address {
                Some(a) => match strip_prefix_len(obj, "spec.bgp.ipv4Address", a)? {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    _ => {
                        return Err(TranslateError::new(
                            obj,
                            "spec.bgp.ipv4Address",
                            "not an IPv4 address",
                        ))
                    }
                },
                None => None,
            },
            ipv6_address: match &b.ipv6_address {
                Some(a) => match strip_prefix_len(obj, "spec.bgp.ipv6Address", a)? {
                    std::net::IpAddr::V6(v6) => Some(v6),
                    _ => {
                        return Err(TranslateError::new(
                            obj,
                            "spec.bgp.ipv6Address",
                            "not an IPv6 address",
                        ))
                    }
                },
                None => None,
            },
            as_number: b.as_number,
            route_reflector_cluster_id: b.route_reflector_cluster_id,
        }),
        None => None,
    };
    Ok(Resource::Node(Node {
        name: meta.name,
        labels: meta.labels,
        bgp,
    }))
}

/// A `WorkloadEndpoint`.
fn workload_endpoint(meta: Meta, spec: Value, obj: &str) -> Result<Resource, TranslateError> {
    let ns = meta.namespace.clone();
    let s: WorkloadEndpointSpec = typed(spec, "spec", obj)?;
    let workload = s.workload.or(s.pod).ok_or_else(|| {
        TranslateError::new(obj, "spec.workload", "workload (or pod) is required")
    })?;
    let ip_nats = (s.ip_nats.iter().enumerate())
        .map(|(i, n)| ip_nat(obj, i, n))
        .collect::<Result<_, _>>()?;
    Ok(Resource::WorkloadEndpoint(WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: s.orchestrator,
            workload,
            endpoint: s.endpoint,
        },
        namespace: ns.or_else(|| Some("default".into())),
        node: s.node,
        interface_name: s.interface_name,
        mac: s.mac,
        ip_networks: s.ip_networks,
        labels: meta.labels,
        profiles: s.profiles,
        ports: named_ports(s.ports),
        allow_spoofed_source_prefixes: s.allow_spoofed_source_prefixes,
        ip_nats,
    }))
}

/// Translates document number `doc` (1-based, for messages) of a YAML stream: one
/// `projectcalico.org/v3` resource or `List`. Resource files use it for their v3 documents.
pub(crate) fn translate_document(doc: usize, v: Value) -> Result<Vec<Resource>, TranslateError> {
    let mut out = Vec::new();
    document(doc, v, &mut out)?;
    Ok(out)
}

fn document(doc: usize, v: Value, out: &mut Vec<Resource>) -> Result<(), TranslateError> {
    let obj = format!("document {doc}");
    let Value::Mapping(mut m) = v else {
        return Err(TranslateError::new(
            obj,
            "(document)",
            "expected a mapping with apiVersion and kind",
        ));
    };
    match m.remove("apiVersion") {
        Some(Value::String(a)) if a == API_VERSION => {}
        Some(other) => {
            return Err(TranslateError::new(
                obj,
                "apiVersion",
                format!("{} is not {API_VERSION}", scalar_text(&other)),
            ));
        }
        None => return Err(TranslateError::new(obj, "apiVersion", "missing")),
    }
    let kind = match m.remove("kind") {
        Some(Value::String(k)) => k,
        _ => return Err(TranslateError::new(obj, "kind", "missing or not a string")),
    };
    if kind == "List" {
        let items = match m.remove("items") {
            Some(Value::Sequence(items)) => items,
            _ => {
                return Err(TranslateError::new(
                    obj,
                    "items",
                    "a List needs a sequence of items",
                ))
            }
        };
        for item in items {
            document(doc, item, out)?;
        }
        return Ok(());
    }
    out.push(object(doc, &kind, m)?);
    Ok(())
}

/// Parses a YAML stream of `projectcalico.org/v3` resources; every resource is validated.
pub fn parse_v3(text: &str) -> Result<Vec<Resource>, TranslateError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| {
            TranslateError::new(format!("document {}", i + 1), "(document)", e.to_string())
        })?;
        if v.is_null() {
            continue;
        }
        document(i + 1, v, &mut out)?;
    }
    Ok(out)
}
