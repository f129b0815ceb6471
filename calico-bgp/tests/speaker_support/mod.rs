//! Shared by the speaker tests: two namespaces joined by a veth pair with IPv4 and IPv6
//! addresses, settings builders, and waiting for a speaker to reach a condition.

#![allow(dead_code)]

pub mod bird;
pub mod frr;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use calico_bgp::speaker::{Speaker, SpeakerOptions};
use calico_core::dataplane::{BgpBackend, BgpSettings, LearnedRoute, PeerConfig, PeerState};
use calico_core::model::AsNumber;
use calico_netns::fixtures::{veth, Netns};
use ipnet::IpNet;

mod sockets;
pub use sockets::sockets_in;

/// A speaker in `ns` listening on (and connecting from) `address`.
pub fn speaker_at(ns: &Netns, address: &str) -> Speaker {
    Speaker::with_options(SpeakerOptions {
        listen_address: address.parse().unwrap(),
        sockets: sockets_in(ns.path()),
        ..SpeakerOptions::default()
    })
    .unwrap()
}

/// Two namespaces, `a` (10.99.0.1, fd99::1) and `b` (10.99.0.2, fd99::2), on one link.
pub struct Link {
    pub a: Netns,
    pub b: Netns,
}

pub const A4: &str = "10.99.0.1";
pub const B4: &str = "10.99.0.2";
pub const A6: &str = "fd99::1";
pub const B6: &str = "fd99::2";

impl Link {
    pub fn new(name: &str) -> Link {
        let a = Netns::create(&format!("{name}a")).unwrap();
        let b = Netns::create(&format!("{name}b")).unwrap();
        veth(&a, "eth0", &b, "eth0").unwrap();
        for (ns, v4, v6) in [(&a, A4, A6), (&b, B4, B6)] {
            ns.run(&["ip", "addr", "add", &format!("{v4}/24"), "dev", "eth0"])
                .unwrap();
            ns.run(&[
                "ip",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "eth0",
                "nodad",
            ])
            .unwrap();
        }
        Link { a, b }
    }
}

/// Hosts `1..=n` on one bridge (in a fabric namespace of its own), host `i` at
/// [`Lan::address`]`(i)` on its `eth0`.
pub struct Lan {
    pub fabric: Netns,
    pub hosts: Vec<Netns>,
}

impl Lan {
    pub fn new(name: &str, n: usize) -> Lan {
        let fabric = Netns::create(&format!("{name}f")).unwrap();
        fabric
            .run(&["ip", "link", "add", "br0", "type", "bridge"])
            .unwrap();
        fabric.run(&["ip", "link", "set", "br0", "up"]).unwrap();
        let hosts = (1..=n)
            .map(|i| {
                let h = Netns::create(&format!("{name}{i}")).unwrap();
                let port = format!("h{i}");
                veth(&h, "eth0", &fabric, &port).unwrap();
                fabric
                    .run(&["ip", "link", "set", &port, "master", "br0"])
                    .unwrap();
                let cidr = format!("{}/24", Lan::address(i));
                h.run(&["ip", "addr", "add", &cidr, "dev", "eth0"]).unwrap();
                h
            })
            .collect();
        Lan { fabric, hosts }
    }

    /// The IPv4 address of host `i` (from 1).
    pub fn address(i: usize) -> String {
        format!("10.98.1.{i}")
    }
}

pub fn peer(address: &str, remote_as: u32, hold_time: u16) -> PeerConfig {
    PeerConfig {
        address: address.parse().unwrap(),
        remote_as: AsNumber(remote_as),
        password: None,
        hold_time,
        passive: false,
        route_reflector_client: false,
        bfd: None,
        add_path: Default::default(),
        session: Default::default(),
    }
}

pub fn settings(local_as: u32, router_id: &str, peers: Vec<PeerConfig>) -> BgpSettings {
    BgpSettings {
        local_as: AsNumber(local_as),
        router_id: router_id.parse().unwrap(),
        listen_port: 179,
        cluster_id: None,
        peers: peers.into_iter().collect(),
        policy: Default::default(),
    }
}

pub fn prefixes(list: &[&str]) -> BTreeSet<IpNet> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// Waits (at most `secs`) until `check` holds for the speaker's learned routes; panics with
/// what was there otherwise.
pub async fn wait_routes(
    speaker: &Speaker,
    secs: u64,
    what: &str,
    check: impl Fn(&[LearnedRoute]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let routes = speaker.learned_routes().await.unwrap();
        if check(&routes) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let status = speaker.peer_status().await.unwrap();
            panic!("timed out waiting for {what}: routes {routes:?}, peers {status:?}");
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(200), speaker.subscribe().changed()).await;
    }
}

/// Waits until every peer of the speaker is in `state`.
pub async fn wait_state(speaker: &Speaker, secs: u64, state: PeerState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let status = speaker.peer_status().await.unwrap();
        if !status.is_empty() && status.iter().all(|s| s.state == state) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {state:?}: {status:?}");
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(200), speaker.subscribe().changed()).await;
    }
}

pub fn route<'a>(routes: &'a [LearnedRoute], prefix: &str) -> Option<&'a LearnedRoute> {
    let prefix: IpNet = prefix.parse().unwrap();
    routes.iter().find(|r| r.prefix == prefix)
}

pub fn via(routes: &[LearnedRoute], prefix: &str, next_hop: &str) -> bool {
    let hop: IpAddr = next_hop.parse().unwrap();
    route(routes, prefix).is_some_and(|r| r.next_hops == BTreeSet::from([hop]))
}

/// Whether `prefix` is learned with exactly the next hops `hops` (ECMP).
pub fn via_all(routes: &[LearnedRoute], prefix: &str, hops: &[&str]) -> bool {
    let want: BTreeSet<IpAddr> = hops.iter().map(|h| h.parse().unwrap()).collect();
    route(routes, prefix).is_some_and(|r| r.next_hops == want)
}

/// `s` with the route policy of `yaml` (`BgpFilter`s on every peer, in order, and the
/// `prefixAdvertisements` of its `BgpConfiguration`).
pub fn with_policy(mut s: BgpSettings, yaml: &str) -> BgpSettings {
    let resources = calico_core::model::parse_resources(yaml).unwrap();
    let peers: Vec<IpAddr> = s.peers.iter().map(|p| p.address).collect();
    s.policy = calico_core::dataplane::RoutePolicy::from_resources(&resources, &peers);
    s
}
