//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, Pods and Namespaces → calico-rs
//! resources, with Kubernetes semantics, as Calico's own Kubernetes integration does:
//!
//! * a Namespace becomes the profile `kns.<namespace>`, which allows everything (a pod no
//!   policy selects is not isolated) and carries the namespace's labels as `pcns.<key>`;
//! * a ServiceAccount becomes the profile `ksa.<namespace>.<name>`, with no rules, carrying
//!   the account's labels as `pcsa.<key>` (and its name as `pcsa.projectcalico.org/name`)
//!   for Calico's `serviceAccounts` and `serviceAccountSelector`;
//! * a Pod becomes a workload endpoint in its namespace, with its named container ports, its
//!   service account's name as the label `projectcalico.org/serviceaccount`, and the
//!   profiles `kns.<namespace>` and (with a service account) `ksa.<namespace>.<account>`;
//! * a NetworkPolicy becomes a namespaced policy `knp.default.<name>` of order 1000 that
//!   applies to the pods its `podSelector` picks; once any policy selects a pod for a
//!   direction, traffic in that direction is denied unless some policy allows it.
//!
//! ```
//! use calico_core::integrations::kubernetes::{translate_policy, NetworkPolicy};
//!
//! let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "db", "namespace": "shop"},
//!     "spec": {
//!         "podSelector": {"matchLabels": {"app": "db"}},
//!         "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
//!                      "ports": [{"protocol": "TCP", "port": 5432}]}]
//!     }
//! })).unwrap();
//! let policy = translate_policy(&np).unwrap();
//! assert_eq!(policy.name, "knp.default.db");
//! assert_eq!(policy.ingress.len(), 1);
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{quote, TranslateError};
use crate::model::{
    Action, EntityRule, Labels, NamedPort, Policy, PolicyType, Profile, Rule, WorkloadEndpoint,
    WorkloadEndpointId, LABEL_ORCHESTRATOR, LABEL_SERVICE_ACCOUNT, SERVICE_ACCOUNT_LABEL_PREFIX,
};
use crate::naming::fnv1a;
use crate::selector::Selector;

mod admin;
mod cluster;
mod ports;
pub use admin::{
    translate_admin_policy, translate_baseline_policy, AdminNetworkPolicy, AdminNetworkPolicySpec,
    AdminPeer, AdminPort, AdminPortNumber, AdminPortRange, AdminRule, AdminSubject,
    BaselineAdminNetworkPolicy, BaselineAdminNetworkPolicySpec, NamespacedPods,
};
pub use cluster::{
    cluster_policy_name, translate_cluster_policy, ClusterNetworkPolicy, ClusterNetworkPolicySpec,
    ClusterPeer, ClusterPort, ClusterPortMatch, ClusterPortRange, ClusterProtocol, ClusterRule,
};
use ports::{port_groups, protocol};

/// Object metadata (the fields we use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name.
    pub name: String,
    /// Namespace (`default` when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl ObjectMeta {
    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// A label selector: `matchLabels` AND every `matchExpressions` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must have exactly these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A CIDR and the parts of it excluded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    /// The CIDR.
    pub cidr: String,
    /// CIDRs inside it that do not match.
    #[serde(default)]
    pub except: Vec<String>,
}

/// One peer of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPeer {
    /// Pods (in the policy's namespace, or in the namespaces `namespace_selector` picks).
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// A CIDR block.
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

/// A port number or name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name.
    String(String),
}

/// One port of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPort {
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The port (number or named container port); all ports when absent.
    #[serde(default)]
    pub port: Option<IntOrString>,
    /// Last port of a range starting at `port`.
    #[serde(default)]
    pub end_port: Option<i64>,
}

/// An ingress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    /// Sources; every source when absent or empty.
    #[serde(default)]
    pub from: Vec<NetworkPolicyPeer>,
    /// Ports; every port when absent or empty.
    #[serde(default)]
    pub ports: Vec<NetworkPolicyPort>,
}

/// An egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    /// Destinations; every destination when absent or empty.
    #[serde(default)]
    pub to: Vec<NetworkPolicyPeer>,
    /// Ports; every port when absent or empty.
    #[serde(default)]
    pub ports: Vec<NetworkPolicyPort>,
}

/// NetworkPolicy spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// The pods the policy applies to (`{}`: every pod of the namespace).
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// `Ingress` and/or `Egress`; when absent or empty, Ingress plus Egress if there are
    /// egress rules.
    #[serde(default)]
    pub policy_types: Option<Vec<String>>,
    /// Ingress rules.
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
    /// Egress rules.
    #[serde(default)]
    pub egress: Vec<EgressRule>,
}

/// A NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: NetworkPolicySpec,
}

/// A Namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// Metadata (its labels are the namespace's labels).
    pub metadata: ObjectMeta,
}

/// A ServiceAccount.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    /// Metadata (its labels are the account's labels).
    pub metadata: ObjectMeta,
}

/// A container port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// Name (only named ports matter to policy).
    #[serde(default)]
    pub name: Option<String>,
    /// Port number.
    pub container_port: u16,
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A container (the fields we use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Its ports.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

/// Pod spec (the fields we use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The node the pod is scheduled on.
    #[serde(default)]
    pub node_name: Option<String>,
    /// Containers.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// The pod shares the node's network namespace (and address): it is not a workload
    /// endpoint, its traffic is the node's.
    #[serde(default)]
    pub host_network: bool,
    /// The pod's service account.
    #[serde(default)]
    pub service_account_name: Option<String>,
}

/// One pod address.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

/// Pod status (the fields we use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// The primary address.
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    /// All addresses (dual stack).
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
}

/// A Pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: PodSpec,
    /// Status.
    #[serde(default)]
    pub status: PodStatus,
}

/// The profile of a namespace: `kns.<name>`, allowing all traffic (pods no policy selects
/// are not isolated), with the namespace's labels as `pcns.<key>` for namespace selectors.
pub fn namespace_profile(ns: &Namespace) -> Profile {
    let name = &ns.metadata.name;
    let mut labels: Labels = ns
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (format!("pcns.{k}"), v.clone()))
        .collect();
    labels.insert("pcns.kubernetes.io/metadata.name".into(), name.clone());
    Profile {
        name: format!("kns.{name}"),
        labels_to_apply: labels,
        ingress: vec![Rule::new(Action::Allow)],
        egress: vec![Rule::new(Action::Allow)],
    }
}

/// The profile of a service account: `ksa.<namespace>.<name>`, without rules (it only
/// carries labels), with the account's labels as `pcsa.<key>` and its name as
/// `pcsa.projectcalico.org/name`, as Calico's Kubernetes datastore gives it.
pub fn service_account_profile(sa: &ServiceAccount) -> Profile {
    let (ns, name) = (sa.metadata.namespace(), &sa.metadata.name);
    let mut labels: Labels = (sa.metadata.labels.iter())
        .map(|(k, v)| (format!("{SERVICE_ACCOUNT_LABEL_PREFIX}{k}"), v.clone()))
        .collect();
    labels.insert(
        format!("{SERVICE_ACCOUNT_LABEL_PREFIX}projectcalico.org/name"),
        name.clone(),
    );
    Profile {
        name: service_account_profile_name(ns, name),
        labels_to_apply: labels,
        ingress: vec![],
        egress: vec![],
    }
}

fn service_account_profile_name(namespace: &str, name: &str) -> String {
    format!("ksa.{namespace}.{name}")
}

/// The host-side interface name Calico's CNI plugin gives a pod: `cali` + 11 hex digits of
/// a hash of `namespace.name`.
pub fn interface_name(namespace: &str, pod: &str) -> String {
    format!(
        "cali{:011x}",
        fnv1a(&[namespace, ".", pod]) & 0xfff_ffff_ffff
    )
}

/// A pod as a workload endpoint; `None` for a `hostNetwork` pod, which (as in Calico) is no
/// workload endpoint: it has no interface of its own, its address is the node's, and its
/// traffic is the node's. Fails for a pod not yet scheduled or without an address.
pub fn pod_endpoint(pod: &Pod) -> Result<Option<WorkloadEndpoint>, TranslateError> {
    let ns = pod.metadata.namespace();
    let name = &pod.metadata.name;
    if pod.spec.host_network {
        tracing::debug!(
            pod = %format!("{ns}/{name}"),
            "ignoring a hostNetwork pod: it uses the node's network namespace and address, \
             so it is no workload endpoint (no route, not selectable as a pod)"
        );
        return Ok(None);
    }
    let obj = format!("Pod {ns}/{name}");
    let node = pod.spec.node_name.clone().ok_or_else(|| {
        TranslateError::new(&obj, "spec.nodeName", "the pod is not scheduled yet")
    })?;
    let mut ips: Vec<String> = pod.status.pod_ips.iter().map(|p| p.ip.clone()).collect();
    if ips.is_empty() {
        ips.extend(pod.status.pod_ip.clone());
    }
    if ips.is_empty() {
        return Err(TranslateError::new(
            &obj,
            "status.podIPs",
            "the pod has no address yet",
        ));
    }
    let ip_networks = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let addr: std::net::IpAddr = ip.parse().map_err(|_| {
                TranslateError::new(
                    &obj,
                    format!("status.podIPs[{i}].ip"),
                    format!("{ip:?} is not an IP address"),
                )
            })?;
            Ok(ipnet::IpNet::from(addr))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = Vec::new();
    for (c, container) in pod.spec.containers.iter().enumerate() {
        for (i, p) in container.ports.iter().enumerate() {
            if let Some(pname) = &p.name {
                let field = format!("spec.containers[{c}].ports[{i}].protocol");
                ports.push(NamedPort {
                    name: pname.clone(),
                    protocol: protocol(&obj, &field, p.protocol.as_deref())?,
                    port: p.container_port,
                });
            }
        }
    }
    let mut labels = pod.metadata.labels.clone();
    let mut profiles = vec![format!("kns.{ns}")];
    if let Some(sa) = pod
        .spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        // Calico sets the label only while the name fits a label value (63 bytes); the
        // profile carries it regardless.
        if sa.len() < 63 {
            labels.insert(LABEL_SERVICE_ACCOUNT.into(), sa.into());
        }
        profiles.push(service_account_profile_name(ns, sa));
    }
    Ok(Some(WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: "k8s".into(),
            workload: format!("{ns}.{name}"),
            endpoint: "eth0".into(),
        },
        namespace: Some(ns.to_string()),
        node,
        interface_name: interface_name(ns, name),
        mac: None,
        ip_networks,
        labels,
        profiles,
        ports,
        allow_spoofed_source_prefixes: vec![],
    }))
}

/// Selector text for a label selector (`""` for the empty selector).
fn selector_text(obj: &str, field: &str, sel: &LabelSelector) -> Result<String, TranslateError> {
    let mut terms = Vec::new();
    let q = |v: &str, f: &str| {
        quote(v)
            .ok_or_else(|| TranslateError::new(obj, f, format!("value {v:?} cannot be matched")))
    };
    for (k, v) in &sel.match_labels {
        terms.push(format!(
            "{k} == {}",
            q(v, &format!("{field}.matchLabels.{k}"))?
        ));
    }
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let f = format!("{field}.matchExpressions[{i}]");
        let values = || -> Result<String, TranslateError> {
            if e.values.is_empty() {
                return Err(TranslateError::new(
                    obj,
                    format!("{f}.values"),
                    format!("operator {} needs at least one value", e.operator),
                ));
            }
            let vs: Result<Vec<String>, _> = e.values.iter().map(|v| q(v, &f)).collect();
            Ok(format!("{{{}}}", vs?.join(", ")))
        };
        let no_values = || {
            if e.values.is_empty() {
                Ok(())
            } else {
                Err(TranslateError::new(
                    obj,
                    format!("{f}.values"),
                    format!("operator {} takes no values", e.operator),
                ))
            }
        };
        terms.push(match e.operator.as_str() {
            "In" => format!("{} in {}", e.key, values()?),
            "NotIn" => format!("{} not in {}", e.key, values()?),
            "Exists" => {
                no_values()?;
                format!("has({})", e.key)
            }
            "DoesNotExist" => {
                no_values()?;
                format!("!has({})", e.key)
            }
            other => {
                return Err(TranslateError::new(
                    obj,
                    format!("{f}.operator"),
                    format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
                ))
            }
        });
    }
    Ok(terms.join(" && "))
}

fn parse_selector(obj: &str, field: &str, text: &str) -> Result<Selector, TranslateError> {
    Selector::parse(text).map_err(|e| TranslateError::new(obj, field, e.to_string()))
}

/// Pods only (not other endpoints): `text && projectcalico.org/orchestrator == "k8s"`.
fn pods(obj: &str, field: &str, text: &str) -> Result<Selector, TranslateError> {
    let orchestrator = format!("{LABEL_ORCHESTRATOR} == \"k8s\"");
    let full = if text.is_empty() {
        orchestrator
    } else {
        format!("({text}) && {orchestrator}")
    };
    parse_selector(obj, field, &full)
}

fn peer(obj: &str, field: &str, p: &NetworkPolicyPeer) -> Result<EntityRule, TranslateError> {
    let mut e = EntityRule::default();
    if let Some(block) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err(TranslateError::new(
                obj,
                format!("{field}.ipBlock"),
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            ));
        }
        let cidr: ipnet::IpNet = block.cidr.parse().map_err(|_| {
            TranslateError::new(
                obj,
                format!("{field}.ipBlock.cidr"),
                format!("{:?} is not a CIDR", block.cidr),
            )
        })?;
        e.nets = vec![cidr];
        for (i, x) in block.except.iter().enumerate() {
            let f = format!("{field}.ipBlock.except[{i}]");
            let net: ipnet::IpNet = x
                .parse()
                .map_err(|_| TranslateError::new(obj, &f, format!("{x:?} is not a CIDR")))?;
            // Kubernetes validation: each except must be a strict subset of the cidr.
            if !cidr.contains(&net) || net.prefix_len() <= cidr.prefix_len() {
                return Err(TranslateError::new(
                    obj,
                    &f,
                    format!("{net} is not inside {cidr} (it must be a strict subset)"),
                ));
            }
            e.not_nets.push(net);
        }
        return Ok(e);
    }
    let pod_text = match &p.pod_selector {
        Some(s) => selector_text(obj, &format!("{field}.podSelector"), s)?,
        None => String::new(),
    };
    e.selector = Some(pods(obj, &format!("{field}.podSelector"), &pod_text)?);
    if let Some(ns) = &p.namespace_selector {
        let f = format!("{field}.namespaceSelector");
        e.namespace_selector = Some(parse_selector(obj, &f, &selector_text(obj, &f, ns)?)?);
    } else if p.pod_selector.is_none() {
        return Err(TranslateError::new(
            obj,
            field,
            "a peer needs podSelector, namespaceSelector or ipBlock",
        ));
    }
    Ok(e)
}

fn rules(
    obj: &str,
    field: &str,
    peers: &[NetworkPolicyPeer],
    ports: &[NetworkPolicyPort],
    peer_field: &str,
    egress: bool,
) -> Result<Vec<Rule>, TranslateError> {
    let entities: Vec<EntityRule> = if peers.is_empty() {
        vec![EntityRule::default()]
    } else {
        peers
            .iter()
            .enumerate()
            .map(|(i, p)| peer(obj, &format!("{field}.{peer_field}[{i}]"), p))
            .collect::<Result<_, _>>()?
    };
    let groups = port_groups(obj, &format!("{field}.ports"), ports)?;
    Ok(peer_rules(Action::Allow, &entities, &groups, egress))
}

/// One rule per peer and protocol group: `action` for traffic from (ingress) or to
/// (`egress`) each of `peers`, to the group's destination ports.
fn peer_rules(
    action: Action,
    peers: &[EntityRule],
    groups: &[ports::PortGroup],
    egress: bool,
) -> Vec<Rule> {
    let mut out = Vec::new();
    for entity in peers {
        for (proto, ports) in groups {
            let mut r = Rule::new(action);
            r.protocol = *proto;
            if egress {
                r.destination = entity.clone();
            } else {
                r.source = entity.clone();
            }
            r.destination.ports = ports.clone();
            out.push(r);
        }
    }
    out
}

/// Translates a NetworkPolicy into a namespaced policy with Kubernetes semantics.
pub fn translate_policy(np: &NetworkPolicy) -> Result<Policy, TranslateError> {
    let ns = np.metadata.namespace();
    let obj = format!("NetworkPolicy {ns}/{}", np.metadata.name);
    let spec = &np.spec;
    let text = selector_text(&obj, "spec.podSelector", &spec.pod_selector)?;
    let selector = pods(&obj, "spec.podSelector", &text)?;
    // Kubernetes defaults `policyTypes` when it is absent *or empty* (the API server's
    // defaulting tests `len(policyTypes) == 0`): an empty list is not "governs nothing".
    let types = match spec.policy_types.as_deref().filter(|t| !t.is_empty()) {
        Some(types) => types
            .iter()
            .enumerate()
            .map(|(i, t)| match t.as_str() {
                "Ingress" => Ok(PolicyType::Ingress),
                "Egress" => Ok(PolicyType::Egress),
                other => Err(TranslateError::new(
                    &obj,
                    format!("spec.policyTypes[{i}]"),
                    format!("{other:?} is not Ingress or Egress"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None if spec.egress.is_empty() => vec![PolicyType::Ingress],
        None => vec![PolicyType::Ingress, PolicyType::Egress],
    };
    let mut ingress = Vec::new();
    for (i, r) in spec.ingress.iter().enumerate() {
        ingress.extend(rules(
            &obj,
            &format!("spec.ingress[{i}]"),
            &r.from,
            &r.ports,
            "from",
            false,
        )?);
    }
    let mut egress = Vec::new();
    for (i, r) in spec.egress.iter().enumerate() {
        egress.extend(rules(
            &obj,
            &format!("spec.egress[{i}]"),
            &r.to,
            &r.ports,
            "to",
            true,
        )?);
    }
    // Rules of a direction the policy does not govern have no effect in Kubernetes.
    if !types.contains(&PolicyType::Ingress) {
        ingress.clear();
    }
    if !types.contains(&PolicyType::Egress) {
        egress.clear();
    }
    let policy = Policy {
        name: format!("knp.default.{}", np.metadata.name),
        namespace: Some(ns.to_string()),
        tier: crate::model::DEFAULT_TIER.into(),
        order: Some(1000.0),
        selector,
        types,
        ingress,
        egress,
        apply_on_forward: false,
        pre_dnat: false,
        do_not_track: false,
        staged_action: None,
    };
    policy
        .validate()
        .map_err(|e| TranslateError::new(&obj, e.field, e.reason.to_string()))?;
    Ok(policy)
}
