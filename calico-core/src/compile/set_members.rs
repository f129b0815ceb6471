//! Set membership: which endpoints' addresses (and named ports) and which network sets'
//! networks are in the selector sets the compiled rules refer to, kept up to date one
//! endpoint, network set or selector set at a time, and which policy or profile holds a
//! reference to each set.
//!
//! Every endpoint of the cluster (workload or host, any node) and every network set is a
//! candidate member. A set exists while at least one policy or profile refers to it. A
//! selector set is an interval set: its elements are the networks its members contribute
//! (an endpoint's addresses as /32 and /128) that no other contributed network contains
//! ([`CidrCover`]), so a network set's change is a change of set elements only. A named-port
//! set holds an element while at least one member endpoint contributes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::journal::Journal;
use super::rules::SetSpec;
use super::set_elements::{Contribution, SetElements};
use crate::calc::effective;
use crate::calc::SelectorIndex;
use crate::dataplane::ir::{Set, SetElement};
use crate::model::{Labels, Model, NamedPort, NetworkSetKey, PolicyKey, WorkloadEndpointId};

/// Any endpoint, as a member of selector sets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum EndpointKey {
    /// A workload endpoint, on any node.
    Workload(WorkloadEndpointId),
    /// A host endpoint, by name.
    Host(String),
    /// A network set, by namespace and name.
    NetworkSet(NetworkSetKey),
}

/// Who refers to a set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SetOwner {
    /// A policy's rules.
    Policy(PolicyKey),
    /// A profile's rules.
    Profile(String),
}

/// The selector sets, their references and their members.
#[derive(Clone, Debug, Default)]
pub(super) struct SetMembership {
    /// Sets referenced by compiled rules: spec and number of referring policies/profiles.
    set_refs: BTreeMap<String, (SetSpec, usize)>,
    /// The elements of the sets, with what each member contributes.
    elements: SetElements,
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

    /// Re-reads an endpoint (any node) or network set from `model` and updates the sets it
    /// is a member of. Sets it stays in get only the difference between its old and new
    /// contribution: a network set whose networks change changes those elements only.
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
        let old = self.contributions.remove(&id).unwrap_or_default();
        let old_sets: BTreeSet<String> = self.members.matching(&id).cloned().collect();
        let new = match contribution {
            Some((labels, contribution)) => {
                self.members.set_item(id, labels);
                contribution
            }
            None => {
                self.members.remove_item(&id);
                self.endpoint_ids.remove(&key);
                Contribution::default()
            }
        };
        let new_sets: BTreeSet<&String> = self.members.matching(&id).collect();
        for s in &old_sets {
            let withdrawn = match new_sets.contains(s) {
                true => old.minus(&new),
                false => old.clone(),
            };
            self.elements
                .contribute(&self.set_refs, journal, s, &withdrawn, false);
        }
        for s in new_sets {
            let added = match old_sets.contains(s) {
                true => new.minus(&old),
                false => new.clone(),
            };
            self.elements
                .contribute(&self.set_refs, journal, s, &added, true);
        }
        if self.endpoint_ids.contains_key(&key) {
            self.contributions.insert(id, new);
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
                self.elements.forget(&name);
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
                    self.elements
                        .contribute(&self.set_refs, journal, &name, contribution, true);
                }
            }
        }
        self.used_sets.insert(owner, specs);
    }
}

/// An endpoint's or network set's effective labels and what it contributes to sets, read
/// from `model`.
fn contribution(model: &Model, key: &EndpointKey) -> Option<(Labels, Contribution)> {
    let endpoint = |addresses: Vec<IpAddr>, ports: Vec<NamedPort>| Contribution {
        nets: addresses.iter().map(|a| IpNet::from(*a)).collect(),
        addresses,
        ports,
    };
    match key {
        EndpointKey::Workload(id) => model.workload_endpoints.get(id).map(|ep| {
            (
                effective::workload_labels(model, ep),
                endpoint(
                    ep.ip_networks.iter().map(|n| n.addr()).collect(),
                    ep.ports.clone(),
                ),
            )
        }),
        EndpointKey::Host(name) => model.host_endpoints.get(name).map(|ep| {
            (
                effective::host_labels(model, ep),
                endpoint(ep.expected_ips.clone(), ep.ports.clone()),
            )
        }),
        EndpointKey::NetworkSet(k) => model.network_sets.get(k).map(|set| {
            let mut nets: Vec<IpNet> = set.networks().collect();
            nets.sort();
            nets.dedup();
            let c = Contribution {
                nets,
                ..Contribution::default()
            };
            (effective::network_set_labels(model, set), c)
        }),
    }
}

impl Contribution {
    /// What `self` contributes that `other` does not.
    fn minus(&self, other: &Contribution) -> Contribution {
        Contribution {
            nets: self
                .nets
                .iter()
                .filter(|n| !other.nets.contains(n))
                .copied()
                .collect(),
            // Named-port elements are addresses × ports: with the same addresses, only the
            // ports that differ; otherwise all of them (the other side adds all of its own,
            // and the reference counts keep what both have).
            addresses: self.addresses.clone(),
            ports: match self.addresses == other.addresses {
                true => self
                    .ports
                    .iter()
                    .filter(|p| !other.ports.contains(p))
                    .cloned()
                    .collect(),
                false => self.ports.clone(),
            },
        }
    }
}
