//! Calico's BGPPeer session options between our speaker and real BIRD 2 daemons in
//! namespaces: TTL security (RFC 5082) one hop and two hops away, the keepalive interval as
//! the kernel counts what we send, allowas-in, and next hop self/keep on a reflector.

mod speaker_support;

use std::time::{Duration, Instant};

use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{BgpBackend, NextHopMode, PeerConfig, PeerState};
use calico_netns::fixtures::{privileged, veth, Netns};
use speaker_support::bird::{self, bgp_protocol, Bird};
use speaker_support::*;

/// Whether any peer of `speaker` reaches Established within `secs` (polled; `false` means
/// it stayed down the whole time).
async fn comes_up_within(speaker: &Speaker, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let status = speaker.peer_status().await.unwrap();
        if status.iter().any(|s| s.state == PeerState::Established) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn with_ttl_security(mut p: PeerConfig, hops: Option<u8>) -> PeerConfig {
    p.session.ttl_security = hops;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_security_one_hop_with_bird() {
    if !privileged("ttl_security_one_hop_with_bird") {
        return;
    }
    let link = Link::new("gt1");
    // BIRD on a direct iBGP session with TTL security: it sends with TTL 255 and drops
    // anything that arrives with less than 255.
    let conf = bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 3)
        .replace("  hold time", "  ttl security on;\n  hold time");
    let bird = Bird::start(&link.b, B4, &conf);
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    // With TTL security the session comes up, both sides at TTL 255.
    let gtsm = with_ttl_security(peer(B4, 64512, 3), Some(1));
    speaker
        .configure(&settings(64512, A4, vec![gtsm]))
        .await
        .unwrap();
    wait_state(&speaker, 10, PeerState::Established).await;
    bird.wait(10, "show protocols calico", "BIRD established", |o| {
        o.contains("Established")
    });
    // Without it our packets leave with the default TTL (64): BIRD drops them (all but
    // what reached its socket before it set its minimum TTL) and never gets to Established.
    speaker
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 3)]))
        .await
        .unwrap();
    bird.wait(10, "show protocols calico", "the GTSM session gone", |o| {
        !o.contains("Established")
    });
    assert!(
        !bird_established_within(&bird, 4),
        "BIRD's GTSM should drop TTL-64 packets"
    );
}

/// Whether BIRD's protocol `calico` reaches Established within `secs`.
fn bird_established_within(bird: &Bird, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if bird.cli("show protocols calico").contains("Established") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `a` — router `r` — `b`: 10.97.1.0/24 between a and r, 10.97.2.0/24 between r and b.
struct TwoHops {
    a: Netns,
    _r: Netns,
    b: Netns,
}

const FAR_A: &str = "10.97.1.1";
const FAR_B: &str = "10.97.2.1";

impl TwoHops {
    fn new(name: &str) -> TwoHops {
        let a = Netns::create(&format!("{name}a")).unwrap();
        let r = Netns::create(&format!("{name}r")).unwrap();
        let b = Netns::create(&format!("{name}b")).unwrap();
        veth(&a, "eth0", &r, "eth0").unwrap();
        veth(&b, "eth0", &r, "eth1").unwrap();
        let run = |ns: &Netns, cmd: &str| {
            let args: Vec<&str> = cmd.split_whitespace().collect();
            ns.run(&args).unwrap();
        };
        run(&a, "ip addr add 10.97.1.1/24 dev eth0");
        run(&a, "ip route add default via 10.97.1.2");
        run(&r, "ip addr add 10.97.1.2/24 dev eth0");
        run(&r, "ip addr add 10.97.2.2/24 dev eth1");
        run(&r, "sysctl -qw net.ipv4.ip_forward=1");
        run(&b, "ip addr add 10.97.2.1/24 dev eth0");
        run(&b, "ip route add default via 10.97.2.2");
        TwoHops { a, _r: r, b }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_security_refuses_a_peer_further_away_than_allowed() {
    if !privileged("ttl_security_refuses_a_peer_further_away_than_allowed") {
        return;
    }
    let net = TwoHops::new("gt2");
    // BIRD two hops away, accepting TTL ≥ 254 (two hops).
    let conf = bgp_protocol("calico", FAR_B, 65002, FAR_A, 64512, "ipv4", 3).replace(
        "  hold time",
        "  ttl security on;\n  multihop 2;\n  hold time",
    );
    let bird = Bird::start(&net.b, FAR_B, &conf);
    let speaker = Speaker::with_sockets(sockets_in(net.a.path())).unwrap();
    // Two hops allowed: up.
    let two = with_ttl_security(peer(FAR_B, 65002, 3), Some(2));
    speaker
        .configure(&settings(64512, FAR_A, vec![two]))
        .await
        .unwrap();
    wait_state(&speaker, 10, PeerState::Established).await;
    // One hop allowed: BIRD's packets arrive with TTL 254 and our sockets drop them, so the
    // session (restarted by the change) never comes back.
    let one = with_ttl_security(peer(FAR_B, 65002, 3), Some(1));
    speaker
        .configure(&settings(64512, FAR_A, vec![one]))
        .await
        .unwrap();
    bird.wait(10, "show protocols calico", "the old session gone", |o| {
        !o.contains("Established")
    });
    assert!(
        !comes_up_within(&speaker, 5).await,
        "a peer two hops away passed a one-hop TTL check: {:?}",
        speaker.peer_status().await
    );
}

/// The BGP messages our end of the (one) established connection in `ns` has sent so far:
/// its data segments, as the kernel counts them (`ss -i`).
fn messages_sent(ns: &Netns) -> u64 {
    let out = ns.run(&["ss", "-tni", "state", "established"]).unwrap();
    let counts: Vec<u64> = out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("data_segs_out:"))
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(counts.len(), 1, "one established connection: {out}");
    counts[0]
}

/// When the speaker's (one) session was established, once it is.
async fn established_since(speaker: &Speaker) -> Option<std::time::SystemTime> {
    let status = speaker.peer_status().await.unwrap();
    status
        .iter()
        .find(|s| s.state == PeerState::Established)
        .and_then(|s| s.counters.established_since)
}

/// Waits for a session established after `before`, lets it settle, and counts what the
/// speaker sends on it in `secs` seconds of quiet (nothing but KEEPALIVEs).
async fn messages_in_quiet_period(
    ns: &Netns,
    speaker: &Speaker,
    before: Option<std::time::SystemTime>,
    secs: u64,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while established_since(speaker).await.is_none() || established_since(speaker).await == before {
        assert!(
            Instant::now() < deadline,
            "no new session: {:?}",
            speaker.peer_status().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = messages_sent(ns);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    messages_sent(ns) - start
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_time_sets_how_often_we_send_keepalives() {
    if !privileged("keepalive_time_sets_how_often_we_send_keepalives") {
        return;
    }
    let link = Link::new("ka");
    let conf = bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 9);
    let _bird = Bird::start(&link.b, B4, &conf);
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    // Default: a third of the 9 s hold time, so at most 2 KEEPALIVEs in 4 s.
    speaker
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 9)]))
        .await
        .unwrap();
    let default = messages_in_quiet_period(&link.a, &speaker, None, 4).await;
    assert!(default <= 2, "keepalives every 3 s: {default} in 4 s");
    // keepaliveTime 1: about one a second.
    let before = established_since(&speaker).await;
    let mut fast = peer(B4, 64512, 9);
    fast.session.keepalive_time = Some(1);
    speaker
        .configure(&settings(64512, A4, vec![fast]))
        .await
        .unwrap();
    let fast = messages_in_quiet_period(&link.a, &speaker, before, 4).await;
    assert!(fast >= 3, "keepalives every second: {fast} in 4 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_local_as_numbers_let_our_as_through_once() {
    if !privileged("allowed_local_as_numbers_let_our_as_through_once") {
        return;
    }
    let link = Link::new("aas");
    // BIRD (AS 65001) sends 10.66.9.0/26 with our AS already in its path, and a plain route.
    let conf = format!(
        "protocol static s4 {{ ipv4; route 10.66.1.0/26 blackhole; route 10.66.9.0/26 blackhole; }}\n{}",
        bgp_protocol("calico", B4, 65001, A4, 64512, "ipv4", 3).replace(
            "import all; export all;",
            "import all; export filter { if net = 10.66.9.0/26 then bgp_path.prepend(64512); accept; };"
        )
    );
    let _bird = Bird::start(&link.b, B4, &conf);
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    speaker
        .configure(&settings(64512, A4, vec![peer(B4, 65001, 3)]))
        .await
        .unwrap();
    wait_routes(&speaker, 10, "the plain route", |r| {
        via(r, "10.66.1.0/26", B4)
    })
    .await;
    let routes = speaker.learned_routes().await.unwrap();
    assert!(
        route(&routes, "10.66.9.0/26").is_none(),
        "a loop: {routes:?}"
    );
    // numAllowedLocalASNumbers 1: accepted.
    let mut allowing = peer(B4, 65001, 3);
    allowing.session.allow_local_as = 1;
    speaker
        .configure(&settings(64512, A4, vec![allowing]))
        .await
        .unwrap();
    wait_routes(&speaker, 10, "the route with our AS", |r| {
        via(r, "10.66.9.0/26", B4) && via(r, "10.66.1.0/26", B4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_hop_self_on_a_reflector_replaces_the_clients_next_hop() {
    if !privileged("next_hop_self_on_a_reflector_replaces_the_clients_next_hop") {
        return;
    }
    let ns = Netns::create("nhs").unwrap();
    let (rr, b1, b2) = ("127.0.0.1", "127.0.1.1", "127.0.1.2");
    let reflector = speaker_at(&ns, rr);
    let client = |address: &str, mode| {
        let mut p = peer(address, 64512, 9);
        p.route_reflector_client = true;
        p.session.next_hop_mode = mode;
        p
    };
    let configure = |mode| {
        let mut s = settings(
            64512,
            rr,
            vec![client(b1, NextHopMode::Auto), client(b2, mode)],
        );
        s.cluster_id = Some("10.255.0.1".parse().unwrap());
        s
    };
    reflector
        .configure(&configure(NextHopMode::SelfAddress))
        .await
        .unwrap();
    let ibgp = |name, local, extra| {
        bird::ibgp_on_loopback(64512, name, (local, rr), extra, "import all; export all;")
    };
    let _bird1 = Bird::start(
        &ns,
        b1,
        &format!(
            "protocol static st1 {{ ipv4; route 10.66.1.0/26 blackhole; }}\n{}",
            ibgp("up", b1, "")
        ),
    );
    let bird2 = Bird::start(&ns, b2, &ibgp("up", b2, ""));
    let next_hop_at_b2 =
        |want: &'static str| move |o: &str| o.contains(&format!("BGP.next_hop: {want}\n"));
    bird2.wait(
        15,
        "show route 10.66.1.0/26 all",
        "the reflected route with next hop self",
        next_hop_at_b2(rr),
    );
    // Keep (the same as BGP's rule for reflected iBGP routes): client 1's own next hop.
    reflector
        .configure(&configure(NextHopMode::Keep))
        .await
        .unwrap();
    bird2.wait(
        15,
        "show route 10.66.1.0/26 all",
        "the reflected route with its next hop kept",
        next_hop_at_b2(b1),
    );
}
