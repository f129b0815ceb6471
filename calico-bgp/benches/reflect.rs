//! Route-reflection benchmark: one reflector with C clients (default 50), each announcing K
//! IPv4 prefixes of its own (default 2,000: 100,000 in all); the table shows how long it
//! takes from the start of the announcements until every client holds every other client's
//! prefixes (98,000 each by default), with the originating client as next hop. Our
//! [`Speaker`], BIRD 2, BIRD 3 (with a worker thread per core) and rustbgpd (both built
//! from the baselines' source when missing, see `common::bird3` and `common::rustbgpd`)
//! take turns as the reflector, each in its own process, in the same run, serving the same
//! clients; each row's ratio is against the fastest baseline.
//!
//! The clients are the same for both reflectors and deliberately light: tokio tasks in the
//! bench process that speak just enough BGP (OPEN, KEEPALIVE, their pre-encoded UPDATEs) and
//! count what arrives in a bitmap per client, checking each prefix's NEXT_HOP. On a 2-core
//! machine, 50 full speakers as clients would spend more CPU than the reflector under test
//! and blur the comparison. The namespace, the reflectors and the clients' sessions are
//! `common::reflector`'s, shared with the churn bench.
//!
//! Run as root: `cargo bench -p calico-bgp --bench reflect` (`REFLECT_CLIENTS=C`,
//! `REFLECT_PER_CLIENT=K`; `REFLECT_FEEDER_PREFIXES=N`: one feeder announces N prefixes
//! and the C clients must each hold all of them, the fan-out of issue 19 at 200 × 100,000;
//! `REFLECT_ONLY=ours`, `bird`, `bird3` or `rustbgpd` runs one reflector; each runs
//! `REFLECT_RUNS` times, default 3, and the median run is shown with the spread;
//! `REFLECT_TIMEOUT=S`, default 300: a reflector whose clients do not all have every
//! prefix by then is shown as never done). The table shows each reflector's resident
//! memory at the end and its peak (VmHWM) over the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_netns::fixtures::Netns;
use common::reflector::{
    announcements, client_address, namespace, open_session, prefix, read_message, reflectors,
    walk_update, Nlri, Reflector,
};
use common::{env_usize, peak_rss_kib, rss_kib};

mod common;
use ipnet::IpNet;
use tokio::io::AsyncWriteExt;

/// Who announces what: every client its own `per_client` prefixes (the default), or one
/// feeder (client 0) all of them and the others none (`REFLECT_FEEDER_PREFIXES`), the
/// fan-out case: every other client must receive every prefix.
#[derive(Clone, Copy, Debug)]
struct Shape {
    clients: usize,
    per_client: usize,
    one_feeder: bool,
}

impl Shape {
    /// Every prefix announced in the run.
    fn total(&self) -> usize {
        if self.one_feeder {
            self.per_client
        } else {
            self.clients * self.per_client
        }
    }

    /// The prefix numbers client `i` announces.
    fn own(&self, i: usize) -> std::ops::Range<usize> {
        match (self.one_feeder, i) {
            (true, 0) => 0..self.per_client,
            (true, _) => 0..0,
            (false, i) => i * self.per_client..(i + 1) * self.per_client,
        }
    }

    /// The client that announces prefix `n`.
    fn origin(&self, n: usize) -> usize {
        if self.one_feeder {
            0
        } else {
            n / self.per_client
        }
    }

    /// How many prefixes client `i` must receive.
    fn want(&self, i: usize) -> usize {
        self.total() - self.own(i).len()
    }

    /// Route deliveries in all.
    fn deliveries(&self) -> usize {
        (0..self.clients).map(|i| self.want(i)).sum()
    }
}

/// What one client saw.
struct Seen {
    done_after: Duration,
    updates: usize,
    bytes: usize,
}

/// The client's own prefixes as UPDATE bytes.
fn client_updates(shape: Shape, i: usize) -> Vec<u8> {
    let prefixes: Vec<IpNet> = shape.own(i).map(prefix).collect();
    announcements(&prefixes, i)
}

/// Applies one UPDATE body to the client's bitmap; returns the number of prefixes that
/// arrived with a wrong next hop.
fn apply_update(
    body: &[u8],
    shape: Shape,
    have: &mut [bool],
    count: &mut usize,
    me: usize,
) -> usize {
    let mut wrong = 0;
    let total = have.len();
    walk_update(body, total, |nlri| match nlri {
        Nlri::Withdrawn(Some(p)) => {
            if std::mem::replace(&mut have[p], false) {
                *count -= 1;
            }
        }
        Nlri::Announced(Some(p), next_hop) => {
            let owner = shape.origin(p);
            if owner == me || next_hop != Some(client_address(owner)) {
                wrong += 1;
            } else if !std::mem::replace(&mut have[p], true) {
                *count += 1;
            }
        }
        Nlri::Withdrawn(None) | Nlri::Announced(None, _) => {}
    });
    wrong
}

/// One client: connects, opens the session, waits at `barrier`, sends its prefixes and
/// reads until it holds every prefix of the others. Returns the stream (kept open until every
/// client is done) and what it saw.
async fn client(
    ns: String,
    i: usize,
    shape: Shape,
    barrier: Arc<tokio::sync::Barrier>,
    start: Arc<std::sync::OnceLock<Instant>>,
    progress: Arc<Vec<AtomicUsize>>,
) -> (tokio::net::TcpStream, Seen) {
    let me = client_address(i);
    // The time measured starts at the barrier, once every session is up.
    let mut stream = open_session(ns, i).await;
    let updates = client_updates(shape, i);
    barrier.wait().await;
    let start = *start.get_or_init(Instant::now);
    stream.write_all(&updates).await.unwrap();

    let want = shape.want(i);
    let mut have = vec![false; shape.total()];
    let (mut count, mut seen_updates, mut bytes, mut wrong) = (0, 0, 0, 0);
    while count < want {
        let (kind, body) = match read_message(&mut stream).await {
            Ok(m) => m,
            Err(e) => panic!("client {me}: {e} after {count} of {want} prefixes"),
        };
        bytes += body.len() + 19;
        match kind {
            2 => {
                seen_updates += 1;
                wrong += apply_update(&body, shape, &mut have, &mut count, i);
                progress[i].store(count, Ordering::Relaxed);
            }
            3 => panic!("client {me}: NOTIFICATION {body:?}"),
            _ => {}
        }
    }
    assert_eq!(wrong, 0, "client {me}: prefixes with a wrong next hop");
    let seen = Seen {
        done_after: start.elapsed(),
        updates: seen_updates,
        bytes,
    };
    (stream, seen)
}

struct Row {
    name: String,
    seconds: f64,
    /// Fastest and slowest of the runs.
    spread: (f64, f64),
    updates: usize,
    megabytes: f64,
    rss_kib: u64,
    /// The reflector's peak resident memory (VmHWM) over the run.
    peak_kib: u64,
}

fn run(ns: &Netns, reflector: Reflector, shape: Shape) -> Row {
    let clients = shape.clients;
    let runtime = common::runtime();
    let (seconds, updates, bytes) = runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(clients));
        let start = Arc::new(std::sync::OnceLock::new());
        let progress: Arc<Vec<AtomicUsize>> =
            Arc::new((0..clients).map(|_| AtomicUsize::new(0)).collect());
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, start, progress) = (barrier.clone(), start.clone(), progress.clone());
                tokio::spawn(client(ns.path(), i, shape, barrier, start, progress))
            })
            .collect();
        let mut results = Vec::new();
        let mut short = Vec::new();
        let limit = Duration::from_secs(env_usize("REFLECT_TIMEOUT", 300) as u64);
        let deadline = tokio::time::Instant::now() + limit;
        for (i, t) in tasks.into_iter().enumerate() {
            match tokio::time::timeout_at(deadline, t).await {
                Ok(Ok(r)) => results.push(r),
                Ok(Err(e)) => panic!("{}: client failed: {e}", reflector.name),
                Err(_) => short.push(i),
            }
        }
        if !short.is_empty() {
            let done = results.iter().map(|(_, s)| s.done_after).max();
            let missing: Vec<String> = short
                .iter()
                .take(5)
                .map(|&i| {
                    let (had, want) = (progress[i].load(Ordering::Relaxed), shape.want(i));
                    format!("{} had {had} of {want}", client_address(i))
                })
                .collect();
            eprintln!(
                "{}: {} of {clients} clients had every prefix after {limit:?} \
                 (REFLECT_TIMEOUT; those by {done:?}); {}{}; shown as never done",
                reflector.name,
                results.len(),
                missing.join(", "),
                if short.len() > 5 { ", ..." } else { "" }
            );
            return (f64::INFINITY, 0, 0);
        }
        let slowest = results.iter().map(|(_, s)| s.done_after).max().unwrap();
        let updates = results.iter().map(|(_, s)| s.updates).sum::<usize>();
        let bytes = results.iter().map(|(_, s)| s.bytes).sum::<usize>();
        (slowest.as_secs_f64(), updates, bytes)
    });
    let rss_kib = rss_kib(reflector.pid);
    let peak_kib = peak_rss_kib(reflector.pid);
    let name = reflector.name.clone();
    (reflector.stop)();
    drop(runtime);
    Row {
        name,
        seconds,
        spread: (seconds, seconds),
        updates,
        megabytes: bytes as f64 / 1e6,
        rss_kib,
        peak_kib,
    }
}

fn main() {
    if common::reflector::serve_if_asked() {
        return;
    }
    let feeder = env_usize("REFLECT_FEEDER_PREFIXES", 0);
    // With one feeder, REFLECT_CLIENTS counts the receiving clients.
    let clients = env_usize("REFLECT_CLIENTS", 50).clamp(2, 1000) + usize::from(feeder > 0);
    let shape = Shape {
        clients,
        per_client: if feeder > 0 {
            feeder
        } else {
            env_usize("REFLECT_PER_CLIENT", 2000).max(1)
        },
        one_feeder: feeder > 0,
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("reflect benchmark: skipped: needs root (network namespaces, BIRD)");
        return;
    }
    let only = std::env::var("REFLECT_ONLY").unwrap_or_default();
    let runs = env_usize("REFLECT_RUNS", 3).max(1);
    let mut rows = Vec::new();
    for kind in reflectors(&only) {
        let mut tries: Vec<Row> = (0..runs)
            .map(|_| {
                // A fresh namespace per run: no TIME_WAIT or leftovers shared between runs.
                let ns = namespace(clients);
                let reflector = kind.start(&ns, clients);
                run(&ns, reflector, shape)
            })
            .collect();
        // The median run; the spread is printed too (BIRD sometimes exports in many small
        // UPDATEs and takes several times longer).
        tries.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let (best, worst) = (tries[0].seconds, tries[tries.len() - 1].seconds);
        let mut row = tries.swap_remove(tries.len() / 2);
        row.spread = (best, worst);
        rows.push(row);
    }

    println!();
    if shape.one_feeder {
        println!(
            "route reflection, iBGP: one feeder announces {} IPv4 prefixes; until each of {} \
             clients holds all of them ({} route deliveries)",
            shape.total(),
            clients - 1,
            shape.deliveries()
        );
    } else {
        println!(
            "route reflection, iBGP: {clients} clients x {} IPv4 prefixes = {}; until every \
             client holds the other {} each",
            shape.per_client,
            shape.total(),
            shape.want(0)
        );
    }
    println!(
        "{:<28} {:>10} {:>15} {:>10} {:>14} {:>12} {:>12} {:>12} {:>12}",
        "reflector",
        "seconds",
        "(fastest-slowest)",
        "vs best",
        "deliveries/s",
        "UPDATEs",
        "MB sent",
        "RSS MiB",
        "peak MiB"
    );
    let deliveries = shape.deliveries() as f64;
    // The fastest baseline of this run.
    let bird = rows
        .iter()
        .filter(|r| !r.name.contains("calico-bgp"))
        .map(|r| r.seconds)
        .min_by(f64::total_cmp);
    for r in &rows {
        let ratio = bird.map_or("-".to_string(), |b| format!("{:.2}", r.seconds / b));
        println!(
            "{:<28} {:>10.3} {:>17} {:>10} {:>14.0} {:>12} {:>12.1} {:>12.1} {:>12.1}",
            r.name,
            r.seconds,
            format!("({:.3}-{:.3})", r.spread.0, r.spread.1),
            ratio,
            deliveries / r.seconds,
            r.updates,
            r.megabytes,
            r.rss_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0
        );
    }
    if let (Some(best), Some(ours)) = (
        rows.iter()
            .filter(|r| !r.name.contains("calico-bgp"))
            .min_by(|a, b| a.seconds.total_cmp(&b.seconds)),
        rows.iter().find(|r| r.name.contains("calico-bgp")),
    ) {
        println!(
            "fastest baseline: {} ({:.3} s); ours {:.3} s = {:.2}x of it (issue 19's goal: at \
             most 0.5x); {:.0} deliveries/s, peak RSS {:.1} MiB",
            best.name,
            best.seconds,
            ours.seconds,
            ours.seconds / best.seconds,
            deliveries / ours.seconds,
            ours.peak_kib as f64 / 1024.0
        );
    }
}
