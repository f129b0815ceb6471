//! The one validator of a whole [`Ruleset`], in two tiers:
//!
//! * [`check_commit`]: what the kernel checks when an nftables transaction commits. Every
//!   backend, mock and real, may assume a ruleset it is asked to reach passes it; calico-mock's
//!   `MockAcl` refuses a change set whose result fails it, as the kernel would;
//! * [`check`]: those checks plus the invariants every ruleset the compiler produces keeps
//!   (checked by tests and the fuzzer), which a backend may also rely on.
//!
//! Checked at commit, with the kernel's answer in brackets:
//!
//! * a rule or map element names a chain, set or map that exists (`ENOENT`; also refused while
//!   a change set is applied, by [`ChangeSet::apply_to`](super::ChangeSet::apply_to));
//! * a rule's set lookup names a set of the right kind: an address match a plain or interval
//!   address set, an `addr . proto . port` match a concatenated set (`EINVAL`, type mismatch);
//! * elements of an interval set do not overlap (`EEXIST`, conflicting intervals);
//! * a port range has `min <= max` (`EINVAL`);
//! * `jump`/`goto` never target a base chain (`EOPNOTSUPP`), never loop (`ELOOP`), and never
//!   nest deeper than the jump stack of [`MAX_JUMP_DEPTH`] (`EMLINK`);
//! * a verdict map's values are plain verdicts (a map value cannot be another map lookup);
//! * a netlink log prefix is at most [`MAX_LOG_PREFIX`] bytes without NUL (`EINVAL`);
//! * a NAT base chain is not on the forward hook, and a `dnat` (`snat`) statement is only
//!   reached from NAT base chains of the prerouting or output (postrouting or input) hook
//!   (`EOPNOTSUPP`).
//!
//! Kept by compiled rulesets besides:
//!
//! * names are at most [`MAX_NAME_LEN`] characters;
//! * every set element fits its set's key;
//! * an address compared inline, or looked up in a set, is of the family the rule matches
//!   (and the rule matches one);
//! * a rate-limited netlink log is the last statement of a rule without verdict (the limit
//!   would otherwise skip the rest of the rule for packets over it), and so is a NAT
//!   statement (it ends the chain: nothing after it would run);
//! * a NAT statement's address is of the family the rule matches.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::ir::{
    ChainType, Hook, Match, Rule, Ruleset, SetElement, Statement, Verdict, MAX_LOG_PREFIX,
};

/// Longest object name (nftables' historical limit, without the NUL).
pub const MAX_NAME_LEN: usize = 31;

/// Deepest chain nesting the kernel accepts (`NFT_JUMP_STACK_SIZE`).
pub const MAX_JUMP_DEPTH: usize = 16;

/// Why a ruleset is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    /// A rule or map element names a chain, set or map that does not exist.
    #[error("{at} refers to missing {kind} {name}")]
    Missing {
        /// Where: `chain <name> rule <i>` or `map <name>`.
        at: String,
        /// `chain`, `set` or `map`.
        kind: &'static str,
        /// The missing name.
        name: String,
    },
    /// A set lookup uses a set whose key does not fit the match (or, in a compiled
    /// ruleset, the rule's family).
    #[error("{at}: set {set} has the wrong key type for this match")]
    SetKind {
        /// Where.
        at: String,
        /// The set.
        set: String,
    },
    /// Two elements of an interval set overlap.
    #[error("set {set}: intervals {a} and {b} overlap")]
    Overlap {
        /// The set.
        set: String,
        /// One element.
        a: IpNet,
        /// The other.
        b: IpNet,
    },
    /// A port range is empty.
    #[error("{at}: port range {min}-{max} is empty")]
    EmptyRange {
        /// Where.
        at: String,
        /// Lower end.
        min: u16,
        /// Upper end.
        max: u16,
    },
    /// A jump or goto targets a base chain.
    #[error("{at}: cannot jump to base chain {chain}")]
    JumpToBase {
        /// Where.
        at: String,
        /// The base chain.
        chain: String,
    },
    /// Chains jump to each other in a loop.
    #[error("jump loop through chain {0}")]
    Loop(String),
    /// Chains nest deeper than the kernel's jump stack.
    #[error("chain {0} is nested deeper than {MAX_JUMP_DEPTH} jumps")]
    TooDeep(String),
    /// A verdict map holds a map lookup as a value.
    #[error("map {0}: a verdict map value cannot be a map lookup")]
    NestedDispatch(String),
    /// A name is too long (compiled rulesets).
    #[error("name {0:?} is longer than {MAX_NAME_LEN} characters")]
    NameTooLong(String),
    /// A set element does not fit the set's key (compiled rulesets).
    #[error("set {set}: element {element} does not fit its key")]
    BadElement {
        /// The set.
        set: String,
        /// The element.
        element: String,
    },
    /// A netlink log prefix is too long or holds a NUL.
    #[error("{at}: log prefix {prefix:?} is longer than {MAX_LOG_PREFIX} bytes or holds a NUL")]
    LogPrefix {
        /// Where.
        at: String,
        /// The prefix.
        prefix: String,
    },
    /// A flow-log reference is not its rule's last statement, or a rule holds two (the
    /// kernel keeps it as the rule's one comment).
    #[error("{at}: a flow-log reference must be its rule's last statement, and only one")]
    FlowRefNotLast {
        /// Where.
        at: String,
    },
    /// A rate-limited log is not the last statement of a rule without verdict (compiled
    /// rulesets).
    #[error("{at}: a rate-limited log must end a rule without verdict")]
    LimitedLogNotLast {
        /// Where.
        at: String,
    },
    /// A NAT base chain on a hook where the kernel has no NAT (forward).
    #[error("chain {chain}: a NAT base chain cannot attach to the {hook:?} hook")]
    NatHook {
        /// The base chain.
        chain: String,
        /// Its hook.
        hook: Hook,
    },
    /// A NAT statement reached from a filter base chain, or from a hook where that kind of
    /// NAT cannot happen (destination NAT only at prerouting and output, source NAT only at
    /// postrouting and input).
    #[error("{at}: {what} reached from base chain {base}, a {kind:?} chain on the {hook:?} hook")]
    NatPlacement {
        /// Where the statement is.
        at: String,
        /// `dnat` or `snat`.
        what: &'static str,
        /// A base chain that reaches it.
        base: String,
        /// That chain's type.
        kind: ChainType,
        /// That chain's hook.
        hook: Hook,
    },
    /// A NAT statement is not the last statement of a rule without verdict (compiled
    /// rulesets).
    #[error("{at}: a NAT statement must end a rule without verdict")]
    NatNotLast {
        /// Where.
        at: String,
    },
    /// An address compared in a rule of another family, or of none (compiled rulesets).
    #[error("{at}: address {addr} compared in a rule of another or no family")]
    WrongFamily {
        /// Where.
        at: String,
        /// The address.
        addr: std::net::IpAddr,
    },
}

/// Checks `ruleset` as the kernel checks a table when a transaction commits.
pub fn check_commit(ruleset: &Ruleset) -> Result<(), IrError> {
    check_overlaps(ruleset)?;
    for (name, chain) in &ruleset.chains {
        for (i, rule) in chain.rules.iter().enumerate() {
            let at = || format!("chain {name} rule {i}");
            for m in &rule.matches {
                check_match(ruleset, m, &at)?;
            }
            for (j, st) in rule.statements.iter().enumerate() {
                let (Statement::NfLog { prefix, .. } | Statement::FlowRef(prefix)) = st else {
                    continue;
                };
                if prefix.len() > MAX_LOG_PREFIX || prefix.contains('\0') {
                    return Err(IrError::LogPrefix {
                        at: at(),
                        prefix: prefix.clone(),
                    });
                }
                if matches!(st, Statement::FlowRef(_)) && j + 1 != rule.statements.len() {
                    return Err(IrError::FlowRefNotLast { at: at() });
                }
            }
            if let Some(v) = &rule.verdict {
                check_verdict(ruleset, v, &at)?;
            }
        }
    }
    for (name, map) in &ruleset.maps {
        for v in map.elements.values() {
            if matches!(v, Verdict::Dispatch { .. }) {
                return Err(IrError::NestedDispatch(name.clone()));
            }
            check_verdict(ruleset, v, &|| format!("map {name}"))?;
        }
    }
    check_nesting(ruleset)?;
    super::validate_nat::check_placement(ruleset)
}

/// Checks every invariant of a compiled ruleset: [`check_commit`], names, elements and
/// address families.
pub fn check(ruleset: &Ruleset) -> Result<(), IrError> {
    let names = ruleset.sets.keys();
    for name in names
        .chain(ruleset.maps.keys())
        .chain(ruleset.chains.keys())
    {
        if name.len() > MAX_NAME_LEN {
            return Err(IrError::NameTooLong(name.clone()));
        }
    }
    for (name, set) in &ruleset.sets {
        if let Some(e) = set.elements.iter().find(|e| !e.fits(set.key)) {
            return Err(IrError::BadElement {
                set: name.clone(),
                element: format!("{e:?}"),
            });
        }
    }
    check_commit(ruleset)?;
    for (name, chain) in &ruleset.chains {
        for (i, rule) in chain.rules.iter().enumerate() {
            check_families(ruleset, rule, &|| format!("chain {name} rule {i}"))?;
            check_limited_log(rule, &|| format!("chain {name} rule {i}"))?;
            super::validate_nat::check_rule(rule, &|| format!("chain {name} rule {i}"))?;
        }
    }
    Ok(())
}

/// A rate-limited log ends a rule without verdict.
fn check_limited_log(rule: &Rule, at: &dyn Fn() -> String) -> Result<(), IrError> {
    let limited = |s: &Statement| matches!(s, Statement::NfLog { rate: Some(_), .. });
    let last = rule.statements.len().saturating_sub(1);
    let misplaced = rule
        .statements
        .iter()
        .enumerate()
        .any(|(i, s)| limited(s) && (i != last || rule.verdict.is_some()));
    if misplaced {
        return Err(IrError::LimitedLogNotLast { at: at() });
    }
    Ok(())
}

/// Elements of an interval set must not overlap.
fn check_overlaps(ruleset: &Ruleset) -> Result<(), IrError> {
    for (name, set) in &ruleset.sets {
        if !set.key.is_interval() {
            continue;
        }
        let mut nets: Vec<IpNet> = set
            .elements
            .iter()
            .filter_map(|e| match e {
                SetElement::Net(n) => Some(*n),
                _ => None,
            })
            .collect();
        // Sorted by network address; CIDRs either nest or are disjoint, so checking
        // neighbours after sorting by (start, prefix) finds any overlap.
        nets.sort_by_key(|n| (n.network(), n.prefix_len()));
        for pair in nets.windows(2) {
            if let [a, b] = pair {
                if a.contains(&b.network()) {
                    return Err(IrError::Overlap {
                        set: name.clone(),
                        a: *a,
                        b: *b,
                    });
                }
            }
        }
    }
    Ok(())
}

fn check_match(ruleset: &Ruleset, m: &Match, at: &dyn Fn() -> String) -> Result<(), IrError> {
    let (set, concat) = match m {
        Match::AddrInSet { set, .. } => (set, false),
        Match::AddrProtoPortInSet { set, .. } => (set, true),
        Match::Port { ranges, .. } => {
            if let Some((min, max)) = ranges.iter().find(|(lo, hi)| lo > hi) {
                return Err(IrError::EmptyRange {
                    at: at(),
                    min: *min,
                    max: *max,
                });
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    let s = ruleset.sets.get(set).ok_or_else(|| IrError::Missing {
        at: at(),
        kind: "set",
        name: set.clone(),
    })?;
    if s.key.is_concat() != concat {
        return Err(IrError::SetKind {
            at: at(),
            set: set.clone(),
        });
    }
    Ok(())
}

fn check_verdict(ruleset: &Ruleset, v: &Verdict, at: &dyn Fn() -> String) -> Result<(), IrError> {
    match v {
        Verdict::Jump(c) | Verdict::Goto(c) => match ruleset.chains.get(c) {
            None => Err(IrError::Missing {
                at: at(),
                kind: "chain",
                name: c.clone(),
            }),
            Some(chain) if chain.base.is_some() => Err(IrError::JumpToBase {
                at: at(),
                chain: c.clone(),
            }),
            Some(_) => Ok(()),
        },
        Verdict::Dispatch { map, .. } if !ruleset.maps.contains_key(map) => Err(IrError::Missing {
            at: at(),
            kind: "map",
            name: map.clone(),
        }),
        _ => Ok(()),
    }
}

/// A rule's addresses, inline or in sets, are of the one family the rule matches.
fn check_families(ruleset: &Ruleset, rule: &Rule, at: &dyn Fn() -> String) -> Result<(), IrError> {
    let family = rule.matches.iter().find_map(|m| match m {
        Match::Ipv4(v4) => Some(*v4),
        _ => None,
    });
    for m in &rule.matches {
        let set = match m {
            Match::AddrEq { addr, .. } if family != Some(addr.is_ipv4()) => {
                return Err(IrError::WrongFamily {
                    at: at(),
                    addr: *addr,
                });
            }
            Match::AddrInSet { set, .. } | Match::AddrProtoPortInSet { set, .. } => set,
            _ => continue,
        };
        // The set exists: check_commit ran first.
        let key_v4 = ruleset.sets.get(set).map(|s| s.key.is_ipv4());
        if family.is_none() || key_v4.is_some_and(|v4| Some(v4) != family) {
            return Err(IrError::SetKind {
                at: at(),
                set: set.clone(),
            });
        }
    }
    Ok(())
}

/// The chains a chain can enter directly (by jump, goto, or through a verdict map).
fn successors<'r>(ruleset: &'r Ruleset, chain: &str) -> Vec<&'r str> {
    let mut out = Vec::new();
    let Some(c) = ruleset.chains.get(chain) else {
        return out;
    };
    let mut push = |v: &'r Verdict| {
        if let Verdict::Jump(t) | Verdict::Goto(t) = v {
            out.push(t.as_str());
        }
    };
    for rule in &c.rules {
        match &rule.verdict {
            Some(Verdict::Dispatch { map, .. }) => {
                if let Some(m) = ruleset.maps.get(map) {
                    m.elements.values().for_each(&mut push);
                }
            }
            Some(v) => push(v),
            None => {}
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    InProgress,
    /// Done; the deepest nesting below this chain.
    Done(usize),
}

/// Rejects loops anywhere and nesting below a base chain deeper than the jump stack (a
/// `goto` counts like a `jump` here, as the kernel's validation does).
fn check_nesting(ruleset: &Ruleset) -> Result<(), IrError> {
    let mut state: BTreeMap<&str, Visit> = BTreeMap::new();
    for (name, chain) in &ruleset.chains {
        let depth = depth_below(ruleset, name, &mut state)?;
        if chain.base.is_some() && depth > MAX_JUMP_DEPTH {
            return Err(IrError::TooDeep(name.clone()));
        }
    }
    Ok(())
}

fn depth_below<'r>(
    ruleset: &'r Ruleset,
    chain: &'r str,
    state: &mut BTreeMap<&'r str, Visit>,
) -> Result<usize, IrError> {
    match state.get(chain) {
        Some(Visit::InProgress) => return Err(IrError::Loop(chain.to_string())),
        Some(Visit::Done(d)) => return Ok(*d),
        None => {}
    }
    state.insert(chain, Visit::InProgress);
    let mut deepest = 0;
    for next in successors(ruleset, chain) {
        deepest = deepest.max(1 + depth_below(ruleset, next, state)?);
    }
    state.insert(chain, Visit::Done(deepest));
    Ok(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ir::Chain;

    fn one_rule(rule: Rule) -> Ruleset {
        let mut r = Ruleset::default();
        r.chains.insert(
            "c".into(),
            Chain {
                base: None,
                rules: vec![rule],
            },
        );
        r
    }

    fn log(prefix: &str, rate: Option<u32>) -> Statement {
        Statement::NfLog {
            group: 1,
            prefix: prefix.into(),
            rate,
        }
    }

    #[test]
    fn netlink_log_prefixes_fit_the_kernel() {
        let ok = one_rule(Rule {
            statements: vec![log(&"x".repeat(MAX_LOG_PREFIX), None)],
            ..Rule::default()
        });
        assert_eq!(check_commit(&ok), Ok(()));
        for bad in ["x".repeat(MAX_LOG_PREFIX + 1), "a\0b".into()] {
            let r = one_rule(Rule {
                statements: vec![log(&bad, None)],
                ..Rule::default()
            });
            assert!(matches!(check_commit(&r), Err(IrError::LogPrefix { .. })));
        }
    }

    #[test]
    fn a_flow_ref_is_the_last_statement_and_fits_a_prefix() {
        let flow_ref = |s: &str| Statement::FlowRef(s.into());
        let ok = one_rule(Rule {
            statements: vec![Statement::SetMark(1), flow_ref("A c 1")],
            ..Rule::new(vec![], Verdict::Accept)
        });
        assert_eq!(check(&ok), Ok(()));
        for statements in [
            vec![flow_ref("A c 1"), Statement::SetMark(1)],
            vec![flow_ref("A c 1"), flow_ref("A c 2")],
        ] {
            let r = one_rule(Rule {
                statements,
                ..Rule::default()
            });
            assert!(matches!(
                check_commit(&r),
                Err(IrError::FlowRefNotLast { .. })
            ));
        }
        let long = one_rule(Rule {
            statements: vec![flow_ref(&"x".repeat(MAX_LOG_PREFIX + 1))],
            ..Rule::default()
        });
        assert!(matches!(
            check_commit(&long),
            Err(IrError::LogPrefix { .. })
        ));
    }

    #[test]
    fn a_rate_limited_log_ends_a_rule_without_verdict() {
        let last = one_rule(Rule {
            statements: vec![Statement::SetMark(1), log("p", Some(5))],
            ..Rule::default()
        });
        assert_eq!(check(&last), Ok(()));
        let unlimited = one_rule(Rule::new(vec![], Verdict::Accept));
        let mut unlimited = unlimited;
        unlimited.chains.get_mut("c").unwrap().rules[0]
            .statements
            .push(log("p", None));
        assert_eq!(check(&unlimited), Ok(()));
        for rule in [
            Rule {
                statements: vec![log("p", Some(5))],
                ..Rule::new(vec![], Verdict::Drop)
            },
            Rule {
                statements: vec![log("p", Some(5)), Statement::SetMark(1)],
                ..Rule::default()
            },
        ] {
            assert!(matches!(
                check(&one_rule(rule)),
                Err(IrError::LimitedLogNotLast { .. })
            ));
        }
    }
}
