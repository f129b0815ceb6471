//! MockAcl applies a change set whole or not at all, refusing what nftables refuses.

use calico_core::dataplane::ir::{ChainPolicy, Match, SetElement, SetKey, Side, Verdict};
use calico_core::dataplane::AclBackend;
use calico_core::dataplane::{Change, ChangeSet};

use super::*;
use crate::acl::MockAcl;
use calico_core::dataplane::validate::{check_commit, IrError, MAX_JUMP_DEPTH};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn addr(s: &str) -> SetElement {
    SetElement::Addr(s.parse().unwrap())
}

fn net(s: &str) -> SetElement {
    SetElement::Net(s.parse().unwrap())
}

/// A table with a set `s` holding 10.0.0.1, an interval set `n`, a base chain `fwd`
/// jumping to `c`, and a regular chain `c` using `s`.
fn populated() -> MockAcl {
    let acl = MockAcl::new();
    let changes = ChangeSet {
        changes: vec![
            Change::AddSet {
                name: "s".into(),
                key: SetKey::Ipv4Addr,
            },
            Change::AddElements {
                set: "s".into(),
                elements: vec![addr("10.0.0.1")],
            },
            Change::AddSet {
                name: "n".into(),
                key: SetKey::Ipv4Net,
            },
            Change::AddElements {
                set: "n".into(),
                elements: vec![net("10.1.0.0/16")],
            },
            Change::AddChain {
                name: "c".into(),
                base: None,
            },
            Change::SetRules {
                chain: "c".into(),
                rules: vec![Rule::new(
                    vec![Match::AddrInSet {
                        side: Side::Src,
                        set: "s".into(),
                        negate: false,
                    }],
                    Verdict::Accept,
                )],
            },
            Change::AddChain {
                name: "fwd".into(),
                base: base(0, ChainPolicy::Drop, vec![]).base,
            },
            Change::SetRules {
                chain: "fwd".into(),
                rules: vec![always(jump("c"))],
            },
        ],
    };
    block_on(acl.apply(&changes)).expect("a well-formed change set applies");
    acl
}

fn one(c: Change) -> ChangeSet {
    ChangeSet { changes: vec![c] }
}

#[test]
fn refused_change_sets_change_nothing() {
    let refused: Vec<(&str, ChangeSet)> = vec![
        (
            "adding an existing set",
            one(Change::AddSet {
                name: "s".into(),
                key: SetKey::Ipv4Addr,
            }),
        ),
        (
            "adding an existing element",
            one(Change::AddElements {
                set: "s".into(),
                elements: vec![addr("10.0.0.1")],
            }),
        ),
        (
            "adding an element of the wrong family",
            one(Change::AddElements {
                set: "s".into(),
                elements: vec![addr("fd00::1")],
            }),
        ),
        (
            "adding to a missing set",
            one(Change::AddElements {
                set: "nope".into(),
                elements: vec![addr("10.0.0.2")],
            }),
        ),
        (
            "deleting a missing element",
            one(Change::DelElements {
                set: "s".into(),
                elements: vec![addr("10.0.0.2")],
            }),
        ),
        (
            "deleting a set in use",
            one(Change::DelSet { name: "s".into() }),
        ),
        (
            "deleting a missing set",
            one(Change::DelSet {
                name: "nope".into(),
            }),
        ),
        (
            "deleting a chain in use",
            one(Change::DelChain { name: "c".into() }),
        ),
        (
            "adding an existing chain",
            one(Change::AddChain {
                name: "c".into(),
                base: None,
            }),
        ),
        (
            "a rule jumping to a missing chain",
            one(Change::SetRules {
                chain: "c".into(),
                rules: vec![always(jump("nope"))],
            }),
        ),
        (
            "a rule using a missing set",
            one(Change::SetRules {
                chain: "c".into(),
                rules: vec![Rule::new(
                    vec![Match::AddrInSet {
                        side: Side::Dst,
                        set: "nope".into(),
                        negate: false,
                    }],
                    Verdict::Accept,
                )],
            }),
        ),
        (
            "a rule using a missing map",
            one(Change::SetRules {
                chain: "c".into(),
                rules: vec![always(Verdict::Dispatch {
                    key: calico_core::dataplane::ir::IfaceKey::Input,
                    map: "nope".into(),
                })],
            }),
        ),
        (
            "rules of a missing chain",
            one(Change::SetRules {
                chain: "nope".into(),
                rules: vec![],
            }),
        ),
        (
            "overlapping intervals",
            one(Change::AddElements {
                set: "n".into(),
                elements: vec![net("10.1.2.0/24")],
            }),
        ),
        (
            "a jump loop",
            one(Change::SetRules {
                chain: "c".into(),
                rules: vec![always(jump("c"))],
            }),
        ),
        (
            "a jump to a base chain",
            one(Change::SetRules {
                chain: "c".into(),
                rules: vec![always(jump("fwd"))],
            }),
        ),
        (
            "an address match on a concatenated set",
            ChangeSet {
                changes: vec![
                    Change::AddSet {
                        name: "np".into(),
                        key: SetKey::Ipv4AddrProtoPort,
                    },
                    Change::SetRules {
                        chain: "c".into(),
                        rules: vec![Rule::new(
                            vec![Match::AddrInSet {
                                side: Side::Src,
                                set: "np".into(),
                                negate: false,
                            }],
                            Verdict::Accept,
                        )],
                    },
                ],
            },
        ),
        (
            "an empty port range",
            one(Change::SetRules {
                chain: "c".into(),
                rules: vec![Rule::new(
                    vec![Match::Port {
                        side: Side::Dst,
                        ranges: vec![(90, 80)],
                        negate: false,
                    }],
                    Verdict::Accept,
                )],
            }),
        ),
        (
            "good changes followed by a bad one",
            ChangeSet {
                changes: vec![
                    Change::AddElements {
                        set: "s".into(),
                        elements: vec![addr("10.0.0.7")],
                    },
                    Change::AddChain {
                        name: "new".into(),
                        base: None,
                    },
                    Change::DelElements {
                        set: "s".into(),
                        elements: vec![addr("10.0.0.8")],
                    },
                ],
            },
        ),
    ];
    let acl = populated();
    let before = acl.ruleset();
    let applied = acl.applied();
    for (name, changes) in refused {
        let err = block_on(acl.apply(&changes));
        assert!(err.is_err(), "{name}: accepted");
        assert_eq!(acl.ruleset(), before, "{name}: partly applied");
        assert_eq!(acl.applied(), applied, "{name}: counted");
    }
}

#[test]
fn accepted_change_sets_apply_in_order() {
    let acl = populated();
    let changes = ChangeSet {
        changes: vec![
            Change::AddElements {
                set: "s".into(),
                elements: vec![addr("10.0.0.2")],
            },
            Change::DelElements {
                set: "s".into(),
                elements: vec![addr("10.0.0.1")],
            },
            Change::AddElements {
                set: "n".into(),
                elements: vec![net("10.2.0.0/16")],
            },
            Change::SetRules {
                chain: "fwd".into(),
                rules: vec![],
            },
            Change::DelChain { name: "c".into() },
            Change::DelSet { name: "s".into() },
        ],
    };
    block_on(acl.apply(&changes)).unwrap();
    let r = acl.ruleset();
    assert!(!r.chains.contains_key("c") && !r.sets.contains_key("s"));
    assert_eq!(r.sets["n"].elements.len(), 2);
    assert!(r.chains["fwd"].rules.is_empty());
    assert_eq!(acl.applied(), 2);
    assert_eq!(block_on(acl.dump()).unwrap(), r);
}

#[test]
fn injected_failures_apply_nothing() {
    let acl = populated();
    let before = acl.ruleset();
    acl.fail_next(1);
    let add = one(Change::AddElements {
        set: "s".into(),
        elements: vec![addr("10.0.0.3")],
    });
    assert!(block_on(acl.apply(&add)).is_err());
    assert_eq!(acl.ruleset(), before);
    block_on(acl.apply(&add)).unwrap();
    assert_ne!(acl.ruleset(), before);
}

#[test]
fn check_commit_limits_nesting_to_the_jump_stack() {
    let chain_of = |n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let mut chains = vec![(
            "fwd".to_string(),
            base(0, ChainPolicy::Accept, vec![always(jump("c0"))]),
        )];
        for i in 0..n {
            let rules = if i + 1 < n {
                vec![always(goto(&names[i + 1]))]
            } else {
                vec![]
            };
            chains.push((names[i].clone(), regular(rules)));
        }
        Ruleset {
            chains: chains.into_iter().collect(),
            ..Ruleset::default()
        }
    };
    assert_eq!(check_commit(&chain_of(MAX_JUMP_DEPTH)), Ok(()));
    assert!(matches!(
        check_commit(&chain_of(MAX_JUMP_DEPTH + 1)),
        Err(IrError::TooDeep(_))
    ));
    let mut looped = chain_of(3);
    looped.chains.get_mut("c2").unwrap().rules = vec![always(jump("c0"))];
    assert!(matches!(check_commit(&looped), Err(IrError::Loop(_))));
}

#[test]
fn interval_sets_may_hold_disjoint_and_adjacent_nets() {
    let mut r = ruleset(vec![]);
    r.sets.insert(
        "n".into(),
        set(
            SetKey::Ipv4Net,
            &[net("10.0.0.0/25"), net("10.0.0.128/25"), net("10.0.2.0/24")],
        ),
    );
    assert_eq!(check_commit(&r), Ok(()));
    r.sets
        .get_mut("n")
        .unwrap()
        .elements
        .insert(net("10.0.0.0/16"));
    assert!(matches!(check_commit(&r), Err(IrError::Overlap { .. })));
}
