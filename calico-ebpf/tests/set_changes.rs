//! A set change is a map write: a loaded program's verdict follows the members of the
//! sets it looks up, with no reload; a change the IR's rules refuse writes nothing.

use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, Hook, Match, Rule, Ruleset, SetElement, SetKey, Side, Verdict,
};
use calico_core::dataplane::{Change, ChangeSet};
use calico_core::eval::Packet;
use calico_ebpf::frame;
use calico_ebpf::generate::{hook_program, Bindings, Options};
use calico_ebpf::program::Loaded;
use calico_ebpf::set_table::SetTable;
use calico_ebpf::sets::Maps;
use calico_ebpf::Error;
use calico_netns::fixtures::privileged;

fn changes(c: Vec<Change>) -> ChangeSet {
    ChangeSet { changes: c }
}

fn net(s: &str) -> SetElement {
    SetElement::Net(s.parse().unwrap())
}

#[test]
fn member_changes_take_effect_without_a_reload() {
    if !privileged("member_changes_take_effect_without_a_reload") {
        return;
    }
    let mut table = SetTable::new(Maps::create(64).unwrap());
    table
        .apply(&changes(vec![
            Change::AddSet {
                name: "blocked".into(),
                key: SetKey::Ipv4Net,
            },
            Change::AddSet {
                name: "ports".into(),
                key: SetKey::Ipv4AddrProtoPort,
            },
        ]))
        .unwrap();
    // Drop what goes to a blocked network, or to a named port in `ports`.
    let mut r = Ruleset {
        sets: table.sets().clone(),
        ..Ruleset::default()
    };
    let in_set = |m| Rule::new(vec![m], Verdict::Drop);
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)),
            rules: vec![
                in_set(Match::AddrInSet {
                    side: Side::Dst,
                    set: "blocked".into(),
                    negate: false,
                }),
                in_set(Match::AddrProtoPortInSet {
                    side: Side::Dst,
                    set: "ports".into(),
                    negate: false,
                }),
            ],
        },
    );
    let program = hook_program(
        &r,
        Hook::Forward,
        &Bindings::default(),
        table.ids(),
        Options::default(),
    )
    .unwrap();
    let loaded = Loaded::load("cali_sets", &program, table.maps()).unwrap();
    let to = |dst: &str, port| {
        let p = Packet::tcp(
            "10.1.0.1".parse().unwrap(),
            1000,
            dst.parse().unwrap(),
            port,
        );
        loaded
            .run(&frame::build(&p).unwrap(), 0, 0)
            .unwrap()
            .accepted
    };
    assert!(to("10.2.3.4", 80) && to("10.2.9.9", 443));

    table
        .apply(&changes(vec![Change::AddElements {
            set: "blocked".into(),
            elements: vec![net("10.2.3.0/24")],
        }]))
        .unwrap();
    assert!(!to("10.2.3.4", 80), "in the added network");
    assert!(to("10.2.4.4", 80), "next to it");

    let port = SetElement::AddrProtoPort("10.2.9.9".parse().unwrap(), 6, 443);
    table
        .apply(&changes(vec![Change::AddElements {
            set: "ports".into(),
            elements: vec![port],
        }]))
        .unwrap();
    assert!(!to("10.2.9.9", 443) && to("10.2.9.9", 444));

    // Refused by the IR's rules (overlap), with a valid change before it: nothing written.
    let refused = table.apply(&changes(vec![
        Change::DelElements {
            set: "ports".into(),
            elements: vec![port],
        },
        Change::AddElements {
            set: "blocked".into(),
            elements: vec![net("10.2.0.0/16")],
        },
    ]));
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert!(
        !to("10.2.9.9", 443),
        "the removal before it was not written"
    );
    assert!(to("10.2.4.4", 80), "nor the overlapping network");

    table
        .apply(&changes(vec![Change::DelSet {
            name: "blocked".into(),
        }]))
        .unwrap();
    assert!(to("10.2.3.4", 80), "the set's members left with it");
}
