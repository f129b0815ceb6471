//! The IR's sets mirrored into the set maps: a change set's set changes become map
//! writes, and no program is touched (a program looks members up by set id).
//!
//! Changes are checked against the IR's rules (the same rules as
//! [`ChangeSet::apply_to`], which the other backends are held to; applied in place
//! with [`ChangeSet::apply_undoable`]) before anything is written, so a refused change writes
//! nothing. The writes themselves are one map operation per element, not one transaction:
//! a packet may meet some elements of a change before the others (nftables applies a
//! change set atomically). If the kernel refuses a write midway, the writes already made
//! are undone before the error is returned.

use std::collections::BTreeMap;
use std::sync::Arc;

use calico_core::dataplane::ir::{Ruleset, Set, SetElement, SetKey};
use calico_core::dataplane::{Change, ChangeSet};

use crate::error::Error;
use crate::sets::{Maps, SetIds};

/// The sets as programmed, their ids, and the maps holding their members.
#[derive(Debug)]
pub struct SetTable {
    maps: Maps,
    ids: SetIds,
    sets: BTreeMap<String, Set>,
}

/// What the sets named by a change set were before it (see [`SetTable::before`]).
#[derive(Default)]
struct Before {
    keys: BTreeMap<String, SetKey>,
    members: BTreeMap<String, Vec<SetElement>>,
}

/// One element write, as done (to undo it on a later failure).
enum Done {
    Added(String, u32, SetKey, SetElement),
    Removed(String, u32, SetKey, SetElement),
}

impl SetTable {
    /// An empty table over `maps`.
    pub fn new(maps: Maps) -> SetTable {
        SetTable {
            maps,
            ids: SetIds::default(),
            sets: BTreeMap::new(),
        }
    }

    /// The maps (for loading programs that look members up in them).
    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// The id of every set, by name (for generating programs).
    pub fn ids(&self) -> &BTreeMap<String, u32> {
        self.ids.ids()
    }

    /// The sets as programmed.
    pub fn sets(&self) -> &BTreeMap<String, Set> {
        &self.sets
    }

    /// The set ids [`SetTable::apply`] of `changes` will leave: for generating programs
    /// before the sets are written.
    pub fn preview_ids(&self, changes: &ChangeSet) -> Result<Arc<BTreeMap<String, u32>>, Error> {
        let adds_or_deletes =
            |c: &Change| matches!(c, Change::AddSet { .. } | Change::DelSet { .. });
        if !changes.changes.iter().any(adds_or_deletes) {
            // Most change sets (an endpoint added, a member changed) keep every id.
            return Ok(self.ids.shared());
        }
        let mut ids = self.ids.clone();
        for c in &changes.changes {
            match c {
                Change::AddSet { name, .. } => {
                    ids.assign(name)?;
                }
                Change::DelSet { name } => ids.release(name),
                _ => {}
            }
        }
        Ok(ids.shared())
    }

    /// Applies the set changes of `changes` (`AddSet`, `AddElements`, `DelElements`,
    /// `DelSet`); the others concern programs and are left to the caller.
    pub fn apply(&mut self, changes: &ChangeSet) -> Result<(), Error> {
        let ours: Vec<Change> = changes
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::AddSet { .. }
                        | Change::AddElements { .. }
                        | Change::DelElements { .. }
                        | Change::DelSet { .. }
                )
            })
            .cloned()
            .collect();
        let before = self.before(&ours);
        // The IR's rules first: a refused change writes nothing. In place: the sets hold
        // every member of every set, which a copy per change set would cost.
        let ours = ChangeSet { changes: ours };
        let mut next = Ruleset {
            sets: std::mem::take(&mut self.sets),
            ..Ruleset::default()
        };
        let undo = match ours.apply_undoable(&mut next) {
            Ok(undo) => undo,
            Err(e) => {
                self.sets = next.sets;
                return Err(Error::Refused(e.to_string()));
            }
        };
        let mut ids = self.ids.clone();
        let mut done = Vec::new();
        if let Err(e) = self.write(&ours.changes, before, &mut ids, &mut done) {
            self.undo(done);
            undo.revert(&mut next);
            self.sets = next.sets;
            return Err(e);
        }
        self.ids = ids;
        self.sets = next.sets;
        Ok(())
    }

    /// What [`SetTable::write`] needs of the sets as programmed: the key of each set
    /// `changes` names, and the members of those it deletes.
    fn before(&self, changes: &[Change]) -> Before {
        let mut b = Before::default();
        for c in changes {
            let (Change::AddSet { name, .. }
            | Change::DelSet { name }
            | Change::AddElements { set: name, .. }
            | Change::DelElements { set: name, .. }) = c
            else {
                continue;
            };
            let Some(s) = self.sets.get(name) else {
                continue;
            };
            b.keys.insert(name.clone(), s.key);
            if matches!(c, Change::DelSet { .. }) {
                b.members
                    .insert(name.clone(), s.elements.iter().copied().collect());
            }
        }
        b
    }

    fn write(
        &self,
        changes: &[Change],
        before: Before,
        ids: &mut SetIds,
        done: &mut Vec<Done>,
    ) -> Result<(), Error> {
        // Keys of the sets as the change set goes (a set may be added and filled in it).
        let Before {
            mut keys,
            members: mut held_before,
        } = before;
        // Checked by `apply_to` already; an error rather than a panic all the same.
        let key_of = |keys: &BTreeMap<String, SetKey>, set: &str| {
            keys.get(set)
                .copied()
                .ok_or_else(|| Error::Refused(format!("no set {set}")))
        };
        let mut members: BTreeMap<String, Vec<SetElement>> = BTreeMap::new();
        for c in changes {
            match c {
                Change::AddSet { name, key } => {
                    ids.assign(name)?;
                    keys.insert(name.clone(), *key);
                }
                Change::AddElements { set, elements } => {
                    let (id, key) = (ids.assign(set)?, key_of(&keys, set)?);
                    for e in elements {
                        self.maps.add(set, id, key, e)?;
                        done.push(Done::Added(set.clone(), id, key, *e));
                        members.entry(set.clone()).or_default().push(*e);
                    }
                }
                Change::DelElements { set, elements } => {
                    let (id, key) = (ids.assign(set)?, key_of(&keys, set)?);
                    for e in elements {
                        self.maps.remove(set, id, key, e)?;
                        done.push(Done::Removed(set.clone(), id, key, *e));
                    }
                }
                Change::DelSet { name } => {
                    let (id, key) = (ids.assign(name)?, key_of(&keys, name)?);
                    // What it holds: as programmed, plus what this change set added.
                    let held = held_before.remove(name);
                    let added = members.remove(name).unwrap_or_default();
                    for e in held.into_iter().flatten().chain(added) {
                        self.maps.remove(name, id, key, &e)?;
                        done.push(Done::Removed(name.clone(), id, key, e));
                    }
                    ids.release(name);
                    keys.remove(name);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Undoes `done`, last first; best effort (the error being returned is the first one).
    fn undo(&self, done: Vec<Done>) {
        for d in done.into_iter().rev() {
            let _ = match d {
                Done::Added(s, id, key, e) => self.maps.remove(&s, id, key, &e),
                Done::Removed(s, id, key, e) => self.maps.add(&s, id, key, &e),
            };
        }
    }
}
