use super::*;
use crate::model::{Profile, ResourceKey};

fn profile(name: &str) -> Resource {
    Resource::Profile(Profile {
        name: name.into(),
        ..Profile::default()
    })
}

fn put(l: &mut Ledger, key: &str, v: Result<Resource, String>) -> Changes {
    let mut c = Changes::default();
    l.put(key, v, &mut c);
    c
}

#[test]
fn a_bad_value_is_refused_and_the_last_good_one_stays() {
    let mut l = Ledger::new();
    let c = put(&mut l, "k/a", Ok(profile("a")));
    assert_eq!(c.updates, vec![Update::Upsert(profile("a"))]);
    let c = put(&mut l, "k/a", Err("not JSON".into()));
    assert!(c.updates.is_empty(), "{c:?}");
    assert_eq!(c.refused[0].key, "k/a");
    assert_eq!(l.snapshot(3).resources, vec![profile("a")]);
    // Fixed: the refusal is cleared.
    let c = put(&mut l, "k/a", Ok(profile("a")));
    assert_eq!(c.cleared, vec!["k/a".to_string()]);
    assert!(l.refused().is_empty());
}

#[test]
fn an_invalid_resource_is_refused_naming_the_field() {
    let mut l = Ledger::new();
    let c = put(&mut l, "k/bad", Ok(profile("")));
    assert!(c.updates.is_empty());
    assert!(c.refused[0].reason.contains("name"), "{:?}", c.refused);
}

#[test]
fn the_same_resource_under_two_keys_keeps_the_first_until_it_goes() {
    let mut l = Ledger::new();
    put(&mut l, "k/1", Ok(profile("a")));
    let c = put(&mut l, "k/2", Ok(profile("a")));
    assert!(c.updates.is_empty());
    assert!(c.refused[0].reason.contains("k/1"), "{:?}", c.refused);
    let mut c = Changes::default();
    l.delete("k/1", &mut c);
    // The second key takes over: removed, then upserted again from k/2.
    assert_eq!(
        c.updates,
        vec![
            Update::Remove(ResourceKey::Profile("a".into())),
            Update::Upsert(profile("a"))
        ]
    );
    assert_eq!(c.cleared, vec!["k/2".to_string()]);
}

#[test]
fn an_unchanged_value_is_no_update_and_a_reset_keeps_good_values_of_refused_keys() {
    let mut l = Ledger::new();
    put(&mut l, "k/a", Ok(profile("a")));
    assert!(put(&mut l, "k/a", Ok(profile("a"))).updates.is_empty());
    let s = l.reset(
        9,
        vec![
            ("k/a".to_string(), Err("garbled".to_string())),
            ("k/b".to_string(), Ok(profile("b"))),
        ],
    );
    assert_eq!(s.revision, 9);
    assert_eq!(s.resources, vec![profile("a"), profile("b")]);
    assert_eq!(s.refused.len(), 1);
}
