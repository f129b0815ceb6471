//! Full-table benchmark: a feeder (a separate process in its own network namespace) sends
//! N IPv4 prefixes (or IPv6 ones, in MP_REACH_NLRI, AFI 2) over eBGP; the table shows how long each receiver takes until all of
//! them are in its Loc-RIB, and how much its resident memory grew per prefix. BIRD 2, BIRD 3
//! (a worker thread per core; built from the baselines' source when missing, see
//! `common::bird3`), rustbgpd (likewise, `common::rustbgpd`; its Loc-RIB size read from its
//! Prometheus endpoint) and our [`Speaker`] receive the same bytes from the same feeder,
//! one after the other, in the same run; the ratios are against the fastest baseline and
//! the one with the least memory per prefix.
//!
//! Run as root: `cargo bench -p calico-bgp --bench feed` (`FEED_FAMILY=ipv6` feeds IPv6
//! prefixes, /48s in MP_REACH_NLRI over an IPv6 session, instead of IPv4 ones;
//! `FEED_PREFIXES=N` to change the table size, default 1,000,000 IPv4 or 500,000 IPv6
//! prefixes, issue 19's sizes; `FEED_PER_PATH=K` prefixes share one AS path, default 4,
//! so a million prefixes carry 250,000 distinct attribute sets, like a real full table;
//! `FEED_TIMEOUT=S`, default 300: rustbgpd not done by then is shown as never done, as it
//! is when it stops taking routes in, see `rustbgpd_receiver`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::time::Duration;

use calico_bgp::packet::attribute::MpNextHop;
use calico_bgp::packet::update::{end_of_rib, pack_announcements};
use calico_bgp::packet::{
    AfiSafi, AsPath, Capability, Context, Message, Open, Origin, PathAttributes,
};
use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{BgpBackend, BgpSettings, PeerConfig};
use calico_core::model::AsNumber;
use calico_netns::fixtures::{veth, Netns};
use common::{
    bird3, cpu_ticks, env_usize, rss_kib, rustbgpd, sockets_in, spawn_self, BenchBird,
    BenchRustbgpd, BirdBuild,
};

mod common;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The feeder's and the receiver's IPv4 addresses, also their router IDs in both families.
const FEEDER: &str = "10.98.0.1";
const RECEIVER: &str = "10.98.0.2";
/// Their IPv6 addresses, the session's ends with `FEED_FAMILY=ipv6`.
const FEEDER6: &str = "fd98::1";
const RECEIVER6: &str = "fd98::2";
const FEEDER_AS: u32 = 65000;
const RECEIVER_AS: u32 = 65001;

/// The family fed: IPv4 prefixes in the NLRI field over an IPv4 session, or IPv6 ones in
/// MP_REACH_NLRI (AFI 2) over an IPv6 session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// `FEED_FAMILY`: `ipv6`, or IPv4 by default.
    fn from_env() -> Family {
        match std::env::var("FEED_FAMILY").as_deref() {
            Ok("ipv6") | Ok("6") => Family::V6,
            _ => Family::V4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The feeder's end of the session.
    fn feeder(self) -> IpAddr {
        match self {
            Family::V4 => FEEDER.parse().unwrap(),
            Family::V6 => FEEDER6.parse().unwrap(),
        }
    }

    /// The receiver's end of the session.
    fn receiver(self) -> IpAddr {
        match self {
            Family::V4 => RECEIVER.parse().unwrap(),
            Family::V6 => RECEIVER6.parse().unwrap(),
        }
    }

    fn afi_safi(self) -> AfiSafi {
        match self {
            Family::V4 => AfiSafi::IPV4_UNICAST,
            Family::V6 => AfiSafi::IPV6_UNICAST,
        }
    }

    /// Prefix `i`: 16.0.0.0/24 + i, or 2a00::/48 + i.
    fn prefix(self, i: u32) -> IpNet {
        match self {
            Family::V4 => {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from((16u32 << 24) + (i << 8)), 24).unwrap())
            }
            Family::V6 => {
                let addr = (0x2a00u128 << 112) | (u128::from(i) << 80);
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), 48).unwrap())
            }
        }
    }

    /// The channel's name in a BIRD configuration.
    fn bird_channel(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// The family's name in a rustbgpd configuration.
    fn rustbgpd_family(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_unicast",
            Family::V6 => "ipv6_unicast",
        }
    }
}

/// The whole table as UPDATE bytes: prefix i is `family.prefix(i)`; every `per_path`
/// prefixes share an AS path [65000, x, y].
fn table(family: Family, prefixes: usize, per_path: usize) -> Vec<u8> {
    let ctx = Context::default();
    let mut bytes = Vec::new();
    let all: Vec<IpNet> = (0..prefixes as u32).map(|i| family.prefix(i)).collect();
    // IPv6 next hops go in MP_REACH_NLRI.
    let mp_next_hop = match family {
        Family::V4 => None,
        Family::V6 => Some(MpNextHop {
            global: family.feeder(),
            link_local: None,
        }),
    };
    for (g, chunk) in all.chunks(per_path.max(1)).enumerate() {
        let g = g as u32;
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![
                FEEDER_AS,
                64512 + g % 400,
                4_200_000_000 + g / 400,
            ])),
            next_hop: Some(FEEDER.parse().unwrap()),
            med: Some(g % 7),
            ..PathAttributes::default()
        };
        for u in pack_announcements(&attrs, mp_next_hop, chunk).unwrap() {
            Message::Update(u).encode_into(&ctx, &mut bytes).unwrap();
        }
    }
    Message::Update(end_of_rib(family.afi_safi()))
        .encode_into(&ctx, &mut bytes)
        .unwrap();
    bytes
}

/// The feeder process: accepts sessions one after another, sends OPEN (hold time 0, so no
/// keepalives are needed), waits for the receiver's KEEPALIVE and sends the table.
fn feeder(family: Family, prefixes: usize, per_path: usize) {
    let table = table(family, prefixes, per_path);
    let listener = TcpListener::bind((family.feeder(), 179)).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let table = table.clone();
        std::thread::spawn(move || {
            let open = Message::Open(Open {
                my_as: FEEDER_AS as u16,
                hold_time: 0,
                router_id: FEEDER.parse().unwrap(),
                capabilities: vec![
                    Capability::Multiprotocol(family.afi_safi()),
                    Capability::FourOctetAs(FEEDER_AS),
                ],
            });
            let _ = stream.write_all(&open.encode(&Context::default()).unwrap());
            let _ = stream.write_all(&Message::Keepalive.encode(&Context::default()).unwrap());
            // Wait for the receiver's OPEN and KEEPALIVE (message types 1 and 4).
            let mut seen_keepalive = false;
            while !seen_keepalive {
                let mut header = [0u8; 19];
                if stream.read_exact(&mut header).is_err() {
                    return;
                }
                let len = u16::from_be_bytes([header[16], header[17]]) as usize;
                let mut body = vec![0u8; len.saturating_sub(19)];
                if stream.read_exact(&mut body).is_err() {
                    return;
                }
                seen_keepalive = header[18] == 4;
            }
            let start = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            println!("start {start}");
            let _ = std::io::stdout().flush();
            if stream.write_all(&table).is_err() {
                return;
            }
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        });
    }
}

struct Row {
    name: String,
    prefixes: usize,
    seconds: f64,
    rss_delta_kib: u64,
}

/// Reads the feeder's "start <ns since epoch>" line for the next session.
fn feed_started(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> std::time::SystemTime {
    let line = lines.next().expect("feeder output").expect("feeder output");
    let nanos: u64 = line
        .trim()
        .strip_prefix("start ")
        .expect("start line")
        .parse()
        .unwrap();
    std::time::UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn since(start: std::time::SystemTime) -> f64 {
    std::time::SystemTime::now()
        .duration_since(start)
        .unwrap_or_default()
        .as_secs_f64()
}

fn bird_receiver(
    build: &BirdBuild,
    ns: &Netns,
    family: Family,
    prefixes: usize,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Row {
    let (local, neighbor, channel) = (family.receiver(), family.feeder(), family.bird_channel());
    let bird = BenchBird::start(
        build,
        ns,
        "feed",
        &format!(
            "router id {RECEIVER};\nprotocol device {{}}\nprotocol bgp feed {{\n  local {local} as {RECEIVER_AS};\n  neighbor {neighbor} as {FEEDER_AS};\n  connect delay time 1;\n  {channel} {{ import all; export none; }};\n}}\n"
        ),
        Duration::from_secs(2),
    );
    let pid = bird.pid;
    let rss_before = rss_kib(pid);
    let imported = |out: &str| -> usize {
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Routes:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let start = feed_started(lines);
    loop {
        let out = bird.birdc("show protocols all feed");
        if imported(&out) >= prefixes {
            break;
        }
        assert!(
            since(start) < 120.0,
            "BIRD did not receive the table:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let seconds = since(start);
    let rss_after = rss_kib(pid);
    let version = bird.version();
    bird.stop();
    Row {
        name: version,
        prefixes,
        seconds,
        rss_delta_kib: rss_after.saturating_sub(rss_before),
    }
}

fn rustbgpd_receiver(
    program: &std::path::Path,
    ns: &Netns,
    family: Family,
    prefixes: usize,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Row {
    let global = format!("asn = {RECEIVER_AS}\nrouter_id = \"{RECEIVER}\"\nlisten_port = 179\n");
    let (feeder, families) = (family.feeder(), family.rustbgpd_family());
    let neighbor = format!(
        "[[neighbors]]\naddress = \"{feeder}\"\nremote_asn = {FEEDER_AS}\nhold_time = 90\n\
         families = [\"{families}\"]\n"
    );
    let metrics = format!("{RECEIVER}:9179").parse().unwrap();
    let mut daemon = BenchRustbgpd::start(program, ns, "feed", (&global, &neighbor), Some(metrics));
    daemon.wait_ready(Duration::from_secs(5));
    let rss_before = rss_kib(daemon.pid);
    let start = feed_started(lines);
    // rustbgpd 0.8.0 hands received routes to its RIB task with a `try_send` on a queue of
    // 4,096 UPDATEs and drops them when it is full: a table sent faster than its RIB takes
    // it in never completes. Its Loc-RIB not growing while it uses no CPU for STALL means
    // that; so does not being done within FEED_TIMEOUT.
    const STALL: Duration = Duration::from_secs(5);
    let limit = env_usize("FEED_TIMEOUT", 300) as f64;
    let mut held = 0usize;
    let mut mark = (std::time::Instant::now(), cpu_ticks(daemon.pid));
    let complete = loop {
        daemon.check_running();
        let loc = daemon.metric("bgp_rib_loc_prefixes{afi_safi=\"all\"}");
        let now = loc.map_or(0, |n| n as usize);
        if now >= prefixes {
            held = now;
            break true;
        }
        let ticks = cpu_ticks(daemon.pid);
        if now != held || ticks > mark.1 + 10 {
            held = now;
            mark = (std::time::Instant::now(), ticks);
        } else if mark.0.elapsed() > STALL {
            eprintln!(
                "rustbgpd 0.8.0 holds {held} of {prefixes} prefixes and has taken none in, \
                 idle, for {STALL:?}: it dropped the others (its RIB queue was full); shown as \
                 never done"
            );
            break false;
        }
        if since(start) > limit {
            eprintln!(
                "rustbgpd 0.8.0 holds {held} of {prefixes} prefixes after {limit} s \
                 (FEED_TIMEOUT); shown as never done"
            );
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = if complete {
        since(start)
    } else {
        f64::INFINITY
    };
    let rss_after = rss_kib(daemon.pid);
    daemon.stop();
    Row {
        name: if complete {
            "rustbgpd 0.8.0".into()
        } else {
            "rustbgpd 0.8.0 (incomplete)".into()
        },
        prefixes: held,
        seconds,
        rss_delta_kib: rss_after.saturating_sub(rss_before),
    }
}

fn speaker_receiver(
    ns: &Netns,
    family: Family,
    prefixes: usize,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Row {
    let runtime = common::runtime();
    runtime.block_on(async {
        let speaker = Speaker::with_sockets(sockets_in(ns.path())).unwrap();
        let me = std::process::id();
        let (rss_before, heap_before) = (rss_kib(me), heap_in_use());
        speaker
            .configure(&BgpSettings {
                local_as: AsNumber(RECEIVER_AS),
                router_id: RECEIVER.parse().unwrap(),
                listen_port: 179,
                cluster_id: None,
                peers: [PeerConfig {
                    address: family.feeder(),
                    remote_as: AsNumber(FEEDER_AS),
                    password: None,
                    hold_time: 90,
                    passive: false,
                    route_reflector_client: false,
                    bfd: None,
                    add_path: Default::default(),
                    session: Default::default(),
                }]
                .into(),
                policy: Default::default(),
            })
            .await
            .unwrap();
        let start = tokio::task::block_in_place(|| feed_started(lines));
        loop {
            let s = speaker.peer_status().await.unwrap();
            if s[0].prefixes_received >= prefixes {
                break;
            }
            assert!(
                since(start) < 120.0,
                "speaker did not receive the table: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seconds = since(start);
        let (rss_after, heap_after) = (rss_kib(me), heap_in_use());
        // Resident memory also counts what the allocator holds free; the heap in use is
        // what the speaker keeps (`rib_memory` breaks the RIB's share down).
        eprintln!(
            "calico-bgp Speaker: heap in use grew by {:.0} bytes/prefix",
            heap_after.saturating_sub(heap_before) as f64 / prefixes as f64
        );
        assert_eq!(speaker.learned_routes().await.unwrap().len(), prefixes);
        Row {
            name: "calico-bgp Speaker".into(),
            prefixes,
            seconds,
            rss_delta_kib: rss_after.saturating_sub(rss_before),
        }
    })
}

/// Bytes allocated and in use on the heap (glibc's arenas and its mmapped chunks).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 has no preconditions; it only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let family = Family::from_env();
    let default_size = match family {
        Family::V4 => 1_000_000,
        Family::V6 => 500_000,
    };
    let prefixes = env_usize("FEED_PREFIXES", default_size);
    let per_path = env_usize("FEED_PER_PATH", 4);
    if args.iter().any(|a| a == "--feeder") {
        return feeder(family, prefixes, per_path);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("feed benchmark: skipped: needs root (network namespaces, BIRD)");
        return;
    }
    let feeder_ns = Netns::create("feedf").unwrap();
    let receiver_ns = Netns::create("feedr").unwrap();
    veth(&feeder_ns, "eth0", &receiver_ns, "eth0").unwrap();
    feeder_ns
        .run(&["ip", "addr", "add", &format!("{FEEDER}/24"), "dev", "eth0"])
        .unwrap();
    // No duplicate address detection: the addresses are usable at once.
    for (ns, addr) in [(&feeder_ns, FEEDER6), (&receiver_ns, RECEIVER6)] {
        ns.run(&[
            "ip",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    }
    receiver_ns
        .run(&[
            "ip",
            "addr",
            "add",
            &format!("{RECEIVER}/24"),
            "dev",
            "eth0",
        ])
        .unwrap();
    let (mut child, mut lines) = spawn_self(
        &feeder_ns,
        "--feeder",
        &[
            ("FEED_PREFIXES", prefixes.to_string()),
            ("FEED_PER_PATH", per_path.to_string()),
            ("FEED_FAMILY", family.name().to_lowercase()),
        ],
    );

    let mut rows = vec![bird_receiver(
        &BirdBuild::Debian,
        &receiver_ns,
        family,
        prefixes,
        &mut lines,
    )];
    if let Some(b3) = bird3() {
        rows.push(bird_receiver(
            &b3,
            &receiver_ns,
            family,
            prefixes,
            &mut lines,
        ));
    }
    if let Some(program) = rustbgpd() {
        rows.push(rustbgpd_receiver(
            &program,
            &receiver_ns,
            family,
            prefixes,
            &mut lines,
        ));
    }

    rows.push(speaker_receiver(&receiver_ns, family, prefixes, &mut lines));
    let _ = child.kill();
    let _ = child.wait();

    println!();
    println!(
        "full-table feed over eBGP, {prefixes} {} prefixes, {per_path} prefixes per AS path",
        family.name()
    );
    println!(
        "{:<28} {:>10} {:>12} {:>10} {:>14} {:>14} {:>12} {:>10}",
        "receiver",
        "prefixes",
        "seconds",
        "vs best",
        "prefixes/s",
        "RSS delta MiB",
        "bytes/prefix",
        "vs best"
    );
    let per_prefix = |r: &Row| r.rss_delta_kib as f64 * 1024.0 / r.prefixes as f64;
    // Baselines that took the whole table in.
    let birds = || {
        rows.iter()
            .filter(|r| !r.name.contains("calico-bgp") && r.seconds.is_finite())
    };
    let best_time = birds().map(|r| r.seconds).min_by(f64::total_cmp);
    let best_memory = birds().map(per_prefix).min_by(f64::total_cmp);
    let ratio = |x: f64, best: Option<f64>| best.map_or("-".into(), |b| format!("{:.2}", x / b));
    for r in &rows {
        println!(
            "{:<28} {:>10} {:>12.3} {:>10} {:>14.0} {:>14.1} {:>12.0} {:>10}",
            r.name,
            r.prefixes,
            r.seconds,
            ratio(r.seconds, best_time),
            r.prefixes as f64 / r.seconds,
            r.rss_delta_kib as f64 / 1024.0,
            per_prefix(r),
            ratio(per_prefix(r), best_memory)
        );
    }
    let ours = rows.iter().find(|r| r.name.contains("calico-bgp"));
    if let (Some(ours), Some(best)) = (ours, best_time) {
        println!(
            "ours: {:.2}x the fastest baseline's time (issue 19's goal: at most 0.5x); {:.0} \
             bytes/prefix (goal: at most 140)",
            ours.seconds / best,
            per_prefix(ours)
        );
    }
}
