//! Route reflection (RFC 4456) between three of our speakers on loopback addresses of one
//! namespace; and a speaker that accepts peers on a listener handed to it.

mod speaker_support;

use calico_bgp::speaker::{Speaker, SpeakerOptions};
use calico_core::dataplane::{BgpBackend, PeerState};
use calico_netns::fixtures::{privileged, Netns};
use speaker_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_passes_client_routes_between_clients() {
    if !privileged("a_reflector_passes_client_routes_between_clients") {
        return;
    }
    let ns = Netns::create("sprr").unwrap();
    let (r, c1, c2) = ("127.0.0.1", "127.0.0.2", "127.0.0.3");
    let reflector = speaker_at(&ns, r);
    let client1 = speaker_at(&ns, c1);
    let client2 = speaker_at(&ns, c2);
    let client_of = |address: &str, rr_client: bool| {
        let mut p = peer(address, 64512, 9);
        p.route_reflector_client = rr_client;
        p
    };
    let mut rr = settings(64512, r, vec![client_of(c1, true), client_of(c2, true)]);
    rr.cluster_id = Some("10.255.0.1".parse().unwrap());
    reflector.configure(&rr).await.unwrap();
    client1
        .configure(&settings(64512, c1, vec![peer(r, 64512, 9)]))
        .await
        .unwrap();
    client2
        .configure(&settings(64512, c2, vec![peer(r, 64512, 9)]))
        .await
        .unwrap();
    client1
        .set_exports(&prefixes(&["10.65.1.0/26"]))
        .await
        .unwrap();

    // Reflected with the next hop unchanged (client 1).
    wait_routes(&client2, 10, "reflected route at client 2", |rt| {
        via(rt, "10.65.1.0/26", c1)
    })
    .await;
    wait_routes(&reflector, 10, "client route at the reflector", |rt| {
        via(rt, "10.65.1.0/26", c1)
    })
    .await;
    // Client 1 does not learn its own route back (ORIGINATOR_ID loop detection or split
    // horizon).
    assert!(client1.learned_routes().await.unwrap().is_empty());

    // Without reflection, iBGP routes are not passed between iBGP peers.
    let plain = settings(64512, r, vec![client_of(c1, false), client_of(c2, false)]);
    reflector.configure(&plain).await.unwrap();
    wait_state(&reflector, 15, PeerState::Established).await;
    wait_routes(&reflector, 10, "route at the plain iBGP speaker", |rt| {
        via(rt, "10.65.1.0/26", c1)
    })
    .await;
    // Client 2's session is up again too; give a (wrongly) reflected route time to arrive.
    wait_routes(&client2, 10, "client 2's session cleared", |rt| {
        rt.is_empty()
    })
    .await;
    wait_state(&client2, 15, PeerState::Established).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(client2.learned_routes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_accepts_passive_peers_on_a_given_listener() {
    if !privileged("a_speaker_accepts_passive_peers_on_a_given_listener") {
        return;
    }
    let link = Link::new("spl");
    // The listener is bound by the caller, inside namespace b, on a non-standard port.
    let listener = link
        .b
        .enter(|| std::net::TcpListener::bind((B4, 1179)))
        .unwrap()
        .unwrap();
    let b = Speaker::with_listener(listener, SpeakerOptions::default()).unwrap();
    let a = Speaker::with_options(SpeakerOptions {
        peer_port: 1179,
        sockets: sockets_in(link.a.path()),
        ..SpeakerOptions::default()
    })
    .unwrap();
    let mut passive = peer(A4, 65001, 9);
    passive.passive = true;
    b.configure(&settings(65002, B4, vec![passive]))
        .await
        .unwrap();
    a.configure(&settings(65001, A4, vec![peer(B4, 65002, 9)]))
        .await
        .unwrap();
    a.set_exports(&prefixes(&["10.65.7.0/26"])).await.unwrap();
    wait_routes(&b, 10, "route at the passive side", |rt| {
        via(rt, "10.65.7.0/26", A4)
    })
    .await;
}
