//! Flow logs name the rule that decided (issue 20): for random models and first packets,
//! host `h1`'s ruleset compiled with flow logs gives the reference evaluator's verdict; the
//! flow-log references of the rules that allowed (what the agent finds replaying a logged
//! first packet) and the denials logged, resolved through `compile::describe`, name the
//! policy or profile rule the reference evaluator says decided each direction (or the
//! default deny when none did); and the first packet is logged for replay exactly when
//! it is allowed.

use calico_core::arbitrary;
use calico_core::compile::{
    compile, describe, first_packet_hook, ChainOwner, CompileConfig, FlowLogConfig, LogRef,
    LogRule, LogVerdict,
};
use calico_core::dataplane::ir::Hook;
use calico_core::eval::{evaluate, Direction, EndpointRef, Packet};
use calico_core::model::{Action, Model, WorkloadEndpoint};
use calico_mock::{interpret, ConnState, PacketContext};
use proptest::prelude::*;

const NODE: &str = arbitrary::NODES[0];

fn local_owner(model: &Model, addr: std::net::IpAddr) -> Option<&WorkloadEndpoint> {
    model
        .workload_endpoints
        .values()
        .find(|ep| ep.node == NODE && ep.ip_networks.iter().any(|n| n.addr() == addr))
}

/// A decision as the flow logs should report it: verdict, `kind name`, user rule index
/// (`None`: a default deny).
type Decision = (LogVerdict, Option<(String, usize)>);

/// The decisions of the reference evaluator, egress first, up to the first deny.
fn expected(model: &Model, p: &Packet) -> Vec<Decision> {
    let mut out = Vec::new();
    let sides = [
        (local_owner(model, p.src), Direction::Egress),
        (local_owner(model, p.dst), Direction::Ingress),
    ];
    for (ep, dir) in sides {
        let Some(ep) = ep else { continue };
        let e = evaluate(model, &EndpointRef::Workload(ep.id.clone()), dir, p).unwrap();
        let d = match e.deciding_rule() {
            Some((source, i, Action::Allow)) => (LogVerdict::Allow, Some((source.to_string(), i))),
            Some((source, i, Action::Deny)) => (LogVerdict::Deny, Some((source.to_string(), i))),
            _ => (LogVerdict::Deny, None),
        };
        let denied = d.0 == LogVerdict::Deny;
        out.push(d);
        if denied {
            break;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn flow_logs_name_the_rule_the_reference_says_decided(
        model in arbitrary::model(),
        seed in prop::collection::vec(any::<prop::sample::Index>(), 10),
    ) {
        // Workloads' verdicts: host endpoints' chains report none (yet).
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
            let p = Packet::tcp(src, 40000, dst, 80);
            let want = expected(&model, &p);
            if want.is_empty() { continue }
            let ctx = PacketContext {
                packet: &p,
                iif: local_owner(&model, src).map_or("eth0", |e| e.interface_name.as_str()),
                oif: local_owner(&model, dst).map_or("eth0", |e| e.interface_name.as_str()),
                ct: ConnState::New,
            };
            let out = interpret(&ruleset, Hook::Forward, &ctx);
            let group = FlowLogConfig::default().group;
            let first_packet = out.flow_logged.iter().filter(|(_, prefix)| first_packet_hook(prefix) == Some(Hook::Forward));
            prop_assert_eq!(first_packet.count(), usize::from(out.accepted), "logged for replay iff allowed");
            // Staged policies' reports are `staged`'s test; here, the verdicts: the
            // references of the rules that allowed, then the denial logged.
            let denials = out.flow_logged.iter().filter(|(_, prefix)| !prefix.starts_with("S ") && first_packet_hook(prefix).is_none());
            let allows = out.flow_refs.iter().map(|r| (group, r.clone()));
            let got: Vec<Decision> = allows.chain(denials.cloned()).map(|(g, prefix)| {
                assert_eq!(g, group);
                let log: LogRef = prefix.parse().unwrap();
                let rule = match log.rule {
                    LogRule::Rule(i) => {
                        let owner = names.user_rule(&log.chain, i).unwrap().owner;
                        let kind = match owner { ChainOwner::Policy { .. } => "policy", _ => "profile" };
                        Some((format!("{kind} {}", owner.name()), i))
                    }
                    LogRule::End | LogRule::Spoof => None,
                };
                (log.verdict, rule)
            }).collect();
            prop_assert_eq!(&got, &want, "packet {:?}", p);
            prop_assert_eq!(out.accepted, want.iter().all(|d| d.0 == LogVerdict::Allow));
        }
    }
}
