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
//! and blur the comparison. Everything lives on addresses of the loopback interface of one
//! namespace: the reflector on 10.200.0.1, client i on 10.201.x.y (not 127/8: rustbgpd
//! refuses a loopback NEXT_HOP, RFC 4271 §6.3). Sessions are iBGP (AS 64512) with hold
//! time 0 (no keepalives); the reflector waits passively, the clients connect.
//!
//! Run as root: `cargo bench -p calico-bgp --bench reflect` (`REFLECT_CLIENTS=C`,
//! `REFLECT_PER_CLIENT=K`; `REFLECT_FEEDER_PREFIXES=N`: one feeder announces N prefixes
//! and the C clients must each hold all of them, the fan-out of issue 19 at 200 × 100,000;
//! `REFLECT_ONLY=ours`, `bird`, `bird3` or `rustbgpd` runs one reflector; each runs
//! `REFLECT_RUNS` times, default 3, and the median run is shown with the spread;
//! `REFLECT_TIMEOUT=S`, default 300: a reflector whose clients do not all have every
//! prefix by then is shown as never done). The table shows each reflector's resident
//! memory at the end and its peak (VmHWM) over the run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_bgp::packet::update::pack_announcements;
use calico_bgp::packet::PathAttributes;
use calico_bgp::packet::{AfiSafi, AsPath, Capability, Context, Message, Open, Origin};
use calico_bgp::speaker::socket::SocketFactory;
use calico_bgp::speaker::{Speaker, SpeakerOptions};
use calico_core::dataplane::{BgpBackend, BgpSettings, PeerConfig};
use calico_core::model::AsNumber;
use calico_netns::fixtures::Netns;
use common::{
    bird3, env_usize, peak_rss_kib, rss_kib, rustbgpd, sockets_in, spawn_self, BenchBird,
    BenchRustbgpd, BirdBuild,
};

mod common;
use ipnet::{IpNet, Ipv4Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AS: u32 = 64512;
const REFLECTOR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const CLUSTER: &str = "10.255.0.1";
/// First prefix: 16.0.0.0/24; prefix n is 16.0.0.0 + n * 256.
const BASE: u32 = 16 << 24;

fn client_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// A fresh namespace with the reflector's and `clients` clients' addresses on `lo`.
fn namespace(clients: usize) -> Netns {
    let ns = Netns::create("refl").unwrap();
    let mut batch = format!("addr add {REFLECTOR}/32 dev lo\n");
    for i in 0..clients {
        batch.push_str(&format!("addr add {}/32 dev lo\n", client_address(i)));
    }
    let path = std::env::temp_dir().join(format!("calico-bgp-reflect-{}.ip", std::process::id()));
    std::fs::write(&path, batch).unwrap();
    ns.run(&["ip", "-batch", &path.display().to_string()])
        .unwrap();
    let _ = std::fs::remove_file(&path);
    ns
}

/// The reflector process (ours): started inside the namespace, prints "ready" once it
/// listens, then serves until killed.
fn our_reflector(clients: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let speaker = Speaker::with_options(SpeakerOptions {
            listen_address: IpAddr::V4(REFLECTOR),
            ..SpeakerOptions::default()
        })
        .unwrap();
        speaker
            .configure(&BgpSettings {
                local_as: AsNumber(AS),
                router_id: REFLECTOR,
                listen_port: 179,
                cluster_id: Some(CLUSTER.parse().unwrap()),
                peers: (0..clients)
                    .map(|i| PeerConfig {
                        address: IpAddr::V4(client_address(i)),
                        remote_as: AsNumber(AS),
                        password: None,
                        hold_time: 90,
                        passive: true,
                        route_reflector_client: true,
                        bfd: None,
                        add_path: Default::default(),
                        session: Default::default(),
                    })
                    .collect(),
                policy: Default::default(),
            })
            .await
            .unwrap();
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// A reflector under test: its pid and how to stop it.
struct Reflector {
    name: String,
    pid: u32,
    stop: Box<dyn FnOnce()>,
}

fn start_ours(ns: &Netns, clients: usize) -> Reflector {
    let (mut child, _) = spawn_self(
        ns,
        "--reflector",
        &[("REFLECT_CLIENTS", clients.to_string())],
    );
    // `ip netns exec` execs the command: the child is the reflector.
    let pid = child.id();
    Reflector {
        name: "calico-bgp Speaker".into(),
        pid,
        stop: Box::new(move || {
            let _ = child.kill();
            let _ = child.wait();
        }),
    }
}

fn start_bird(build: &BirdBuild, ns: &Netns, clients: usize) -> Reflector {
    let mut c = format!(
        "router id {REFLECTOR};\nprotocol device {{}}\n\
         template bgp rrc {{\n  local {REFLECTOR} as {AS};\n  strict bind;\n  passive on;\n  rr client;\n  rr cluster id {CLUSTER};\n  ipv4 {{ import all; export all; }};\n}}\n"
    );
    for i in 0..clients {
        c.push_str(&format!(
            "protocol bgp c{i} from rrc {{ neighbor {} as {AS}; }}\n",
            client_address(i)
        ));
    }
    let bird = BenchBird::start(build, ns, "reflect", &c, Duration::from_secs(5));
    Reflector {
        name: bird.version(),
        pid: bird.pid,
        stop: Box::new(move || bird.stop()),
    }
}

/// rustbgpd as the reflector: the clients are its dynamic neighbors (accepted by source
/// range, inheriting a peer group of route-reflector clients). It has no passive mode for
/// configured neighbors, and in one namespace its own connections to a client address
/// reach its own listener (bound to 0.0.0.0) and hold the client's real connection back
/// as a collision; dynamic neighbors never connect out.
fn start_rustbgpd(program: &std::path::Path, ns: &Netns, clients: usize) -> Reflector {
    let global = format!(
        "asn = {AS}\nrouter_id = \"{REFLECTOR}\"\nlisten_port = 179\ncluster_id = \"{CLUSTER}\"\n\
         dynamic_neighbor_limit = {clients}\n"
    );
    let mut rest = "[peer_groups.clients]\nhold_time = 90\nfamilies = [\"ipv4_unicast\"]\n\
                    route_reflector_client = true\n\n"
        .to_string();
    let ranges: std::collections::BTreeSet<[u8; 4]> = (0..clients)
        .map(|i| client_address(i).octets())
        .map(|[a, b, c, _]| [a, b, c, 0])
        .collect();
    for [a, b, c, _] in ranges {
        rest.push_str(&format!(
            "[[dynamic_neighbors]]\nprefix = \"{a}.{b}.{c}.0/24\"\npeer_group = \"clients\"\n\
             remote_asn = {AS}\n\n"
        ));
    }
    let metrics = SocketAddr::from((REFLECTOR, 9179));
    let mut daemon = BenchRustbgpd::start(program, ns, "reflect", (&global, &rest), Some(metrics));
    daemon.wait_ready(Duration::from_secs(10));
    Reflector {
        name: "rustbgpd 0.8.0".into(),
        pid: daemon.pid,
        stop: Box::new(move || daemon.stop()),
    }
}

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

/// The client's own prefixes as UPDATE bytes (iBGP: empty AS_PATH, LOCAL_PREF 100).
fn client_updates(shape: Shape, i: usize) -> Vec<u8> {
    let ctx = Context::plain(true);
    let prefixes: Vec<IpNet> = shape
        .own(i)
        .map(|n| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(BASE + ((n as u32) << 8)), 24).unwrap()))
        .collect();
    if prefixes.is_empty() {
        return Vec::new();
    }
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(client_address(i)),
        local_pref: Some(100),
        ..PathAttributes::default()
    };
    let mut bytes = Vec::new();
    for u in pack_announcements(&attrs, None, &prefixes).unwrap() {
        Message::Update(u).encode_into(&ctx, &mut bytes).unwrap();
    }
    bytes
}

/// Reads one message: (type, body).
async fn read_message(stream: &mut tokio::net::TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 19];
    stream.read_exact(&mut header).await?;
    let len = u16::from_be_bytes([header[16], header[17]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(19)];
    stream.read_exact(&mut body).await?;
    Ok((header[18], body))
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
    let prefix_index = |bytes: &[u8], len: u8| -> Option<usize> {
        if len != 24 || bytes.len() < 3 {
            return None;
        }
        let addr = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], 0]);
        let n = addr.checked_sub(BASE)? >> 8;
        ((n as usize) < total).then_some(n as usize)
    };
    let nlri = |part: &[u8], f: &mut dyn FnMut(Option<usize>)| {
        let mut at = 0;
        while at < part.len() {
            let len = part[at];
            let n = usize::from(len).div_ceil(8);
            f(prefix_index(&part[at + 1..at + 1 + n], len));
            at += 1 + n;
        }
    };
    let wlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let withdrawn = &body[2..2 + wlen];
    let alen = u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]) as usize;
    let attrs = &body[4 + wlen..4 + wlen + alen];
    let announced = &body[4 + wlen + alen..];
    nlri(withdrawn, &mut |p| {
        if let Some(p) = p {
            if std::mem::replace(&mut have[p], false) {
                *count -= 1;
            }
        }
    });
    // NEXT_HOP (type 3).
    let mut next_hop = None;
    let mut at = 0;
    while at + 3 <= attrs.len() {
        let (flags, kind) = (attrs[at], attrs[at + 1]);
        let (len, head) = if flags & 0x10 != 0 {
            (
                u16::from_be_bytes([attrs[at + 2], attrs[at + 3]]) as usize,
                4,
            )
        } else {
            (attrs[at + 2] as usize, 3)
        };
        let value = &attrs[at + head..at + head + len];
        if kind == 3 && len == 4 {
            next_hop = Some(Ipv4Addr::new(value[0], value[1], value[2], value[3]));
        }
        at += head + len;
    }
    nlri(announced, &mut |p| {
        let Some(p) = p else { return };
        let owner = shape.origin(p);
        if owner == me || next_hop != Some(client_address(owner)) {
            wrong += 1;
            return;
        }
        if !std::mem::replace(&mut have[p], true) {
            *count += 1;
        }
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
    let sockets = SocketFactory::new(sockets_in(ns)).with_source(IpAddr::V4(me));
    let remote = SocketAddr::from((REFLECTOR, 179));
    // Connections 5 ms apart: with 201 at once, rustbgpd 0.8.0 left some of its dynamic
    // sessions half-open (the client's OPEN read, never Established). The time measured
    // starts at the barrier, once every session is up.
    tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        let socket = sockets.connecting_socket(&remote).unwrap();
        match socket.connect(remote).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "client {me}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    stream.set_nodelay(true).unwrap();
    let ctx = Context::default();
    let open = Message::Open(Open {
        my_as: AS as u16,
        hold_time: 0,
        router_id: me,
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(AS),
        ],
    });
    stream.write_all(&open.encode(&ctx).unwrap()).await.unwrap();
    // The reflector's OPEN, then its KEEPALIVE.
    loop {
        let (kind, body) = read_message(&mut stream).await.unwrap();
        match kind {
            1 => {}
            4 => break,
            3 => panic!("client {me}: NOTIFICATION {body:?}"),
            _ => {}
        }
    }
    stream
        .write_all(&Message::Keepalive.encode(&ctx).unwrap())
        .await
        .unwrap();
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
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
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--reflector") {
        // The parent passes the number of peers to configure, feeder included.
        return our_reflector(env_usize("REFLECT_CLIENTS", 50));
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
    let bird3 = if only.is_empty() || only == "bird3" {
        bird3()
    } else {
        None
    };
    let rustbgpd = if only.is_empty() || only == "rustbgpd" {
        rustbgpd()
    } else {
        None
    };
    for kind in ["ours", "bird", "bird3", "rustbgpd"] {
        if !only.is_empty() && only != kind {
            continue;
        }
        let build = match kind {
            "bird" => BirdBuild::Debian,
            "bird3" => match &bird3 {
                Some(b) => b.clone(),
                None => continue,
            },
            "rustbgpd" if rustbgpd.is_none() => continue,
            _ => BirdBuild::Debian,
        };
        let mut tries: Vec<Row> = (0..runs)
            .map(|_| {
                // A fresh namespace per run: no TIME_WAIT or leftovers shared between runs.
                let ns = namespace(clients);
                let reflector = match kind {
                    "ours" => start_ours(&ns, clients),
                    "rustbgpd" => match &rustbgpd {
                        Some(program) => start_rustbgpd(program, &ns, clients),
                        None => unreachable!("skipped above"),
                    },
                    _ => start_bird(&build, &ns, clients),
                };
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
