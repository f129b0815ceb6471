//! TCP MD5 signatures (RFC 2385) between our speaker and a real BIRD 2 in namespaces: a
//! matching password establishes and routes flow, a wrong or missing one never does, and a
//! changed password takes effect on reconfiguration. Covers the dual-stack listener (an
//! IPv4 peer keyed by its v4-mapped address) and outgoing connections over IPv6.

mod speaker_support;

use std::time::Duration;

use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{BgpBackend, BgpSettings, PeerState};
use calico_netns::fixtures::privileged;
use speaker_support::bird::{bgp_protocol, Bird};
use speaker_support::*;

/// A BIRD BGP block with a password (and passive when asked).
fn bird_with_password(block: String, password: &str, passive: bool) -> String {
    let extra = if passive { "\n  passive on;" } else { "" };
    block.replace(
        "  hold time",
        &format!("  password \"{password}\";{extra}\n  hold time"),
    )
}

fn with_password(mut s: BgpSettings, password: Option<&str>, passive: bool) -> BgpSettings {
    s.peers = s
        .peers
        .into_iter()
        .map(|mut p| {
            p.password = password.map(str::to_string);
            p.passive = passive;
            p
        })
        .collect();
    s
}

/// Polls for `secs` seconds; fails as soon as a peer is Established.
async fn never_established(speaker: &Speaker, secs: u64, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        let status = speaker.peer_status().await.unwrap();
        assert!(
            status.iter().all(|s| s.state != PeerState::Established),
            "{what}: established anyway: {status:?}"
        );
        let _ =
            tokio::time::timeout(Duration::from_millis(100), speaker.subscribe().changed()).await;
    }
}

const STATIC4: &str = "protocol static s4 { ipv4; route 10.66.1.0/26 blackhole; }\n";
const STATIC6: &str = "protocol static s6 { ipv6; route fd00:66:1::/122 blackhole; }\n";

/// BIRD connects to our dual-stack listener over IPv4: the listener's key is filed under
/// the v4-mapped address. A wrong password first (never up), then the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_ipv4_bird_connects_to_our_listener() {
    if !privileged("md5_ipv4_bird_connects_to_our_listener") {
        return;
    }
    let link = Link::new("sm4");
    let block = bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 3);
    let bird = Bird::start(
        &link.b,
        B4,
        &format!("{STATIC4}{}", bird_with_password(block, "s3cret pw", false)),
    );
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    let base = settings(64512, A4, vec![peer(B4, 64512, 3)]);
    speaker
        .configure(&with_password(base.clone(), Some("wrong"), true))
        .await
        .unwrap();
    speaker
        .set_exports(&prefixes(&["10.65.1.0/26"]))
        .await
        .unwrap();
    never_established(&speaker, 4, "a wrong password").await;

    speaker
        .configure(&with_password(base.clone(), Some("s3cret pw"), true))
        .await
        .unwrap();
    wait_routes(&speaker, 15, "BIRD's route over a signed session", |r| {
        via(r, "10.66.1.0/26", B4)
    })
    .await;
    bird.wait(10, "show route 10.65.1.0/26", "our route in BIRD", |o| {
        o.contains("via 10.99.0.1")
    });

    // No password at all: BIRD drops our unsigned segments (and we its signed ones).
    speaker
        .configure(&with_password(base, None, false))
        .await
        .unwrap();
    never_established(&speaker, 4, "no password against a signed peer").await;
}

/// We connect to a passive BIRD over IPv6: the outgoing socket carries the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_ipv6_we_connect_to_passive_bird() {
    if !privileged("md5_ipv6_we_connect_to_passive_bird") {
        return;
    }
    let link = Link::new("sm6");
    let block = bgp_protocol("calico", B6, 65002, A6, 65001, "ipv6", 3);
    let bird = Bird::start(
        &link.b,
        B4,
        &format!("{STATIC6}{}", bird_with_password(block, "v6-secret", true)),
    );
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    let base = settings(65001, A4, vec![peer(B6, 65002, 3)]);
    speaker
        .configure(&with_password(base.clone(), Some("not-it"), false))
        .await
        .unwrap();
    speaker
        .set_exports(&prefixes(&["fd00:65:1::/122"]))
        .await
        .unwrap();
    never_established(&speaker, 4, "a wrong password").await;

    speaker
        .configure(&with_password(base, Some("v6-secret"), false))
        .await
        .unwrap();
    wait_routes(
        &speaker,
        15,
        "BIRD's IPv6 route over a signed session",
        |r| via(r, "fd00:66:1::/122", B6),
    )
    .await;
    bird.wait(
        10,
        "show route fd00:65:1::/122",
        "our IPv6 route in BIRD",
        |o| o.contains("via fd99::1"),
    );
}

/// A password the kernel cannot take is refused by `configure`, naming the peer.
#[tokio::test]
async fn md5_password_too_long_is_refused() {
    let speaker = Speaker::new().unwrap();
    let mut s = settings(64512, "10.0.0.1", vec![peer("10.0.0.2", 64512, 3)]);
    s.listen_port = 0;
    let long = "x".repeat(81);
    let err = speaker
        .configure(&with_password(s, Some(&long), true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10.0.0.2"), "{err}");
}
