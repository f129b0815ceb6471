//! Policy-change benchmark (issue 19): an export-filter change re-evaluated and delivered
//! to every client of a route reflector. One feeder announces N IPv4 prefixes (default
//! 100,000) and C clients (default 200) each receive all of them; then the export filter
//! towards every client changes from accepting everything to rejecting the first half of
//! the prefixes (N/2 of them, as a handful of aligned CIDRs: "withdraw"), and once every
//! client has lost exactly those, back to accepting everything ("restore"). Each phase is
//! timed from the moment the change is issued until every client's table equals the
//! expected one, withdrawals included; the time of the first full delivery ("initial") is
//! shown too. The reflector's namespace, addresses and the clients' sessions are the reflect
//! bench's (`common/reflector.rs`); the clients here only keep a bitmap of what they hold,
//! each prefix checked to come with the feeder as next hop.
//!
//! Each reflector is changed in its own way, without a new session (a client whose session
//! ends fails the run, shown as incomplete with the reason):
//! - our [`Speaker`] through [`BgpBackend::configure`] with a `RoutePolicy` whose
//!   `BgpFilter` (`exportV4` rules `Reject` `In` each CIDR) is on every peering: the soft
//!   reconfiguration of `speaker/refilter.rs`. It runs in its own process, which applies
//!   the change on SIGUSR1 (reject) and SIGUSR2 (accept all);
//! - BIRD 2 (Debian) and BIRD 3 (built from the baselines' source, see `common::bird3`):
//!   a new configuration whose export filter changes (`if net ~ [ … ] then reject;
//!   accept;`), loaded with `birdc configure` (not `configure soft`, which by BIRD's
//!   documentation leaves routes already exported alone); BIRD then feeds the channel again
//!   without restarting the session;
//! - rustbgpd 0.8.0 is shown as unsupported: it takes policy changes at run time only
//!   through its gRPC `PolicyService`, which its CLI does not offer, and its SIGHUP reload
//!   does not apply policy (its docs/OPERATIONS.md).
//!
//! Run as root: `cargo bench -p calico-bgp --bench policy_change` (`POLICY_CLIENTS=C`
//! receiving clients, `POLICY_PREFIXES=N`, `POLICY_RUNS=R` runs of each reflector, default
//! 3, each in a fresh namespace: the median of each phase is shown with the fastest and
//! slowest run; `POLICY_ONLY=ours`, `bird` or `bird3` runs one; `POLICY_TIMEOUT=S`,
//! default 300, per phase). Deliveries are the routes each phase changes at the clients
//! (N/2 × C); each row's ratio is against the fastest baseline in that phase.

use std::io::{BufReader, Lines};
use std::net::{IpAddr, Ipv4Addr};
use std::process::ChildStdout;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_bgp::speaker::{Speaker, SpeakerOptions};
use calico_core::dataplane::{BgpBackend, RoutePolicy};
use calico_netns::fixtures::Netns;
use common::reflector::{
    announcements, bird_config, client_address, namespace, open_session, prefix, read_message,
    settings, walk_update, Nlri, BASE, REFLECTOR,
};
use common::{bird3, env_usize, spawn_self, BenchBird, BirdBuild};
use ipnet::{IpNet, Ipv4Net};
use tokio::io::AsyncWriteExt;

// Shared by every bench; this one has no use for rustbgpd's or the memory helpers.
#[allow(dead_code, unused_imports)]
mod common;

/// The argument that makes this bench binary our reflector process ([`our_reflector`]).
const ROLE: &str = "--policy-reflector";

/// Why rustbgpd 0.8.0 is not measured.
const RUSTBGPD: &str = "unsupported: export policy changes at run time only through its gRPC \
                        PolicyService (no CLI for it); SIGHUP does not apply policy";

/// The export filter towards every client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    /// Everything is exported.
    All,
    /// The prefixes below the cut are kept back.
    Half,
}

/// The measured phases after the first full delivery: the filter each sets.
const PHASES: [(&str, Filter); 2] = [("withdraw", Filter::Half), ("restore", Filter::All)];

/// The aligned CIDRs that together hold exactly prefixes 0..cut (each a /24 from
/// `BASE` on): one per bit set in `cut`, largest first.
fn blocks(cut: usize) -> Vec<Ipv4Net> {
    let mut at = 0;
    let mut out = Vec::new();
    for bit in (0..24).rev() {
        let size = 1usize << bit;
        if cut & size != 0 {
            let first = Ipv4Addr::from(BASE + ((at as u32) << 8));
            out.push(Ipv4Net::new(first, 24 - bit as u8).unwrap());
            at += size;
        }
    }
    out
}

/// Our policy for `filter` on the peerings with clients 0..clients.
fn our_policy(clients: usize, cut: usize, filter: Filter) -> RoutePolicy {
    if filter == Filter::All {
        return RoutePolicy::default();
    }
    let rules: Vec<String> = blocks(cut)
        .iter()
        .map(|b| format!("{{action: Reject, matchOperator: In, cidr: {b}}}"))
        .collect();
    let yaml = format!(
        "kind: BgpFilter\nname: half\nexportV4: [{}]\n",
        rules.join(", ")
    );
    let resources = calico_core::model::parse_resources(&yaml).unwrap();
    let peers: Vec<IpAddr> = (0..clients)
        .map(|i| IpAddr::V4(client_address(i)))
        .collect();
    RoutePolicy::from_resources(&resources, &peers)
}

/// BIRD's configuration for `filter` (the filter `pol` on every client's export).
fn bird_policy_config(clients: usize, cut: usize, filter: Filter) -> String {
    let body = match filter {
        Filter::All => "accept;".to_string(),
        Filter::Half => {
            let set: Vec<String> = blocks(cut).iter().map(|b| format!("{b}+")).collect();
            format!("if net ~ [ {} ] then reject; accept;", set.join(", "))
        }
    };
    bird_config(clients, &format!("filter pol {{ {body} }}\n"), "filter pol")
}

/// The reflector process (ours): started inside the namespace, prints "ready" once it
/// listens; then on SIGUSR1 rejects the first half of the prefixes towards every client,
/// on SIGUSR2 accepts all again, printing "done" once the speaker has taken each change.
fn our_reflector(clients: usize, cut: usize) {
    let runtime = common::runtime();
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let speaker = Speaker::with_options(SpeakerOptions {
            listen_address: IpAddr::V4(REFLECTOR),
            ..SpeakerOptions::default()
        })
        .unwrap();
        let configure = |filter| {
            let settings = settings(clients, our_policy(clients, cut, filter));
            let speaker = &speaker;
            async move { speaker.configure(&settings).await.unwrap() }
        };
        let mut half = signal(SignalKind::user_defined1()).unwrap();
        let mut all = signal(SignalKind::user_defined2()).unwrap();
        configure(Filter::All).await;
        println!("ready");
        loop {
            let filter = tokio::select! {
                _ = half.recv() => Filter::Half,
                _ = all.recv() => Filter::All,
            };
            configure(filter).await;
            println!("done");
        }
    });
}

/// A reflector under test: its name, how to change its filter (returns once the change is
/// issued) and how to stop it.
struct Reflector {
    name: String,
    change: Box<dyn FnMut(Filter)>,
    stop: Box<dyn FnOnce()>,
}

fn start_ours(ns: &Netns, clients: usize, cut: usize) -> Reflector {
    let env = [
        ("POLICY_CLIENTS", clients.to_string()),
        ("POLICY_CUT", cut.to_string()),
    ];
    let (mut child, mut lines): (_, Lines<BufReader<ChildStdout>>) = spawn_self(ns, ROLE, &env);
    // `ip netns exec` execs the command: the child is the reflector.
    let pid = child.id() as libc::pid_t;
    Reflector {
        name: "calico-bgp Speaker".into(),
        change: Box::new(move |filter| {
            let sig = match filter {
                Filter::Half => libc::SIGUSR1,
                Filter::All => libc::SIGUSR2,
            };
            // SAFETY: kill has no memory preconditions; pid is our child.
            assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
            let line = lines.next().and_then(Result::ok);
            assert_eq!(
                line.as_deref(),
                Some("done"),
                "the reflector took the change"
            );
        }),
        stop: Box::new(move || {
            let _ = child.kill();
            let _ = child.wait();
        }),
    }
}

fn start_bird(build: &BirdBuild, ns: &Netns, clients: usize, cut: usize) -> Reflector {
    let conf = bird_policy_config(clients, cut, Filter::All);
    let bird = BenchBird::start(build, ns, "policy", &conf, Duration::from_secs(5));
    let name = bird.version();
    let (preamble, bird) = (build.preamble(), Arc::new(bird));
    let changer = bird.clone();
    let path = std::env::temp_dir().join(format!("calico-bgp-policy-{}.conf", std::process::id()));
    let conf_path = path.clone();
    Reflector {
        name,
        change: Box::new(move |filter| {
            let conf = bird_policy_config(clients, cut, filter);
            std::fs::write(&path, format!("{preamble}{conf}")).unwrap();
            let out = changer.birdc(&format!("configure \"{}\"", path.display()));
            assert!(out.contains("Reconfigur"), "birdc configure: {out}");
        }),
        stop: Box::new(move || {
            if let Ok(bird) = Arc::try_unwrap(bird) {
                bird.stop();
            }
            let _ = std::fs::remove_file(&conf_path);
        }),
    }
}

/// What one client reports at the end of a stage (0: the first full delivery, then each
/// phase): when its table became the expected one and what it received for it, or why
/// it never did.
struct Event {
    client: usize,
    stage: usize,
    outcome: Result<(Instant, usize, usize), String>,
}

/// The run's size: `clients` sessions (the feeder, client 0, included), `prefixes`
/// announced, the first `cut` of them rejected by the changed filter.
#[derive(Clone, Copy, Debug)]
struct Size {
    clients: usize,
    prefixes: usize,
    cut: usize,
}

/// What a receiving client holds: a bitmap of the prefix numbers, how many are set, and how
/// many of those are below the cut.
struct Table {
    have: Vec<bool>,
    count: usize,
    below: usize,
    cut: usize,
}

impl Table {
    fn set(&mut self, p: usize, on: bool) {
        if std::mem::replace(&mut self.have[p], on) == on {
            return;
        }
        let (count, below) = (&mut self.count, &mut self.below);
        for n in std::iter::once(count).chain((p < self.cut).then_some(below)) {
            if on {
                *n += 1;
            } else {
                *n -= 1;
            }
        }
    }

    /// Whether the table is the expected one after stage `stage`: every prefix, or all but
    /// the first `cut`.
    fn expected(&self, stage: usize) -> bool {
        let filter = if stage == 0 {
            Filter::All
        } else {
            PHASES[stage - 1].1
        };
        match filter {
            Filter::All => self.count == self.have.len(),
            Filter::Half => self.below == 0 && self.count == self.have.len() - self.cut,
        }
    }
}

/// What one receiving client has seen: its table, the UPDATEs and bytes it read, and the
/// prefixes that arrived with another next hop than the feeder's.
struct Seen {
    table: Table,
    updates: usize,
    bytes: usize,
    wrong: usize,
}

impl Seen {
    /// Reads UPDATEs from `stream` until the table is the expected one after `stage` (at
    /// once if it is), publishing its count in `progress`; fails, saying why, when the
    /// session ends or the reflector sends a NOTIFICATION.
    async fn read_until(
        &mut self,
        stream: &mut tokio::net::TcpStream,
        stage: usize,
        progress: &AtomicUsize,
    ) -> Result<(), String> {
        let feeder = client_address(0);
        while !self.table.expected(stage) {
            let held = self.table.count;
            let (kind, body) = read_message(stream)
                .await
                .map_err(|e| format!("{e} (holding {held} prefixes)"))?;
            self.bytes += body.len() + 19;
            match kind {
                2 => {
                    self.updates += 1;
                    let total = self.table.have.len();
                    walk_update(&body, total, |nlri| match nlri {
                        Nlri::Withdrawn(Some(p)) => self.table.set(p, false),
                        Nlri::Announced(Some(p), hop) if hop == Some(feeder) => {
                            self.table.set(p, true)
                        }
                        Nlri::Announced(Some(_), _) => self.wrong += 1,
                        Nlri::Withdrawn(None) | Nlri::Announced(None, _) => {}
                    });
                    progress.store(self.table.count, Ordering::Relaxed);
                }
                3 => return Err(format!("NOTIFICATION {body:?} (holding {held} prefixes)")),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A receiving client (or the feeder, client 0, which announces and then only holds its
/// session): reports each stage as its table reaches it. Returns its session, to be kept
/// until every client is done.
async fn client(
    ns: String,
    i: usize,
    size: Size,
    barrier: Arc<tokio::sync::Barrier>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    progress: Arc<Vec<AtomicUsize>>,
) -> tokio::net::TcpStream {
    let mut stream = open_session(ns, i).await;
    if i == 0 {
        let prefixes: Vec<IpNet> = (0..size.prefixes).map(prefix).collect();
        let updates = announcements(&prefixes, 0);
        barrier.wait().await;
        stream.write_all(&updates).await.unwrap();
        return stream;
    }
    barrier.wait().await;
    let mut seen = Seen {
        table: Table {
            have: vec![false; size.prefixes],
            count: 0,
            below: 0,
            cut: size.cut,
        },
        updates: 0,
        bytes: 0,
        wrong: 0,
    };
    for stage in 0..=PHASES.len() {
        let (updates, bytes) = (seen.updates, seen.bytes);
        let outcome = match seen.read_until(&mut stream, stage, &progress[i]).await {
            Ok(()) if seen.wrong > 0 => {
                Err(format!("{} prefixes with a wrong next hop", seen.wrong))
            }
            Ok(()) => Ok((Instant::now(), seen.updates - updates, seen.bytes - bytes)),
            Err(e) => Err(e),
        };
        let outcome = outcome.map_err(|e| format!("client {}: {e}", client_address(i)));
        let failed = outcome.is_err();
        let _ = events.send(Event {
            client: i,
            stage,
            outcome,
        });
        if failed {
            break;
        }
    }
    stream
}

/// One stage of one run: seconds until the last client had the expected table, UPDATEs
/// and bytes the clients received until then, and how long issuing the change took.
#[derive(Clone, Copy, Debug, Default)]
struct Stage {
    seconds: f64,
    updates: usize,
    bytes: usize,
    issue_seconds: f64,
}

/// One run against `reflector`: every stage, or why one never ended.
fn run(ns: &Netns, mut reflector: Reflector, size: Size) -> Result<Vec<Stage>, String> {
    let clients = size.clients;
    let runtime = common::runtime();
    let limit = Duration::from_secs(env_usize("POLICY_TIMEOUT", 300) as u64);
    let result = runtime.block_on(async {
        let barrier = Arc::new(tokio::sync::Barrier::new(clients + 1));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let progress: Arc<Vec<AtomicUsize>> =
            Arc::new((0..clients).map(|_| AtomicUsize::new(0)).collect());
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, tx, progress) = (barrier.clone(), tx.clone(), progress.clone());
                tokio::spawn(client(ns.path(), i, size, barrier, tx, progress))
            })
            .collect();
        barrier.wait().await;
        // Every session is up; the feeder announces now.
        let mut issued = Instant::now();
        let mut stages = Vec::new();
        for stage in 0..=PHASES.len() {
            let mut issue_seconds = 0.0;
            if stage > 0 {
                issued = Instant::now();
                (reflector.change)(PHASES[stage - 1].1);
                issue_seconds = issued.elapsed().as_secs_f64();
            }
            let deadline = tokio::time::Instant::now() + limit;
            let mut s = Stage {
                issue_seconds,
                ..Stage::default()
            };
            let mut done = 0;
            let mut reported = vec![false; clients];
            while done < clients - 1 {
                let event = match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(e)) => e,
                    _ => {
                        let short: Vec<String> = (1..clients)
                            .filter(|&i| !reported[i])
                            .take(3)
                            .map(|i| {
                                let had = progress[i].load(Ordering::Relaxed);
                                format!("{} (holds {had} prefixes)", client_address(i))
                            })
                            .collect();
                        return Err(format!(
                            "{done} of {} clients had the expected table after {limit:?} \
                             (POLICY_TIMEOUT) in stage {stage}; not yet: {}",
                            clients - 1,
                            short.join(", ")
                        ));
                    }
                };
                assert_eq!(event.stage, stage, "client {} is ahead", event.client);
                reported[event.client] = true;
                let (at, updates, bytes) = event.outcome?;
                s.seconds = s.seconds.max(at.duration_since(issued).as_secs_f64());
                s.updates += updates;
                s.bytes += bytes;
                done += 1;
            }
            stages.push(s);
        }
        // Sessions stay up until every client is done.
        for t in tasks {
            let _ = t.await;
        }
        Ok(stages)
    });
    // The change first: BIRD's stop needs the daemon handle it shares.
    let Reflector { change, stop, .. } = reflector;
    drop(change);
    stop();
    drop(runtime);
    result
}

/// A stage over the runs: (median, fastest, slowest) seconds, and the median run's stage.
type Summary = ((f64, f64, f64), Stage);

/// One reflector's runs, each phase summed up: median, fastest and slowest, and the
/// median run's traffic.
struct Row {
    name: String,
    /// Each stage, or why there are none.
    stages: Result<Vec<Summary>, String>,
    /// Runs that failed, with the first reason.
    failed: Option<(usize, String)>,
}

fn summarize(name: String, runs: Vec<Result<Vec<Stage>, String>>) -> Row {
    let errors: Vec<&String> = runs.iter().filter_map(|r| r.as_ref().err()).collect();
    let failed = errors.first().map(|e| (errors.len(), (*e).clone()));
    let ok: Vec<&Vec<Stage>> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    if ok.is_empty() {
        let why = failed.clone().map_or_else(String::new, |f| f.1);
        return Row {
            name,
            stages: Err(format!("incomplete: {why}")),
            failed: None,
        };
    }
    let stages = (0..=PHASES.len())
        .map(|k| {
            let mut each: Vec<Stage> = ok.iter().map(|r| r[k]).collect();
            each.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let median = each[each.len() / 2];
            let spread = (
                median.seconds,
                each[0].seconds,
                each[each.len() - 1].seconds,
            );
            (spread, median)
        })
        .collect();
    Row {
        name,
        stages: Ok(stages),
        failed,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == ROLE) {
        // The parent passes the number of peers, feeder included, and the cut.
        return our_reflector(env_usize("POLICY_CLIENTS", 201), env_usize("POLICY_CUT", 0));
    }
    let receivers = env_usize("POLICY_CLIENTS", 200).clamp(1, 999);
    let prefixes = env_usize("POLICY_PREFIXES", 100_000).clamp(2, 1 << 20);
    let cut = prefixes / 2;
    let size = Size {
        clients: receivers + 1,
        prefixes,
        cut,
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("policy_change benchmark: skipped: needs root (network namespaces, BIRD)");
        return;
    }
    let only = std::env::var("POLICY_ONLY").unwrap_or_default();
    let runs = env_usize("POLICY_RUNS", 3).max(1);
    let bird3 = if only.is_empty() || only == "bird3" {
        bird3()
    } else {
        None
    };
    let mut rows = Vec::new();
    for kind in ["ours", "bird", "bird3"] {
        if !only.is_empty() && only != kind {
            continue;
        }
        let build = match (kind, &bird3) {
            ("bird3", Some(b)) => b.clone(),
            ("bird3", None) => continue,
            _ => BirdBuild::Debian,
        };
        let mut name = String::new();
        let tries: Vec<Result<Vec<Stage>, String>> = (0..runs)
            .map(|_| {
                // A fresh namespace per run: no TIME_WAIT or leftovers shared between runs.
                let ns = namespace(size.clients);
                let reflector = match kind {
                    "ours" => start_ours(&ns, size.clients, cut),
                    _ => start_bird(&build, &ns, size.clients, cut),
                };
                name.clone_from(&reflector.name);
                let r = run(&ns, reflector, size);
                if let Err(e) = &r {
                    eprintln!("{name}: {e}");
                }
                r
            })
            .collect();
        rows.push(summarize(name, tries));
    }
    if only.is_empty() || only == "rustbgpd" {
        rows.push(Row {
            name: "rustbgpd 0.8.0".into(),
            stages: Err(RUSTBGPD.into()),
            failed: None,
        });
    }

    let cidrs: Vec<String> = blocks(cut).iter().map(ToString::to_string).collect();
    println!();
    println!(
        "policy change, iBGP route reflector: one feeder announces {prefixes} IPv4 prefixes to \
         {receivers} clients; then the export filter towards every client rejects the first \
         {cut} ({}) and, once they are gone everywhere, accepts all again; {runs} run(s) each",
        cidrs.join(" ")
    );
    println!(
        "{:<22} {:<9} {:>9} {:>17} {:>8} {:>13} {:>10} {:>9} {:>9}",
        "reflector",
        "phase",
        "seconds",
        "(fastest-slowest)",
        "vs best",
        "deliveries/s",
        "UPDATEs",
        "MB",
        "issue s"
    );
    let stage_names: Vec<&str> = std::iter::once("initial")
        .chain(PHASES.iter().map(|p| p.0))
        .collect();
    // Per stage, the fastest baseline's median.
    let best: Vec<Option<(f64, String)>> = (0..stage_names.len())
        .map(|k| {
            rows.iter()
                .filter(|r| !r.name.contains("calico-bgp"))
                .filter_map(|r| Some((r.stages.as_ref().ok()?[k].0 .0, r.name.clone())))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        })
        .collect();
    for r in &rows {
        let stages = match &r.stages {
            Ok(s) => s,
            Err(why) => {
                println!("{:<22} {why}", r.name);
                continue;
            }
        };
        for (k, ((median, fastest, slowest), stage)) in stages.iter().enumerate() {
            let deliveries = if k == 0 { prefixes } else { cut } * receivers;
            let ratio = best[k]
                .as_ref()
                .map_or("-".to_string(), |b| format!("{:.2}", median / b.0));
            println!(
                "{:<22} {:<9} {:>9.3} {:>17} {:>8} {:>13.0} {:>10} {:>9.1} {:>9.3}",
                if k == 0 { r.name.as_str() } else { "" },
                stage_names[k],
                median,
                format!("({fastest:.3}-{slowest:.3})"),
                ratio,
                deliveries as f64 / median,
                stage.updates,
                stage.bytes as f64 / 1e6,
                stage.issue_seconds
            );
        }
        if let Some((n, why)) = &r.failed {
            println!(
                "{:<22} {n} of {runs} runs incomplete, shown without them: {why}",
                ""
            );
        }
    }
    if let Some(ours) = rows
        .iter()
        .find(|r| r.name.contains("calico-bgp"))
        .and_then(|r| r.stages.as_ref().ok())
    {
        for (k, name) in stage_names.iter().enumerate().skip(1) {
            if let Some((b, who)) = &best[k] {
                let o = ours[k].0 .0;
                println!(
                    "{name}: ours {o:.3} s = {:.2}x of the fastest baseline ({who}, {b:.3} s); \
                     issue 19's goal: at most 0.5x",
                    o / b
                );
            }
        }
    }
}
