//! 1,000 updates a second for 30 s into an agent programming a real kernel (routes over
//! rtnetlink, ACLs in nftables) in a namespace: it keeps up, its memory stays flat, and the
//! table it leaves is exactly what the final model compiles to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_core::agent::{Agent, Timing};
use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::AclBackend;
use calico_core::model::{Model, Resource, Update};
use calico_core::scale::Scale;
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::{privileged, Netns};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_updates_a_second_for_thirty_seconds() {
    if !privileged("a_thousand_updates_a_second_for_thirty_seconds") {
        return;
    }
    let ns = Netns::create("load").unwrap();
    let fib = LinuxFib::in_netns(ns.path(), FibConfig::default()).unwrap();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    let scale = Scale {
        local: 50,
        remote: 2_000,
        policies: 200,
        ..Scale::default()
    };
    let mut model = scale.model();
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib))
        .acl(Arc::new(acl.clone()))
        .timing(Timing {
            resync_interval: Duration::from_secs(3600),
            ..Timing::default()
        })
        .start()
        .unwrap();
    let h = agent.handle();
    h.snapshot(
        model
            .workload_endpoints
            .values()
            .cloned()
            .map(Resource::WorkloadEndpoint)
            .chain(model.policies.values().cloned().map(Resource::Policy))
            .chain(model.profiles.values().cloned().map(Resource::Profile))
            .collect(),
    )
    .await
    .unwrap();
    h.flush().await;

    // Remote endpoints change labels (moving in and out of policies' selector sets), local
    // ones too (changing which policies apply), at 1,000 updates a second.
    let start = Instant::now();
    let (mut sent, mut rss_at_10s) = (0u64, 0);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while start.elapsed() < Duration::from_secs(30) {
        tick.tick().await;
        for _ in 0..10 {
            let i = (sent as usize * 7919) % (scale.local + scale.remote);
            let mut ep = scale.endpoint(i);
            ep.labels
                .insert("app".into(), format!("app{}", (sent as usize) % scale.apps));
            model
                .apply(Update::Upsert(Resource::WorkloadEndpoint(ep.clone())))
                .unwrap();
            h.update(Update::Upsert(Resource::WorkloadEndpoint(ep)))
                .await
                .unwrap();
            sent += 1;
        }
        if rss_at_10s == 0 && start.elapsed() >= Duration::from_secs(10) {
            rss_at_10s = rss_kib();
        }
    }
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    let drain = Instant::now();
    h.flush().await;
    let drained = drain.elapsed();
    let rss_end = rss_kib();
    eprintln!(
        "sent {sent} updates at {rate:.0}/s; backlog drained {drained:?} after the last; RSS {rss_at_10s} KiB at 10 s, {rss_end} KiB at 30 s"
    );
    assert!(
        rate > 900.0,
        "the sender itself must reach the rate: {rate:.0}/s"
    );
    assert!(
        drained < Duration::from_secs(2),
        "the agent keeps up: backlog {drained:?}"
    );
    assert!(
        rss_end < rss_at_10s + rss_at_10s / 5,
        "memory flat: {rss_at_10s} KiB → {rss_end} KiB"
    );
    assert!(h.metrics().updates_total >= sent);
    let want = compile(
        &CompileConfig::new("h1"),
        &Model::from_resources(
            model
                .workload_endpoints
                .values()
                .cloned()
                .map(Resource::WorkloadEndpoint)
                .chain(model.policies.values().cloned().map(Resource::Policy))
                .chain(model.profiles.values().cloned().map(Resource::Profile)),
        )
        .unwrap(),
    );
    assert!(
        acl.dump().await.unwrap() == want,
        "the kernel holds the final model's ruleset"
    );
    agent.shutdown().await;
}
