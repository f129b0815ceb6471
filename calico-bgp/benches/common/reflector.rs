//! A route reflector under test and its clients, shared by the reflect and churn benches:
//! one namespace with the reflector's and the clients' addresses on `lo`, the reflector
//! (our [`Speaker`] in a process of its own, a BIRD, or rustbgpd), and light clients that
//! open an iBGP session with it and read UPDATEs without a BGP implementation behind them.
//!
//! Everything lives on addresses of the loopback interface of one namespace: the reflector
//! on 10.200.0.1, client i on 10.201.x.y (not 127/8: rustbgpd refuses a loopback NEXT_HOP,
//! RFC 4271 §6.3). Sessions are iBGP (AS 64512) with hold time 0 (no keepalives); the
//! reflector waits passively, the clients connect. Every client is a route-reflector client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use calico_bgp::packet::update::pack_announcements;
use calico_bgp::packet::PathAttributes;
use calico_bgp::packet::{AfiSafi, AsPath, Capability, Context, Message, Open, Origin};
use calico_bgp::speaker::socket::SocketFactory;
use calico_bgp::speaker::{Speaker, SpeakerOptions};
use calico_core::dataplane::{BgpBackend, BgpSettings, PeerConfig, RoutePolicy};
use calico_core::model::AsNumber;
use calico_netns::fixtures::Netns;
use ipnet::{IpNet, Ipv4Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{env_usize, sockets_in, spawn_self, BenchBird, BenchRustbgpd, BirdBuild};

pub const AS: u32 = 64512;
pub const REFLECTOR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const CLUSTER: &str = "10.255.0.1";
/// First prefix: 16.0.0.0/24; prefix n is 16.0.0.0 + n * 256.
pub const BASE: u32 = 16 << 24;

/// The argument that makes a bench binary our reflector process (see [`serve_if_asked`]).
const ROLE: &str = "--reflector";
/// How many peers that process configures.
const PEERS_ENV: &str = "BENCH_REFLECTOR_PEERS";

pub fn client_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// A fresh namespace with the reflector's and `clients` clients' addresses on `lo`.
pub fn namespace(clients: usize) -> Netns {
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

/// When this bench binary was started as our reflector ([`start_ours`] does that): serves
/// until killed. Returns `false` at once otherwise.
pub fn serve_if_asked() -> bool {
    if !std::env::args().any(|a| a == ROLE) {
        return false;
    }
    our_reflector(env_usize(PEERS_ENV, 0));
    true
}

/// Our reflector process: started inside the namespace, prints "ready" once it listens,
/// then serves until killed.
fn our_reflector(clients: usize) {
    let runtime = super::runtime();
    runtime.block_on(async {
        let speaker = Speaker::with_options(SpeakerOptions {
            listen_address: IpAddr::V4(REFLECTOR),
            ..SpeakerOptions::default()
        })
        .unwrap();
        speaker
            .configure(&settings(clients, RoutePolicy::default()))
            .await
            .unwrap();
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// Our reflector's settings: `clients` passive route-reflector clients, under `policy`.
pub fn settings(clients: usize, policy: RoutePolicy) -> BgpSettings {
    BgpSettings {
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
        policy,
    }
}

/// BIRD's configuration as the reflector of `clients` clients: `extra` (such as filter
/// definitions) before the clients' template, whose channel exports through `export`
/// (`all`, `filter name`).
pub fn bird_config(clients: usize, extra: &str, export: &str) -> String {
    let mut c = format!(
        "router id {REFLECTOR};\nprotocol device {{}}\n{extra}\
         template bgp rrc {{\n  local {REFLECTOR} as {AS};\n  strict bind;\n  passive on;\n  rr client;\n  rr cluster id {CLUSTER};\n  ipv4 {{ import all; export {export}; }};\n}}\n"
    );
    for i in 0..clients {
        c.push_str(&format!(
            "protocol bgp c{i} from rrc {{ neighbor {} as {AS}; }}\n",
            client_address(i)
        ));
    }
    c
}

/// A reflector under test: its pid and how to stop it.
pub struct Reflector {
    pub name: String,
    pub pid: u32,
    pub stop: Box<dyn FnOnce()>,
}

/// Which reflector runs.
pub enum Kind {
    /// Our [`Speaker`], in a process of its own.
    Ours,
    /// A BIRD: Debian's BIRD 2 or a BIRD 3 build.
    Bird(BirdBuild),
    /// rustbgpd, this program.
    Rustbgpd(PathBuf),
}

/// The reflectors to run, in this order: ours, BIRD 2, BIRD 3, rustbgpd; those that `only`
/// names (`ours`, `bird`, `bird3` or `rustbgpd`; empty: all) and that can be had (BIRD 3
/// and rustbgpd are built when missing, see [`super::bird3`] and [`super::rustbgpd`]).
pub fn reflectors(only: &str) -> Vec<Kind> {
    let wanted = |kind: &str| only.is_empty() || only == kind;
    let mut out = Vec::new();
    if wanted("ours") {
        out.push(Kind::Ours);
    }
    if wanted("bird") {
        out.push(Kind::Bird(BirdBuild::Debian));
    }
    if wanted("bird3") {
        out.extend(super::bird3().map(Kind::Bird));
    }
    if wanted("rustbgpd") {
        out.extend(super::rustbgpd().map(Kind::Rustbgpd));
    }
    out
}

impl Kind {
    /// Starts this reflector in `ns` for `clients` clients.
    pub fn start(&self, ns: &Netns, clients: usize) -> Reflector {
        match self {
            Kind::Ours => start_ours(ns, clients),
            Kind::Bird(build) => start_bird(build, ns, clients),
            Kind::Rustbgpd(program) => start_rustbgpd(program, ns, clients),
        }
    }
}

fn start_ours(ns: &Netns, clients: usize) -> Reflector {
    let (mut child, _) = spawn_self(ns, ROLE, &[(PEERS_ENV, clients.to_string())]);
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
    let c = bird_config(clients, "", "all");
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
fn start_rustbgpd(program: &Path, ns: &Netns, clients: usize) -> Reflector {
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

/// Client `i`'s session with the reflector in namespace `ns`, up to the exchange of OPENs
/// and KEEPALIVEs.
pub async fn open_session(ns: String, i: usize) -> tokio::net::TcpStream {
    let me = client_address(i);
    let sockets = SocketFactory::new(sockets_in(ns)).with_source(IpAddr::V4(me));
    let remote = SocketAddr::from((REFLECTOR, 179));
    // Connections 5 ms apart: with 201 at once, rustbgpd 0.8.0 left some of its dynamic
    // sessions half-open (the client's OPEN read, never Established).
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
    stream
}

/// Prefix number `n`: the /24 at [`BASE`] + n * 256.
pub fn prefix(n: usize) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(BASE + ((n as u32) << 8)), 24).unwrap())
}

/// `prefixes` announced by client `from` as UPDATE bytes (iBGP: empty AS_PATH, LOCAL_PREF
/// 100, the client as next hop).
pub fn announcements(prefixes: &[IpNet], from: usize) -> Vec<u8> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(client_address(from)),
        local_pref: Some(100),
        ..PathAttributes::default()
    };
    let mut bytes = Vec::new();
    for u in pack_announcements(&attrs, None, prefixes).unwrap() {
        Message::Update(u)
            .encode_into(&Context::plain(true), &mut bytes)
            .unwrap();
    }
    bytes
}

/// Reads one message: (type, body).
pub async fn read_message(
    stream: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 19];
    stream.read_exact(&mut header).await?;
    let len = u16::from_be_bytes([header[16], header[17]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(19)];
    stream.read_exact(&mut body).await?;
    Ok((header[18], body))
}

/// A prefix of an UPDATE as the benches number them: `Some(n)` for the /24 at
/// [`BASE`] + n * 256 (n below `total`), `None` for any other.
fn prefix_index(bytes: &[u8], len: u8, total: usize) -> Option<usize> {
    if len != 24 || bytes.len() < 3 {
        return None;
    }
    let addr = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], 0]);
    let n = addr.checked_sub(BASE)? >> 8;
    ((n as usize) < total).then_some(n as usize)
}

/// A prefix of an UPDATE, by its number ([`prefix_index`]).
pub enum Nlri {
    Withdrawn(Option<usize>),
    /// With the message's NEXT_HOP.
    Announced(Option<usize>, Option<Ipv4Addr>),
}

/// Walks an UPDATE body (IPv4, no ADD-PATH): calls `f` with each withdrawn prefix, then
/// each announced one, numbered among `total`.
pub fn walk_update(body: &[u8], total: usize, mut f: impl FnMut(Nlri)) {
    let nlri = |part: &[u8], f: &mut dyn FnMut(Option<usize>)| {
        let mut at = 0;
        while at < part.len() {
            let len = part[at];
            let n = usize::from(len).div_ceil(8);
            f(prefix_index(&part[at + 1..at + 1 + n], len, total));
            at += 1 + n;
        }
    };
    let wlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let alen = u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]) as usize;
    let attrs = &body[4 + wlen..4 + wlen + alen];
    nlri(&body[2..2 + wlen], &mut |p| f(Nlri::Withdrawn(p)));
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
    nlri(&body[4 + wlen + alen..], &mut |p| {
        f(Nlri::Announced(p, next_hop))
    });
}
