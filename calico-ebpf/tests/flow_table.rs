//! The programs' own flow table (`Conntrack::Table`), run by the kernel on crafted frames:
//! a connection's first packet, once accepted, makes its replies established; the
//! original direction is new until a reply was seen; ICMP echo replies match their
//! request's id; nothing else is established.

use std::collections::BTreeMap;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, CtState, Hook, Match, Rule, Ruleset, Side, Statement, Verdict,
};
use calico_core::eval::Packet;
use calico_ebpf::frame;
use calico_ebpf::generate::{hook_program, Bindings, Conntrack, Options};
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::Maps;
use calico_netns::fixtures::privileged;

const ESTABLISHED_MARK: u32 = 0x10;

/// Established or related: accepted and marked. Then TCP to port 80 and echo requests
/// accepted; everything else dropped.
fn ruleset() -> Ruleset {
    let mut r = Ruleset::default();
    let established = Rule {
        matches: vec![Match::Ct(CtState::EstablishedOrRelated)],
        statements: vec![Statement::SetMark(ESTABLISHED_MARK)],
        verdict: Some(Verdict::Accept),
    };
    let http = Rule::new(
        vec![
            Match::L4Proto {
                proto: 6,
                negate: false,
            },
            Match::Port {
                side: Side::Dst,
                ranges: vec![(80, 80)],
                negate: false,
            },
        ],
        Verdict::Accept,
    );
    let echo = Rule::new(
        vec![Match::Icmp {
            v6: false,
            icmp_type: 8,
            code: None,
            negate: false,
        }],
        Verdict::Accept,
    );
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(BaseChain {
                policy: calico_core::dataplane::ir::ChainPolicy::Drop,
                ..BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)
            }),
            rules: vec![established, http, echo],
        },
    );
    r
}

#[test]
fn replies_to_accepted_first_packets_are_established() {
    if !privileged("replies_to_accepted_first_packets_are_established") {
        return;
    }
    let maps = Maps::create(16).unwrap();
    let options = Options {
        conntrack: Conntrack::Table,
        ..Options::default()
    };
    let program = hook_program(
        &ruleset(),
        Hook::Forward,
        &Bindings::default(),
        &BTreeMap::new(),
        options,
    )
    .unwrap();
    let loaded = Loaded::load("cali_flows", &program, &maps).unwrap();
    // (accepted, established)
    let run = |p: &Packet| {
        let d = loaded.run(&frame::build(p).unwrap(), 0, 0).unwrap();
        (d.accepted, d.accepted && d.mark & ESTABLISHED_MARK != 0)
    };
    let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());

    assert_eq!(
        run(&Packet::tcp(b, 80, a, 40_000)),
        (false, false),
        "no flow yet"
    );
    assert_eq!(
        run(&Packet::tcp(a, 40_000, b, 80)),
        (true, false),
        "first packet: new"
    );
    assert_eq!(
        run(&Packet::tcp(a, 40_000, b, 80)),
        (true, false),
        "no reply yet: new"
    );
    assert_eq!(
        run(&Packet::tcp(b, 80, a, 40_000)),
        (true, true),
        "the reply: established"
    );
    assert_eq!(
        run(&Packet::tcp(a, 40_000, b, 80)),
        (true, true),
        "after a reply: established"
    );
    assert_eq!(
        run(&Packet::tcp(b, 80, a, 40_001)),
        (false, false),
        "another port: new"
    );
    assert_eq!(
        run(&Packet::udp(b, 80, a, 40_000)),
        (false, false),
        "another protocol: new"
    );

    // A dropped first packet records nothing.
    assert_eq!(run(&Packet::tcp(a, 40_002, b, 81)), (false, false));
    assert_eq!(run(&Packet::tcp(b, 81, a, 40_002)), (false, false));

    // Echo: the reply of the same id is established, another id is not.
    let echo = |src, dst, t, id: u16| {
        let mut f = frame::build(&Packet::icmp(src, dst, t, 0)).unwrap();
        f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&id.to_be_bytes());
        let d = loaded.run(&f, 0, 0).unwrap();
        (d.accepted, d.accepted && d.mark & ESTABLISHED_MARK != 0)
    };
    assert_eq!(echo(a, b, 8, 7), (true, false), "request");
    assert_eq!(echo(b, a, 0, 7), (true, true), "its reply");
    assert_eq!(echo(b, a, 0, 8), (false, false), "a reply to no request");
}
