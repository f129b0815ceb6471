//! Applying a change set in place, with what it takes to revert it: for a backend that
//! keeps a large ruleset and must not pay a copy of it per change set
//! ([`ChangeSet::apply_to`] copies it once, to leave it unchanged on error).

use super::change::apply_one;
use super::ir::{Chain, Ruleset, Set, SetElement, Verdict, VerdictMap};
use super::{ApplyError, Change, ChangeSet};

/// What one change replaced, to put it back.
#[derive(Debug)]
enum Step {
    /// A set as it was (`None`: absent).
    Set(String, Option<Set>),
    /// Elements of a set: those the change may add (absent before), those it may remove
    /// (present before).
    SetElements {
        set: String,
        absent: Vec<SetElement>,
        present: Vec<SetElement>,
    },
    /// A verdict map as it was.
    Map(String, Option<VerdictMap>),
    /// Entries of a verdict map as they were.
    MapElements {
        map: String,
        before: Vec<(String, Option<Verdict>)>,
    },
    /// A chain as it was.
    Chain(String, Option<Chain>),
}

/// How to revert a change set applied with [`ChangeSet::apply_undoable`]: only what it
/// touched is kept (a set's elements, not the set; a chain's rules), so keeping it costs
/// about what the change set weighs.
#[derive(Debug, Default)]
#[must_use = "an Undo that is dropped cannot revert anything"]
pub struct Undo {
    steps: Vec<Step>,
}

impl Step {
    /// What `c` may replace in `r`, taken before it is applied.
    fn before(r: &Ruleset, c: &Change) -> Step {
        let members = |set: &str, elements: &[SetElement]| {
            let has = |e: &SetElement| r.sets.get(set).is_some_and(|s| s.elements.contains(e));
            let (present, absent) = elements.iter().partition(|e| has(e));
            Step::SetElements {
                set: set.into(),
                absent,
                present,
            }
        };
        let entries = |map: &str, keys: &mut dyn Iterator<Item = &String>| Step::MapElements {
            map: map.into(),
            before: keys
                .map(|k| {
                    (
                        k.clone(),
                        r.maps.get(map).and_then(|m| m.elements.get(k)).cloned(),
                    )
                })
                .collect(),
        };
        match c {
            Change::AddSet { name, .. } | Change::DelSet { name } => {
                Step::Set(name.clone(), r.sets.get(name).cloned())
            }
            Change::AddElements { set, elements } | Change::DelElements { set, elements } => {
                members(set, elements)
            }
            Change::AddMap { name } | Change::DelMap { name } => {
                Step::Map(name.clone(), r.maps.get(name).cloned())
            }
            Change::AddMapElements { map, elements } => {
                entries(map, &mut elements.iter().map(|(k, _)| k))
            }
            Change::DelMapElements { map, keys } => entries(map, &mut keys.iter()),
            Change::AddChain { name, .. } | Change::DelChain { name } => {
                Step::Chain(name.clone(), r.chains.get(name).cloned())
            }
            Change::SetRules { chain, .. } => {
                Step::Chain(chain.clone(), r.chains.get(chain).cloned())
            }
        }
    }

    /// Puts back what the step recorded.
    fn revert(self, r: &mut Ruleset) {
        fn restore<T>(m: &mut std::collections::BTreeMap<String, T>, k: String, v: Option<T>) {
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
        match self {
            Step::Set(name, before) => restore(&mut r.sets, name, before),
            Step::SetElements {
                set,
                absent,
                present,
            } => {
                if let Some(s) = r.sets.get_mut(&set) {
                    for e in &absent {
                        s.elements.remove(e);
                    }
                    s.elements.extend(present);
                }
            }
            Step::Map(name, before) => restore(&mut r.maps, name, before),
            Step::MapElements { map, before } => {
                if let Some(m) = r.maps.get_mut(&map) {
                    for (k, v) in before.into_iter().rev() {
                        restore(&mut m.elements, k, v);
                    }
                }
            }
            Step::Chain(name, before) => restore(&mut r.chains, name, before),
        }
    }
}

impl Undo {
    /// Reverts the change set on `r`, which must be the ruleset it was applied to, as it
    /// left it.
    pub fn revert(self, r: &mut Ruleset) {
        for step in self.steps.into_iter().rev() {
            step.revert(r);
        }
    }
}

impl ChangeSet {
    /// [`ChangeSet::apply_to`] without copying the ruleset: the changes are applied in
    /// place, and the [`Undo`] returned reverts them. On error the ruleset is left as it
    /// was, as with `apply_to`.
    pub fn apply_undoable(&self, r: &mut Ruleset) -> Result<Undo, ApplyError> {
        let mut undo = Undo::default();
        for (index, c) in self.changes.iter().enumerate() {
            undo.steps.push(Step::before(r, c));
            if let Err(reason) = apply_one(r, c) {
                undo.revert(r);
                return Err(ApplyError { index, reason });
            }
        }
        Ok(undo)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::arbitrary;
    use crate::compile::{compile, CompileConfig};
    use crate::dataplane::diff;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn applied_in_place_it_equals_apply_to_and_reverts_to_the_start(
            a in arbitrary::model(),
            b in arbitrary::model(),
        ) {
            let config = CompileConfig::new("h1");
            let (ra, rb) = (compile(&config, &a), compile(&config, &b));
            let mut r = ra.clone();
            let undo = diff(&ra, &rb).apply_undoable(&mut r).unwrap();
            prop_assert_eq!(&r, &rb);
            undo.revert(&mut r);
            prop_assert_eq!(&r, &ra);
        }

        #[test]
        fn a_change_set_failing_anywhere_leaves_the_ruleset_as_it_was(
            a in arbitrary::model(),
            b in arbitrary::model(),
            at in any::<prop::sample::Index>(),
        ) {
            let config = CompileConfig::new("h1");
            let (ra, rb) = (compile(&config, &a), compile(&config, &b));
            let mut changes = diff(&ra, &rb);
            // A change nftables refuses, somewhere in the set.
            let bad = Change::DelChain { name: "no-such-chain".into() };
            let i = at.index(changes.changes.len() + 1);
            changes.changes.insert(i, bad);
            let mut r = ra.clone();
            let e = changes.apply_undoable(&mut r).unwrap_err();
            prop_assert_eq!(e.index, i);
            prop_assert_eq!(&r, &ra);
        }
    }

    #[test]
    fn a_change_failing_half_way_through_its_elements_is_reverted_too() {
        let mut r = Ruleset::default();
        let key = crate::dataplane::ir::SetKey::Ipv4Addr;
        let e = |s: &str| SetElement::Addr(s.parse().unwrap());
        ChangeSet {
            changes: vec![
                Change::AddSet {
                    name: "s".into(),
                    key,
                },
                Change::AddElements {
                    set: "s".into(),
                    elements: vec![e("10.0.0.1")],
                },
                Change::AddMap { name: "m".into() },
                Change::AddMapElements {
                    map: "m".into(),
                    elements: vec![("a".into(), Verdict::Accept)],
                },
            ],
        }
        .apply_to(&mut r)
        .unwrap();
        let start = r.clone();
        let changes = ChangeSet {
            changes: vec![
                Change::AddElements {
                    set: "s".into(),
                    elements: vec![e("10.0.0.2"), e("10.0.0.1")],
                },
                Change::AddMapElements {
                    map: "m".into(),
                    elements: vec![("b".into(), Verdict::Drop), ("a".into(), Verdict::Drop)],
                },
            ],
        };
        for c in changes.changes {
            let one = ChangeSet { changes: vec![c] };
            assert!(one.apply_undoable(&mut r).is_err());
            assert_eq!(r, start);
        }
    }
}
