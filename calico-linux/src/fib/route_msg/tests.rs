use super::*;

const OWNER: Owner = Owner {
    protocol: 80,
    table: 254,
};

fn index(name: &str) -> Option<u32> {
    match name {
        "cali1" => Some(7),
        "eth0" => Some(2),
        _ => None,
    }
}

fn name(index: u32) -> Option<String> {
    match index {
        7 => Some("cali1".into()),
        2 => Some("eth0".into()),
        _ => None,
    }
}

fn route(dst: &str, target: RouteTarget) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        target,
    }
}

fn hops(list: &[(&str, Option<&str>)]) -> RouteTarget {
    RouteTarget::Via(
        list.iter()
            .map(|(gw, interface)| NextHop {
                gateway: gw.parse().unwrap(),
                interface: interface.map(str::to_string),
            })
            .collect(),
    )
}

fn examples() -> Vec<Route> {
    vec![
        route(
            "10.65.0.1/32",
            RouteTarget::Workload {
                interface: "cali1".into(),
            },
        ),
        route(
            "fd00::1/128",
            RouteTarget::Workload {
                interface: "cali1".into(),
            },
        ),
        route("10.65.0.0/26", RouteTarget::Blackhole),
        route("fd00::/122", RouteTarget::Blackhole),
        route("10.1.0.0/24", hops(&[("192.0.2.1", None)])),
        route("10.2.0.0/24", hops(&[("192.0.2.1", Some("eth0"))])),
        route(
            "10.3.0.0/24",
            hops(&[("192.0.2.1", None), ("192.0.2.2", Some("eth0"))]),
        ),
        route(
            "2001:db8::/64",
            hops(&[("fe80::1", Some("eth0")), ("fe80::2", Some("eth0"))]),
        ),
        route("0.0.0.0/0", hops(&[("192.0.2.1", None)])),
    ]
}

#[test]
fn every_route_shape_survives_a_round_trip() {
    for original in examples() {
        let message = route_message(&original, &OWNER, index).unwrap();
        assert_eq!(u8::from(message.header.protocol), 80);
        assert_eq!(
            to_route(&message, name),
            Ok(original.clone()),
            "{original:?}"
        );
        let summary = kernel_route(&message).unwrap();
        assert_eq!(summary.dst, original.dst);
        assert_eq!((summary.protocol, summary.table), (80, 254));
    }
}

#[test]
fn a_workload_route_is_scope_link_and_a_blackhole_its_own_type() {
    let workload = route_message(&examples()[0], &OWNER, index).unwrap();
    assert_eq!(workload.header.scope, RouteScope::Link);
    assert_eq!(workload.header.kind, RouteType::Unicast);
    assert!(workload.attributes.contains(&RouteAttribute::Oif(7)));
    let blackhole = route_message(&examples()[2], &OWNER, index).unwrap();
    assert_eq!(blackhole.header.kind, RouteType::BlackHole);
}

#[test]
fn a_pinned_next_hop_is_onlink_and_an_unpinned_one_is_not() {
    let pinned = route_message(&examples()[5], &OWNER, index).unwrap();
    assert!(pinned.header.flags.contains(RouteFlags::Onlink));
    let unpinned = route_message(&examples()[4], &OWNER, index).unwrap();
    assert!(!unpinned.header.flags.contains(RouteFlags::Onlink));
    // The kernel reports the interface it resolved; without onlink it is not the agent's pin.
    let mut resolved = unpinned.clone();
    resolved.attributes.push(RouteAttribute::Oif(2));
    assert_eq!(to_route(&resolved, name), Ok(examples()[4].clone()));
}

#[test]
fn unknown_interfaces_and_bad_routes_are_typed_errors() {
    let missing = route(
        "10.65.0.9/32",
        RouteTarget::Workload {
            interface: "cali9".into(),
        },
    );
    assert_eq!(
        route_message(&missing, &OWNER, index),
        Err(BackendError::MissingInterface("cali9".into()))
    );
    let pinned_missing = route("10.9.0.0/24", hops(&[("192.0.2.1", Some("tun9"))]));
    assert_eq!(
        route_message(&pinned_missing, &OWNER, index),
        Err(BackendError::MissingInterface("tun9".into()))
    );
    for bad in [
        route("10.65.0.1/24", RouteTarget::Blackhole),
        route("10.9.0.0/24", RouteTarget::Via(BTreeSet::new())),
        route("10.9.0.0/24", hops(&[("fe80::1", Some("eth0"))])),
        route("fd00::/64", hops(&[("192.0.2.1", None)])),
    ] {
        assert!(
            matches!(
                route_message(&bad, &OWNER, index),
                Err(BackendError::Unsupported(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn large_table_ids_go_in_the_attribute() {
    let owner = Owner {
        protocol: 80,
        table: 1000,
    };
    let message = route_message(&examples()[2], &owner, index).unwrap();
    assert_eq!(message.header.table, RouteHeader::RT_TABLE_UNSPEC);
    assert!(message.attributes.contains(&RouteAttribute::Table(1000)));
    assert_eq!(kernel_route(&message).unwrap().table, 1000);
}

#[test]
fn a_delete_matches_any_type_and_scope_but_only_the_owners_protocol() {
    let message = delete_message(&"10.65.0.1/32".parse().unwrap(), &OWNER);
    assert_eq!(message.header.kind, RouteType::Unspec);
    assert_eq!(message.header.scope, RouteScope::NoWhere);
    assert_eq!(u8::from(message.header.protocol), 80);
}

#[test]
fn descriptions_read_like_ip_route() {
    let owner = Owner {
        protocol: 80,
        table: 100,
    };
    let text: Vec<String> = examples()
        .iter()
        .map(|r| describe_upsert("add", r, &OWNER))
        .collect();
    assert_eq!(
        text[0],
        "add route 10.65.0.1/32 dev cali1 scope link proto 80"
    );
    assert_eq!(text[2], "add route 10.65.0.0/26 type blackhole proto 80");
    assert_eq!(
        text[6],
        "add route 10.3.0.0/24 nexthop via 192.0.2.1 nexthop via 192.0.2.2 dev eth0 onlink \
         proto 80"
    );
    assert_eq!(
        describe_removal(&"10.65.0.1/32".parse().unwrap(), &owner),
        "delete route 10.65.0.1/32 proto 80 table 100"
    );
}

#[test]
fn routes_the_agent_does_not_program_are_explained() {
    let mut message = route_message(&examples()[0], &OWNER, index).unwrap();
    message.header.kind = RouteType::Unreachable;
    assert!(to_route(&message, name)
        .unwrap_err()
        .contains("Unreachable"));
    let message = route_message(&examples()[0], &OWNER, index).unwrap();
    assert!(to_route(&message, |_| None)
        .unwrap_err()
        .contains("ifindex 7"));
}
