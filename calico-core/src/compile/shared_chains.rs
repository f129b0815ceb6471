//! Chains shared by every local endpoint with the same ordered policies of a tier (`pl-*`) or
//! the same profiles (`prl-*`), and their reference counts: a shared chain is created by its first
//! user and deleted with its last.

use std::collections::BTreeMap;

use tracing::warn;

use super::flow_log::{self, FlowLogConfig};
use super::journal::Journal;
use super::names::chain_name;
use crate::dataplane::ir::{Chain, Match, Rule, Verdict};
use crate::model::PolicyType;

/// One policy of a tier's list: its chain, whether it may Pass, whether it is staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listed {
    /// The policy's chain in the direction.
    pub(super) chain: String,
    /// Whether the policy has a `Pass` rule.
    pub(super) may_pass: bool,
    /// Whether the policy is staged ([`super::staged`]).
    pub(super) staged: bool,
}

/// Policy chains in order.
pub(super) type PolicyList = Vec<Listed>;

/// A chain several endpoints' chains may jump to.
pub(super) struct SharedChain {
    /// What it is (`pl-in`, `prl-eg`, ...).
    prefix: &'static str,
    /// Its name: the prefix and a hash of what it holds.
    name: String,
    /// Its rules.
    rules: Vec<Rule>,
}

/// The chain shared by every endpoint whose policies of one tier in `dir` are `policies`,
/// in order: a jump to each, returning early when an enforced one passed, and, for a tier
/// that denies by default (`deny`), a drop at the end (the end of the tier; logged with
/// `flow_logs`), or, when only staged policies are listed, the staged end of the tier
/// ([`super::staged::tier_end`]). Its name hashes the list and `deny`, so equal lists share
/// one chain and a different list gets another.
pub(super) fn policy_list_chain(
    policies: &[Listed],
    deny: bool,
    dir: PolicyType,
    mark: u32,
    flow_logs: Option<&FlowLogConfig>,
) -> SharedChain {
    let mut parts: Vec<&str> = Vec::with_capacity(policies.len() * 2 + 1);
    let mut rules = Vec::with_capacity(policies.len() * 2 + 1);
    for (i, p) in policies.iter().enumerate() {
        parts.push(&p.chain);
        parts.push(match (p.staged, p.may_pass) {
            (true, _) => "s",
            (false, true) => "p",
            (false, false) => "-",
        });
        rules.push(Rule::new(vec![], Verdict::Jump(p.chain.clone())));
        if !p.staged && p.may_pass && (deny || i + 1 < policies.len()) {
            rules.push(Rule::new(vec![Match::MarkSet(mark)], Verdict::Return));
        }
    }
    let enforced = policies.iter().any(|p| !p.staged);
    let staged_end = match flow_logs {
        Some(cfg) if deny && !enforced => {
            let staged: Vec<&str> = policies.iter().map(|p| p.chain.as_str()).collect();
            Some(super::staged::tier_end(cfg, &staged))
        }
        _ => None,
    };
    if deny && enforced {
        parts.push("deny");
        rules.push(Rule::new(vec![], Verdict::Drop));
    }
    if let Some(end) = staged_end {
        parts.push("staged-deny");
        rules.extend(end);
    }
    let prefix = match dir {
        PolicyType::Ingress => "pl-in",
        PolicyType::Egress => "pl-eg",
    };
    let name = chain_name(prefix, &parts);
    if let Some(cfg) = flow_logs {
        rules = flow_log::chain_drops(cfg, &name, rules);
    }
    SharedChain {
        prefix,
        name,
        rules,
    }
}

/// The chain shared by every endpoint whose existing profiles are `profiles` (their chains
/// in `dir`), in order: a jump to each, then drop (logged with `flow_logs`).
pub(super) fn profile_list_chain(
    profiles: &[String],
    dir: PolicyType,
    flow_logs: Option<&FlowLogConfig>,
) -> SharedChain {
    let parts: Vec<&str> = profiles.iter().map(String::as_str).collect();
    let mut rules: Vec<Rule> = profiles
        .iter()
        .map(|c| Rule::new(vec![], Verdict::Jump(c.clone())))
        .collect();
    rules.push(Rule::new(vec![], Verdict::Drop));
    let prefix = match dir {
        PolicyType::Ingress => "prl-in",
        PolicyType::Egress => "prl-eg",
    };
    let name = chain_name(prefix, &parts);
    if let Some(cfg) = flow_logs {
        rules = flow_log::chain_drops(cfg, &name, rules);
    }
    SharedChain {
        prefix,
        name,
        rules,
    }
}

/// Reference counts of the shared chains.
#[derive(Clone, Debug, Default)]
pub(super) struct SharedChains {
    /// Number of interfaces using each shared chain.
    users: BTreeMap<String, usize>,
    /// The shared chains each local interface's chains jump to.
    by_iface: BTreeMap<String, Vec<String>>,
}

impl SharedChains {
    /// Forgets which shared chains `iface` uses, returning them (to release once the
    /// interface has taken its new ones).
    pub(super) fn take(&mut self, iface: &str) -> Vec<String> {
        self.by_iface.remove(iface).unwrap_or_default()
    }

    /// Records the shared chains `iface` now uses.
    pub(super) fn record(&mut self, iface: &str, names: Vec<String>) {
        self.by_iface.insert(iface.to_string(), names);
    }

    /// One more interface (`iface`) uses the shared `chain`; returns the name to jump to.
    /// The first user creates the chain. Names hash the whole list, so an existing chain of
    /// that name with other rules is a collision of the 64-bit hash: `iface` then gets a
    /// chain of its own (named after the interface too) rather than another list's policies.
    pub(super) fn acquire(
        &mut self,
        journal: &mut Journal,
        chain: SharedChain,
        iface: &str,
    ) -> String {
        let SharedChain {
            prefix,
            name,
            rules,
        } = chain;
        let name = match journal.ruleset().chains.get(&name) {
            Some(c) if self.users.contains_key(&name) && c.rules != rules => {
                let own = chain_name(prefix, &[&name, iface]);
                warn!(
                    chain = name,
                    interface = iface,
                    fallback = own,
                    "two policy or profile lists hash to one chain name; this interface gets its own"
                );
                own
            }
            _ => name,
        };
        let users = self.users.entry(name.clone()).or_insert(0);
        *users += 1;
        if *users == 1 {
            journal.put_chain(&name, Some(Chain { base: None, rules }));
        }
        name
    }

    /// The interfaces that used `names` no longer do: a shared chain goes with its last user.
    pub(super) fn release(&mut self, journal: &mut Journal, names: Vec<String>) {
        for name in names {
            if let Some(users) = self.users.get_mut(&name) {
                *users -= 1;
                if *users == 0 {
                    self.users.remove(&name);
                    journal.put_chain(&name, None);
                }
            }
        }
    }
}
