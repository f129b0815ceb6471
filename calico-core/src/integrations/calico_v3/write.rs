//! The writer: calico-rs resources → `projectcalico.org/v3` objects, the inverse of the
//! reader (see the module docs of [`super`]).
//!
//! Field names and forms are Calico's (the `json:` tags of its Go API types): camelCase,
//! selectors and networks as strings, ports as numbers or `"min:max"` strings, a rule's
//! `source` and `destination` always present (Go writes empty structs as `{}`), empty lists
//! and unset options left out (Go's `omitempty`).

use serde_json::{json, Map, Value};

use super::API_VERSION;
use crate::integrations::TranslateError;
use crate::model::{
    BgpConfiguration, BgpPeer, HostEndpoint, IpPool, Labels, NamedPort, Node, Policy, Profile,
    Resource, Rule, WorkloadEndpoint,
};

/// One resource as a `projectcalico.org/v3` object.
#[derive(Clone, Debug, PartialEq)]
pub struct V3Object {
    /// The v3 kind: `NetworkPolicy`, `GlobalNetworkPolicy` (or `StagedNetworkPolicy`,
    /// `StagedGlobalNetworkPolicy` for a staged policy), `Profile`, `WorkloadEndpoint`,
    /// `HostEndpoint`, `IPPool`, `BGPConfiguration`, `BGPPeer`, `Node`, `NetworkSet`,
    /// `GlobalNetworkSet` or `Tier`.
    pub kind: &'static str,
    /// The namespace of a namespaced kind (`NetworkPolicy`, `WorkloadEndpoint`,
    /// `NetworkSet`), else `None`.
    pub namespace: Option<String>,
    /// The object's `metadata.name` (for a workload endpoint, the name Calico forms; see
    /// [`workload_endpoint_name`]).
    pub name: String,
    /// The whole object: `apiVersion`, `kind`, `metadata` (`name`, `namespace`, `labels`) and
    /// `spec`.
    pub value: Value,
}

/// Converts one resource to the v3 object Calico would hold for it.
///
/// Fails, naming the resource and field, for what the v3 reader could not give back: a
/// [`BlockAffinity`](crate::model::BlockAffinity) (IPAM's, not a v3 resource the reader
/// takes), a BGP peer's password (v3 holds only a Kubernetes secret reference) or hold time
/// (no v3 field), a workload endpoint without a namespace (v3 endpoints are namespaced), a
/// workload endpoint whose name parts Calico cannot join, a policy with a non-finite order.
///
/// ```
/// use calico_core::integrations::calico_v3::{parse_v3, to_v3};
///
/// let r = parse_v3("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
///                   metadata: {name: deny-all}\nspec: {selector: all(), types: [Ingress]}")
///     .unwrap()
///     .remove(0);
/// let v3 = to_v3(&r).unwrap();
/// assert_eq!((v3.kind, v3.name.as_str()), ("GlobalNetworkPolicy", "deny-all"));
/// assert_eq!(parse_v3(&v3.value.to_string()).unwrap(), vec![r]);
/// ```
pub fn to_v3(resource: &Resource) -> Result<V3Object, TranslateError> {
    let (kind, namespace, name, labels, spec) = match resource {
        Resource::Policy(p) => policy(p)?,
        Resource::Profile(p) => ("Profile", None, p.name.clone(), None, profile(p)),
        Resource::WorkloadEndpoint(ep) => workload_endpoint(ep)?,
        Resource::HostEndpoint(h) => (
            "HostEndpoint",
            None,
            h.name.clone(),
            Some(&h.labels),
            host_endpoint(h),
        ),
        Resource::IpPool(p) => ("IPPool", None, p.name.clone(), None, ip_pool(p)),
        Resource::BgpConfiguration(c) => (
            "BGPConfiguration",
            None,
            c.name.clone(),
            None,
            bgp_configuration(c)?,
        ),
        Resource::BgpPeer(p) => ("BGPPeer", None, p.name.clone(), None, bgp_peer(p)?),
        Resource::Node(n) => ("Node", None, n.name.clone(), Some(&n.labels), node(n)),
        Resource::NetworkSet(s) => super::network_set::write(s),
        Resource::BgpFilter(f) => super::bgp_filter::write(f),
        Resource::Tier(t) => super::tier::write(t)?,
        Resource::BlockAffinity(b) => {
            return Err(TranslateError::new(
                format!("BlockAffinity {}", b.cidr),
                "kind",
                "a block affinity is IPAM state, not a projectcalico.org/v3 resource the v3 \
                 reader takes back: store it through the IPAM API",
            ))
        }
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name.clone()));
    if let Some(ns) = &namespace {
        metadata.insert("namespace".into(), Value::String(ns.clone()));
    }
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), json!(labels));
    }
    let value = json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    });
    Ok(V3Object {
        kind,
        namespace,
        name,
        value,
    })
}

/// What each kind's conversion yields: kind, namespace, name, labels, spec.
pub(super) type Parts<'a> = (
    &'static str,
    Option<String>,
    String,
    Option<&'a Labels>,
    Value,
);

/// Inserts `value` under `key` unless it is an empty list or object (Go's `omitempty`).
fn put(spec: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    };
    if !empty {
        spec.insert(key.into(), value);
    }
}

fn rules(rules: &[Rule]) -> Value {
    // A rule's fields are Calico's already (see `crate::model::Rule`).
    json!(rules)
}

/// A number as Go writes a float64: integral values without a fraction.
fn order_number(order: f64) -> Value {
    if order.fract() == 0.0 && order.abs() < 9.0e15 {
        json!(order as i64)
    } else {
        json!(order)
    }
}

/// An `order` as `spec.order` holds it; a non-finite one has no JSON form and is refused.
pub(super) fn finite_order(kind: &str, name: &str, order: f64) -> Result<Value, TranslateError> {
    if !order.is_finite() {
        return Err(TranslateError::new(
            format!("{kind} {name}"),
            "spec.order",
            format!("{order} is not a finite number"),
        ));
    }
    Ok(order_number(order))
}

fn policy(p: &Policy) -> Result<Parts<'_>, TranslateError> {
    let kind = match (p.is_staged(), p.namespace.is_some()) {
        (false, true) => "NetworkPolicy",
        (false, false) => "GlobalNetworkPolicy",
        (true, true) => "StagedNetworkPolicy",
        (true, false) => "StagedGlobalNetworkPolicy",
    };
    let mut spec = Map::new();
    if p.tier != crate::model::DEFAULT_TIER {
        spec.insert("tier".into(), Value::String(p.tier.clone()));
    }
    if let Some(order) = p.order {
        spec.insert("order".into(), finite_order(kind, &p.name, order)?);
    }
    spec.insert("selector".into(), Value::String(p.selector.to_string()));
    put(&mut spec, "types", json!(p.types));
    put(&mut spec, "ingress", rules(&p.ingress));
    put(&mut spec, "egress", rules(&p.egress));
    if p.apply_on_forward {
        spec.insert("applyOnForward".into(), Value::Bool(true));
    }
    if p.pre_dnat {
        spec.insert("preDNAT".into(), Value::Bool(true));
    }
    if p.do_not_track {
        spec.insert("doNotTrack".into(), Value::Bool(true));
    }
    if let Some(action) = p.staged_action {
        spec.insert("stagedAction".into(), json!(action));
    }
    Ok((
        kind,
        p.namespace.clone(),
        p.user_name().to_string(),
        None,
        Value::Object(spec),
    ))
}

fn profile(p: &Profile) -> Value {
    let mut spec = Map::new();
    put(&mut spec, "ingress", rules(&p.ingress));
    put(&mut spec, "egress", rules(&p.egress));
    put(&mut spec, "labelsToApply", json!(p.labels_to_apply));
    Value::Object(spec)
}

/// Named ports; a workload endpoint's also carry `hostPort` and `hostIP`, which Go always
/// writes there.
fn named_ports(ports: &[NamedPort], workload: bool) -> Value {
    ports
        .iter()
        .map(|p| {
            let mut o = json!({"name": p.name, "protocol": p.protocol, "port": p.port});
            if workload {
                o["hostPort"] = json!(0);
                o["hostIP"] = json!("");
            }
            o
        })
        .collect()
}

/// The `metadata.name` Calico forms for a workload endpoint:
/// `<node>-<orchestrator>-<workload>-<endpoint>` (for `libnetwork` the orchestrator stands
/// in for the workload), each `-` inside a part doubled so the name splits back
/// unambiguously. A part may not be empty, nor begin or end with `-`.
pub fn workload_endpoint_name(ep: &WorkloadEndpoint) -> Result<String, TranslateError> {
    let id = &ep.id;
    let workload = if id.orchestrator == "libnetwork" {
        ("orchestrator", &id.orchestrator)
    } else if id.orchestrator == "k8s" {
        ("pod", &id.workload)
    } else {
        ("workload", &id.workload)
    };
    let parts = [
        ("node", &ep.node),
        ("orchestrator", &id.orchestrator),
        workload,
        ("endpoint", &id.endpoint),
    ];
    let mut out = Vec::with_capacity(parts.len());
    for (field, part) in parts {
        if part.is_empty() || part.starts_with('-') || part.ends_with('-') {
            return Err(TranslateError::new(
                format!("WorkloadEndpoint {id}"),
                format!("spec.{field}"),
                format!(
                    "{part:?} cannot be part of a Calico endpoint name: it must be non-empty \
                     and not begin or end with '-'"
                ),
            ));
        }
        out.push(part.replace('-', "--"));
    }
    Ok(out.join("-"))
}

fn workload_endpoint(ep: &WorkloadEndpoint) -> Result<Parts<'_>, TranslateError> {
    let Some(namespace) = ep.namespace.clone() else {
        return Err(TranslateError::new(
            format!("WorkloadEndpoint {}", ep.id),
            "metadata.namespace",
            "a v3 WorkloadEndpoint is namespaced, and the reader gives an endpoint without one \
             the namespace \"default\": set the namespace (networking-calico uses \"openstack\")",
        ));
    };
    let name = workload_endpoint_name(ep)?;
    let mut spec = Map::new();
    spec.insert("orchestrator".into(), json!(ep.id.orchestrator));
    // Calico keeps a Kubernetes pod's name in `pod`, any other workload in `workload`.
    let workload_field = if ep.id.orchestrator == "k8s" {
        "pod"
    } else {
        "workload"
    };
    spec.insert(workload_field.into(), json!(ep.id.workload));
    spec.insert("node".into(), json!(ep.node));
    spec.insert("endpoint".into(), json!(ep.id.endpoint));
    spec.insert("interfaceName".into(), json!(ep.interface_name));
    if let Some(mac) = ep.mac {
        spec.insert("mac".into(), json!(mac));
    }
    put(&mut spec, "ipNetworks", json!(ep.ip_networks));
    put(
        &mut spec,
        "allowSpoofedSourcePrefixes",
        json!(ep.allow_spoofed_source_prefixes),
    );
    put(&mut spec, "profiles", json!(ep.profiles));
    put(&mut spec, "ports", named_ports(&ep.ports, true));
    Ok((
        "WorkloadEndpoint",
        Some(namespace),
        name,
        Some(&ep.labels),
        Value::Object(spec),
    ))
}

fn host_endpoint(h: &HostEndpoint) -> Value {
    let mut spec = Map::new();
    spec.insert("node".into(), json!(h.node));
    if let Some(i) = &h.interface_name {
        spec.insert("interfaceName".into(), json!(i));
    }
    put(&mut spec, "expectedIPs", json!(h.expected_ips));
    put(&mut spec, "profiles", json!(h.profiles));
    put(&mut spec, "ports", named_ports(&h.ports, false));
    Value::Object(spec)
}

fn ip_pool(p: &IpPool) -> Value {
    // Calico's defaulting writes the encapsulation modes and node selector explicitly; calico-rs
    // routes without overlay on every node, which is what these values say.
    let mut spec = Map::new();
    spec.insert("cidr".into(), json!(p.cidr));
    if let Some(b) = p.block_size {
        spec.insert("blockSize".into(), json!(b));
    }
    spec.insert("ipipMode".into(), json!("Never"));
    spec.insert("vxlanMode".into(), json!("Never"));
    spec.insert("nodeSelector".into(), json!("all()"));
    if p.disabled {
        spec.insert("disabled".into(), json!(true));
    }
    Value::Object(spec)
}

fn bgp_configuration(c: &BgpConfiguration) -> Result<Value, TranslateError> {
    let mut spec = Map::new();
    if let Some(v) = c.node_to_node_mesh_enabled {
        spec.insert("nodeToNodeMeshEnabled".into(), json!(v));
    }
    if let Some(v) = c.as_number {
        spec.insert("asNumber".into(), json!(v));
    }
    if let Some(v) = c.listen_port {
        spec.insert("listenPort".into(), json!(v));
    }
    super::bgp_filter::write_communities(&mut spec, &c.communities, &c.prefix_advertisements);
    if let Some(v) = c.node_mesh_max_restart_time {
        spec.insert("nodeMeshMaxRestartTime".into(), json!(format!("{v}s")));
    }
    if c.node_mesh_password.is_some() {
        return Err(TranslateError::new(
            format!("BGPConfiguration {}", c.name),
            "spec.nodeMeshPassword",
            "a v3 BGPConfiguration holds only a Kubernetes secret reference, never the password itself",
        ));
    }
    Ok(Value::Object(spec))
}

fn bgp_peer(p: &BgpPeer) -> Result<Value, TranslateError> {
    let obj = || format!("BGPPeer {}", p.name);
    if p.password.is_some() {
        return Err(TranslateError::new(
            obj(),
            "spec.password",
            "a v3 BGPPeer holds only a Kubernetes secret reference, never the password itself",
        ));
    }
    if p.hold_time.is_some() {
        return Err(TranslateError::new(
            obj(),
            "spec.holdTime",
            "a v3 BGPPeer has no hold time field",
        ));
    }
    if p.bfd.is_some() {
        return Err(TranslateError::new(
            obj(),
            "spec.bfd",
            "a v3 BGPPeer has no BFD field (BFD is a calico-rs BgpPeer setting)",
        ));
    }
    if p.add_path.is_some() {
        return Err(TranslateError::new(
            obj(),
            "spec.addPath",
            "a v3 BGPPeer has no ADD-PATH field (addPath is a calico-rs BgpPeer setting)",
        ));
    }
    let mut spec = Map::new();
    if let Some(n) = &p.node {
        spec.insert("node".into(), json!(n));
    }
    if let Some(s) = &p.node_selector {
        spec.insert("nodeSelector".into(), json!(s));
    }
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            spec.insert(k.into(), v);
        }
    };
    put("peerIP", json!(p.peer_ip));
    put("asNumber", json!(p.as_number));
    put("peerSelector", json!(p.peer_selector));
    put(
        "keepaliveTime",
        json!(p.keepalive_time.map(|s| format!("{s}s"))),
    );
    put(
        "maxRestartTime",
        json!(p.max_restart_time.map(|s| format!("{s}s"))),
    );
    put(
        "numAllowedLocalASNumbers",
        json!(p.num_allowed_local_as_numbers),
    );
    put("nextHopMode", json!(p.next_hop_mode));
    put("keepOriginalNextHop", json!(p.keep_original_next_hop));
    put("ttlSecurity", json!(p.ttl_security));
    put("sourceAddress", json!(p.source_address));
    put("reachableBy", json!(p.reachable_by));
    if !p.filters.is_empty() {
        put("filters", json!(p.filters));
    }
    Ok(Value::Object(spec))
}

fn node(n: &Node) -> Value {
    let mut spec = Map::new();
    if let Some(b) = &n.bgp {
        // Calico validates both addresses as CIDRs; the model keeps the address alone.
        let mut bgp = Map::new();
        if let Some(a) = b.ipv4_address {
            bgp.insert("ipv4Address".into(), json!(format!("{a}/32")));
        }
        if let Some(a) = b.ipv6_address {
            bgp.insert("ipv6Address".into(), json!(format!("{a}/128")));
        }
        if let Some(a) = b.as_number {
            bgp.insert("asNumber".into(), json!(a));
        }
        if let Some(id) = b.route_reflector_cluster_id {
            bgp.insert("routeReflectorClusterID".into(), json!(id.to_string()));
        }
        spec.insert("bgp".into(), Value::Object(bgp));
    }
    Value::Object(spec)
}

#[cfg(test)]
mod tests;
