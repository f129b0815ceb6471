//! Graceful restart (RFC 4724) between our speaker and a real BIRD 2 over a veth pair
//! between two namespaces (named `cgr*`, removed when the test ends):
//!
//! * BIRD (`graceful restart on`) killed while the link stays up: we keep its routes,
//!   stale; BIRD back (with `-R`, forwarding state kept) announcing a subset: after its
//!   End-of-RIB exactly the subset is left. Over IPv4 (End-of-RIB an empty UPDATE) and
//!   IPv6 (an empty MP_UNREACH_NLRI).
//! * BIRD killed and not back within its restart time (3 s): its routes go then.
//! * Our restart: [`Speaker::stop_for_restart`] leaves our routes in BIRD; a new speaker
//!   with `restarting` set leaves them there until its End-of-RIB, after which BIRD has
//!   exactly what the new one announces.
//! * BIRD without graceful restart (its default, "aware", and `off`): a closed connection
//!   withdraws its routes at once.

mod speaker_support;

use std::time::{Duration, Instant};

use calico_bgp::speaker::{GracefulRestartOptions, Speaker, SpeakerOptions};
use calico_core::dataplane::{BgpBackend, LearnedRoute, PeerState};
use calico_netns::fixtures::{privileged, Netns};
use speaker_support::bird::{bgp_protocol, Bird};
use speaker_support::*;

/// Our speaker in `ns`, reconnecting fast, with graceful restart as given.
fn speaker(ns: &Netns, restarting: bool) -> Speaker {
    Speaker::with_options(SpeakerOptions {
        sockets: sockets_in(ns.path()),
        connect_retry_min: Duration::from_millis(500),
        connect_retry_max: Duration::from_secs(1),
        graceful_restart: Some(GracefulRestartOptions {
            restart_time: Duration::from_secs(60),
            restarting,
            stale_routes_time: Duration::from_secs(60),
        }),
        ..SpeakerOptions::default()
    })
    .unwrap()
}

/// A BIRD BGP block with `gr` (graceful restart lines) added.
fn with_gr(block: String, gr: &str) -> String {
    block.replace("  hold time", &format!("  {gr}\n  hold time"))
}

fn statics(channel: &str, routes: &[&str]) -> String {
    let body: String = routes
        .iter()
        .map(|r| format!(" route {r} blackhole;"))
        .collect();
    format!("protocol static st {{ {channel};{body} }}\n")
}

fn has_all(routes: &[LearnedRoute], prefixes: &[&str]) -> bool {
    prefixes.iter().all(|p| route(routes, p).is_some())
}

fn exactly(routes: &[LearnedRoute], prefixes: &[&str]) -> bool {
    routes.len() == prefixes.len() && has_all(routes, prefixes)
}

/// Polls for `secs` seconds; fails as soon as `check` does not hold.
async fn holds_for(
    speaker: &Speaker,
    secs: u64,
    what: &str,
    check: impl Fn(&[LearnedRoute]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        let routes = speaker.learned_routes().await.unwrap();
        let status = speaker.peer_status().await.unwrap();
        assert!(
            check(&routes),
            "{what}: routes {routes:?}, peers {status:?}"
        );
        let _ =
            tokio::time::timeout(Duration::from_millis(100), speaker.subscribe().changed()).await;
    }
}

/// Case (a): BIRD restarts (killed, the link stays up, so the kernel closes its TCP
/// connection) and comes back announcing a subset of its routes.
async fn bird_restarts_and_announces_a_subset(
    name: &str,
    ibgp: bool,
    channel: &str,
    all: &[&str],
    subset: &[&str],
) {
    let link = Link::new(name);
    let (bird_addr, our_addr, our_as, bird_as) = match (ibgp, channel) {
        (true, _) => (B4, A4, 64512, 64512),
        (false, _) => (B6, A6, 65001, 65002),
    };
    let block = with_gr(
        bgp_protocol("calico", bird_addr, bird_as, our_addr, our_as, channel, 3),
        "graceful restart on;\n  graceful restart time 30;",
    );
    let bird = Bird::start(&link.b, B4, &format!("{}{block}", statics(channel, all)));
    let speaker = speaker(&link.a, false);
    speaker
        .configure(&settings(our_as, A4, vec![peer(bird_addr, bird_as, 3)]))
        .await
        .unwrap();
    wait_routes(&speaker, 15, "BIRD's routes", |r| exactly(r, all)).await;

    link.b.run(&["kill", "-9", &bird.pid()]).unwrap();
    let killed = Instant::now();
    wait_state(&speaker, 5, PeerState::Active).await;
    // Without graceful restart they would be gone within a second (the closed connection
    // is seen at once); they stay, stale, while BIRD is away.
    holds_for(&speaker, 3, "BIRD's routes kept while it restarts", |r| {
        exactly(r, all)
    })
    .await;
    let status = speaker.peer_status().await.unwrap();
    assert_ne!(status[0].state, PeerState::Established, "{status:?}");
    assert_eq!(status[0].prefixes_received, all.len(), "{status:?}");

    // Back, in graceful restart recovery (forwarding state kept: F bit), with a subset.
    drop(bird);
    let bird = Bird::start_with(
        &link.b,
        B4,
        &format!("{}{block}", statics(channel, subset)),
        &["-R"],
    );
    // The re-announced routes never go away; the others go on BIRD's End-of-RIB, long
    // before the 30 s restart time or our 60 s stale time would remove them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let routes = speaker.learned_routes().await.unwrap();
        assert!(
            has_all(&routes, subset),
            "re-announced routes must stay throughout: {routes:?}"
        );
        if exactly(&routes, subset) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "routes BIRD no longer announces still there: {routes:?}, peers {:?}\nbird.log:\n{}",
                speaker.peer_status().await.unwrap(),
                bird.log()
            );
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(100), speaker.subscribe().changed()).await;
    }
    assert!(
        killed.elapsed() < Duration::from_secs(28),
        "removed by the End-of-RIB, not a timer: {:?}",
        killed.elapsed()
    );
    wait_state(&speaker, 5, PeerState::Established).await;
    // And stays so.
    holds_for(&speaker, 1, "the subset after End-of-RIB", |r| {
        exactly(r, subset)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gr_ipv4_bird_killed_keeps_stale_routes_until_its_end_of_rib() {
    if !privileged("gr_ipv4_bird_killed_keeps_stale_routes_until_its_end_of_rib") {
        return;
    }
    bird_restarts_and_announces_a_subset(
        "cgr4",
        true,
        "ipv4",
        &["10.66.1.0/26", "10.66.2.0/26", "10.66.3.0/26"],
        &["10.66.1.0/26", "10.66.3.0/26"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gr_ipv6_bird_killed_keeps_stale_routes_until_its_end_of_rib() {
    if !privileged("gr_ipv6_bird_killed_keeps_stale_routes_until_its_end_of_rib") {
        return;
    }
    bird_restarts_and_announces_a_subset(
        "cgr6",
        false,
        "ipv6",
        &["fd00:66:1::/122", "fd00:66:2::/122"],
        &["fd00:66:2::/122"],
    )
    .await;
}

/// Case (b): BIRD killed and not back within its restart time (3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gr_bird_not_back_within_its_restart_time_is_withdrawn() {
    if !privileged("gr_bird_not_back_within_its_restart_time_is_withdrawn") {
        return;
    }
    let link = Link::new("cgrt");
    let all = ["10.66.1.0/26", "10.66.2.0/26"];
    let block = with_gr(
        bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 3),
        "graceful restart on;\n  graceful restart time 3;",
    );
    let bird = Bird::start(&link.b, B4, &format!("{}{block}", statics("ipv4", &all)));
    let speaker = speaker(&link.a, false);
    speaker
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 3)]))
        .await
        .unwrap();
    wait_routes(&speaker, 15, "BIRD's routes", |r| exactly(r, &all)).await;

    link.b.run(&["kill", "-9", &bird.pid()]).unwrap();
    let killed = Instant::now();
    holds_for(&speaker, 1, "kept within the restart time", |r| {
        exactly(r, &all)
    })
    .await;
    wait_routes(&speaker, 10, "removal after the restart time", |r| {
        r.is_empty()
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "removed {took:?} after the kill, BIRD's restart time is 3 s"
    );
}

/// Case (c): we restart. Our routes stay in BIRD while we are away and until the new
/// speaker's End-of-RIB, then BIRD has exactly what the new speaker announces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gr_our_restart_keeps_our_routes_in_bird_until_our_end_of_rib() {
    if !privileged("gr_our_restart_keeps_our_routes_in_bird_until_our_end_of_rib") {
        return;
    }
    let link = Link::new("cgro");
    let block = with_gr(
        bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 3),
        "graceful restart on;",
    );
    let bird = Bird::start(&link.b, B4, &block);
    let ours = ["10.65.1.0/26", "10.65.2.0/26", "10.65.3.0/26"];
    let kept = ["10.65.1.0/26", "10.65.3.0/26"];
    let in_bird = |prefixes: &[&str]| {
        let out = bird.cli("show route");
        prefixes
            .iter()
            .all(|p| out.contains(&format!("{p} ")) || out.contains(&format!("{p}\t")))
    };
    let count_in_bird = || {
        bird.cli("show route")
            .lines()
            .filter(|l| l.starts_with("10.65."))
            .count()
    };

    let first = speaker(&link.a, false);
    first.set_exports(&prefixes(&ours)).await.unwrap();
    first
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 3)]))
        .await
        .unwrap();
    bird.wait(15, "show route", "our routes in BIRD", |o| {
        o.matches("via 10.99.0.1").count() == 3
    });

    first.stop_for_restart().await;
    // No NOTIFICATION: BIRD keeps our routes (stale) while the session is down.
    bird.wait(
        5,
        "show protocols calico",
        "BIRD sees the session down",
        |o| !o.contains("Established"),
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert!(
            in_bird(&ours),
            "BIRD dropped our routes while we restart:\n{}\n{}",
            bird.cli("show route"),
            bird.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The new speaker (R and F bits) comes up before it knows its exports: it holds its
    // End-of-RIB back, and BIRD keeps every stale route meanwhile.
    let second = speaker(&link.a, true);
    second
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 3)]))
        .await
        .unwrap();
    wait_state(&second, 15, PeerState::Established).await;
    bird.wait(
        5,
        "show protocols calico",
        "BIRD sees the session up",
        |o| o.contains("Established"),
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert!(
            in_bird(&ours) && count_in_bird() == 3,
            "BIRD dropped our stale routes before our End-of-RIB:\n{}\n{}",
            bird.cli("show route"),
            bird.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Exports known: routes, then End-of-RIB; BIRD drops the one not announced again.
    second.set_exports(&prefixes(&kept)).await.unwrap();
    bird.wait(10, "show route", "exactly the new speaker's routes", |o| {
        o.lines().filter(|l| l.starts_with("10.65.")).count() == 2
            && kept.iter().all(|p| o.contains(p))
            && !o.contains("10.65.2.0/26")
    });
    assert!(in_bird(&kept));
}

/// Case (d): BIRD without graceful restart (its default, which advertises the capability
/// with no family, then `off`): its closed connection withdraws its routes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gr_bird_without_graceful_restart_is_withdrawn_at_once() {
    if !privileged("gr_bird_without_graceful_restart_is_withdrawn_at_once") {
        return;
    }
    let link = Link::new("cgrn");
    let all = ["10.66.1.0/26", "10.66.2.0/26"];
    let speaker = speaker(&link.a, false);
    speaker
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 3)]))
        .await
        .unwrap();
    for gr in ["", "graceful restart off;"] {
        let block = with_gr(bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 3), gr);
        let bird = Bird::start(&link.b, B4, &format!("{}{block}", statics("ipv4", &all)));
        wait_routes(&speaker, 15, "BIRD's routes", |r| exactly(r, &all)).await;
        link.b.run(&["kill", "-9", &bird.pid()]).unwrap();
        let killed = Instant::now();
        wait_routes(&speaker, 3, "withdrawal at once", |r| r.is_empty()).await;
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "{gr:?}: withdrawn after {:?}",
            killed.elapsed()
        );
    }
}
