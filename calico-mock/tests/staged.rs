//! Staged policies (issue 17): for random models holding staged policies among enforced
//! ones, host `h1`'s ruleset compiled with flow logs, run by the interpreter, reports through
//! the flow logs exactly what the reference evaluator says the staged policies would have
//! denied (policy, and rule or end of tier, in order), and the verdict stays the
//! evaluator's: staged policies are not enforced.

use calico_core::arbitrary;
use calico_core::compile::{
    compile, describe, CompileConfig, FlowLogConfig, LogRef, LogRule, LogVerdict,
};
use calico_core::dataplane::ir::Hook;
use calico_core::eval::{evaluate, Direction, EndpointRef, Packet, StagedRule, Verdict};
use calico_core::model::{Model, WorkloadEndpoint};
use calico_mock::{interpret, ConnState, PacketContext};
use proptest::prelude::*;

const NODE: &str = arbitrary::NODES[0];

fn local_owner(model: &Model, addr: std::net::IpAddr) -> Option<&WorkloadEndpoint> {
    model
        .workload_endpoints
        .values()
        .find(|ep| ep.node == NODE && ep.ip_networks.iter().any(|n| n.addr() == addr))
}

/// A staged policy's denial: the policy's name and the rule (`None`: the end of its tier).
type Denial = (String, Option<usize>);

/// The reference's staged denials of `p` on this node's endpoints (egress of a local
/// source, then ingress of a local destination, up to an enforced deny), and whether the
/// packet passes.
fn expected(model: &Model, p: &Packet) -> (Vec<Denial>, bool) {
    let mut out = Vec::new();
    let sides = [
        (local_owner(model, p.src), Direction::Egress),
        (local_owner(model, p.dst), Direction::Ingress),
    ];
    for (ep, dir) in sides {
        let Some(ep) = ep else { continue };
        let e = evaluate(model, &EndpointRef::Workload(ep.id.clone()), dir, p).unwrap();
        out.extend(e.staged.iter().map(|d| {
            let rule = match d.rule {
                StagedRule::Rule(i) => Some(i),
                StagedRule::EndOfTier => None,
            };
            (d.policy.clone(), rule)
        }));
        if e.verdict == Verdict::Deny {
            return (out, false);
        }
    }
    (out, true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn staged_reports_are_the_references_and_change_no_verdict(
        model in arbitrary::model(),
        seed in prop::collection::vec(any::<prop::sample::Index>(), 10),
        proto in prop::sample::select(vec![6u8, 17]),
    ) {
        let mut model = model;
        model.host_endpoints.clear();
        let config = CompileConfig {
            flow_logs: Some(FlowLogConfig::default()),
            ..CompileConfig::new(NODE)
        };
        let ruleset = compile(&config, &model);
        let names = describe(&model, NODE, &ruleset);
        let addrs = arbitrary::endpoint_addresses(&model);
        for (k, i) in seed.iter().enumerate() {
            let src = *i.get(&addrs);
            let dst = addrs[(i.index(addrs.len()) + k + 1) % addrs.len()];
            if src.is_ipv4() != dst.is_ipv4() || src == dst { continue }
            let p = if proto == 6 {
                Packet::tcp(src, 40000, dst, 80)
            } else {
                Packet::udp(src, 40000, dst, 53)
            };
            if local_owner(&model, src).is_none() && local_owner(&model, dst).is_none() { continue }
            let (want, passes) = expected(&model, &p);
            let ctx = PacketContext {
                packet: &p,
                iif: local_owner(&model, src).map_or("eth0", |e| e.interface_name.as_str()),
                oif: local_owner(&model, dst).map_or("eth0", |e| e.interface_name.as_str()),
                ct: ConnState::New,
            };
            let out = interpret(&ruleset, Hook::Forward, &ctx);
            let got: Vec<Denial> = out.flow_logged.iter().filter_map(|(_, prefix)| {
                let log: LogRef = prefix.parse().unwrap();
                (log.verdict == LogVerdict::StagedDeny).then(|| {
                    let owner = names.chain(&log.chain).unwrap().name();
                    let rule = match log.rule {
                        LogRule::Rule(i) => Some(i),
                        LogRule::End => None,
                        LogRule::Spoof => panic!("a staged spoof report: {prefix}"),
                    };
                    (owner, rule)
                })
            }).collect();
            prop_assert_eq!(&got, &want, "packet {:?}", p);
            prop_assert_eq!(out.accepted, passes, "packet {:?}", p);
        }
    }
}
