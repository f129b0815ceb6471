//! A policy too large for one BPF program, split into pieces chained with tail calls,
//! runs in the kernel (`BPF_PROG_TEST_RUN`) to the interpreter's verdicts and marks: for
//! packets decided in the first, middle and last pieces, an `Accept` of an early base
//! chain going on to the next base chain in the last piece, a `Return` from an inlined
//! chain to a rule several pieces later, drops, and the last base chain's policy. Unsplit,
//! the same policy is refused. A packet may cross the most pieces the kernel's tail-call
//! limit allows after the dispatcher's call (run through the dispatcher too); a policy
//! needing more is refused.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainPolicy, ChainType, Hook, Match, Rule, Ruleset, Side, Statement, Verdict,
};
use calico_core::eval::Packet;
use calico_core::model::Protocol;
use calico_ebpf::dispatch::Dispatcher;
use calico_ebpf::frame;
use calico_ebpf::generate::parse::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use calico_ebpf::generate::{
    generate, Options, PieceBudget, Pieces, Plan, Stage, MAX_PIECES, MAX_TAIL_CALLS,
};
use calico_ebpf::layout::{ct, skb};
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::Maps;
use calico_ebpf::sys;
use calico_ebpf::tc::Direction;
use calico_ebpf::GenerateError;
use calico_mock::{interpret_marked, ConnState, PacketContext};
use calico_netns::fixtures::{privileged, Netns};

/// TCP to destination port `port`, with `verdict`.
fn port_rule(port: u16, verdict: Verdict) -> Rule {
    Rule::new(
        vec![
            Match::L4Proto {
                proto: 6,
                negate: false,
            },
            Match::Port {
                side: Side::Dst,
                ranges: vec![(port, port)],
                negate: false,
            },
        ],
        verdict,
    )
}

/// `n` rules dropping TCP to ports `from..from + n`.
fn filler(from: u16, n: u16) -> impl Iterator<Item = Rule> {
    (from..from + n).map(|p| port_rule(p, Verdict::Drop))
}

fn base(priority: i32, policy: ChainPolicy, rules: Vec<Rule>) -> Chain {
    Chain {
        base: Some(BaseChain {
            hook: Hook::Forward,
            priority,
            policy,
            kind: ChainType::Filter,
        }),
        rules,
    }
}

/// Base chain `a` (accepting): port 1 accepted at once (on to `b`), a mark, 2,000 drops,
/// an inlined jump to `sub`, port 2 dropped, 2,000 drops, port 5 dropped. `sub`: 200
/// drops, port 2 returns, 1,800 drops, port 3 accepted (on to `b`), port 6 dropped.
/// Base chain `b` (dropping): 10.0.0.66 and port 7 dropped, the rest of TCP accepted.
fn big() -> Ruleset {
    let mark = Rule {
        matches: vec![Match::L4Proto {
            proto: 6,
            negate: false,
        }],
        statements: vec![Statement::SetMark(0x10)],
        verdict: None,
    };
    let mut a = vec![port_rule(1, Verdict::Accept), mark];
    a.extend(filler(10_000, 2_000));
    a.push(Rule::new(vec![], Verdict::Jump("sub".into())));
    a.push(port_rule(2, Verdict::Drop));
    a.extend(filler(20_000, 2_000));
    a.push(port_rule(5, Verdict::Drop));
    let mut sub: Vec<Rule> = filler(30_000, 200).collect();
    sub.push(port_rule(2, Verdict::Return));
    sub.extend(filler(31_000, 1_800));
    sub.push(port_rule(3, Verdict::Accept));
    sub.push(port_rule(6, Verdict::Drop));
    let spoofer = Match::AddrEq {
        side: Side::Src,
        addr: "10.0.0.66".parse().unwrap(),
        negate: false,
    };
    let tcp = Match::L4Proto {
        proto: 6,
        negate: false,
    };
    let b = vec![
        Rule::new(vec![spoofer], Verdict::Drop),
        port_rule(7, Verdict::Drop),
        Rule::new(vec![tcp], Verdict::Accept),
    ];
    let mut r = Ruleset::default();
    r.chains.insert("a".into(), base(0, ChainPolicy::Accept, a));
    r.chains.insert("b".into(), base(10, ChainPolicy::Drop, b));
    r.chains.insert(
        "sub".into(),
        Chain {
            base: None,
            rules: sub,
        },
    );
    r
}

fn forward_plan() -> Plan {
    Plan::Always(vec![Stage {
        hook: Hook::Forward,
        bindings: Default::default(),
    }])
}

fn pieces(r: &Ruleset, budget: PieceBudget) -> Result<Pieces, GenerateError> {
    let options = Options {
        pieces: budget,
        ..Options::default()
    };
    Ok(generate(r, &forward_plan(), &BTreeMap::new(), options)?.pieces)
}

/// Runs `packets` through `loaded` and the interpreter; the kernel's verdicts.
fn same_as_interpreter(r: &Ruleset, loaded: &Loaded, packets: &[Packet]) -> Vec<bool> {
    packets
        .iter()
        .map(|p| {
            let ctx = PacketContext {
                packet: p,
                iif: "",
                oif: "",
                ct: ConnState::New,
            };
            let want = interpret_marked(r, Hook::Forward, &ctx, 0);
            let got = loaded
                .run(&frame::build(p).unwrap(), ct::NEW | ct::UNCONFIRMED, 0)
                .unwrap();
            let mark_of = |accepted: bool, m: u32| accepted.then_some(m);
            assert_eq!(
                (got.accepted, mark_of(got.accepted, got.mark)),
                (want.accepted, mark_of(want.accepted, want.mark)),
                "{p:?}"
            );
            got.accepted
        })
        .collect()
}

/// What `loaded` returns for each of `packets` reached through the dispatcher, as a
/// packet at a veth interface of a scratch namespace (a test run's packet is at the
/// interface its context names).
fn through_dispatcher(loaded: &Loaded, packets: &[Packet]) -> Vec<i32> {
    let ns = Netns::create("ebpf-split-dispatch").unwrap();
    ns.run(&[
        "ip", "link", "add", "sd0", "type", "veth", "peer", "name", "sd1",
    ])
    .unwrap();
    let frames: Vec<Vec<u8>> = packets.iter().map(|p| frame::build(p).unwrap()).collect();
    ns.enter(|| {
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c"sd0".as_ptr()) };
        let mut d = Dispatcher::open([None, None], None, c"GPL").unwrap();
        let slot = d.hold(index).unwrap();
        slot.set(Direction::Ingress, loaded.fd()).unwrap();
        slot.enable().unwrap();
        let mut ctx = vec![0u8; skb::SIZE];
        let word = ct::NEW | ct::UNCONFIRMED;
        ctx[skb::CB0 as usize..][..4].copy_from_slice(&word.to_ne_bytes());
        ctx[skb::IFINDEX as usize..][..4].copy_from_slice(&index.to_ne_bytes());
        let run = |f: &Vec<u8>| {
            let out = sys::prog_test_run(d.program(Direction::Ingress), f, &ctx, 1).unwrap();
            out.retval as i32
        };
        frames.iter().map(run).collect()
    })
    .unwrap()
}

fn tcp(src: &str, dport: u16) -> Packet {
    let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), "10.0.0.2".parse().unwrap());
    Packet::ported(Protocol(6), src, 40_000, dst, dport)
}

#[test]
fn unsplit_the_big_policy_is_refused() {
    // An accept in the first rule cannot reach base chain b, ~50K instructions on.
    let e = pieces(&big(), PieceBudget::UNSPLIT).unwrap_err();
    assert!(matches!(e, GenerateError::JumpTooFar { .. }), "{e}");
}

#[test]
fn a_policy_of_several_pieces_gives_the_interpreters_verdicts() {
    if !privileged("a_policy_of_several_pieces_gives_the_interpreters_verdicts") {
        return;
    }
    let r = big();
    let p = pieces(&r, PieceBudget::DEFAULT).unwrap();
    assert!(p.len() >= 3, "{} pieces", p.len());
    println!("{} pieces, {} instructions", p.len(), p.insns());
    let maps = Maps::create(16).unwrap();
    let loaded = Loaded::load_pieces("cali_split", &p, &maps, None, c"GPL").unwrap();
    assert_eq!(loaded.tail().unwrap().ids().len(), p.len() - 1);
    let ports = [
        1, 2, 3, 4, 5, 6, 7, 9, 10_000, 11_999, 20_000, 21_999, 30_000, 30_199, 31_000, 32_799,
    ];
    let mut packets = Vec::new();
    for src in ["10.0.0.1", "10.0.0.66"] {
        for &port in &ports {
            packets.push(tcp(src, port));
        }
        let (s, d) = (src.parse().unwrap(), "10.0.0.2".parse().unwrap());
        packets.push(Packet::ported(Protocol(17), s, 1, d, 9));
    }
    let verdicts = same_as_interpreter(&r, &loaded, &packets);
    // Both verdicts occur; port 1 and 3 from 10.0.0.1 were accepted through b.
    assert!(verdicts.contains(&true) && verdicts.contains(&false));
    assert!(verdicts[0] && verdicts[2], "ports 1 and 3 accepted");
    assert!(!verdicts[1], "port 2: returned from sub, then dropped");
}

/// `n` drops of TCP ports 10,000.., cut into pieces of 30 conditional jumps.
fn many(n: u16) -> (Ruleset, Result<Pieces, GenerateError>) {
    let mut r = Ruleset::default();
    let rules = filler(10_000, n).collect();
    r.chains
        .insert("a".into(), base(0, ChainPolicy::Accept, rules));
    let budget = PieceBudget {
        insns: usize::MAX,
        branches: 30,
    };
    let p = pieces(&r, budget);
    (r, p)
}

#[test]
fn a_packet_crosses_as_many_pieces_as_the_kernel_allows_and_no_more_are_made() {
    if !privileged("a_packet_crosses_as_many_pieces_as_the_kernel_allows_and_no_more_are_made") {
        return;
    }
    let mut n = 1;
    let (r, p) = loop {
        match many(n) {
            (r, Ok(p)) if p.len() == MAX_PIECES => break (r, p),
            (_, Ok(p)) if p.len() < MAX_PIECES => n += 1,
            (_, other) => panic!("{n} rules: {other:?}"),
        }
    };
    let maps = Maps::create(16).unwrap();
    let loaded = Loaded::load_pieces("cali_many", &p, &maps, None, c"GPL").unwrap();
    // The last rule's packet makes 32 tail calls (33 with the dispatcher's, the kernel's
    // limit); one matching nothing too.
    let last = tcp("10.0.0.1", 10_000 + n - 1);
    let none = tcp("10.0.0.1", 9_999);
    let verdicts = same_as_interpreter(&r, &loaded, &[last.clone(), none.clone()]);
    assert_eq!(verdicts, [false, true]);
    // Through the dispatcher, which makes the 33rd tail call: the packet matching
    // nothing crosses every piece and is accepted (a tail call past the kernel's limit
    // fails, which drops it), the last rule's is dropped by its rule.
    let via = through_dispatcher(&loaded, &[last, none]);
    assert_eq!(via, [TC_ACT_SHOT, TC_ACT_UNSPEC]);
    // A few rules more need a piece more: refused, naming the limit.
    let more = (n..n + 20).map(many).find(|(_, p)| p.is_err());
    let Some((_, Err(e))) = more else {
        panic!("never refused")
    };
    assert!(
        matches!(
            e,
            GenerateError::TooManyPieces {
                limit: MAX_PIECES,
                tail_calls: MAX_TAIL_CALLS,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("33 tail calls"), "{e}");
}
