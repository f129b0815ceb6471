//! This node's workload endpoints as the compiler sees them: which policies apply to each
//! (an incremental [`SelectorIndex`] of the policies' own selectors over the endpoints'
//! effective labels), and which endpoint owns each local interface.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use crate::calc::SelectorIndex;
use crate::model::{Labels, Policy, PolicyKey, WorkloadEndpointId, LABEL_NAMESPACE};
use crate::selector::Selector;

/// Policies × local workload endpoints, and local endpoints by interface.
#[derive(Clone, Debug, Default)]
pub(super) struct LocalEndpoints {
    /// Policies × local workload endpoints.
    applies: SelectorIndex<PolicyKey, WorkloadEndpointId>,
    /// Local workload endpoints by interface (the first id owns the interface).
    by_iface: BTreeMap<String, BTreeSet<WorkloadEndpointId>>,
}

impl LocalEndpoints {
    /// The local endpoints a policy applies to.
    pub(super) fn applied_to(&self, key: &PolicyKey) -> Option<&BTreeSet<WorkloadEndpointId>> {
        self.applies.members(key)
    }

    /// The policies that apply to a local endpoint (unordered).
    pub(super) fn policies_of<'a>(
        &'a self,
        id: &'a WorkloadEndpointId,
    ) -> impl Iterator<Item = &'a PolicyKey> + 'a {
        self.applies.matching(id)
    }

    /// A policy was added or changed (`Some`) or removed (`None`).
    pub(super) fn set_policy(&mut self, key: &PolicyKey, policy: Option<&Policy>) {
        match policy.filter(|p| !p.pre_dnat && !p.do_not_track) {
            Some(p) => {
                self.applies.add_selector(key.clone(), applies_selector(p));
            }
            None => {
                self.applies.remove_selector(key);
            }
        }
    }

    /// An endpoint changed: it left `old_iface` (if it had one) and is now local with these
    /// effective labels and interface, or not local (any more).
    pub(super) fn endpoint_changed(
        &mut self,
        id: &WorkloadEndpointId,
        old_iface: Option<&str>,
        local: Option<(Labels, &str)>,
    ) {
        if let Some(old) = old_iface {
            if let Some(ids) = self.by_iface.get_mut(old) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_iface.remove(old);
                }
            }
        }
        match local {
            Some((labels, iface)) => {
                self.applies.set_item(id.clone(), labels);
                self.by_iface
                    .entry(iface.to_string())
                    .or_default()
                    .insert(id.clone());
            }
            None => {
                self.applies.remove_item(id);
            }
        }
    }

    /// The endpoint that owns a local interface: the first of those that claim it (a
    /// warning names the others).
    pub(super) fn owner(&self, iface: &str) -> Option<&WorkloadEndpointId> {
        let ids = self.by_iface.get(iface)?;
        if ids.len() > 1 {
            warn!(
                interface = iface,
                endpoints = ?ids,
                "several local endpoints claim one interface; only the first is programmed"
            );
        }
        ids.iter().next()
    }
}

/// The selector deciding whether a policy applies to a workload endpoint: its own, limited to
/// its namespace for a namespaced policy.
fn applies_selector(p: &Policy) -> Selector {
    match &p.namespace {
        Some(ns) => p.selector.and(&Selector::label_equals(LABEL_NAMESPACE, ns)),
        None => p.selector.clone(),
    }
}
