//! Generated programs on real interfaces: attached (TCX) to one end of a veth pair between
//! two namespaces this test creates, they filter real packets, and their conntrack lookup
//! (the kernel's kfuncs, found through its BTF) tells a reply from a new connection.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, CtState, Hook, Match, Rule, Ruleset, Side, Verdict,
};
use calico_ebpf::btf::Btf;
use calico_ebpf::generate::{hook_program, Bindings, Conntrack, CtKfuncs, Options};
use calico_ebpf::program::{Attached, Loaded};
use calico_ebpf::sets::Maps;
use calico_ebpf::sys::TcxDirection;
use calico_netns::fixtures::{privileged, veth, Netns};

const A: &str = "10.99.0.1";
const B: &str = "10.99.0.2";

/// Namespaces `a` and `b`, wired by the veth pair `a0`–`b0`.
fn pair() -> (Netns, Netns) {
    let a = Netns::create("bpf-a").unwrap();
    let b = Netns::create("bpf-b").unwrap();
    veth(&a, "a0", &b, "b0").unwrap();
    a.run(&["ip", "addr", "add", &format!("{A}/24"), "dev", "a0"])
        .unwrap();
    b.run(&["ip", "addr", "add", &format!("{B}/24"), "dev", "b0"])
        .unwrap();
    (a, b)
}

fn ruleset(rules: Vec<Rule>) -> Ruleset {
    let mut r = Ruleset::default();
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)),
            rules,
        },
    );
    r
}

fn tcp(dport: Option<u16>) -> Vec<Match> {
    let mut m = vec![Match::L4Proto {
        proto: 6,
        negate: false,
    }];
    if let Some(p) = dport {
        m.push(Match::Port {
            side: Side::Dst,
            ranges: vec![(p, p)],
            negate: false,
        });
    }
    m
}

/// Generates `r` with the kernel conntrack lookup, loads it, and attaches it to the
/// ingress of `iface` in `ns`.
fn attach(ns: &Netns, iface: &str, r: &Ruleset, maps: &Maps) -> Attached {
    let kfuncs = CtKfuncs::from_btf(&Btf::vmlinux().unwrap()).unwrap();
    let options = Options {
        conntrack: Conntrack::Lookup(kfuncs),
        ..Options::default()
    };
    let program = hook_program(
        r,
        Hook::Forward,
        &Bindings::default(),
        &Default::default(),
        options,
    )
    .unwrap();
    // The kernel lets only GPL-compatible programs call kfuncs.
    let loaded = Loaded::load_with_license("cali_live", &program, maps, c"GPL").unwrap();
    let iface = std::ffi::CString::new(iface).unwrap();
    ns.enter(|| {
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(iface.as_ptr()) };
        assert_ne!(index, 0, "no interface {iface:?}");
        loaded.attach(index, TcxDirection::Ingress)
    })
    .unwrap()
    .unwrap()
}

/// Whether a TCP connection from `from` to `addr:port` in `to` is established.
fn connects(from: &Netns, to: &Netns, addr: &str, port: u16) -> bool {
    let at: SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let _listener = to.enter(move || TcpListener::bind(at)).unwrap().unwrap();
    from.enter(move || TcpStream::connect_timeout(&at, Duration::from_millis(700)).is_ok())
        .unwrap()
}

fn pings(from: &Netns, to: &str) -> bool {
    from.output(&["ping", "-c1", "-W1", to])
        .unwrap()
        .status
        .success()
}

#[test]
fn an_attached_program_filters_real_packets() {
    if !privileged("an_attached_program_filters_real_packets") {
        return;
    }
    let (a, b) = pair();
    let maps = Maps::create(16).unwrap();
    // Into b: TCP to port 8080 dropped, everything else accepted.
    let r = ruleset(vec![Rule::new(tcp(Some(8080)), Verdict::Drop)]);
    assert!(connects(&a, &b, B, 8080), "the wiring works before");
    let attached = attach(&b, "b0", &r, &maps);
    assert!(pings(&a, B), "ping is allowed");
    assert!(!connects(&a, &b, B, 8080), "TCP to 8080 is dropped");
    assert!(connects(&a, &b, B, 9090), "TCP to 9090 is allowed");
    drop(attached);
    assert!(connects(&a, &b, B, 8080), "detached with the link");
}

#[test]
fn the_conntrack_lookup_tells_replies_from_new_connections() {
    if !privileged("the_conntrack_lookup_tells_replies_from_new_connections") {
        return;
    }
    let (a, b) = pair();
    // Conntrack tracks in a namespace only once something there uses it.
    a.run(&["nft", "add table inet t"]).unwrap();
    a.run(&[
        "nft",
        "add chain inet t out { type filter hook output priority 0 ; }",
    ])
    .unwrap();
    a.run(&["nft", "add rule inet t out ct state new counter"])
        .unwrap();
    let maps = Maps::create(16).unwrap();
    // Into a: established or related accepted, any other TCP dropped.
    let r = ruleset(vec![
        Rule::new(
            vec![Match::Ct(CtState::EstablishedOrRelated)],
            Verdict::Accept,
        ),
        Rule::new(tcp(None), Verdict::Drop),
    ]);
    let _attached = attach(&a, "a0", &r, &maps);
    assert!(
        connects(&a, &b, B, 9090),
        "a's connection out: the SYN-ACK into a is a reply, established"
    );
    assert!(
        !connects(&b, &a, A, 9091),
        "b's connection in: the SYN into a is new, dropped"
    );
}
