//! The BIRD driver on real BIRD 2 daemons in two namespaces joined by a veth pair: sessions
//! come up (IPv4 and IPv6), exports become the other side's learned routes, withdrawals
//! propagate, and a dead peer is noticed within the hold time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use calico_bgp::bird::{BirdBgp, BirdConfig};
use calico_core::dataplane::{BgpBackend, BgpSettings, LearnedRoute, PeerConfig, PeerState};
use calico_core::model::AsNumber;
use calico_examples::bird_on_linux::bird_bgp;
use calico_netns::fixtures::{privileged, veth, Netns};
use ipnet::IpNet;

fn settings(router_id: &str, asn: u32, peers: &[(&str, u32)]) -> BgpSettings {
    BgpSettings {
        local_as: AsNumber(asn),
        router_id: router_id.parse().unwrap(),
        listen_port: 179,
        cluster_id: None,
        peers: peers
            .iter()
            .map(|(a, remote)| PeerConfig {
                address: a.parse().unwrap(),
                remote_as: AsNumber(*remote),
                password: None,
                hold_time: 3,
                passive: false,
                route_reflector_client: false,
                bfd: None,
                add_path: Default::default(),
                session: Default::default(),
            })
            .collect(),
        policy: Default::default(),
    }
}

fn nets(list: &[&str]) -> BTreeSet<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn prefixes(routes: &[LearnedRoute]) -> BTreeSet<IpNet> {
    routes.iter().map(|r| r.prefix).collect()
}

async fn pair(asn_b: u32) {
    let a = Netns::create("bird-a").unwrap();
    let b = Netns::create("bird-b").unwrap();
    veth(&a, "fab0", &b, "fab0").unwrap();
    a.run(&["ip", "addr", "add", "192.168.10.1/24", "dev", "fab0"])
        .unwrap();
    b.run(&["ip", "addr", "add", "192.168.10.2/24", "dev", "fab0"])
        .unwrap();
    a.run(&["ip", "addr", "add", "fd10::1/64", "dev", "fab0", "nodad"])
        .unwrap();
    b.run(&["ip", "addr", "add", "fd10::2/64", "dev", "fab0", "nodad"])
        .unwrap();
    let dir = std::env::temp_dir().join(format!("calico-bird-{}-{asn_b}", std::process::id()));
    let driver = |ns: &Netns, name: &str| {
        let mut c = BirdConfig::new(dir.join(name));
        c.netns = Some(ns.path().into());
        c.poll = Duration::from_millis(200);
        bird_bgp(c).unwrap()
    };
    let bird_a = driver(&a, "a");
    let bird_b = driver(&b, "b");
    bird_a
        .configure(&settings(
            "192.168.10.1",
            64512,
            &[("192.168.10.2", asn_b), ("fd10::2", asn_b)],
        ))
        .await
        .unwrap();
    bird_b
        .configure(&settings(
            "192.168.10.2",
            asn_b,
            &[("192.168.10.1", 64512), ("fd10::1", 64512)],
        ))
        .await
        .unwrap();
    bird_a
        .set_exports(&nets(&["10.65.0.0/26", "fd00:65::/122"]))
        .await
        .unwrap();
    bird_b
        .set_exports(&nets(&["10.65.1.0/26", "fd00:65:1::/122"]))
        .await
        .unwrap();

    let peers = wait_for(
        "both sessions Established",
        Duration::from_secs(15),
        async || {
            let p = bird_a.peer_status().await.unwrap();
            (p.len() == 2 && p.iter().all(|p| p.state == PeerState::Established)).then_some(p)
        },
    )
    .await;
    assert!(peers.iter().any(|p| p.address.is_ipv6()));

    let learned = wait_for(
        "B's exports learned by A",
        Duration::from_secs(10),
        async || {
            let r = bird_a.learned_routes().await.unwrap();
            (prefixes(&r) == nets(&["10.65.1.0/26", "fd00:65:1::/122"])).then_some(r)
        },
    )
    .await;
    let v4 = learned
        .iter()
        .find(|r| r.prefix.to_string() == "10.65.1.0/26")
        .unwrap();
    assert_eq!(v4.next_hops, ["192.168.10.2".parse().unwrap()].into());
    wait_for(
        "A's exports learned by B",
        Duration::from_secs(10),
        async || {
            let r = bird_b.learned_routes().await.unwrap();
            (prefixes(&r) == nets(&["10.65.0.0/26", "fd00:65::/122"])).then_some(())
        },
    )
    .await;

    // Withdrawal.
    bird_b
        .set_exports(&nets(&["fd00:65:1::/122"]))
        .await
        .unwrap();
    wait_for(
        "the withdrawal reaches A",
        Duration::from_secs(10),
        async || {
            let r = bird_a.learned_routes().await.unwrap();
            (prefixes(&r) == nets(&["fd00:65:1::/122"])).then_some(())
        },
    )
    .await;
    // Sessions survived the reconfiguration.
    assert!(bird_a
        .peer_status()
        .await
        .unwrap()
        .iter()
        .all(|p| p.state == PeerState::Established));

    // B dies: A notices within the hold time (3 s) and forgets B's routes.
    drop(bird_b);
    let t = Instant::now();
    wait_for("A notices B is gone", Duration::from_secs(8), async || {
        let p = bird_a.peer_status().await.unwrap();
        let r = bird_a.learned_routes().await.unwrap();
        (p.iter().all(|p| p.state != PeerState::Established) && r.is_empty()).then_some(())
    })
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "noticed after {:?}",
        t.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibgp_between_two_birds() {
    if !privileged("ibgp_between_two_birds") {
        return;
    }
    pair(64512).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_between_two_birds() {
    if !privileged("ebgp_between_two_birds") {
        return;
    }
    pair(64513).await;
}

/// Hosts on one bridge; returns the fabric (keep it alive) and the host namespaces.
fn lan(n: usize) -> (Netns, Vec<Netns>) {
    let f = Netns::create("bird-lan").unwrap();
    f.run(&["ip", "link", "add", "br0", "type", "bridge"])
        .unwrap();
    f.run(&["ip", "link", "set", "br0", "up"]).unwrap();
    let hosts = (1..=n)
        .map(|i| {
            let h = Netns::create("bird-h").unwrap();
            veth(&h, "fab0", &f, &format!("h{i}")).unwrap();
            f.run(&["ip", "link", "set", &format!("h{i}"), "master", "br0"])
                .unwrap();
            h.run(&[
                "ip",
                "addr",
                "add",
                &format!("192.168.20.{i}/24"),
                "dev",
                "fab0",
            ])
            .unwrap();
            h
        })
        .collect();
    (f, hosts)
}

fn driver_in(ns: &Netns, dir: &std::path::Path) -> BirdBgp {
    let mut c = BirdConfig::new(dir);
    c.netns = Some(ns.path().into());
    c.poll = Duration::from_millis(200);
    bird_bgp(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bird_reflector_spreads_routes_between_its_clients_keeping_their_next_hops() {
    if !privileged("a_bird_reflector_spreads_routes_between_its_clients_keeping_their_next_hops") {
        return;
    }
    let (_f, hosts) = lan(4);
    let dir = std::env::temp_dir().join(format!("calico-bird-rr-{}", std::process::id()));
    let birds: Vec<BirdBgp> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| driver_in(h, &dir.join(format!("h{i}"))))
        .collect();
    // Host 4 reflects for hosts 1-3, which peer with it only.
    let mut rr = settings("192.168.20.4", 64512, &[]);
    rr.cluster_id = Some("1.1.1.1".parse().unwrap());
    for i in 1..=3 {
        rr.peers.insert(PeerConfig {
            address: format!("192.168.20.{i}").parse().unwrap(),
            remote_as: AsNumber(64512),
            password: None,
            hold_time: 3,
            passive: false,
            route_reflector_client: true,
            bfd: None,
            add_path: Default::default(),
            session: Default::default(),
        });
    }
    birds[3].configure(&rr).await.unwrap();
    for (i, bird) in birds.iter().take(3).enumerate() {
        let s = settings(
            &format!("192.168.20.{}", i + 1),
            64512,
            &[("192.168.20.4", 64512)],
        );
        bird.configure(&s).await.unwrap();
        bird.set_exports(&nets(&[&format!("10.65.{}.0/26", i + 1)]))
            .await
            .unwrap();
    }
    for (i, b) in birds.iter().take(3).enumerate() {
        let want: BTreeSet<IpNet> = (1..=3)
            .filter(|j| *j != i + 1)
            .map(|j| format!("10.65.{j}.0/26").parse().unwrap())
            .collect();
        let routes = wait_for("reflected routes", Duration::from_secs(20), async || {
            let r = b.learned_routes().await.unwrap();
            (prefixes(&r) == want).then_some(r)
        })
        .await;
        for r in routes {
            let origin = r.prefix.to_string().split('.').nth(2).unwrap().to_string();
            assert_eq!(
                r.next_hops,
                [format!("192.168.20.{origin}").parse().unwrap()].into(),
                "the next hop is the originating client, not the reflector: {r:?}"
            );
        }
    }
    drop(birds);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The passwords in bird.conf are for the agent's eyes only: the file 0600, its directory 0700.
fn assert_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&dir.join("bird.conf")),
        0o600,
        "bird.conf holds passwords"
    );
    assert_eq!(mode(dir), 0o700, "the directory of bird.conf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_md5_passwords_must_match() {
    if !privileged("tcp_md5_passwords_must_match") {
        return;
    }
    let (_f, hosts) = lan(2);
    let dir = std::env::temp_dir().join(format!("calico-bird-md5-{}", std::process::id()));
    let a = driver_in(&hosts[0], &dir.join("a"));
    let b = driver_in(&hosts[1], &dir.join("b"));
    let with_password = |me: &str, peer: &str, pw: &str| {
        let mut s = settings(me, 64512, &[(peer, 64512)]);
        let mut p = s.peers.pop_first().unwrap();
        p.password = Some(pw.into());
        s.peers.insert(p);
        s
    };
    a.configure(&with_password("192.168.20.1", "192.168.20.2", "right"))
        .await
        .unwrap();
    assert_private(&dir.join("a"));
    b.configure(&with_password("192.168.20.2", "192.168.20.1", "wrong"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        a.peer_status()
            .await
            .unwrap()
            .iter()
            .all(|p| p.state != PeerState::Established),
        "a wrong password never establishes"
    );
    b.configure(&with_password("192.168.20.2", "192.168.20.1", "right"))
        .await
        .unwrap();
    wait_for(
        "the session with matching passwords",
        Duration::from_secs(20),
        async || {
            let p = a.peer_status().await.unwrap();
            p.iter()
                .all(|p| p.state == PeerState::Established)
                .then_some(())
        },
    )
    .await;
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_to_node_mesh_from_the_model_spreads_every_block() {
    if !privileged("a_node_to_node_mesh_from_the_model_spreads_every_block") {
        return;
    }
    let (_f, hosts) = lan(3);
    let dir = std::env::temp_dir().join(format!("calico-bird-mesh-{}", std::process::id()));
    let mut text = String::new();
    for i in 1..=3 {
        text += &format!("---\nkind: Node\nname: n{i}\nbgp: {{ipv4Address: 192.168.20.{i}}}\n");
    }
    let model = calico_core::model::Model::from_resources(
        calico_core::model::parse_resources(&text).unwrap(),
    )
    .unwrap();
    let mut birds = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let node = format!("n{}", i + 1);
        let settings = calico_core::routes::peering::bgp_settings(&node, &model).unwrap();
        assert_eq!(settings.peers.len(), 2);
        let b = driver_in(h, &dir.join(&node));
        b.configure(&settings).await.unwrap();
        b.set_exports(&nets(&[&format!("10.65.{}.0/26", i + 1)]))
            .await
            .unwrap();
        birds.push(b);
    }
    for (i, b) in birds.iter().enumerate() {
        let want: BTreeSet<IpNet> = (1..=3)
            .filter(|j| *j != i + 1)
            .map(|j| format!("10.65.{j}.0/26").parse().unwrap())
            .collect();
        wait_for(
            "the mesh spreads every block",
            Duration::from_secs(20),
            async || {
                let peers = b.peer_status().await.unwrap();
                let r = b.learned_routes().await.unwrap();
                (peers.iter().all(|p| p.state == PeerState::Established) && prefixes(&r) == want)
                    .then_some(())
            },
        )
        .await;
    }
    drop(birds);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `BGPFilter` rules with `interface` through the BIRD driver: A's workload addresses are
/// device routes of their interfaces (veth ends), and B's routes come over A's `fab0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bird_driver_matches_filter_interfaces() {
    if !privileged("the_bird_driver_matches_filter_interfaces") {
        return;
    }
    let a = Netns::create("bird-ifa").unwrap();
    let b = Netns::create("bird-ifb").unwrap();
    veth(&a, "fab0", &b, "fab0").unwrap();
    a.run(&["ip", "addr", "add", "192.168.11.1/24", "dev", "fab0"])
        .unwrap();
    b.run(&["ip", "addr", "add", "192.168.11.2/24", "dev", "fab0"])
        .unwrap();
    for dev in ["tap7", "cali8"] {
        let other = format!("{dev}p");
        a.run(&[
            "ip", "link", "add", dev, "type", "veth", "peer", "name", &other,
        ])
        .unwrap();
        for end in [dev, &other] {
            a.run(&["ip", "link", "set", end, "up"]).unwrap();
        }
    }
    let dir = std::env::temp_dir().join(format!("calico-bird-if-{}", std::process::id()));
    let bird_a = driver_in(&a, &dir.join("a"));
    let bird_b = driver_in(&b, &dir.join("b"));
    let plain = settings("192.168.11.1", 64512, &[("192.168.11.2", 64513)]);
    let policy = "
kind: BgpFilter
name: by-interface
exportV4:
- {action: Reject, interface: 'tap*'}
- {action: Reject, interface: '*', matchOperator: In, cidr: 10.65.1.0/24}
importV4:
- {action: Reject, interface: 'eth1'}
- {action: Reject, interface: 'fab*', matchOperator: In, cidr: 10.66.2.0/24}
";
    let resources = calico_core::model::parse_resources(policy).unwrap();
    let mut filtered = plain.clone();
    let peer = "192.168.11.2".parse().unwrap();
    filtered.policy = calico_core::dataplane::RoutePolicy::from_resources(&resources, &[peer]);
    bird_a.configure(&filtered).await.unwrap();
    bird_b
        .configure(&settings("192.168.11.2", 64513, &[("192.168.11.1", 64512)]))
        .await
        .unwrap();
    let exports = [
        ("10.65.1.0/26", None),
        ("10.65.3.7/32", Some("tap7")),
        ("10.65.3.8/32", Some("cali8")),
    ]
    .iter()
    .map(|(p, i)| (p.parse().unwrap(), i.map(str::to_string)))
    .collect();
    bird_a.set_exported_routes(&exports).await.unwrap();
    bird_b
        .set_exports(&nets(&["10.66.1.0/26", "10.66.2.0/26"]))
        .await
        .unwrap();

    let learned_by = async |bird: &BirdBgp, want: &[&str], what: &str| {
        wait_for(what, Duration::from_secs(15), async || {
            let r = bird.learned_routes().await.unwrap();
            (prefixes(&r) == nets(want)).then_some(())
        })
        .await
    };
    // The block is a blackhole: no interface, so even `*` does not match it.
    learned_by(
        &bird_b,
        &["10.65.1.0/26", "10.65.3.8/32"],
        "A's routes but tap7's",
    )
    .await;
    learned_by(&bird_a, &["10.66.1.0/26"], "B's routes but 10.66.2.0/26").await;
    // Without the filter, all of them (tap7's route is live: the rule kept it back).
    bird_a.configure(&plain).await.unwrap();
    let all_a = ["10.65.1.0/26", "10.65.3.7/32", "10.65.3.8/32"];
    learned_by(&bird_b, &all_a, "all of A's routes").await;
    learned_by(&bird_a, &["10.66.1.0/26", "10.66.2.0/26"], "all of B's").await;
    drop((bird_a, bird_b));
    let _ = std::fs::remove_dir_all(&dir);
}
