//! The ACL backend on the real kernel: what is applied reads back identically, change sets
//! between random rulesets apply incrementally, and drift is visible in the dump.

use calico_core::arbitrary;
use calico_core::compile::{compile, CompileConfig, FlowLogConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::AclBackend;
use calico_linux::acl::{nft_script, LinuxAcl};
use calico_netns::fixtures::{privileged, Netns};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

fn random_rulesets(n: usize) -> Vec<Ruleset> {
    let mut runner = TestRunner::deterministic();
    let strategy = arbitrary::model();
    (0..n)
        .map(|i| {
            let model = strategy.new_tree(&mut runner).unwrap().current();
            // Every other one with flow logs (netlink log and rate-limit expressions).
            let flow_logs = (i % 2 == 1).then(FlowLogConfig::default);
            let config = CompileConfig {
                flow_logs,
                ..CompileConfig::new("h1")
            };
            compile(&config, &model)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rulesets_apply_incrementally_and_read_back_exactly() {
    if !privileged("random_rulesets_apply_incrementally_and_read_back_exactly") {
        return;
    }
    let ns = Netns::create("acl-rt").unwrap();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    assert_eq!(
        acl.dump().await.unwrap(),
        Ruleset::default(),
        "no table yet"
    );
    let mut programmed = Ruleset::default();
    for (i, next) in random_rulesets(40).into_iter().enumerate() {
        let changes = diff(&programmed, &next);
        acl.apply(&changes).await.unwrap_or_else(|e| {
            panic!(
                "ruleset #{i}: {e}\n{}",
                ns.run(&["nft", "list", "ruleset"]).unwrap_or_default()
            )
        });
        let back = acl.dump().await.unwrap();
        assert_eq!(back, next, "ruleset #{i} reads back differently");
        // Applying the same state again changes nothing.
        assert!(diff(&back, &next).is_empty());
        // The nft rendering (the benchmarks' baseline) is valid nft input.
        if i % 8 == 0 {
            let path =
                std::env::temp_dir().join(format!("calico-acl-{}-{i}.nft", std::process::id()));
            std::fs::write(&path, nft_script(&next, "baseline")).unwrap();
            let check = ns
                .output(&["nft", "-c", "-f", path.to_str().unwrap()])
                .unwrap();
            let _ = std::fs::remove_file(&path);
            assert!(
                check.status.success(),
                "nft rejects the rendering: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
        programmed = next;
    }
    // nft itself understands the table.
    let listing = ns.run(&["nft", "list", "table", "inet", "calico"]).unwrap();
    assert!(listing.contains("table inet calico"), "{listing}");
    acl.delete_table_blocking().unwrap();
    assert_eq!(acl.dump().await.unwrap(), Ruleset::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_by_hand_is_seen_and_repaired() {
    if !privileged("drift_by_hand_is_seen_and_repaired") {
        return;
    }
    let ns = Netns::create("acl-drift").unwrap();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    let want = random_rulesets(8)
        .into_iter()
        .max_by_key(|r| r.chains.values().map(|c| c.rules.len()).sum::<usize>() + r.sets.len())
        .unwrap();
    acl.apply(&diff(&Ruleset::default(), &want)).await.unwrap();
    for damage in [
        vec!["nft", "flush", "table", "inet", "calico"],
        vec!["nft", "delete", "table", "inet", "calico"],
        vec!["nft", "add", "rule", "inet", "calico", "cali-fw", "counter"],
    ] {
        let chain_exists = ns
            .run(&["nft", "list", "chain", "inet", "calico", "cali-fw"])
            .is_ok();
        if damage[2] == "rule" && !chain_exists {
            let first = want.chains.keys().next().unwrap().clone();
            ns.run(&["nft", "add", "rule", "inet", "calico", &first, "counter"])
                .unwrap();
        } else {
            ns.run(&damage).unwrap();
        }
        let seen = acl.dump().await.unwrap();
        assert_ne!(seen, want, "damage {damage:?} must be visible");
        acl.apply(&diff(&seen, &want)).await.unwrap();
        assert_eq!(acl.dump().await.unwrap(), want, "repaired after {damage:?}");
    }
}
