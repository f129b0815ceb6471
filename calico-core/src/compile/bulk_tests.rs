//! A bulk change costs about what compiling its result costs (issue 15): the compiler's work
//! on endpoints and the change set it hands the agent, for 2,000 global policies added to a
//! running host in one group and removed again, against a snapshot of the result.

use proptest::prelude::*;

use super::*;
use crate::arbitrary;
use crate::dataplane::ir::Ruleset;
use crate::dataplane::{diff, ChangeSet};
use crate::model::{Resource, ResourceKey, Update};
use crate::scale::Scale;

const SCALE: Scale = Scale {
    local: 10,
    remote: 100,
    policies: 0,
    apps: 20,
    namespaces: 4,
};
const POLICIES: usize = 2_000;

fn config() -> CompileConfig {
    CompileConfig::new("h1")
}

fn adds() -> Vec<Update> {
    (0..POLICIES)
        .map(|k| Update::Upsert(Resource::Policy(SCALE.global_policy(k, 80))))
        .collect()
}

fn removes() -> Vec<Update> {
    (0..POLICIES)
        .map(|k| {
            Update::Remove(ResourceKey::Policy {
                namespace: None,
                name: format!("gpol{k}"),
            })
        })
        .collect()
}

/// What a fresh agent does with `model`: compile it whole and program all of it.
fn snapshot(model: &Model) -> (usize, ChangeSet) {
    let c = Compiler::from_model(config(), model);
    (c.rendered, diff(&Ruleset::default(), c.ruleset()))
}

#[test]
fn a_bulk_change_costs_about_a_snapshot_of_its_result() {
    let mut model = SCALE.model();
    let mut c = Compiler::from_model(config(), &model);
    let mut dataplane = Ruleset::default();
    c.take_changes().apply_to(&mut dataplane).unwrap();

    let base_work = c.rendered;
    c.apply_updates(&mut model, adds());
    let added = c.take_changes();
    let add_work = c.rendered - base_work;
    let (snap_work, snap) = snapshot(&model);
    // Every local endpoint has hundreds of the policies: re-rendering it per update would
    // cost about POLICIES / 2 times the snapshot's work.
    assert!(
        add_work <= snap_work,
        "adding {POLICIES} policies rendered {add_work} policy-list entries; a snapshot of \
         the result renders {snap_work}"
    );
    assert!(
        added.weight() <= snap.weight(),
        "{} > {}",
        added.weight(),
        snap.weight()
    );
    added.apply_to(&mut dataplane).unwrap();
    assert_eq!(&dataplane, c.ruleset());
    assert_eq!(c.ruleset(), &compile(&config(), &model));

    let before_remove = c.rendered;
    c.apply_updates(&mut model, removes());
    let removed = c.take_changes();
    let remove_work = c.rendered - before_remove;
    assert!(
        remove_work <= snap_work,
        "removing {POLICIES} policies rendered {remove_work} policy-list entries; a \
         snapshot of what they were removed from renders {snap_work}"
    );
    assert!(removed.weight() <= snap.weight());
    removed.apply_to(&mut dataplane).unwrap();
    assert_eq!(c.ruleset(), &compile(&config(), &model));
    assert_eq!(&dataplane, c.ruleset());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_group_of_updates_compiles_to_what_a_full_compile_gives(
        a in arbitrary::model(),
        b in arbitrary::model(),
    ) {
        let mut m = a.clone();
        let mut c = Compiler::from_model(config(), &m);
        let mut dataplane = Ruleset::default();
        c.take_changes().apply_to(&mut dataplane).map_err(|e| TestCaseError::fail(e.to_string()))?;
        c.apply_updates(&mut m, super::tests::updates(&a, &b));
        c.take_changes().apply_to(&mut dataplane).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let full = compile(&config(), &b);
        prop_assert_eq!(c.ruleset(), &full);
        prop_assert_eq!(&dataplane, &full);
    }
}
