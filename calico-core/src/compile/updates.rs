//! What each kind of update recomputes: a policy's or profile's chains and sets, an
//! endpoint's set memberships and policies, and the chains of the local interfaces they
//! reach. Ties the compiler's parts together; reads the model it is handed.
//!
//! An update's own objects (its chains, sets and memberships) change at once; the local
//! interfaces it reaches are only staged, and re-rendered once each by
//! [`Compiler::render_interface`] when the group of updates ends: an interface's chains
//! (and the policy-list chain of all its policies) cost what the result holds, not what
//! each update of a large group would rewrite.

use std::collections::BTreeSet;

use super::endpoint_chains::{
    direction_inputs, endpoint_rules, own_addresses, spoof_allowed, TierJump, TierSection,
};
use super::flow_log;
use super::names::{endpoint_chain, policy_chain, profile_chain};
use super::rules::{compile_rule, SetSpec, Verdicts};
use super::set_members::{EndpointKey, SetOwner};
use super::shared_chains::{policy_list_chain, profile_list_chain};
use super::staged::{marks_to_clear, staged_chain};
use super::{
    Compiler, EGRESS_ALLOWED_CHAIN, FROM_WORKLOAD_MAP, TO_WORKLOAD_MAP, WORKLOAD_IFACES_MAP,
    WORKLOAD_TO_HOST_CHAIN, WORKLOAD_TO_HOST_MAP,
};
use crate::calc::effective;
use crate::dataplane::ir::{Chain, Match, Statement, Verdict};
use crate::model::{
    policy_order, tier_order, Model, Policy, PolicyKey, PolicyType, StagedAction, Tier,
    WorkloadEndpointId,
};

/// The chain `name` of `rules` (of a policy in `namespace`, `None` for global policies and
/// profiles) with `verdicts`, with flow-log rules when `flow_logs` (its allows reported as
/// it says); the sets the rules use are added to `specs`.
pub(super) fn rules_chain(
    name: &str,
    rules: &[crate::model::Rule],
    namespace: Option<&str>,
    verdicts: &Verdicts,
    flow_logs: Option<(&super::FlowLogConfig, flow_log::AllowLogs)>,
    specs: &mut Vec<SetSpec>,
) -> Chain {
    let mut chain = Chain::default();
    for (i, rule) in rules.iter().enumerate() {
        let (mut ir, sets) = compile_rule(rule, namespace, verdicts);
        if let Some((cfg, allows)) = flow_logs {
            ir = flow_log::user_rule(cfg, name, i, rule.action, ir, allows);
        }
        chain.rules.extend(ir);
        specs.extend(sets);
    }
    chain
}

impl Compiler {
    /// What a policy's (`is_policy`) or profile's actions compile to in `dir`: Allow
    /// accepts (ingress) or goes on to `eg-allowed` (egress), or, for the chains host
    /// endpoints call (`host`), sets the allowed mark and returns.
    pub(super) fn verdicts(
        &self,
        dir: PolicyType,
        is_policy: bool,
        label: &str,
        host: bool,
    ) -> Verdicts {
        let allow = match (host, dir) {
            (true, _) => (
                vec![Statement::SetMark(self.config.host.accept_mark)],
                Verdict::Return,
            ),
            (false, PolicyType::Ingress) => (vec![], Verdict::Accept),
            (false, PolicyType::Egress) => (vec![], Verdict::Goto(EGRESS_ALLOWED_CHAIN.into())),
        };
        let pass = if is_policy {
            (
                vec![Statement::SetMark(self.config.pass_mark)],
                Verdict::Return,
            )
        } else {
            (vec![], Verdict::Return)
        };
        Verdicts {
            allow,
            pass,
            log_prefix: format!("calico {label} "),
        }
    }

    /// Compiles a policy's or profile's rules for one direction, into the chain `name`.
    #[allow(clippy::too_many_arguments)]
    fn compile_rules(
        &self,
        name: &str,
        rules: &[crate::model::Rule],
        namespace: Option<&str>,
        dir: PolicyType,
        is_policy: bool,
        label: &str,
        specs: &mut Vec<SetSpec>,
    ) -> Chain {
        let verdicts = self.verdicts(dir, is_policy, label, false);
        let flow_logs = self.config.flow_logs.as_ref();
        let flow_logs = flow_logs.map(|cfg| (cfg, flow_log::AllowLogs::Referenced));
        rules_chain(name, rules, namespace, &verdicts, flow_logs, specs)
    }

    /// Whether a policy gets chains: an enforced one always; a staged `Set` one with flow
    /// logs, which report what it would deny ([`super::staged`]).
    pub(super) fn renders(&self, p: &Policy) -> bool {
        match p.staged_action {
            None => true,
            Some(StagedAction::Set) => self.config.flow_logs.is_some(),
            Some(StagedAction::Delete) => false,
        }
    }

    /// A policy was added, changed or removed: its chains, its sets, the endpoints it
    /// applies to.
    pub(super) fn policy_changed(&mut self, model: &Model, key: &PolicyKey) {
        let before: BTreeSet<WorkloadEndpointId> =
            self.local.applied_to(key).cloned().unwrap_or_default();
        let policy = model.policies.get(key);
        if let Some(p) = policy.filter(|p| p.is_staged() && !self.renders(p)) {
            warn_not_rendered(p);
        }
        let policy = policy.filter(|p| self.renders(p));
        let mut specs = Vec::new();
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            let name = policy_chain(key, dir);
            let chain = policy.filter(|p| p.governs(dir)).map(|p| {
                let ns = p.namespace.as_deref();
                match (p.is_staged(), &self.config.flow_logs) {
                    (true, Some(cfg)) => staged_chain(&name, p.rules(dir), ns, cfg, &mut specs),
                    _ => self.compile_rules(
                        &name,
                        p.rules(dir),
                        ns,
                        dir,
                        true,
                        &effective::policy_name(p),
                        &mut specs,
                    ),
                }
            });
            self.journal.put_chain(&name, chain);
        }
        specs.sort();
        specs.dedup();
        let owner = SetOwner::Policy(key.clone());
        self.sets
            .set_owner_sets(&mut self.journal, owner, policy.map(|_| specs));
        self.local.set_policy(key, policy);
        let after = self.local.applied_to(key).cloned().unwrap_or_default();
        let ifaces: BTreeSet<&str> = before
            .union(&after)
            .filter_map(|id| model.workload_endpoints.get(id))
            .map(|ep| ep.interface_name.as_str())
            .collect();
        for iface in ifaces {
            self.staged.insert(iface.to_string());
        }
    }

    /// A profile was added, changed or removed: its chains and sets, and, when the labels
    /// it gives changed, the endpoints that inherit them.
    pub(super) fn profile_changed(&mut self, model: &Model, name: &str, labels_changed: bool) {
        let profile = model.profiles.get(name);
        let mut specs = Vec::new();
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            let chain_name = profile_chain(name, dir);
            let chain = profile.map(|p| {
                self.compile_rules(
                    &chain_name,
                    p.rules(dir),
                    None,
                    dir,
                    false,
                    &format!("profile {name}"),
                    &mut specs,
                )
            });
            self.journal.put_chain(&chain_name, chain);
        }
        specs.sort();
        specs.dedup();
        let owner = SetOwner::Profile(name.to_string());
        self.sets
            .set_owner_sets(&mut self.journal, owner, profile.map(|_| specs));
        let uses_profile = |profiles: &[String]| profiles.iter().any(|p| p == name);
        // Endpoints inherit the profile's labels: re-read those that name it.
        if labels_changed {
            for ep in model.workload_endpoints.values() {
                if uses_profile(&ep.profiles) {
                    self.workload_changed(model, &ep.id, Some(ep.interface_name.clone()));
                }
            }
            for ep in model.host_endpoints.values() {
                if uses_profile(&ep.profiles) {
                    let key = EndpointKey::Host(ep.name.clone());
                    self.sets.refresh_endpoint(&mut self.journal, model, key);
                }
            }
            // Namespaced network sets inherit their `kns.<namespace>` profile's labels.
            let namespace = name.strip_prefix("kns.");
            let sets = model
                .network_sets
                .keys()
                .filter(|(ns, _)| namespace.is_some() && ns.as_deref() == namespace);
            for key in sets {
                let key = EndpointKey::NetworkSet(key.clone());
                self.sets.refresh_endpoint(&mut self.journal, model, key);
            }
        }
        // Endpoint chains jump only to profiles that exist: re-render local users.
        let ifaces: BTreeSet<&str> = model
            .workload_endpoints
            .values()
            .filter(|ep| ep.node == self.config.node && uses_profile(&ep.profiles))
            .map(|ep| ep.interface_name.as_str())
            .collect();
        for iface in ifaces {
            self.staged.insert(iface.to_string());
        }
    }

    /// A workload endpoint (any node) was added, changed or removed; `old_iface` is the
    /// interface of its previous version.
    pub(super) fn workload_changed(
        &mut self,
        model: &Model,
        id: &WorkloadEndpointId,
        old_iface: Option<String>,
    ) {
        let key = EndpointKey::Workload(id.clone());
        self.sets.refresh_endpoint(&mut self.journal, model, key);
        // Local endpoints: their labels (for policy selection) and interface.
        let local_ep = model
            .workload_endpoints
            .get(id)
            .filter(|ep| ep.node == self.config.node);
        let local = local_ep.map(|ep| {
            (
                effective::workload_labels(model, ep),
                ep.interface_name.as_str(),
            )
        });
        self.local.endpoint_changed(id, old_iface.as_deref(), local);
        let mut ifaces: BTreeSet<&str> = old_iface.as_deref().into_iter().collect();
        ifaces.extend(local_ep.map(|ep| ep.interface_name.as_str()));
        for iface in ifaces {
            self.hosts.workload_interface_changed(iface);
            self.staged.insert(iface.to_string());
        }
    }

    /// Re-renders the chains, own-address sets and map entries of one local interface.
    pub(super) fn render_interface(&mut self, model: &Model, iface: &str) {
        let owner = self
            .local
            .owner(iface)
            .and_then(|id| model.workload_endpoints.get(id));
        let old_shared = self.shared.take(iface);
        let Some(ep) = owner else {
            self.remove_interface(iface, old_shared);
            return;
        };
        let mut spoof_checks: [Vec<Match>; 2] = [Vec::new(), Vec::new()];
        for v4 in [true, false] {
            let own = own_addresses(ep, iface, v4);
            self.keep_set(&own.set_name, own.set);
            let checks = &mut spoof_checks[usize::from(v4)];
            checks.extend(own.check);
            let (name, allowed) = spoof_allowed(ep, iface, v4);
            let allowed = allowed.filter(|_| self.config.workload_source_spoofing);
            let (set, check) = allowed.unzip();
            self.keep_set(&name, set);
            checks.extend(check);
        }
        // Held policies (their tier does not exist) apply nowhere.
        let tiers: Vec<(Tier, &Policy)> = self
            .local
            .policies_of(&ep.id)
            .filter_map(|k| model.policies.get(k))
            .filter(|p| self.renders(p))
            .filter_map(|p| model.tier(&p.tier).map(|t| (t, p)))
            .collect();
        let mut policies: Vec<(&Tier, &Policy)> = tiers.iter().map(|(t, p)| (t, *p)).collect();
        policies.sort_by(|a, b| tier_order(a.0, b.0).then_with(|| policy_order(a.1, b.1)));
        #[cfg(test)]
        {
            self.rendered += policies.len() + 1;
        }
        let flow_logs = self.config.flow_logs;
        // Shared chains are taken before the old ones are let go, so that a chain both
        // versions use stays put.
        let mut shared = Vec::new();
        for inputs in direction_inputs(model, ep, &policies) {
            let dir = inputs.dir;
            let after_policies = if inputs.profiles.is_empty() {
                Verdict::Drop
            } else {
                let list = profile_list_chain(&inputs.profiles, dir, flow_logs.as_ref());
                let name = self.shared.acquire(&mut self.journal, list, iface);
                shared.push(name.clone());
                Verdict::Goto(name)
            };
            let mut first_staged = true;
            let mut jumps: Vec<TierJump> = Vec::with_capacity(inputs.tiers.len());
            for t in &inputs.tiers {
                jumps.push(self.tier_jump(t, dir, iface, &mut shared, first_staged));
                first_staged &= !t.policies.iter().any(|p| p.staged);
            }
            let spoofed = flow_log::spoofed_verdict(flow_logs.as_ref());
            let mut rules = endpoint_rules(dir, &spoof_checks, &spoofed, &jumps, after_policies);
            let chain = endpoint_chain(iface, dir);
            if let Some(cfg) = &flow_logs {
                rules = flow_log::chain_drops(cfg, &chain, rules);
            }
            self.journal
                .put_chain(&chain, Some(Chain { base: None, rules }));
        }
        self.shared.release(&mut self.journal, old_shared);
        self.shared.record(iface, shared);
        let from = Verdict::Goto(endpoint_chain(iface, PolicyType::Egress));
        let to = Verdict::Goto(endpoint_chain(iface, PolicyType::Ingress));
        let current = self
            .journal
            .ruleset()
            .maps
            .get(FROM_WORKLOAD_MAP)
            .and_then(|m| m.elements.get(iface));
        if current != Some(&from) {
            self.journal
                .map_element(FROM_WORKLOAD_MAP, iface, Some(from));
            self.journal.map_element(TO_WORKLOAD_MAP, iface, Some(to));
            self.journal
                .map_element(WORKLOAD_IFACES_MAP, iface, Some(Verdict::Accept));
            let to_host = Verdict::Goto(WORKLOAD_TO_HOST_CHAIN.into());
            self.journal
                .map_element(WORKLOAD_TO_HOST_MAP, iface, Some(to_host));
        }
    }

    /// Puts `set` under `name` when it differs from what is there, or deletes the set
    /// `name` when `set` is `None` and it exists.
    fn keep_set(&mut self, name: &str, set: Option<crate::dataplane::ir::Set>) {
        let current = self.journal.ruleset().sets.get(name);
        match set {
            None if current.is_some() => self.journal.put_set(name, None),
            Some(set) if current != Some(&set) => self.journal.put_set(name, Some(set)),
            _ => {}
        }
    }

    /// How `iface`'s chain in `dir` applies one tier: the only policy's chain directly when
    /// it cannot Pass and is not staged, else the tier's shared list chain (acquired, and
    /// recorded in `shared`). `first_staged`: no earlier tier of the chain has staged
    /// policies (the staged evaluation starts here, its marks cleared).
    fn tier_jump(
        &mut self,
        t: &TierSection,
        dir: PolicyType,
        iface: &str,
        shared: &mut Vec<String>,
        first_staged: bool,
    ) -> TierJump {
        let any_pass = t.policies.iter().any(|p| p.may_pass && !p.staged);
        let enforced = t.policies.iter().any(|p| !p.staged);
        let pass = if any_pass { self.config.pass_mark } else { 0 };
        let flow_logs = self.config.flow_logs.as_ref();
        let clear = pass | marks_to_clear(flow_logs, &t.policies, first_staged);
        if let [only] = t.policies.as_slice() {
            if !only.may_pass && !only.staged {
                return TierJump {
                    target: only.chain.clone(),
                    clear,
                    drop_after: t.deny,
                    ends: t.deny,
                };
            }
        }
        let mark = self.config.pass_mark;
        let list = policy_list_chain(&t.policies, t.deny, dir, mark, flow_logs);
        let name = self.shared.acquire(&mut self.journal, list, iface);
        shared.push(name.clone());
        TierJump {
            target: name,
            clear,
            drop_after: false,
            ends: t.deny && !any_pass && enforced,
        }
    }

    /// A tier was added, changed or removed: the local interfaces with policies in it are
    /// re-rendered (its order and default action shape their chains; its policies are held
    /// while it does not exist).
    pub(super) fn tier_changed(&mut self, model: &Model, name: &str) {
        let mut ifaces = BTreeSet::new();
        for (key, p) in &model.policies {
            if p.tier != name {
                continue;
            }
            for id in self.local.applied_to(key).into_iter().flatten() {
                if let Some(ep) = model.workload_endpoints.get(id) {
                    ifaces.insert(ep.interface_name.clone());
                }
            }
        }
        self.staged.extend(ifaces);
    }

    /// No local endpoint owns `iface` (any more): its chains, sets and map entries go.
    fn remove_interface(&mut self, iface: &str, old_shared: Vec<String>) {
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            self.journal.put_chain(&endpoint_chain(iface, dir), None);
        }
        self.shared.release(&mut self.journal, old_shared);
        for v4 in [true, false] {
            self.keep_set(&super::names::own_address_set(iface, v4), None);
            self.keep_set(&super::names::spoof_allowed_set(iface, v4), None);
        }
        let mapped = self
            .journal
            .ruleset()
            .maps
            .get(FROM_WORKLOAD_MAP)
            .is_some_and(|m| m.elements.contains_key(iface));
        if mapped {
            for map in [
                FROM_WORKLOAD_MAP,
                TO_WORKLOAD_MAP,
                WORKLOAD_IFACES_MAP,
                WORKLOAD_TO_HOST_MAP,
            ] {
                self.journal.map_element(map, iface, None);
            }
        }
    }
}

/// Says why the staged policy `p` has no chains: a staged `Set` with flow logs off, or a
/// staged deletion (whose effect is not previewed).
fn warn_not_rendered(p: &Policy) {
    let policy = effective::policy_name(p);
    match p.staged_action {
        Some(StagedAction::Set) => tracing::warn!(
            %policy,
            "staged policy not evaluated in the kernel: staged policies report what they \
             would deny through the flow logs, which are off (calico-agent --flow-logs)"
        ),
        Some(StagedAction::Delete) => tracing::warn!(
            %policy,
            "staged deletion loaded but not previewed: calico-rs reports what staged policies \
             (stagedAction Set) would deny, not what deleting a policy would change"
        ),
        None => {}
    }
}
