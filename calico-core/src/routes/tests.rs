use std::net::IpAddr;

use super::*;
use crate::model::{Resource, Update, WorkloadEndpoint, WorkloadEndpointId};

fn endpoint(workload: &str, node: &str, iface: &str, nets: &[&str]) -> WorkloadEndpoint {
    WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: "k8s".into(),
            workload: workload.into(),
            endpoint: "eth0".into(),
        },
        namespace: None,
        node: node.into(),
        interface_name: iface.into(),
        mac: None,
        ip_networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
        labels: Default::default(),
        profiles: vec![],
        ports: vec![],
        allow_spoofed_source_prefixes: vec![],
        ip_nats: vec![],
    }
}

fn model(eps: Vec<WorkloadEndpoint>) -> Model {
    let mut m = Model::new();
    for ep in eps {
        m.apply(Update::Upsert(Resource::WorkloadEndpoint(ep)))
            .unwrap();
    }
    m
}

fn learned(prefix: &str, hops: &[&str]) -> LearnedRoute {
    LearnedRoute {
        prefix: prefix.parse().unwrap(),
        next_hops: hops.iter().map(|h| h.parse::<IpAddr>().unwrap()).collect(),
    }
}

fn workload(iface: &str) -> RouteTarget {
    RouteTarget::Workload {
        interface: iface.into(),
    }
}

#[test]
fn local_workloads_get_scope_link_routes_for_v4_and_v6() {
    let m = model(vec![
        endpoint("a", "h1", "cali-a", &["10.0.0.1/32", "fd00::1/128"]),
        endpoint("b", "h2", "cali-b", &["10.0.0.2/32"]),
    ]);
    let fib = desired_routes("h1", &m, &[], false);
    assert_eq!(fib.len(), 2);
    assert_eq!(fib[&"10.0.0.1/32".parse().unwrap()], workload("cali-a"));
    assert_eq!(fib[&"fd00::1/128".parse().unwrap()], workload("cali-a"));
}

#[test]
fn learned_routes_become_ecmp_routes_and_local_addresses_win() {
    let m = model(vec![endpoint("a", "h1", "cali-a", &["10.0.0.1/32"])]);
    let fib = desired_routes(
        "h1",
        &m,
        &[
            learned("10.0.1.0/26", &["192.0.2.2", "198.51.100.2"]),
            learned("10.0.0.1/32", &["192.0.2.9"]),
            learned("10.0.2.0/26", &[]),
        ],
        false,
    );
    assert_eq!(fib[&"10.0.0.1/32".parse().unwrap()], workload("cali-a"));
    match &fib[&"10.0.1.0/26".parse().unwrap()] {
        RouteTarget::Via(hops) => assert_eq!(hops.len(), 2),
        other => panic!("expected an ECMP route, got {other:?}"),
    }
    assert!(!fib.contains_key(&"10.0.2.0/26".parse().unwrap()));
}

#[test]
fn diff_touches_only_what_is_wrong() {
    let m = model(vec![
        endpoint("a", "h1", "cali-a", &["10.0.0.1/32"]),
        endpoint("b", "h1", "cali-b", &["10.0.0.2/32"]),
    ]);
    let desired = desired_routes("h1", &m, &[], false);
    let programmed = vec![
        Route {
            dst: "10.0.0.1/32".parse().unwrap(),
            target: workload("cali-a"),
        },
        Route {
            dst: "10.0.0.2/32".parse().unwrap(),
            target: workload("cali-old"),
        },
        Route {
            dst: "10.0.0.3/32".parse().unwrap(),
            target: workload("cali-gone"),
        },
    ];
    let changes = fib_diff(&desired, &programmed);
    assert_eq!(
        changes.remove,
        vec!["10.0.0.3/32".parse::<IpNet>().unwrap()]
    );
    assert_eq!(
        changes.upsert,
        vec![Route {
            dst: "10.0.0.2/32".parse().unwrap(),
            target: workload("cali-b"),
        }]
    );
    let converged: Vec<Route> = desired
        .iter()
        .map(|(d, t)| Route {
            dst: *d,
            target: t.clone(),
        })
        .collect();
    assert!(fib_diff(&desired, &converged).is_empty());
}

#[test]
fn exports_are_this_nodes_workload_addresses() {
    let m = model(vec![
        endpoint("a", "h1", "cali-a", &["10.0.0.1/32", "fd00::1/128"]),
        endpoint("b", "h2", "cali-b", &["10.0.0.2/32"]),
    ]);
    let exports = local_exports("h1", &m, false);
    assert_eq!(exports.len(), 2);
    let v6 = exports.get(&"fd00::1/128".parse().unwrap());
    assert_eq!(v6, Some(&Some("cali-a".to_string())), "with its interface");
}

fn with_blocks(mut m: Model, blocks: &[(&str, &str)]) -> Model {
    for (cidr, node) in blocks {
        m.apply(Update::Upsert(Resource::BlockAffinity(
            crate::model::BlockAffinity {
                cidr: cidr.parse().unwrap(),
                node: node.to_string(),
            },
        )))
        .unwrap();
    }
    m
}

#[test]
fn blocks_are_exported_whole_and_borrowed_addresses_alone() {
    let m = with_blocks(
        model(vec![
            endpoint("a", "h1", "cali-a", &["10.65.0.1/32"]),
            // Borrowed: inside h2's block, running on h1.
            endpoint("b", "h1", "cali-b", &["10.65.0.70/32"]),
            // In no block at all.
            endpoint("c", "h1", "cali-c", &["192.168.5.5/32"]),
            endpoint("d", "h2", "cali-d", &["10.65.0.65/32"]),
        ]),
        &[("10.65.0.0/26", "h1"), ("10.65.0.64/26", "h2")],
    );
    let listed = |node| -> Vec<String> {
        let routes = local_exports(node, &m, false);
        let line =
            |(n, i): (&IpNet, &Option<String>)| format!("{n} {}", i.as_deref().unwrap_or("-"));
        routes.iter().map(line).collect()
    };
    let blocks_have_no_interface = [
        "10.65.0.0/26 -",
        "10.65.0.70/32 cali-b",
        "192.168.5.5/32 cali-c",
    ];
    assert_eq!(listed("h1"), blocks_have_no_interface);
    assert_eq!(
        listed("h2"),
        ["10.65.0.64/26 -"],
        "d lies in h2's own block"
    );

    // h1 blackholes its block, routes its workloads locally, and takes h2's block from BGP;
    // the borrowed address stays local (more specific than h2's block).
    let fib = desired_routes(
        "h1",
        &m,
        &[
            learned("10.65.0.64/26", &["192.0.2.2"]),
            learned("10.65.0.0/26", &["192.0.2.9"]),
        ],
        false,
    );
    assert_eq!(
        fib[&"10.65.0.0/26".parse().unwrap()],
        RouteTarget::Blackhole,
        "own block, not the peer's claim"
    );
    assert_eq!(fib[&"10.65.0.70/32".parse().unwrap()], workload("cali-b"));
    assert!(matches!(
        fib[&"10.65.0.64/26".parse().unwrap()],
        RouteTarget::Via(_)
    ));
}

#[test]
fn bad_blocks_are_refused_with_the_field() {
    let bad = |cidr: &str| {
        crate::model::BlockAffinity {
            cidr: cidr.parse().unwrap(),
            node: "h1".into(),
        }
        .validate()
        .unwrap_err()
        .to_string()
    };
    assert!(
        bad("10.65.0.1/26").contains("host bits"),
        "{}",
        bad("10.65.0.1/26")
    );
    assert!(
        bad("10.64.0.0/16").contains("block sizes"),
        "{}",
        bad("10.64.0.0/16")
    );
    let no_node = crate::model::BlockAffinity {
        cidr: "10.65.0.0/26".parse().unwrap(),
        node: String::new(),
    };
    assert!(no_node.validate().unwrap_err().to_string().contains("node"));
}

fn with_nats(
    mut ep: WorkloadEndpoint,
    orchestrator: &str,
    nats: &[(&str, &str)],
) -> WorkloadEndpoint {
    ep.id.orchestrator = orchestrator.into();
    ep.ip_nats = nats
        .iter()
        .map(|(int, ext)| crate::model::IpNat {
            internal_ip: int.parse().unwrap(),
            external_ip: ext.parse().unwrap(),
        })
        .collect();
    ep
}

#[test]
fn floating_ips_are_routed_to_their_workload_and_announced_like_its_addresses() {
    let a = endpoint("a", "h1", "cali-a", &["10.65.0.1/32", "fd00::1/128"]);
    let b = endpoint("b", "h1", "cali-b", &["10.65.0.2/32"]);
    let remote = endpoint("r", "h2", "cali-r", &["10.65.0.70/32"]);
    let m = with_blocks(
        model(vec![
            with_nats(
                a,
                "k8s",
                &[("10.65.0.1", "172.16.0.5"), ("fd00::1", "2001:db8::5")],
            ),
            // Inside h1's block: the block's route carries it.
            with_nats(b, "k8s", &[("10.65.0.2", "10.65.0.9")]),
            with_nats(remote, "k8s", &[("10.65.0.70", "172.16.0.70")]),
        ]),
        &[("10.65.0.0/26", "h1")],
    );
    let fib = desired_routes("h1", &m, &[], true);
    assert_eq!(fib[&"172.16.0.5/32".parse().unwrap()], workload("cali-a"));
    assert_eq!(fib[&"2001:db8::5/128".parse().unwrap()], workload("cali-a"));
    assert_eq!(fib[&"10.65.0.9/32".parse().unwrap()], workload("cali-b"));
    assert!(
        !fib.contains_key(&"172.16.0.70/32".parse().unwrap()),
        "another node's"
    );
    let exports = local_exports("h1", &m, true);
    assert_eq!(
        exports.get(&"172.16.0.5/32".parse().unwrap()),
        Some(&Some("cali-a".to_string()))
    );
    assert!(exports.contains_key(&"2001:db8::5/128".parse().unwrap()));
    assert!(
        !exports.contains_key(&"10.65.0.9/32".parse().unwrap()),
        "aggregated in the block"
    );
    // Floating IPs disabled: none, unless the endpoint is OpenStack's (as in Felix).
    assert!(!desired_routes("h1", &m, &[], false).contains_key(&"172.16.0.5/32".parse().unwrap()));
    assert!(!local_exports("h1", &m, false).contains_key(&"172.16.0.5/32".parse().unwrap()));
    let vm = endpoint("vm", "h1", "tap-vm", &["10.1.0.1/32"]);
    let m = model(vec![with_nats(
        vm,
        "openstack",
        &[("10.1.0.1", "172.16.1.1")],
    )]);
    assert_eq!(
        desired_routes("h1", &m, &[], false)[&"172.16.1.1/32".parse().unwrap()],
        workload("tap-vm")
    );
    assert!(local_exports("h1", &m, false).contains_key(&"172.16.1.1/32".parse().unwrap()));
}

#[test]
fn a_workload_address_wins_over_a_floating_ip_claiming_it() {
    let a = endpoint("a", "h1", "cali-a", &["10.0.0.1/32"]);
    let b = endpoint("b", "h1", "cali-b", &["10.0.0.2/32"]);
    let m = model(vec![a, with_nats(b, "k8s", &[("10.0.0.2", "10.0.0.1")])]);
    assert_eq!(
        desired_routes("h1", &m, &[], true)[&"10.0.0.1/32".parse().unwrap()],
        workload("cali-a")
    );
}
