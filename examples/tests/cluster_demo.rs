//! `make demo` end to end: three hosts, calico-agent on each (two with the native BGP
//! speaker, one with BIRD 2, peering each other), real packets. The demo exits 0 only when
//! every measured connectivity matrix equals the policy's prediction. Run with the ACLs in
//! nftables (the default) and in eBPF (`--dataplane bpf`).

use std::process::Command;

#[test]
fn the_cluster_demo_measures_what_the_policy_predicts() {
    if !calico_netns::fixtures::privileged("the_cluster_demo_measures_what_the_policy_predicts") {
        return;
    }
    let stdout = demo_succeeds(&[]);
    assert!(
        stdout.contains(
            "host-b: namespace, two fabric links, two workloads, BGP: BIRD 2, ACLs: nftables"
        ) && stdout.contains("host-a: namespace, two fabric links, two workloads, BGP: native"),
        "both BGP implementations run:\n{stdout}"
    );
    assert!(
        stdout.contains("calico-rs flows"),
        "flow records shown:\n{stdout}"
    );
}

/// Issue 21: the same three hosts, policy and measured matrices with the ACLs in eBPF.
#[test]
fn the_cluster_demo_on_the_ebpf_dataplane_measures_what_the_policy_predicts() {
    let name = "the_cluster_demo_on_the_ebpf_dataplane_measures_what_the_policy_predicts";
    if !calico_netns::fixtures::privileged(name) {
        return;
    }
    let stdout = demo_succeeds(&["--dataplane", "bpf"]);
    for host in ["host-a", "host-b", "host-c"] {
        assert!(
            stdout.contains(&format!("{host}: namespace")) && stdout.contains("ACLs: eBPF"),
            "{host} on eBPF:\n{stdout}"
        );
    }
    assert!(!stdout.contains("ACLs: nftables"), "{stdout}");
}

/// Runs the demo with `args`; checks it exits 0 with both matrices as predicted, ECMP over
/// both planes, and nothing of its own left behind. Returns its output.
fn demo_succeeds(args: &[&str]) -> String {
    let demo = Command::new(env!("CARGO_BIN_EXE_calico-cluster-demo"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the demo runs");
    let pid = demo.id();
    let out = demo.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
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
    // Only this run's: other demos may run beside it.
    let mine = format!("-{pid}-");
    let mut left = Vec::new();
    for _ in 0..20 {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        left = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&mine))
            .map(str::to_string)
            .collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    stdout
}

/// Ctrl-C in the middle of `make demo` removes what the demo made: its namespaces (and the
/// agents and BIRD in them) and its temporary directory.
#[test]
fn an_interrupted_demo_leaves_nothing_behind() {
    if !calico_netns::fixtures::privileged("an_interrupted_demo_leaves_nothing_behind") {
        return;
    }
    use std::io::{BufRead, BufReader};
    let mut demo = Command::new(env!("CARGO_BIN_EXE_calico-cluster-demo"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the demo runs");
    let pid = demo.id();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    // Interrupted once the hosts and their agents are up.
    for line in lines.by_ref() {
        if line.unwrap().contains("agents started") {
            break;
        }
    }
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = demo.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("demo interrupted")),
        "{rest:?}"
    );
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let mine = format!("-{pid}-");
    let left: Vec<String> = String::from_utf8_lossy(&namespaces.stdout)
        .lines()
        .filter(|l| l.contains(&mine))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let dir = std::env::temp_dir().join(format!("calico-demo-{pid}"));
    assert!(!dir.exists(), "{} left behind", dir.display());
}
