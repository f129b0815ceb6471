//! The FRR driver ([`calico_bgp::frr::FrrBgp`]) on a real FRR (zebra, bfdd, bgpd started by
//! the driver in a test namespace) peering with our native speaker: iBGP and eBGP over IPv4
//! and IPv6, exports and withdrawals both ways, reloads that keep unchanged sessions up,
//! route reflection and ECMP, TCP MD5, BFD, and graceful restart.

mod speaker_support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use calico_bgp::frr::{FrrBgp, FrrConfig};
use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{
    BfdConfig, BgpBackend, LearnedRoute, NextHopMode, PeerConfig, PeerState, PeerStatus,
};
use calico_netns::fixtures::{privileged, Netns};
use ipnet::IpNet;
use speaker_support::*;

const HOLD: u16 = 9;

/// The directory of the FRR driver of test `name`.
fn dir_of(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("calico-frr-{name}-{}", std::process::id()))
}

/// What `vtysh` says of the FRR of test `name` to `command`.
fn vtysh(name: &str, command: &str) -> String {
    let out = std::process::Command::new("vtysh")
        .arg("--vty_socket")
        .arg(dir_of(name))
        .args(["-c", command])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The configuration of an FRR driver in `ns`, polled often, on the directory of test `name`.
fn config_in(ns: &Netns, name: &str) -> FrrConfig {
    let mut c = FrrConfig::new(dir_of(name));
    c.netns = Some(ns.path().into());
    c.poll = Duration::from_millis(200);
    c
}

/// An FRR driver in `ns` on a fresh directory.
fn frr_in(ns: &Netns, name: &str) -> FrrBgp {
    let _ = std::fs::remove_dir_all(dir_of(name));
    FrrBgp::new(config_in(ns, name)).unwrap()
}

/// Waits (at most `secs`) until `check` holds for the backend's routes and peers.
async fn wait_for(
    bgp: &dyn BgpBackend,
    secs: u64,
    what: &str,
    check: impl Fn(&[LearnedRoute], &[PeerStatus]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (routes, peers) = (
            bgp.learned_routes().await.unwrap(),
            bgp.peer_status().await.unwrap(),
        );
        if check(&routes, &peers) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: routes {routes:?}, peers {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all_up(peers: &[PeerStatus], n: usize) -> bool {
    peers.len() == n && peers.iter().all(|p| p.state == PeerState::Established)
}

fn hops(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn nets(routes: &[LearnedRoute]) -> BTreeSet<IpNet> {
    routes.iter().map(|r| r.prefix).collect()
}

/// FRR in A (AS 64512) and our speaker in B (AS `asn_b`) over IPv4 and IPv6.
async fn pair(name: &str, asn_b: u32) {
    let link = Link::new(name);
    let _ = std::fs::remove_dir_all(dir_of(name));
    let mut config = config_in(&link.a, name);
    config.stop_on_drop = false;
    let frr = FrrBgp::new(config).unwrap();
    let speaker = speaker_at(&link.b, "::");
    let frr_settings = settings(
        64512,
        A4,
        vec![peer(B4, asn_b, HOLD), peer(B6, asn_b, HOLD)],
    );
    frr.configure(&frr_settings).await.unwrap();
    frr.set_exports(&prefixes(&["10.65.0.0/26", "fd00:65::/122"]))
        .await
        .unwrap();
    let b = settings(
        asn_b,
        B4,
        vec![peer(A4, 64512, HOLD), peer(A6, 64512, HOLD)],
    );
    speaker.configure(&b).await.unwrap();
    speaker
        .set_exports(&prefixes(&["10.65.1.0/26", "fd00:65:1::/122"]))
        .await
        .unwrap();

    wait_for(&frr, 20, "B's exports learned by FRR", |r, p| {
        all_up(p, 2) && via(r, "10.65.1.0/26", B4) && via(r, "fd00:65:1::/122", B6)
    })
    .await;
    wait_routes(&speaker, 10, "FRR's exports learned by B", |r| {
        via(r, "10.65.0.0/26", A4) && via(r, "fd00:65::/122", A6) && r.len() == 2
    })
    .await;
    let peers = frr.peer_status().await.unwrap();
    for p in &peers {
        assert!(p.end_of_rib_received, "{p:?}");
        assert_eq!(p.prefixes_received, 1, "{p:?}");
        assert_eq!(p.counters.prefixes_advertised, Some(1), "{p:?}");
        assert!(p.counters.updates_received.unwrap() >= 1, "{p:?}");
        assert!(p.counters.established_since.is_some(), "{p:?}");
        assert!(p.counters.flaps.is_some(), "{p:?}");
    }

    // A withdrawal by reload: the route goes, the sessions stay.
    frr.set_exports(&prefixes(&["fd00:65::/122"]))
        .await
        .unwrap();
    wait_routes(&speaker, 10, "the withdrawal reaches B", |r| {
        nets(r) == prefixes(&["fd00:65::/122"])
    })
    .await;
    let running = vtysh(name, "show running-config");
    assert!(
        !running.contains("10.65.0.0/26"),
        "network and prefix-list entry gone:\n{running}"
    );
    assert!(running.contains("fd00:65::/122"), "{running}");
    let after = frr.peer_status().await.unwrap();
    assert!(all_up(&after, 2), "{after:?}");
    assert_kept(&after, &peers);

    // The agent restarts, FRR keeps running: a new driver adopts it, the sessions stay.
    drop(frr);
    let frr = FrrBgp::new(config_in(&link.a, name)).unwrap();
    frr.configure(&frr_settings).await.unwrap();
    frr.set_exports(&prefixes(&["fd00:65::/122"]))
        .await
        .unwrap();
    assert_kept(&frr.peer_status().await.unwrap(), &peers);
    assert_eq!(nets(&frr.learned_routes().await.unwrap()).len(), 2);

    // A removed peering goes from FRR's running configuration.
    frr.configure(&settings(64512, A4, vec![peer(B4, asn_b, HOLD)]))
        .await
        .unwrap();
    wait_for(&frr, 10, "only the IPv4 peering left", |r, p| {
        all_up(p, 1) && p[0].address.is_ipv4() && nets(r) == prefixes(&["10.65.1.0/26"])
    })
    .await;
    drop(link); // and the daemons in it
    let _ = std::fs::remove_dir_all(dir_of(name));
}

/// Every session of `before` is still up in `after`, never dropped in between.
fn assert_kept(after: &[PeerStatus], before: &[PeerStatus]) {
    assert!(all_up(after, before.len()), "{after:?}");
    for (a, b) in after.iter().zip(before) {
        // FRR derives the epoch from the uptime: it may move by a second.
        let (a_since, b_since) = (a.counters.established_since, b.counters.established_since);
        let moved = a_since
            .unwrap()
            .duration_since(b_since.unwrap())
            .unwrap_or_default();
        assert!(moved <= Duration::from_secs(1), "session kept: {a:?}");
        assert_eq!(a.counters.flaps, b.counters.flaps, "session kept: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibgp_between_frr_and_our_speaker() {
    if !privileged("ibgp_between_frr_and_our_speaker") {
        return;
    }
    pair("fri", 64512).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_between_frr_and_our_speaker() {
    if !privileged("ebgp_between_frr_and_our_speaker") {
        return;
    }
    pair("fre", 64513).await;
}

/// FRR reflects for two of our speakers, which both announce one anycast prefix: FRR uses
/// both paths (ECMP), and each client learns the other's own prefix with the other as next
/// hop (the reflector does not put itself in the path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_reflects_between_clients_and_uses_both_paths() {
    if !privileged("frr_reflects_between_clients_and_uses_both_paths") {
        return;
    }
    let lan = Lan::new("frrr", 3);
    let frr = frr_in(&lan.hosts[0], "rr");
    let mut rr = settings(64512, &Lan::address(1), vec![]);
    rr.cluster_id = Some("1.1.1.1".parse().unwrap());
    for i in [2, 3] {
        let mut p = peer(&Lan::address(i), 64512, HOLD);
        p.route_reflector_client = true;
        rr.peers.insert(p);
    }
    frr.configure(&rr).await.unwrap();
    let mut clients = Vec::new();
    for i in [2, 3] {
        let s = speaker_at(&lan.hosts[i - 1], &Lan::address(i));
        let me = settings(
            64512,
            &Lan::address(i),
            vec![peer(&Lan::address(1), 64512, HOLD)],
        );
        s.configure(&me).await.unwrap();
        let own = format!("10.65.{i}.0/26");
        s.set_exports(&prefixes(&["10.70.0.0/24", &own]))
            .await
            .unwrap();
        clients.push(s);
    }
    wait_for(&frr, 20, "both paths of the anycast prefix", |r, p| {
        all_up(p, 2)
            && route(r, "10.70.0.0/24")
                .is_some_and(|r| r.next_hops == hops(&[&Lan::address(2), &Lan::address(3)]))
    })
    .await;
    for (me, other) in [(0, 3), (1, 2)] {
        let (prefix, hop) = (format!("10.65.{other}.0/26"), Lan::address(other));
        wait_routes(&clients[me], 10, "the other client's prefix", |r| {
            via(r, &prefix, &hop)
        })
        .await;
    }
    // No longer a reflector: the clients' routes stay with FRR.
    rr.cluster_id = None;
    rr.peers = rr
        .peers
        .into_iter()
        .map(|mut p| {
            p.route_reflector_client = false;
            p
        })
        .collect();
    frr.configure(&rr).await.unwrap();
    wait_routes(&clients[0], 20, "reflected routes withdrawn", |r| {
        route(r, "10.65.3.0/26").is_none()
    })
    .await;
    drop(frr);
    let _ = std::fs::remove_dir_all(dir_of("rr"));
}

/// eBGP multipath across neighbor ASes: the same prefix from our speaker (AS 64513) and from
/// a second, hand-configured FRR (AS 64514) is used through both (Calico's fabrics announce
/// one prefix from several ASes; FRR alone would take one path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_uses_both_paths_from_two_neighbor_ases() {
    if !privileged("frr_uses_both_paths_from_two_neighbor_ases") {
        return;
    }
    let lan = Lan::new("frx", 3);
    let frr = frr_in(&lan.hosts[0], "ecmp");
    let (a, b, c) = (Lan::address(1), Lan::address(2), Lan::address(3));
    let peers = vec![peer(&b, 64513, HOLD), peer(&c, 64514, HOLD)];
    frr.configure(&settings(64512, &a, peers)).await.unwrap();
    let speaker = speaker_at(&lan.hosts[1], &b);
    let ours = settings(64513, &b, vec![peer(&a, 64512, HOLD)]);
    speaker.configure(&ours).await.unwrap();
    speaker
        .set_exports(&prefixes(&["10.71.0.0/24"]))
        .await
        .unwrap();
    let conf = format!(
        "frr defaults traditional\nrouter bgp 64514\n bgp router-id {c}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n \
         neighbor {a} remote-as 64512\n neighbor {a} timers 3 {HOLD}\n \
         address-family ipv4 unicast\n  network 10.71.0.0/24\n exit-address-family\nexit\n"
    );
    let _other = speaker_support::frr::Frr::start(&lan.hosts[2], &conf);
    wait_for(&frr, 20, "both ASes' paths", |r, p| {
        all_up(p, 2) && route(r, "10.71.0.0/24").is_some_and(|r| r.next_hops == hops(&[&b, &c]))
    })
    .await;
    drop(frr);
    let _ = std::fs::remove_dir_all(dir_of("ecmp"));
}

/// The daemons' pid, from the pid file FRR writes in the driver's directory.
fn pid_of(dir: &Path, daemon: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{daemon}.pid")))
        .unwrap()
        .trim()
        .to_string()
}

/// MD5: a wrong password never establishes, the right one does; BFD runs with the timers
/// asked for; FRR, killed, is a restarting speaker our speaker keeps the routes of
/// (graceful restart, RFC 4724), which it would drop at once without it; and the driver
/// starts FRR again at the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_md5_bfd_and_graceful_restart() {
    if !privileged("frr_md5_bfd_and_graceful_restart") {
        return;
    }
    let link = Link::new("frm");
    let frr = frr_in(&link.a, "md5");
    let bfd = BfdConfig {
        min_tx: Duration::from_millis(200),
        min_rx: Duration::from_millis(250),
        multiplier: 4,
        authentication: None,
    };
    let mut p = peer(B4, 64512, HOLD);
    p.password = Some("right#1".into());
    p.bfd = Some(bfd.clone());
    frr.configure(&settings(64512, A4, vec![p])).await.unwrap();
    frr.set_exports(&prefixes(&["10.65.0.0/26"])).await.unwrap();
    let speaker = speaker_at(&link.b, B4);
    let with = |password: &str| {
        let mut q = peer(A4, 64512, HOLD);
        q.password = Some(password.into());
        q.bfd = Some(bfd.clone());
        settings(64512, B4, vec![q])
    };
    speaker.configure(&with("wrong")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let peers = frr.peer_status().await.unwrap();
    assert!(
        peers.iter().all(|p| p.state != PeerState::Established),
        "{peers:?}"
    );
    speaker.configure(&with("right#1")).await.unwrap();
    wait_routes(&speaker, 20, "FRR's route with the right password", |r| {
        via(r, "10.65.0.0/26", A4)
    })
    .await;
    let dir = dir_of("md5");
    let bfd_peer = || vtysh("md5", "show bfd peers json");
    // bgpd hands the session to bfdd through zebra; on a loaded machine (the whole suite in
    // parallel) that has taken more than 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !bfd_peer().contains("\"status\":\"up\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n{}",
            bfd_peer(),
            vtysh("md5", "show bgp neighbors")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = bfd_peer();
    for want in [
        "\"detect-multiplier\":4",
        "\"receive-interval\":250",
        "\"transmit-interval\":200",
    ] {
        assert!(shown.contains(want), "{want} in {shown}");
    }

    // bgpd dies without a word: our speaker keeps FRR's route as stale.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid_of(&dir, "bgpd")])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while speaker.peer_status().await.unwrap()[0].state == PeerState::Established {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never went down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let routes = speaker.learned_routes().await.unwrap();
    assert!(
        via(&routes, "10.65.0.0/26", A4),
        "FRR restarting: its route kept, {routes:?}"
    );
    // The next change starts FRR anew (zebra and bfdd of the old start stopped first), and
    // the session and the route come back.
    frr.set_exports(&prefixes(&["10.65.0.0/26", "10.65.5.0/26"]))
        .await
        .unwrap();
    wait_routes(&speaker, 20, "FRR back with both routes", |r| {
        via(r, "10.65.0.0/26", A4) && via(r, "10.65.5.0/26", A4)
    })
    .await;
    drop(frr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The FRR driver exporting through a `BGPFilter` (and communities) to our speaker, and
/// importing through one from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_applies_bgp_filters_both_ways() {
    if !privileged("frr_applies_bgp_filters_both_ways") {
        return;
    }
    let name = "fpol";
    let link = Link::new(name);
    let frr = frr_in(&link.a, name);
    let speaker = speaker_at(&link.b, "::");
    let policy = "
kind: BgpConfiguration
name: default
prefixAdvertisements: [{cidr: 10.65.0.0/16, communities: ['65001:100', '65001:7:8']}]
---
kind: BgpFilter
name: edge
exportV4: [{action: Reject, matchOperator: Equal, cidr: 10.65.2.0/26}]
importV4: [{action: Reject, matchOperator: In, cidr: 10.66.2.0/24, prefixLength: {min: 25}}]
";
    let plain = settings(64512, A4, vec![peer(B4, 65002, HOLD)]);
    frr.configure(&with_policy(plain.clone(), policy))
        .await
        .unwrap();
    frr.set_exports(&prefixes(&["10.65.1.0/26", "10.65.2.0/26"]))
        .await
        .unwrap();
    speaker
        .configure(&settings(65002, B4, vec![peer(A4, 64512, HOLD)]))
        .await
        .unwrap();
    speaker
        .set_exports(&prefixes(&["10.66.1.0/26", "10.66.2.0/26"]))
        .await
        .unwrap();

    wait_for(&frr, 20, "the unfiltered import", |r, p| {
        all_up(p, 1) && via(r, "10.66.1.0/26", B4)
    })
    .await;
    wait_routes(&speaker, 10, "the unfiltered export", |r| {
        via(r, "10.65.1.0/26", A4)
    })
    .await;
    let (ours, theirs) = (
        speaker.learned_routes().await.unwrap(),
        frr.learned_routes().await.unwrap(),
    );
    assert_eq!(nets(&ours), prefixes(&["10.65.1.0/26"]), "export filter");
    assert_eq!(nets(&theirs), prefixes(&["10.66.1.0/26"]), "import filter");
    let sent = vtysh(
        name,
        "show bgp ipv4 unicast neighbors 10.99.0.2 advertised-routes json",
    );
    assert!(!sent.contains("10.65.2.0/26"), "{sent}");

    // The filter removed by a reload: FRR re-evaluates, both routes pass, and the policy
    // route-maps are gone from FRR's running configuration.
    frr.configure(&plain).await.unwrap();
    wait_routes(&speaker, 15, "both exports", |r| r.len() == 2).await;
    wait_for(&frr, 15, "both imports", |r, _| r.len() == 2).await;
    let running = vtysh(name, "show running-config");
    assert!(!running.contains("CALICO-P-"), "{running}");
    drop(link);
    let _ = std::fs::remove_dir_all(dir_of(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_ttl_security_and_keepalive_from_the_session_options() {
    if !privileged("frr_ttl_security_and_keepalive_from_the_session_options") {
        return;
    }
    let name = "fgtsm";
    let link = Link::new(name);
    let frr = frr_in(&link.a, name);
    let mut to_b = peer(B4, 64512, HOLD);
    to_b.session.ttl_security = Some(1);
    to_b.session.keepalive_time = Some(1);
    frr.configure(&settings(64512, A4, vec![to_b]))
        .await
        .unwrap();
    let running = vtysh(name, "show running-config");
    assert!(
        running.contains(&format!("neighbor {B4} ttl-security hops 1"))
            && running.contains(&format!("neighbor {B4} timers 1 {HOLD}")),
        "{running}"
    );
    // Our speaker with GTSM too: up.
    let speaker = Speaker::with_sockets(sockets_in(link.b.path())).unwrap();
    let mut to_a = peer(A4, 64512, HOLD);
    to_a.session.ttl_security = Some(1);
    speaker
        .configure(&settings(64512, B4, vec![to_a]))
        .await
        .unwrap();
    wait_for(&frr, 20, "the GTSM session", |_, p| all_up(p, 1)).await;
    // Without it our TTL-64 packets are dropped by bgpd's socket: never up again.
    speaker
        .configure(&settings(64512, B4, vec![peer(A4, 64512, HOLD)]))
        .await
        .unwrap();
    wait_for(&frr, 10, "the GTSM session gone", |_, p| !all_up(p, 1)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let peers = frr.peer_status().await.unwrap();
        assert!(
            !all_up(&peers, 1),
            "TTL-64 packets passed FRR's GTSM: {peers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ports bgpd listens on in `ns` (from `ss`).
fn listening(ns: &Netns) -> BTreeSet<u16> {
    let out = ns.run(&["ss", "-Hltn"]).unwrap();
    out.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(3)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// A new `listenPort` restarts bgpd on it (bgpd takes its port at start); the session comes
/// back, and a second driver on the same directory adopts the running FRR with its port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_moves_to_a_new_listen_port() {
    if !privileged("frr_moves_to_a_new_listen_port") {
        return;
    }
    let name = "fport";
    let link = Link::new(name);
    let _ = std::fs::remove_dir_all(dir_of(name));
    let mut config = config_in(&link.a, name);
    config.stop_on_drop = false;
    let frr = FrrBgp::new(config).unwrap();
    let mut s = settings(64512, A4, vec![peer(B4, 64512, HOLD)]);
    frr.configure(&s).await.unwrap();
    let speaker = speaker_at(&link.b, B4);
    speaker
        .configure(&settings(64512, B4, vec![peer(A4, 64512, HOLD)]))
        .await
        .unwrap();
    wait_for(&frr, 20, "the session on port 179", |_, p| all_up(p, 1)).await;
    assert!(listening(&link.a).contains(&179));
    let before = pid_of(&dir_of(name), "bgpd");

    s.listen_port = 1179;
    frr.configure(&s).await.unwrap();
    let ports = listening(&link.a);
    assert!(ports.contains(&1179) && !ports.contains(&179), "{ports:?}");
    assert_ne!(pid_of(&dir_of(name), "bgpd"), before, "a new bgpd");
    // bgpd connects out to our speaker's port 179: the session is back.
    wait_for(&frr, 20, "the session after the move", |_, p| all_up(p, 1)).await;

    // Adopted by a new driver: the running port is known, so an unchanged one reloads
    // (same bgpd) and a changed one restarts.
    drop(frr);
    let adopter = FrrBgp::new(config_in(&link.a, name)).unwrap();
    let running = pid_of(&dir_of(name), "bgpd");
    adopter.configure(&s).await.unwrap();
    assert_eq!(
        pid_of(&dir_of(name), "bgpd"),
        running,
        "reloaded, not restarted"
    );
    s.listen_port = 179;
    adopter.configure(&s).await.unwrap();
    assert!(listening(&link.a).contains(&179));
    assert_ne!(pid_of(&dir_of(name), "bgpd"), running);
    drop(adopter);
    drop(link); // and the daemons in it
    let _ = std::fs::remove_dir_all(dir_of(name));
}

/// `numAllowedLocalASNumbers` and `nextHopMode` as FRR applies them, with our speakers on
/// one LAN: host 2 (AS 65001) passes FRR the prefix of host 3, which is in FRR's own AS
/// 64512, and FRR (a reflector, so that it passes learned routes on) passes host 2's prefix
/// on to host 4 (AS 65004).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_allowas_in_and_next_hop_modes() {
    if !privileged("frr_allowas_in_and_next_hop_modes") {
        return;
    }
    let name = "fnh";
    let lan = Lan::new(name, 4);
    let a = Lan::address;
    let frr = frr_in(&lan.hosts[0], name);
    let frr_settings = |allow: u8, mode: NextHopMode| {
        let mut to2 = peer(&a(2), 65001, HOLD);
        to2.session.allow_local_as = allow;
        let mut to4 = peer(&a(4), 65004, HOLD);
        to4.session.next_hop_mode = mode;
        let mut s = settings(64512, &a(1), vec![to2, to4]);
        // A reflector, so that the driver's export maps pass learned routes on at all.
        s.cluster_id = Some("1.1.1.1".parse().unwrap());
        s
    };
    frr.configure(&frr_settings(0, NextHopMode::Keep))
        .await
        .unwrap();
    let hosts = &lan.hosts;
    let speaker = |i: usize, asn: u32, peers: Vec<PeerConfig>| async move {
        let s = speaker_at(&hosts[i - 1], &a(i));
        s.configure(&settings(asn, &a(i), peers)).await.unwrap();
        s.set_exports(&prefixes(&[&format!("10.65.{i}.0/26")]))
            .await
            .unwrap();
        s
    };
    let to_frr = || peer(&a(1), 64512, HOLD);
    let s2 = speaker(2, 65001, vec![to_frr(), peer(&a(3), 64512, HOLD)]).await;
    let _s3 = speaker(3, 64512, vec![peer(&a(2), 65001, HOLD)]).await;
    let s4 = speaker(4, 65004, vec![to_frr()]).await;

    // Keep: host 4 gets host 2's prefix with host 2 as next hop. Without allowas-in, FRR
    // drops host 3's prefix, which host 2 has and sends (AS_PATH 65001 64512).
    wait_routes(&s4, 20, "host 2's prefix, next hop kept", |r| {
        via(r, "10.65.2.0/26", &a(2))
    })
    .await;
    wait_routes(&s2, 20, "host 3's prefix at host 2", |r| {
        via(r, "10.65.3.0/26", &a(3))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frr_has = |r: &[LearnedRoute]| route(r, "10.65.3.0/26").is_some();
    assert!(
        !frr_has(&frr.learned_routes().await.unwrap()),
        "own AS in the path"
    );

    // allowas-in 1 and next hop self.
    frr.configure(&frr_settings(1, NextHopMode::SelfAddress))
        .await
        .unwrap();
    wait_for(&frr, 20, "host 3's prefix with allowas-in", |r, _| {
        frr_has(r)
    })
    .await;
    wait_routes(&s4, 20, "host 2's prefix, next hop self", |r| {
        via(r, "10.65.2.0/26", &a(1))
    })
    .await;
    drop(frr);
    let _ = std::fs::remove_dir_all(dir_of(name));
}
