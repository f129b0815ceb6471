//! Change sets between two [`Ruleset`]s, and applying them with nftables' strictness.

use std::collections::{BTreeMap, BTreeSet};

use super::ir::{BaseChain, Rule, Ruleset, Set, SetElement, SetKey, Verdict, VerdictMap};

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

fn apply_one(r: &mut Ruleset, c: &Change) -> Result<(), String> {
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
            if references(r).sets.contains(name) {
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
            if references(r).maps.contains(name) {
                return Err(format!("map {name} is in use"));
            }
        }
        Change::AddChain { name, base } => {
            if r.chains.contains_key(name) {
                return Err(format!("chain {name} exists"));
            }
            r.chains.insert(
                name.clone(),
                super::ir::Chain {
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
            if references(r).chains.contains(name) {
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
    use super::ir::Match;
    for m in &rule.matches {
        if let Match::AddrInSet { set, .. } | Match::AddrProtoPortInSet { set, .. } = m {
            if !r.sets.contains_key(set) {
                return Err(format!("no set {set}"));
            }
        }
    }
    Ok(())
}

/// Names referred to by rules and map elements.
#[derive(Default)]
pub(crate) struct References {
    pub(crate) sets: BTreeSet<String>,
    pub(crate) maps: BTreeSet<String>,
    pub(crate) chains: BTreeSet<String>,
}

pub(crate) fn references(r: &Ruleset) -> References {
    use super::ir::Match;
    let mut refs = References::default();
    let verdict = |v: &Verdict, refs: &mut References| match v {
        Verdict::Jump(c) | Verdict::Goto(c) => {
            refs.chains.insert(c.clone());
        }
        Verdict::Dispatch { map, .. } => {
            refs.maps.insert(map.clone());
        }
        _ => {}
    };
    for chain in r.chains.values() {
        for rule in &chain.rules {
            for m in &rule.matches {
                if let Match::AddrInSet { set, .. } | Match::AddrProtoPortInSet { set, .. } = m {
                    refs.sets.insert(set.clone());
                }
            }
            if let Some(v) = &rule.verdict {
                verdict(v, &mut refs);
            }
        }
    }
    for map in r.maps.values() {
        for v in map.elements.values() {
            verdict(v, &mut refs);
        }
    }
    refs
}

/// The minimal change set that turns `old` into `new`: untouched objects are not mentioned, a
/// set whose members changed gets element operations only, a chain whose rules changed gets
/// its rules replaced, never deleted and re-created.
pub fn diff(old: &Ruleset, new: &Ruleset) -> ChangeSet {
    let sets: BTreeSet<&String> = old.sets.keys().chain(new.sets.keys()).collect();
    let maps: BTreeSet<&String> = old.maps.keys().chain(new.maps.keys()).collect();
    let chains: BTreeSet<&String> = old.chains.keys().chain(new.chains.keys()).collect();
    let touched = Touched {
        sets: sets.into_iter().cloned().collect(),
        maps: maps.into_iter().cloned().collect(),
        chains: chains.into_iter().cloned().collect(),
        set_elements: BTreeMap::new(),
        map_elements: BTreeMap::new(),
    };
    diff_keys(old, new, touched)
}

/// What an incremental update touched: whole objects (their old versions are in the `old`
/// ruleset given to [`diff_keys`] when they existed) and single elements of sets and maps
/// that are otherwise unchanged (with their old state).
pub(crate) struct Touched {
    pub sets: BTreeSet<String>,
    pub maps: BTreeSet<String>,
    pub chains: BTreeSet<String>,
    /// Set → element → whether it was present.
    pub set_elements: BTreeMap<String, BTreeMap<SetElement, bool>>,
    /// Map → key → old verdict.
    pub map_elements: BTreeMap<String, BTreeMap<String, Option<Verdict>>>,
}

/// [`diff`] restricted to what an incremental update touched.
pub(crate) fn diff_keys(old: &Ruleset, new: &Ruleset, touched: Touched) -> ChangeSet {
    let Touched {
        sets,
        maps,
        chains,
        set_elements,
        map_elements,
    } = touched;
    // Element records of objects that are also touched whole are covered by the whole diff.
    let set_elements: Vec<(&String, &BTreeMap<SetElement, bool>)> = set_elements
        .iter()
        .filter(|(name, _)| !sets.contains(*name) && new.sets.contains_key(*name))
        .collect();
    let map_elements: Vec<(&String, &BTreeMap<String, Option<Verdict>>)> = map_elements
        .iter()
        .filter(|(name, _)| !maps.contains(*name) && new.maps.contains_key(*name))
        .collect();
    let mut c = Vec::new();
    // 1. Sets and their new elements.
    for name in &sets {
        let (o, n) = (old.sets.get(name), new.sets.get(name));
        match (o, n) {
            (None, Some(n)) => {
                c.push(Change::AddSet {
                    name: name.clone(),
                    key: n.key,
                });
                if !n.elements.is_empty() {
                    c.push(Change::AddElements {
                        set: name.clone(),
                        elements: n.elements.iter().copied().collect(),
                    });
                }
            }
            (Some(o), Some(n)) if o.key == n.key => {
                let added: Vec<SetElement> = n.elements.difference(&o.elements).copied().collect();
                if !added.is_empty() {
                    c.push(Change::AddElements {
                        set: name.clone(),
                        elements: added,
                    });
                }
            }
            _ => {}
        }
    }
    for (name, touched) in &set_elements {
        let elements = &new.sets[*name].elements;
        let added: Vec<SetElement> = touched
            .iter()
            .filter(|(e, was)| !**was && elements.contains(*e))
            .map(|(e, _)| *e)
            .collect();
        if !added.is_empty() {
            c.push(Change::AddElements {
                set: (*name).clone(),
                elements: added,
            });
        }
    }
    // 2. New maps and chains (empty), so that rules and elements can refer to them.
    for name in &maps {
        if !old.maps.contains_key(name) && new.maps.contains_key(name) {
            c.push(Change::AddMap { name: name.clone() });
        }
    }
    for name in &chains {
        if let (None, Some(n)) = (old.chains.get(name), new.chains.get(name)) {
            c.push(Change::AddChain {
                name: name.clone(),
                base: n.base,
            });
        }
    }
    // 3. Rules of new and changed chains.
    for name in &chains {
        match (old.chains.get(name), new.chains.get(name)) {
            (None, Some(n)) if !n.rules.is_empty() => c.push(Change::SetRules {
                chain: name.clone(),
                rules: n.rules.clone(),
            }),
            (Some(o), Some(n)) if o.rules != n.rules => c.push(Change::SetRules {
                chain: name.clone(),
                rules: n.rules.clone(),
            }),
            _ => {}
        }
    }
    // 4. Map elements: removed and changed keys out, then new and changed keys in.
    for name in &maps {
        let empty = VerdictMap::default();
        let o = old.maps.get(name).unwrap_or(&empty);
        let Some(n) = new.maps.get(name) else {
            continue;
        };
        let removed: Vec<String> = o
            .elements
            .iter()
            .filter(|(k, v)| n.elements.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        if !removed.is_empty() {
            c.push(Change::DelMapElements {
                map: name.clone(),
                keys: removed,
            });
        }
        let added: Vec<(String, Verdict)> = n
            .elements
            .iter()
            .filter(|(k, v)| o.elements.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !added.is_empty() {
            c.push(Change::AddMapElements {
                map: name.clone(),
                elements: added,
            });
        }
    }
    for (name, touched) in &map_elements {
        let elements = &new.maps[*name].elements;
        let removed: Vec<String> = touched
            .iter()
            .filter(|(k, old)| old.is_some() && elements.get(*k) != old.as_ref())
            .map(|(k, _)| k.clone())
            .collect();
        if !removed.is_empty() {
            c.push(Change::DelMapElements {
                map: (*name).clone(),
                keys: removed,
            });
        }
        let added: Vec<(String, Verdict)> = touched
            .iter()
            .filter_map(|(k, old)| match elements.get(k) {
                Some(v) if old.as_ref() != Some(v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect();
        if !added.is_empty() {
            c.push(Change::AddMapElements {
                map: (*name).clone(),
                elements: added,
            });
        }
    }
    // 5. Removals, in reverse dependency order. Deleted chains first lose their rules, so
    //    that chains referring to each other can all go in one transaction.
    let gone: Vec<&String> = chains
        .iter()
        .filter(|n| old.chains.contains_key(*n) && !new.chains.contains_key(*n))
        .collect();
    for name in &gone {
        if !old.chains[*name].rules.is_empty() {
            c.push(Change::SetRules {
                chain: (*name).clone(),
                rules: Vec::new(),
            });
        }
    }
    for name in &maps {
        if old.maps.contains_key(name) && !new.maps.contains_key(name) {
            c.push(Change::DelMap { name: name.clone() });
        }
    }
    for name in gone {
        c.push(Change::DelChain { name: name.clone() });
    }
    for name in &sets {
        match (old.sets.get(name), new.sets.get(name)) {
            (Some(o), Some(n)) if o.key == n.key => {
                let removed: Vec<SetElement> =
                    o.elements.difference(&n.elements).copied().collect();
                if !removed.is_empty() {
                    c.push(Change::DelElements {
                        set: name.clone(),
                        elements: removed,
                    });
                }
            }
            (Some(_), None) => c.push(Change::DelSet { name: name.clone() }),
            _ => {}
        }
    }
    for (name, touched) in &set_elements {
        let elements = &new.sets[*name].elements;
        let removed: Vec<SetElement> = touched
            .iter()
            .filter(|(e, was)| **was && !elements.contains(*e))
            .map(|(e, _)| *e)
            .collect();
        if !removed.is_empty() {
            c.push(Change::DelElements {
                set: (*name).clone(),
                elements: removed,
            });
        }
    }
    // A set whose key type changed under the same name: delete it last and re-create it.
    // (Names hash the identity, which includes the family, so this does not happen for
    // compiled rulesets; handled for completeness.)
    let rekeyed: Vec<(String, SetKey, BTreeSet<SetElement>)> = sets
        .iter()
        .filter_map(|name| match (old.sets.get(name), new.sets.get(name)) {
            (Some(o), Some(n)) if o.key != n.key => Some((name.clone(), n.key, n.elements.clone())),
            _ => None,
        })
        .collect();
    for (name, key, elements) in rekeyed {
        c.push(Change::DelSet { name: name.clone() });
        c.push(Change::AddSet {
            name: name.clone(),
            key,
        });
        if !elements.is_empty() {
            c.push(Change::AddElements {
                set: name,
                elements: elements.into_iter().collect(),
            });
        }
    }
    ChangeSet { changes: c }
}
