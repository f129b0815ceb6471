//! The kernel runs random IR to the interpreter's verdicts. Where `equivalence.rs` takes
//! the rulesets the compiler writes, this one draws the IR itself from a small domain, so
//! that every match kind, negation, range end, CIDR edge, set kind, mark statement and
//! verdict (jump, goto, return, several base chains with both policies, NAT chains) meets
//! packets on and around its boundaries. Half the cases are split into pieces chained
//! with tail calls, under a random budget of a few conditional jumps a piece, so that
//! cuts fall everywhere a rule may start (inside inlined chains too).

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainPolicy, ChainType, CtState, Hook, Match, Rule, Ruleset, Set, SetElement,
    SetKey, Side, Statement, Verdict,
};
use calico_core::eval::Packet;
use calico_core::model::Protocol;
use calico_ebpf::frame;
use calico_ebpf::generate::{generate, Options, PieceBudget, Plan, Stage};
use calico_ebpf::layout::ct;
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::{Maps, SetIds};
use calico_ebpf::GenerateError;
use calico_mock::{interpret_marked, ConnState, PacketContext};
use calico_netns::fixtures::privileged;
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const V4: [&str; 4] = ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.1.1"];
const V6: [&str; 3] = ["fd00::1", "fd00::2", "fd00:0:0:1::1"];
const NETS: [&str; 6] = [
    "10.0.0.0/30",
    "10.0.0.8/29",
    "10.0.0.0/16",
    "0.0.0.0/0",
    "fd00::/127",
    "fd00::/48",
];
const PORTS: [u16; 7] = [0, 79, 80, 81, 443, 1024, 65535];
const PROTOS: [u8; 6] = [6, 17, 1, 58, 132, 47];
const MARKS: [u32; 3] = [0x1, 0x2_0000, 0x8000_0000];
const SETS: [&str; 5] = ["a4", "n4", "a6", "n6", "p4"];
const CHAINS: usize = 4;

fn addr() -> impl Strategy<Value = IpAddr> {
    let all: Vec<IpAddr> = V4.iter().chain(&V6).map(|a| a.parse().unwrap()).collect();
    prop::sample::select(all)
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Src), Just(Side::Dst)]
}

/// Port ranges whose ends are ports packets use, so that packets land on, just inside
/// and just outside every end.
fn ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    let end = prop::sample::select(PORTS.to_vec());
    prop::collection::vec((end.clone(), end), 0..3).prop_map(|v| {
        let mut r: Vec<(u16, u16)> = v.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
        r.sort();
        // Sorted and non-overlapping, as the IR requires.
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in r {
            match out.last() {
                Some(&(_, last)) if lo <= last => {}
                _ => out.push((lo, hi)),
            }
        }
        out
    })
}

fn a_match() -> impl Strategy<Value = Match> {
    prop_oneof![
        any::<bool>().prop_map(Match::Ipv4),
        (prop::sample::select(PROTOS.to_vec()), any::<bool>())
            .prop_map(|(proto, negate)| Match::L4Proto { proto, negate }),
        (side(), addr(), any::<bool>()).prop_map(|(side, addr, negate)| Match::AddrEq {
            side,
            addr,
            negate
        }),
        (side(), prop::sample::select(SETS.to_vec()), any::<bool>()).prop_map(
            |(side, set, negate)| Match::AddrInSet {
                side,
                set: set.into(),
                negate
            }
        ),
        (side(), prop::sample::select(SETS.to_vec()), any::<bool>()).prop_map(
            |(side, set, negate)| Match::AddrProtoPortInSet {
                side,
                set: set.into(),
                negate
            }
        ),
        (side(), ranges(), any::<bool>()).prop_map(|(side, ranges, negate)| Match::Port {
            side,
            ranges,
            negate
        }),
        (
            any::<bool>(),
            prop::sample::select(vec![0u8, 3, 8, 128]),
            prop::option::of(prop::sample::select(vec![0u8, 1, 4])),
            any::<bool>()
        )
            .prop_map(|(v6, icmp_type, code, negate)| Match::Icmp {
                v6,
                icmp_type,
                code,
                negate
            }),
        Just(Match::Ct(CtState::EstablishedOrRelated)),
        Just(Match::Ct(CtState::Invalid)),
        prop::sample::select(MARKS.to_vec()).prop_map(Match::MarkSet),
        Just(Match::CtUnconfirmed),
    ]
}

/// A rule of chain `index`: jumps and gotos only to later chains (no loops).
fn rule(index: usize) -> impl Strategy<Value = Rule> {
    let later: Vec<String> = (index + 1..CHAINS).map(|i| format!("c{i}")).collect();
    let verdict = if later.is_empty() {
        prop_oneof![
            Just(None),
            Just(Some(Verdict::Accept)),
            Just(Some(Verdict::Drop)),
            Just(Some(Verdict::Return)),
        ]
        .boxed()
    } else {
        let l2 = later.clone();
        prop_oneof![
            Just(None),
            Just(Some(Verdict::Accept)),
            Just(Some(Verdict::Drop)),
            Just(Some(Verdict::Return)),
            prop::sample::select(later).prop_map(|c| Some(Verdict::Jump(c))),
            prop::sample::select(l2).prop_map(|c| Some(Verdict::Goto(c))),
        ]
        .boxed()
    };
    let statement = prop_oneof![
        prop::sample::select(MARKS.to_vec()).prop_map(Statement::SetMark),
        prop::sample::select(MARKS.to_vec()).prop_map(Statement::ClearMark),
    ];
    (
        prop::collection::vec(a_match(), 0..4),
        prop::collection::vec(statement, 0..2),
        verdict,
    )
        .prop_map(|(matches, statements, verdict)| Rule {
            matches,
            statements,
            verdict,
        })
}

fn sets() -> impl Strategy<Value = BTreeMap<String, Set>> {
    let v4: Vec<IpAddr> = V4.iter().map(|a| a.parse().unwrap()).collect();
    let v6: Vec<IpAddr> = V6.iter().map(|a| a.parse().unwrap()).collect();
    let nets: Vec<IpNet> = NETS.iter().map(|n| n.parse().unwrap()).collect();
    let n4: Vec<IpNet> = nets
        .iter()
        .copied()
        .filter(|n| matches!(n, IpNet::V4(_)))
        .collect();
    let n6: Vec<IpNet> = nets
        .iter()
        .copied()
        .filter(|n| matches!(n, IpNet::V6(_)))
        .collect();
    (
        prop::sample::subsequence(v4.clone(), 0..=V4.len()),
        prop::sample::subsequence(n4, 0..=2),
        prop::sample::subsequence(v6, 0..=V6.len()),
        prop::sample::subsequence(n6, 0..=1),
        prop::collection::btree_set(
            (
                prop::sample::select(v4),
                prop::sample::select(vec![6u8, 17, 132]),
                prop::sample::select(PORTS.to_vec()),
            ),
            0..6,
        ),
    )
        .prop_map(|(a4, n4, a6, n6, p4)| {
            let set = |key, elements: Vec<SetElement>| Set {
                key,
                elements: elements.into_iter().collect(),
            };
            let mut m = BTreeMap::new();
            m.insert(
                "a4".into(),
                set(
                    SetKey::Ipv4Addr,
                    a4.into_iter().map(SetElement::Addr).collect(),
                ),
            );
            m.insert(
                "n4".into(),
                set(
                    SetKey::Ipv4Net,
                    n4.into_iter().map(SetElement::Net).collect(),
                ),
            );
            m.insert(
                "a6".into(),
                set(
                    SetKey::Ipv6Addr,
                    a6.into_iter().map(SetElement::Addr).collect(),
                ),
            );
            m.insert(
                "n6".into(),
                set(
                    SetKey::Ipv6Net,
                    n6.into_iter().map(SetElement::Net).collect(),
                ),
            );
            m.insert(
                "p4".into(),
                set(
                    SetKey::Ipv4AddrProtoPort,
                    p4.into_iter()
                        .map(|(a, p, port)| SetElement::AddrProtoPort(a, p, port))
                        .collect(),
                ),
            );
            m
        })
}

fn ruleset() -> impl Strategy<Value = Ruleset> {
    let chains: Vec<_> = (0..CHAINS)
        .map(|i| prop::collection::vec(rule(i), 0..6))
        .collect();
    let base = |kind: ChainType, policy: ChainPolicy, priority: i32| BaseChain {
        hook: Hook::Forward,
        priority,
        policy,
        kind,
    };
    (
        chains,
        sets(),
        prop::sample::select(vec![ChainPolicy::Accept, ChainPolicy::Drop]),
        any::<bool>(),
    )
        .prop_map(move |(chains, sets, policy, nat)| {
            let mut r = Ruleset {
                sets,
                ..Default::default()
            };
            for (i, rules) in chains.into_iter().enumerate() {
                // c0 and c1 are base chains (c1 a NAT chain half the time: seen by first
                // packets only); c2 and c3 are regular chains.
                let b = match i {
                    0 => Some(base(ChainType::Filter, policy, 0)),
                    1 if nat => Some(base(ChainType::Nat, ChainPolicy::Accept, -100)),
                    1 => Some(base(ChainType::Filter, ChainPolicy::Accept, 10)),
                    _ => None,
                };
                r.chains.insert(format!("c{i}"), Chain { base: b, rules });
            }
            r
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    let v4: Vec<IpAddr> = V4
        .iter()
        .chain(&["10.0.0.3", "10.0.0.15"])
        .map(|a| a.parse().unwrap())
        .collect();
    let v6: Vec<IpAddr> = V6
        .iter()
        .chain(&["fd00::3"])
        .map(|a| a.parse().unwrap())
        .collect();
    let pair = prop_oneof![
        (prop::sample::select(v4.clone()), prop::sample::select(v4)),
        (prop::sample::select(v6.clone()), prop::sample::select(v6)),
    ];
    (
        pair,
        prop::sample::select(PROTOS.to_vec()),
        prop::sample::select(PORTS.to_vec()),
        prop::sample::select(PORTS.to_vec()),
        prop::sample::select(vec![(8u8, 0u8), (0, 0), (3, 4), (3, 1), (128, 0)]),
    )
        .prop_map(|((src, dst), proto, sport, dport, (t, c))| match proto {
            6 | 17 | 132 => Packet::ported(Protocol(proto), src, sport, dst, dport),
            1 | 58 => Packet {
                icmp_type: Some(t),
                icmp_code: Some(c),
                ..Packet::other(Protocol(proto), src, dst)
            },
            _ => Packet::other(Protocol(proto), src, dst),
        })
}

fn conn_state() -> impl Strategy<Value = (ConnState, u32)> {
    prop::sample::select(vec![
        (ConnState::New, ct::NEW | ct::UNCONFIRMED),
        (ConnState::Established, ct::ESTABLISHED),
        (ConnState::Related, ct::RELATED),
        (ConnState::Invalid, ct::INVALID),
    ])
}

/// The forward program of `r`, in pieces of at most `branches` conditional jumps (at
/// least as many as it takes to make at most the pieces the kernel chains), or of the
/// default budget.
fn split(
    r: &Ruleset,
    ids: &BTreeMap<String, u32>,
    branches: Option<usize>,
) -> Result<calico_ebpf::generate::Pieces, GenerateError> {
    let plan = Plan::Always(vec![Stage {
        hook: Hook::Forward,
        bindings: Default::default(),
    }]);
    let mut budget = match branches {
        None => PieceBudget::DEFAULT,
        Some(b) => PieceBudget {
            insns: usize::MAX,
            branches: b,
        },
    };
    loop {
        let options = Options {
            pieces: budget,
            ..Options::default()
        };
        match generate(r, &plan, ids, options) {
            Err(GenerateError::TooManyPieces { .. } | GenerateError::PieceTooLarge { .. }) => {
                budget.branches *= 2;
            }
            other => return Ok(other?.pieces),
        }
    }
}

#[test]
fn random_ir_runs_in_the_kernel_as_in_the_interpreter() {
    if !privileged("random_ir_runs_in_the_kernel_as_in_the_interpreter") {
        return;
    }
    let packets = prop::collection::vec(
        (
            packet(),
            conn_state(),
            prop::sample::select(vec![0u32, 0x1, 0x8000_0002]),
        ),
        16,
    );
    // A budget of conditional jumps a piece (doubled while the program would need more
    // pieces than the kernel chains, or a rule does not fit), or none.
    let budget = prop_oneof![Just(None), (4usize..48).prop_map(Some)];
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let maps = Maps::create(1024).unwrap();
    // One id space for the whole run: a case's sets get ids no earlier case used, so the
    // elements earlier cases left in the maps are never looked up again.
    let ids = std::cell::RefCell::new(SetIds::default());
    let case = std::cell::Cell::new(0u32);
    // Cases split into 2 pieces or more, and the most pieces of one.
    let split_cases = std::cell::Cell::new((0u32, 0usize));
    let result = runner.run(&(ruleset(), packets, budget), |(r, packets, budget)| {
        case.set(case.get() + 1);
        let mut by_name = BTreeMap::new();
        for (name, set) in &r.sets {
            let id = ids
                .borrow_mut()
                .assign(&format!("{}/{name}", case.get()))
                .unwrap();
            maps.add_set(name, id, set).unwrap();
            by_name.insert(name.clone(), id);
        }
        let program = split(&r, &by_name, budget)
            .map_err(|e| TestCaseError::fail(format!("generate: {e}")))?;
        if program.len() > 1 {
            let (n, most) = split_cases.get();
            split_cases.set((n + 1, most.max(program.len())));
        }
        let loaded = Loaded::load_pieces("cali_rand", &program, &maps, None, c"GPL")
            .map_err(|e| TestCaseError::fail(format!("load: {e}")))?;
        for (p, (c, word), mark) in packets {
            let ctx = PacketContext {
                packet: &p,
                iif: "",
                oif: "",
                ct: c,
            };
            let want = interpret_marked(&r, Hook::Forward, &ctx, mark);
            let f = frame::build(&p).unwrap();
            let got = loaded.run(&f, word, mark).unwrap();
            // A dropped packet's mark is of no consequence.
            let mark_of = |accepted: bool, m: u32| accepted.then_some(m);
            prop_assert_eq!(
                (got.accepted, mark_of(got.accepted, got.mark)),
                (want.accepted, mark_of(want.accepted, want.mark)),
                "packet {:?} {:?} mark {:#x}",
                p,
                c,
                mark
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (split, most) = split_cases.get();
    println!("{split} of {} cases split, up to {most} pieces", case.get());
    assert!(split >= case.get() / 4, "only {split} cases split");
}
