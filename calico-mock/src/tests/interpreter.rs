//! The interpreter follows nftables' evaluation: base chains by priority, jump/goto/return,
//! verdict maps, sets, negation, statements.

use std::net::IpAddr;

use calico_core::dataplane::ir::{
    ChainPolicy, CtState, Hook, IfaceKey, Match, Rule, SetElement, SetKey, Side, Statement,
    Verdict, VerdictMap,
};
use calico_core::eval::Packet;

use super::*;
use crate::interpreter::{interpret, ConnState, Outcome, PacketContext};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(dport: u16) -> Packet {
    Packet::tcp(ip("10.0.0.1"), 40000, ip("10.0.0.2"), dport)
}

fn run_ct(r: &Ruleset, p: &Packet, iif: &str, ct: ConnState) -> Outcome {
    interpret(
        r,
        Hook::Forward,
        &PacketContext {
            packet: p,
            iif,
            oif: "eth0",
            ct,
        },
    )
}

fn run(r: &Ruleset, p: &Packet) -> Outcome {
    run_ct(r, p, "cali-a", ConnState::New)
}

/// Asserts the verdict and the deciding `chain#rule` (`None`: a base chain's policy or
/// nothing decided).
fn check(name: &str, r: &Ruleset, p: &Packet, accepted: bool, by: Option<(&str, usize)>) {
    let out = run(r, p);
    assert_eq!(out.accepted, accepted, "{name}: {out:?}");
    assert_eq!(
        out.decided_by,
        by.map(|(c, i)| (c.to_string(), i)),
        "{name}: {out:?}"
    );
}

#[test]
fn base_chains_rules_and_policies() {
    let empty = Ruleset::default();
    check("no base chain: accepted", &empty, &tcp(22), true, None);

    let closed = ruleset(vec![("fwd", base(0, ChainPolicy::Drop, vec![]))]);
    check("policy drop", &closed, &tcp(22), false, None);

    let r = ruleset(vec![(
        "fwd",
        base(0, ChainPolicy::Accept, vec![dport(22, Verdict::Drop)]),
    )]);
    check("rule drops", &r, &tcp(22), false, Some(("fwd", 0)));
    check("policy accepts the rest", &r, &tcp(80), true, None);

    // Accept ends one base chain only: a later base chain of the hook still sees the packet.
    let two = ruleset(vec![
        (
            "b-first",
            base(-10, ChainPolicy::Accept, vec![dport(80, Verdict::Accept)]),
        ),
        (
            "a-second",
            base(0, ChainPolicy::Accept, vec![dport(80, Verdict::Drop)]),
        ),
    ]);
    check(
        "accept is not final across base chains",
        &two,
        &tcp(80),
        false,
        Some(("a-second", 0)),
    );
    // Drop is final: the later chain never runs.
    let two = ruleset(vec![
        (
            "b-first",
            base(-10, ChainPolicy::Accept, vec![dport(80, Verdict::Drop)]),
        ),
        (
            "a-second",
            base(0, ChainPolicy::Accept, vec![always(Verdict::Accept)]),
        ),
    ]);
    let out = run(&two, &tcp(80));
    assert!(!out.accepted);
    assert_eq!(out.trace, vec!["b-first#0"], "second chain must not run");
    // Priority, not name, orders base chains.
    let out = run(
        &ruleset(vec![
            (
                "z",
                base(-5, ChainPolicy::Accept, vec![always(Verdict::Accept)]),
            ),
            (
                "a",
                base(5, ChainPolicy::Accept, vec![always(Verdict::Accept)]),
            ),
        ]),
        &tcp(1),
    );
    assert_eq!(out.trace, vec!["z#0", "a#0"]);
    // Other hooks' base chains do not see forwarded packets.
    let mut input_only = ruleset(vec![("in", base(0, ChainPolicy::Drop, vec![]))]);
    input_only
        .chains
        .get_mut("in")
        .unwrap()
        .base
        .as_mut()
        .unwrap()
        .hook = Hook::Input;
    check("other hook", &input_only, &tcp(1), true, None);
}

#[test]
fn jump_goto_and_return() {
    // jump: the end of the jumped-to chain resumes after the jump.
    let r = ruleset(vec![
        (
            "fwd",
            base(
                0,
                ChainPolicy::Accept,
                vec![always(jump("a")), always(Verdict::Drop)],
            ),
        ),
        ("a", regular(vec![dport(80, Verdict::Accept)])),
    ]);
    check("jumped chain accepts", &r, &tcp(80), true, Some(("a", 0)));
    check(
        "jumped chain falls through",
        &r,
        &tcp(22),
        false,
        Some(("fwd", 1)),
    );

    // goto: the end of the chain returns to the caller of the goto's chain: from a base
    // chain, that is the base chain's policy, not its next rule.
    let r = ruleset(vec![
        (
            "fwd",
            base(
                0,
                ChainPolicy::Drop,
                vec![always(goto("a")), always(Verdict::Accept)],
            ),
        ),
        ("a", regular(vec![dport(80, Verdict::Accept)])),
    ]);
    check("goto then accept", &r, &tcp(80), true, Some(("a", 0)));
    check("goto then end: base policy", &r, &tcp(22), false, None);

    // jump a; a: goto b; b falls off: back in the base chain after the jump (skipping the
    // rest of a).
    let r = ruleset(vec![
        (
            "fwd",
            base(
                0,
                ChainPolicy::Accept,
                vec![always(jump("a")), always(Verdict::Drop)],
            ),
        ),
        (
            "a",
            regular(vec![always(goto("b")), always(Verdict::Accept)]),
        ),
        ("b", regular(vec![])),
    ]);
    check(
        "goto's end skips the rest of its caller",
        &r,
        &tcp(1),
        false,
        Some(("fwd", 1)),
    );

    // return ends the chain early.
    let r = ruleset(vec![
        (
            "fwd",
            base(
                0,
                ChainPolicy::Drop,
                vec![always(jump("a")), always(Verdict::Accept)],
            ),
        ),
        (
            "a",
            regular(vec![dport(22, Verdict::Return), always(Verdict::Drop)]),
        ),
    ]);
    check(
        "return resumes the caller",
        &r,
        &tcp(22),
        true,
        Some(("fwd", 1)),
    );
    check("no return: drop", &r, &tcp(80), false, Some(("a", 1)));
    // Return in a base chain applies its policy.
    let r = ruleset(vec![(
        "fwd",
        base(
            0,
            ChainPolicy::Drop,
            vec![always(Verdict::Return), always(Verdict::Accept)],
        ),
    )]);
    check("return in a base chain", &r, &tcp(1), false, None);
}

#[test]
fn jumps_deeper_than_the_jump_stack_drop() {
    let mut chains = vec![(
        "fwd",
        base(0, ChainPolicy::Accept, vec![always(jump("c0"))]),
    )];
    let names: Vec<String> = (0..=MAX_DEPTH_PLUS).map(|i| format!("c{i}")).collect();
    for i in 0..MAX_DEPTH_PLUS {
        chains.push((
            names[i].as_str(),
            regular(vec![always(jump(&names[i + 1]))]),
        ));
    }
    chains.push((names[MAX_DEPTH_PLUS].as_str(), regular(vec![])));
    assert!(!run(&ruleset(chains), &tcp(1)).accepted);
}

const MAX_DEPTH_PLUS: usize = calico_core::dataplane::validate::MAX_JUMP_DEPTH + 2;

#[test]
fn verdict_maps_dispatch_by_interface() {
    let mut r = ruleset(vec![
        (
            "fwd",
            base(
                0,
                ChainPolicy::Accept,
                vec![
                    always(Verdict::Dispatch {
                        key: IfaceKey::Input,
                        map: "from".into(),
                    }),
                    always(Verdict::Drop),
                ],
            ),
        ),
        ("ep-a", regular(vec![dport(80, Verdict::Accept)])),
    ]);
    r.maps.insert(
        "from".into(),
        VerdictMap {
            elements: [("cali-a".to_string(), jump("ep-a"))].into_iter().collect(),
        },
    );
    check(
        "dispatched, accepted",
        &r,
        &tcp(80),
        true,
        Some(("ep-a", 0)),
    );
    check("dispatched, returns", &r, &tcp(22), false, Some(("fwd", 1)));
    let out = run_ct(&r, &tcp(80), "cali-unknown", ConnState::New);
    assert!(!out.accepted, "absent key: next rule (drop)");
    assert_eq!(out.decided_by, Some(("fwd".into(), 1)));
}

fn matching(m: Match) -> Ruleset {
    ruleset(vec![(
        "fwd",
        base(
            0,
            ChainPolicy::Drop,
            vec![Rule::new(vec![m], Verdict::Accept)],
        ),
    )])
}

#[test]
fn set_lookups_and_negation() {
    let a = ip("10.0.0.1");
    let addr_in = |set: &str, negate| Match::AddrInSet {
        side: Side::Src,
        set: set.into(),
        negate,
    };
    let with_sets = |m: Match| {
        let mut r = matching(m);
        r.sets
            .insert("v4".into(), set(SetKey::Ipv4Addr, &[SetElement::Addr(a)]));
        r.sets.insert(
            "v6".into(),
            set(SetKey::Ipv6Addr, &[SetElement::Addr(ip("fd00::1"))]),
        );
        r.sets.insert(
            "nets".into(),
            set(
                SetKey::Ipv4Net,
                &[SetElement::Net("10.0.0.0/30".parse().unwrap())],
            ),
        );
        r.sets.insert(
            "ports".into(),
            set(
                SetKey::Ipv4AddrProtoPort,
                &[SetElement::AddrProtoPort(ip("10.0.0.2"), 6, 8080)],
            ),
        );
        r
    };
    let other = Packet::tcp(ip("10.0.0.9"), 1, ip("10.0.0.2"), 8080);
    let v6 = Packet::tcp(ip("fd00::1"), 1, ip("fd00::2"), 8080);
    let cases: Vec<(&str, Match, Packet, bool)> = vec![
        ("in set", addr_in("v4", false), tcp(1), true),
        ("not in set", addr_in("v4", false), other.clone(), false),
        ("negated, absent", addr_in("v4", true), other.clone(), true),
        ("negated, present", addr_in("v4", true), tcp(1), false),
        // `ip saddr != @v4` carries `meta nfproto ipv4`: an IPv6 packet never matches.
        (
            "negated, other family",
            addr_in("v4", true),
            v6.clone(),
            false,
        ),
        ("v6 set", addr_in("v6", false), v6.clone(), true),
        ("interval set", addr_in("nets", false), tcp(1), true),
        (
            "outside interval",
            addr_in("nets", false),
            other.clone(),
            false,
        ),
        (
            "addr.proto.port",
            Match::AddrProtoPortInSet {
                side: Side::Dst,
                set: "ports".into(),
                negate: false,
            },
            tcp(8080),
            true,
        ),
        (
            "addr.proto.port, other port",
            Match::AddrProtoPortInSet {
                side: Side::Dst,
                set: "ports".into(),
                negate: false,
            },
            tcp(8081),
            false,
        ),
        (
            "addr.proto.port, other protocol",
            Match::AddrProtoPortInSet {
                side: Side::Dst,
                set: "ports".into(),
                negate: false,
            },
            Packet::udp(a, 1, ip("10.0.0.2"), 8080),
            false,
        ),
        (
            "addr.proto.port: a packet without ports never matches",
            Match::AddrProtoPortInSet {
                side: Side::Dst,
                set: "ports".into(),
                negate: true,
            },
            Packet::icmp(a, ip("10.0.0.2"), 8, 0),
            false,
        ),
    ];
    for (name, m, p, want) in cases {
        let out = run(&with_sets(m), &p);
        assert_eq!(out.accepted, want, "{name}: {out:?}");
    }
}

#[test]
fn protocol_port_icmp_and_family_matches() {
    let a = ip("10.0.0.1");
    let b = ip("10.0.0.2");
    let ping = Packet::icmp(a, b, 8, 0);
    let unreachable = Packet::icmp(a, b, 3, 4);
    let ping6 = Packet::icmpv6(ip("fd00::1"), ip("fd00::2"), 128, 0);
    let icmp = |t, code, negate| Match::Icmp {
        v6: false,
        icmp_type: t,
        code,
        negate,
    };
    let port = |lo, hi, negate| Match::Port {
        side: Side::Dst,
        ranges: vec![(lo, hi)],
        negate,
    };
    let cases: Vec<(&str, Match, Packet, bool)> = vec![
        ("ipv4", Match::Ipv4(true), ping.clone(), true),
        ("ipv6 vs v4", Match::Ipv4(false), ping.clone(), false),
        ("ipv6", Match::Ipv4(false), ping6.clone(), true),
        (
            "l4proto",
            Match::L4Proto {
                proto: 1,
                negate: false,
            },
            ping.clone(),
            true,
        ),
        (
            "l4proto !=",
            Match::L4Proto {
                proto: 1,
                negate: true,
            },
            ping.clone(),
            false,
        ),
        (
            "l4proto != other",
            Match::L4Proto {
                proto: 6,
                negate: true,
            },
            ping.clone(),
            true,
        ),
        ("port in range", port(80, 90, false), tcp(90), true),
        ("port out of range", port(80, 90, false), tcp(91), false),
        ("port not in range", port(80, 90, true), tcp(91), true),
        (
            "port negation needs a port",
            port(80, 90, true),
            ping.clone(),
            false,
        ),
        ("icmp type", icmp(8, None, false), ping.clone(), true),
        (
            "icmp other type",
            icmp(8, None, false),
            unreachable.clone(),
            false,
        ),
        (
            "icmp type and code",
            icmp(3, Some(4), false),
            unreachable.clone(),
            true,
        ),
        (
            "icmp type, other code",
            icmp(3, Some(1), false),
            unreachable.clone(),
            false,
        ),
        (
            "icmp negated",
            icmp(8, None, true),
            unreachable.clone(),
            true,
        ),
        (
            "icmp negated, equal",
            icmp(8, None, true),
            ping.clone(),
            false,
        ),
        (
            "icmp negated needs icmp",
            icmp(8, None, true),
            tcp(1),
            false,
        ),
        (
            "icmp vs icmpv6",
            icmp(128, None, false),
            ping6.clone(),
            false,
        ),
        (
            "icmpv6 type",
            Match::Icmp {
                v6: true,
                icmp_type: 128,
                code: None,
                negate: false,
            },
            ping6.clone(),
            true,
        ),
    ];
    for (name, m, p, want) in cases {
        let out = run(&matching(m), &p);
        assert_eq!(out.accepted, want, "{name}: {out:?}");
    }
}

#[test]
fn conntrack_marks_and_logs() {
    let r = matching(Match::Ct(CtState::EstablishedOrRelated));
    for (ct, want) in [
        (ConnState::New, false),
        (ConnState::Established, true),
        (ConnState::Related, true),
        (ConnState::Invalid, false),
    ] {
        assert_eq!(run_ct(&r, &tcp(1), "x", ct).accepted, want, "{ct:?}");
    }
    let r = matching(Match::Ct(CtState::Invalid));
    assert!(run_ct(&r, &tcp(1), "x", ConnState::Invalid).accepted);

    // A mark set in one chain is seen by a later rule; a log without verdict goes on.
    let r = ruleset(vec![
        (
            "fwd",
            base(
                0,
                ChainPolicy::Drop,
                vec![
                    always(jump("mark")),
                    Rule::new(vec![Match::MarkSet(0x10)], Verdict::Accept),
                ],
            ),
        ),
        (
            "mark",
            regular(vec![
                Rule {
                    matches: vec![],
                    statements: vec![Statement::Log("seen ".into())],
                    verdict: None,
                },
                Rule {
                    matches: vec![Match::L4Proto {
                        proto: 6,
                        negate: false,
                    }],
                    statements: vec![Statement::SetMark(0x30), Statement::ClearMark(0x20)],
                    verdict: None,
                },
            ]),
        ),
    ]);
    let out = run(&r, &tcp(1));
    assert!(out.accepted, "{out:?}");
    assert_eq!(out.logged, vec!["seen "]);
    assert_eq!(out.trace, vec!["fwd#0", "mark#0", "mark#1", "fwd#1"]);
    let udp = Packet::udp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 1);
    assert!(!run(&r, &udp).accepted, "no mark without the TCP rule");
}

/// A NAT base chain at `priority` running `st` on every IPv4 packet, then dropping (which a
/// NAT, ending the chain, skips). On the forward hook, where the kernel has no NAT: the
/// interpreter runs what it is given, the validator refuses it.
fn nat_base(priority: i32, st: Statement) -> Chain {
    let mut c = base(priority, ChainPolicy::Accept, vec![]);
    if let Some(b) = c.base.as_mut() {
        b.kind = calico_core::dataplane::ir::ChainType::Nat;
    }
    c.rules = vec![
        Rule {
            matches: vec![Match::Ipv4(true)],
            statements: vec![st],
            verdict: None,
        },
        always(Verdict::Drop),
    ];
    c
}

#[test]
fn nat_rewrites_the_packet_for_later_chains_and_ends_its_own() {
    let dnat = Statement::Dnat(ip("10.0.0.9"));
    // The filter chain after it drops what is still for 10.0.0.2.
    let to_old = Rule::new(
        vec![
            Match::Ipv4(true),
            Match::AddrEq {
                side: Side::Dst,
                addr: ip("10.0.0.2"),
                negate: false,
            },
        ],
        Verdict::Drop,
    );
    let r = ruleset(vec![
        ("nat", nat_base(-100, dnat)),
        ("filter", base(0, ChainPolicy::Accept, vec![to_old])),
    ]);
    let out = run(&r, &tcp(80));
    // The NAT accepted at its chain (its drop rule never ran); filter saw the new address.
    assert!(out.accepted, "{out:?}");
    assert_eq!(out.trace, ["nat#0"]);
    assert_eq!(out.packet.dst, ip("10.0.0.9"));
    assert_eq!(out.packet.src, ip("10.0.0.1"));
    let snat = ruleset(vec![(
        "nat",
        nat_base(100, Statement::Snat(ip("172.16.0.1"))),
    )]);
    assert_eq!(run(&snat, &tcp(80)).packet.src, ip("172.16.0.1"));
}

#[test]
fn nat_chains_see_only_a_connections_first_packet() {
    let r = ruleset(vec![(
        "nat",
        nat_base(-100, Statement::Dnat(ip("10.0.0.9"))),
    )]);
    for ct in [
        ConnState::Established,
        ConnState::Related,
        ConnState::Invalid,
    ] {
        let out = run_ct(&r, &tcp(80), "cali-a", ct);
        assert!(out.accepted && out.trace.is_empty(), "{ct:?}: {out:?}");
        assert_eq!(out.packet, tcp(80));
    }
}
