use calico_core::dataplane::ExportedRoutes;

use crate::bird::conf::render;
use crate::bird::conf::tests::{bird_parses, settings};

fn with_policy(yaml: &str) -> calico_core::dataplane::BgpSettings {
    crate::policy_tests::with_policy(settings(), yaml)
}

#[test]
fn filters_render_as_calicos_functions_and_bird_parses_them() {
    let c = render(
        &with_policy(crate::policy_tests::POLICY),
        &ExportedRoutes::new(),
        251,
    )
    .unwrap();
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
    let c = render(&settings(), &ExportedRoutes::new(), 251).unwrap();
    assert!(c.contains("import all; export where"), "{c}");
    assert!(!c.contains("function"), "{c}");
}

#[test]
fn a_filter_the_model_would_refuse_is_refused_here_too() {
    let mut s = with_policy("kind: BgpFilter\nname: f\nexportV4: [{action: Reject}]\n");
    for filters in s.policy.filters.values_mut() {
        filters[0].export_v4[0].interface = Some("cali?\"".into());
    }
    let e = render(&s, &ExportedRoutes::new(), 251).unwrap_err();
    assert!(e.to_string().contains("exportV4[0].interface"), "{e}");
}

#[test]
fn interface_rules_match_ifname_and_workload_exports_are_device_routes() {
    let yaml = "kind: BgpFilter\nname: f\nexportV4: [{action: Reject, interface: '*.calico', source: RemotePeers}]\nimportV6: [{action: Accept, interface: eth0}]\n";
    let exports = [
        ("10.65.0.0/26".parse().unwrap(), None),
        ("10.66.0.9/32".parse().unwrap(), Some("cali1".to_string())),
    ]
    .into();
    let c = render(&with_policy(yaml), &exports, 251).unwrap();
    for want in [
        "  if (source = RTS_BGP && (ifname != \"\" && ifname ~ \"*.calico\")) then { reject; }",
        "  if ((ifname != \"\" && ifname ~ \"eth0\")) then { accept; }",
        "  route 10.65.0.0/26 blackhole;",
        "  route 10.66.0.9/32 via \"cali1\";",
    ] {
        assert!(c.contains(want), "missing {want:?} in\n{c}");
    }
    bird_parses(&c);
}
