//! Effective labels and effective selectors: how selectors see endpoints (their own labels
//! over inherited profile labels, plus the implicit ones), and the namespace scoping of the
//! selectors in a policy's rules. Shared by the reference evaluator and the rule compiler so that both
//! give the same answer by construction.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    EntityRule, HostEndpoint, Labels, Model, NamedPort, NetworkSet, Policy, ServiceAccountMatch,
    WorkloadEndpoint, LABEL_NAMESPACE, LABEL_ORCHESTRATOR, LABEL_SERVICE_ACCOUNT,
    NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX,
};
use crate::selector::Selector;

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

/// A network set's effective labels, as Calico's: its own, over those of its namespace's
/// `kns.<namespace>` profile (the `pcns.` namespace labels), plus the implicit namespace
/// label for a namespaced set. A global set has its own labels only.
pub fn network_set_labels(model: &Model, set: &NetworkSet) -> Labels {
    let Some(ns) = &set.namespace else {
        return set.labels.clone();
    };
    let mut labels = profile_labels(model, &[format!("kns.{ns}")]);
    labels.extend(set.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert(LABEL_NAMESPACE.into(), ns.clone());
    labels
}

/// What a rule's selectors are matched against: one endpoint's (or network set's) effective
/// labels, addresses, networks and named ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectableEndpoint {
    /// Effective labels.
    pub labels: Labels,
    /// Addresses (of an endpoint).
    pub addresses: Vec<IpAddr>,
    /// Networks (of a network set): an address in one of them is selected with the set.
    pub nets: Vec<IpNet>,
    /// Named ports.
    pub ports: Vec<NamedPort>,
}

impl SelectableEndpoint {
    /// Whether `addr` is one of its addresses or falls in one of its networks.
    pub fn owns(&self, addr: &IpAddr) -> bool {
        self.addresses.contains(addr) || self.nets.iter().any(|n| n.contains(addr))
    }
}

/// Every endpoint of the model (workload and host, on every node) and every network set, as
/// rule selectors see them.
pub fn selectable_endpoints(model: &Model) -> Vec<SelectableEndpoint> {
    let workloads = model
        .workload_endpoints
        .values()
        .map(|ep| SelectableEndpoint {
            labels: workload_labels(model, ep),
            addresses: ep.ip_networks.iter().map(|n| n.addr()).collect(),
            nets: Vec::new(),
            ports: ep.ports.clone(),
        });
    let hosts = model.host_endpoints.values().map(|ep| SelectableEndpoint {
        labels: host_labels(model, ep),
        addresses: ep.expected_ips.clone(),
        nets: Vec::new(),
        ports: ep.ports.clone(),
    });
    let sets = model.network_sets.values().map(|s| SelectableEndpoint {
        labels: network_set_labels(model, s),
        addresses: Vec::new(),
        nets: s.networks().collect(),
        ports: Vec::new(),
    });
    workloads.chain(hosts).chain(sets).collect()
}

/// The namespace restriction a rule selector of a policy in `namespace` carries:
/// the rule's `namespaceSelector` over the `pcns.` labels if it has one, else (for a
/// namespaced policy) the policy's own namespace, else none.
fn namespace_scope(namespace: Option<&str>, entity: &EntityRule) -> Option<Selector> {
    match (&entity.namespace_selector, namespace) {
        (Some(ns_sel), _) => Some(namespaces_matching(ns_sel)),
        (None, Some(ns)) => Some(Selector::label_equals(LABEL_NAMESPACE, ns)),
        (None, None) => None,
    }
}

/// The endpoints in the namespaces a `namespaceSelector` picks, for a rule's or a policy's
/// `namespaceSelector` alike. As in Calico, `all()` means every namespace, so it picks the
/// namespaced endpoints only (not host endpoints nor non-namespaced workloads); `global()`
/// (no namespace) is kept as is by the prefixing.
pub fn namespaces_matching(ns_sel: &Selector) -> Selector {
    if ns_sel.is_all() {
        in_some_namespace()
    } else {
        ns_sel.with_key_prefix(NAMESPACE_LABEL_PREFIX)
    }
}

/// `has(projectcalico.org/namespace)`.
fn in_some_namespace() -> Selector {
    // A constant, well-formed selector: parsing cannot fail (the `namespace_selector_all`
    // cases of the evaluator's tests exercise it).
    Selector::parse(&format!("has({LABEL_NAMESPACE})")).expect("constant selector")
}

fn scoped(base: Option<&Selector>, scope: Option<Selector>) -> Selector {
    let base = base.cloned().unwrap_or_else(Selector::all);
    match scope {
        Some(s) => base.and(&s),
        None => base,
    }
}

/// The selector a rule side's `serviceAccounts` stands for, as in Calico (libcalico-go's
/// `parseServiceAccounts`): the account's labels (`selector` over the `pcsa.` labels
/// endpoints inherit from their `ksa.` profile) and its name (`projectcalico.org/serviceaccount
/// in {names}`), both when both are given; `None` when neither is (`serviceAccounts: {}`).
pub fn service_account_selector(m: &ServiceAccountMatch) -> Option<Selector> {
    let labels = (m.selector.as_ref()).map(|s| s.with_key_prefix(SERVICE_ACCOUNT_LABEL_PREFIX));
    let names = (!m.names.is_empty()).then(|| Selector::label_in(LABEL_SERVICE_ACCOUNT, &m.names));
    match (labels, names) {
        (Some(l), Some(n)) => Some(l.and(&n)),
        (l, n) => l.or(n),
    }
}

/// The effective `selector` of one side of a rule in a policy of `namespace` (`None`: a
/// global policy or a profile); `None` when the side does not restrict by label at all.
///
/// As in Calico (libcalico-go's `getEndpointSelector`), the side's `serviceAccounts` and
/// `selector` must both hold, and as soon as *any* selector field of the side is used
/// (`selector`, `serviceAccounts`, `notSelector` or `namespaceSelector`), the side is
/// limited to the namespace scope: a rule of a namespaced policy with only a `notSelector`
/// matches endpoints of its own namespace that the `notSelector` does not pick, not the rest
/// of the world.
pub fn effective_selector(namespace: Option<&str>, entity: &EntityRule) -> Option<Selector> {
    let accounts = entity
        .service_accounts
        .as_ref()
        .and_then(service_account_selector);
    let uses_selectors = entity.selector.is_some()
        || accounts.is_some()
        || entity.not_selector.is_some()
        || entity.namespace_selector.is_some();
    if !uses_selectors {
        return None;
    }
    let positive = match (accounts, entity.selector.as_ref()) {
        (Some(a), Some(s)) => Some(a.and(s)),
        (a, s) => a.or_else(|| s.cloned()),
    };
    match (positive, namespace_scope(namespace, entity)) {
        (None, None) => None,
        (selector, scope) => Some(scoped(selector.as_ref(), scope)),
    }
}

/// The effective `notSelector` of one side of a rule.
pub fn effective_not_selector(namespace: Option<&str>, entity: &EntityRule) -> Option<Selector> {
    entity
        .not_selector
        .as_ref()
        .map(|s| scoped(Some(s), namespace_scope(namespace, entity)))
}

/// The selector whose endpoints' named ports a named port in one side of a rule refers to:
/// the side's effective selector, or `all()` when the side uses no selector field.
///
/// This follows Calico (Felix's `namedPortsToIPSets` takes the side's positive selector, or
/// `selector.All`): a side without any selector field is not limited to the policy's
/// namespace, for named ports as for everything else, so an egress rule of a namespaced
/// policy allowing `ports: [http]` reaches the `http` port of endpoints in any namespace.
pub fn named_port_selector(namespace: Option<&str>, entity: &EntityRule) -> Selector {
    effective_selector(namespace, entity).unwrap_or_else(Selector::all)
}
