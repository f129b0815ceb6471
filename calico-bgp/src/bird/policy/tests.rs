use std::collections::BTreeSet;

use calico_core::model::parse_resources;

use crate::bird::conf::render;
use crate::bird::conf::tests::{bird_parses, settings};

/// The test settings with the filters and `prefixAdvertisements` of `yaml` on both peers.
pub(crate) fn with_policy(yaml: &str) -> calico_core::dataplane::BgpSettings {
    let mut s = settings();
    let resources = parse_resources(yaml).unwrap();
    let peers: Vec<_> = s.peers.iter().map(|p| p.address).collect();
    s.policy = calico_core::dataplane::RoutePolicy::from_resources(&resources, &peers);
    s
}

const POLICY: &str = "
kind: BgpFilter
name: my-filter
exportV4:
- {action: Accept, matchOperator: In, cidr: 77.0.0.0/16, source: RemotePeers}
- {action: Reject, matchOperator: NotEqual, cidr: 10.65.0.0/26}
importV4:
- {action: Accept, matchOperator: In, cidr: 55.0.0.0/16, prefixLength: {min: 30}}
- {action: Reject, matchOperator: NotIn, cidr: 44.0.0.0/16, prefixLength: {max: 24}}
importV6:
- {action: Accept, matchOperator: Equal, cidr: '5000::/64'}
- {action: Reject}
---
kind: BgpFilter
name: second
exportV4: [{action: Reject}]
---
kind: BgpConfiguration
name: default
prefixAdvertisements:
- {cidr: 10.65.0.0/16, communities: ['65001:100', '4200000000:1:2']}
- {cidr: 'fd00:65::/48', communities: ['65535:65281']}
";

#[test]
fn filters_render_as_calicos_functions_and_bird_parses_them() {
    let c = render(&with_policy(POLICY), &BTreeSet::new(), 251).unwrap();
    for want in [
        "# BGPFilter my-filter",
        "  if (net ~ [ 77.0.0.0/16{16,32} ] && source = RTS_BGP) then { accept; }",
        "  if (net != 10.65.0.0/26) then { reject; }",
        "  if (net ~ [ 55.0.0.0/16{30,32} ]) then { accept; }",
        "  if (net !~ [ 44.0.0.0/16{16,24} ]) then { reject; }",
        "  if (net = 5000::/64) then { accept; }",
        "    if net ~ 10.65.0.0/16 then { bgp_community.add((65001, 100)); bgp_large_community.add((4200000000, 1, 2)); }",
        "    if net ~ fd00:65::/48 then { bgp_community.add((65535, 65281)); }",
    ] {
        assert!(c.contains(want), "missing {want:?} in\n{c}");
    }
    // The peer calls its filters in order, after its own export condition.
    let export = c.split("export filter {").nth(1).unwrap();
    let first = export.find("calico_bgpfilter0_export_v4();").unwrap();
    let second = export.find("calico_bgpfilter1_export_v4();").unwrap();
    assert!(
        export.find("then reject;").unwrap() < first && first < second,
        "{c}"
    );
    bird_parses(&c);
}

#[test]
fn without_policy_the_peers_import_and_export_as_before() {
    let c = render(&settings(), &BTreeSet::new(), 251).unwrap();
    assert!(c.contains("import all; export where"), "{c}");
    assert!(!c.contains("function"), "{c}");
}

#[test]
fn a_filter_the_model_would_refuse_is_refused_here_too() {
    let mut s = with_policy("kind: BgpFilter\nname: f\nexportV4: [{action: Reject}]\n");
    for filters in s.policy.filters.values_mut() {
        filters[0].export_v4[0].interface = Some("cali*".into());
    }
    let e = render(&s, &BTreeSet::new(), 251).unwrap_err();
    assert!(e.to_string().contains("exportV4[0].interface"), "{e}");
}
