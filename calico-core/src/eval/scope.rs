//! How selectors see endpoints: effective labels, and the namespace scoping of the selectors
//! in a policy's rules. Shared by the reference evaluator and the rule compiler so that both
//! give the same answer by construction.

use std::net::IpAddr;

use crate::model::{
    EntityRule, HostEndpoint, Labels, Model, NamedPort, Policy, WorkloadEndpoint, LABEL_NAMESPACE,
    LABEL_ORCHESTRATOR,
};
use crate::selector::Selector;

/// Prefix of the namespace labels endpoints inherit from their `kns.<namespace>` profile.
pub const NAMESPACE_LABEL_PREFIX: &str = "pcns.";

/// `namespace/name` for a namespaced policy, `name` for a global one.
pub fn policy_name(p: &Policy) -> String {
    match &p.namespace {
        Some(ns) => format!("{ns}/{}", p.name),
        None => p.name.clone(),
    }
}

/// Labels inherited from profiles: earlier profiles win over later ones.
fn profile_labels(model: &Model, profiles: &[String]) -> Labels {
    let mut out = Labels::new();
    for name in profiles.iter().rev() {
        if let Some(p) = model.profiles.get(name) {
            for (k, v) in &p.labels_to_apply {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// A workload endpoint's effective labels: its own, over those of its profiles, plus the
/// implicit namespace and orchestrator labels.
pub fn workload_labels(model: &Model, ep: &WorkloadEndpoint) -> Labels {
    let mut labels = profile_labels(model, &ep.profiles);
    labels.extend(ep.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(ns) = &ep.namespace {
        labels.insert(LABEL_NAMESPACE.into(), ns.clone());
    }
    labels.insert(LABEL_ORCHESTRATOR.into(), ep.id.orchestrator.clone());
    labels
}

/// A host endpoint's effective labels: its own, over those of its profiles.
pub fn host_labels(model: &Model, ep: &HostEndpoint) -> Labels {
    let mut labels = profile_labels(model, &ep.profiles);
    labels.extend(ep.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// What a rule's selectors are matched against: one endpoint's effective labels, addresses
/// and named ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectableEndpoint {
    /// Effective labels.
    pub labels: Labels,
    /// Addresses.
    pub addresses: Vec<IpAddr>,
    /// Named ports.
    pub ports: Vec<NamedPort>,
}

/// Every endpoint of the model (workload and host, on every node) as rule selectors see it.
pub fn selectable_endpoints(model: &Model) -> Vec<SelectableEndpoint> {
    let workloads = model
        .workload_endpoints
        .values()
        .map(|ep| SelectableEndpoint {
            labels: workload_labels(model, ep),
            addresses: ep.ip_networks.iter().map(|n| n.addr()).collect(),
            ports: ep.ports.clone(),
        });
    let hosts = model.host_endpoints.values().map(|ep| SelectableEndpoint {
        labels: host_labels(model, ep),
        addresses: ep.expected_ips.clone(),
        ports: ep.ports.clone(),
    });
    workloads.chain(hosts).collect()
}

/// The namespace restriction a rule selector of a policy in `namespace` carries:
/// the rule's `namespaceSelector` over the `pcns.` labels if it has one, else (for a
/// namespaced policy) the policy's own namespace, else none.
fn namespace_scope(namespace: Option<&str>, entity: &EntityRule) -> Option<Selector> {
    match (&entity.namespace_selector, namespace) {
        (Some(ns_sel), _) => Some(ns_sel.with_key_prefix(NAMESPACE_LABEL_PREFIX)),
        (None, Some(ns)) => Some(Selector::label_equals(LABEL_NAMESPACE, ns)),
        (None, None) => None,
    }
}

fn scoped(base: Option<&Selector>, scope: Option<Selector>) -> Selector {
    let base = base.cloned().unwrap_or_else(Selector::all);
    match scope {
        Some(s) => base.and(&s),
        None => base,
    }
}

/// The effective `selector` of one side of a rule in a policy of `namespace` (`None`: a
/// global policy or a profile): `None` when the side does not select by label at all.
pub fn effective_selector(namespace: Option<&str>, entity: &EntityRule) -> Option<Selector> {
    if entity.selector.is_none() && entity.namespace_selector.is_none() {
        return None;
    }
    Some(scoped(
        entity.selector.as_ref(),
        namespace_scope(namespace, entity),
    ))
}

/// The effective `notSelector` of one side of a rule.
pub fn effective_not_selector(namespace: Option<&str>, entity: &EntityRule) -> Option<Selector> {
    entity
        .not_selector
        .as_ref()
        .map(|s| scoped(Some(s), namespace_scope(namespace, entity)))
}

/// The selector whose endpoints' named ports a named port in one side of a rule refers to:
/// the side's effective selector, or `all()` scoped the same way.
pub fn named_port_selector(namespace: Option<&str>, entity: &EntityRule) -> Selector {
    effective_selector(namespace, entity)
        .unwrap_or_else(|| scoped(None, namespace_scope(namespace, entity)))
}
