//! Kubernetes `AdminNetworkPolicy` and `BaselineAdminNetworkPolicy`
//! (`policy.networking.k8s.io/v1alpha1`, the network-policy-api project), translated as
//! Calico 3.29–3.31 does: into global policies of Calico's `adminnetworkpolicy` tier (before
//! every other tier, default `Pass`) and `baselineadminnetworkpolicy` tier (after the
//! default tier, default `Pass`).
//!
//! Semantics (the API's documentation):
//! * An AdminNetworkPolicy's `priority` (0–1000, lower first) is the policy's order in its
//!   tier; its rules are tried in order and the first that matches decides: `Allow` and
//!   `Deny` are final, `Pass` hands the traffic to the NetworkPolicies (the next tier).
//!   Traffic no rule matches goes on too (the tier's default `Pass`).
//! * A BaselineAdminNetworkPolicy (only one, named `default`) applies after NetworkPolicies,
//!   with `Allow` and `Deny` only: a default for what NetworkPolicy leaves open.
//! * `subject` selects pods: by their namespace (`namespaces`), or by namespace and pod
//!   labels (`pods`). A peer (`from` / `to`) does the same, and an egress peer may be a list
//!   of CIDRs (`networks`). An empty selector (`{}`) means every namespace (or pod).
//! * `ports`: a port number with its protocol, a named container port (any protocol), or a
//!   range; absent, all ports.
//!
//! Refused by field name: egress `nodes` peers (no node endpoints to select here), a second
//! baseline policy (its name must be `default`), out-of-range priorities and ports, and
//! anything the API server would refuse that the translation depends on.

use serde::Deserialize;

use super::ports::{port_groups, PortGroup};
use super::{
    peer_rules, pods, selector_text, IntOrString, LabelSelector, NetworkPolicyPort, ObjectMeta,
};
use crate::calc::effective::namespaces_matching;
use crate::integrations::TranslateError;
use crate::model::{
    Action, EntityRule, Policy, PolicyType, PortSpec, Protocol, Rule, ADMIN_NETWORK_POLICY_TIER,
    BASELINE_ADMIN_NETWORK_POLICY_TIER,
};
use crate::selector::Selector;

/// The API's limits: rules per direction and peers per rule.
const MAX_ITEMS: usize = 100;

/// An `AdminNetworkPolicy`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminNetworkPolicy {
    /// Metadata (cluster-scoped: no namespace).
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: AdminNetworkPolicySpec,
}

/// The spec of an [`AdminNetworkPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminNetworkPolicySpec {
    /// 0–1000; lower applies first.
    pub priority: i64,
    /// The pods the policy applies to.
    pub subject: AdminSubject,
    /// Rules for traffic to the subject, in order.
    #[serde(default)]
    pub ingress: Vec<AdminRule>,
    /// Rules for traffic from the subject, in order.
    #[serde(default)]
    pub egress: Vec<AdminRule>,
}

/// A `BaselineAdminNetworkPolicy`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineAdminNetworkPolicy {
    /// Metadata: the name must be `default`.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: BaselineAdminNetworkPolicySpec,
}

/// The spec of a [`BaselineAdminNetworkPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaselineAdminNetworkPolicySpec {
    /// The pods the policy applies to.
    pub subject: AdminSubject,
    /// Rules for traffic to the subject, in order.
    #[serde(default)]
    pub ingress: Vec<AdminRule>,
    /// Rules for traffic from the subject, in order.
    #[serde(default)]
    pub egress: Vec<AdminRule>,
}

/// Pods by namespace, or by namespace and pod labels: exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminSubject {
    /// Every pod of the namespaces selected.
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    /// The pods selected in the namespaces selected.
    #[serde(default)]
    pub pods: Option<NamespacedPods>,
}

/// Pods selected by their namespace's labels and their own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedPods {
    /// The namespaces.
    pub namespace_selector: LabelSelector,
    /// The pods in them.
    pub pod_selector: LabelSelector,
}

/// One rule (ingress: `from`; egress: `to`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminRule {
    /// A name for humans (at most 100 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// `Allow`, `Deny` or (AdminNetworkPolicy only) `Pass`.
    pub action: String,
    /// Ingress peers (1–100).
    #[serde(default)]
    pub from: Vec<AdminPeer>,
    /// Egress peers (1–100).
    #[serde(default)]
    pub to: Vec<AdminPeer>,
    /// The destination ports; all when absent.
    #[serde(default)]
    pub ports: Option<Vec<AdminPort>>,
}

/// A peer: exactly one field set (`networks` and `nodes` only as egress peers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminPeer {
    /// Every pod of the namespaces selected.
    #[serde(default)]
    pub namespaces: Option<LabelSelector>,
    /// The pods selected in the namespaces selected.
    #[serde(default)]
    pub pods: Option<NamespacedPods>,
    /// Nodes by label (refused: no node endpoints here).
    #[serde(default)]
    pub nodes: Option<LabelSelector>,
    /// CIDRs (egress only).
    #[serde(default)]
    pub networks: Option<Vec<String>>,
}

/// A port: exactly one field set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminPort {
    /// A port number and its protocol.
    #[serde(default)]
    pub port_number: Option<AdminPortNumber>,
    /// A named container port, whatever its protocol.
    #[serde(default)]
    pub named_port: Option<String>,
    /// A range of ports and their protocol.
    #[serde(default)]
    pub port_range: Option<AdminPortRange>,
}

/// `portNumber`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminPortNumber {
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The port.
    pub port: i64,
}

/// `portRange`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminPortRange {
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// First port.
    pub start: i64,
    /// Last port.
    pub end: i64,
}

/// An AdminNetworkPolicy as the global policy `kanp.adminnetworkpolicy.<name>` of the
/// `adminnetworkpolicy` tier, ordered by its priority.
pub fn translate_admin_policy(anp: &AdminNetworkPolicy) -> Result<Policy, TranslateError> {
    let obj = format!("AdminNetworkPolicy {}", anp.metadata.name);
    let spec = &anp.spec;
    if !(0..=1000).contains(&spec.priority) {
        let why = format!("{} is outside 0-1000", spec.priority);
        return Err(TranslateError::new(&obj, "spec.priority", why));
    }
    let policy = Policy {
        name: format!("kanp.adminnetworkpolicy.{}", anp.metadata.name),
        namespace: None,
        tier: ADMIN_NETWORK_POLICY_TIER.into(),
        order: Some(spec.priority as f64),
        ..translate(&obj, &spec.subject, (&spec.ingress, &spec.egress), true)?
    };
    checked(&obj, policy)
}

/// The BaselineAdminNetworkPolicy (named `default`) as the global policy
/// `kbanp.baselineadminnetworkpolicy.default` of the `baselineadminnetworkpolicy` tier.
pub fn translate_baseline_policy(
    banp: &BaselineAdminNetworkPolicy,
) -> Result<Policy, TranslateError> {
    let obj = format!("BaselineAdminNetworkPolicy {}", banp.metadata.name);
    if banp.metadata.name != "default" {
        let why = "a BaselineAdminNetworkPolicy must be named `default` (there is one)";
        return Err(TranslateError::new(&obj, "metadata.name", why));
    }
    let spec = &banp.spec;
    let policy = Policy {
        name: "kbanp.baselineadminnetworkpolicy.default".into(),
        namespace: None,
        tier: BASELINE_ADMIN_NETWORK_POLICY_TIER.into(),
        order: Some(1000.0),
        ..translate(&obj, &spec.subject, (&spec.ingress, &spec.egress), false)?
    };
    checked(&obj, policy)
}

pub(super) fn checked(obj: &str, policy: Policy) -> Result<Policy, TranslateError> {
    policy
        .validate()
        .map_err(|e| TranslateError::new(obj, e.field, e.reason.to_string()))?;
    Ok(policy)
}

/// The selector, types and rules shared by both kinds (`pass`: `Pass` is allowed), and
/// by ClusterNetworkPolicy (`super::cluster`, translated to these rules first).
pub(super) fn translate(
    obj: &str,
    subject: &AdminSubject,
    (ingress, egress): (&[AdminRule], &[AdminRule]),
    pass: bool,
) -> Result<Policy, TranslateError> {
    let selector = match (&subject.namespaces, &subject.pods) {
        (Some(ns), None) => in_namespaces(obj, "spec.subject.namespaces", ns, None)?,
        (None, Some(p)) => in_namespaces(obj, "spec.subject.pods", &p.namespace_selector, Some(p))?,
        _ => return Err(one_of(obj, "spec.subject", "namespaces or pods")),
    };
    let mut types = Vec::new();
    let mut out = (Vec::new(), Vec::new());
    for (list, field, egress, rules) in [
        (ingress, "spec.ingress", false, &mut out.0),
        (egress, "spec.egress", true, &mut out.1),
    ] {
        if list.len() > MAX_ITEMS {
            let why = format!("{} rules: at most {MAX_ITEMS}", list.len());
            return Err(TranslateError::new(obj, field, why));
        }
        for (i, r) in list.iter().enumerate() {
            rules.extend(rule(obj, &format!("{field}[{i}]"), r, egress, pass)?);
        }
        if !list.is_empty() {
            types.push(if egress {
                PolicyType::Egress
            } else {
                PolicyType::Ingress
            });
        }
    }
    if types.is_empty() {
        // No rules: it selects, and passes everything on (the tier's default).
        types.push(PolicyType::Ingress);
    }
    Ok(Policy {
        name: String::new(),
        namespace: None,
        tier: String::new(),
        order: None,
        selector,
        types,
        ingress: out.0,
        egress: out.1,
        apply_on_forward: false,
        pre_dnat: false,
        do_not_track: false,
        staged_action: None,
    })
}

fn one_of(obj: &str, field: &str, what: &str) -> TranslateError {
    TranslateError::new(obj, field, format!("exactly one of {what} must be set"))
}

/// Pods in the namespaces `ns` selects (and, with `pods`, that its pod selector selects).
fn in_namespaces(
    obj: &str,
    field: &str,
    ns: &LabelSelector,
    pods_of: Option<&NamespacedPods>,
) -> Result<Selector, TranslateError> {
    let ns_field = match pods_of {
        Some(_) => format!("{field}.namespaceSelector"),
        None => field.to_string(),
    };
    let ns = namespace_selector(obj, &ns_field, ns)?;
    let pod_text = match pods_of {
        Some(p) => selector_text(obj, &format!("{field}.podSelector"), &p.pod_selector)?,
        None => String::new(),
    };
    let pod = pods(obj, &format!("{field}.podSelector"), &pod_text)?;
    Ok(pod.and(&namespaces_matching(&ns)))
}

fn namespace_selector(
    obj: &str,
    field: &str,
    ns: &LabelSelector,
) -> Result<Selector, TranslateError> {
    let text = selector_text(obj, field, ns)?;
    Selector::parse(&text).map_err(|e| TranslateError::new(obj, field, e.to_string()))
}

/// One API rule as Calico rules: one per peer and protocol.
fn rule(
    obj: &str,
    field: &str,
    r: &AdminRule,
    egress: bool,
    pass: bool,
) -> Result<Vec<Rule>, TranslateError> {
    if r.name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(TranslateError::new(
            obj,
            format!("{field}.name"),
            "longer than 100 characters",
        ));
    }
    let action = match r.action.as_str() {
        "Allow" => Action::Allow,
        "Deny" => Action::Deny,
        "Pass" if pass => Action::Pass,
        other => {
            let allowed = if pass {
                "Allow, Deny or Pass"
            } else {
                "Allow or Deny"
            };
            let why = format!("{other:?} is not {allowed}");
            return Err(TranslateError::new(obj, format!("{field}.action"), why));
        }
    };
    let (peers, peer_field, other) = match egress {
        true => (&r.to, "to", &r.from),
        false => (&r.from, "from", &r.to),
    };
    if !other.is_empty() {
        let wrong = if egress { "from" } else { "to" };
        let why = format!(
            "an {} rule has no `{wrong}`",
            if egress { "egress" } else { "ingress" }
        );
        return Err(TranslateError::new(obj, format!("{field}.{wrong}"), why));
    }
    if peers.is_empty() || peers.len() > MAX_ITEMS {
        let why = format!("{} peers: 1 to {MAX_ITEMS} are needed", peers.len());
        return Err(TranslateError::new(
            obj,
            format!("{field}.{peer_field}"),
            why,
        ));
    }
    let groups = ports(obj, &format!("{field}.ports"), r.ports.as_deref())?;
    let entities = peers
        .iter()
        .enumerate()
        .map(|(i, p)| peer(obj, &format!("{field}.{peer_field}[{i}]"), p, egress))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(peer_rules(action, &entities, &groups, egress))
}

fn peer(obj: &str, field: &str, p: &AdminPeer, egress: bool) -> Result<EntityRule, TranslateError> {
    let set = [
        p.namespaces.is_some(),
        p.pods.is_some(),
        p.nodes.is_some(),
        p.networks.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        let what = if egress {
            "namespaces, pods, nodes or networks"
        } else {
            "namespaces or pods"
        };
        return Err(one_of(obj, field, what));
    }
    let mut e = EntityRule::default();
    if let Some(ns) = &p.namespaces {
        e.selector = Some(pods(obj, &format!("{field}.namespaces"), "")?);
        e.namespace_selector = Some(namespace_selector(obj, &format!("{field}.namespaces"), ns)?);
    } else if let Some(sel) = &p.pods {
        let f = format!("{field}.pods.podSelector");
        e.selector = Some(pods(obj, &f, &selector_text(obj, &f, &sel.pod_selector)?)?);
        let f = format!("{field}.pods.namespaceSelector");
        e.namespace_selector = Some(namespace_selector(obj, &f, &sel.namespace_selector)?);
    } else if p.nodes.is_some() {
        let why = "node peers are not supported by calico-rs (no node endpoints to select)";
        return Err(TranslateError::new(obj, format!("{field}.nodes"), why));
    } else if let Some(networks) = &p.networks {
        if !egress {
            let why = "only egress peers may be networks";
            return Err(TranslateError::new(obj, format!("{field}.networks"), why));
        }
        if networks.is_empty() || networks.len() > 25 {
            let why = format!("{} CIDRs: 1 to 25 are needed", networks.len());
            return Err(TranslateError::new(obj, format!("{field}.networks"), why));
        }
        for (i, n) in networks.iter().enumerate() {
            let cidr: ipnet::IpNet = n.parse().map_err(|_| {
                let why = format!("{n:?} is not a CIDR");
                TranslateError::new(obj, format!("{field}.networks[{i}]"), why)
            })?;
            e.nets.push(cidr);
        }
    }
    Ok(e)
}

/// The ports as protocol groups: each port as a NetworkPolicy port (validated the same
/// way, at the same index), then every named port looked up under UDP and SCTP too (a
/// named container port may have any protocol).
fn ports(
    obj: &str,
    field: &str,
    ports: Option<&[AdminPort]>,
) -> Result<Vec<PortGroup>, TranslateError> {
    let Some(ports) = ports else {
        return port_groups(obj, field, &[]);
    };
    if ports.is_empty() || ports.len() > MAX_ITEMS {
        let why = format!(
            "{} ports: 1 to {MAX_ITEMS} are needed when set",
            ports.len()
        );
        return Err(TranslateError::new(obj, field, why));
    }
    let mut np = Vec::new();
    let mut named = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let (protocol, port, end_port) = match (&p.port_number, &p.named_port, &p.port_range) {
            (Some(n), None, None) => (n.protocol.clone(), IntOrString::Int(n.port), None),
            (None, Some(name), None) => {
                named.push(name.clone());
                (None, IntOrString::String(name.clone()), None)
            }
            (None, None, Some(r)) => (r.protocol.clone(), IntOrString::Int(r.start), Some(r.end)),
            _ => {
                let f = format!("{field}[{i}]");
                return Err(one_of(obj, &f, "portNumber, namedPort or portRange"));
            }
        };
        np.push(NetworkPolicyPort {
            protocol,
            port: Some(port),
            end_port,
        });
    }
    let mut groups = port_groups(obj, field, &np)?;
    for name in named {
        for proto in [Protocol::UDP, Protocol::SCTP] {
            match groups.iter_mut().find(|(p, _)| *p == Some(proto)) {
                Some((_, all)) if all.is_empty() => {} // every port of it already
                Some((_, list)) => list.push(PortSpec::Named(name.clone())),
                None => groups.push((Some(proto), vec![PortSpec::Named(name.clone())])),
            }
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests;
