//! Two of our speakers peering each other over a veth pair between two namespaces: iBGP over
//! IPv4, eBGP over IPv6, announcements, withdrawals, and a peer removed by configuration.

mod speaker_support;

use calico_bgp::speaker::Speaker;
use calico_core::dataplane::{BgpBackend, PeerState};
use calico_netns::fixtures::privileged;
use speaker_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibgp_ipv4_routes_flow_both_ways_and_are_withdrawn() {
    if !privileged("ibgp_ipv4_routes_flow_both_ways_and_are_withdrawn") {
        return;
    }
    let link = Link::new("sp4");
    let a = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    let b = Speaker::with_sockets(sockets_in(link.b.path())).unwrap();
    a.configure(&settings(64512, A4, vec![peer(B4, 64512, 9)]))
        .await
        .unwrap();
    b.configure(&settings(64512, B4, vec![peer(A4, 64512, 9)]))
        .await
        .unwrap();
    a.set_exports(&prefixes(&["10.65.1.0/26", "10.65.1.64/26"]))
        .await
        .unwrap();
    b.set_exports(&prefixes(&["10.65.2.0/26"])).await.unwrap();

    wait_routes(&b, 10, "A's routes at B", |r| {
        via(r, "10.65.1.0/26", A4) && via(r, "10.65.1.64/26", A4)
    })
    .await;
    wait_routes(&a, 10, "B's route at A", |r| {
        via(r, "10.65.2.0/26", B4) && r.len() == 1
    })
    .await;
    wait_state(&a, 5, PeerState::Established).await;
    let status = b.peer_status().await.unwrap();
    assert_eq!(status[0].prefixes_received, 2);
    // A's table came with its End-of-RIB (what an agent restarting waits for).
    let mut status = b.peer_status().await.unwrap();
    for _ in 0..50 {
        if status[0].end_of_rib_received {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = b.peer_status().await.unwrap();
    }
    assert!(status[0].end_of_rib_received, "{status:?}");

    // Withdraw one, add another.
    a.set_exports(&prefixes(&["10.65.1.64/26", "10.65.3.0/26"]))
        .await
        .unwrap();
    wait_routes(&b, 10, "changed exports at B", |r| {
        route(r, "10.65.1.0/26").is_none()
            && via(r, "10.65.3.0/26", A4)
            && via(r, "10.65.1.64/26", A4)
    })
    .await;

    // B drops the peering: A's session goes down and B's routes vanish from A.
    b.configure(&settings(64512, B4, vec![])).await.unwrap();
    wait_routes(&a, 10, "B's routes withdrawn at A", |r| r.is_empty()).await;
    let status = a.peer_status().await.unwrap();
    assert_ne!(status[0].state, PeerState::Established);
    assert!(!status[0].end_of_rib_received, "{status:?}");
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("PeerDeconfigured"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_ipv6_routes_are_learned_with_the_peer_as_next_hop() {
    if !privileged("ebgp_ipv6_routes_are_learned_with_the_peer_as_next_hop") {
        return;
    }
    let link = Link::new("sp6");
    let a = Speaker::with_sockets(sockets_in(link.a.path())).unwrap();
    let b = Speaker::with_sockets(sockets_in(link.b.path())).unwrap();
    a.configure(&settings(65001, A4, vec![peer(B6, 65002, 9)]))
        .await
        .unwrap();
    b.configure(&settings(65002, B4, vec![peer(A6, 65001, 9)]))
        .await
        .unwrap();
    a.set_exports(&prefixes(&["fd00:65:1::/122"]))
        .await
        .unwrap();
    b.set_exports(&prefixes(&["fd00:65:2::/122"]))
        .await
        .unwrap();
    wait_routes(&b, 10, "A's IPv6 route at B", |r| {
        via(r, "fd00:65:1::/122", A6)
    })
    .await;
    wait_routes(&a, 10, "B's IPv6 route at A", |r| {
        via(r, "fd00:65:2::/122", B6)
    })
    .await;
    // eBGP: our own route is not echoed back to us (AS loop) and nothing else is learned.
    assert_eq!(a.learned_routes().await.unwrap().len(), 1);
    a.set_exports(&prefixes(&[])).await.unwrap();
    wait_routes(&b, 10, "withdrawal at B", |r| r.is_empty()).await;
}
