//! This node's host endpoints as the compiler sees them: which of their chains, tier
//! chains, policy and profile chains and map entries are rendered, and when to render them
//! again. A host has a handful of host endpoints, so their part is re-rendered whole when
//! an update can reach it (a host endpoint, a policy that selects or selected one, one of
//! their profiles, a tier) and written as the difference.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use super::describe::{ChainNames, ChainOwner};
use super::failsafe::failsafe_sets;
use super::host_chains::{
    base_chains, endpoint_rules, host_policy_chain, host_profile_chain, tier_chain, tier_rules,
    HostPath, HostTier, PathTargets,
};
use super::shared_chains::Listed;
use super::staged::{marks_to_clear, staged_chain, tier_end};
use super::updates::rules_chain;
use super::{flow_log, Compiler};
use crate::dataplane::ir::{Chain, Ruleset, Set, Verdict};
use crate::dataplane::InterfaceAddresses;
use crate::eval::{tiers_on_path_with, EndpointView};
use crate::model::{Action, HostEndpoint, Model, Policy, PolicyKey, PolicyType, Tier, TierAction};

/// What the host-endpoint part rendered last, and whether it must render again.
#[derive(Clone, Debug, Default)]
pub(super) struct HostEndpoints {
    /// Chains it rendered (base chains excluded).
    chains: BTreeSet<String>,
    /// Sets it rendered (the failsafe entries' networks).
    sets: BTreeSet<String>,
    /// Map elements it put, as `(map, interface)`.
    elements: BTreeSet<(String, String)>,
    /// Policies that applied to a local host endpoint.
    policies: BTreeSet<PolicyKey>,
    /// Profiles of local host endpoints.
    profiles: BTreeSet<String>,
    /// Whether this node had a host endpoint.
    any: bool,
    /// Host endpoints ignored on an interface another one governs (warned about once).
    shadowed: BTreeSet<(String, String, String)>,
    /// The host endpoints programmed on some interface.
    endpoints: BTreeSet<String>,
    /// The host's interfaces and their addresses (see [`Compiler::set_interface_addresses`]).
    addrs: InterfaceAddresses,
    /// Whether a local host endpoint named no interface at the last render (the interfaces
    /// it governs follow `addrs`).
    by_address: bool,
    /// Whether an update reached the part since it was last rendered.
    pub(super) staged: bool,
}

/// This node's host endpoints as they are programmed, resolved as Felix's endpoint manager
/// does (`resolveHostEndpoints`): an interface is governed by the first by name of the
/// endpoints that name it or, naming no interface, expect one of its addresses (a name
/// match has no precedence over an address match); `*` by the first by name of those
/// naming `*`, on the interfaces no other endpoint governs.
struct LocalHosts<'m> {
    /// By interface (`*` for all interfaces).
    by_iface: BTreeMap<String, &'m HostEndpoint>,
    /// Those not programmed on an interface because an earlier one by name governs it, as
    /// `(interface, programmed, ignored)`.
    shadowed: BTreeSet<(String, String, String)>,
    /// Whether some local endpoint names no interface (its interfaces follow addresses).
    by_address: bool,
}

impl<'m> LocalHosts<'m> {
    /// `ep` governs `iface` unless an endpoint before it by name does.
    fn claim(&mut self, iface: &str, ep: &'m HostEndpoint) {
        match self.by_iface.get(iface) {
            Some(first) => {
                let conflict = (iface.to_string(), first.name.clone(), ep.name.clone());
                self.shadowed.insert(conflict);
            }
            None => {
                self.by_iface.insert(iface.to_string(), ep);
            }
        }
    }
}

/// The interfaces of `addrs` holding one of `ep`'s expected addresses, but workloads'
/// (`is_workload`; Felix ignores the addresses of workload interfaces).
fn interfaces_expecting<'a>(
    ep: &'a HostEndpoint,
    addrs: &'a InterfaceAddresses,
    is_workload: &'a dyn Fn(&str) -> bool,
) -> impl Iterator<Item = &'a String> + 'a {
    addrs.iter().filter_map(move |(iface, held)| {
        let expected = ep.expected_ips.iter().any(|ip| held.contains(ip));
        (expected && !is_workload(iface)).then_some(iface)
    })
}

/// This node's host endpoints on the interfaces holding `addrs`; `is_workload` tells a
/// local workload's interface.
fn local_endpoints<'m>(
    model: &'m Model,
    node: &str,
    addrs: &InterfaceAddresses,
    is_workload: &dyn Fn(&str) -> bool,
) -> LocalHosts<'m> {
    let mut local = LocalHosts {
        by_iface: BTreeMap::new(),
        shadowed: BTreeSet::new(),
        by_address: false,
    };
    // By name: the first claim of an interface is the one that holds.
    for ep in model.host_endpoints.values().filter(|ep| ep.node == node) {
        match &ep.interface_name {
            Some(iface) => local.claim(iface, ep),
            None => {
                local.by_address = true;
                for iface in interfaces_expecting(ep, addrs, is_workload) {
                    local.claim(iface, ep);
                }
            }
        }
    }
    local
}

/// Whether `iface` is the interface of one of `node`'s workload endpoints in `model`.
fn is_workload_interface(model: &Model, node: &str, iface: &str) -> bool {
    model
        .workload_endpoints
        .values()
        .any(|ep| ep.node == node && ep.interface_name == iface)
}

/// Everything the part renders.
#[derive(Default)]
struct Rendered {
    chains: BTreeMap<String, Chain>,
    sets: BTreeMap<String, Set>,
    elements: BTreeMap<(String, String), Verdict>,
    policies: BTreeSet<PolicyKey>,
    profiles: BTreeSet<String>,
    wildcard: Vec<HostPath>,
    /// Whether some endpoint has an untracked-policy chain.
    untracked: bool,
}

impl HostEndpoints {
    /// Whether a change of `policy` (its new version; `None` when removed) can reach the
    /// local host endpoints.
    pub(super) fn policy_reaches(
        &self,
        model: &Model,
        key: &PolicyKey,
        policy: Option<&Policy>,
    ) -> bool {
        if self.staged || self.policies.contains(key) {
            return true;
        }
        // No host endpoint changed since the last render (else `staged`): with none here
        // then, none now, and the model's host endpoints of other nodes need no scan.
        if !self.any {
            return false;
        }
        let Some(p) = policy.filter(|p| p.namespace.is_none()) else {
            return false;
        };
        self.programmed(model)
            .any(|ep| EndpointView::host(model, ep).is_selected_by(p))
    }

    /// Whether a change of the profile `name` can reach the local host endpoints.
    pub(super) fn profile_reaches(&self, model: &Model, name: &str) -> bool {
        self.staged
            || self.profiles.contains(name)
            || self.any
                && self
                    .programmed(model)
                    .any(|ep| ep.profiles.iter().any(|p| p == name))
    }

    /// The host endpoints programmed at the last render (those of the model now: when one
    /// changed since, the part is staged).
    fn programmed<'m>(&'m self, model: &'m Model) -> impl Iterator<Item = &'m HostEndpoint> {
        self.endpoints
            .iter()
            .filter_map(|name| model.host_endpoints.get(name))
    }

    /// A local workload's interface `iface` came or went: the part renders again if that
    /// can change which interfaces a host endpoint governs by address (Felix ignores the
    /// addresses of workload interfaces).
    pub(super) fn workload_interface_changed(&mut self, iface: &str) {
        if self.by_address && self.addrs.contains_key(iface) {
            self.staged = true;
        }
    }

    /// Whether this node had a host endpoint at the last render.
    pub(super) fn any(&self) -> bool {
        self.any
    }
}

impl Compiler {
    /// Tells the compiler the host's interfaces and the addresses each holds (the FIB
    /// backend's [`crate::dataplane::FibBackend::interface_addresses`]): a host endpoint
    /// naming no interface governs those holding one of its `expectedIPs`. Renders the
    /// host-endpoint part again when that can change what it holds.
    pub fn set_interface_addresses(&mut self, model: &Model, addrs: InterfaceAddresses) {
        if self.hosts.addrs == addrs {
            return;
        }
        self.hosts.addrs = addrs;
        if self.hosts.by_address {
            self.hosts.staged = true;
        }
        self.render_staged(model);
    }

    /// The interface addresses the compiler resolves host endpoints with.
    pub fn interface_addresses(&self) -> &InterfaceAddresses {
        &self.hosts.addrs
    }

    /// Re-renders the host-endpoint part and the base chains, writing what changed.
    pub(super) fn render_hosts(&mut self, model: &Model) {
        let is_workload = |iface: &str| self.local.owner(iface).is_some();
        let local = local_endpoints(model, &self.config.node, &self.hosts.addrs, &is_workload);
        let r = self.host_part(model, &local.by_iface);
        let host = &self.config.host;
        let flow_logs = self.config.flow_logs.as_ref();
        let priority = self.config.forward_priority;
        let bases = base_chains(host, priority, &r.wildcard, r.untracked, flow_logs);
        for (name, chain) in bases {
            let exists = self.journal.ruleset().chains.contains_key(name);
            if chain.is_some() || exists {
                self.journal.put_chain(name, chain);
            }
        }
        // Sets first: the chains use them.
        let old_sets = std::mem::take(&mut self.hosts.sets);
        for (name, set) in r.sets {
            if self.journal.ruleset().sets.get(&name) != Some(&set) {
                self.journal.put_set(&name, Some(set));
            }
            self.hosts.sets.insert(name);
        }
        let old_chains = std::mem::take(&mut self.hosts.chains);
        for name in old_chains.iter().filter(|n| !r.chains.contains_key(*n)) {
            self.journal.put_chain(name, None);
        }
        for (name, chain) in r.chains {
            self.journal.put_chain(&name, Some(chain));
            self.hosts.chains.insert(name);
        }
        let old_elements = std::mem::take(&mut self.hosts.elements);
        for (map, iface) in old_elements.iter() {
            if !r.elements.contains_key(&(map.clone(), iface.clone())) {
                self.journal.map_element(map, iface, None);
            }
        }
        for name in old_sets.difference(&self.hosts.sets) {
            self.journal.put_set(name, None);
        }
        for ((map, iface), verdict) in r.elements {
            let current = self.journal.ruleset().maps.get(&map);
            if current.and_then(|m| m.elements.get(&iface)) != Some(&verdict) {
                self.journal.map_element(&map, &iface, Some(verdict));
            }
            self.hosts.elements.insert((map, iface));
        }
        self.hosts.any = !local.by_iface.is_empty();
        self.hosts.by_address = local.by_address;
        self.hosts.endpoints = local.by_iface.values().map(|ep| ep.name.clone()).collect();
        for (iface, programmed, ignored) in local.shadowed.difference(&self.hosts.shadowed) {
            warn!(
                interface = %iface,
                programmed = %programmed,
                ignored = %ignored,
                "two host endpoints match one interface (by interfaceName or expectedIPs); \
                 only the first by name is programmed there"
            );
        }
        self.hosts.shadowed = local.shadowed;
        self.hosts.policies = r.policies;
        self.hosts.profiles = r.profiles;
        self.hosts.staged = false;
    }

    /// What the host-endpoint part is for `model`, whose local host endpoints are
    /// `endpoints` (by interface).
    fn host_part(&self, model: &Model, endpoints: &BTreeMap<String, &HostEndpoint>) -> Rendered {
        let mut r = Rendered::default();
        if !endpoints.is_empty() {
            r.sets = failsafe_sets(&self.config.host);
        }
        let wildcard_exists = endpoints.contains_key("*");
        for (iface, ep) in endpoints {
            let view = EndpointView::host(model, ep);
            for path in HostPath::ALL {
                let rendered = self.render_path(model, &view, path, iface, &mut r);
                r.untracked |= rendered && path.is_untracked();
                let (map, _) = path.map();
                if iface == "*" {
                    if rendered {
                        r.wildcard.push(path);
                    }
                    continue;
                }
                let verdict = if rendered {
                    Verdict::Goto(path.chain(iface))
                } else {
                    path.skip()
                };
                r.elements.insert((map.to_string(), iface.clone()), verdict);
            }
        }
        if wildcard_exists && !endpoints.contains_key("lo") {
            // The all-interfaces endpoint leaves the host's loopback traffic alone.
            for path in [
                HostPath::In,
                HostPath::Out,
                HostPath::PreDnat,
                HostPath::UntrackedIn,
                HostPath::UntrackedOut,
            ] {
                r.elements
                    .insert((path.map().0.to_string(), "lo".into()), Verdict::Accept);
            }
        }
        r
    }

    /// Renders one host endpoint's chain on `path` (with its tier, policy and profile
    /// chains) into `r`; `false` when it has none (no policy of the path applies, on a
    /// path that is not the host's own traffic).
    fn render_path(
        &self,
        model: &Model,
        view: &EndpointView,
        path: HostPath,
        iface: &str,
        r: &mut Rendered,
    ) -> bool {
        // With flow logs, the staged policies too ([`super::staged`]).
        let flow_logs = self.config.flow_logs.as_ref();
        let tiers = tiers_on_path_with(model, view, path, flow_logs.is_some());
        if tiers.is_empty() && !path.is_local() {
            return false;
        }
        let mut tier_chains = Vec::new();
        let mut first_staged = true;
        for (tier, policies) in &tiers {
            let t = self.host_tier(tier, policies, path, r);
            let clear = marks_to_clear(flow_logs, &t.policies, first_staged);
            first_staged &= !t.policies.iter().any(|p| p.staged);
            let name = tier_chain(path, iface, &t.tier);
            let chain = tier_rules(&t, &self.config.host, self.config.pass_mark);
            r.chains
                .insert(name.clone(), self.with_drop_logs(&name, path, chain));
            tier_chains.push((name, clear));
        }
        let dir = path.direction();
        let mut profiles = Vec::new();
        if path.is_local() {
            for name in view.profiles.iter() {
                let Some(profile) = model.profiles.get(name) else {
                    continue;
                };
                let chain_name = host_profile_chain(name, dir);
                if !r.chains.contains_key(&chain_name) {
                    let label = format!("profile {name}");
                    let kind = (label.as_str(), false, HostLogs::Referenced);
                    let rules = profile.rules(dir);
                    let chain = self.host_rules_chain(&chain_name, rules, kind);
                    r.chains.insert(chain_name.clone(), chain);
                }
                profiles.push(chain_name);
                r.profiles.insert(name.clone());
            }
        }
        let targets = PathTargets {
            tiers: &tier_chains,
            profiles: &profiles,
            enforced: tiers.iter().flat_map(|(_, ps)| ps).any(|p| !p.is_staged()),
        };
        let chain = endpoint_rules(path, &self.config.host, self.config.pass_mark, &targets);
        let name = path.chain(iface);
        r.chains
            .insert(name.clone(), self.with_drop_logs(&name, path, chain));
        true
    }

    /// One tier of a path: its policies' chains rendered into `r` (a staged policy's as
    /// [`super::staged`] lays it out) and how the tier ends.
    fn host_tier(
        &self,
        tier: &Tier,
        policies: &[&Policy],
        path: HostPath,
        r: &mut Rendered,
    ) -> HostTier {
        let dir = path.direction();
        let mut entries = Vec::new();
        for p in policies {
            let key = (p.namespace.clone(), p.name.clone());
            let name = host_policy_chain(&key, dir);
            if !r.chains.contains_key(&name) {
                let chain = match self.config.flow_logs.as_ref().filter(|_| p.is_staged()) {
                    // The sets its rules use are the policy's own, as below.
                    Some(cfg) => staged_chain(&name, p.rules(dir), None, cfg, &mut Vec::new()),
                    None => {
                        let label = crate::calc::effective::policy_name(p);
                        let logs = if p.do_not_track {
                            HostLogs::Off
                        } else if p.pre_dnat {
                            HostLogs::Logged
                        } else {
                            HostLogs::Referenced
                        };
                        let kind = (label.as_str(), true, logs);
                        self.host_rules_chain(&name, p.rules(dir), kind)
                    }
                };
                r.chains.insert(name.clone(), chain);
            }
            entries.push(Listed {
                chain: name,
                may_pass: p.rules(dir).iter().any(|rule| rule.action == Action::Pass),
                staged: p.is_staged(),
            });
            r.policies.insert(key);
        }
        // Untracked and pre-DNAT policy have no end-of-tier drop.
        let deny = tier.default_action == TierAction::Deny && !path.is_early();
        let enforced = entries.iter().any(|p| !p.staged);
        let staged_end = match self.config.flow_logs.as_ref() {
            Some(cfg) if deny && !enforced => {
                let staged: Vec<&str> = entries.iter().map(|p| p.chain.as_str()).collect();
                tier_end(cfg, &staged)
            }
            _ => Vec::new(),
        };
        HostTier {
            tier: tier.name.clone(),
            policies: entries,
            deny: deny && enforced,
            staged_end,
        }
    }

    /// A policy's or profile's rules (chain `name`) as host chains call them: Allow sets
    /// the allowed mark and returns. With flow logs on, they report their verdicts as
    /// `logs` says.
    fn host_rules_chain(
        &self,
        name: &str,
        rules: &[crate::model::Rule],
        (label, is_policy, logs): (&str, bool, HostLogs),
    ) -> Chain {
        let verdicts = self.verdicts(PolicyType::Ingress, is_policy, label, true);
        let allows = match logs {
            HostLogs::Off => None,
            HostLogs::Logged => Some(flow_log::AllowLogs::Logged),
            HostLogs::Referenced => Some(flow_log::AllowLogs::Referenced),
        };
        let flow_logs = self.config.flow_logs.as_ref().zip(allows);
        // The sets these rules use are the policy's or profile's own (its owner keeps them
        // while it exists).
        let mut sets = Vec::new();
        rules_chain(name, rules, None, &verdicts, flow_logs, &mut sets)
    }

    /// `chain` with flow-log rules before its drops, when flow logs are on (and the path
    /// is not untracked).
    fn with_drop_logs(&self, name: &str, path: HostPath, chain: Chain) -> Chain {
        match self.config.flow_logs.filter(|_| !path.is_untracked()) {
            Some(cfg) => Chain {
                base: None,
                rules: flow_log::chain_drops(&cfg, name, chain.rules),
            },
            None => chain,
        }
    }
}

/// Names the host-endpoint part's chains of `ruleset` as [`super::describe`] does the rest;
/// `addrs` are the interface addresses the ruleset was compiled with.
pub(super) fn describe_hosts(
    model: &Model,
    node: &str,
    addrs: &InterfaceAddresses,
    ruleset: &Ruleset,
    names: &mut ChainNames,
) {
    names.add_policies_and_profiles(model, ruleset, host_policy_chain, host_profile_chain);
    let is_workload = |iface: &str| is_workload_interface(model, node, iface);
    for (iface, ep) in local_endpoints(model, node, addrs, &is_workload).by_iface {
        let view = EndpointView::host(model, ep);
        for path in HostPath::ALL {
            for (tier, policies) in tiers_on_path_with(model, &view, path, true) {
                // A staged policy is in the tier when the ruleset holds its chain (it was
                // compiled with flow logs).
                let rendered = |p: &&Policy| {
                    let key = (p.namespace.clone(), p.name.clone());
                    !p.is_staged()
                        || ruleset
                            .chains
                            .contains_key(&host_policy_chain(&key, path.direction()))
                };
                let owner = ChainOwner::PolicyList {
                    tier: tier.name.clone(),
                    policies: policies
                        .into_iter()
                        .filter(rendered)
                        .map(crate::calc::effective::policy_name)
                        .collect(),
                    direction: path.direction(),
                };
                names.add_other_chain(ruleset, tier_chain(path, &iface, &tier.name), owner);
            }
            let owner = ChainOwner::HostEndpoint {
                endpoint: ep.name.clone(),
                interface: iface.clone(),
                path,
            };
            names.add_other_chain(ruleset, path.chain(&iface), owner);
        }
    }
}

/// How a host chain's rules report their verdicts with flow logs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostLogs {
    /// Not at all: untracked policy's (every packet of an untracked flow reaches its
    /// rules, there is no first packet to log once).
    Off,
    /// Allows log in their own rules: pre-DNAT policy's, evaluated before the translation
    /// the shared first-packet rules would see.
    Logged,
    /// Allows name themselves, as the workloads' do ([`flow_log::AllowLogs::Referenced`]).
    Referenced,
}
