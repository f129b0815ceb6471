//! A write → programmed on every host: three `calico-agent`s in namespaces follow one
//! etcd; a policy is rewritten 60 times; each time the clock runs from the write until each
//! agent's `/status` says that revision is programmed (reconciled into its kernel).
//!
//! The baseline, measured in the same run on the same hosts: the same agents following
//! resource directories (`--datastore dir`, `--settle-ms 50`), the policy file rewritten on
//! each host at once.
//!
//! ```sh
//! sudo cargo bench -p calico-agent --bench etcd_latency
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::etcd::{policy, profile, programmed, start_agent, wep, Datastore};
use support::{wait_until, Host};

const WRITES: usize = 60;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn row(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{label:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        percentile(&ms, 0.1),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

/// Waits until every host has programmed past `done(host)`; each host's latency and the
/// slowest, in ms.
fn until_all(hosts: &[Host], start: Instant, done: impl Fn(usize, &Host) -> bool) -> Vec<f64> {
    let mut at = vec![None; hosts.len()];
    while at.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(30) {
        for (i, h) in hosts.iter().enumerate() {
            if at[i].is_none() && done(i, h) {
                at[i] = Some(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    at.into_iter().map(|t| t.unwrap_or(f64::NAN)).collect()
}

fn hosts(ds: &Datastore) -> Vec<Host> {
    (1..=3)
        .map(|i| {
            let wl = [(format!("calbn{i}"), format!("10.71.{i}.10"))];
            let wl: Vec<(&str, &str)> = wl.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            Host::new(
                &format!("bn-h{i}"),
                Some(&ds.fabric),
                &format!("10.88.0.{i}"),
                &wl,
            )
        })
        .collect()
}

fn resources() -> Vec<(String, String)> {
    let mut r = vec![profile()];
    for i in 1..=3 {
        r.push(wep(
            &format!("bn-h{i}"),
            &format!("local{i}"),
            &format!("calbn{i}"),
            &format!("10.71.{i}.10"),
            "r0",
        ));
    }
    for p in 0..20 {
        r.push(policy(&format!("p{p}"), "r0", "r1", 1000 + p));
    }
    r
}

fn etcd_run(ds: &Datastore, hosts: &mut [Host]) -> (Vec<f64>, Vec<f64>) {
    ds.put(resources());
    for h in hosts.iter_mut() {
        start_agent(h, &ds.etcd.endpoint());
    }
    let revision = ds.put(vec![policy("p0", "r0", "r1", 1000)]);
    for h in hosts.iter() {
        assert!(
            wait_until(Duration::from_secs(30), || programmed(h) >= revision).is_some(),
            "{}",
            h.log()
        );
    }
    let (mut each, mut all) = (Vec::new(), Vec::new());
    for k in 0..WRITES {
        let start = Instant::now();
        let revision = ds.put(vec![policy("p0", "r0", "r1", 2000 + k as u16)]);
        let t = until_all(hosts, start, |_, h| programmed(h) >= revision);
        all.push(t.iter().copied().fold(0.0, f64::max));
        each.extend(t);
    }
    for h in hosts.iter_mut() {
        h.signal_agent(libc::SIGTERM);
    }
    (each, all)
}

fn dir_run(hosts: &mut [Host]) -> (Vec<f64>, Vec<f64>) {
    let yaml = |port: u16| -> String {
        resources()
            .into_iter()
            .filter(|(k, _)| !k.contains("/p0"))
            .chain([policy("p0", "r0", "r1", port)])
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    for h in hosts.iter_mut() {
        h.write("all.yaml", &yaml(1000));
        h.start_agent(&[
            "--no-bgp",
            "--http",
            "127.0.0.1:9091",
            "--settle-ms",
            "50",
            "--resync-secs",
            "3600",
        ]);
    }
    for h in hosts.iter() {
        assert!(
            wait_until(Duration::from_secs(30), || programmed(h) >= 1).is_some(),
            "{}",
            h.log()
        );
    }
    let (mut each, mut all) = (Vec::new(), Vec::new());
    for k in 0..WRITES {
        let before: Vec<i64> = hosts.iter().map(programmed).collect();
        let start = Instant::now();
        for h in hosts.iter() {
            h.write("all.yaml", &yaml(2000 + k as u16));
        }
        let t = until_all(hosts, start, |i, h| programmed(h) > before[i]);
        all.push(t.iter().copied().fold(0.0, f64::max));
        each.extend(t);
    }
    (each, all)
}

fn main() {
    let Some(ds) = Datastore::start("etcd_latency bench", "etcdbench") else {
        println!("etcd_latency: skipped (needs root and etcd)");
        return;
    };
    let mut etcd_hosts = hosts(&ds);
    let (etcd_each, etcd_all) = etcd_run(&ds, &mut etcd_hosts);
    drop(etcd_hosts);
    let mut dir_hosts = hosts(&ds);
    let (dir_each, dir_all) = dir_run(&mut dir_hosts);
    println!("\nwrite → programmed, {WRITES} policy rewrites, 3 hosts (ms)");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "p10", "median", "p90", "p99", "max"
    );
    row("etcd: each host", etcd_each);
    row("etcd: all three hosts", etcd_all.clone());
    row("directory (settle 50 ms): each host", dir_each);
    row("directory (settle 50 ms): all three hosts", dir_all.clone());
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        percentile(&v, 0.5)
    };
    println!(
        "all three, median: etcd / directory = {:.2}",
        med(etcd_all) / med(dir_all)
    );
}
