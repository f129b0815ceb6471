//! Names, not hashes: which object the user wrote each compiled chain and rule comes from.
//!
//! Chain names are hashes (`pol-in-qkzckdvo5ot4f`); a verdict explained by one tells an
//! operator nothing. [`ChainNames`] maps every chain of a ruleset back to its [`ChainOwner`]
//! (a policy as `namespace/name`, a profile, an endpoint, a shared list, a base chain), and
//! every IR rule of a policy or profile chain back to the user's rule index in that
//! direction, with the rule's own name ([`crate::model::Rule::name`]) when it has one.
//!
//! It needs only the model and the ruleset, so it serves tools that read a ruleset back
//! from the kernel as well as the compiler ([`Compiler::describe_chain`],
//! [`Compiler::describe_rule`]).
//!
//! ```
//! use calico_core::compile::{compile, describe, CompileConfig};
//! use calico_core::model::{parse_resources, Model};
//!
//! let model = Model::from_resources(parse_resources(r#"
//! kind: Policy
//! name: allow-web
//! namespace: shop
//! ingress:
//!   - {action: Deny, protocol: UDP}
//!   - {action: Allow, protocol: TCP, metadata: {annotations: {name: web}}}
//! "#).unwrap()).unwrap();
//! let ruleset = compile(&CompileConfig::new("h1"), &model);
//! let names = describe(&model, "h1", &ruleset);
//! let chain = ruleset.chains.keys().find(|c| c.starts_with("pol-in-")).unwrap();
//! // Each Calico rule is one IR rule per address family here: IR rule 2 is rule 1, IPv4.
//! let rule = names.rule(chain, 2).unwrap();
//! assert_eq!(rule.to_string(), r#"policy shop/allow-web ingress rule 1 ("web")"#);
//! ```

use std::collections::HashMap;

use super::names::{endpoint_chain, policy_chain, profile_chain};
use super::rules::{compile_rule, Verdicts};
use super::{flow_log, Compiler};
use super::{EGRESS_ALLOWED_CHAIN, FORWARD_CHAIN, SPOOF_DROP_CHAIN};
use super::{INPUT_CHAIN, OUTPUT_CHAIN, PREROUTING_CHAIN, WORKLOAD_TO_HOST_CHAIN};
use super::{RAW_OUTPUT_CHAIN, RAW_PREROUTING_CHAIN};
use crate::dataplane::ir::{Chain, Match, Rule as IrRule, Ruleset, Statement, Verdict};
use crate::dataplane::InterfaceAddresses;
use crate::model::{Model, PolicyType, Rule};

pub use super::chain_owner::{ChainOwner, RuleRef};
pub use crate::model::DEFAULT_TIER;

/// The pseudo-tier Calico's flow logs name for verdicts of profiles.
pub const PROFILE_TIER: &str = "__PROFILE__";

/// The named chains of one ruleset. Owned: it stays valid (if stale) while the model and
/// ruleset it was built from change; build a new one after a change.
#[derive(Clone, Debug, Default)]
pub struct ChainNames {
    chains: HashMap<String, ChainInfo>,
}

/// What is known of one chain.
#[derive(Clone, Debug)]
struct ChainInfo {
    owner: ChainOwner,
    /// The number of IR rules of the chain.
    len: usize,
    /// Per IR rule: the user's rule index (policy and profile chains), or what it is for.
    rules: Vec<RuleInfo>,
    /// Per user rule: its name (policy and profile chains).
    rule_names: Vec<Option<String>>,
    /// The tier whose end the chain's unconditional drop is (an endpoint chain's drop right
    /// after the jump to a policy's chain), if any.
    end_tier: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum RuleInfo {
    User(usize),
    Detail(Option<&'static str>),
}

/// Names every chain of `ruleset` that the compiler for `node` would make from `model`:
/// [`ChainNames`]. Chains the model does not explain (drift, a stale model) are left out,
/// and so are those of host endpoints found by their `expectedIPs`
/// ([`describe_with_interfaces`] names them).
pub fn describe(model: &Model, node: &str, ruleset: &Ruleset) -> ChainNames {
    describe_with_interfaces(model, node, &InterfaceAddresses::new(), ruleset)
}

/// [`describe`] for a ruleset compiled with the interface addresses `addrs`
/// ([`super::Compiler::set_interface_addresses`]): the chains of host endpoints found by
/// their `expectedIPs` are named too.
pub fn describe_with_interfaces(
    model: &Model,
    node: &str,
    addrs: &InterfaceAddresses,
    ruleset: &Ruleset,
) -> ChainNames {
    let mut names = ChainNames::default();
    names.add_policies_and_profiles(model, ruleset, policy_chain, profile_chain);
    for ep in model
        .workload_endpoints
        .values()
        .filter(|ep| ep.node == node)
    {
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            let chain = endpoint_chain(&ep.interface_name, dir);
            if names.chains.contains_key(&chain) {
                continue; // the first endpoint claiming the interface owns it
            }
            let owner = ChainOwner::Endpoint {
                endpoint: ep.id.clone(),
                interface: ep.interface_name.clone(),
                direction: dir,
            };
            names.add_other_chain(ruleset, chain, owner);
        }
    }
    super::host_endpoints::describe_hosts(model, node, addrs, ruleset, &mut names);
    for chain in [
        FORWARD_CHAIN,
        EGRESS_ALLOWED_CHAIN,
        PREROUTING_CHAIN,
        RAW_PREROUTING_CHAIN,
        RAW_OUTPUT_CHAIN,
        INPUT_CHAIN,
        OUTPUT_CHAIN,
        WORKLOAD_TO_HOST_CHAIN,
        super::NAT_PREROUTING_CHAIN,
        super::NAT_OUTPUT_CHAIN,
        super::NAT_POSTROUTING_CHAIN,
        super::FIP_DNAT_CHAIN,
        super::FIP_SNAT_CHAIN,
        super::FIRST_PACKET_FORWARD_CHAIN,
        super::FIRST_PACKET_INPUT_CHAIN,
        super::FIRST_PACKET_OUTPUT_CHAIN,
        super::SPOOF_DROP_CHAIN,
    ] {
        let owner = ChainOwner::Base {
            chain: chain.into(),
        };
        names.add_other_chain(ruleset, chain.into(), owner);
    }
    names.add_lists(ruleset);
    names
}

impl ChainNames {
    /// Who a chain belongs to; `None` for a chain the model does not explain.
    pub fn chain(&self, chain: &str) -> Option<&ChainOwner> {
        self.chains.get(chain).map(|c| &c.owner)
    }

    /// The IR rule at `index` of `chain`, named; `None` when the chain is not known or has
    /// no such rule. A policy or profile chain whose rules are not what the model compiles
    /// to (drift) names its owner but no user rule.
    pub fn rule(&self, chain: &str, index: usize) -> Option<RuleRef> {
        let info = self.chains.get(chain)?;
        if index >= info.len {
            return None;
        }
        let (rule, detail) = match info.rules.get(index) {
            Some(RuleInfo::User(i)) => (Some(*i), None),
            Some(RuleInfo::Detail(d)) => (None, *d),
            None => (None, None),
        };
        Some(self.make_ref(info, rule, detail))
    }

    /// The user's rule `rule` (index in its direction's list) of a policy or profile
    /// chain, named: what a flow log's reference resolves to.
    pub fn user_rule(&self, chain: &str, rule: usize) -> Option<RuleRef> {
        let info = self.chains.get(chain)?;
        match info.owner {
            ChainOwner::Policy { .. } | ChainOwner::Profile { .. } => {
                Some(self.make_ref(info, Some(rule), None))
            }
            _ => None,
        }
    }

    fn make_ref(
        &self,
        info: &ChainInfo,
        rule: Option<usize>,
        detail: Option<&'static str>,
    ) -> RuleRef {
        RuleRef {
            owner: info.owner.clone(),
            rule,
            rule_name: rule.and_then(|i| info.rule_names.get(i).cloned().flatten()),
            detail,
        }
    }

    /// The number of chains named.
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// Whether no chain is named.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// Names the chains of every policy and profile, both directions, that the chain-name
    /// functions give (the workloads' chains, or the ones host endpoints call).
    pub(super) fn add_policies_and_profiles(
        &mut self,
        model: &Model,
        ruleset: &Ruleset,
        policy_chain: fn(&crate::model::PolicyKey, PolicyType) -> String,
        profile_chain: fn(&str, PolicyType) -> String,
    ) {
        for (key, p) in &model.policies {
            for dir in [PolicyType::Ingress, PolicyType::Egress] {
                let owner = ChainOwner::Policy {
                    tier: p.tier.clone(),
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    direction: dir,
                };
                let chain = policy_chain(key, dir);
                let ns = p.namespace.as_deref();
                let layout = if p.is_staged() {
                    Layout::Staged
                } else {
                    Layout::Enforced
                };
                self.add_rules_chain(ruleset, chain, owner, p.rules(dir), ns, layout);
            }
        }
        for (name, p) in &model.profiles {
            for dir in [PolicyType::Ingress, PolicyType::Egress] {
                let owner = ChainOwner::Profile {
                    name: name.clone(),
                    direction: dir,
                };
                let chain = profile_chain(name, dir);
                self.add_rules_chain(ruleset, chain, owner, p.rules(dir), None, Layout::Enforced);
            }
        }
    }

    fn add_rules_chain(
        &mut self,
        ruleset: &Ruleset,
        chain: String,
        owner: ChainOwner,
        rules: &[Rule],
        namespace: Option<&str>,
        layout: Layout,
    ) {
        let Some(c) = ruleset.chains.get(&chain) else {
            return;
        };
        let rule_map = match layout {
            Layout::Enforced => user_rule_map(rules, namespace, c)
                .map(|m| m.into_iter().map(RuleInfo::User).collect()),
            Layout::Staged => staged_rule_map(rules, namespace, c),
        };
        let info = ChainInfo {
            owner,
            len: c.rules.len(),
            rules: rule_map.unwrap_or_default(),
            rule_names: rules.iter().map(|r| r.name().map(String::from)).collect(),
            end_tier: None,
        };
        self.chains.insert(chain, info);
    }

    pub(super) fn add_other_chain(&mut self, ruleset: &Ruleset, chain: String, owner: ChainOwner) {
        let Some(c) = ruleset.chains.get(&chain) else {
            return;
        };
        let rules = c
            .rules
            .iter()
            .map(|r| RuleInfo::Detail(detail(&owner, r)))
            .collect();
        let end_tier = self.end_tier(c);
        let info = ChainInfo {
            owner,
            len: c.rules.len(),
            rules,
            rule_names: Vec::new(),
            end_tier,
        };
        self.chains.insert(chain, info);
    }

    /// The tier a chain's verdict belongs to: a policy's or a policy list's own, and for an
    /// endpoint chain the tier whose end its default drop is (`None` for a drop that ends
    /// the profiles or an endpoint without policy). What a flow log's `end` names.
    pub fn tier(&self, chain: &str) -> Option<&str> {
        let info = self.chains.get(chain)?;
        info.owner.tier().or(info.end_tier.as_deref())
    }

    /// The tier of the policy chain an endpoint chain jumps to right before its
    /// unconditional drop.
    fn end_tier(&self, c: &Chain) -> Option<String> {
        let drop = c
            .rules
            .iter()
            .rposition(|r| r.matches.is_empty() && r.verdict == Some(Verdict::Drop))?;
        let before = c.rules[..drop].iter().rev().find(|r| {
            let log = r
                .statements
                .iter()
                .any(|s| matches!(s, Statement::NfLog { .. }));
            !(log && r.verdict.is_none())
        })?;
        match &before.verdict {
            Some(Verdict::Jump(target)) => self.chain(target)?.tier().map(String::from),
            _ => None,
        }
    }

    /// The shared list chains, named after the chains they jump to.
    fn add_lists(&mut self, ruleset: &Ruleset) {
        for (name, chain) in &ruleset.chains {
            let (dir, profiles) = if let Some(dir) = list_direction(name, "pl") {
                (dir, false)
            } else if let Some(dir) = list_direction(name, "prl") {
                (dir, true)
            } else {
                continue;
            };
            let members: Vec<String> = chain
                .rules
                .iter()
                .filter_map(|r| match &r.verdict {
                    Some(Verdict::Jump(target)) => Some(
                        self.chain(target)
                            .map_or_else(|| "?".to_string(), ChainOwner::name),
                    ),
                    _ => None,
                })
                .collect();
            let owner = if profiles {
                ChainOwner::ProfileList {
                    profiles: members,
                    direction: dir,
                }
            } else {
                let tier = chain.rules.iter().find_map(|r| match &r.verdict {
                    Some(Verdict::Jump(t)) => self.chain(t)?.tier().map(String::from),
                    _ => None,
                });
                ChainOwner::PolicyList {
                    tier: tier.unwrap_or_else(|| "?".into()),
                    policies: members,
                    direction: dir,
                }
            };
            self.add_other_chain(ruleset, name.clone(), owner);
        }
    }
}

/// The direction of a shared list chain named `<kind>-in-...` or `<kind>-eg-...`.
fn list_direction(chain: &str, kind: &str) -> Option<PolicyType> {
    let rest = chain.strip_prefix(kind)?;
    if rest.starts_with("-in-") {
        Some(PolicyType::Ingress)
    } else if rest.starts_with("-eg-") {
        Some(PolicyType::Egress)
    } else {
        None
    }
}

/// Per IR rule of `chain`, the index of the user's rule it was compiled from, when the
/// chain has the number of rules `rules` compile to without flow logs or with them
/// ([`super::flow_log`]: an Allow's or a Deny's IR rules get log rules); `None` otherwise
/// (drift).
/// The two layouts differ in length whenever they differ at all.
fn user_rule_map(rules: &[Rule], namespace: Option<&str>, chain: &Chain) -> Option<Vec<usize>> {
    let verdicts = Verdicts {
        allow: (vec![], Verdict::Accept),
        pass: (vec![], Verdict::Return),
        log_prefix: String::new(),
    };
    let compiled: Vec<Vec<IrRule>> = rules
        .iter()
        .map(|r| compile_rule(r, namespace, &verdicts).0)
        .collect();
    // Without flow logs, with them (allows referenced), with them (allows logged: pre-DNAT
    // policy). Layouts of the same length are the same layout.
    let layouts = [
        None,
        Some(flow_log::AllowLogs::Referenced),
        Some(flow_log::AllowLogs::Logged),
    ];
    layouts.into_iter().find_map(|flow_logs| {
        let mut map = Vec::with_capacity(chain.rules.len());
        for (i, (rule, ir)) in rules.iter().zip(&compiled).enumerate() {
            let n = match flow_logs {
                Some(allows) => flow_log::expanded_len(rule.action, ir, allows),
                None => ir.len(),
            };
            map.extend(std::iter::repeat_n(i, n));
        }
        (map.len() == chain.rules.len()).then_some(map)
    })
}

/// How a policy's chain is laid out: an enforced policy's or a staged one's
/// ([`super::staged`]).
#[derive(Clone, Copy)]
enum Layout {
    Enforced,
    Staged,
}

/// [`user_rule_map`] for a staged policy's chain: its head rule, then each user rule's IR
/// rules as [`super::staged`] lays them out (`None` when the chain has another length).
fn staged_rule_map(
    rules: &[Rule],
    namespace: Option<&str>,
    chain: &Chain,
) -> Option<Vec<RuleInfo>> {
    let verdicts = Verdicts {
        allow: (vec![], Verdict::Accept),
        pass: (vec![], Verdict::Return),
        log_prefix: String::new(),
    };
    let mut map = vec![
        RuleInfo::Detail(Some("staged evaluation closed or passed: return"));
        super::staged::CHAIN_HEAD
    ];
    for (i, rule) in rules.iter().enumerate() {
        let ir = compile_rule(rule, namespace, &verdicts).0;
        let n = super::staged::expanded_len(rule.action, &ir);
        map.extend(std::iter::repeat_n(i, n).map(RuleInfo::User));
    }
    (map.len() == chain.rules.len()).then_some(map)
}

/// What a rule of an endpoint, list or base chain is for, read from the rule itself.
fn detail(owner: &ChainOwner, rule: &IrRule) -> Option<&'static str> {
    let ends = matches!(rule.verdict, Some(Verdict::Drop));
    let staged =
        |s: &Statement| matches!(s, Statement::NfLog { prefix, .. } if prefix.starts_with("S "));
    if rule.statements.iter().any(staged) {
        return Some("a staged policy would deny at the end of its tier (flow log only)");
    }
    let first_packet = |s: &Statement| matches!(s, Statement::NfLog { prefix, .. } if super::first_packet_hook(prefix).is_some());
    if rule.statements.iter().any(first_packet) {
        return Some("flow log of a connection's first packet, allowed (the rules that allowed it are found by replaying it)");
    }
    if rule
        .statements
        .iter()
        .any(|s| matches!(s, Statement::NfLog { .. }))
    {
        return Some("flow log of the drop that follows (rate-limited)");
    }
    if rule
        .statements
        .iter()
        .any(|s| matches!(s, Statement::SetMark(_)))
        && rule.verdict.is_none()
    {
        return Some("staged evaluation closed (the staged end of the tier)");
    }
    if rule.matches.contains(&Match::Ct(
        crate::dataplane::ir::CtState::EstablishedOrRelated,
    )) {
        return Some("established or related connection");
    }
    if rule
        .matches
        .contains(&Match::Ct(crate::dataplane::ir::CtState::Invalid))
    {
        return Some("invalid connection state");
    }
    if rule
        .statements
        .iter()
        .any(|s| matches!(s, Statement::ClearMark(_)))
    {
        return Some("clears the Pass mark (and the staged marks)");
    }
    for s in &rule.statements {
        match s {
            Statement::Dnat(_) => return Some("a floating IP, to its workload's own address"),
            Statement::Snat(_) => {
                return Some(
                    "a workload reaching its own floating IP (hairpin): from the floating IP",
                )
            }
            _ => {}
        }
    }
    let unconditional = rule.matches.is_empty();
    match (owner, &rule.verdict) {
        (ChainOwner::HostEndpoint { .. }, Some(Verdict::Accept)) if !unconditional => {
            Some("a failsafe port, or a policy or profile allowed")
        }
        (ChainOwner::HostEndpoint { .. }, Some(Verdict::Drop)) => {
            Some("no policy or profile allowed: default deny")
        }
        (ChainOwner::HostEndpoint { .. }, Some(Verdict::Jump(_))) => {
            Some("applies the policies of a tier, or a profile")
        }
        (ChainOwner::Endpoint { .. }, Some(Verdict::Drop)) if !unconditional => {
            Some("source address is not the endpoint's (anti-spoofing)")
        }
        (ChainOwner::Endpoint { .. }, Some(Verdict::Drop)) => {
            Some("no policy allowed: default deny (end of tier)")
        }
        (ChainOwner::Endpoint { .. }, Some(Verdict::Goto(to))) if to == SPOOF_DROP_CHAIN => {
            Some("source address is not the endpoint's (anti-spoofing): logged and dropped")
        }
        (ChainOwner::Endpoint { .. }, Some(Verdict::Jump(_))) => {
            Some("applies the policies of a tier")
        }
        (ChainOwner::Endpoint { .. }, Some(_)) => {
            Some("every tier passed (or none applies): on to the profiles")
        }
        (ChainOwner::PolicyList { .. }, Some(Verdict::Return)) => {
            Some("a policy passed: skip the others")
        }
        (ChainOwner::PolicyList { .. }, Some(Verdict::Jump(_))) => Some("applies a policy"),
        (ChainOwner::PolicyList { .. }, Some(Verdict::Drop)) => {
            Some("no policy of the tier allowed or passed: the tier's default deny (end of tier)")
        }
        (ChainOwner::ProfileList { .. }, Some(Verdict::Jump(_))) => Some("applies a profile"),
        (ChainOwner::ProfileList { .. }, Some(Verdict::Drop)) => {
            Some("no profile allowed: default deny")
        }
        (ChainOwner::Base { .. }, Some(Verdict::Dispatch { .. })) => {
            Some("dispatch to the workload's chain")
        }
        (ChainOwner::Base { chain }, Some(Verdict::Drop)) if chain == SPOOF_DROP_CHAIN => {
            Some("a workload's source address is not its own (anti-spoofing)")
        }
        (ChainOwner::Base { .. }, Some(Verdict::Accept)) => Some("allowed"),
        (ChainOwner::Base { .. }, Some(Verdict::Goto(to))) if to == EGRESS_ALLOWED_CHAIN => {
            Some(if unconditional {
                "the source's checks passed (or it came from no workload): on to the destination's"
            } else {
                "allowed by untracked or pre-DNAT policy: on to the destination's checks"
            })
        }
        _ if ends => Some("drop"),
        _ => None,
    }
}

impl Compiler {
    /// Who the chain `chain` of this compiler's ruleset belongs to, read against `model`
    /// (the model the compiler was given). Builds the whole map: for many lookups build a
    /// [`ChainNames`] once with [`describe`].
    pub fn describe_chain(&self, model: &Model, chain: &str) -> Option<ChainOwner> {
        self.names(model).chain(chain).cloned()
    }

    /// The IR rule `index` of `chain`, named (see [`ChainNames::rule`]).
    pub fn describe_rule(&self, model: &Model, chain: &str, index: usize) -> Option<RuleRef> {
        self.names(model).rule(chain, index)
    }

    /// The names of the ruleset's chains, host endpoints found by address included.
    fn names(&self, model: &Model) -> ChainNames {
        let addrs = self.interface_addresses();
        describe_with_interfaces(model, &self.config.node, addrs, self.ruleset())
    }
}
