//! The chains of one local workload endpoint, rendered from what it is and which policies
//! and profiles apply to it: pure functions, no state. The compiler decides which shared
//! chains they jump to ([`super::shared_chains`]) and writes the result.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::names::{own_address_set, policy_chain, profile_chain};
use super::shared_chains::PolicyList;
use crate::dataplane::ir::{
    CtState, Match, Rule, Set, SetElement, SetKey, Side, Statement, Verdict,
};
use crate::model::{Action, Model, Policy, PolicyType, WorkloadEndpoint};

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

/// What one direction of an endpoint's chains is built from.
pub(super) struct DirectionInputs {
    /// Ingress or egress.
    pub(super) dir: PolicyType,
    /// The governing policies' chains in order, each with whether it may Pass.
    pub(super) policies: PolicyList,
    /// The chains of the endpoint's profiles that exist, in order.
    pub(super) profiles: Vec<String>,
}

/// Per direction, the policies (`policies`: those applying to `ep`, in order) and profiles
/// its chains jump to.
pub(super) fn direction_inputs(
    model: &Model,
    ep: &WorkloadEndpoint,
    policies: &[&Policy],
) -> [DirectionInputs; 2] {
    [PolicyType::Ingress, PolicyType::Egress].map(|dir| {
        let governing = policies
            .iter()
            .filter(|p| p.governs(dir))
            .map(|p| {
                let key = (p.namespace.clone(), p.name.clone());
                let pass = p.rules(dir).iter().any(|r| r.action == Action::Pass);
                (policy_chain(&key, dir), pass)
            })
            .collect();
        let profiles = ep
            .profiles
            .iter()
            .filter(|name| model.profiles.contains_key(*name))
            .map(|name| profile_chain(name, dir))
            .collect();
        DirectionInputs {
            dir,
            policies: governing,
            profiles,
        }
    })
}

/// The rules of an endpoint's chain in `dir`.
///
/// * `spoof_checks`: per family (IPv6 first, then IPv4), the anti-spoofing check (egress);
/// * `policies`: the governing policies, `policy_target` the chain to jump to for them (the
///   only policy's chain, or the shared list);
/// * `after_policies`: where a packet goes when no policy decided: the profiles' shared
///   chain, or drop;
/// * `mark`: the Pass mark.
pub(super) fn endpoint_rules(
    dir: PolicyType,
    spoof_checks: &[Option<Match>; 2],
    policies: &PolicyList,
    policy_target: Option<String>,
    after_policies: Verdict,
    mark: u32,
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
            matches.extend(spoof_checks[usize::from(v4)].clone());
            rules.push(Rule::new(matches, Verdict::Drop));
        }
    }
    let Some(target) = policy_target else {
        rules.push(Rule::new(vec![], after_policies));
        return rules;
    };
    let any_pass = policies.iter().any(|(_, pass)| *pass);
    // With nothing to pass to, a Pass ends at the drop below like a miss.
    let pass_matters = any_pass && after_policies != Verdict::Drop;
    if any_pass {
        // A mark left by an earlier chain (the sender's egress) must not read as a Pass of
        // this endpoint's policies.
        rules.push(Rule {
            matches: vec![],
            statements: vec![Statement::ClearMark(mark)],
            verdict: None,
        });
    }
    rules.push(Rule::new(vec![], Verdict::Jump(target)));
    if pass_matters {
        rules.push(Rule::new(vec![Match::MarkSet(mark)], after_policies));
    }
    rules.push(Rule::new(vec![], Verdict::Drop));
    rules
}
