//! What the generator refuses, and that it refuses only what a program reaches. (What
//! the programs compute is tested against the interpreter in the kernel: tests/.)

use std::collections::BTreeMap;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, Hook, IfaceKey, Match, Rule, Ruleset, Side, Statement, Verdict,
    VerdictMap,
};

use super::*;
use crate::insn::MapRef;

fn base(rules: Vec<Rule>) -> Chain {
    Chain {
        base: Some(BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)),
        rules,
    }
}

fn with_statement(s: Statement) -> Rule {
    Rule {
        matches: vec![Match::Ipv4(true)],
        statements: vec![s],
        verdict: None,
    }
}

fn generate(r: &Ruleset, b: &Bindings, options: Options) -> Result<Program, GenerateError> {
    hook_program(r, Hook::Forward, b, &BTreeMap::new(), options)
}

#[test]
fn a_reachable_unsupported_statement_is_refused_by_name() {
    for (s, feature) in [
        (Statement::Log("x".into()), "log"),
        (Statement::NoTrack, "notrack"),
        (Statement::Dnat("10.0.0.1".parse().unwrap()), "dnat"),
        (Statement::Snat("10.0.0.1".parse().unwrap()), "snat"),
    ] {
        let mut r = Ruleset::default();
        r.chains.insert("fw".into(), base(vec![with_statement(s)]));
        assert_eq!(
            generate(&r, &Bindings::default(), Options::default()),
            Err(GenerateError::UnsupportedStatement {
                chain: "fw".into(),
                rule: 0,
                feature
            })
        );
    }
}

#[test]
fn log_statements_can_be_omitted_explicitly() {
    let mut r = Ruleset::default();
    let rule = with_statement(Statement::NfLog {
        group: 1,
        prefix: "p".into(),
        rate: None,
    });
    r.chains.insert("fw".into(), base(vec![rule]));
    assert!(generate(&r, &Bindings::default(), Options::default()).is_err());
    let omit = Options {
        logs: Logs::Omit,
        ..Options::default()
    };
    assert!(generate(&r, &Bindings::default(), omit).is_ok());
}

#[test]
fn dispatch_resolves_for_the_bound_interface_only() {
    let mut r = Ruleset::default();
    let mut map = VerdictMap::default();
    map.elements
        .insert("cali1".into(), Verdict::Jump("to-cali1".into()));
    r.maps.insert("to-wl".into(), map);
    r.chains.insert(
        "fw".into(),
        base(vec![Rule::new(
            vec![],
            Verdict::Dispatch {
                key: IfaceKey::Output,
                map: "to-wl".into(),
            },
        )]),
    );
    // The chain only the bound interface reaches holds what is not supported.
    r.chains.insert(
        "to-cali1".into(),
        Chain {
            base: None,
            rules: vec![with_statement(Statement::NoTrack)],
        },
    );
    assert!(matches!(
        generate(&r, &Bindings::default(), Options::default()),
        Err(GenerateError::UnboundDispatch { key: "output", .. })
    ));
    let other = Bindings {
        iif: None,
        oif: Some("cali2".into()),
    };
    assert!(generate(&r, &other, Options::default()).is_ok());
    let bound = Bindings {
        iif: None,
        oif: Some("cali1".into()),
    };
    assert!(matches!(
        generate(&r, &bound, Options::default()),
        Err(GenerateError::UnsupportedStatement {
            feature: "notrack",
            ..
        })
    ));
}

#[test]
fn every_set_a_rule_matches_needs_an_id() {
    let mut r = Ruleset::default();
    r.sets.insert(
        "s".into(),
        calico_core::dataplane::ir::Set {
            key: calico_core::dataplane::ir::SetKey::Ipv4Addr,
            elements: Default::default(),
        },
    );
    assert!(
        generate(&r, &Bindings::default(), Options::default()).is_ok(),
        "a set no rule matches needs no id"
    );
    let rule = Rule::new(
        vec![Match::AddrInSet {
            side: Side::Src,
            set: "s".into(),
            negate: false,
        }],
        Verdict::Drop,
    );
    r.chains.insert("fw".into(), base(vec![rule]));
    assert!(matches!(
        generate(&r, &Bindings::default(), Options::default()),
        Err(GenerateError::SetWithoutId { set }) if set == "s"
    ));
}

#[test]
fn an_empty_ruleset_is_the_prologue_and_an_accept() {
    let p = generate(
        &Ruleset::default(),
        &Bindings::default(),
        Options::default(),
    )
    .unwrap();
    assert!(p.insns.len() < 200, "{} instructions", p.insns.len());
    assert_eq!(p.maps.len(), 1, "the state map only");
}

/// `n` rules dropping a TCP port each.
fn ports(n: u16) -> Ruleset {
    let rule = |p: u16| {
        let tcp = Match::L4Proto {
            proto: 6,
            negate: false,
        };
        let port = Match::Port {
            side: Side::Dst,
            ranges: vec![(p, p)],
            negate: false,
        };
        Rule::new(vec![tcp, port], Verdict::Drop)
    };
    let mut r = Ruleset::default();
    r.chains
        .insert("fw".into(), base((0..n).map(rule).collect()));
    r
}

fn in_pieces(r: &Ruleset, insns: usize, branches: usize) -> Result<Pieces, GenerateError> {
    let options = Options {
        pieces: PieceBudget { insns, branches },
        ..Options::default()
    };
    let plan = Plan::Always(vec![Stage {
        hook: Hook::Forward,
        bindings: Bindings::default(),
    }]);
    Ok(super::generate(r, &plan, &BTreeMap::new(), options)?.pieces)
}

#[test]
fn a_program_within_the_budget_is_one_piece_as_unsplit() {
    let r = ports(100);
    let split = in_pieces(&r, 16_384, 4_096).unwrap();
    let unsplit = in_pieces(&r, usize::MAX, usize::MAX).unwrap();
    assert_eq!(split.len(), 1);
    assert_eq!(split, unsplit);
    assert!(!split.entry().maps.iter().any(|&(_, m)| m == MapRef::Pieces));
}

#[test]
fn pieces_stay_within_the_budget_and_only_later_ones_are_tail_called() {
    let p = in_pieces(&ports(400), 1_000, 200).unwrap();
    assert!(p.len() >= 4, "{} pieces", p.len());
    for (k, piece) in p.all().iter().enumerate() {
        let branches = piece.insns.iter().filter(|i| i.is_conditional_jump());
        // The budget, plus the resume prologue's dispatch and lookup.
        assert!(branches.count() <= 200 + 8, "piece {k}");
        assert!(piece.insns.len() <= 1_000 + 64, "piece {k}");
        // Every tail call's index (mov r3, imm before the call) is a later piece.
        for w in piece.insns.windows(2) {
            if w[1].code == 0x85 && w[1].imm == 12 {
                assert_eq!(w[0].code, 0xb7, "piece {k}: mov r3, imm");
                assert!(w[0].imm as usize > k && (w[0].imm as usize) < p.len());
            }
        }
    }
    assert_eq!(
        p.clone().single(),
        Err(GenerateError::Split {
            pieces: p.len(),
            insns: p.insns()
        })
    );
}

#[test]
fn each_piece_exits_by_its_own_copy_of_the_shared_exits() {
    // Every rule drops: the drop exit is emitted once, at the end of the stream, in the
    // last piece. The others drop through copies of their own, so that each makes one
    // tail call only, to the next piece (the fall-through); a drop by tail call into the
    // last piece would add another.
    let p = in_pieces(&ports(400), 1_000, 200).unwrap();
    assert!(p.len() >= 4, "{} pieces", p.len());
    let exits = |piece: &Program| piece.insns.iter().filter(|i| i.code == 0x95).count();
    for (k, piece) in p.all().iter().enumerate() {
        let targets: Vec<i32> = piece
            .insns
            .windows(2)
            .filter(|w| w[1].code == 0x85 && w[1].imm == 12)
            .map(|w| w[0].imm)
            .collect();
        let expected: Vec<i32> = if k + 1 < p.len() {
            vec![k as i32 + 1]
        } else {
            Vec::new()
        };
        assert_eq!(targets, expected, "piece {k}: tail calls");
        // Its own drop exit, the resume prologue's failure exit and the failed tail
        // call's, and an accept for the last: a handful, not one per rule.
        assert!(exits(piece) <= 5, "piece {k}: {} exits", exits(piece));
    }
}

#[test]
fn a_policy_needing_more_pieces_than_tail_calls_allow_is_refused_with_the_numbers() {
    let e = in_pieces(&ports(2_000), 1_000, 100).unwrap_err();
    let GenerateError::TooManyPieces {
        pieces,
        limit,
        tail_calls,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert!(pieces > limit, "{pieces}");
    assert_eq!((limit, tail_calls), (MAX_PIECES, MAX_TAIL_CALLS));
}

#[test]
fn a_rule_larger_than_a_piece_is_refused_with_the_numbers() {
    let e = in_pieces(&ports(10), 4, 1).unwrap_err();
    assert!(
        matches!(
            e,
            GenerateError::PieceTooLarge {
                budget_insns: 4,
                budget_branches: 1,
                ..
            }
        ),
        "{e}"
    );
}
