//! What the prologue does with frames that are not plain IP packets, run by the kernel:
//! non-IP frames (ARP, VLAN-tagged) pass untouched; malformed IPv4 headers are dropped; a
//! transport header too short for its ports leaves them unset (port matches fail, whether
//! negated or not); an IPv4 non-first fragment has no ports.

use std::collections::BTreeMap;

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, Hook, Match, Rule, Ruleset, Side, Verdict,
};
use calico_core::eval::Packet;
use calico_ebpf::frame;
use calico_ebpf::generate::{hook_program, Bindings, Options};
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::Maps;
use calico_netns::fixtures::privileged;

/// Drops TCP to port 80, accepts everything else; with `negate`, drops TCP to any port
/// but 80.
fn load(maps: &Maps, negate: bool) -> Loaded {
    let mut r = Ruleset::default();
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)),
            rules: vec![Rule::new(
                vec![
                    Match::L4Proto {
                        proto: 6,
                        negate: false,
                    },
                    Match::Port {
                        side: Side::Dst,
                        ranges: vec![(80, 80)],
                        negate,
                    },
                ],
                Verdict::Drop,
            )],
        },
    );
    let p = hook_program(
        &r,
        Hook::Forward,
        &Bindings::default(),
        &BTreeMap::new(),
        Options::default(),
    )
    .unwrap();
    Loaded::load("cali_frames", &p, maps).unwrap()
}

#[test]
fn odd_frames_are_passed_dropped_or_portless_as_documented() {
    if !privileged("odd_frames_are_passed_dropped_or_portless_as_documented") {
        return;
    }
    let maps = Maps::create(16).unwrap();
    let (drop80, drop_not80) = (load(&maps, false), load(&maps, true));
    let accepted = |l: &Loaded, f: &[u8]| l.run(f, 0, 0).unwrap().accepted;
    let tcp80 = frame::build(&Packet::tcp(
        "10.0.0.1".parse().unwrap(),
        1000,
        "10.0.0.2".parse().unwrap(),
        80,
    ))
    .unwrap();
    assert!(!accepted(&drop80, &tcp80), "the rule works");
    assert!(accepted(&drop_not80, &tcp80));

    // ARP, and the same TCP packet behind a VLAN tag: not IP to the prologue.
    let mut arp = tcp80.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(accepted(&drop80, &arp));
    let mut vlan = tcp80[..12].to_vec();
    vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    vlan.extend_from_slice(&tcp80[12..]);
    assert!(
        accepted(&drop80, &vlan),
        "VLAN-tagged frames pass (documented)"
    );

    // Malformed IPv4: version 5, header length 4. (A header cut short cannot be run:
    // BPF_PROG_TEST_RUN itself refuses an IPv4 frame without a whole header.)
    for (what, f) in [
        ("version", {
            let mut f = tcp80.clone();
            f[14] = 0x55;
            f
        }),
        ("header length", {
            let mut f = tcp80.clone();
            f[14] = 0x44;
            f
        }),
    ] {
        assert!(!accepted(&drop80, &f), "{what}: dropped");
        assert!(
            !accepted(&drop_not80, &f),
            "{what}: dropped whatever the rule"
        );
    }

    // A transport header too short for ports: port matches fail, negated or not.
    let short = tcp80[..14 + 20 + 2].to_vec();
    assert!(accepted(&drop80, &short));
    assert!(accepted(&drop_not80, &short));

    // A non-first fragment carries no ports.
    let mut fragment = tcp80.clone();
    fragment[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x10]);
    assert!(accepted(&drop80, &fragment));
    assert!(accepted(&drop_not80, &fragment));
}
