//! Route reflection (RFC 4456) between our speaker and real BIRD 2 daemons, all on loopback
//! addresses of one namespace: our speaker reflecting for BIRD clients (and one of ours), and
//! a BIRD reflector serving three of our speakers. What BIRD received is read from
//! `birdc show route all` (BGP.originator_id, BGP.cluster_list, BGP.next_hop).

mod speaker_support;

use calico_core::dataplane::BgpBackend;
use calico_netns::fixtures::{privileged, Netns};
use speaker_support::bird::{self, Bird};
use speaker_support::*;

const AS: u32 = 64512;
const RR: &str = "127.0.0.1";
const CLUSTER: &str = "10.255.0.1";

/// [`bird::ibgp_on_loopback`] in our AS.
fn bird_ibgp(name: &str, local: &str, neighbor: &str, extra: &str, channel: &str) -> String {
    bird::ibgp_on_loopback(AS, name, (local, neighbor), extra, channel)
}

/// The attribute lines BIRD shows for `prefix` (empty when it has no such route).
fn bird_route(bird: &Bird, prefix: &str) -> String {
    bird.cli(&format!("show route {prefix} all"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_reflector_serves_bird_clients_and_drops_cluster_loops() {
    if !privileged("our_reflector_serves_bird_clients_and_drops_cluster_loops") {
        return;
    }
    let ns = Netns::create("rrb").unwrap();
    let (b1, b2, s3) = ("127.0.1.1", "127.0.1.2", "127.0.1.3");

    // Our reflector, cluster 10.255.0.1, for two BIRD clients and one of our speakers.
    let reflector = speaker_at(&ns, RR);
    let client = |address: &str| {
        let mut p = peer(address, AS, 9);
        p.route_reflector_client = true;
        p
    };
    let mut rr = settings(AS, RR, vec![client(b1), client(b2), client(s3)]);
    rr.cluster_id = Some(CLUSTER.parse().unwrap());
    reflector.configure(&rr).await.unwrap();

    // BIRD client 1 originates a plain route, one whose CLUSTER_LIST already holds another
    // cluster (10.255.0.2 = (2815, 2)), and one that looped through our cluster (10.255.0.1
    // = (2815, 1)); a last one ("st2") is switched on later.
    let statics = "protocol static st1 { ipv4; route 10.66.1.0/26 blackhole; route 10.66.8.0/26 blackhole; route 10.66.9.0/26 blackhole; }\n\
         protocol static st2 { disabled; ipv4; route 10.66.10.0/26 blackhole; }\n";
    let export = "import all; export filter { if source != RTS_STATIC then reject; \
         if net = 10.66.8.0/26 then bgp_cluster_list.add((2815,2)); \
         if net = 10.66.9.0/26 then bgp_cluster_list.add((2815,1)); accept; };";
    let bird1 = Bird::start(
        &ns,
        b1,
        &format!("{statics}{}", bird_ibgp("up", b1, RR, "", export)),
    );
    let bird2 = Bird::start(
        &ns,
        b2,
        &format!(
            "protocol static st1 {{ ipv4; route 10.66.2.0/26 blackhole; }}\n{}",
            bird_ibgp("up", b2, RR, "", "import all; export all;")
        ),
    );
    let ours = speaker_at(&ns, s3);
    ours.configure(&settings(AS, s3, vec![peer(RR, AS, 9)]))
        .await
        .unwrap();
    ours.set_exports(&prefixes(&["10.65.3.0/26"]))
        .await
        .unwrap();

    // BIRD client 1's route reaches BIRD client 2 with its next hop unchanged, ORIGINATOR_ID
    // client 1 and CLUSTER_LIST our cluster.
    bird2.wait(
        15,
        "show route 10.66.1.0/26 all",
        "client 1's route at client 2",
        |o| o.contains("BGP.cluster_list"),
    );
    let seen = bird_route(&bird2, "10.66.1.0/26");
    assert!(seen.contains(&format!("BGP.next_hop: {b1}")), "{seen}");
    assert!(seen.contains(&format!("BGP.originator_id: {b1}")), "{seen}");
    assert!(
        seen.contains(&format!("BGP.cluster_list: {CLUSTER}\n")),
        "{seen}"
    );
    // A CLUSTER_LIST from elsewhere gets ours in front.
    bird2.wait(
        10,
        "show route 10.66.8.0/26 all",
        "the route with a foreign cluster list at client 2",
        |o| o.contains("BGP.cluster_list"),
    );
    let seen = bird_route(&bird2, "10.66.8.0/26");
    assert!(
        seen.contains(&format!("BGP.cluster_list: {CLUSTER} 10.255.0.2")),
        "{seen}"
    );
    // Client 2's route and our client's route reach the others the same way.
    wait_routes(&ours, 10, "BIRD clients' routes at our client", |rt| {
        via(rt, "10.66.1.0/26", b1) && via(rt, "10.66.2.0/26", b2)
    })
    .await;
    bird1.wait(
        10,
        "show route 10.65.3.0/26 all",
        "our client's route at BIRD client 1",
        |o| o.contains(&format!("BGP.originator_id: {s3}")),
    );
    let seen = bird_route(&bird1, "10.65.3.0/26");
    assert!(seen.contains(&format!("BGP.next_hop: {s3}")), "{seen}");
    assert!(
        seen.contains(&format!("BGP.cluster_list: {CLUSTER}")),
        "{seen}"
    );

    // The looped route was sent in client 1's first table, before anything of the "st2"
    // protocol: once that has been reflected, the looped one has been dealt with.
    bird1.cli("enable st2");
    bird2.wait(
        10,
        "show route 10.66.10.0/26",
        "the later route at client 2",
        |o| o.contains("[up "),
    );
    wait_routes(&reflector, 10, "the later route at the reflector", |rt| {
        via(rt, "10.66.10.0/26", b1)
    })
    .await;
    let exported = bird1.cli("show route 10.66.9.0/26 export up all");
    assert!(
        exported.contains(&format!("BGP.cluster_list: {CLUSTER}")),
        "BIRD client 1 did export the looped route: {exported}"
    );
    let at_reflector = reflector.learned_routes().await.unwrap();
    assert!(
        route(&at_reflector, "10.66.9.0/26").is_none(),
        "{at_reflector:?}"
    );
    assert!(route(&at_reflector, "10.66.8.0/26").is_some());
    let at_client2 = bird_route(&bird2, "10.66.9.0/26");
    assert!(!at_client2.contains("BGP"), "{at_client2}");
    assert!(route(&ours.learned_routes().await.unwrap(), "10.66.9.0/26").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bird_reflector_serves_our_clients() {
    if !privileged("a_bird_reflector_serves_our_clients") {
        return;
    }
    let ns = Netns::create("rrb").unwrap();
    let (s1, s2, s3) = ("127.0.1.1", "127.0.1.2", "127.0.1.3");
    // BIRD reflects for three of our speakers, and originates a route whose ORIGINATOR_ID is
    // our client 1 (as if it had looped): client 1 must drop it, client 2 takes it.
    let client_block = |name: &str, address: &str| {
        bird_ibgp(
            name,
            RR,
            address,
            &format!("  rr client;\n  rr cluster id {CLUSTER};\n"),
            "import all; export filter { if net = 10.66.7.0/26 then bgp_originator_id = 127.0.1.1; accept; };",
        )
    };
    let conf = format!(
        "protocol static st1 {{ ipv4; route 10.66.7.0/26 blackhole; }}\n{}{}{}",
        client_block("c1", s1),
        client_block("c2", s2),
        client_block("c3", s3)
    );
    let bird = Bird::start(&ns, RR, &conf);
    let client1 = speaker_at(&ns, s1);
    let client2 = speaker_at(&ns, s2);
    let client3 = speaker_at(&ns, s3);
    client1
        .configure(&settings(AS, s1, vec![peer(RR, AS, 9)]))
        .await
        .unwrap();
    client2
        .configure(&settings(AS, s2, vec![peer(RR, AS, 9)]))
        .await
        .unwrap();
    client3
        .configure(&settings(AS, s3, vec![peer(RR, AS, 9)]))
        .await
        .unwrap();
    client1
        .set_exports(&prefixes(&["10.65.1.0/26"]))
        .await
        .unwrap();
    client2
        .set_exports(&prefixes(&["10.65.2.0/26"]))
        .await
        .unwrap();
    client3
        .set_exports(&prefixes(&["10.65.3.0/26"]))
        .await
        .unwrap();

    // Each client's route reaches the other with the originating client as next hop.
    wait_routes(&client2, 15, "client 1's route at client 2", |rt| {
        via(rt, "10.65.1.0/26", s1) && via(rt, "10.66.7.0/26", RR)
    })
    .await;
    wait_routes(
        &client1,
        10,
        "client 2's and 3's routes at client 1",
        |rt| via(rt, "10.65.2.0/26", s2) && via(rt, "10.65.3.0/26", s3),
    )
    .await;
    wait_routes(
        &client3,
        10,
        "client 1's and 2's routes at client 3",
        |rt| {
            via(rt, "10.65.1.0/26", s1)
                && via(rt, "10.65.2.0/26", s2)
                && via(rt, "10.66.7.0/26", RR)
        },
    )
    .await;
    // BIRD has our routes as iBGP routes from its clients.
    let seen = bird_route(&bird, "10.65.1.0/26");
    assert!(seen.contains(&format!("BGP.next_hop: {s1}")), "{seen}");
    // Client 1 does not take a route carrying its own router id as ORIGINATOR_ID, and is
    // not sent its own route back.
    let at1 = client1.learned_routes().await.unwrap();
    assert!(route(&at1, "10.66.7.0/26").is_none(), "{at1:?}");
    assert!(route(&at1, "10.65.1.0/26").is_none(), "{at1:?}");

    // A withdrawal at client 1 reaches client 2 through the reflector.
    client1.set_exports(&prefixes(&[])).await.unwrap();
    wait_routes(&client2, 10, "the withdrawal at client 2", |rt| {
        route(rt, "10.65.1.0/26").is_none() && via(rt, "10.66.7.0/26", RR)
    })
    .await;
    wait_routes(&client3, 10, "the withdrawal at client 3", |rt| {
        route(rt, "10.65.1.0/26").is_none() && via(rt, "10.65.2.0/26", s2)
    })
    .await;
}
