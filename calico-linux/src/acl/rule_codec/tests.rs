use super::*;
use crate::nft::expr::{CmpOp, Expr, VerdictCode};
use crate::nft::proto::*;
use calico_core::arbitrary;
use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::{CtState, IfaceKey, Match, Rule, Statement, Verdict};
use proptest::prelude::*;

/// Renders, then stands in for the kernel: anonymous sets get kernel-style names.
fn round_trip(rule: &Rule) -> Option<Rule> {
    let mut next_id = 1;
    let mut anon = Vec::new();
    let mut exprs = render(rule, &mut next_id, &mut anon).expect("renders");
    for e in &mut exprs {
        if let Expr::Lookup {
            set,
            set_id: Some(id),
            ..
        } = e
        {
            *set = format!("__set{id}");
        }
    }
    let resolve = |name: &str| {
        let id: u32 = name.strip_prefix("__set")?.parse().ok()?;
        anon.iter().find(|a| a.id == id).map(|a| a.ranges.clone())
    };
    parse(&exprs, &resolve)
}

#[test]
fn hand_picked_rules_round_trip() {
    let rules = [
        nat_rule(Statement::Dnat("10.65.0.7".parse().unwrap())),
        nat_rule(Statement::Snat("2001:db8::5".parse().unwrap())),
        Rule::new(
            vec![
                Match::Ipv4(true),
                Match::AddrEq {
                    side: Side::Src,
                    addr: "10.65.0.7".parse().unwrap(),
                    negate: true,
                },
            ],
            Verdict::Drop,
        ),
        Rule::new(
            vec![
                Match::Ipv4(false),
                Match::AddrEq {
                    side: Side::Dst,
                    addr: "fd00::7".parse().unwrap(),
                    negate: false,
                },
            ],
            Verdict::Accept,
        ),
        Rule::new(
            vec![
                Match::Ipv4(true),
                Match::L4Proto {
                    proto: 6,
                    negate: false,
                },
                Match::Port {
                    side: Side::Dst,
                    ranges: vec![(80, 80), (443, 450)],
                    negate: false,
                },
                Match::Port {
                    side: Side::Src,
                    ranges: vec![(1, 2), (7, 7)],
                    negate: true,
                },
                Match::Port {
                    side: Side::Dst,
                    ranges: vec![(9, 9)],
                    negate: false,
                },
            ],
            Verdict::Accept,
        ),
        Rule::new(
            vec![
                Match::Ipv4(false),
                Match::Icmp {
                    v6: true,
                    icmp_type: 128,
                    code: Some(0),
                    negate: true,
                },
                Match::AddrInSet {
                    side: Side::Src,
                    set: "s".into(),
                    negate: true,
                },
                Match::AddrProtoPortInSet {
                    side: Side::Dst,
                    set: "np".into(),
                    negate: false,
                },
                Match::Ct(CtState::Invalid),
                Match::MarkSet(0x20000),
                Match::CtUnconfirmed,
            ],
            Verdict::Jump("c".into()),
        ),
        Rule {
            matches: vec![Match::Ct(CtState::EstablishedOrRelated)],
            statements: vec![
                Statement::Log("calico ".into()),
                Statement::SetMark(0x20000),
                Statement::ClearMark(0x10000),
            ],
            verdict: None,
        },
        Rule::new(
            vec![],
            Verdict::Dispatch {
                key: IfaceKey::Output,
                map: "m".into(),
            },
        ),
        Rule::new(vec![], Verdict::Return),
        Rule::new(vec![Match::Ipv4(true)], Verdict::Goto("g".into())),
        Rule {
            matches: vec![Match::Ipv4(true)],
            statements: vec![Statement::NfLog {
                group: 20,
                prefix: "A pol-in-x 2".into(),
                rate: None,
            }],
            verdict: Some(Verdict::Accept),
        },
        Rule {
            matches: vec![Match::L4Proto {
                proto: 17,
                negate: false,
            }],
            statements: vec![Statement::NfLog {
                group: 65535,
                prefix: "D pol-in-x 0".into(),
                rate: Some(10),
            }],
            verdict: None,
        },
    ];
    for r in &rules {
        assert_eq!(round_trip(r).as_ref(), Some(r), "{r:?}");
    }
}

/// A rule translating to `st`'s address, matching its family.
fn nat_rule(st: Statement) -> Rule {
    let (Statement::Dnat(a) | Statement::Snat(a)) = st else {
        unreachable!()
    };
    Rule {
        matches: vec![Match::Ipv4(a.is_ipv4())],
        statements: vec![st],
        verdict: None,
    }
}

#[test]
fn nat_renders_as_nft_writes_it_and_parses_as_the_kernel_dumps_it() {
    let rule = nat_rule(Statement::Dnat("10.0.0.1".parse().unwrap()));
    let exprs = render(&rule, &mut 1, &mut Vec::new()).unwrap();
    // `nft --debug=netlink`: `ip ... dnat ip to 10.0.0.1` in an inet table.
    assert_eq!(
        exprs[2..],
        [
            Expr::Immediate {
                dreg: NFT_REG_1,
                data: vec![10, 0, 0, 1],
            },
            Expr::Nat {
                nat_type: NFT_NAT_DNAT,
                family: u32::from(NFPROTO_IPV4),
                addr_min: NFT_REG_1,
                addr_max: None,
                flags: None,
            },
        ]
    );
    // Read back: `addr_min reg 1 addr_max reg 1 flags 0x1`.
    let mut dumped = exprs.clone();
    dumped[3] = Expr::Nat {
        nat_type: NFT_NAT_DNAT,
        family: u32::from(NFPROTO_IPV4),
        addr_min: NFT_REG_1,
        addr_max: Some(NFT_REG_1),
        flags: Some(NF_NAT_RANGE_MAP_IPS),
    };
    assert_eq!(parse(&dumped, &|_| None), Some(rule));
}

#[test]
fn a_nat_calico_never_writes_is_foreign() {
    let rule = nat_rule(Statement::Snat("10.0.0.1".parse().unwrap()));
    let exprs = render(&rule, &mut 1, &mut Vec::new()).unwrap();
    let with_nat = |f: &dyn Fn(&mut Expr)| {
        let mut e = exprs.clone();
        f(&mut e[3]);
        e
    };
    let variants = [
        // An address range, other flags (random ports), the wrong family or type.
        with_nat(&|e| {
            if let Expr::Nat { addr_max, .. } = e {
                *addr_max = Some(NFT_REG32_00 + 1);
            }
        }),
        with_nat(&|e| {
            if let Expr::Nat { flags, .. } = e {
                *flags = Some(NF_NAT_RANGE_MAP_IPS | 4);
            }
        }),
        with_nat(&|e| {
            if let Expr::Nat { family, .. } = e {
                *family = u32::from(NFPROTO_IPV6);
            }
        }),
        with_nat(&|e| {
            if let Expr::Nat { nat_type, .. } = e {
                *nat_type = 2;
            }
        }),
        // The address in another register than the NAT reads.
        with_nat(&|e| {
            if let Expr::Nat { addr_min, .. } = e {
                *addr_min = 2;
            }
        }),
        // A NAT with no address loaded before it.
        exprs[..2].iter().chain(&exprs[3..]).cloned().collect(),
        // A data load with nothing after it.
        exprs[..3].to_vec(),
    ];
    for v in variants {
        assert_eq!(parse(&v, &|_| None), None, "{v:?}");
    }
}

#[test]
fn expressions_out_of_order_are_foreign() {
    let rule = Rule {
        matches: vec![Match::Ipv4(true)],
        statements: vec![Statement::Log("x".into())],
        verdict: Some(Verdict::Accept),
    };
    let mut exprs = render(&rule, &mut 1, &mut Vec::new()).unwrap();
    // A match after the verdict, as a hand-edited rule might have.
    exprs.rotate_left(2);
    assert_eq!(parse(&exprs, &|_| None), None);
    // An address match with no IP family before it cannot be located.
    let exprs = vec![
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: 12,
            len: 4,
            dreg: 1,
        },
        Expr::Lookup {
            set: "s".into(),
            set_id: None,
            sreg: 1,
            dreg: None,
            invert: false,
        },
    ];
    assert_eq!(parse(&exprs, &|_| None), None);
}

#[test]
fn registers_between_the_128_and_32_bit_ranges_are_foreign_not_an_overflow() {
    // Registers 5 to 7 name neither a 128-bit nor a 32-bit register; their word index
    // used to be computed as `reg - 8 + 4`, which overflows.
    for reg in [5, 6, 7, u32::MAX] {
        let exprs = vec![
            Expr::Meta {
                key: NFT_META_NFPROTO,
                dreg: reg,
            },
            Expr::Cmp {
                sreg: reg,
                op: CmpOp::Eq,
                data: vec![NFPROTO_IPV4],
            },
        ];
        assert_eq!(parse(&exprs, &|_| None), None, "register {reg}");
    }
}

#[test]
fn compared_data_of_the_wrong_size_is_foreign() {
    let cmp = |data: Vec<u8>| Expr::Cmp {
        sreg: NFT_REG_1,
        op: CmpOp::Eq,
        data,
    };
    let load = |key| Expr::Meta {
        key,
        dreg: NFT_REG_1,
    };
    let port = Expr::Payload {
        base: NFT_PAYLOAD_TRANSPORT_HEADER,
        offset: 2,
        len: 2,
        dreg: NFT_REG_1,
    };
    for exprs in [
        vec![load(NFT_META_NFPROTO), cmp(vec![])],
        vec![load(NFT_META_L4PROTO), cmp(vec![6, 0])],
        vec![
            load(NFT_META_NFPROTO),
            cmp(vec![2]),
            port.clone(),
            cmp(vec![80]),
        ],
        vec![
            load(NFT_META_NFPROTO),
            cmp(vec![2]),
            load_addr_v4(),
            cmp(vec![10, 0, 0]),
        ],
        vec![load(NFT_META_MARK), Expr::Verdict(VerdictCode::Accept)],
    ] {
        assert_eq!(parse(&exprs, &|_| None), None, "{exprs:?}");
    }
}

fn load_addr_v4() -> Expr {
    Expr::Payload {
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset: 12,
        len: 4,
        dreg: NFT_REG_1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every rule the compiler produces renders and parses back to itself.
    #[test]
    fn compiled_rules_round_trip(model in arbitrary::model()) {
        let config = CompileConfig { floating_ips: true, ..CompileConfig::new("h1") };
        let ruleset = compile(&config, &model);
        for chain in ruleset.chains.values() {
            for rule in &chain.rules {
                let back = round_trip(rule);
                prop_assert_eq!(back.as_ref(), Some(rule));
            }
        }
    }
}
