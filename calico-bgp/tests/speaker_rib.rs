//! The RIB alone: decision process, multipath, withdrawals, loop detection, and what each
//! kind of peer is sent.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use calico_bgp::packet::attribute::thin_vec;
use calico_bgp::packet::{AfiSafi, AsPath, Origin, PathAttributes, Update};
use calico_bgp::rib::{PeerId, PeerInfo, Rib, RibSettings};
use ipnet::IpNet;

const LOCAL_AS: u32 = 64512;

fn rib() -> Rib {
    Rib::new(RibSettings {
        local_as: LOCAL_AS,
        router_id: Ipv4Addr::new(10, 0, 0, 100),
        cluster_id: None,
    })
}

/// Peer `n` (192.0.2.n, router id 10.0.0.n), taking IPv4 and IPv6.
fn info(n: u8, remote_as: u32, rr_client: bool) -> PeerInfo {
    PeerInfo {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
        remote_as,
        router_id: Ipv4Addr::new(10, 0, 0, n),
        ebgp: remote_as != LOCAL_AS,
        rr_client,
        local_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
        interface: None,
        families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        allow_local_as: 0,
        next_hop_mode: Default::default(),
    }
}

/// Our own routes: prefixes and their interfaces.
fn exports(list: &[(&str, Option<&str>)]) -> calico_core::dataplane::ExportedRoutes {
    list.iter()
        .map(|(p, i)| (p.parse().unwrap(), i.map(str::to_string)))
        .collect()
}

fn peer(rib: &mut Rib, n: u8, remote_as: u32, rr_client: bool) -> PeerId {
    let id = PeerId(n.into());
    rib.peer_up(id, info(n, remote_as, rr_client));
    id
}

fn attrs(path: &[u32], next_hop: u8) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.to_vec())),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, next_hop)),
        ..PathAttributes::default()
    }
}

fn announce(rib: &mut Rib, from: PeerId, prefix: &str, attributes: PathAttributes) {
    rib.apply(
        from,
        &Update {
            attributes,
            nlri: vec![prefix.parse().unwrap()],
            ..Update::default()
        },
    );
}

fn best_peer(rib: &Rib, prefix: &str) -> Option<PeerId> {
    rib.best(&prefix.parse().unwrap()).first().map(|p| p.peer)
}

fn next_hops(rib: &Rib, prefix: &str) -> BTreeSet<IpAddr> {
    let prefix: IpNet = prefix.parse().unwrap();
    rib.learned_routes()
        .into_iter()
        .find(|r| r.prefix == prefix)
        .map(|r| r.next_hops)
        .unwrap_or_default()
}

const P: &str = "10.1.0.0/24";

#[test]
fn local_pref_beats_path_length() {
    let mut rib = rib();
    let a = peer(&mut rib, 1, LOCAL_AS, false);
    let b = peer(&mut rib, 2, LOCAL_AS, false);
    announce(&mut rib, a, P, attrs(&[65001], 1));
    announce(
        &mut rib,
        b,
        P,
        PathAttributes {
            local_pref: Some(200),
            ..attrs(&[65001, 65002, 65003], 2)
        },
    );
    assert_eq!(best_peer(&rib, P), Some(b));
}

#[test]
fn shorter_as_path_then_lower_origin_win() {
    let mut rib = rib();
    let a = peer(&mut rib, 1, 65001, false);
    let b = peer(&mut rib, 2, 65002, false);
    announce(&mut rib, a, P, attrs(&[65001, 65009], 1));
    announce(&mut rib, b, P, attrs(&[65002], 2));
    assert_eq!(best_peer(&rib, P), Some(b));
    announce(
        &mut rib,
        b,
        P,
        PathAttributes {
            origin: Some(Origin::Incomplete),
            ..attrs(&[65002, 65009], 2)
        },
    );
    assert_eq!(
        best_peer(&rib, P),
        Some(a),
        "equal length: IGP origin beats incomplete"
    );
}

#[test]
fn med_compares_only_within_one_neighbour_as() {
    let mut rib = rib();
    let a = peer(&mut rib, 1, 65001, false);
    let b = peer(&mut rib, 2, 65001, false);
    let c = peer(&mut rib, 3, 65003, false);
    announce(
        &mut rib,
        a,
        P,
        PathAttributes {
            med: Some(50),
            ..attrs(&[65001], 1)
        },
    );
    announce(
        &mut rib,
        b,
        P,
        PathAttributes {
            med: Some(10),
            ..attrs(&[65001], 2)
        },
    );
    // From another AS with a worse MED: not compared with the others' MED.
    announce(
        &mut rib,
        c,
        P,
        PathAttributes {
            med: Some(99),
            ..attrs(&[65003], 3)
        },
    );
    let best: Vec<PeerId> = rib
        .best(&P.parse().unwrap())
        .iter()
        .map(|p| p.peer)
        .collect();
    assert!(
        best.contains(&b) && best.contains(&c) && !best.contains(&a),
        "{best:?}"
    );
}

#[test]
fn ebgp_beats_ibgp_and_equal_paths_form_the_ecmp_set() {
    let mut rib = rib();
    let i = peer(&mut rib, 1, LOCAL_AS, false);
    let e1 = peer(&mut rib, 2, 65001, false);
    let e2 = peer(&mut rib, 3, 65002, false);
    announce(&mut rib, i, P, attrs(&[65001], 1));
    announce(&mut rib, e1, P, attrs(&[65001], 2));
    assert_eq!(best_peer(&rib, P), Some(e1));
    assert_eq!(next_hops(&rib, P).len(), 1);
    announce(&mut rib, e2, P, attrs(&[65002], 3));
    assert_eq!(
        next_hops(&rib, P),
        ["192.0.2.2", "192.0.2.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect()
    );
    // Lowest router id is best among equals.
    assert_eq!(best_peer(&rib, P), Some(e1));
}

#[test]
fn originator_id_and_cluster_list_break_ties() {
    let mut rib = rib();
    let a = peer(&mut rib, 1, LOCAL_AS, false);
    let b = peer(&mut rib, 2, LOCAL_AS, false);
    // a (router id 10.0.0.1) reflects a route originated by 10.0.0.50; b's own id 10.0.0.2
    // is lower, so b wins.
    announce(
        &mut rib,
        a,
        P,
        PathAttributes {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 50)),
            ..attrs(&[], 1)
        },
    );
    announce(&mut rib, b, P, attrs(&[], 2));
    assert_eq!(best_peer(&rib, P), Some(b));
    // Same originator: the shorter cluster list wins.
    let orig = Some(Ipv4Addr::new(10, 0, 0, 7));
    announce(
        &mut rib,
        a,
        P,
        PathAttributes {
            originator_id: orig,
            cluster_list: thin_vec![Ipv4Addr::new(1, 1, 1, 1)],
            ..attrs(&[], 1)
        },
    );
    announce(
        &mut rib,
        b,
        P,
        PathAttributes {
            originator_id: orig,
            cluster_list: thin_vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)],
            ..attrs(&[], 2)
        },
    );
    assert_eq!(best_peer(&rib, P), Some(a));
}

#[test]
fn withdrawals_treat_as_withdraw_and_peer_down_remove_paths() {
    let mut rib = rib();
    let a = peer(&mut rib, 1, 65001, false);
    let b = peer(&mut rib, 2, 65002, false);
    announce(&mut rib, a, P, attrs(&[65001], 1));
    announce(&mut rib, b, P, attrs(&[65002, 65003], 2));
    announce(&mut rib, b, "10.2.0.0/16", attrs(&[65002], 2));
    assert_eq!((rib.received(a), rib.received(b)), (1, 2));
    let changes = rib.apply(
        a,
        &Update {
            withdrawn: vec![P.parse().unwrap()],
            ..Update::default()
        },
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(best_peer(&rib, P), Some(b));
    // An announcement with a malformed attribute replaces the previous one by nothing.
    let mut bad = Update {
        attributes: attrs(&[65002], 2),
        nlri: vec![P.parse().unwrap()],
        ..Update::default()
    };
    bad.errors.push(calico_bgp::packet::AttributeError {
        type_code: 1,
        action: calico_bgp::packet::ErrorAction::TreatAsWithdraw,
        reason: "test".into(),
        code: calico_bgp::packet::ErrorCode::from_octets(3, 6),
    });
    rib.apply(b, &bad);
    assert_eq!(best_peer(&rib, P), None);
    let changes = rib.peer_down(b);
    assert_eq!(changes.len(), 1);
    assert!(rib.is_empty());
}

#[test]
fn loops_are_rejected() {
    let mut rib = rib();
    let e = peer(&mut rib, 1, 65001, false);
    let i = peer(&mut rib, 2, LOCAL_AS, false);
    announce(&mut rib, e, P, attrs(&[65001, LOCAL_AS], 1));
    announce(
        &mut rib,
        i,
        P,
        PathAttributes {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 100)),
            ..attrs(&[], 2)
        },
    );
    announce(
        &mut rib,
        i,
        "10.3.0.0/16",
        PathAttributes {
            cluster_list: thin_vec![Ipv4Addr::new(10, 0, 0, 100)],
            ..attrs(&[], 2)
        },
    );
    assert!(rib.is_empty());
}

#[test]
fn mp_reach_ipv6_routes_are_learned() {
    let mut rib = rib();
    let a = peer(&mut rib, 1, 65001, false);
    let mut at = attrs(&[65001], 1);
    at.next_hop = None;
    at.mp_reach = Some(Box::new(calico_bgp::packet::MpReach {
        family: AfiSafi::IPV6_UNICAST,
        next_hop: calico_bgp::packet::MpNextHop {
            global: "fd00::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        },
        nlri: vec!["fd00:1::/64".parse().unwrap()],
        path_ids: Vec::new(),
    }));
    rib.apply(
        a,
        &Update {
            attributes: at,
            ..Update::default()
        },
    );
    assert_eq!(
        next_hops(&rib, "fd00:1::/64"),
        ["fd00::1".parse().unwrap()].into()
    );
}

#[test]
fn exports_follow_ibgp_ebgp_and_reflection_rules() {
    let mut rib = rib();
    let ibgp = peer(&mut rib, 1, LOCAL_AS, false);
    let ibgp2 = peer(&mut rib, 2, LOCAL_AS, false);
    let client = peer(&mut rib, 3, LOCAL_AS, true);
    let ebgp = peer(&mut rib, 4, 65001, false);
    rib.set_exports(exports(&[("10.9.0.0/26", None)]));
    let own: IpNet = "10.9.0.0/26".parse().unwrap();

    let to_i = rib.exporter(ibgp).unwrap().route(&own).unwrap();
    assert_eq!(to_i.path.local_pref, Some(100));
    assert_eq!(to_i.path.as_path, Some(AsPath::default()));
    assert_eq!(to_i.path.origin, Some(Origin::Igp));
    assert_eq!(to_i.next_hop, "192.0.2.100".parse::<IpAddr>().unwrap());
    let to_e = rib.exporter(ebgp).unwrap().route(&own).unwrap();
    assert_eq!(to_e.path.as_path, Some(AsPath::sequence(vec![LOCAL_AS])));
    assert_eq!(to_e.path.local_pref, None);

    // Learned from an ordinary iBGP peer: to eBGP (prepended, next hop self), to the client
    // (reflected), not to the other non-client, not back to the sender.
    announce(
        &mut rib,
        ibgp,
        P,
        PathAttributes {
            local_pref: Some(150),
            med: Some(5),
            ..attrs(&[], 1)
        },
    );
    let p: IpNet = P.parse().unwrap();
    assert!(rib.exporter(ibgp).unwrap().route(&p).is_none());
    assert!(rib.exporter(ibgp2).unwrap().route(&p).is_none());
    let e = rib.exporter(ebgp).unwrap().route(&p).unwrap();
    assert_eq!(
        (e.path.as_path.clone(), e.path.med, e.path.local_pref),
        (Some(AsPath::sequence(vec![LOCAL_AS])), None, None)
    );
    assert_eq!(e.next_hop, "192.0.2.100".parse::<IpAddr>().unwrap());
    let c = rib.exporter(client).unwrap().route(&p).unwrap();
    assert_eq!(c.path.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(c.path.cluster_list, vec![Ipv4Addr::new(10, 0, 0, 100)]);
    assert_eq!(
        (c.path.local_pref, c.next_hop),
        (Some(150), "192.0.2.1".parse().unwrap())
    );

    // Learned from the client: reflected to both non-clients.
    let q = "10.4.0.0/24";
    announce(&mut rib, client, q, attrs(&[], 3));
    let q: IpNet = q.parse().unwrap();
    assert!(rib.exporter(ibgp).unwrap().route(&q).is_some());
    assert!(rib.exporter(ibgp2).unwrap().route(&q).is_some());
    assert!(rib.exporter(client).unwrap().route(&q).is_none());

    // Learned over eBGP: to iBGP with next hop kept and LOCAL_PREF set.
    let r = "10.5.0.0/24";
    announce(
        &mut rib,
        ebgp,
        r,
        PathAttributes {
            local_pref: Some(999),
            ..attrs(&[65001], 4)
        },
    );
    let to_i = rib
        .exporter(ibgp)
        .unwrap()
        .route(&r.parse().unwrap())
        .unwrap();
    assert_eq!(
        (to_i.path.local_pref, to_i.next_hop),
        (Some(100), "192.0.2.4".parse().unwrap())
    );
}

#[test]
fn graceful_restart_keeps_stale_paths_until_refreshed_or_swept() {
    use calico_bgp::packet::update::end_of_rib;
    let mut rib = rib();
    let a = peer(&mut rib, 1, 65001, false);
    let b = peer(&mut rib, 2, 65002, false);
    for p in ["10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"] {
        announce(&mut rib, a, p, attrs(&[65001], 1));
    }
    // B has a longer path to one of them: A's stays best while stale.
    announce(&mut rib, b, "10.1.3.0/24", attrs(&[65002, 65009], 2));

    // A restarts: everything kept, marked stale, nothing changes for anyone.
    let (stale, changes) = rib.peer_restarting(a, &[AfiSafi::IPV4_UNICAST]);
    assert_eq!((stale, changes.len()), (3, 0));
    assert_eq!(rib.stale(a, AfiSafi::IPV4_UNICAST), 3);
    assert_eq!(best_peer(&rib, "10.1.3.0/24"), Some(a));
    assert_eq!(rib.received(a), 3);

    // A is back (its count survives) and announces one again: no longer stale.
    peer(&mut rib, 1, 65001, false);
    assert_eq!(rib.received(a), 3);
    announce(&mut rib, a, "10.1.1.0/24", attrs(&[65001], 1));
    assert_eq!(rib.stale(a, AfiSafi::IPV4_UNICAST), 2);

    // The sweep (on its End-of-RIB) removes the others; B takes over 10.1.3.0/24.
    assert_eq!(
        end_of_rib(AfiSafi::IPV4_UNICAST).end_of_rib_family(),
        Some(AfiSafi::IPV4_UNICAST)
    );
    assert_eq!(
        end_of_rib(AfiSafi::IPV6_UNICAST).end_of_rib_family(),
        Some(AfiSafi::IPV6_UNICAST)
    );
    let changes = rib.sweep_stale(a, AfiSafi::IPV4_UNICAST);
    assert_eq!(changes.len(), 2);
    assert_eq!(rib.stale(a, AfiSafi::IPV4_UNICAST), 0);
    assert_eq!(best_peer(&rib, "10.1.1.0/24"), Some(a));
    assert_eq!(best_peer(&rib, "10.1.2.0/24"), None);
    assert_eq!(best_peer(&rib, "10.1.3.0/24"), Some(b));
    assert_eq!(rib.received(a), 1);

    // A family the peer did not list is not kept.
    let (stale, changes) = rib.peer_restarting(a, &[AfiSafi::IPV6_UNICAST]);
    assert_eq!((stale, changes.len()), (0, 1));
    assert_eq!(best_peer(&rib, "10.1.1.0/24"), None);
}

/// RFC 4271 §5: "If a path with an unrecognized transitive optional attribute is accepted
/// and passed to other BGP peers, then the unrecognized transitive optional attribute of that
/// path MUST be passed, along with the path, to other BGP peers with the Partial bit in the
/// Attribute Flags octet set to 1."
#[test]
fn an_unknown_transitive_attribute_is_passed_on_with_the_partial_bit() {
    use calico_bgp::packet::attribute::{
        RawAttribute, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE,
    };
    let mut rib = rib();
    let ebgp = peer(&mut rib, 4, 65001, false);
    let ibgp = peer(&mut rib, 1, LOCAL_AS, false);
    let other_ebgp = peer(&mut rib, 5, 65002, false);
    let unknown = RawAttribute {
        flags: FLAG_OPTIONAL | FLAG_TRANSITIVE,
        type_code: 99,
        value: vec![1, 2, 3],
    };
    announce(
        &mut rib,
        ebgp,
        P,
        PathAttributes {
            unknown: thin_vec![unknown.clone()],
            ..attrs(&[65001], 4)
        },
    );
    let p: IpNet = P.parse().unwrap();
    for to in [ibgp, other_ebgp] {
        let out = rib.exporter(to).unwrap().route(&p).unwrap();
        assert_eq!(
            out.path.unknown,
            vec![RawAttribute {
                flags: FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL,
                ..unknown.clone()
            }]
        );
    }
}

// ADD-PATH (RFC 7911): paths are keyed by (peer, path identifier).

fn announce_path(rib: &mut Rib, from: PeerId, prefix: &str, id: u32, attributes: PathAttributes) {
    rib.apply(
        from,
        &Update {
            attributes,
            nlri: vec![prefix.parse().unwrap()],
            nlri_path_ids: vec![id],
            ..Update::default()
        },
    );
}

fn withdraw_path(rib: &mut Rib, from: PeerId, prefix: &str, id: u32) {
    rib.apply(
        from,
        &Update {
            withdrawn: vec![prefix.parse().unwrap()],
            withdrawn_path_ids: vec![id],
            ..Update::default()
        },
    );
}

fn hops(list: &[u8]) -> BTreeSet<IpAddr> {
    list.iter()
        .map(|n| IpAddr::V4(Ipv4Addr::new(192, 0, 2, *n)))
        .collect()
}

#[test]
fn several_paths_of_one_peer_coexist_and_are_withdrawn_by_path_id() {
    let mut rib = rib();
    let rr = peer(&mut rib, 1, LOCAL_AS, false);
    // Two equal paths of one prefix from one peer (a reflector with ADD-PATH): ECMP.
    announce_path(&mut rib, rr, P, 1, attrs(&[], 11));
    announce_path(&mut rib, rr, P, 2, attrs(&[], 12));
    assert_eq!(rib.paths(&P.parse().unwrap()).len(), 2);
    assert_eq!(next_hops(&rib, P), hops(&[11, 12]));
    assert_eq!(rib.received(rr), 2);
    // Path 1 replaced (same identifier): still two paths.
    announce_path(&mut rib, rr, P, 1, attrs(&[], 13));
    assert_eq!(next_hops(&rib, P), hops(&[12, 13]));
    // Withdrawing path 2 leaves path 1.
    withdraw_path(&mut rib, rr, P, 2);
    assert_eq!(next_hops(&rib, P), hops(&[13]));
    // Withdrawing an identifier never announced changes nothing.
    withdraw_path(&mut rib, rr, P, 7);
    assert_eq!(next_hops(&rib, P), hops(&[13]));
    withdraw_path(&mut rib, rr, P, 1);
    assert!(rib.is_empty());
}

#[test]
fn a_peers_paths_all_go_when_it_goes_down_and_all_stay_stale_on_restart() {
    let mut rib = rib();
    let rr = peer(&mut rib, 1, LOCAL_AS, false);
    announce_path(&mut rib, rr, P, 1, attrs(&[], 11));
    announce_path(&mut rib, rr, P, 2, attrs(&[], 12));
    // Graceful restart keeps both paths, stale.
    rib.peer_restarting(rr, &[AfiSafi::IPV4_UNICAST]);
    assert_eq!(rib.stale(rr, AfiSafi::IPV4_UNICAST), 2);
    assert_eq!(next_hops(&rib, P), hops(&[11, 12]));
    // Back: path 2 announced again is no longer stale; the sweep removes path 1 only.
    peer(&mut rib, 1, LOCAL_AS, false);
    announce_path(&mut rib, rr, P, 2, attrs(&[], 12));
    assert_eq!(rib.stale(rr, AfiSafi::IPV4_UNICAST), 1);
    rib.sweep_stale(rr, AfiSafi::IPV4_UNICAST);
    assert_eq!(next_hops(&rib, P), hops(&[12]));
    rib.peer_down(rr);
    assert!(rib.is_empty());
}

fn policy(yaml: &str) -> calico_core::dataplane::RoutePolicy {
    let resources = calico_core::model::parse_resources(yaml).unwrap();
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    calico_core::dataplane::RoutePolicy::from_resources(&resources, &[peer])
}

#[test]
fn import_filters_drop_rejected_prefixes_of_their_peer_only() {
    let mut rib = rib();
    rib.set_policy(policy(
        "kind: BgpFilter\nname: f\nimportV4: [{action: Reject, matchOperator: In, cidr: 10.1.0.0/16}]\n",
    ));
    let filtered = peer(&mut rib, 1, 65001, false);
    let other = peer(&mut rib, 2, 65002, false);
    announce(&mut rib, filtered, P, attrs(&[65001], 1));
    announce(&mut rib, filtered, "10.2.0.0/24", attrs(&[65001], 1));
    assert_eq!(best_peer(&rib, P), None, "rejected on import");
    assert_eq!(
        best_peer(&rib, "10.2.0.0/24"),
        Some(filtered),
        "no rule: accepted"
    );
    announce(&mut rib, other, P, attrs(&[65002], 2));
    assert_eq!(
        best_peer(&rib, P),
        Some(other),
        "another peer's route is not filtered"
    );
}

#[test]
fn export_filters_and_communities_shape_what_a_peer_is_sent() {
    let mut rib = rib();
    rib.set_policy(policy(
        "kind: BgpFilter
name: f
exportV4:
- {action: Reject, matchOperator: Equal, cidr: 10.9.0.0/24}
- {action: Reject, source: RemotePeers}
---
kind: BgpConfiguration
name: default
prefixAdvertisements:
- {cidr: 10.0.0.0/8, communities: ['65001:100', '65001:7:8']}
- {cidr: 10.9.0.0/16, communities: ['65001:100', '1:2']}
",
    ));
    let filtered = peer(&mut rib, 1, 65001, false);
    let other = peer(&mut rib, 2, 65002, false);
    rib.set_exports(exports(&[("10.9.0.0/24", None), ("10.9.1.0/24", None)]));
    announce(&mut rib, other, P, attrs(&[65002], 2));
    let mut to_filtered = rib.exporter(filtered).unwrap();
    assert!(
        to_filtered.route(&"10.9.0.0/24".parse().unwrap()).is_none(),
        "rule 0"
    );
    assert!(
        to_filtered.route(&P.parse().unwrap()).is_none(),
        "learned: rule 1"
    );
    let sent = to_filtered
        .route(&"10.9.1.0/24".parse().unwrap())
        .expect("no rule matches");
    assert_eq!(sent.path.communities, vec![65001 << 16 | 100, 1 << 16 | 2]);
    assert_eq!(sent.path.large_communities, vec![[65001, 7, 8]]);
    let mut to_filtered_back = rib.exporter(other).unwrap();
    let local = to_filtered_back
        .route(&"10.9.0.0/24".parse().unwrap())
        .expect("unfiltered peer");
    assert_eq!(
        local.path.communities.len(),
        2,
        "communities go to every peer"
    );
    assert!(
        to_filtered_back.route(&P.parse().unwrap()).is_none(),
        "never back to its source"
    );
}

/// Peer `n`, whose session runs over `interface`.
fn peer_on(rib: &mut Rib, n: u8, remote_as: u32, interface: &str) -> PeerId {
    let id = PeerId(n.into());
    let info = PeerInfo {
        interface: Some(interface.into()),
        ..info(n, remote_as, false)
    };
    rib.peer_up(id, info);
    id
}

#[test]
fn interface_rules_match_our_workloads_interfaces_and_the_peers_sessions() {
    let mut rib = rib();
    rib.set_policy(policy(
        "kind: BgpFilter
name: f
exportV4:
- {action: Reject, interface: 'tap*'}
- {action: Reject, interface: 'wan*', source: RemotePeers}
importV4:
- {action: Reject, interface: wan0}
",
    ));
    // The filters are peer 1's, whose session runs over wan0.
    let filtered = peer_on(&mut rib, 1, 65001, "wan0");
    let lan = peer_on(&mut rib, 2, 65002, "lan1");
    let wan = peer_on(&mut rib, 3, 65003, "wan2");
    rib.set_exports(exports(&[
        ("10.9.0.0/26", None),
        ("10.9.1.5/32", Some("tap12")),
        ("10.9.1.6/32", Some("cali12")),
    ]));
    announce(&mut rib, filtered, "10.1.0.0/24", attrs(&[65001], 1));
    assert_eq!(best_peer(&rib, "10.1.0.0/24"), None, "imported over wan0");
    announce(&mut rib, lan, P, attrs(&[65002], 2));
    announce(&mut rib, wan, "10.3.0.0/24", attrs(&[65003], 3));
    assert_eq!(
        best_peer(&rib, "10.3.0.0/24"),
        Some(wan),
        "wan2 is not wan0"
    );
    let mut to = rib.exporter(filtered).unwrap();
    let sent = |to: &mut calico_bgp::rib::export::Exporter<'_>, p: &str| {
        to.route(&p.parse().unwrap()).is_some()
    };
    assert!(sent(&mut to, "10.9.0.0/26"), "a block has no interface");
    assert!(!sent(&mut to, "10.9.1.5/32"), "tap*");
    assert!(sent(&mut to, "10.9.1.6/32"), "cali12 is no tap");
    assert!(sent(&mut to, P), "learned over lan1");
    assert!(!sent(&mut to, "10.3.0.0/24"), "learned over wan2: wan*");
    // A workload moved to a tap interface: judged again.
    let (added, removed) = rib.set_exports(exports(&[("10.9.1.6/32", Some("tap13"))]));
    let moved: IpNet = "10.9.1.6/32".parse().unwrap();
    assert_eq!(added, vec![moved], "the same prefix, another interface");
    assert_eq!(removed.len(), 2);
    let mut to = rib.exporter(filtered).unwrap();
    assert!(!sent(&mut to, "10.9.1.6/32"), "tap13");
}

#[test]
fn well_known_communities_are_honoured_on_what_is_passed_on() {
    let mut rib = rib();
    let from = peer(&mut rib, 1, 65001, false);
    let ibgp = peer(&mut rib, 2, LOCAL_AS, true);
    let ebgp = peer(&mut rib, 3, 65003, false);
    let with = |c: u32| PathAttributes {
        communities: thin_vec![c],
        ..attrs(&[65001], 1)
    };
    announce(&mut rib, from, "10.1.1.0/24", with(0xFFFF_FF01)); // NO_EXPORT
    announce(&mut rib, from, "10.1.2.0/24", with(0xFFFF_FF02)); // NO_ADVERTISE
    announce(&mut rib, from, "10.1.3.0/24", with(65001 << 16 | 1));
    let sent = |to: PeerId, p: &str| {
        rib.exporter(to)
            .unwrap()
            .route(&p.parse().unwrap())
            .is_some()
    };
    assert!(
        sent(ibgp, "10.1.1.0/24") && !sent(ebgp, "10.1.1.0/24"),
        "NO_EXPORT"
    );
    assert!(
        !sent(ibgp, "10.1.2.0/24") && !sent(ebgp, "10.1.2.0/24"),
        "NO_ADVERTISE"
    );
    assert!(sent(ibgp, "10.1.3.0/24") && sent(ebgp, "10.1.3.0/24"));
}

/// A peer set up with allowas-in `allow` and next hop mode `mode`.
fn peer_with(
    rib: &mut Rib,
    n: u8,
    remote_as: u32,
    rr_client: bool,
    allow: u8,
    mode: calico_core::dataplane::NextHopMode,
) -> PeerId {
    let id = PeerId(n.into());
    let info = PeerInfo {
        allow_local_as: allow,
        next_hop_mode: mode,
        ..info(n, remote_as, rr_client)
    };
    rib.peer_up(id, info);
    id
}

#[test]
fn allowas_in_accepts_our_as_up_to_the_allowed_count() {
    use calico_core::dataplane::NextHopMode::Auto;
    let mut rib = rib();
    let e = peer_with(&mut rib, 1, 65001, false, 2, Auto);
    announce(&mut rib, e, "10.1.0.0/16", attrs(&[65001, LOCAL_AS], 1));
    announce(
        &mut rib,
        e,
        "10.2.0.0/16",
        attrs(&[65001, LOCAL_AS, 65002, LOCAL_AS], 1),
    );
    announce(
        &mut rib,
        e,
        "10.3.0.0/16",
        attrs(&[65001, LOCAL_AS, LOCAL_AS, LOCAL_AS], 1),
    );
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(e));
    assert_eq!(best_peer(&rib, "10.2.0.0/16"), Some(e), "twice is allowed");
    assert_eq!(
        best_peer(&rib, "10.3.0.0/16"),
        None,
        "three times is a loop"
    );
}

#[test]
fn next_hop_self_and_keep_override_bgps_rules() {
    use calico_core::dataplane::NextHopMode::{Auto, Keep, SelfAddress};
    let mut rib = Rib::new(RibSettings {
        local_as: LOCAL_AS,
        router_id: Ipv4Addr::new(10, 0, 0, 100),
        cluster_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
    });
    let source = peer_with(&mut rib, 1, LOCAL_AS, true, 0, Auto);
    let auto = peer_with(&mut rib, 2, LOCAL_AS, true, 0, Auto);
    let selfish = peer_with(&mut rib, 3, LOCAL_AS, true, 0, SelfAddress);
    let ext_auto = peer_with(&mut rib, 4, 65001, false, 0, Auto);
    let ext_keep = peer_with(&mut rib, 5, 65001, false, 0, Keep);
    announce(&mut rib, source, P, attrs(&[], 1));
    let p: IpNet = P.parse().unwrap();
    let nh = |rib: &Rib, to| rib.exporter(to).unwrap().route(&p).unwrap().next_hop;
    let ours: IpAddr = "192.0.2.100".parse().unwrap();
    let original: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(nh(&rib, auto), original, "reflected unchanged");
    assert_eq!(nh(&rib, selfish), ours, "next hop self");
    assert_eq!(nh(&rib, ext_auto), ours, "eBGP: ours");
    assert_eq!(nh(&rib, ext_keep), original, "next hop keep");
    // Our own routes carry our address whatever the mode.
    rib.set_exports(exports(&[("10.9.0.0/26", None)]));
    let own: IpNet = "10.9.0.0/26".parse().unwrap();
    let own_nh = rib
        .exporter(ext_keep)
        .unwrap()
        .route(&own)
        .unwrap()
        .next_hop;
    assert_eq!(own_nh, ours);
}
