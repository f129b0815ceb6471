//! Set membership: which endpoints' addresses (and named ports) are in the selector sets the
//! compiled rules refer to, kept up to date one endpoint or one set at a time, and which
//! policy or profile holds a reference to each set.
//!
//! Every endpoint of the cluster (workload or host, any node) is a candidate member. A set
//! exists while at least one policy or profile refers to it; an element is in a set while at
//! least one member endpoint contributes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::journal::Journal;
use super::rules::SetSpec;
use crate::calc::effective;
use crate::calc::SelectorIndex;
use crate::dataplane::ir::{Set, SetElement};
use crate::model::{Labels, Model, NamedPort, PolicyKey, WorkloadEndpointId};

/// Any endpoint, as a member of selector sets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum EndpointKey {
    /// A workload endpoint, on any node.
    Workload(WorkloadEndpointId),
    /// A host endpoint, by name.
    Host(String),
}

/// Who refers to a set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SetOwner {
    /// A policy's rules.
    Policy(PolicyKey),
    /// A profile's rules.
    Profile(String),
}

/// What an endpoint contributes to the sets it is a member of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Contribution {
    addresses: Vec<IpAddr>,
    ports: Vec<NamedPort>,
}

/// The selector sets, their references and their members.
#[derive(Clone, Debug, Default)]
pub(super) struct SetMembership {
    /// Sets referenced by compiled rules: spec and number of referring policies/profiles.
    set_refs: BTreeMap<String, (SetSpec, usize)>,
    /// Element reference counts of selector-based sets.
    element_refs: BTreeMap<String, BTreeMap<SetElement, usize>>,
    /// Selector-based sets × all endpoints (by interned id: cheap to copy into the index).
    members: SelectorIndex<String, u64>,
    endpoint_ids: BTreeMap<EndpointKey, u64>,
    next_endpoint_id: u64,
    contributions: BTreeMap<u64, Contribution>,
    /// Sets used by each policy and profile.
    used_sets: BTreeMap<SetOwner, Vec<SetSpec>>,
}

impl SetMembership {
    /// `owner` now refers to the sets `specs` (`None`: it is gone). Sets are acquired before
    /// the old ones are released, so that sets both versions use stay put; a set nobody
    /// refers to any more is deleted.
    pub(super) fn set_owner_sets(
        &mut self,
        journal: &mut Journal,
        owner: SetOwner,
        specs: Option<Vec<SetSpec>>,
    ) {
        let old_specs = self.used_sets.remove(&owner).unwrap_or_default();
        if let Some(specs) = specs {
            self.acquire_sets(journal, owner, specs);
        }
        self.release_specs(journal, old_specs);
    }

    /// Re-reads an endpoint (any node) from `model` and updates the sets it is a member of.
    pub(super) fn refresh_endpoint(
        &mut self,
        journal: &mut Journal,
        model: &Model,
        key: EndpointKey,
    ) {
        let contribution = contribution(model, &key);
        let id = match (self.endpoint_ids.get(&key), &contribution) {
            (Some(id), _) => *id,
            (None, None) => return,
            (None, Some(_)) => {
                self.next_endpoint_id += 1;
                self.endpoint_ids.insert(key.clone(), self.next_endpoint_id);
                self.next_endpoint_id
            }
        };
        if let Some(old) = self.contributions.remove(&id) {
            for s in self.members.matching(&id) {
                add_contribution(
                    &self.set_refs,
                    &mut self.element_refs,
                    journal,
                    s,
                    &old,
                    false,
                );
            }
        }
        match contribution {
            Some((labels, contribution)) => {
                self.members.set_item(id, labels);
                for s in self.members.matching(&id) {
                    add_contribution(
                        &self.set_refs,
                        &mut self.element_refs,
                        journal,
                        s,
                        &contribution,
                        true,
                    );
                }
                self.contributions.insert(id, contribution);
            }
            None => {
                self.members.remove_item(&id);
                self.endpoint_ids.remove(&key);
            }
        }
    }

    /// Drops one reference to each set; sets nobody refers to any more are deleted.
    fn release_specs(&mut self, journal: &mut Journal, specs: Vec<SetSpec>) {
        for spec in specs {
            let name = spec.name();
            let Some((_, n)) = self.set_refs.get_mut(&name) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                self.set_refs.remove(&name);
                self.members.remove_selector(&name);
                self.element_refs.remove(&name);
                journal.put_set(&name, None);
            }
        }
    }

    /// Takes one reference to each set for `owner`; a new set is created with its members.
    fn acquire_sets(&mut self, journal: &mut Journal, owner: SetOwner, specs: Vec<SetSpec>) {
        for spec in &specs {
            let name = spec.name();
            if let Some((_, n)) = self.set_refs.get_mut(&name) {
                *n += 1;
                continue;
            }
            self.set_refs.insert(name.clone(), (spec.clone(), 1));
            let mut set = Set {
                key: spec.key(),
                elements: BTreeSet::new(),
            };
            if let SetSpec::Nets { nets, .. } = spec {
                set.elements = nets.iter().map(|n| SetElement::Net(*n)).collect();
            }
            journal.put_set(&name, Some(set));
            let selector = match spec {
                SetSpec::Selector { selector, .. } | SetSpec::NamedPort { selector, .. } => {
                    selector.clone()
                }
                SetSpec::Nets { .. } => continue,
            };
            let changes = self.members.add_selector(name.clone(), selector);
            for c in changes {
                if !c.matches {
                    continue;
                }
                if let Some(contribution) = self.contributions.get(&c.item) {
                    add_contribution(
                        &self.set_refs,
                        &mut self.element_refs,
                        journal,
                        &name,
                        contribution,
                        true,
                    );
                }
            }
        }
        self.used_sets.insert(owner, specs);
    }
}

/// An endpoint's effective labels and what it contributes to sets, read from `model`.
fn contribution(model: &Model, key: &EndpointKey) -> Option<(Labels, Contribution)> {
    match key {
        EndpointKey::Workload(id) => model.workload_endpoints.get(id).map(|ep| {
            (
                effective::workload_labels(model, ep),
                Contribution {
                    addresses: ep.ip_networks.iter().map(|n| n.addr()).collect(),
                    ports: ep.ports.clone(),
                },
            )
        }),
        EndpointKey::Host(name) => model.host_endpoints.get(name).map(|ep| {
            (
                effective::host_labels(model, ep),
                Contribution {
                    addresses: ep.expected_ips.clone(),
                    ports: ep.ports.clone(),
                },
            )
        }),
    }
}

/// The elements `c` contributes to the set `spec`.
fn elements_of(spec: &SetSpec, c: &Contribution) -> Vec<SetElement> {
    match spec {
        SetSpec::Selector { v4, .. } => c
            .addresses
            .iter()
            .filter(|a| a.is_ipv4() == *v4)
            .map(|a| SetElement::Addr(*a))
            .collect(),
        SetSpec::NamedPort { port, v4, .. } => c
            .addresses
            .iter()
            .filter(|a| a.is_ipv4() == *v4)
            .flat_map(|a| {
                c.ports
                    .iter()
                    .filter(|p| &p.name == port)
                    .map(move |p| SetElement::AddrProtoPort(*a, p.protocol.0, p.port))
            })
            .collect(),
        SetSpec::Nets { .. } => Vec::new(),
    }
}

/// Adds (`sign`) or withdraws one member's contribution to the set `set`: an element enters
/// the set with its first contributor and leaves it with its last.
fn add_contribution(
    set_refs: &BTreeMap<String, (SetSpec, usize)>,
    element_refs: &mut BTreeMap<String, BTreeMap<SetElement, usize>>,
    journal: &mut Journal,
    set: &str,
    c: &Contribution,
    sign: bool,
) {
    let Some((spec, _)) = set_refs.get(set) else {
        return;
    };
    let elements = elements_of(spec, c);
    if elements.is_empty() {
        return;
    }
    if !element_refs.contains_key(set) {
        element_refs.insert(set.to_string(), BTreeMap::new());
    }
    let Some(counts) = element_refs.get_mut(set) else {
        return;
    };
    for e in elements {
        let n = counts.entry(e).or_insert(0);
        let (was, now) = if sign {
            *n += 1;
            (*n - 1, *n)
        } else {
            *n = n.saturating_sub(1);
            (*n + 1, *n)
        };
        if now == 0 {
            counts.remove(&e);
        }
        if was == 0 && now > 0 {
            journal.set_element(set, e, true);
        } else if was > 0 && now == 0 {
            journal.set_element(set, e, false);
        }
    }
}
