//! The kernel runs the generated programs to the IR's verdicts: for random valid models
//! (the generators of the nft and mock equivalence tests), host `h1`'s compiled ruleset is
//! generated into one program per hook and interface pair, loaded, and run by the kernel
//! (`BPF_PROG_TEST_RUN`) on a crafted frame of a random packet in a random conntrack
//! state; the verdict and the mark equal the mock interpreter's, the reference for the
//! IR's semantics (which calico-mock's own equivalence test holds to the reference
//! evaluator). Prerouting, then forward with the mark prerouting left, as the mock's test;
//! both in one program that knows both interfaces, and split as TC programs must be: at
//! the ingress of the input interface (prerouting, then forward without an output
//! interface), then at the egress of the output one (forward without an input
//! interface), the mark carried from one to the other.

use std::collections::BTreeMap;

use calico_core::arbitrary;
use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::{Hook, Ruleset};
use calico_core::eval::Packet;
use calico_core::model::Model;
use calico_ebpf::generate::{program, Bindings, Logs, Options, Stage};
use calico_ebpf::layout::ct;
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::{Maps, SetIds};
use calico_ebpf::{frame, GenerateError};
use calico_mock::{interpret, interpret_marked, ConnState, PacketContext};
use calico_netns::fixtures::privileged;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

const NODE: &str = arbitrary::NODES[0];
const UPLINK: &str = "eth0";
const MODELS: usize = 40;
const PACKETS_PER_MODEL: usize = 24;

/// The conntrack word the fixed program would hand over for a mock conntrack state.
fn ct_word(c: ConnState) -> u32 {
    match c {
        ConnState::New => ct::NEW | ct::UNCONFIRMED,
        ConnState::Established => ct::ESTABLISHED,
        ConnState::Related => ct::RELATED,
        ConnState::Invalid => ct::INVALID,
    }
}

fn local_iface(model: &Model, addr: std::net::IpAddr) -> Option<&str> {
    model
        .workload_endpoints
        .values()
        .find(|ep| ep.node == NODE && ep.ip_networks.iter().any(|n| n.addr() == addr))
        .map(|ep| ep.interface_name.as_str())
}

/// The mock interpreter's verdict and mark: prerouting, then forward.
fn mock(ruleset: &Ruleset, p: &Packet, iif: &str, oif: &str, c: ConnState) -> (bool, u32) {
    let ctx = |oif| PacketContext {
        packet: p,
        iif,
        oif,
        ct: c,
    };
    let pre = interpret(ruleset, Hook::Prerouting, &ctx(""));
    if !pre.accepted {
        return (false, pre.mark);
    }
    let fwd = interpret_marked(ruleset, Hook::Forward, &ctx(oif), pre.mark);
    (fwd.accepted, fwd.mark)
}

/// A program's stages: (hook, input interface, output interface) each.
type Stages = Vec<(Hook, String, String)>;

/// One model's programs, loaded on first use.
struct Programs<'a> {
    ruleset: &'a Ruleset,
    maps: Maps,
    ids: SetIds,
    loaded: BTreeMap<Stages, Loaded>,
}

impl<'a> Programs<'a> {
    fn new(ruleset: &'a Ruleset) -> Programs<'a> {
        let maps = Maps::create(4096).expect("create the maps");
        let mut ids = SetIds::default();
        for (name, set) in &ruleset.sets {
            let id = ids.assign(name).unwrap();
            maps.add_set(name, id, set).expect("write a set");
        }
        Programs {
            ruleset,
            maps,
            ids,
            loaded: BTreeMap::new(),
        }
    }

    fn get(&mut self, key: &Stages) -> Result<&Loaded, GenerateError> {
        if !self.loaded.contains_key(key) {
            let stages: Vec<Stage> = key
                .iter()
                .map(|(hook, iif, oif)| Stage {
                    hook: *hook,
                    bindings: Bindings {
                        iif: Some(iif.clone()),
                        oif: Some(oif.clone()),
                    },
                })
                .collect();
            // Log statements never change a verdict; the backend cannot emit them yet.
            let options = Options {
                logs: Logs::Omit,
                ..Options::default()
            };
            let program = program(self.ruleset, &stages, self.ids.ids(), options)?;
            let loaded = Loaded::load("cali_test", &program, &self.maps)
                .unwrap_or_else(|e| panic!("{key:?}: {e}"));
            self.loaded.insert(key.clone(), loaded);
        }
        Ok(&self.loaded[key])
    }
}

/// Where programs run for a packet from `iif` to `oif`, each placement a list of programs
/// the packet meets in turn.
fn placements(iif: &str, oif: &str) -> [(&'static str, Vec<Stages>); 2] {
    let s = |hook, i: &str, o: &str| (hook, i.to_string(), o.to_string());
    [
        // One program: prerouting then forward, both interfaces known.
        (
            "one program",
            vec![vec![
                s(Hook::Prerouting, iif, ""),
                s(Hook::Forward, iif, oif),
            ]],
        ),
        // Split as TC programs are: at the ingress of `iif` the output interface is not
        // known yet, at the egress of `oif` the input interface is no longer bound.
        (
            "split ingress/egress",
            vec![
                vec![s(Hook::Prerouting, iif, ""), s(Hook::Forward, iif, "")],
                vec![s(Hook::Forward, "", oif)],
            ],
        ),
    ]
}

#[test]
fn kernel_verdicts_equal_the_interpreter() {
    if !privileged("kernel_verdicts_equal_the_interpreter") {
        return;
    }
    let mut runner = TestRunner::deterministic();
    let states = prop::sample::select(vec![
        ConnState::New,
        ConnState::Established,
        ConnState::Related,
        ConnState::Invalid,
    ]);
    let (mut compared, mut accepted, mut refused) = (0, 0, Vec::new());
    let mut largest = 0;
    for m in 0..MODELS {
        let model = arbitrary::model().new_tree(&mut runner).unwrap().current();
        let ruleset = compile(&CompileConfig::new(NODE), &model);
        let mut programs = Programs::new(&ruleset);
        let packets = arbitrary::packet(&model);
        'packets: for _ in 0..PACKETS_PER_MODEL {
            let p = packets.new_tree(&mut runner).unwrap().current();
            let c = states.new_tree(&mut runner).unwrap().current();
            let iif = local_iface(&model, p.src).unwrap_or(UPLINK);
            let oif = local_iface(&model, p.dst).unwrap_or(UPLINK);
            let want = mock(&ruleset, &p, iif, oif, c);
            // A dropped packet's mark is of no consequence.
            let want = (want.0, want.0.then_some(want.1));
            let f = frame::build(&p).expect("one family");
            for (placement, programs_met) in placements(iif, oif) {
                let mut got = (true, 0);
                for stages in &programs_met {
                    let prog = match programs.get(stages) {
                        Ok(prog) => prog,
                        Err(e) => {
                            refused.push(format!("model #{m}: {e}"));
                            break 'packets;
                        }
                    };
                    largest = largest.max(prog.insns());
                    let d = prog.run(&f, ct_word(c), got.1).unwrap();
                    got = (d.accepted, d.mark);
                    if !d.accepted {
                        break;
                    }
                }
                let got = (got.0, got.0.then_some(got.1));
                assert_eq!(
                    got, want,
                    "{placement}: model #{m}, packet {p:?} ({c:?}, {iif} -> {oif}): kernel (accepted, mark) = {got:?}, interpreter = {want:?}\nruleset: {ruleset:#?}"
                );
            }
            compared += 1;
            accepted += usize::from(want.0);
        }
    }
    eprintln!(
        "compared {compared} packets ({accepted} accepted) over {MODELS} models; largest program {largest} instructions; {} models refused: {refused:#?}",
        refused.len()
    );
    assert!(
        refused.len() * 4 <= MODELS,
        "most models must be supported: {refused:#?}"
    );
    assert!(
        accepted > 0 && accepted < compared,
        "both verdicts must occur: {accepted}/{compared}"
    );
}
