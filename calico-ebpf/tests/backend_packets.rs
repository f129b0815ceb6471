//! The eBPF backend on real packets: the nft backend's packet test (calico-linux's
//! `acl_packets.rs`: a host namespace with three workloads, a model, ping, TCP and UDP),
//! programmed through `AclBackend` by `EbpfBackend`, on calico-linux's test topology.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_netns::fixtures::privileged;
use support::{shop, Topology};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_is_enforced_on_real_packets() {
    if !privileged("policy_is_enforced_on_real_packets") {
        return;
    }
    let topo = Topology::new(&shop::WORKLOADS);
    let [_, back, other] = &topo.workloads[..] else {
        unreachable!()
    };
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    let v2 = shop::policy_on_real_packets(&topo, &acl).await;
    assert_eq!(acl.dump().await.unwrap(), v2);

    // Removing everything detaches everything: all flows again.
    acl.apply(&diff(&v2, &Ruleset::default())).await.unwrap();
    assert!(other.ping(back.ip), "no program left");
    // The scenario's listeners went with it.
    let _listener = back.listen_tcp(9090);
    assert!(other.connect_tcp(back.ip, 9090).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interface_gets_its_programs_at_the_resync_after_it_appears() {
    if !privileged("a_missing_interface_gets_its_programs_at_the_resync_after_it_appears") {
        return;
    }
    // calic is in the model, not on the host.
    let topo = Topology::new(&[("calia", "10.65.0.10"), ("calib", "10.65.0.20")]);
    let acl = ebpf_support::backend_in(&topo.host, &["eth0"], 1024);
    let v1 = compile(&CompileConfig::new("h1"), &shop::model("http"));
    acl.apply(&diff(&Ruleset::default(), &v1)).await.unwrap();
    let seen = acl.dump().await.unwrap();
    assert_ne!(seen, v1, "calic's entries are not in effect");
    assert!(seen
        .maps
        .values()
        .all(|m| !m.elements.contains_key("calic")));
    // Nothing changes while it is missing: the resync finds the same difference.
    acl.apply(&diff(&seen, &v1)).await.unwrap();
    assert_ne!(acl.dump().await.unwrap(), v1);

    topo.host
        .run(&[
            "ip", "link", "add", "calic", "type", "veth", "peer", "name", "calic-p",
        ])
        .unwrap();
    let seen = acl.dump().await.unwrap();
    acl.apply(&diff(&seen, &v1)).await.unwrap();
    assert_eq!(acl.dump().await.unwrap(), v1, "attached once it exists");

    // Deleted, it lost its programs: the dump shows it, and the resync attaches anew.
    topo.host.run(&["ip", "link", "del", "calic"]).unwrap();
    topo.host
        .run(&[
            "ip", "link", "add", "calic", "type", "veth", "peer", "name", "calic-p",
        ])
        .unwrap();
    let seen = acl.dump().await.unwrap();
    assert_ne!(seen, v1, "made again: its programs went with the old one");
    acl.apply(&diff(&seen, &v1)).await.unwrap();
    assert_eq!(acl.dump().await.unwrap(), v1);
}
