//! A policy too large for one program, through `EbpfBackend` on real namespaces: the
//! web workload's policy has 4,000 rules (the first and the last admit a port, the others
//! deny one) before the shop's policy admits 8080, so its program is split into pieces
//! chained with tail calls; real connections are decided by rules in the first, middle
//! and last pieces and past them all. Replaced by the shop's
//! small policy, the pieces are unloaded and their slots emptied; the workload removed,
//! nothing is left. The pieces outlive the backend (their program arrays pinned) until
//! another backend's first apply replaces its programs. Two workloads with the same split
//! policy run one loaded chain of pieces.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use std::time::Duration;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::{diff, ChangeSet};
use calico_core::model::{parse_resources, Model};
use calico_ebpf::backend::{EbpfBackend, Programs};
use calico_ebpf::pins;
use calico_netns::fixtures::privileged;
use ebpf_support::shop::{loaded_in_kernel, shop_ruleset, shop_text, web, WORKLOADS};
use support::Topology;

/// The big policy's ports: `PORTS..PORTS + RULES`, a rule each.
const PORTS: u16 = 20_000;
const RULES: u16 = 4_000;

/// Rules a policy may have.
const PER_POLICY: u16 = 1_000;

/// The shop with web workload 1 and policies, ordered before the shop's, of `RULES`
/// rules in all: the first and the last admit TCP to their port, the others deny it.
fn big_ruleset() -> Ruleset {
    big_ruleset_with(&[1])
}

/// [`big_ruleset`] with the web workloads `webs` (1, 2).
fn big_ruleset_with(webs: &[usize]) -> Ruleset {
    let mut text = shop_text();
    for &n in webs {
        text.push_str(&web(n));
    }
    for port in PORTS..PORTS + RULES {
        let i = port - PORTS;
        if i % PER_POLICY == 0 {
            let n = i / PER_POLICY;
            text.push_str(&format!(
                "---\nkind: Policy\nname: web-big-{n}\nnamespace: shop\norder: {}\nselector: app == 'web'\ntypes: [Ingress]\ningress:\n",
                50 + n
            ));
        }
        let action = match port == PORTS || port == PORTS + RULES - 1 {
            true => "Allow",
            false => "Deny",
        };
        text.push_str(&format!(
            "  - action: {action}\n    protocol: TCP\n    destination: {{ports: [{port}]}}\n"
        ));
    }
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    compile(&CompileConfig::new("h1"), &model)
}

/// The programs once the pieces of programs replaced are gone: the backend empties their
/// slots at an apply after the kernel released their entry (an RCU grace period after
/// the filter moved), so empty applies are made until then (a few seconds at most).
fn settled(acl: &EbpfBackend) -> Programs {
    for _ in 0..200 {
        let p = acl.programs_blocking().unwrap();
        let attached: Vec<u32> = p.attached.values().flat_map(|&(i, e)| [i, e]).collect();
        if p.loaded.iter().all(|id| attached.contains(id)) && p.pieces.is_empty() {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
        acl.apply_blocking(&ChangeSet::default()).unwrap();
    }
    acl.programs_blocking().unwrap()
}

#[test]
fn a_split_policy_is_enforced_replaced_and_removed_without_leftovers() {
    if !privileged("a_split_policy_is_enforced_replaced_and_removed_without_leftovers") {
        return;
    }
    let topo = Topology::new(&WORKLOADS[..]);
    let [web1, _, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    let big = big_ruleset();
    acl.apply_blocking(&diff(&Ruleset::default(), &big))
        .unwrap();
    let split = acl.programs_blocking().unwrap();
    // calia's egress program (its ingress policy) is the split one.
    assert!(split.pieces.len() >= 2, "{} pieces", split.pieces.len());
    println!("{} later pieces", split.pieces.len());
    for &id in &split.pieces {
        assert!(loaded_in_kernel(id), "piece {id}");
    }
    assert!(split.loaded.contains(&split.attached["calia"].1));

    let (first, middle, last) = (PORTS, PORTS + RULES / 2, PORTS + RULES - 1);
    let listeners: Vec<_> = [8080, first, middle, last, 9090]
        .into_iter()
        .map(|p| (p, web1.listen_tcp(p)))
        .collect();
    let connects = |port: u16| client.connect_tcp(web1.ip, port).is_some();
    assert!(connects(first), "{first}: admitted by the first rule");
    assert!(!connects(middle), "{middle}: denied in a middle piece");
    assert!(connects(last), "{last}: admitted by the last rule");
    assert!(connects(8080), "8080: past every rule, admitted");
    assert!(!connects(9090), "9090: admitted by no policy");

    // Replaced by the shop's small policy: one program again, the pieces gone.
    let small = shop_ruleset(&[1]);
    acl.apply_blocking(&diff(&big, &small)).unwrap();
    assert!(connects(8080), "8080 still admitted");
    assert!(
        !connects(first) && !connects(last),
        "the big policy's ports no more"
    );
    let replaced = settled(&acl);
    assert!(replaced.pieces.is_empty(), "{:?}", replaced.pieces);
    for &id in &split.pieces {
        assert!(!loaded_in_kernel(id), "piece {id} unloaded");
    }
    drop(listeners);

    // The workload removed: nothing of it left.
    acl.apply_blocking(&diff(&small, &shop_ruleset(&[])))
        .unwrap();
    let removed = settled(&acl);
    assert!(!removed.attached.contains_key("calia"));
    assert!(
        !loaded_in_kernel(split.attached["calia"].1),
        "entry unloaded"
    );
}

#[test]
fn a_split_policy_outlives_its_backend_until_another_takes_over() {
    if !privileged("a_split_policy_outlives_its_backend_until_another_takes_over") {
        return;
    }
    let topo = Topology::new(&WORKLOADS[..]);
    let [web1, _, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let Some(dir) = pins::dir(Some(std::path::Path::new(&topo.host.path()))) else {
        panic!("no BPF filesystem at /sys/fs/bpf: split policies cannot outlive the agent");
    };
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    acl.apply_blocking(&diff(&Ruleset::default(), &big_ruleset()))
        .unwrap();
    let pieces = acl.programs_blocking().unwrap().pieces;
    assert!(
        !pins::list(&dir).is_empty(),
        "the program arrays are pinned"
    );
    let last = PORTS + RULES - 1;
    let _listener = web1.listen_tcp(last);
    assert!(client.connect_tcp(web1.ip, last).is_some());

    // Dropped (the agent exits): the hooks stay, and the pieces with them.
    drop(acl);
    assert!(
        client.connect_tcp(web1.ip, last).is_some(),
        "{last}: still admitted by the last piece"
    );
    for &id in &pieces {
        assert!(loaded_in_kernel(id), "piece {id}");
    }

    // A new backend's first apply replaces the programs, then removes the old pins: only
    // the dispatcher's are left, which it took over.
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    acl.apply_blocking(&diff(&Ruleset::default(), &shop_ruleset(&[1])))
        .unwrap();
    let left = pins::list(&dir);
    let dispatcher = |p: &std::path::PathBuf| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.starts_with(calico_ebpf::dispatch::PIN_PREFIX)
    };
    assert!(left.iter().all(dispatcher), "{left:?}");
    assert_eq!(left.len(), 3, "{left:?}");
    for &id in &pieces {
        assert!(!loaded_in_kernel(id), "piece {id} unloaded");
    }
    assert!(
        client.connect_tcp(web1.ip, last).is_none(),
        "{last}: denied"
    );
}

#[test]
fn workloads_with_the_same_split_policy_share_its_pieces() {
    if !privileged("workloads_with_the_same_split_policy_share_its_pieces") {
        return;
    }
    let topo = Topology::new(&WORKLOADS[..]);
    let [_, web2, client] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    let (one, two) = (big_ruleset_with(&[1]), big_ruleset_with(&[1, 2]));
    acl.apply_blocking(&diff(&Ruleset::default(), &one))
        .unwrap();
    let before = acl.programs_blocking().unwrap();
    acl.apply_blocking(&diff(&one, &two)).unwrap();
    let after = acl.programs_blocking().unwrap();
    assert_eq!(
        after.loads, before.loads,
        "the second workload loads nothing"
    );
    assert_eq!(after.pieces, before.pieces, "nor any piece");
    let (a, b) = (after.attached["calia"], after.attached["calib"]);
    assert_eq!(a.1, b.1, "calia and calib run the same split program");
    let last = PORTS + RULES - 1;
    let _listener = web2.listen_tcp(last);
    assert!(
        client.connect_tcp(web2.ip, last).is_some(),
        "{last}: admitted"
    );

    // One of them removed: the pieces stay for the other.
    acl.apply_blocking(&diff(&two, &one)).unwrap();
    assert_eq!(acl.programs_blocking().unwrap().pieces, before.pieces);
    for &id in &before.pieces {
        assert!(loaded_in_kernel(id), "piece {id}");
    }

    // Leaving the eBPF dataplane unpins them (dropped, the backend would leave them).
    let dir = pins::dir(Some(std::path::Path::new(&topo.host.path())));
    acl.remove_all_blocking().unwrap();
    drop(acl);
    if let Some(dir) = dir {
        assert!(pins::list(&dir).is_empty(), "{:?}", pins::list(&dir));
    }
    for &id in &before.pieces {
        assert!(!loaded_in_kernel(id), "piece {id} unloaded");
    }
}
