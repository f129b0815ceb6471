//! The chains of one local workload endpoint, rendered from what it is and which policies
//! and profiles apply to it: pure functions, no state. The compiler decides which shared
//! chains they jump to ([`super::shared_chains`]) and writes the result.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::names::{own_address_set, policy_chain, profile_chain, spoof_allowed_set};
use super::shared_chains::{Listed, PolicyList};
use crate::dataplane::ir::{
    CtState, Match, Rule, Set, SetElement, SetKey, Side, Statement, Verdict,
};
use crate::model::{Action, Model, Policy, PolicyType, Tier, TierAction, WorkloadEndpoint};

/// One family's anti-spoofing of an endpoint: the match a source must fail to be dropped,
/// and the own-address set it needs.
pub(super) struct OwnAddresses {
    /// The name the family's own-address set has when there is one.
    pub(super) set_name: String,
    /// The set, when the endpoint has several addresses of the family. Sets are kept for
    /// the rare multi-address case only: each named set makes every later set lookup by
    /// name in the kernel slower.
    pub(super) set: Option<Set>,
    /// The check: one address compared inline, several looked up in the set; `None` when
    /// the endpoint has no address of the family (every source of it is spoofed).
    pub(super) check: Option<Match>,
}

/// The anti-spoofing of `ep` (interface `iface`) for one family.
pub(super) fn own_addresses(ep: &WorkloadEndpoint, iface: &str, v4: bool) -> OwnAddresses {
    let addrs: BTreeSet<IpAddr> = ep
        .ip_networks
        .iter()
        .map(|n| n.addr())
        .filter(|a| a.is_ipv4() == v4)
        .collect();
    let set_name = own_address_set(iface, v4);
    let (set, check) = match addrs.len() {
        0 => (None, None),
        1 => (
            None,
            addrs.first().map(|&addr| Match::AddrEq {
                side: Side::Src,
                addr,
                negate: true,
            }),
        ),
        _ => {
            let set = Set {
                key: if v4 {
                    SetKey::Ipv4Addr
                } else {
                    SetKey::Ipv6Addr
                },
                elements: addrs.into_iter().map(SetElement::Addr).collect(),
            };
            let check = Match::AddrInSet {
                side: Side::Src,
                set: set_name.clone(),
                negate: true,
            };
            (Some(set), Some(check))
        }
    };
    OwnAddresses {
        set_name,
        set,
        check,
    }
}

/// The networks of one family an endpoint may send from besides its own addresses
/// (`allowSpoofedSourcePrefixes`, when the compiler honours them): the set of them, named
/// `set_name`, and the check a source must fail to be dropped; `None` without any.
pub(super) fn spoof_allowed(
    ep: &WorkloadEndpoint,
    iface: &str,
    v4: bool,
) -> (String, Option<(Set, Match)>) {
    let name = spoof_allowed_set(iface, v4);
    let nets: Vec<ipnet::IpNet> = ep
        .allow_spoofed_source_prefixes
        .iter()
        .filter(|n| matches!(n, ipnet::IpNet::V4(_)) == v4)
        .map(ipnet::IpNet::trunc)
        .collect();
    if nets.is_empty() {
        return (name, None);
    }
    let set = Set {
        key: if v4 { SetKey::Ipv4Net } else { SetKey::Ipv6Net },
        elements: ipnet::IpNet::aggregate(&nets)
            .into_iter()
            .map(SetElement::Net)
            .collect(),
    };
    let check = Match::AddrInSet {
        side: Side::Src,
        set: name.clone(),
        negate: true,
    };
    (name, Some((set, check)))
}

/// The policies of one tier that apply to an endpoint in one direction.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TierSection {
    /// The tier's name.
    pub(super) tier: String,
    /// Whether the tier drops what none of its policies decided (`defaultAction: Deny`).
    pub(super) deny: bool,
    /// The policies' chains in order, each with whether it may Pass.
    pub(super) policies: PolicyList,
}

/// What one direction of an endpoint's chains is built from.
pub(super) struct DirectionInputs {
    /// Ingress or egress.
    pub(super) dir: PolicyType,
    /// The tiers that apply, in order, with their governing policies.
    pub(super) tiers: Vec<TierSection>,
    /// The chains of the endpoint's profiles that exist, in order.
    pub(super) profiles: Vec<String>,
}

/// Per direction, the tiers (`policies`: those applying to `ep` whose tier exists, in tier
/// order and then policy order) and profiles its chains jump to.
pub(super) fn direction_inputs(
    model: &Model,
    ep: &WorkloadEndpoint,
    policies: &[(&Tier, &Policy)],
) -> [DirectionInputs; 2] {
    [PolicyType::Ingress, PolicyType::Egress].map(|dir| {
        let mut tiers: Vec<TierSection> = Vec::new();
        for (tier, p) in policies.iter().filter(|(_, p)| p.governs(dir)) {
            let key = (p.namespace.clone(), p.name.clone());
            let entry = Listed {
                chain: policy_chain(&key, dir),
                may_pass: p.rules(dir).iter().any(|r| r.action == Action::Pass),
                staged: p.is_staged(),
            };
            match tiers.last_mut() {
                Some(s) if s.tier == tier.name => s.policies.push(entry),
                _ => tiers.push(TierSection {
                    tier: tier.name.clone(),
                    deny: tier.default_action == TierAction::Deny,
                    policies: vec![entry],
                }),
            }
        }
        let profiles = ep
            .profiles
            .iter()
            .filter(|name| model.profiles.contains_key(*name))
            .map(|name| profile_chain(name, dir))
            .collect();
        DirectionInputs {
            dir,
            tiers,
            profiles,
        }
    })
}

/// How an endpoint chain applies one tier: the chain to jump to (the only policy's, or the
/// tier's shared list, which ends in the tier's drop when it has one) and what follows.
pub(super) struct TierJump {
    /// The chain to jump to.
    pub(super) target: String,
    /// The mark bits cleared before the jump: the Pass mark when the tier's policies may
    /// Pass, the staged marks when it has staged policies ([`super::staged`]).
    pub(super) clear: u32,
    /// Whether a drop follows the jump in the endpoint chain (the only policy's chain
    /// jumped to directly, in a tier that denies by default).
    pub(super) drop_after: bool,
    /// Whether nothing gets past the tier (it denies by default and none of its policies
    /// may Pass): later tiers and the profiles are not reached.
    pub(super) ends: bool,
}

/// The rules of an endpoint's chain in `dir`.
///
/// * `spoof_checks`: per family (IPv6 first, then IPv4), the anti-spoofing checks a source
///   must all pass to be dropped (egress; none: every source of the family is dropped);
/// * `spoofed`: what becomes of a spoofed packet: dropped, or, with flow logs, handed to
///   the shared chain that logs and drops it ([`super::flow_log::spoof_drop_chain`]);
/// * `tiers`: how each applicable tier is applied, in order;
/// * `after_policies`: where a packet goes when every tier passed it (or none applies):
///   the profiles' shared chain, or drop.
pub(super) fn endpoint_rules(
    dir: PolicyType,
    spoof_checks: &[Vec<Match>; 2],
    spoofed: &Verdict,
    tiers: &[TierJump],
    after_policies: Verdict,
) -> Vec<Rule> {
    let mut rules = vec![
        Rule::new(
            vec![Match::Ct(CtState::EstablishedOrRelated)],
            Verdict::Accept,
        ),
        Rule::new(vec![Match::Ct(CtState::Invalid)], Verdict::Drop),
    ];
    if dir == PolicyType::Egress {
        for v4 in [true, false] {
            let mut matches = vec![Match::Ipv4(v4)];
            matches.extend(spoof_checks[usize::from(v4)].iter().cloned());
            rules.push(Rule::new(matches, spoofed.clone()));
        }
    }
    for t in tiers {
        if t.clear != 0 {
            // A mark left by an earlier tier or chain (the sender's egress) must not read as
            // a Pass of this tier's policies (or a staged decision).
            rules.push(Rule {
                matches: vec![],
                statements: vec![Statement::ClearMark(t.clear)],
                verdict: None,
            });
        }
        rules.push(Rule::new(vec![], Verdict::Jump(t.target.clone())));
        if t.drop_after {
            rules.push(Rule::new(vec![], Verdict::Drop));
        }
        if t.ends {
            return rules;
        }
    }
    rules.push(Rule::new(vec![], after_policies));
    rules
}
