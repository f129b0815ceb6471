//! Churn benchmark (issue 19): through a route reflector, a feeder withdraws and
//! re-announces R prefixes a second (default 10,000) for S seconds (default 60) on top of a
//! base table of N prefixes (default 100,000), while C clients (default 20) receive it all.
//! The table shows whether the reflector stays flat and keeps up: its CPU use (user and
//! system time of all its threads, from `/proc/<pid>/stat`; 100 % = one core) in the first
//! and the last W seconds of the churn (W = 10, or half the run when shorter) with the
//! lowest and highest of every W-second window, its resident memory at the start and the end
//! of the churn and its peak, the churn rate the feeder achieved (its writes block when the
//! reflector does not read), how long after the feeder's last change the clients took to
//! settle, and whether every client then holds exactly the base table, each prefix with the
//! feeder as next hop. Our [`Speaker`], BIRD 2, BIRD 3 (a worker thread per core) and
//! rustbgpd (both built from the baselines' source when missing) take turns as the
//! reflector, each in its own process, in the same run, with the same feeder and clients.
//! A reflector whose clients do not end with the whole table is shown as incomplete.
//!
//! The churn is paced in ticks of 100 ms: tick j withdraws the j-th slice of R/10 prefixes
//! (slices follow each other round the base table) and re-announces the slice withdrawn a
//! second earlier; a last tick re-announces the slices still withdrawn. So every second R
//! prefixes are withdrawn and R re-announced, and R are missing at any moment (the clients
//! then hold N - R); each client receives 2 R changes a second (R in the first second,
//! which has no re-announcements).
//!
//! The feeder (client 0) and the clients are `common::reflector`'s light clients, tokio tasks
//! in the bench process: on a 2-core machine they share the cores with the reflector, as in
//! the reflect bench.
//!
//! Run as root: `cargo bench -p calico-bgp --bench churn` (`CHURN_SECS=S`, `CHURN_RATE=R`
//! (at most N/2), `CHURN_CLIENTS=C`, `CHURN_BASE=N`; `CHURN_ONLY=ours`, `bird`, `bird3` or
//! `rustbgpd` runs one reflector; `CHURN_TIMEOUT=T`, default 120: how long the base table
//! and the settling at the end may take, each). A quick run: `CHURN_SECS=10
//! CHURN_RATE=2000 CHURN_CLIENTS=5 CHURN_BASE=20000`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_bgp::packet::update::pack_withdrawals;
use calico_bgp::packet::{Context, Message};
use calico_netns::fixtures::Netns;
use common::reflector::{
    announcements, client_address, namespace, open_session, prefix, read_message, reflectors,
    walk_update, Nlri, Reflector,
};
use common::{cpu_ticks, env_usize, peak_rss_kib, rss_kib, ticks_per_second};
use ipnet::IpNet;
use tokio::io::AsyncWriteExt;

mod common;

/// Ticks of the churn a second.
const TICKS: usize = 10;

/// The run's sizes.
#[derive(Clone, Copy, Debug)]
struct Churn {
    secs: usize,
    /// Prefixes withdrawn (and as many re-announced) a tick.
    slice: usize,
    clients: usize,
    base: usize,
    timeout: Duration,
}

impl Churn {
    fn from_env() -> Churn {
        let base = env_usize("CHURN_BASE", 100_000).max(2 * TICKS);
        let rate = env_usize("CHURN_RATE", 10_000).clamp(TICKS, base / 2);
        Churn {
            secs: env_usize("CHURN_SECS", 60).max(1),
            slice: rate / TICKS,
            clients: env_usize("CHURN_CLIENTS", 20).clamp(1, 999),
            base,
            timeout: Duration::from_secs(env_usize("CHURN_TIMEOUT", 120) as u64),
        }
    }

    /// Prefixes withdrawn (and re-announced) a second.
    fn rate(&self) -> usize {
        self.slice * TICKS
    }

    /// The prefixes of slice `j`.
    fn slice(&self, j: usize) -> Vec<IpNet> {
        (0..self.slice)
            .map(|k| prefix((j * self.slice + k) % self.base))
            .collect()
    }

    /// The length of the windows CPU use is measured over, in seconds.
    fn window(&self) -> usize {
        (self.secs / 2).clamp(1, 10)
    }
}

/// The withdrawal of `prefixes` as UPDATE bytes.
fn withdraw(prefixes: &[IpNet]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for u in pack_withdrawals(prefixes) {
        Message::Update(u)
            .encode_into(&Context::plain(true), &mut bytes)
            .unwrap();
    }
    bytes
}

/// What a client holds, for the bench to watch.
#[derive(Default)]
struct Stats {
    /// Session up.
    up: AtomicBool,
    /// Prefixes of the base table held.
    held: AtomicUsize,
    /// Prefixes announced with another next hop than the feeder, or outside the table.
    wrong: AtomicUsize,
    /// Withdrawals and announcements received.
    changes: AtomicUsize,
    /// The session ended (NOTIFICATION or closed).
    lost: AtomicBool,
}

/// Client `i`: opens its session and keeps its view of the table up to date until the
/// session ends.
async fn client(ns: String, i: usize, base: usize, stats: Arc<Stats>) {
    let mut stream = open_session(ns, i).await;
    stats.up.store(true, Ordering::Relaxed);
    let mut have = vec![false; base];
    let feeder = client_address(0);
    let (mut held, mut wrong, mut changes) = (0usize, 0usize, 0usize);
    while let Ok((kind, body)) = read_message(&mut stream).await {
        match kind {
            2 => walk_update(&body, base, |nlri| {
                changes += 1;
                match nlri {
                    Nlri::Withdrawn(Some(p)) => {
                        if std::mem::replace(&mut have[p], false) {
                            held -= 1;
                        }
                    }
                    Nlri::Announced(Some(p), Some(next_hop)) if next_hop == feeder => {
                        if !std::mem::replace(&mut have[p], true) {
                            held += 1;
                        }
                    }
                    Nlri::Announced(..) => wrong += 1,
                    Nlri::Withdrawn(None) => {}
                }
            }),
            3 => break,
            _ => continue,
        }
        stats.held.store(held, Ordering::Relaxed);
        stats.wrong.store(wrong, Ordering::Relaxed);
        stats.changes.store(changes, Ordering::Relaxed);
    }
    stats.lost.store(true, Ordering::Relaxed);
}

/// The reflector's CPU time and memory, and what the clients received, at one moment.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    cpu_ticks: u64,
    rss_kib: u64,
    changes: usize,
}

struct Row {
    name: String,
    /// How long every client took to hold the base table, if they did.
    base_secs: Option<f64>,
    samples: Vec<Sample>,
    /// Prefixes withdrawn (and as many re-announced) a second, as the feeder achieved it.
    achieved: f64,
    /// From the feeder's last change until every client held the base table, if they did.
    settle_secs: Option<f64>,
    peak_kib: u64,
    /// `None`: every client holds exactly the base table with the feeder as next hop;
    /// otherwise what is wrong.
    fault: Option<String>,
}

fn total_changes(stats: &[Arc<Stats>]) -> usize {
    stats
        .iter()
        .map(|s| s.changes.load(Ordering::Relaxed))
        .sum()
}

/// Whether every client holds the whole base table, with no wrong announcement.
fn complete(stats: &[Arc<Stats>], base: usize) -> bool {
    stats
        .iter()
        .all(|s| s.held.load(Ordering::Relaxed) == base && s.wrong.load(Ordering::Relaxed) == 0)
}

/// Waits up to `limit` until every client holds the base table; how long it took.
async fn until_complete(stats: &[Arc<Stats>], base: usize, limit: Duration) -> Option<f64> {
    let start = Instant::now();
    while !complete(stats, base) {
        if start.elapsed() > limit || stats.iter().any(|s| s.lost.load(Ordering::Relaxed)) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(start.elapsed().as_secs_f64())
}

fn run(ns: &Netns, reflector: Reflector, c: Churn) -> Row {
    let pid = reflector.pid;
    let runtime = common::runtime();
    let row = runtime.block_on(async {
        // Clients 1..=C receive; client 0 feeds.
        let stats: Vec<Arc<Stats>> = (0..c.clients).map(|_| Arc::default()).collect();
        for (i, s) in stats.iter().enumerate() {
            tokio::spawn(client(ns.path(), i + 1, c.base, s.clone()));
        }
        let (mut drain, mut feed) = open_session(ns.path(), 0).await.into_split();
        // The reflector sends the feeder nothing of its own back; read whatever comes.
        tokio::spawn(async move { while read_message(&mut drain).await.is_ok() {} });
        let up = Instant::now();
        while !stats.iter().all(|s| s.up.load(Ordering::Relaxed)) {
            assert!(
                up.elapsed() < Duration::from_secs(60),
                "{}: not every client's session came up",
                reflector.name
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let all: Vec<IpNet> = (0..c.base).map(prefix).collect();
        feed.write_all(&announcements(&all, 0)).await.unwrap();
        let base_secs = until_complete(&stats, c.base, c.timeout).await;
        if base_secs.is_none() {
            let held: Vec<usize> = stats
                .iter()
                .map(|s| s.held.load(Ordering::Relaxed))
                .collect();
            eprintln!(
                "{}: the clients hold {:?} of the {} base prefixes after {:?} \
                 (CHURN_TIMEOUT); churning anyway",
                reflector.name,
                &held[..held.len().min(10)],
                c.base,
                c.timeout
            );
        }

        // Samples every window, from the churn's start to its end.
        let start = Instant::now();
        let sampler = {
            let (stats, window, windows) = (stats.clone(), c.window(), c.secs / c.window());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for k in 0..=windows {
                    let at = Duration::from_secs((k * window) as u64);
                    tokio::time::sleep_until((start + at).into()).await;
                    samples.push(Sample {
                        at: start.elapsed(),
                        cpu_ticks: cpu_ticks(pid),
                        rss_kib: rss_kib(pid),
                        changes: total_changes(&stats),
                    });
                }
                samples
            })
        };
        let ticks = c.secs * TICKS;
        for j in 0..=ticks {
            let at = start + Duration::from_millis((j * 1000 / TICKS) as u64);
            tokio::time::sleep_until(at.into()).await;
            let mut bytes = Vec::new();
            if j < ticks {
                bytes.extend(withdraw(&c.slice(j)));
            }
            if j >= TICKS {
                bytes.extend(announcements(&c.slice(j - TICKS), 0));
            }
            if j == ticks {
                // The slices still withdrawn.
                for k in ticks.saturating_sub(TICKS - 1)..ticks {
                    bytes.extend(announcements(&c.slice(k), 0));
                }
            }
            feed.write_all(&bytes).await.unwrap();
        }
        let fed = start.elapsed();
        let achieved = (ticks * c.slice) as f64 / fed.as_secs_f64();
        let settle_secs = until_complete(&stats, c.base, c.timeout).await;
        let samples = sampler.await.unwrap();
        // Anything more coming in changes nothing that is complete.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let faults: Vec<String> = stats
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let (held, wrong) = (
                    s.held.load(Ordering::Relaxed),
                    s.wrong.load(Ordering::Relaxed),
                );
                let lost = s.lost.load(Ordering::Relaxed);
                (held != c.base || wrong > 0 || lost).then(|| {
                    format!(
                        "{} holds {held}{}{}",
                        client_address(i + 1),
                        if wrong > 0 {
                            format!(", {wrong} wrong")
                        } else {
                            String::new()
                        },
                        if lost { ", session lost" } else { "" }
                    )
                })
            })
            .collect();
        let fault = (!faults.is_empty()).then(|| {
            format!(
                "{} of {} clients: {}{}",
                faults.len(),
                c.clients,
                faults[..faults.len().min(3)].join("; "),
                if faults.len() > 3 { "; ..." } else { "" }
            )
        });
        Row {
            name: reflector.name.clone(),
            base_secs,
            samples,
            achieved,
            settle_secs,
            peak_kib: peak_rss_kib(pid),
            fault,
        }
    });
    (reflector.stop)();
    drop(runtime);
    row
}

fn main() {
    if common::reflector::serve_if_asked() {
        return;
    }
    let c = Churn::from_env();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("churn benchmark: skipped: needs root (network namespaces, BIRD)");
        return;
    }
    let only = std::env::var("CHURN_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for kind in reflectors(&only) {
        // The clients and the feeder.
        let ns = namespace(c.clients + 1);
        let reflector = kind.start(&ns, c.clients + 1);
        eprintln!("churn: {} ...", reflector.name);
        rows.push(run(&ns, reflector, c));
    }

    let w = c.window();
    let hz = ticks_per_second() as f64;
    println!();
    println!(
        "churn through a route reflector, iBGP: {} prefixes withdrawn and {0} re-announced a \
         second for {} s on a base table of {}; 1 feeder, {} clients",
        c.rate(),
        c.secs,
        c.base,
        c.clients
    );
    println!(
        "{:<30} {:>7} {:>10} {:>10} {:>13} {:>10} {:>9} {:>9} {:>10} {:>8} {:>7}  consistent",
        "reflector",
        "base s",
        format!("CPU% 0-{w}s"),
        format!("last {w}s"),
        "(min-max)",
        "RSS start",
        "RSS end",
        "peak MiB",
        "churn/s",
        "kept up",
        "settle"
    );
    for r in &rows {
        let cpu: Vec<f64> = r
            .samples
            .windows(2)
            .map(|p| {
                let secs = (p[1].at - p[0].at).as_secs_f64();
                (p[1].cpu_ticks - p[0].cpu_ticks) as f64 / hz / secs * 100.0
            })
            .collect();
        let first = cpu.first().copied().unwrap_or(f64::NAN);
        let last = cpu.last().copied().unwrap_or(f64::NAN);
        let lo = cpu.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = cpu.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mib = |s: Option<&Sample>| s.map_or(0.0, |s| s.rss_kib as f64 / 1024.0);
        // Kept up: the feeder's writes were not held back (within 2 %) and the clients had
        // every change within a second of the last one.
        let kept_up =
            r.achieved >= 0.98 * c.rate() as f64 && r.settle_secs.is_some_and(|s| s < 1.0);
        let name = if r.fault.is_some() || r.base_secs.is_none() {
            format!("{} (incomplete)", r.name)
        } else {
            r.name.clone()
        };
        let secs = |s: Option<f64>| s.map_or("never".to_string(), |s| format!("{s:.2}"));
        println!(
            "{:<30} {:>7} {:>10.1} {:>10.1} {:>13} {:>10.1} {:>9.1} {:>9.1} {:>10.0} {:>8} {:>7}  {}",
            name,
            secs(r.base_secs),
            first,
            last,
            format!("({lo:.1}-{hi:.1})"),
            mib(r.samples.first()),
            mib(r.samples.last()),
            r.peak_kib as f64 / 1024.0,
            r.achieved,
            if kept_up { "yes" } else { "no" },
            secs(r.settle_secs),
            r.fault.as_deref().unwrap_or("yes")
        );
    }
    println!("per {w}-second window: the reflector's CPU %, its RSS MiB, changes received a second per client");
    for r in &rows {
        let series = |f: &dyn Fn(&[Sample]) -> String| {
            r.samples.windows(2).map(f).collect::<Vec<_>>().join(" ")
        };
        println!(
            "  {:<28} CPU% {}",
            r.name,
            series(&|p| {
                let secs = (p[1].at - p[0].at).as_secs_f64();
                format!(
                    "{:.0}",
                    (p[1].cpu_ticks - p[0].cpu_ticks) as f64 / hz / secs * 100.0
                )
            })
        );
        println!(
            "  {:<28} RSS  {}",
            "",
            series(&|p| format!("{:.1}", p[1].rss_kib as f64 / 1024.0))
        );
        println!(
            "  {:<28} in/s {}",
            "",
            series(&|p| {
                let secs = (p[1].at - p[0].at).as_secs_f64();
                format!(
                    "{:.0}",
                    (p[1].changes - p[0].changes) as f64 / secs / c.clients as f64
                )
            })
        );
    }
    println!(
        "each client should receive {} changes a second ({} withdrawals and as many \
         announcements); issue 19's goal: CPU and RSS flat, every client consistent",
        2 * c.rate(),
        c.rate()
    );
}
