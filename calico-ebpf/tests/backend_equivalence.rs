//! The eBPF backend agrees with the reference evaluator on real packets: calico-linux's
//! `acl_equivalence.rs` (random models compiled and programmed into a host namespace whose
//! workloads, and the outside beyond the uplink, are real namespaces; random first packets
//! delivered exactly when the reference evaluator allows them), with `EbpfBackend` in
//! place of the nft backend. Models the backend refuses (log actions, untracked or
//! wildcard host endpoints) are counted and skipped; most must be supported.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_core::arbitrary;
use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::{diff, AclBackend, BackendError};
use calico_netns::fixtures::{privileged, Netns};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use support::forwarded::{deliver, reference, sendable};
use support::Topology;

const NODE: &str = arbitrary::NODES[0];
const MODELS: usize = 12;
const PACKETS_PER_MODEL: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_verdicts_equal_the_reference_evaluator() {
    if !privileged("kernel_verdicts_equal_the_reference_evaluator") {
        return;
    }
    let mut runner = TestRunner::deterministic();
    let (mut compared, mut allowed, mut refused) = (0, 0, Vec::new());
    for m in 0..MODELS {
        let model = arbitrary::model().new_tree(&mut runner).unwrap().current();
        let local: Vec<_> = model
            .workload_endpoints
            .values()
            .filter(|ep| ep.node == NODE)
            .map(|ep| {
                let v4: Vec<String> = ep
                    .ip_networks
                    .iter()
                    .map(|n| n.addr())
                    .filter(IpAddr::is_ipv4)
                    .map(|a| a.to_string())
                    .collect();
                (ep.interface_name.clone(), v4)
            })
            .filter(|(_, v4)| !v4.is_empty())
            .collect();
        let local_addrs: BTreeSet<String> = local.iter().flat_map(|(_, a)| a.clone()).collect();
        let mut outside: BTreeSet<String> = arbitrary::endpoint_addresses(&model)
            .into_iter()
            .chain(arbitrary::EXTERNAL.iter().map(|a| a.parse().unwrap()))
            .filter(IpAddr::is_ipv4)
            .map(|a| a.to_string())
            .collect();
        outside.retain(|a| !local_addrs.contains(a));
        let wl: Vec<(&str, Vec<&str>)> = local
            .iter()
            .map(|(i, a)| (i.as_str(), a.iter().map(String::as_str).collect()))
            .collect();
        let outside: Vec<&str> = outside.iter().map(String::as_str).collect();
        let topo = Topology::with_outside(&wl, &outside);
        let owner = |a: IpAddr| -> Option<&Netns> {
            if let Some(w) = topo
                .workloads
                .iter()
                .zip(&local)
                .find(|(_, (_, ips))| ips.contains(&a.to_string()))
            {
                return Some(&w.0.ns);
            }
            outside
                .contains(&a.to_string().as_str())
                .then_some(&topo.fabric)
        };

        let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 4096);
        let ruleset = compile(&CompileConfig::new(NODE), &model);
        match acl.apply(&diff(&Ruleset::default(), &ruleset)).await {
            Ok(()) => {}
            Err(BackendError::Unsupported(why)) => {
                refused.push(format!("model #{m}: {why}"));
                continue;
            }
            Err(e) => panic!("model #{m}: {e}"),
        }

        let mut seen = BTreeSet::new();
        let mut sent = 0;
        let packets = arbitrary::packet(&model);
        for _ in 0..200 {
            if sent == PACKETS_PER_MODEL {
                break;
            }
            let p = packets.new_tree(&mut runner).unwrap().current();
            let (Some(src), Some(dst)) = (owner(p.src), owner(p.dst)) else {
                continue;
            };
            let involves_local =
                !std::ptr::eq(src, &topo.fabric) || !std::ptr::eq(dst, &topo.fabric);
            if !sendable(&p)
                || std::ptr::eq(src, dst)
                || !involves_local
                || !seen.insert(format!("{p:?}"))
            {
                continue;
            }
            sent += 1;
            let want = reference(&model, NODE, &p);
            let got = deliver(src, dst, &p);
            assert_eq!(got, want, "model #{m}, packet {p:?}: kernel delivered={got}, reference allows={want}\nmodel: {model:?}");
            compared += 1;
            allowed += want as usize;
        }
    }
    eprintln!(
        "compared {compared} packets, {allowed} allowed; {} of {MODELS} models refused: {refused:#?}",
        refused.len()
    );
    assert!(
        refused.len() * 2 <= MODELS,
        "most models must be supported: {refused:#?}"
    );
    assert!(
        allowed > 0 && allowed < compared,
        "both verdicts must occur: {allowed}/{compared}"
    );
}
