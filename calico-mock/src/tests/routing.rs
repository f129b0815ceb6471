//! MockFib forwards by longest prefix and refuses what the kernel refuses; MockBgp speakers
//! learn each other's exports.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use calico_core::dataplane::{
    BackendError, BgpBackend, FibBackend, FibChangeSet, InterfaceSettings, NextHop, PeerState,
    Route, RouteTarget,
};
use ipnet::IpNet;

use crate::bgp::MockBgpFabric;
use crate::fib::MockFib;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn workload(iface: &str) -> RouteTarget {
    RouteTarget::Workload {
        interface: iface.into(),
    }
}

fn via(gw: &str) -> RouteTarget {
    RouteTarget::Via(
        [NextHop {
            gateway: ip(gw),
            interface: None,
        }]
        .into_iter()
        .collect(),
    )
}

fn upsert(routes: Vec<(&str, RouteTarget)>) -> FibChangeSet {
    FibChangeSet {
        upsert: routes
            .into_iter()
            .map(|(d, target)| Route {
                dst: net(d),
                target,
            })
            .collect(),
        ..FibChangeSet::default()
    }
}

#[tokio::test]
async fn fib_longest_prefix_and_refusals() {
    let fib = MockFib::new();
    fib.add_interface("cali-a");
    let report = fib
        .apply(&upsert(vec![
            ("10.0.0.0/16", via("192.0.2.2")),
            ("10.0.1.0/24", RouteTarget::Blackhole),
            ("10.0.1.5/32", workload("cali-a")),
            ("10.0.1.6/32", workload("cali-missing")),
        ]))
        .await
        .unwrap();
    assert_eq!(
        report.failed,
        vec![(
            net("10.0.1.6/32"),
            BackendError::MissingInterface("cali-missing".into())
        )],
        "a route through a missing interface fails alone"
    );
    let lookup = |a: &str| fib.lookup(ip(a)).map(|(n, t)| (n.to_string(), t));
    assert_eq!(
        lookup("10.0.1.5"),
        Some(("10.0.1.5/32".into(), workload("cali-a")))
    );
    assert_eq!(
        lookup("10.0.1.6"),
        Some(("10.0.1.0/24".into(), RouteTarget::Blackhole))
    );
    assert_eq!(
        lookup("10.0.9.9"),
        Some(("10.0.0.0/16".into(), via("192.0.2.2")))
    );
    assert_eq!(lookup("10.1.0.1"), None);

    // Removing an interface removes its routes, as the kernel does.
    fib.remove_interface("cali-a");
    assert_eq!(lookup("10.0.1.5").unwrap().0, "10.0.1.0/24");
    assert!(fib
        .configure_interface("cali-a", InterfaceSettings::default())
        .await
        .is_err());
    fib.add_interface("cali-b");
    fib.configure_interface("cali-b", InterfaceSettings::default())
        .await
        .unwrap();
    assert!(fib.is_configured("cali-b"));

    // Injected refusals.
    fib.refuse(net("10.0.2.0/24"), true);
    let report = fib
        .apply(&upsert(vec![("10.0.2.0/24", RouteTarget::Blackhole)]))
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        fib.dump().await.unwrap().len(),
        2,
        "the two remaining routes, read back"
    );
}

#[tokio::test]
async fn bgp_speakers_exchange_routes_with_ecmp_and_withdraw_when_down() {
    let fabric = MockBgpFabric::new();
    let (a, b, c) = (
        fabric.speaker(ip("192.0.2.1")),
        fabric.speaker(ip("192.0.2.2")),
        fabric.speaker(ip("192.0.2.3")),
    );
    // Two independent subscriptions: each sees every change once.
    let (mut a_news, mut other_news) = (a.subscribe(), a.subscribe());
    let prefixes = |v: &[&str]| v.iter().map(|p| net(p)).collect::<BTreeSet<_>>();
    b.set_exports(&prefixes(&["10.65.1.0/26", "10.65.9.0/26"]))
        .await
        .unwrap();
    c.set_exports(&prefixes(&["10.65.9.0/26"])).await.unwrap();

    let learned = a.learned_routes().await.unwrap();
    let hops = |p: &str| {
        learned
            .iter()
            .find(|r| r.prefix == net(p))
            .map(|r| r.next_hops.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        hops("10.65.1.0/26"),
        [ip("192.0.2.2")].into_iter().collect()
    );
    assert_eq!(
        hops("10.65.9.0/26"),
        [ip("192.0.2.2"), ip("192.0.2.3")].into_iter().collect(),
        "equal paths: ECMP"
    );
    assert!(
        b.learned_routes()
            .await
            .unwrap()
            .iter()
            .all(|r| !r.next_hops.contains(&ip("192.0.2.2"))),
        "a speaker does not learn its own routes"
    );

    // A subscription wakes on a change, and only then.
    let waiting = tokio::time::timeout(Duration::from_secs(5), a_news.changed()).await;
    assert!(waiting.is_ok(), "the exports above are news to a");
    let idle = tokio::time::timeout(Duration::from_millis(20), a_news.changed()).await;
    assert!(idle.is_err(), "nothing changed since");
    let other = tokio::time::timeout(Duration::from_millis(20), other_news.changed()).await;
    assert!(other.is_ok(), "another subscriber sees the same news");
    let late = a.subscribe();
    assert!(
        !late.has_changed().unwrap(),
        "a new subscription starts with no news"
    );

    fabric.set_down(ip("192.0.2.3"), true);
    tokio::time::timeout(Duration::from_secs(5), a_news.changed())
        .await
        .expect("taking a speaker down is a change")
        .unwrap();
    let learned = a.learned_routes().await.unwrap();
    assert_eq!(learned.len(), 2);
    assert!(learned
        .iter()
        .all(|r| r.next_hops == [ip("192.0.2.2")].into_iter().collect()));
    let status = a.peer_status().await.unwrap();
    let state_of = |addr: &str| status.iter().find(|s| s.address == ip(addr)).unwrap().state;
    assert_eq!(state_of("192.0.2.2"), PeerState::Established);
    assert_eq!(state_of("192.0.2.3"), PeerState::Idle);
}
