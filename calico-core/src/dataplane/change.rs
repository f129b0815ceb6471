//! [`ChangeSet`]: the ordered operations a backend applies, and applying them to a
//! [`Ruleset`] with nftables' strictness.

use std::collections::BTreeSet;

use super::ir::{
    BaseChain, Chain, Match, Rule, Ruleset, Set, SetElement, SetKey, Verdict, VerdictMap,
};

/// One operation on the dataplane's ruleset.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Create an empty set.
    AddSet {
        /// Name.
        name: String,
        /// Key type.
        key: SetKey,
    },
    /// Add elements to a set (none of them may be present).
    AddElements {
        /// Set name.
        set: String,
        /// Elements.
        elements: Vec<SetElement>,
    },
    /// Create an empty verdict map.
    AddMap {
        /// Name.
        name: String,
    },
    /// Create an empty chain (a base chain when `base` is set).
    AddChain {
        /// Name.
        name: String,
        /// Hook, priority and policy of a base chain.
        base: Option<BaseChain>,
    },
    /// Replace all rules of a chain.
    SetRules {
        /// Chain name.
        chain: String,
        /// The new rules.
        rules: Vec<Rule>,
    },
    /// Remove map elements (all must be present).
    DelMapElements {
        /// Map name.
        map: String,
        /// Keys.
        keys: Vec<String>,
    },
    /// Add map elements (none may be present).
    AddMapElements {
        /// Map name.
        map: String,
        /// Key → verdict.
        elements: Vec<(String, Verdict)>,
    },
    /// Delete a chain (no rule or map element may refer to it any more).
    DelChain {
        /// Name.
        name: String,
    },
    /// Delete a map.
    DelMap {
        /// Name.
        name: String,
    },
    /// Remove elements from a set (all must be present).
    DelElements {
        /// Set name.
        set: String,
        /// Elements.
        elements: Vec<SetElement>,
    },
    /// Delete a set.
    DelSet {
        /// Name.
        name: String,
    },
}

/// An ordered list of changes: objects are created before anything refers to them and
/// deleted after nothing does. A backend applies it atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChangeSet {
    /// The changes, in order.
    pub changes: Vec<Change>,
}

impl ChangeSet {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// What applying it writes: one per operation, plus one per rule and per element it
    /// carries. A measure of a change set's cost that does not depend on the backend (a
    /// chain of 2,000 rules rewritten weighs 2,001 however it is encoded), for comparing an
    /// incremental change with a snapshot of the same result.
    ///
    /// ```
    /// use calico_core::dataplane::{Change, ChangeSet};
    /// let c = ChangeSet { changes: vec![Change::DelChain { name: "x".into() }] };
    /// assert_eq!(c.weight(), 1);
    /// ```
    pub fn weight(&self) -> usize {
        self.changes
            .iter()
            .map(|c| {
                1 + match c {
                    Change::AddElements { elements, .. } | Change::DelElements { elements, .. } => {
                        elements.len()
                    }
                    Change::AddMapElements { elements, .. } => elements.len(),
                    Change::DelMapElements { keys, .. } => keys.len(),
                    Change::SetRules { rules, .. } => rules.len(),
                    Change::AddSet { .. }
                    | Change::AddMap { .. }
                    | Change::AddChain { .. }
                    | Change::DelChain { .. }
                    | Change::DelMap { .. }
                    | Change::DelSet { .. } => 0,
                }
            })
            .sum()
    }

    /// Applies the changes to `ruleset`, failing exactly where nftables would (adding what
    /// exists, deleting what does not, deleting a chain still referred to). On error the
    /// ruleset is unchanged.
    pub fn apply_to(&self, ruleset: &mut Ruleset) -> Result<(), ApplyError> {
        let mut next = ruleset.clone();
        for (i, c) in self.changes.iter().enumerate() {
            apply_one(&mut next, c).map_err(|reason| ApplyError { index: i, reason })?;
        }
        *ruleset = next;
        Ok(())
    }
}

/// A change that the dataplane would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("change #{index} refused: {reason}")]
pub struct ApplyError {
    /// Index of the refused change.
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// An element of the interval set `s` that overlaps the network `e` (other than `e` itself).
fn overlapping(s: &Set, e: &SetElement) -> Option<SetElement> {
    let SetElement::Net(n) = e else {
        return None;
    };
    s.elements.iter().copied().find(|o| match o {
        SetElement::Net(m) => m != n && (m.contains(&n.network()) || n.contains(&m.network())),
        _ => false,
    })
}

/// Applies one change, failing where nftables would; on error the change may be half
/// applied (its callers keep the ruleset as it was).
pub(super) fn apply_one(r: &mut Ruleset, c: &Change) -> Result<(), String> {
    match c {
        Change::AddSet { name, key } => {
            if r.sets.contains_key(name) {
                return Err(format!("set {name} exists"));
            }
            r.sets.insert(
                name.clone(),
                Set {
                    key: *key,
                    elements: BTreeSet::new(),
                },
            );
        }
        Change::AddElements { set, elements } => {
            let s = r.sets.get_mut(set).ok_or(format!("no set {set}"))?;
            for e in elements {
                if !e.fits(s.key) {
                    return Err(format!("element {e:?} does not fit set {set}"));
                }
                if let Some(other) = overlapping(s, e) {
                    // The kernel refuses it too (interval sets without auto-merge).
                    return Err(format!("element {e:?} overlaps {other:?} in set {set}"));
                }
                if !s.elements.insert(*e) {
                    return Err(format!("element {e:?} exists in set {set}"));
                }
            }
        }
        Change::DelElements { set, elements } => {
            let s = r.sets.get_mut(set).ok_or(format!("no set {set}"))?;
            for e in elements {
                if !s.elements.remove(e) {
                    return Err(format!("element {e:?} not in set {set}"));
                }
            }
        }
        Change::DelSet { name } => {
            r.sets.remove(name).ok_or(format!("no set {name}"))?;
            if referenced(r, Named::Set(name)) {
                return Err(format!("set {name} is in use"));
            }
        }
        Change::AddMap { name } => {
            if r.maps.insert(name.clone(), VerdictMap::default()).is_some() {
                return Err(format!("map {name} exists"));
            }
        }
        Change::AddMapElements { map, elements } => {
            let m = r.maps.get_mut(map).ok_or(format!("no map {map}"))?;
            for (k, v) in elements {
                if m.elements.insert(k.clone(), v.clone()).is_some() {
                    return Err(format!("key {k} exists in map {map}"));
                }
            }
            check_targets(r, elements.iter().map(|(_, v)| v))?;
        }
        Change::DelMapElements { map, keys } => {
            let m = r.maps.get_mut(map).ok_or(format!("no map {map}"))?;
            for k in keys {
                m.elements
                    .remove(k)
                    .ok_or(format!("key {k} not in map {map}"))?;
            }
        }
        Change::DelMap { name } => {
            r.maps.remove(name).ok_or(format!("no map {name}"))?;
            if referenced(r, Named::Map(name)) {
                return Err(format!("map {name} is in use"));
            }
        }
        Change::AddChain { name, base } => {
            if r.chains.contains_key(name) {
                return Err(format!("chain {name} exists"));
            }
            r.chains.insert(
                name.clone(),
                Chain {
                    base: *base,
                    rules: Vec::new(),
                },
            );
        }
        Change::SetRules { chain, rules } => {
            let verdicts: Vec<&Verdict> = rules.iter().filter_map(|r| r.verdict.as_ref()).collect();
            check_targets(r, verdicts.into_iter())?;
            for rule in rules {
                check_rule_refs(r, rule)?;
            }
            r.chains
                .get_mut(chain)
                .ok_or(format!("no chain {chain}"))?
                .rules = rules.clone();
        }
        Change::DelChain { name } => {
            r.chains.remove(name).ok_or(format!("no chain {name}"))?;
            if referenced(r, Named::Chain(name)) {
                return Err(format!("chain {name} is in use"));
            }
        }
    }
    Ok(())
}

fn check_targets<'a>(
    r: &Ruleset,
    verdicts: impl Iterator<Item = &'a Verdict>,
) -> Result<(), String> {
    for v in verdicts {
        match v {
            Verdict::Jump(c) | Verdict::Goto(c) if !r.chains.contains_key(c) => {
                return Err(format!("no chain {c}"))
            }
            Verdict::Dispatch { map, .. } if !r.maps.contains_key(map) => {
                return Err(format!("no map {map}"))
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_rule_refs(r: &Ruleset, rule: &Rule) -> Result<(), String> {
    for m in &rule.matches {
        if let Match::AddrInSet { set, .. } | Match::AddrProtoPortInSet { set, .. } = m {
            if !r.sets.contains_key(set) {
                return Err(format!("no set {set}"));
            }
        }
    }
    Ok(())
}

/// A name a rule or a map element may refer to.
#[derive(Clone, Copy)]
enum Named<'a> {
    Set(&'a str),
    Map(&'a str),
    Chain(&'a str),
}

/// Whether a rule or a map element of `r` refers to `what`: one walk, stopping at the
/// first reference, copying nothing (a deletion in a host's ruleset, which has thousands
/// of chains, pays it).
fn referenced(r: &Ruleset, what: Named<'_>) -> bool {
    let by_verdict = |v: &Verdict| match (v, what) {
        (Verdict::Jump(c) | Verdict::Goto(c), Named::Chain(name)) => c == name,
        (Verdict::Dispatch { map, .. }, Named::Map(name)) => map == name,
        _ => false,
    };
    let by_match = |m: &Match| match (m, what) {
        (
            Match::AddrInSet { set, .. } | Match::AddrProtoPortInSet { set, .. },
            Named::Set(name),
        ) => set == name,
        _ => false,
    };
    let in_rules = r.chains.values().flat_map(|c| &c.rules).any(|rule| {
        rule.matches.iter().any(by_match) || rule.verdict.as_ref().is_some_and(by_verdict)
    });
    in_rules
        || (!matches!(what, Named::Set(_))
            && r.maps
                .values()
                .flat_map(|m| m.elements.values())
                .any(by_verdict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::ir::{IfaceKey, SetKey, Side};

    /// A chain `user` that looks up set `s`, dispatches through map `m` and jumps to
    /// chain `c`; map `m` sends `eth0` to chain `d`.
    fn ruleset() -> Ruleset {
        let mut r = Ruleset::default();
        let set = Change::AddSet {
            name: "s".into(),
            key: SetKey::Ipv4Addr,
        };
        let chains = ["c", "d", "user"].map(|n| Change::AddChain {
            name: n.into(),
            base: None,
        });
        let map = Change::AddMap { name: "m".into() };
        let element = Change::AddMapElements {
            map: "m".into(),
            elements: vec![("eth0".into(), Verdict::Goto("d".into()))],
        };
        let rules = Change::SetRules {
            chain: "user".into(),
            rules: vec![
                Rule::new(
                    vec![Match::AddrInSet {
                        side: Side::Src,
                        set: "s".into(),
                        negate: false,
                    }],
                    Verdict::Dispatch {
                        key: IfaceKey::Input,
                        map: "m".into(),
                    },
                ),
                Rule::new(vec![], Verdict::Jump("c".into())),
            ],
        };
        let mut changes = vec![set];
        changes.extend(chains);
        changes.extend([map, element, rules]);
        ChangeSet { changes }.apply_to(&mut r).unwrap();
        r
    }

    #[test]
    fn what_a_rule_or_a_map_element_refers_to_cannot_be_deleted() {
        for (c, what) in [
            (Change::DelSet { name: "s".into() }, "set s is in use"),
            (Change::DelMap { name: "m".into() }, "map m is in use"),
            (Change::DelChain { name: "c".into() }, "chain c is in use"),
            (Change::DelChain { name: "d".into() }, "chain d is in use"),
        ] {
            let mut r = ruleset();
            let e = ChangeSet { changes: vec![c] }.apply_to(&mut r).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        let mut r = ruleset();
        let unused = Change::DelChain {
            name: "user".into(),
        };
        ChangeSet {
            changes: vec![unused, Change::DelChain { name: "c".into() }],
        }
        .apply_to(&mut r)
        .unwrap();
        assert!(
            !r.chains.contains_key("c"),
            "deleted once nothing refers to it"
        );
    }
}
