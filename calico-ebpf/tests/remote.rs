//! A workload's connections to another host. Such a packet leaves through an interface
//! with no program (the fabric's, as on a host without `--bpf-host-interfaces`), so the
//! workload's ingress program is the last to judge it and must record the flow; else the
//! reply comes back as a new connection and the workload's ingress policy refuses it.
//! Found by `calico-cluster-demo --dataplane bpf`: every connection between hosts failed.

#[path = "../../calico-linux/tests/support/mod.rs"]
mod support;

mod ebpf_support;

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_netns::fixtures::privileged;
use support::{connects, listen_all, shop, udp_delivers, udp_in, Topology};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_to_another_host_gets_its_replies_and_one_from_it_is_judged() {
    if !privileged("a_connection_to_another_host_gets_its_replies_and_one_from_it_is_judged") {
        return;
    }
    // The shop's frontend: its profile allows all egress and no ingress.
    let topo = Topology::with_outside(&[("calia", vec!["10.65.0.10"])], &["10.100.0.1"]);
    // No program on the uplink, as on a host without `--bpf-host-interfaces`.
    let acl = ebpf_support::backend_in(&topo.host, &[], 1024);
    let rules = compile(&CompileConfig::new("h1"), &shop::model("http"));
    acl.apply(&diff(&Ruleset::default(), &rules)).await.unwrap();
    let front = &topo.workloads[0];

    let _remote = listen_all(&topo.fabric, &[80]);
    assert!(
        connects(&front.ns, None, "10.100.0.1", 80),
        "the frontend's own connection to another host gets its SYN-ACK"
    );
    assert!(
        front.ping("10.100.0.1".parse().unwrap()),
        "echo replies come back"
    );
    let local = udp_in(&front.ns, "10.65.0.10:5353".parse().unwrap());
    let remote = udp_in(&topo.fabric, "10.100.0.1:53".parse().unwrap());
    assert!(udp_delivers(&local, &remote), "UDP out");
    assert!(udp_delivers(&remote, &local), "the UDP reply comes back");

    let _own = front.listen_tcp(8080);
    assert!(
        !connects(&topo.fabric, None, "10.65.0.10", 8080),
        "a connection from the other host is judged: the profile admits nothing"
    );
}
