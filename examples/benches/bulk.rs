//! A bulk change on the real kernel (issue 15): 10,000 global policies added to a running
//! agent and removed again, against a fresh agent handed the result as a snapshot, on the
//! same host in the same run. Needs root: `cargo bench -p calico-examples --bench bulk`.
//!
//! The host is a namespace `bulk-host` with 50 local workload interfaces (veth pairs, both
//! ends in the host namespace: no traffic flows) and an in-process [`Agent`] with
//! `LinuxFib` and `LinuxAcl`; the model adds 1,000 remote endpoints (selector sets) and 20
//! namespace profiles. Paths, each timed from the first request to `flush` returning:
//!
//! * `snapshot`: a fresh agent (table deleted first) given the base and the policies as
//!   one snapshot — what a restart costs;
//! * `apply add` / `apply remove`: an agent running the base given the 10,000 upserts, then
//!   the 10,000 removes, each as one `AgentHandle::apply` (a resource file added, removed);
//! * `update add` / `update remove`: the same sent one by one with `AgentHandle::update`
//!   (an embedder feeding updates as they come).
//!
//! Each path runs `RUNS` times (`BULK_RUNS`; `BULK_POLICIES` sets the number of policies);
//! the table gives median, min and max, and the ratio of the
//! medians to the snapshot's (goal: at most 1.5). A path still running after `TIMEOUT` is
//! abandoned and shown as such.

use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_core::agent::{Agent, AgentHandle, Timing};
use calico_core::model::{Resource, ResourceKey, Update};
use calico_core::scale::Scale;
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::Netns;

const SCALE: Scale = Scale {
    local: 50,
    remote: 1_000,
    policies: 0,
    apps: 100,
    namespaces: 20,
};
/// Policies added and removed (`BULK_POLICIES` overrides).
const POLICIES: usize = 10_000;
/// Runs of each path (`BULK_RUNS` overrides).
const RUNS: usize = 3;
const TABLE: &str = "calico-bulk";
/// Longest wait for one path, in seconds (`BULK_TIMEOUT` overrides).
const TIMEOUT: u64 = 60;

fn timeout() -> Duration {
    Duration::from_secs(setting("BULK_TIMEOUT", TIMEOUT as usize) as u64)
}

fn base() -> Vec<Resource> {
    let model = SCALE.model();
    model
        .workload_endpoints
        .values()
        .cloned()
        .map(Resource::WorkloadEndpoint)
        .chain(model.profiles.values().cloned().map(Resource::Profile))
        .collect()
}

/// A number from the environment, or `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn policies() -> Vec<Resource> {
    (0..setting("BULK_POLICIES", POLICIES))
        .map(|k| Resource::Policy(SCALE.global_policy(k, 80)))
        .collect()
}

fn removes() -> Vec<Update> {
    (0..setting("BULK_POLICIES", POLICIES))
        .map(|k| {
            Update::Remove(ResourceKey::Policy {
                namespace: None,
                name: format!("gpol{k}"),
            })
        })
        .collect()
}

/// A fresh agent on the host, its table deleted first.
fn agent(host: &Netns) -> Agent {
    let acl = LinuxAcl::in_netns(host.path().as_ref(), TABLE).expect("nftables socket");
    acl.delete_table_blocking().expect("delete the table");
    let fib = LinuxFib::in_netns(host.path(), FibConfig::default()).expect("rtnetlink socket");
    Agent::builder()
        .node("h1")
        .fib(Arc::new(fib))
        .acl(Arc::new(acl))
        .timing(Timing {
            resync_interval: Duration::from_secs(3600),
            ..Timing::default()
        })
        .start()
        .expect("agent starts")
}

/// Flushes and fails loudly if the agent could not program what it was given.
async fn settle(h: &AgentHandle, what: &str) {
    h.flush().await;
    let s = h.status();
    assert!(
        s.acl.last_error.is_none() && s.fib.last_error.is_none(),
        "{what}: ACL {:?}, FIB {:?}",
        s.acl.last_error,
        s.fib.last_error
    );
}

/// Times `work` followed by a flush; `None` if it did not finish within `TIMEOUT`.
async fn timed<F: std::future::Future<Output = ()>>(
    h: &AgentHandle,
    what: &str,
    work: F,
) -> Option<Duration> {
    let t = Instant::now();
    let done = tokio::time::timeout(timeout(), async {
        work.await;
        settle(h, what).await;
    })
    .await;
    let took = done.ok().map(|()| t.elapsed());
    eprintln!("  {what}: {took:?}");
    took
}

#[derive(Default)]
struct Row {
    times: Vec<Duration>,
    timed_out: usize,
}

impl Row {
    fn push(&mut self, t: Option<Duration>) {
        match t {
            Some(t) => self.times.push(t),
            None => self.timed_out += 1,
        }
    }
}

async fn run(host: &Netns) -> Vec<(&'static str, Row)> {
    let mut rows: Vec<(&'static str, Row)> = [
        "snapshot",
        "apply add",
        "apply remove",
        "update add",
        "update remove",
    ]
    .into_iter()
    .map(|n| (n, Row::default()))
    .collect();
    let runs = setting("BULK_RUNS", RUNS);
    for run in 0..runs {
        eprintln!("run {} of {runs}", run + 1);
        // Snapshot: the result, handed to a fresh agent.
        let a = agent(host);
        let h = a.handle();
        let mut all = base();
        all.extend(policies());
        let t = timed(&h, "snapshot", async {
            h.snapshot(all).await.expect("valid snapshot");
        })
        .await;
        rows[0].1.push(t);
        a.shutdown().await;

        // Incremental: a running agent with the base.
        let a = agent(host);
        let h = a.handle();
        h.snapshot(base()).await.expect("valid base");
        settle(&h, "base").await;
        let adds: Vec<Update> = policies().into_iter().map(Update::Upsert).collect();
        let t = timed(&h, "apply add", async {
            h.apply(adds.clone()).await.expect("valid group");
        })
        .await;
        rows[1].1.push(t);
        let t = timed(&h, "apply remove", async {
            h.apply(removes()).await.expect("valid group");
        })
        .await;
        rows[2].1.push(t);
        let t = timed(&h, "update add", async {
            for u in adds.clone() {
                h.update(u).await.expect("valid update");
            }
        })
        .await;
        rows[3].1.push(t);
        let t = timed(&h, "update remove", async {
            for u in removes() {
                h.update(u).await.expect("valid update");
            }
        })
        .await;
        rows[4].1.push(t);
        a.shutdown().await;
    }
    rows
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bulk bench: skipped: needs root");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let host = Netns::create("bulk-host").expect("namespace");
    let links: String = (0..SCALE.local)
        .map(|i| {
            format!(
                "link add {} type veth peer name bw{i}\n",
                SCALE.endpoint(i).interface_name
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!("bulk-links-{}", std::process::id()));
    std::fs::write(&path, links).expect("write the ip batch");
    host.run(&["ip", "-batch", path.to_str().expect("utf-8 path")])
        .expect("create the interfaces");
    let _ = std::fs::remove_file(&path);

    let rows = rt.block_on(run(&host));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v.get(v.len() / 2).copied()
    };
    let snap = median(&rows[0].1.times);
    println!();
    println!(
        "| {} global policies, {} local + {} remote endpoints, {} runs | median | min | max | ratio to snapshot |",
        setting("BULK_POLICIES", POLICIES),
        SCALE.local,
        SCALE.remote,
        setting("BULK_RUNS", RUNS)
    );
    println!("|---|---|---|---|---|");
    for (name, row) in &rows {
        let Some(m) = median(&row.times) else {
            println!(
                "| {name} | > {} s ({} runs timed out) | | | |",
                timeout().as_secs(),
                row.timed_out
            );
            continue;
        };
        let (min, max) = (
            row.times.iter().min().copied().unwrap_or_default(),
            row.times.iter().max().copied().unwrap_or_default(),
        );
        let ratio = snap.map_or(f64::NAN, |s| m.as_secs_f64() / s.as_secs_f64());
        let note = if row.timed_out > 0 {
            format!(" ({} runs > {} s)", row.timed_out, timeout().as_secs())
        } else {
            String::new()
        };
        println!(
            "| {name}{note} | {:.0} ms | {:.0} ms | {:.0} ms | {ratio:.2} |",
            ms(m),
            ms(min),
            ms(max)
        );
    }
}
