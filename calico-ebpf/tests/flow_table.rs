//! The programs' own flow table (`Conntrack::Table`), run by the kernel on crafted frames:
//! a connection's first packet, once accepted, makes its replies established; the
//! original direction is new until a reply was seen; ICMP echo replies match their
//! request's id; nothing else is established; idle flows expire, flows in use do not;
//! a TCP RST or FIN closes, and a SYN over a closed flow starts a new connection.

use std::collections::BTreeMap;
use std::time::Duration;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, CtState, Hook, Match, Rule, Ruleset, Side, Statement, Verdict,
};
use calico_core::eval::Packet;
use calico_ebpf::frame;
use calico_ebpf::generate::{hook_program, Bindings, Conntrack, FlowTimeouts, Options};
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

/// The forward program of [`ruleset`] with the flow table, idle flows expiring after
/// `timeouts`, loaded with `maps`.
fn program(maps: &Maps, timeouts: FlowTimeouts) -> Loaded {
    let options = Options {
        conntrack: Conntrack::Table(timeouts),
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
    Loaded::load("cali_flows", &program, maps).unwrap()
}

/// TCP flag bits.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Runs `loaded` on an IPv4 TCP frame with `flags`: (accepted, established).
fn tcp(
    loaded: &Loaded,
    (src, sport): (&str, u16),
    (dst, dport): (&str, u16),
    flags: u8,
) -> (bool, bool) {
    let p = Packet::tcp(src.parse().unwrap(), sport, dst.parse().unwrap(), dport);
    let mut f = frame::build(&p).unwrap();
    f[14 + 20 + 13] = flags;
    let d = loaded.run(&f, 0, 0).unwrap();
    (d.accepted, d.accepted && d.mark & ESTABLISHED_MARK != 0)
}

/// The flow table's idle time unit (2^30 ns): a flow expires between its timeout and one
/// unit later, so waits are whole units past it.
const UNIT: Duration = Duration::from_nanos(1 << 30);

#[test]
fn idle_flows_expire_and_flows_in_use_do_not() {
    if !privileged("idle_flows_expire_and_flows_in_use_do_not") {
        return;
    }
    let maps = Maps::create(16).unwrap();
    let one_second = FlowTimeouts {
        tcp_syn_sent: 1,
        tcp_established: 1,
        tcp_closing: 1,
        udp: 1,
        icmp: 1,
        other: 1,
    };
    let loaded = program(&maps, one_second);
    let (client, server) = (("10.0.0.1", 40_000), ("10.0.0.2", 80));
    assert_eq!(tcp(&loaded, client, server, SYN), (true, false));
    assert_eq!(tcp(&loaded, server, client, SYN | ACK), (true, true));
    // In use: a packet every half unit keeps it for three units.
    for _ in 0..6 {
        std::thread::sleep(UNIT / 2);
        assert_eq!(tcp(&loaded, server, client, ACK), (true, true), "in use");
    }
    // Idle for over two units (a 1 s timeout is one unit): gone. The reply is new now,
    // and the policy admits nothing from port 80.
    std::thread::sleep(UNIT * 2 + UNIT / 4);
    assert_eq!(
        tcp(&loaded, server, client, ACK),
        (false, false),
        "an idle flow expired: the reply is judged as new"
    );
    assert_eq!(
        tcp(&loaded, client, server, ACK),
        (true, false),
        "new again"
    );
}

#[test]
fn a_reset_closes_and_a_syn_then_starts_a_new_connection() {
    if !privileged("a_reset_closes_and_a_syn_then_starts_a_new_connection") {
        return;
    }
    let maps = Maps::create(16).unwrap();
    let closing_fast = FlowTimeouts {
        tcp_closing: 1,
        ..FlowTimeouts::default()
    };
    let loaded = program(&maps, closing_fast);
    let (client, server) = (("10.0.0.1", 40_000), ("10.0.0.2", 80));
    assert_eq!(tcp(&loaded, client, server, SYN), (true, false));
    assert_eq!(tcp(&loaded, server, client, SYN | ACK), (true, true));
    assert_eq!(tcp(&loaded, client, server, ACK), (true, true));
    assert_eq!(tcp(&loaded, client, server, RST), (true, true), "the RST");
    assert_eq!(
        tcp(&loaded, client, server, SYN),
        (true, false),
        "a SYN over a closed flow is a new connection's, judged by the policy"
    );
    assert_eq!(tcp(&loaded, server, client, SYN | ACK), (true, true));

    // A FIN closes too: idle past the closing timeout (not the established one), the
    // flow is gone.
    assert_eq!(tcp(&loaded, client, server, FIN | ACK), (true, true));
    std::thread::sleep(UNIT * 2 + UNIT / 4);
    assert_eq!(
        tcp(&loaded, server, client, ACK),
        (false, false),
        "closed and idle past the closing timeout"
    );
}

#[test]
fn replies_to_accepted_first_packets_are_established() {
    if !privileged("replies_to_accepted_first_packets_are_established") {
        return;
    }
    let maps = Maps::create(16).unwrap();
    let loaded = program(&maps, FlowTimeouts::default());
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
