//! ADD-PATH (RFC 7911) over real sessions, all on loopback addresses of one namespace: two
//! hosts announce one prefix (two next hops, as over two fabric planes) to a route
//! reflector, and a client that negotiated ADD-PATH receive gets both paths and installs
//! both next hops (ECMP) where a client without it gets the single best path. Between our
//! own speakers, from our reflector to a BIRD 2 client (`add paths rx`), and from a BIRD 2
//! reflector (`add paths tx`) to our client.

mod speaker_support;

use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{AddPathConfig, BgpBackend, PeerConfig};
use calico_netns::fixtures::{privileged, Netns};
use speaker_support::bird::{self, Bird};
use speaker_support::*;

const AS: u32 = 64512;
const RR: &str = "127.0.0.1";
const H1: &str = "127.0.0.2";
const H2: &str = "127.0.0.3";
const CLIENT: &str = "127.0.0.4";
const PLAIN: &str = "127.0.0.5";
const SERVICE: &str = "10.65.0.0/26";

/// An iBGP peering with ADD-PATH as given.
fn ibgp(address: &str, rr_client: bool, send: bool, receive: bool) -> PeerConfig {
    PeerConfig {
        route_reflector_client: rr_client,
        add_path: AddPathConfig { send, receive },
        ..peer(address, AS, 9)
    }
}

/// Our reflector for the two hosts and for `clients`, offering ADD-PATH send to those.
async fn reflector(ns: &Netns, clients: &[&str]) -> Speaker {
    let reflector = speaker_at(ns, RR);
    let mut peers = vec![ibgp(H1, true, false, false), ibgp(H2, true, false, false)];
    peers.extend(clients.iter().map(|c| ibgp(c, true, true, false)));
    reflector.configure(&settings(AS, RR, peers)).await.unwrap();
    reflector
}

/// Our two hosts, each announcing `SERVICE` to `rr` with itself as next hop.
async fn hosts(ns: &Netns, rr: &str) -> (Speaker, Speaker) {
    let h1 = speaker_at(ns, H1);
    let h2 = speaker_at(ns, H2);
    for (h, address) in [(&h1, H1), (&h2, H2)] {
        h.configure(&settings(AS, address, vec![peer(rr, AS, 9)]))
            .await
            .unwrap();
        h.set_exports(&prefixes(&[SERVICE])).await.unwrap();
    }
    (h1, h2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_reflector_gives_an_add_path_client_every_equal_path() {
    if !privileged("our_reflector_gives_an_add_path_client_every_equal_path") {
        return;
    }
    let ns = Netns::create("apr").unwrap();
    let reflector = reflector(&ns, &[CLIENT, PLAIN]).await;
    let client = speaker_at(&ns, CLIENT);
    client
        .configure(&settings(AS, CLIENT, vec![ibgp(RR, false, false, true)]))
        .await
        .unwrap();
    // The reflector offers to send several paths, but this client does not take them.
    let plain = speaker_at(&ns, PLAIN);
    plain
        .configure(&settings(AS, PLAIN, vec![peer(RR, AS, 9)]))
        .await
        .unwrap();
    let (h1, _h2) = hosts(&ns, RR).await;

    wait_routes(&reflector, 15, "ECMP at the reflector", |rt| {
        via_all(rt, SERVICE, &[H1, H2])
    })
    .await;
    wait_routes(&client, 10, "both paths at the ADD-PATH client", |rt| {
        via_all(rt, SERVICE, &[H1, H2])
    })
    .await;
    // The best path only (host 1: lower ORIGINATOR_ID) at the client without ADD-PATH.
    wait_routes(&plain, 10, "the best path at the plain client", |rt| {
        via_all(rt, SERVICE, &[H1])
    })
    .await;

    // Host 1 withdraws: its path is withdrawn by its path id, host 2's stays.
    h1.set_exports(&prefixes(&[])).await.unwrap();
    wait_routes(&client, 10, "host 2's path alone at the client", |rt| {
        via_all(rt, SERVICE, &[H2])
    })
    .await;
    wait_routes(&plain, 10, "host 2's path at the plain client", |rt| {
        via_all(rt, SERVICE, &[H2])
    })
    .await;
    // Announced again: both paths again.
    h1.set_exports(&prefixes(&[SERVICE])).await.unwrap();
    wait_routes(&client, 10, "both paths again at the client", |rt| {
        via_all(rt, SERVICE, &[H1, H2])
    })
    .await;
    // Host 1 goes away altogether.
    drop(h1);
    wait_routes(&client, 10, "host 2's path after host 1 left", |rt| {
        via_all(rt, SERVICE, &[H2])
    })
    .await;
}

/// [`bird::ibgp_on_loopback`] in our AS.
fn bird_ibgp(name: &str, local: &str, neighbor: &str, extra: &str, channel: &str) -> String {
    bird::ibgp_on_loopback(AS, name, (local, neighbor), extra, channel)
}

/// The BGP next hops of BIRD's routes for `prefix`, one per route.
fn bird_next_hops(bird: &Bird, prefix: &str) -> Vec<String> {
    let mut hops: Vec<String> = bird
        .cli(&format!("show route {prefix} all"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("BGP.next_hop: "))
        .map(str::to_string)
        .collect();
    hops.sort();
    hops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bird_client_with_add_paths_rx_gets_both_paths_from_our_reflector() {
    if !privileged("a_bird_client_with_add_paths_rx_gets_both_paths_from_our_reflector") {
        return;
    }
    let ns = Netns::create("apb").unwrap();
    let _reflector = reflector(&ns, &[CLIENT]).await;
    let bird = Bird::start(
        &ns,
        CLIENT,
        &bird_ibgp(
            "up",
            CLIENT,
            RR,
            "",
            "add paths rx; import all; export none;",
        ),
    );
    let (h1, _h2) = hosts(&ns, RR).await;

    let both = vec![H1.to_string(), H2.to_string()];
    bird.wait(
        15,
        &format!("show route {SERVICE} all"),
        "both paths at BIRD",
        |_| bird_next_hops(&bird, SERVICE) == both,
    );
    // Both came over the one session, as two routes.
    let shown = bird.cli(&format!("show route {SERVICE} all"));
    assert_eq!(shown.matches(&format!("from {RR}")).count(), 2, "{shown}");

    // Host 1's withdrawal removes its path only.
    h1.set_exports(&prefixes(&[])).await.unwrap();
    let one = vec![H2.to_string()];
    bird.wait(
        10,
        &format!("show route {SERVICE} all"),
        "host 2's path alone at BIRD",
        |_| bird_next_hops(&bird, SERVICE) == one,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_add_path_client_gets_both_paths_from_a_bird_reflector_with_add_paths_tx() {
    if !privileged("our_add_path_client_gets_both_paths_from_a_bird_reflector_with_add_paths_tx") {
        return;
    }
    let ns = Netns::create("apt").unwrap();
    let client_block = |name: &str, address: &str, channel: &str| {
        bird_ibgp(name, RR, address, "  rr client;\n", channel)
    };
    let conf = format!(
        "{}{}{}",
        client_block("h1", H1, "import all; export none;"),
        client_block("h2", H2, "import all; export none;"),
        client_block("c", CLIENT, "add paths tx; import none; export all;"),
    );
    let bird = Bird::start(&ns, RR, &conf);
    let client = speaker_at(&ns, CLIENT);
    client
        .configure(&settings(AS, CLIENT, vec![ibgp(RR, false, false, true)]))
        .await
        .unwrap();
    let (h1, _h2) = hosts(&ns, RR).await;

    wait_routes(&client, 15, "both of BIRD's paths at our client", |rt| {
        via_all(rt, SERVICE, &[H1, H2])
    })
    .await;
    assert_eq!(
        bird_next_hops(&bird, SERVICE),
        vec![H1.to_string(), H2.to_string()]
    );
    // BIRD withdraws host 1's path by its path id: host 2's stays.
    h1.set_exports(&prefixes(&[])).await.unwrap();
    wait_routes(&client, 10, "host 2's path alone at our client", |rt| {
        via_all(rt, SERVICE, &[H2])
    })
    .await;
}
