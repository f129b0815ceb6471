//! Policy enforced by the kernel on real packets: a host namespace with three workloads,
//! programmed by LinuxAcl from a model, checked with ping, TCP connects and UDP datagrams.

mod support;

use calico_core::dataplane::diff;
use calico_core::dataplane::AclBackend;
use calico_linux::acl::LinuxAcl;
use calico_netns::fixtures::privileged;
use support::{shop, Topology};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_is_enforced_on_real_packets() {
    if !privileged("policy_is_enforced_on_real_packets") {
        return;
    }
    let topo = Topology::new(&shop::WORKLOADS);
    let acl = LinuxAcl::in_netns(topo.host.path().as_ref(), "calico").unwrap();
    let v2 = shop::policy_on_real_packets(&topo, &acl).await;

    // Applying the same state again changes nothing in the kernel.
    let before = topo.host.run(&["nft", "list", "ruleset"]).unwrap();
    let seen = acl.dump().await.unwrap();
    assert_eq!(seen, v2);
    acl.apply(&diff(&seen, &v2)).await.unwrap();
    assert_eq!(topo.host.run(&["nft", "list", "ruleset"]).unwrap(), before);
}
