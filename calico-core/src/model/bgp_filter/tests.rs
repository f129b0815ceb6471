use super::*;
use crate::model::{parse_resources, Model, Reason, Resource};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn filter(text: &str) -> BgpFilter {
    match parse_resources(text).unwrap().remove(0) {
        Resource::BgpFilter(f) => f,
        other => panic!("{other:?}"),
    }
}

fn refused(text: &str) -> crate::model::ValidationError {
    let resources = crate::model::parse_resources(text);
    match resources {
        Err(crate::model::FileError::Invalid { source, .. }) => source,
        other => panic!("not refused by validation: {other:?}"),
    }
}

const DOC_FILTER: &str = "
kind: BgpFilter
name: my-filter
exportV4:
- {action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}
- {action: Reject, matchOperator: NotEqual, cidr: 10.0.0.0/8}
importV4:
- {action: Accept, matchOperator: In, cidr: 55.0.0.0/16, prefixLength: {min: 30}}
- {action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16}
importV6:
- {action: Accept, matchOperator: Equal, cidr: '5000::/64'}
- {action: Reject}
";

#[test]
fn the_first_matching_rule_decides_and_no_match_accepts() {
    let f = filter(DOC_FILTER);
    let ex = |p: &str, learned| {
        let route = RouteFacts {
            learned,
            interface: None,
        };
        evaluate([&f], Direction::Export, &net(p), route)
    };
    let im = |p: &str| evaluate([&f], Direction::Import, &net(p), RouteFacts::learned(None));
    // Learned inside 77/16: accepted by rule 0 before rule 1 rejects it.
    assert_eq!(ex("77.0.1.0/24", true), FilterAction::Accept);
    // Our own route in 77/16: rule 0 wants RemotePeers; rule 1 (not 10/8) rejects.
    assert_eq!(ex("77.0.1.0/24", false), FilterAction::Reject);
    assert_eq!(
        ex("10.0.0.0/8", false),
        FilterAction::Accept,
        "no rule matches"
    );
    // 55/16 with lengths 30-32 accepted; shorter ones fall to NotIn 44/16 → reject.
    assert_eq!(im("55.0.0.4/30"), FilterAction::Accept);
    assert_eq!(im("55.0.0.0/24"), FilterAction::Reject);
    assert_eq!(im("44.0.3.0/24"), FilterAction::Accept, "no rule matches");
    assert_eq!(im("5000::/64"), FilterAction::Accept);
    assert_eq!(im("5000::/65"), FilterAction::Reject, "Equal is exact");
    // No exportV6 rules at all: everything goes.
    assert_eq!(ex("5000::/64", false), FilterAction::Accept);
}

/// Calico's sample: learned routes in 77/16 go out, and routes of `*.calico` interfaces
/// do not; a block (no interface) is not matched by an interface rule.
const INTERFACE_FILTER: &str = "
kind: BgpFilter
name: by-interface
exportV4:
- {action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}
- {action: Reject, interface: '*.calico'}
importV4:
- {action: Reject, interface: 'eth1', source: RemotePeers}
";

#[test]
fn interface_rules_match_the_interface_a_route_leaves_by() {
    let f = filter(INTERFACE_FILTER);
    let ex = |p: &str, route| evaluate([&f], Direction::Export, &net(p), route);
    let local = |i| RouteFacts::local(Some(i));
    assert_eq!(
        ex("10.65.0.9/32", local("vxlan.calico")),
        FilterAction::Reject
    );
    assert_eq!(ex("10.65.0.9/32", local("cali1234")), FilterAction::Accept);
    assert_eq!(
        ex("10.65.0.0/26", RouteFacts::local(None)),
        FilterAction::Accept
    );
    // Learned via a `*.calico` interface: rule 0 decides first inside 77/16 only.
    let via = RouteFacts::learned(Some("wg.calico"));
    assert_eq!(ex("77.0.1.0/24", via), FilterAction::Accept);
    assert_eq!(ex("78.0.1.0/24", via), FilterAction::Reject);
    let im = |i| {
        evaluate(
            [&f],
            Direction::Import,
            &net("10.1.0.0/16"),
            RouteFacts::learned(i),
        )
    };
    assert_eq!(im(Some("eth1")), FilterAction::Reject);
    assert_eq!(im(Some("eth10")), FilterAction::Accept, "the whole name");
    assert_eq!(
        im(None),
        FilterAction::Accept,
        "no interface known: no match"
    );
}

#[test]
fn interface_patterns_match_whole_names_with_star_as_any_run() {
    let cases = [
        ("eth0", "eth0", true),
        ("eth0", "eth01", false),
        ("eth0", "xeth0", false),
        ("eth*", "eth", true),
        ("eth*", "eth12", true),
        ("eth*", "veth1", false),
        ("*.calico", "vxlan.calico", true),
        ("*.calico", "vxlan.calico2", false),
        ("*", "", true),
        ("cali*a*b", "cali-a-b", true),
        ("cali*a*b", "caliab", true),
        ("cali*a*b", "calib", false),
        ("a*a", "a", false),
        ("a*a", "aa", true),
        ("*a*", "bab", true),
        ("**", "x", true),
        ("e.h", "eth", false),
    ];
    for (pattern, name, want) in cases {
        assert_eq!(interface_matches(pattern, name), want, "{pattern} ~ {name}");
    }
}

#[test]
fn filters_are_tried_in_order() {
    let reject = filter("kind: BgpFilter\nname: a\nexportV4: [{action: Reject, matchOperator: In, cidr: 10.0.0.0/8}]\n");
    let accept = filter("kind: BgpFilter\nname: b\nexportV4: [{action: Accept}]\n");
    let p = net("10.1.0.0/16");
    let local = RouteFacts::local(None);
    assert_eq!(
        evaluate([&reject, &accept], Direction::Export, &p, local),
        FilterAction::Reject
    );
    assert_eq!(
        evaluate([&accept, &reject], Direction::Export, &p, local),
        FilterAction::Accept
    );
}

#[test]
fn prefix_length_ranges_start_at_the_cidr() {
    let cidr = net("10.0.0.0/16");
    assert_eq!(PrefixLength::range(None, &cidr), (16, 32));
    let r = PrefixLength {
        min: Some(8),
        max: Some(24),
    };
    assert_eq!(
        PrefixLength::range(Some(&r), &cidr),
        (16, 24),
        "min below the CIDR"
    );
    let r = PrefixLength {
        min: Some(20),
        max: None,
    };
    assert_eq!(PrefixLength::range(Some(&r), &net("fd00::/48")), (48, 128));
}

#[test]
fn communities_parse_and_print_both_kinds() {
    assert_eq!(
        "65001:100".parse(),
        Ok(Community::Standard(65001 << 16 | 100))
    );
    assert_eq!("65535:65281".parse(), Ok(Community::NO_EXPORT));
    assert_eq!(
        "4200000000:1:2".parse(),
        Ok(Community::Large(4_200_000_000, 1, 2))
    );
    for bad in [
        "65536:1",
        "1:65536",
        "1",
        "a:b",
        "1:2:3:4",
        "1::2",
        "4294967296:1:1",
        "-1:2",
        " 1:2",
    ] {
        assert!(bad.parse::<Community>().is_err(), "{bad}");
    }
    assert_eq!(Community::Large(1, 2, 3).to_string(), "1:2:3");
    assert_eq!(Community::NO_EXPORT.to_string(), "65535:65281");
}

#[test]
fn advertisements_add_up_over_every_cidr_containing_the_prefix() {
    let rules: CommunityRules = vec![
        (net("10.0.0.0/8"), vec![Community::Standard(1)]),
        (
            net("10.1.0.0/16"),
            vec![Community::Large(1, 2, 3), Community::Standard(1)],
        ),
    ];
    assert_eq!(
        communities_for(&rules, &net("10.1.2.0/26")),
        vec![Community::Standard(1), Community::Large(1, 2, 3)]
    );
    assert_eq!(
        communities_for(&rules, &net("10.2.0.0/26")),
        vec![Community::Standard(1)]
    );
    assert!(
        communities_for(&rules, &net("10.0.0.0/7")).is_empty(),
        "wider than the CIDR"
    );
}

#[test]
fn bad_filters_are_refused_naming_the_field() {
    let cases = [
        ("exportV4: [{action: Accept, matchOperator: In, cidr: 'fd00::/8'}]", "exportV4[0].cidr"),
        ("importV6: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/8}]", "importV6[0].cidr"),
        ("exportV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.1/8}]", "exportV4[0].cidr"),
        ("exportV4: [{action: Accept, cidr: 10.0.0.0/8}]", "exportV4[0].matchOperator"),
        ("exportV4: [{action: Accept, matchOperator: In}]", "exportV4[0].matchOperator"),
        ("exportV4: [{action: Accept, prefixLength: {min: 1}}]", "exportV4[0].prefixLength"),
        ("exportV4: [{action: Reject}, {action: Accept, matchOperator: In, cidr: 10.0.0.0/8, prefixLength: {max: 33}}]", "exportV4[1].prefixLength.max"),
        ("exportV6: [{action: Accept, matchOperator: In, cidr: 'fd00::/8', prefixLength: {min: 129}}]", "exportV6[0].prefixLength.min"),
        ("exportV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/8, prefixLength: {min: -1}}]", "exportV4[0].prefixLength.min"),
        ("exportV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/8, prefixLength: {min: 24, max: 20}}]", "exportV4[0].prefixLength"),
        ("exportV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/16, prefixLength: {max: 8}}]", "exportV4[0].prefixLength.max"),
        ("exportV4: [{action: Accept, matchOperator: Equal, cidr: 10.0.0.0/16, prefixLength: {max: 24}}]", "exportV4[0].prefixLength"),
        ("exportV4: [{action: Reject, interface: ''}]", "exportV4[0].interface"),
        ("exportV4: [{action: Reject, interface: 'cali0123456789ab'}]", "exportV4[0].interface"),
        ("exportV4: [{action: Reject, interface: 'eth?'}]", "exportV4[0].interface"),
        ("importV6: [{action: Reject, interface: 'eth\"0'}]", "importV6[0].interface"),
    ];
    for (spec, field) in cases {
        let e = refused(&format!("kind: BgpFilter\nname: f\n{spec}\n"));
        assert_eq!(e.field, field, "{spec}: {e}");
        assert_eq!(e.resource.kind, crate::model::ResourceKind::BgpFilter);
    }
    // Unknown operator, action or source: refused while reading.
    for spec in [
        "exportV4: [{action: Drop}]",
        "exportV4: [{action: Accept, matchOperator: Within, cidr: 10.0.0.0/8}]",
        "exportV4: [{action: Accept, source: LocalPeers}]",
        "exportV4: [{matchOperator: In, cidr: 10.0.0.0/8}]",
    ] {
        assert!(
            parse_resources(&format!("kind: BgpFilter\nname: f\n{spec}\n")).is_err(),
            "{spec}"
        );
    }
}

#[test]
fn bad_communities_are_refused_naming_the_field() {
    let cases = [
        (
            "communities: [{name: a, value: '65536:1'}]",
            "communities[0].value",
            None,
        ),
        (
            "communities: [{name: a, value: '1:2'}, {name: a, value: '1:3'}]",
            "communities[1].name",
            Some(Reason::Duplicate("a".into())),
        ),
        (
            "communities: [{name: 'A b', value: '1:2'}]",
            "communities[0].name",
            None,
        ),
        (
            "prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [nope]}]",
            "prefixAdvertisements[0].communities[0]",
            None,
        ),
        (
            "prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: []}]",
            "prefixAdvertisements[0].communities",
            Some(Reason::Empty),
        ),
        (
            "prefixAdvertisements: [{cidr: 10.0.0.1/8, communities: ['1:1']}]",
            "prefixAdvertisements[0].cidr",
            None,
        ),
    ];
    for (spec, field, reason) in cases {
        let e = refused(&format!("kind: BgpConfiguration\nname: default\n{spec}\n"));
        assert_eq!(e.field, field, "{spec}: {e}");
        if let Some(r) = reason {
            assert_eq!(e.reason, r);
        }
    }
    let ok = "kind: BgpConfiguration\nname: default\ncommunities: [{name: gold, value: '65001:100'}]\nprefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [gold, '1:2:3', '65535:65281']}]\n";
    Model::from_resources(parse_resources(ok).unwrap()).unwrap();
}

#[test]
fn a_peer_lists_each_filter_once_by_name() {
    let peer = |filters: &str| {
        format!("kind: BgpPeer\nname: p\npeerIP: 192.0.2.9\nasNumber: 65000\nfilters: {filters}\n")
    };
    assert_eq!(refused(&peer("[a, a]")).field, "filters[1]");
    assert_eq!(refused(&peer("['Bad Name']")).field, "filters[0]");
    parse_resources(&peer("[a, b]")).unwrap();
}

#[test]
fn a_filter_is_stored_and_removed_by_name() {
    let mut m = Model::from_resources(parse_resources(DOC_FILTER).unwrap()).unwrap();
    assert_eq!(m.bgp_filters["my-filter"].import_v6.len(), 2);
    m.apply(crate::model::Update::Remove(
        crate::model::ResourceKey::BgpFilter("my-filter".into()),
    ))
    .unwrap();
    assert!(m.bgp_filters.is_empty());
}

/// The textbook recursive glob, as a reference for [`interface_matches`].
fn glob_reference(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob_reference(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob_reference(rest, &s[1..]),
    }
}

proptest::proptest! {
    #[test]
    fn interface_matching_agrees_with_the_reference(p in "[ab*]{0,7}", s in "[ab]{0,8}") {
        proptest::prop_assert_eq!(interface_matches(&p, &s), glob_reference(p.as_bytes(), s.as_bytes()));
    }
}
