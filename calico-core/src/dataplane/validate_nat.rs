//! The NAT part of [`super::validate`]: where `dnat` and `snat` statements may run (the
//! kernel's checks at commit) and how a compiled rule holds one.

use std::collections::BTreeSet;

use super::ir::{BaseChain, ChainType, Hook, Match, Rule, Ruleset, Statement, Verdict};
use super::validate::IrError;

/// The address a NAT statement translates to, and its name in messages.
fn nat_of(s: &Statement) -> Option<(std::net::IpAddr, &'static str)> {
    match s {
        Statement::Dnat(a) => Some((*a, "dnat")),
        Statement::Snat(a) => Some((*a, "snat")),
        _ => None,
    }
}

/// The hooks where a NAT statement may run (the kernel's `nft_nat_validate`).
fn allowed_hooks(what: &str) -> [Hook; 2] {
    if what == "dnat" {
        [Hook::Prerouting, Hook::Output]
    } else {
        [Hook::Postrouting, Hook::Input]
    }
}

/// No NAT base chain on the forward hook; every NAT statement reached only from NAT base
/// chains of the hooks its kind of NAT runs at.
pub(super) fn check_placement(ruleset: &Ruleset) -> Result<(), IrError> {
    for (name, chain) in &ruleset.chains {
        if let Some(b) = chain.base.filter(|b| b.kind == ChainType::Nat) {
            if b.hook == Hook::Forward {
                return Err(IrError::NatHook {
                    chain: name.clone(),
                    hook: b.hook,
                });
            }
        }
    }
    let holders: Vec<(&str, usize, &'static str)> = ruleset
        .chains
        .iter()
        .flat_map(|(name, c)| c.rules.iter().enumerate().map(move |(i, r)| (name, i, r)))
        .flat_map(|(name, i, r)| {
            r.statements
                .iter()
                .filter_map(nat_of)
                .map(move |(_, what)| (name.as_str(), i, what))
        })
        .collect();
    if holders.is_empty() {
        return Ok(());
    }
    for (base_name, base) in base_chains(ruleset) {
        let reached = reachable(ruleset, base_name);
        for &(chain, i, what) in holders.iter().filter(|(c, _, _)| reached.contains(c)) {
            if base.kind != ChainType::Nat || !allowed_hooks(what).contains(&base.hook) {
                return Err(IrError::NatPlacement {
                    at: format!("chain {chain} rule {i}"),
                    what,
                    base: base_name.to_string(),
                    kind: base.kind,
                    hook: base.hook,
                });
            }
        }
    }
    Ok(())
}

fn base_chains(ruleset: &Ruleset) -> impl Iterator<Item = (&str, BaseChain)> {
    ruleset
        .chains
        .iter()
        .filter_map(|(n, c)| c.base.map(|b| (n.as_str(), b)))
}

/// The chains `start` reaches (itself included) by jump, goto or a verdict map.
fn reachable<'r>(ruleset: &'r Ruleset, start: &'r str) -> BTreeSet<&'r str> {
    let mut seen = BTreeSet::from([start]);
    let mut todo = vec![start];
    while let Some(name) = todo.pop() {
        let Some(chain) = ruleset.chains.get(name) else {
            continue;
        };
        let mut targets: Vec<&Verdict> = Vec::new();
        for rule in &chain.rules {
            match &rule.verdict {
                Some(Verdict::Dispatch { map, .. }) => targets.extend(
                    ruleset
                        .maps
                        .get(map)
                        .into_iter()
                        .flat_map(|m| m.elements.values()),
                ),
                Some(v) => targets.push(v),
                None => {}
            }
        }
        for v in targets {
            if let Verdict::Jump(t) | Verdict::Goto(t) = v {
                if seen.insert(t.as_str()) {
                    todo.push(t.as_str());
                }
            }
        }
    }
    seen
}

/// A NAT statement ends a rule without verdict, and its address is of the rule's family.
pub(super) fn check_rule(rule: &Rule, at: &dyn Fn() -> String) -> Result<(), IrError> {
    let last = rule.statements.len().saturating_sub(1);
    for (i, s) in rule.statements.iter().enumerate() {
        let Some((addr, _)) = nat_of(s) else {
            continue;
        };
        if i != last || rule.verdict.is_some() {
            return Err(IrError::NatNotLast { at: at() });
        }
        let family = rule.matches.iter().find_map(|m| match m {
            Match::Ipv4(v4) => Some(*v4),
            _ => None,
        });
        if family != Some(addr.is_ipv4()) {
            return Err(IrError::WrongFamily { at: at(), addr });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ir::{Chain, ChainPolicy, Side};
    use crate::dataplane::validate::{check, check_commit};

    fn base(hook: Hook, kind: ChainType, rules: Vec<Rule>) -> Chain {
        Chain {
            base: Some(BaseChain {
                hook,
                priority: 0,
                policy: ChainPolicy::Accept,
                kind,
            }),
            rules,
        }
    }

    fn dnat_rule(to: &str) -> Rule {
        Rule {
            matches: vec![
                Match::Ipv4(true),
                Match::AddrEq {
                    side: Side::Dst,
                    addr: "172.16.0.1".parse().unwrap(),
                    negate: false,
                },
            ],
            statements: vec![Statement::Dnat(to.parse().unwrap())],
            verdict: None,
        }
    }

    /// A ruleset whose base chain `b` jumps to `fip`, which holds `rule`.
    fn jumped(hook: Hook, kind: ChainType, rule: Rule) -> Ruleset {
        let mut r = Ruleset::default();
        let jump = Rule::new(vec![], Verdict::Jump("fip".into()));
        r.chains.insert("b".into(), base(hook, kind, vec![jump]));
        r.chains.insert(
            "fip".into(),
            Chain {
                base: None,
                rules: vec![rule],
            },
        );
        r
    }

    #[test]
    fn nat_statements_run_only_in_nat_chains_of_their_hooks() {
        let ok = jumped(Hook::Prerouting, ChainType::Nat, dnat_rule("10.0.0.1"));
        assert_eq!(check(&ok), Ok(()));
        let output = jumped(Hook::Output, ChainType::Nat, dnat_rule("10.0.0.1"));
        assert_eq!(check(&output), Ok(()));
        for (hook, kind) in [
            (Hook::Prerouting, ChainType::Filter),
            (Hook::Postrouting, ChainType::Nat),
            (Hook::Input, ChainType::Nat),
        ] {
            let r = jumped(hook, kind, dnat_rule("10.0.0.1"));
            assert!(
                matches!(
                    check_commit(&r),
                    Err(IrError::NatPlacement { what: "dnat", .. })
                ),
                "{hook:?} {kind:?}: {:?}",
                check_commit(&r)
            );
        }
        let mut snat = dnat_rule("10.0.0.1");
        snat.statements = vec![Statement::Snat("172.16.0.1".parse().unwrap())];
        let r = jumped(Hook::Postrouting, ChainType::Nat, snat.clone());
        assert_eq!(check(&r), Ok(()));
        let r = jumped(Hook::Prerouting, ChainType::Nat, snat);
        assert!(matches!(
            check_commit(&r),
            Err(IrError::NatPlacement { what: "snat", .. })
        ));
        let mut fwd = Ruleset::default();
        fwd.chains
            .insert("n".into(), base(Hook::Forward, ChainType::Nat, vec![]));
        assert!(matches!(check_commit(&fwd), Err(IrError::NatHook { .. })));
    }

    #[test]
    fn a_nat_statement_ends_a_rule_of_its_family() {
        let v6 = jumped(Hook::Prerouting, ChainType::Nat, dnat_rule("fd00::1"));
        assert!(matches!(check(&v6), Err(IrError::WrongFamily { .. })));
        let mut with_verdict = dnat_rule("10.0.0.1");
        with_verdict.verdict = Some(Verdict::Accept);
        let r = jumped(Hook::Prerouting, ChainType::Nat, with_verdict);
        assert!(matches!(check(&r), Err(IrError::NatNotLast { .. })));
        let mut then_mark = dnat_rule("10.0.0.1");
        then_mark.statements.push(Statement::SetMark(1));
        let r = jumped(Hook::Prerouting, ChainType::Nat, then_mark);
        assert!(matches!(check(&r), Err(IrError::NatNotLast { .. })));
    }
}
