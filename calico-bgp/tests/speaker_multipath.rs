//! Multipath over real sessions: one prefix from two peers with equal paths is learned with
//! both next hops (ECMP); when one peer withdraws it or goes away, the route shrinks to the
//! other next hop instead of disappearing. All on loopback addresses of one namespace: two of
//! our speakers over eBGP from one neighbour AS, and two BIRD 2 daemons over iBGP.

mod speaker_support;

use calico_core::dataplane::BgpBackend;
use calico_netns::fixtures::{privileged, Netns};
use speaker_support::bird::Bird;
use speaker_support::*;

const R: &str = "127.0.0.1";
const P1: &str = "127.0.0.2";
const P2: &str = "127.0.0.3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecmp_from_two_ebgp_peers_of_one_as_shrinks_on_withdrawal() {
    if !privileged("ecmp_from_two_ebgp_peers_of_one_as_shrinks_on_withdrawal") {
        return;
    }
    let ns = Netns::create("mpe").unwrap();
    let receiver = speaker_at(&ns, R);
    let p1 = speaker_at(&ns, P1);
    let p2 = speaker_at(&ns, P2);
    receiver
        .configure(&settings(
            65000,
            R,
            vec![peer(P1, 65001, 9), peer(P2, 65001, 9)],
        ))
        .await
        .unwrap();
    for (p, address) in [(&p1, P1), (&p2, P2)] {
        p.configure(&settings(65001, address, vec![peer(R, 65000, 9)]))
            .await
            .unwrap();
        p.set_exports(&prefixes(&["10.65.0.0/26", "10.65.9.0/26"]))
            .await
            .unwrap();
    }
    // Equal paths (AS_PATH [65001], ORIGIN IGP, no MED, both eBGP): both next hops.
    wait_routes(&receiver, 15, "the ECMP route", |rt| {
        via_all(rt, "10.65.0.0/26", &[P1, P2]) && via_all(rt, "10.65.9.0/26", &[P1, P2])
    })
    .await;

    // Peer 1 (the best path: lower router id) withdraws one prefix: it keeps peer 2's.
    p1.set_exports(&prefixes(&["10.65.9.0/26"])).await.unwrap();
    wait_routes(&receiver, 10, "one next hop after the withdrawal", |rt| {
        via_all(rt, "10.65.0.0/26", &[P2]) && via_all(rt, "10.65.9.0/26", &[P1, P2])
    })
    .await;
    // Announced again: two next hops again.
    p1.set_exports(&prefixes(&["10.65.0.0/26", "10.65.9.0/26"]))
        .await
        .unwrap();
    wait_routes(&receiver, 10, "ECMP after the new announcement", |rt| {
        via_all(rt, "10.65.0.0/26", &[P1, P2])
    })
    .await;
    // Peer 2 goes away (its speaker closes the session): everything shrinks to peer 1.
    drop(p2);
    wait_routes(&receiver, 10, "one next hop after peer 2 left", |rt| {
        via_all(rt, "10.65.0.0/26", &[P1]) && via_all(rt, "10.65.9.0/26", &[P1])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecmp_from_two_bird_ibgp_peers_shrinks_on_withdrawal() {
    if !privileged("ecmp_from_two_bird_ibgp_peers_shrinks_on_withdrawal") {
        return;
    }
    let ns = Netns::create("mpb").unwrap();
    let bird_at = |address: &str| {
        Bird::start(
            &ns,
            address,
            &format!(
                "protocol static st1 {{ ipv4; route 10.66.0.0/26 blackhole; }}\n\
                 protocol bgp up {{\n  local {address} as 64512;\n  neighbor {R} as 64512;\n  strict bind;\n  hold time 9;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 2;\n  ipv4 {{ import all; export all; }};\n}}\n"
            ),
        )
    };
    let bird1 = bird_at(P1);
    let bird2 = bird_at(P2);
    let receiver = speaker_at(&ns, R);
    receiver
        .configure(&settings(
            64512,
            R,
            vec![peer(P1, 64512, 9), peer(P2, 64512, 9)],
        ))
        .await
        .unwrap();
    // Equal iBGP paths (LOCAL_PREF 100, empty AS_PATH, ORIGIN IGP, BIRD's own next hop).
    wait_routes(&receiver, 15, "the ECMP route", |rt| {
        via_all(rt, "10.66.0.0/26", &[P1, P2])
    })
    .await;

    bird1.cli("disable st1");
    wait_routes(
        &receiver,
        10,
        "one next hop after BIRD 1's withdrawal",
        |rt| via_all(rt, "10.66.0.0/26", &[P2]),
    )
    .await;
    bird1.cli("enable st1");
    wait_routes(
        &receiver,
        10,
        "ECMP after BIRD 1's new announcement",
        |rt| via_all(rt, "10.66.0.0/26", &[P1, P2]),
    )
    .await;
    // BIRD 2 is killed: the closed connection ends the session; BIRD 1's path remains.
    ns.run(&["kill", "-9", &bird2.pid()]).unwrap();
    wait_routes(&receiver, 10, "one next hop after BIRD 2 died", |rt| {
        via_all(rt, "10.66.0.0/26", &[P1])
    })
    .await;
    drop(bird1);
}
