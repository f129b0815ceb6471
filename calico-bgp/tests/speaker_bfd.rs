//! BFD (RFC 5880/5881) beside BGP sessions, on real links between namespaces: with BIRD 2's
//! BFD and FRR's bfdd over IPv4, and between two of our speakers over IPv6. A peer cut off silently (all
//! its packets dropped) loses its routes within the BFD detection time, not the hold time,
//! and the session comes back once the path is restored. With BIRD 2, every RFC 5880
//! authentication type brings the session up, and a wrong key takes it down.

mod speaker_support;

use std::time::{Duration, Instant};

use calico_bgp::bfd::State;
use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{BfdAuth, BfdAuthType, BfdConfig, BgpBackend};
use calico_netns::fixtures::{privileged, Netns};
use speaker_support::bird::Bird;
use speaker_support::frr::Frr;
use speaker_support::*;

/// A hold time no test waits for: a withdrawal within seconds is BFD's.
const HOLD: u16 = 60;

const TIMERS: BfdConfig = BfdConfig {
    min_tx: Duration::from_millis(300),
    min_rx: Duration::from_millis(300),
    multiplier: 3,
    authentication: None,
};

/// Drops every packet in and out of `ns` (a hung host, as its peers see it).
fn cut(ns: &Netns) {
    ns.run(&["nft", "add", "table", "inet", "cut"]).unwrap();
    for (chain, hook) in [("in", "input"), ("out", "output")] {
        let spec = format!("{{ type filter hook {hook} priority -300 ; policy drop ; }}");
        let mut args = vec!["nft", "add", "chain", "inet", "cut", chain];
        args.extend(spec.split(' '));
        ns.run(&args).unwrap();
    }
}

fn restore(ns: &Netns) {
    ns.run(&["nft", "delete", "table", "inet", "cut"]).unwrap();
}

/// Our speaker in `link.a`, peering over IPv4 with B (AS 64512) with BFD on.
async fn speaker_with_bfd_to_b4(link: &Link) -> Speaker {
    let speaker = speaker_at(&link.a, A4);
    let mut p = peer(B4, 64512, HOLD);
    p.bfd = Some(TIMERS);
    speaker
        .configure(&settings(64512, A4, vec![p]))
        .await
        .unwrap();
    speaker
}

/// Cuts `peer_ns` off and checks that `speaker` lost its routes within the BFD detection
/// time (with slack), far below the hold time; prints how long it took.
async fn withdrawn_by_bfd(speaker: &Speaker, peer_ns: &Netns, what: &str) {
    cut(peer_ns);
    let cut_at = Instant::now();
    wait_routes(speaker, 10, "withdrawal by BFD", |r| r.is_empty()).await;
    let failover = cut_at.elapsed();
    eprintln!(
        "BFD 300 ms x 3 {what}: routes withdrawn {failover:?} after the cut (hold time {HOLD} s)"
    );
    assert!(
        failover < Duration::from_secs(3),
        "withdrawn after {failover:?}: not by BFD"
    );
}

async fn wait_bfd(speaker: &Speaker, secs: u64, state: State) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let status = speaker.bfd_status().await;
        if !status.is_empty() && status.iter().all(|s| s.state == state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for BFD {state}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_with_bird_withdraws_a_silent_peer_within_the_detection_time() {
    if !privileged("bfd_with_bird_withdraws_a_silent_peer_within_the_detection_time") {
        return;
    }
    let link = Link::new("sbfd");
    let conf = format!(
        "protocol bfd {{}}\n\
         protocol static s4 {{ ipv4; route 10.66.1.0/26 blackhole; }}\n\
         protocol bgp calico {{\n  local {B4} as 64512;\n  neighbor {A4} as 64512;\n  direct;\n  \
         hold time {HOLD};\n  connect retry time 1;\n  error wait time 1, 2;\n  \
         bfd {{ min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }};\n  \
         ipv4 {{ import all; export all; }};\n}}\n"
    );
    let bird = Bird::start(&link.b, B4, &conf);
    let speaker = speaker_with_bfd_to_b4(&link).await;
    wait_routes(&speaker, 15, "BIRD's route", |r| via(r, "10.66.1.0/26", B4)).await;
    wait_bfd(&speaker, 10, State::Up).await;
    bird.wait(10, "show bfd sessions", "BIRD's BFD session up", |o| {
        o.contains(A4) && o.contains("Up")
    });

    withdrawn_by_bfd(&speaker, &link.b, "with BIRD 2").await;
    let status = speaker.peer_status().await.unwrap();
    let error = status[0].last_error.as_deref().unwrap_or("");
    assert!(error.contains("BFD session down"), "{status:?}");
    assert!(error.contains("detection time expired"), "{status:?}");

    // The path comes back: BFD and then BGP come up again, and the route returns.
    restore(&link.b);
    wait_bfd(&speaker, 20, State::Up).await;
    wait_routes(&speaker, 30, "BIRD's route again", |r| {
        via(r, "10.66.1.0/26", B4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_with_frr_bfdd_withdraws_a_silent_peer_within_the_detection_time() {
    if !privileged("bfd_with_frr_bfdd_withdraws_a_silent_peer_within_the_detection_time") {
        return;
    }
    let link = Link::new("sbff");
    let conf = format!(
        "frr defaults datacenter\nhostname calico-test\n!\n\
         bfd\n peer {A4}\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n\
         router bgp 64512\n bgp router-id {B4}\n no bgp ebgp-requires-policy\n no bgp network import-check\n \
         neighbor {A4} remote-as 64512\n neighbor {A4} bfd\n neighbor {A4} timers {} {HOLD}\n \
         neighbor {A4} timers connect 1\n address-family ipv4 unicast\n  network 10.67.1.0/26\n \
         exit-address-family\n!\n",
        HOLD / 3
    );
    let frr = Frr::start(&link.b, &conf);
    let speaker = speaker_with_bfd_to_b4(&link).await;
    wait_routes(&speaker, 20, "FRR's route", |r| via(r, "10.67.1.0/26", B4)).await;
    wait_bfd(&speaker, 10, State::Up).await;
    frr.wait(10, "show bfd peers", "FRR's BFD session up", |o| {
        o.contains(A4) && o.contains("Status: up")
    });

    withdrawn_by_bfd(&speaker, &link.b, "with FRR 8 bfdd").await;
    // FRR saw it too, from its side: its BFD session is down.
    frr.wait(5, "show bfd peers", "FRR's BFD session down", |o| {
        o.contains("Status: down")
    });

    restore(&link.b);
    wait_bfd(&speaker, 20, State::Up).await;
    wait_routes(&speaker, 30, "FRR's route again", |r| {
        via(r, "10.67.1.0/26", B4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_between_two_speakers_over_ipv6() {
    if !privileged("bfd_between_two_speakers_over_ipv6") {
        return;
    }
    let link = Link::new("sbf6");
    let a = speaker_at(&link.a, A6);
    let b = speaker_at(&link.b, B6);
    for (s, me, them) in [(&a, A6, B6), (&b, B6, A6)] {
        let mut p = peer(them, 65000, HOLD);
        p.bfd = Some(TIMERS);
        let router_id = if me == A6 { A4 } else { B4 };
        s.configure(&settings(65000, router_id, vec![p]))
            .await
            .unwrap();
    }
    a.set_exports(&prefixes(&["fd00:65:1::/122"]))
        .await
        .unwrap();
    b.set_exports(&prefixes(&["fd00:65:2::/122"]))
        .await
        .unwrap();
    wait_routes(&a, 15, "b's route", |r| via(r, "fd00:65:2::/122", B6)).await;
    wait_bfd(&a, 10, State::Up).await;
    wait_bfd(&b, 10, State::Up).await;

    withdrawn_by_bfd(&a, &link.b, "between our speakers over IPv6").await;

    restore(&link.b);
    wait_routes(&a, 30, "b's route again", |r| via(r, "fd00:65:2::/122", B6)).await;
    // The flap is counted, and the UPDATEs of both sessions. (At least one flap: with the
    // whole suite running on two cores, a 900 ms detection time has once expired a second
    // time after the path came back.)
    let st = a.peer_status().await.unwrap();
    let c = &st[0].counters;
    assert!(c.flaps >= Some(1), "{c:?}");
    assert!(c.established_since.is_some(), "{c:?}");
    assert!(
        c.updates_received >= Some(4) && c.updates_sent >= Some(4),
        "route + End-of-RIB on each of the two sessions: {c:?}"
    );

    // Turning BFD off is not a BGP change: the session it no longer watches stays up.
    let mut p = peer(B6, 65000, HOLD);
    p.bfd = None;
    a.configure(&settings(65000, A4, vec![p])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.bfd_status().await.is_empty());
    let status = a.peer_status().await.unwrap();
    assert_eq!(
        status[0].state,
        calico_core::dataplane::PeerState::Established,
        "{status:?}"
    );
}

/// BIRD's words for an authentication type.
fn bird_auth(kind: BfdAuthType) -> &'static str {
    match kind {
        BfdAuthType::SimplePassword => "simple",
        BfdAuthType::KeyedMd5 => "keyed md5",
        BfdAuthType::MeticulousKeyedMd5 => "meticulous keyed md5",
        BfdAuthType::KeyedSha1 => "keyed sha1",
        BfdAuthType::MeticulousKeyedSha1 => "meticulous keyed sha1",
    }
}

/// Our speaker in `link.a` peering with B over IPv4, BFD authenticated with `auth`.
async fn configure_auth(speaker: &Speaker, auth: BfdAuth) {
    let mut p = peer(B4, 64512, HOLD);
    p.bfd = Some(BfdConfig {
        authentication: Some(auth),
        ..TIMERS
    });
    speaker
        .configure(&settings(64512, A4, vec![p]))
        .await
        .unwrap();
}

/// RFC 5880 §6.7 with BIRD 2, every type: the sessions come up at both ends (each checks
/// the other's passwords, digests and sequence numbers); with a wrong key ours goes down and
/// takes the BGP session with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_authentication_with_bird_every_type() {
    if !privileged("bfd_authentication_with_bird_every_type") {
        return;
    }
    for (i, kind) in BfdAuthType::ALL.into_iter().enumerate() {
        let link = Link::new(&format!("sba{i}"));
        let conf = format!(
            "protocol bfd {{\n  interface \"*\" {{ authentication {}; password \"s3cret-{i}\" {{ id 9; }}; }};\n}}\n\
             protocol bgp calico {{\n  local {B4} as 64512;\n  neighbor {A4} as 64512;\n  direct;\n  \
             hold time {HOLD};\n  connect retry time 1;\n  error wait time 1, 2;\n  \
             bfd {{ min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }};\n  \
             ipv4 {{ import all; export none; }};\n}}\n",
            bird_auth(kind)
        );
        let bird = Bird::start(&link.b, B4, &conf);
        let speaker = speaker_at(&link.a, A4);
        let auth = BfdAuth {
            kind,
            key_id: 9,
            password: format!("s3cret-{i}"),
        };
        configure_auth(&speaker, auth.clone()).await;
        wait_bfd(&speaker, 10, State::Up).await;
        bird.wait(
            10,
            "show bfd sessions",
            &format!("BIRD's BFD session up ({kind})"),
            |o| o.contains(A4) && o.contains("Up"),
        );
        wait_state(&speaker, 15, calico_core::dataplane::PeerState::Established).await;
        if kind != BfdAuthType::MeticulousKeyedSha1 {
            continue;
        }
        // A wrong key: each end discards the other's packets, so both detect a silence.
        configure_auth(
            &speaker,
            BfdAuth {
                password: "wrong".into(),
                ..auth
            },
        )
        .await;
        wait_bfd(&speaker, 5, State::Down).await;
        bird.wait(5, "show bfd sessions", "BIRD's BFD session down", |o| {
            !o.contains("Up")
        });
        // The BGP session went with it: ended by our BFD ("BFD session down") or, when
        // BIRD's detection ran out first, by BIRD's Cease.
        let status = speaker.peer_status().await.unwrap();
        let error = status[0].last_error.as_deref().unwrap_or("");
        assert!(
            error.contains("BFD session down") || error.contains("cease"),
            "{status:?}"
        );
        assert!(status[0].counters.flaps >= Some(1), "{status:?}");
    }
}
