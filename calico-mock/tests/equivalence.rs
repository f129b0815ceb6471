//! The compiled IR, run by the interpreter, gives the reference evaluator's verdict.
//!
//! For random valid models (every rule field in play) and random first packets between
//! their workloads (or outside addresses), host `h1`'s compiled ruleset accepts a forwarded
//! packet exactly when the reference evaluator allows it: egress of the source if it is a
//! local workload, and ingress of the destination if it is one.

use calico_core::arbitrary;
use calico_core::compile::ir::{Hook, Ruleset};
use calico_core::compile::{compile, diff, CompileConfig};
use calico_core::eval::{evaluate, Direction, EndpointRef, Packet};
use calico_core::model::{Model, WorkloadEndpoint};
use calico_mock::{interpret, ConnState, PacketContext};
use proptest::prelude::*;

const NODE: &str = arbitrary::NODES[0];
const UPLINK: &str = "eth0";

fn local_owner(model: &Model, addr: std::net::IpAddr) -> Option<&WorkloadEndpoint> {
    model
        .workload_endpoints
        .values()
        .find(|ep| ep.node == NODE && ep.ip_networks.iter().any(|n| n.addr() == addr))
}

/// What the reference evaluator says about a forwarded packet at `NODE`; `None` when no
/// local workload is involved (the agent's rules do not apply).
fn reference(model: &Model, p: &Packet) -> Option<(bool, String)> {
    let src = local_owner(model, p.src);
    let dst = local_owner(model, p.dst);
    if src.is_none() && dst.is_none() {
        return None;
    }
    let mut allowed = true;
    let mut why = String::new();
    for (ep, dir) in [(src, Direction::Egress), (dst, Direction::Ingress)] {
        if let Some(ep) = ep {
            let e = evaluate(model, &EndpointRef::Workload(ep.id.clone()), dir, p).unwrap();
            why.push_str(&format!("{e}\n"));
            allowed &= e.verdict.is_allow();
        }
    }
    Some((allowed, why))
}

fn judge(ruleset: &Ruleset, model: &Model, p: &Packet, ct: ConnState) -> bool {
    let iif = local_owner(model, p.src).map_or(UPLINK, |e| e.interface_name.as_str());
    let oif = local_owner(model, p.dst).map_or(UPLINK, |e| e.interface_name.as_str());
    let ctx = PacketContext {
        packet: p,
        iif,
        oif,
        ct,
    };
    interpret(ruleset, Hook::Forward, &ctx).accepted
}

fn model_and_packets() -> impl Strategy<Value = (Model, Vec<Packet>)> {
    arbitrary::model().prop_flat_map(|m| {
        let packets = prop::collection::vec(arbitrary::packet(&m), 10);
        (Just(m), packets)
    })
}

proptest! {
    // 1,000 models × 10 packets; about half the packets involve a local workload, so some
    // 5,000 verdicts are compared per run (measured: 1,000 cases take about a second).
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn interpreter_on_compiled_ir_agrees_with_the_reference((model, packets) in model_and_packets()) {
        let ruleset = compile(&CompileConfig::new(NODE), &model);
        for p in &packets {
            let Some((want, why)) = reference(&model, p) else { continue };
            let got = judge(&ruleset, &model, p, ConnState::New);
            prop_assert_eq!(got, want, "packet {:?}\nreference:\n{}", p, why);
        }
    }

    #[test]
    fn established_flows_pass_and_invalid_ones_drop((model, packets) in model_and_packets()) {
        let ruleset = compile(&CompileConfig::new(NODE), &model);
        for p in &packets {
            if reference(&model, p).is_none() { continue }
            prop_assert!(judge(&ruleset, &model, p, ConnState::Established));
            prop_assert!(!judge(&ruleset, &model, p, ConnState::Invalid));
        }
    }

    #[test]
    fn diff_applied_to_the_mock_acl_gives_the_new_ruleset(a in arbitrary::model(), b in arbitrary::model()) {
        use calico_core::backend::AclBackend;
        let config = CompileConfig::new(NODE);
        let (ra, rb) = (compile(&config, &a), compile(&config, &b));
        let acl = calico_mock::MockAcl::new();
        acl.set_ruleset(ra.clone());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(acl.apply(&diff(&ra, &rb))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(acl.ruleset(), rb);
    }
}

#[test]
fn a_spoofed_source_is_dropped() {
    let model = calico_core::model::Model::from_resources(
        calico_core::model::parse_resources(
            "kind: WorkloadEndpoint\norchestrator: k8s\nworkload: a\nendpoint: eth0\nnode: h1\ninterfaceName: cali-a\nipNetworks: [10.0.0.1/32]\nprofiles: [open]\n---\nkind: Profile\nname: open\ningress: [{action: Allow}]\negress: [{action: Allow}]\n",
        )
        .unwrap(),
    )
    .unwrap();
    let ruleset = compile(&CompileConfig::new(NODE), &model);
    let own = Packet::tcp(
        "10.0.0.1".parse().unwrap(),
        1,
        "198.51.100.1".parse().unwrap(),
        80,
    );
    let spoofed = Packet::tcp(
        "10.0.0.99".parse().unwrap(),
        1,
        "198.51.100.1".parse().unwrap(),
        80,
    );
    let ctx = |p| PacketContext {
        packet: p,
        iif: "cali-a",
        oif: UPLINK,
        ct: ConnState::New,
    };
    assert!(interpret(&ruleset, Hook::Forward, &ctx(&own)).accepted);
    let out = interpret(&ruleset, Hook::Forward, &ctx(&spoofed));
    assert!(!out.accepted, "{out:?}");
}
