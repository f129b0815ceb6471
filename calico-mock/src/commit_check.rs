//! The checks the kernel makes when an nftables transaction commits, applied to a whole
//! [`Ruleset`]: a transaction that would leave the table in a state the kernel refuses is
//! refused as a whole.
//!
//! What is checked, with the kernel's answer in brackets:
//!
//! * a rule's set lookup names a set of the right kind: an address match a plain or interval
//!   address set, an `addr . proto . port` match a concatenated set (`EINVAL`, type mismatch);
//! * elements of an interval set do not overlap (`EEXIST`, conflicting intervals);
//! * a port range has `min <= max` (`EINVAL`);
//! * `jump`/`goto` never target a base chain (`EOPNOTSUPP`), never loop (`ELOOP`), and never
//!   nest deeper than the jump stack of 16 (`EMLINK`);
//! * a verdict map's values are plain verdicts (a map value cannot be another map lookup).
//!
//! Dangling references (a rule or map element naming a missing chain, set or map) are
//! refused while the change set is applied (`calico_core::dataplane::ChangeSet::apply_to`);
//! [`commit_check`] refuses them too, so a ruleset can be checked on its own.

use std::collections::BTreeMap;

use calico_core::dataplane::ir::{Match, Ruleset, SetElement, Verdict};
use ipnet::IpNet;

/// Deepest chain nesting the kernel accepts (`NFT_JUMP_STACK_SIZE`).
pub const MAX_JUMP_DEPTH: usize = 16;

/// Why the kernel would refuse a ruleset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
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
    /// A set lookup uses a set whose key does not fit the match.
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
}

/// Checks `ruleset` as the kernel checks a table when a transaction commits.
pub fn commit_check(ruleset: &Ruleset) -> Result<(), CommitError> {
    check_sets(ruleset)?;
    for (name, chain) in &ruleset.chains {
        for (i, rule) in chain.rules.iter().enumerate() {
            let at = || format!("chain {name} rule {i}");
            for m in &rule.matches {
                check_match(ruleset, m, &at)?;
            }
            if let Some(v) = &rule.verdict {
                check_verdict(ruleset, v, &at)?;
            }
        }
    }
    for (name, map) in &ruleset.maps {
        for v in map.elements.values() {
            if matches!(v, Verdict::Dispatch { .. }) {
                return Err(CommitError::NestedDispatch(name.clone()));
            }
            check_verdict(ruleset, v, &|| format!("map {name}"))?;
        }
    }
    check_nesting(ruleset)
}

fn check_sets(ruleset: &Ruleset) -> Result<(), CommitError> {
    for (name, set) in &ruleset.sets {
        if !set.key.is_interval() {
            continue;
        }
        let nets: Vec<IpNet> = set
            .elements
            .iter()
            .filter_map(|e| match e {
                SetElement::Net(n) => Some(*n),
                _ => None,
            })
            .collect();
        // Sorted by network address; CIDRs either nest or are disjoint, so checking
        // neighbours after sorting by (start, prefix) finds any overlap.
        let mut sorted = nets;
        sorted.sort_by_key(|n| (n.network(), n.prefix_len()));
        for pair in sorted.windows(2) {
            if pair[0].contains(&pair[1].network()) {
                return Err(CommitError::Overlap {
                    set: name.clone(),
                    a: pair[0],
                    b: pair[1],
                });
            }
        }
    }
    Ok(())
}

fn check_match(ruleset: &Ruleset, m: &Match, at: &dyn Fn() -> String) -> Result<(), CommitError> {
    let (set, concat) = match m {
        Match::AddrInSet { set, .. } => (set, false),
        Match::AddrProtoPortInSet { set, .. } => (set, true),
        Match::Port { ranges, .. } => {
            if let Some((min, max)) = ranges.iter().find(|(lo, hi)| lo > hi) {
                return Err(CommitError::EmptyRange {
                    at: at(),
                    min: *min,
                    max: *max,
                });
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    let s = ruleset.sets.get(set).ok_or_else(|| CommitError::Missing {
        at: at(),
        kind: "set",
        name: set.clone(),
    })?;
    if s.key.is_concat() != concat {
        return Err(CommitError::SetKind {
            at: at(),
            set: set.clone(),
        });
    }
    Ok(())
}

fn check_verdict(
    ruleset: &Ruleset,
    v: &Verdict,
    at: &dyn Fn() -> String,
) -> Result<(), CommitError> {
    match v {
        Verdict::Jump(c) | Verdict::Goto(c) => match ruleset.chains.get(c) {
            None => Err(CommitError::Missing {
                at: at(),
                kind: "chain",
                name: c.clone(),
            }),
            Some(chain) if chain.base.is_some() => Err(CommitError::JumpToBase {
                at: at(),
                chain: c.clone(),
            }),
            Some(_) => Ok(()),
        },
        Verdict::Dispatch { map, .. } if !ruleset.maps.contains_key(map) => {
            Err(CommitError::Missing {
                at: at(),
                kind: "map",
                name: map.clone(),
            })
        }
        _ => Ok(()),
    }
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
fn check_nesting(ruleset: &Ruleset) -> Result<(), CommitError> {
    let mut state: BTreeMap<&str, Visit> = BTreeMap::new();
    for (name, chain) in &ruleset.chains {
        let depth = depth_below(ruleset, name, &mut state)?;
        if chain.base.is_some() && depth > MAX_JUMP_DEPTH {
            return Err(CommitError::TooDeep(name.clone()));
        }
    }
    Ok(())
}

fn depth_below<'r>(
    ruleset: &'r Ruleset,
    chain: &'r str,
    state: &mut BTreeMap<&'r str, Visit>,
) -> Result<usize, CommitError> {
    match state.get(chain) {
        Some(Visit::InProgress) => return Err(CommitError::Loop(chain.to_string())),
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
