//! This node's host endpoints as the compiler sees them: which of their chains, tier
//! chains, policy and profile chains and map entries are rendered, and when to render them
//! again. A host has a handful of host endpoints, so their part is re-rendered whole when
//! an update can reach it (a host endpoint, a policy that selects or selected one, one of
//! their profiles, a tier) and written as the difference.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use super::describe::{ChainNames, ChainOwner};
use super::host_chains::{
    base_chains, endpoint_rules, host_policy_chain, host_profile_chain, tier_chain, tier_rules,
    HostPath, HostTier,
};
use super::updates::rules_chain;
use super::{flow_log, Compiler};
use crate::dataplane::ir::{Chain, Ruleset, Verdict};
use crate::eval::{tiers_on_path, EndpointView};
use crate::model::{Action, HostEndpoint, Model, Policy, PolicyKey, PolicyType, TierAction};

/// What the host-endpoint part rendered last, and whether it must render again.
#[derive(Clone, Debug, Default)]
pub(super) struct HostEndpoints {
    /// Chains it rendered (base chains excluded).
    chains: BTreeSet<String>,
    /// Map elements it put, as `(map, interface)`.
    elements: BTreeSet<(String, String)>,
    /// Policies that applied to a local host endpoint.
    policies: BTreeSet<PolicyKey>,
    /// Profiles of local host endpoints.
    profiles: BTreeSet<String>,
    /// Whether this node had a host endpoint.
    any: bool,
    /// Host endpoints ignored for naming an interface another one names (warned about once).
    shadowed: BTreeSet<(String, String, String)>,
    /// Whether an update reached the part since it was last rendered.
    pub(super) staged: bool,
}

/// This node's host endpoints as they are programmed.
struct LocalHosts<'m> {
    /// By interface (`*` for all interfaces): the first by name of those that name it; none
    /// without an interface name (Felix would find the interface by `expectedIPs`;
    /// calico-rs needs the name, and says so in the model's notes).
    by_iface: BTreeMap<String, &'m HostEndpoint>,
    /// Those not programmed because an earlier one names the same interface, as
    /// `(interface, programmed, ignored)`.
    shadowed: BTreeSet<(String, String, String)>,
}

fn local_endpoints<'m>(model: &'m Model, node: &str) -> LocalHosts<'m> {
    let mut local = LocalHosts {
        by_iface: BTreeMap::new(),
        shadowed: BTreeSet::new(),
    };
    for ep in model.host_endpoints.values().filter(|ep| ep.node == node) {
        let Some(iface) = &ep.interface_name else {
            continue;
        };
        match local.by_iface.get(iface) {
            Some(first) => {
                let conflict = (iface.clone(), first.name.clone(), ep.name.clone());
                local.shadowed.insert(conflict);
            }
            None => {
                local.by_iface.insert(iface.clone(), ep);
            }
        }
    }
    local
}

/// Everything the part renders.
#[derive(Default)]
struct Rendered {
    chains: BTreeMap<String, Chain>,
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
        node: &str,
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
        local_endpoints(model, node)
            .by_iface
            .values()
            .any(|ep| EndpointView::host(model, ep).is_selected_by(p))
    }

    /// Whether a change of the profile `name` can reach the local host endpoints.
    pub(super) fn profile_reaches(&self, model: &Model, node: &str, name: &str) -> bool {
        self.staged
            || self.profiles.contains(name)
            || self.any
                && local_endpoints(model, node)
                    .by_iface
                    .values()
                    .any(|ep| ep.profiles.iter().any(|p| p == name))
    }

    /// Whether this node had a host endpoint at the last render.
    pub(super) fn any(&self) -> bool {
        self.any
    }
}

impl Compiler {
    /// Re-renders the host-endpoint part and the base chains, writing what changed.
    pub(super) fn render_hosts(&mut self, model: &Model) {
        let local = local_endpoints(model, &self.config.node);
        let r = self.host_part(model, &local.by_iface);
        let host = &self.config.host;
        let bases = base_chains(host, self.config.forward_priority, &r.wildcard, r.untracked);
        for (name, chain) in bases {
            let exists = self.journal.ruleset().chains.contains_key(name);
            if chain.is_some() || exists {
                self.journal.put_chain(name, chain);
            }
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
        for ((map, iface), verdict) in r.elements {
            let current = self.journal.ruleset().maps.get(&map);
            if current.and_then(|m| m.elements.get(&iface)) != Some(&verdict) {
                self.journal.map_element(&map, &iface, Some(verdict));
            }
            self.hosts.elements.insert((map, iface));
        }
        self.hosts.any = !local.by_iface.is_empty();
        for (iface, programmed, ignored) in local.shadowed.difference(&self.hosts.shadowed) {
            warn!(
                interface = %iface,
                programmed = %programmed,
                ignored = %ignored,
                "two host endpoints name one interface; only the first is programmed"
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
        let dir = path.direction();
        let tiers = tiers_on_path(model, view, path);
        if tiers.is_empty() && !path.is_local() {
            return false;
        }
        let mut tier_chains = Vec::new();
        for (tier, policies) in &tiers {
            let mut entries = Vec::new();
            for p in policies {
                let key = (p.namespace.clone(), p.name.clone());
                let name = host_policy_chain(&key, dir);
                if !r.chains.contains_key(&name) {
                    let label = crate::calc::effective::policy_name(p);
                    let kind = (label.as_str(), true, p.do_not_track);
                    let chain = self.host_rules_chain(&name, p.rules(dir), kind);
                    r.chains.insert(name.clone(), chain);
                }
                let may_pass = p.rules(dir).iter().any(|rule| rule.action == Action::Pass);
                entries.push((name, may_pass));
                r.policies.insert(key);
            }
            let t = HostTier {
                tier: tier.name.clone(),
                policies: entries,
                // Untracked and pre-DNAT policy have no end-of-tier drop.
                deny: tier.default_action == TierAction::Deny && !path.is_early(),
            };
            let name = tier_chain(path, iface, &t.tier);
            let chain = tier_rules(&t, &self.config.host, self.config.pass_mark);
            r.chains
                .insert(name.clone(), self.with_drop_logs(&name, path, chain));
            tier_chains.push(name);
        }
        let mut profiles = Vec::new();
        if path.is_local() {
            for name in view.profiles.iter() {
                let Some(profile) = model.profiles.get(name) else {
                    continue;
                };
                let chain_name = host_profile_chain(name, dir);
                if !r.chains.contains_key(&chain_name) {
                    let label = format!("profile {name}");
                    let kind = (label.as_str(), false, false);
                    let chain = self.host_rules_chain(&chain_name, profile.rules(dir), kind);
                    r.chains.insert(chain_name.clone(), chain);
                }
                profiles.push(chain_name);
                r.profiles.insert(name.clone());
            }
        }
        let chain = endpoint_rules(
            path,
            &self.config.host,
            self.config.pass_mark,
            &tier_chains,
            &profiles,
        );
        let name = path.chain(iface);
        r.chains
            .insert(name.clone(), self.with_drop_logs(&name, path, chain));
        true
    }

    /// A policy's or profile's rules (chain `name`) as host chains call them: Allow sets
    /// the allowed mark and returns. With flow logs on, they report their verdicts as the
    /// workloads' do, except untracked policy's (`untracked`): every packet of an untracked
    /// flow reaches its rules, there is no first packet to log once.
    fn host_rules_chain(
        &self,
        name: &str,
        rules: &[crate::model::Rule],
        (label, is_policy, untracked): (&str, bool, bool),
    ) -> Chain {
        let verdicts = self.verdicts(PolicyType::Ingress, is_policy, label, true);
        let flow_logs = self.config.flow_logs.as_ref().filter(|_| !untracked);
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

/// Names the host-endpoint part's chains of `ruleset` as [`super::describe`] does the rest.
pub(super) fn describe_hosts(model: &Model, node: &str, ruleset: &Ruleset, names: &mut ChainNames) {
    names.add_policies_and_profiles(model, ruleset, host_policy_chain, host_profile_chain);
    for (iface, ep) in local_endpoints(model, node).by_iface {
        let view = EndpointView::host(model, ep);
        for path in HostPath::ALL {
            for (tier, policies) in tiers_on_path(model, &view, path) {
                let owner = ChainOwner::PolicyList {
                    tier: tier.name.clone(),
                    policies: policies
                        .into_iter()
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

#[cfg(test)]
mod tests {

    use crate::compile::{CompileConfig, Compiler};
    use crate::model::{parse_resources, Model};

    #[test]
    fn two_host_endpoints_on_one_interface_are_warned_about_once() {
        let hep = |name: &str| {
            format!("kind: HostEndpoint\nname: {name}\nnode: h1\ninterfaceName: eth0\n---\n")
        };
        let policy = |port: u16| {
            format!("kind: Policy\nname: p\nselector: all()\ningress: [{{action: Allow, protocol: TCP, destination: {{ports: [{port}]}}}}]\n")
        };
        let text = hep("a") + &hep("b") + &policy(80);
        let mut model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
        let text = crate::test_log::logged(|| {
            let mut c = Compiler::from_model(CompileConfig::new("h1"), &model);
            // Each policy change re-renders the host part; the conflict is not news.
            for port in [81, 82] {
                let r = parse_resources(&policy(port)).unwrap().remove(0);
                c.apply_updates(&mut model, [crate::model::Update::Upsert(r)]);
            }
        });
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{text}");
        assert!(warnings[0].contains("programmed=a") && warnings[0].contains("ignored=b"));
    }
}
