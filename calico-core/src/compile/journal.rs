//! [`Journal`]: the compiled ruleset, and a record of what changed in it since the last
//! [`Journal::take_changes`], so that a change set costs what an update touched, not a diff
//! of the whole ruleset.

use std::collections::{BTreeMap, BTreeSet};

use crate::dataplane::ir::{Chain, Ruleset, Set, SetElement, Verdict, VerdictMap};
use crate::dataplane::{diff_keys, ChangeSet, Touched};

/// The ruleset and its change record. Every write to the ruleset goes through it.
#[derive(Clone, Debug, Default)]
pub(super) struct Journal {
    ruleset: Ruleset,
    /// Old versions of objects touched since the last `take_changes` (`None`: did not exist).
    before_sets: BTreeMap<String, Option<Set>>,
    before_maps: BTreeMap<String, Option<VerdictMap>>,
    before_chains: BTreeMap<String, Option<Chain>>,
    /// Elements added to or removed from sets that are not in `before_sets`, with whether
    /// each was present before: a set's membership change costs the elements it touches,
    /// not a copy of the set.
    before_set_elements: BTreeMap<String, BTreeMap<SetElement, bool>>,
    /// The same for verdict map elements: the old verdict of each touched key.
    before_map_elements: BTreeMap<String, BTreeMap<String, Option<Verdict>>>,
}

impl Journal {
    /// The current ruleset.
    pub(super) fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The ruleset, the record dropped.
    pub(super) fn into_ruleset(self) -> Ruleset {
        self.ruleset
    }

    /// The changes made since the last call, in dependency order.
    pub(super) fn take_changes(&mut self) -> ChangeSet {
        let (sets_before, sets) = split_before(&mut self.before_sets);
        let (maps_before, maps) = split_before(&mut self.before_maps);
        let (chains_before, chains) = split_before(&mut self.before_chains);
        let before = Ruleset {
            sets: sets_before,
            maps: maps_before,
            chains: chains_before,
        };
        let touched = Touched {
            sets,
            maps,
            chains,
            set_elements: std::mem::take(&mut self.before_set_elements),
            map_elements: std::mem::take(&mut self.before_map_elements),
        };
        diff_keys(&before, &self.ruleset, touched)
    }

    /// Creates, replaces (`Some`) or deletes (`None`) a whole set.
    pub(super) fn put_set(&mut self, name: &str, set: Option<Set>) {
        if !self.before_sets.contains_key(name) {
            let mut before = self.ruleset.sets.get(name).cloned();
            // Undo this round's element changes, so the copy is the set as it was.
            if let Some(touched) = self.before_set_elements.remove(name) {
                if let Some(b) = before.as_mut() {
                    for (e, was) in touched {
                        if was {
                            b.elements.insert(e);
                        } else {
                            b.elements.remove(&e);
                        }
                    }
                }
            }
            self.before_sets.insert(name.to_string(), before);
        }
        match (set, self.ruleset.sets.get_mut(name)) {
            (Some(s), Some(slot)) => *slot = s,
            (Some(s), None) => {
                self.ruleset.sets.insert(name.to_string(), s);
            }
            (None, _) => {
                self.ruleset.sets.remove(name);
            }
        }
    }

    /// Adds (`present`) or removes one element of an existing set, recording its old state.
    pub(super) fn set_element(&mut self, name: &str, e: SetElement, present: bool) {
        let Some(set) = self.ruleset.sets.get_mut(name) else {
            return;
        };
        let changed = if present {
            set.elements.insert(e)
        } else {
            set.elements.remove(&e)
        };
        if !changed || self.before_sets.contains_key(name) {
            return;
        }
        if !self.before_set_elements.contains_key(name) {
            self.before_set_elements
                .insert(name.to_string(), BTreeMap::new());
        }
        if let Some(touched) = self.before_set_elements.get_mut(name) {
            touched.entry(e).or_insert(!present);
        }
    }

    /// Creates, replaces (`Some`) or deletes (`None`) a whole verdict map.
    pub(super) fn put_map(&mut self, name: &str, map: Option<VerdictMap>) {
        if !self.before_maps.contains_key(name) {
            let mut before = self.ruleset.maps.get(name).cloned();
            // Undo this round's element changes, so the copy is the map as it was.
            if let Some(touched) = self.before_map_elements.remove(name) {
                if let Some(b) = before.as_mut() {
                    for (key, old) in touched {
                        match old {
                            Some(v) => b.elements.insert(key, v),
                            None => b.elements.remove(&key),
                        };
                    }
                }
            }
            self.before_maps.insert(name.to_string(), before);
        }
        match map {
            Some(m) => self.ruleset.maps.insert(name.to_string(), m),
            None => self.ruleset.maps.remove(name),
        };
    }

    /// Sets (`Some`) or removes one element of an existing map, recording its old verdict.
    pub(super) fn map_element(&mut self, name: &str, key: &str, verdict: Option<Verdict>) {
        let Some(map) = self.ruleset.maps.get_mut(name) else {
            return;
        };
        if map.elements.get(key) == verdict.as_ref() {
            return;
        }
        let old = match verdict {
            Some(v) => map.elements.insert(key.to_string(), v),
            None => map.elements.remove(key),
        };
        if self.before_maps.contains_key(name) {
            return;
        }
        if !self.before_map_elements.contains_key(name) {
            self.before_map_elements
                .insert(name.to_string(), BTreeMap::new());
        }
        if let Some(touched) = self.before_map_elements.get_mut(name) {
            touched.entry(key.to_string()).or_insert(old);
        }
    }

    /// Creates, replaces (`Some`) or deletes (`None`) a chain; an equal chain is left alone.
    pub(super) fn put_chain(&mut self, name: &str, chain: Option<Chain>) {
        if self.ruleset.chains.get(name) == chain.as_ref() {
            return;
        }
        if !self.before_chains.contains_key(name) {
            let before = self.ruleset.chains.get(name).cloned();
            self.before_chains.insert(name.to_string(), before);
        }
        match (chain, self.ruleset.chains.get_mut(name)) {
            (Some(c), Some(slot)) => *slot = c,
            (Some(c), None) => {
                self.ruleset.chains.insert(name.to_string(), c);
            }
            (None, _) => {
                self.ruleset.chains.remove(name);
            }
        }
    }
}

/// Empties a record of touched objects into the old versions that existed and the names of
/// all touched ones (no copies).
fn split_before<T>(
    before: &mut BTreeMap<String, Option<T>>,
) -> (BTreeMap<String, T>, BTreeSet<String>) {
    let mut existing = BTreeMap::new();
    let mut names = BTreeSet::new();
    for (name, old) in std::mem::take(before) {
        if let Some(old) = old {
            existing.insert(name.clone(), old);
        }
        names.insert(name);
    }
    (existing, names)
}
