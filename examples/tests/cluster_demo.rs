//! `make demo` end to end: three hosts, calico-agent and BIRD on each, real packets. The demo
//! exits 0 only when every measured connectivity matrix equals the policy's prediction.

use std::process::Command;

#[test]
fn the_cluster_demo_measures_what_the_policy_predicts() {
    if !calico_linux::netns::privileged("the_cluster_demo_measures_what_the_policy_predicts") {
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
        stdout.contains("nexthop via 10.1.0.3") && stdout.contains("nexthop via 10.2.0.3"),
        "ECMP over both planes:\n{stdout}"
    );
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
