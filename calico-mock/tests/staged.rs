//! Staged policies (issue 17): for random models holding staged policies among enforced
//! ones, and host endpoints, host `h1`'s ruleset compiled with flow logs, run by the
//! interpreter through the prerouting and forward hooks, reports through the flow logs
//! exactly what the reference evaluator says the staged policies would have denied
//! (policy, and rule or end of tier, in order: the uplink's host endpoint on the way in,
//! the workloads, the uplink's host endpoint on the way out), and the verdict stays the
//! evaluator's: staged policies are not enforced.

use calico_core::arbitrary;
use calico_core::compile::{
    compile, describe, CompileConfig, FlowLogConfig, HostConfig, HostPath, LogRef, LogRule,
    LogVerdict,
};
use calico_core::dataplane::ir::Hook;
use calico_core::dataplane::InterfaceAddresses;
use calico_core::eval::{
    evaluate, evaluate_host, host_endpoint_on, Direction, EndpointRef, Packet, StagedDenial,
    StagedRule, Verdict,
};
use calico_core::model::{Model, WorkloadEndpoint};
use calico_mock::{interpret, interpret_marked, ConnState, PacketContext};
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

fn denials(staged: &[StagedDenial]) -> impl Iterator<Item = Denial> + '_ {
    staged.iter().map(|d| {
        let rule = match d.rule {
            StagedRule::Rule(i) => Some(i),
            StagedRule::EndOfTier => None,
        };
        (d.policy.clone(), rule)
    })
}

/// The interface packets from and to outside the node use.
const UPLINK: &str = "eth0";

/// The reference's staged denials of `p` through this node, and whether the packet
/// passes: on the way in from outside, the uplink's host endpoint (the first of its
/// untracked, pre-DNAT and forward stages that decides); the egress of a local source,
/// the ingress of a local destination; on the way out, the uplink's host endpoint's
/// forward policy. Up to an enforced deny.
fn expected(model: &Model, p: &Packet) -> (Vec<Denial>, bool) {
    let mut out = Vec::new();
    let no_addrs = InterfaceAddresses::default();
    let uplink = host_endpoint_on(model, NODE, UPLINK, &no_addrs).map(|h| h.name.as_str());
    let host = |h: &str, path| evaluate_host(model, h, path, p, &HostConfig::default()).unwrap();
    let (src, dst) = (local_owner(model, p.src), local_owner(model, p.dst));
    if let Some(h) = uplink.filter(|_| src.is_none()) {
        for path in [HostPath::UntrackedIn, HostPath::PreDnat, HostPath::FwdIn] {
            let e = host(h, path);
            out.extend(denials(&e.staged));
            match e.verdict {
                Some(Verdict::Deny) => return (out, false),
                Some(Verdict::Allow) => break,
                None => {}
            }
        }
    }
    for (ep, dir) in [(src, Direction::Egress), (dst, Direction::Ingress)] {
        let Some(ep) = ep else { continue };
        let e = evaluate(model, &EndpointRef::Workload(ep.id.clone()), dir, p).unwrap();
        out.extend(denials(&e.staged));
        if e.verdict == Verdict::Deny {
            return (out, false);
        }
    }
    if let Some(h) = uplink.filter(|_| dst.is_none()) {
        let e = host(h, HostPath::FwdOut);
        out.extend(denials(&e.staged));
        if e.verdict == Some(Verdict::Deny) {
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
            let iif = local_owner(&model, src).map_or(UPLINK, |e| e.interface_name.as_str());
            let oif = local_owner(&model, dst).map_or(UPLINK, |e| e.interface_name.as_str());
            let ctx = |oif| PacketContext { packet: &p, iif, oif, ct: ConnState::New };
            let pre = interpret(&ruleset, Hook::Prerouting, &ctx(""));
            let mut logged = pre.flow_logged.clone();
            let mut accepted = pre.accepted;
            if accepted {
                let fwd = interpret_marked(&ruleset, Hook::Forward, &ctx(oif), pre.mark);
                logged.extend(fwd.flow_logged);
                accepted = fwd.accepted;
            }
            // The first packet logged for replay is no staged report.
            let reports = logged.iter().filter(|(_, prefix)| !prefix.starts_with("F "));
            let got: Vec<Denial> = reports.filter_map(|(_, prefix)| {
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
            prop_assert_eq!(accepted, passes, "packet {:?}", p);
        }
    }
}
