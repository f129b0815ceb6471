//! The minimal [`ChangeSet`] between two [`Ruleset`]s, whole or restricted to what an
//! incremental update touched.

use std::collections::{BTreeMap, BTreeSet};

use super::change::{Change, ChangeSet};
use super::ir::{Ruleset, SetElement, SetKey, Verdict, VerdictMap};

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
    add_sets(old, new, &sets, &set_elements, &mut c);
    add_maps_and_chains(old, new, &maps, &chains, &mut c);
    set_rules(old, new, &chains, &mut c);
    change_map_elements(old, new, &maps, &map_elements, &mut c);
    remove(old, new, (&sets, &maps, &chains), &set_elements, &mut c);
    rekey_sets(old, new, &sets, &mut c);
    ChangeSet { changes: c }
}

/// Step 1: new sets and the elements that enter sets (interval sets: after those that leave).
fn add_sets(
    old: &Ruleset,
    new: &Ruleset,
    sets: &BTreeSet<String>,
    set_elements: &[(&String, &BTreeMap<SetElement, bool>)],
    c: &mut Vec<Change>,
) {
    // 1. Sets and their new elements.
    for name in sets {
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
                if n.key.is_interval() {
                    removed_elements(name, o.elements.difference(&n.elements), c);
                }
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
    for (name, touched) in set_elements {
        let set = &new.sets[*name];
        let elements = &set.elements;
        if set.key.is_interval() {
            let removed = touched
                .iter()
                .filter(|(e, was)| **was && !elements.contains(*e))
                .map(|(e, _)| e);
            removed_elements(name, removed, c);
        }
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
}

/// Removes elements of an interval set ahead of its additions: a network that replaces the
/// ones it covers (or the reverse) must not overlap them for an instant, which the kernel
/// refuses. Removing first is safe: a change set is applied in one transaction.
fn removed_elements<'a>(
    name: &str,
    removed: impl Iterator<Item = &'a SetElement>,
    c: &mut Vec<Change>,
) {
    let removed: Vec<SetElement> = removed.copied().collect();
    if !removed.is_empty() {
        c.push(Change::DelElements {
            set: name.to_string(),
            elements: removed,
        });
    }
}

/// Step 2: new maps and chains (empty), so that rules and elements can refer to them.
fn add_maps_and_chains(
    old: &Ruleset,
    new: &Ruleset,
    maps: &BTreeSet<String>,
    chains: &BTreeSet<String>,
    c: &mut Vec<Change>,
) {
    // 2. New maps and chains (empty), so that rules and elements can refer to them.
    for name in maps {
        if !old.maps.contains_key(name) && new.maps.contains_key(name) {
            c.push(Change::AddMap { name: name.clone() });
        }
    }
    for name in chains {
        if let (None, Some(n)) = (old.chains.get(name), new.chains.get(name)) {
            c.push(Change::AddChain {
                name: name.clone(),
                base: n.base,
            });
        }
    }
}

/// Step 3: rules of new and changed chains.
fn set_rules(old: &Ruleset, new: &Ruleset, chains: &BTreeSet<String>, c: &mut Vec<Change>) {
    // 3. Rules of new and changed chains.
    for name in chains {
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
}

/// Step 4: map elements: removed and changed keys out, then new and changed keys in.
fn change_map_elements(
    old: &Ruleset,
    new: &Ruleset,
    maps: &BTreeSet<String>,
    map_elements: &[(&String, &BTreeMap<String, Option<Verdict>>)],
    c: &mut Vec<Change>,
) {
    // 4. Map elements: removed and changed keys out, then new and changed keys in.
    for name in maps {
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
    for (name, touched) in map_elements {
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
}

/// Step 5: removals, in reverse dependency order.
fn remove(
    old: &Ruleset,
    new: &Ruleset,
    (sets, maps, chains): (&BTreeSet<String>, &BTreeSet<String>, &BTreeSet<String>),
    set_elements: &[(&String, &BTreeMap<SetElement, bool>)],
    c: &mut Vec<Change>,
) {
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
    for name in maps {
        if old.maps.contains_key(name) && !new.maps.contains_key(name) {
            c.push(Change::DelMap { name: name.clone() });
        }
    }
    for name in gone {
        c.push(Change::DelChain { name: name.clone() });
    }
    for name in sets {
        match (old.sets.get(name), new.sets.get(name)) {
            (Some(o), Some(n)) if o.key == n.key && !n.key.is_interval() => {
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
    for (name, touched) in set_elements {
        if new.sets[*name].key.is_interval() {
            continue; // removed before the additions (step 1)
        }
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
}

/// Step 6: sets whose key type changed under the same name are deleted and re-created.
fn rekey_sets(old: &Ruleset, new: &Ruleset, sets: &BTreeSet<String>, c: &mut Vec<Change>) {
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
}
