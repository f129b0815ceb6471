//! `make demo` end to end: three hosts, calico-agent on each (two with the native BGP
//! speaker, one with BIRD 2, peering each other), real packets. The demo exits 0 only when
//! every measured connectivity matrix equals the policy's prediction.

use std::process::Command;

#[test]
fn the_cluster_demo_measures_what_the_policy_predicts() {
    if !calico_netns::fixtures::privileged("the_cluster_demo_measures_what_the_policy_predicts") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_calico-cluster-demo"))
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("host-b: namespace, two fabric links, two workloads, BGP: BIRD 2")
            && stdout.contains("host-a: namespace, two fabric links, two workloads, BGP: native"),
        "both BGP implementations run:\n{stdout}"
    );
    // Native to native (host-a learns host-c's block) and native to BIRD (host-b learns
    // host-a's), each an ECMP route over both planes.
    for hop in ["10.1.0.3", "10.2.0.3", "10.1.0.1", "10.2.0.1"] {
        assert!(
            stdout.contains(&format!("nexthop via {hop}")),
            "ECMP over both planes, next hop {hop}:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("measured == predicted").count(),
        2,
        "{stdout}"
    );
    // Namespaces are deleted as the demo exits; give the kernel a moment to let go of them.
    let mut left = String::new();
    for _ in 0..20 {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        left = String::from_utf8_lossy(&out.stdout).into_owned();
        if !left.contains("demo") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!left.contains("demo"), "namespaces left behind:\n{left}");
}
