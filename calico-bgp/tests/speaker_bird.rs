//! Our speaker against a real BIRD 2 over a veth pair between two namespaces: iBGP over
//! IPv4 and eBGP over IPv6; routes both ways, withdrawals both ways, a frozen BIRD noticed by
//! the hold timer and a killed one by the closed connection.

mod speaker_support;

use std::time::{Duration, Instant};

use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{BgpBackend, BgpSettings, PeerState};
use calico_netns::fixtures::privileged;
use speaker_support::bird::{bgp_protocol, Bird};
use speaker_support::*;

const STATIC4: &str =
    "protocol static s4 { ipv4; route 10.66.1.0/26 blackhole; route 10.66.2.0/26 blackhole; }\n";
const STATIC6: &str = "protocol static s6 { ipv6; route fd00:66:1::/122 blackhole; }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibgp_ipv4_with_bird_both_ways() {
    if !privileged("ibgp_ipv4_with_bird_both_ways") {
        return;
    }
    let link = Link::new("sb4");
    let conf = format!(
        "{STATIC4}{}",
        bgp_protocol("calico", B4, 64512, A4, 64512, "ipv4", 3)
    );
    let bird = Bird::start(&link.b, B4, &conf);
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    speaker
        .configure(&settings(64512, A4, vec![peer(B4, 64512, 3)]))
        .await
        .unwrap();
    speaker
        .set_exports(&prefixes(&["10.65.1.0/26"]))
        .await
        .unwrap();

    // BIRD's static routes reach our RIB with BIRD as next hop.
    wait_routes(&speaker, 10, "BIRD's routes", |r| {
        via(r, "10.66.1.0/26", B4) && via(r, "10.66.2.0/26", B4)
    })
    .await;
    // Ours reach BIRD with us as next hop, as iBGP with LOCAL_PREF 100 and an empty path.
    bird.wait(
        10,
        "show route 10.65.1.0/26 all",
        "our route in BIRD",
        |o| o.contains("via 10.99.0.1"),
    );
    let all = bird.cli("show route 10.65.1.0/26 all");
    assert!(all.contains("BGP.local_pref: 100"), "{all}");
    assert!(
        all.contains("BGP.as_path: \n")
            || all.contains("BGP.as_path:\n")
            || all.contains("BGP.as_path: \t"),
        "{all}"
    );

    // Withdrawals from us.
    speaker
        .set_exports(&prefixes(&["10.65.2.0/26"]))
        .await
        .unwrap();
    bird.wait(
        10,
        "show route 10.65.1.0/26",
        "our withdrawal in BIRD",
        |o| !o.contains("via 10.99.0.1"),
    );
    bird.wait(
        10,
        "show route 10.65.2.0/26",
        "our new route in BIRD",
        |o| o.contains("via 10.99.0.1"),
    );
    // Withdrawals from BIRD.
    bird.cli("disable s4");
    wait_routes(&speaker, 10, "BIRD's withdrawal", |r| r.is_empty()).await;
    bird.cli("enable s4");
    wait_routes(&speaker, 10, "BIRD's routes again", |r| r.len() == 2).await;

    // A frozen BIRD keeps the TCP connection open but stops sending keepalives: the hold
    // timer (3 s) ends the session and its routes are withdrawn.
    let pid = bird.pid();
    link.b.run(&["kill", "-STOP", &pid]).unwrap();
    let frozen = Instant::now();
    wait_routes(&speaker, 10, "withdrawal after hold time", |r| r.is_empty()).await;
    let noticed = frozen.elapsed();
    let status = speaker.peer_status().await.unwrap();
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("hold timer"),
        "{status:?}"
    );
    assert!(
        noticed >= Duration::from_secs(1),
        "withdrawn after {noticed:?}: not by the hold timer"
    );
    link.b.run(&["kill", "-CONT", &pid]).unwrap();
    // It comes back.
    wait_routes(&speaker, 15, "BIRD's routes after thaw", |r| r.len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_ipv6_with_bird_and_bird_killed() {
    if !privileged("ebgp_ipv6_with_bird_and_bird_killed") {
        return;
    }
    let link = Link::new("sb6");
    let conf = format!(
        "{STATIC6}{}",
        bgp_protocol("calico", B6, 65002, A6, 65001, "ipv6", 3)
    );
    let bird = Bird::start(&link.b, B4, &conf);
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    speaker
        .configure(&settings(65001, A4, vec![peer(B6, 65002, 3)]))
        .await
        .unwrap();
    speaker
        .set_exports(&prefixes(&["fd00:65:1::/122"]))
        .await
        .unwrap();

    wait_routes(&speaker, 10, "BIRD's IPv6 route", |r| {
        via(r, "fd00:66:1::/122", B6)
    })
    .await;
    bird.wait(
        10,
        "show route fd00:65:1::/122 all",
        "our IPv6 route in BIRD",
        |o| o.contains("via fd99::1"),
    );
    let all = bird.cli("show route fd00:65:1::/122 all");
    assert!(
        all.contains("BGP.as_path: 65001"),
        "eBGP prepends our AS: {all}"
    );

    speaker.set_exports(&prefixes(&[])).await.unwrap();
    bird.wait(
        10,
        "show route fd00:65:1::/122",
        "our IPv6 withdrawal in BIRD",
        |o| !o.contains("via fd99::1"),
    );
    bird.cli("disable s6");
    wait_routes(&speaker, 10, "BIRD's IPv6 withdrawal", |r| r.is_empty()).await;
    bird.cli("enable s6");
    wait_routes(&speaker, 10, "BIRD's IPv6 route again", |r| r.len() == 1).await;

    // Killed: the kernel closes the connection, the session goes down at once (well within
    // the hold time) and the routes go with it.
    link.b.run(&["kill", "-9", &bird.pid()]).unwrap();
    wait_routes(&speaker, 3, "withdrawal after kill", |r| r.is_empty()).await;
    let status = speaker.peer_status().await.unwrap();
    assert_ne!(status[0].state, PeerState::Established);
}

/// Our speaker (AS 65001, route policy `yaml`) in eBGP with BIRD (AS 65002, exporting
/// [`STATIC4`]) over link `name`; the settings returned are the speaker's without policy.
async fn with_bird_eb4(name: &str, yaml: &str) -> (Link, Bird, Speaker, BgpSettings) {
    let link = Link::new(name);
    let conf = format!(
        "{STATIC4}{}",
        bgp_protocol("calico", B4, 65002, A4, 65001, "ipv4", 3)
    );
    let bird = Bird::start(&link.b, B4, &conf);
    let speaker = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    let plain = settings(65001, A4, vec![peer(B4, 65002, 3)]);
    speaker
        .configure(&with_policy(plain.clone(), yaml))
        .await
        .unwrap();
    (link, bird, speaker, plain)
}

/// Communities of `prefixAdvertisements` and a `BGPFilter`, as BIRD sees what we send.
const POLICY: &str = "
kind: BgpConfiguration
name: default
prefixAdvertisements:
- {cidr: 10.65.0.0/16, communities: ['65001:100', '65535:65281', '65001:7:8']}
---
kind: BgpFilter
name: edge
exportV4: [{action: Reject, matchOperator: Equal, cidr: 10.65.2.0/26}]
importV4: [{action: Reject, matchOperator: In, cidr: 10.66.2.0/24, prefixLength: {min: 25}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn communities_and_filters_as_bird_sees_them() {
    if !privileged("communities_and_filters_as_bird_sees_them") {
        return;
    }
    let (_link, bird, speaker, plain) = with_bird_eb4("sbp", POLICY).await;
    speaker
        .set_exports(&prefixes(&["10.65.1.0/26", "10.65.2.0/26"]))
        .await
        .unwrap();

    // Our route carries the communities, standard (NO_EXPORT among them) and large.
    bird.wait(
        10,
        "show route 10.65.1.0/26 all",
        "our route in BIRD",
        |o| o.contains("via 10.99.0.1"),
    );
    let all = bird.cli("show route 10.65.1.0/26 all").replace(' ', "");
    assert!(
        all.contains("BGP.community:(65001,100)(65535,65281)"),
        "{all}"
    );
    assert!(all.contains("BGP.large_community:(65001,7,8)"), "{all}");
    // The export filter kept 10.65.2.0/26 (sent in the same table) from BIRD; the import
    // filter kept BIRD's 10.66.2.0/26 (a /26 in 10.66.2.0/24 longer than /25) from us.
    let table = bird.cli("show route protocol calico");
    assert!(!table.contains("10.65.2.0/26"), "{table}");
    wait_routes(&speaker, 10, "BIRD's unfiltered route", |r| {
        via(r, "10.66.1.0/26", B4)
    })
    .await;
    let learned = speaker.learned_routes().await.unwrap();
    assert!(route(&learned, "10.66.2.0/26").is_none(), "{learned:?}");

    // Without the filter, both go through, on the same session: our table is sent again
    // and BIRD's asked for again (ROUTE-REFRESH).
    let session = the_session(&speaker).await;
    speaker.configure(&plain).await.unwrap();
    bird.wait(
        10,
        "show route 10.65.2.0/26",
        "the unfiltered route in BIRD",
        |o| o.contains("via 10.99.0.1"),
    );
    wait_routes(&speaker, 10, "BIRD's routes, unfiltered", |r| {
        via(r, "10.66.2.0/26", B4) && via(r, "10.66.1.0/26", B4)
    })
    .await;
    let all = bird.cli("show route 10.65.1.0/26 all");
    assert!(
        !all.contains("BGP.large_community"),
        "communities gone too: {all}"
    );
    // The filter back: the routes it rejects go again, still on the same session.
    let filter_only = with_policy(plain.clone(), POLICY.split("---").nth(1).unwrap());
    speaker.configure(&filter_only).await.unwrap();
    bird.wait(10, "show route 10.65.2.0/26", "our route withdrawn", |o| {
        !o.contains("10.65.2.0/26")
    });
    wait_routes(&speaker, 10, "BIRD's route dropped", |r| {
        route(r, "10.66.2.0/26").is_none() && via(r, "10.66.1.0/26", B4)
    })
    .await;
    assert_eq!(the_session(&speaker).await, session, "no new session");
}

/// The one peering's established time and flap count.
async fn the_session(speaker: &Speaker) -> (Option<std::time::SystemTime>, Option<u64>) {
    let status = speaker.peer_status().await.unwrap();
    assert_eq!(status[0].state, PeerState::Established, "{status:?}");
    let c = &status[0].counters;
    (c.established_since, c.flaps)
}

/// `interface` rules: ours by each exported address's interface, BIRD's routes by the
/// interface our session with BIRD runs over (`eth0` in our namespace).
const BY_INTERFACE: &str = "
kind: BgpFilter
name: by-interface
exportV4: [{action: Reject, interface: 'tap*'}]
importV4:
- {action: Reject, interface: 'eth1'}
- {action: Reject, interface: 'eth*', matchOperator: In, cidr: 10.66.2.0/24}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_filters_as_bird_sees_them() {
    if !privileged("interface_filters_as_bird_sees_them") {
        return;
    }
    let (_link, bird, speaker, plain) = with_bird_eb4("sbi", BY_INTERFACE).await;
    let exports = [
        ("10.65.1.0/26", None),
        ("10.65.3.7/32", Some("tap7")),
        ("10.65.3.8/32", Some("cali8")),
    ]
    .iter()
    .map(|(p, i)| (p.parse().unwrap(), i.map(str::to_string)))
    .collect();
    speaker.set_exported_routes(&exports).await.unwrap();

    // The block and the cali8 address reach BIRD; the tap7 one does not.
    bird.wait(
        10,
        "show route 10.65.3.8/32",
        "cali8's address in BIRD",
        |o| o.contains("via 10.99.0.1"),
    );
    let table = bird.cli("show route protocol calico");
    assert!(table.contains("10.65.1.0/26"), "{table}");
    assert!(!table.contains("10.65.3.7/32"), "{table}");
    // BIRD's 10.66.2.0/26 came over eth0: rejected; 10.66.1.0/26 is in no rule.
    wait_routes(&speaker, 10, "BIRD's route outside the rule", |r| {
        via(r, "10.66.1.0/26", B4)
    })
    .await;
    let learned = speaker.learned_routes().await.unwrap();
    assert!(route(&learned, "10.66.2.0/26").is_none(), "{learned:?}");

    // Without the filter, the tap7 address and 10.66.2.0/26 go through.
    speaker.configure(&plain).await.unwrap();
    bird.wait(10, "show route 10.65.3.7/32", "tap7's address", |o| {
        o.contains("via 10.99.0.1")
    });
    wait_routes(&speaker, 10, "BIRD's routes, unfiltered", |r| {
        via(r, "10.66.2.0/26", B4)
    })
    .await;
}

/// A multihop session from an address on `lo` runs over the interface of the route to the
/// peer (as BIRD resolves `ifname`), read in the sockets' namespace.
#[test]
fn a_sessions_interface_is_its_routes_not_its_source_addresses() {
    if !privileged("a_sessions_interface_is_its_routes_not_its_source_addresses") {
        return;
    }
    let link = Link::new("sbr");
    for cmd in [
        "ip addr add 10.77.0.1/32 dev lo",
        "ip route add 10.88.0.0/24 via 10.99.0.2 dev eth0",
        "ip -6 addr add fd77::1/128 dev lo",
        "ip -6 route add fd88::/64 via fd99::2 dev eth0",
    ] {
        link.a.run(&cmd.split(' ').collect::<Vec<_>>()).unwrap();
    }
    let of = |peer: &str, local: &str| {
        let sockets = sockets_in(link.a.path());
        sockets
            .interface_of(peer.parse().unwrap(), local.parse().unwrap())
            .unwrap()
    };
    assert_eq!(of("10.88.0.9", "10.77.0.1:179").as_deref(), Some("eth0"));
    assert_eq!(of("fd88::9", "[fd77::1]:179").as_deref(), Some("eth0"));
    assert_eq!(
        of("10.99.0.2", "10.99.0.1:179").as_deref(),
        Some("eth0"),
        "single hop"
    );
    assert_eq!(
        of("10.77.0.1", "10.77.0.1:179").as_deref(),
        Some("lo"),
        "ourselves"
    );
}
