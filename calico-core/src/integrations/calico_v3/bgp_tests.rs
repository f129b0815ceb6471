//! Reading Calico's v3 `BGPPeer` and `BGPConfiguration` session fields: what is taken,
//! what is refused by name.

use super::parse_v3;
use crate::dataplane::NextHopMode;
use crate::model::{AsNumber, Resource, SourceAddress};

fn peer(spec: &str) -> Result<crate::model::BgpPeer, crate::integrations::TranslateError> {
    let doc = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: tor}}\nspec:\n{spec}"
    );
    parse_v3(&doc).map(|mut r| match r.remove(0) {
        Resource::BgpPeer(p) => p,
        other => panic!("not a peer: {other:?}"),
    })
}

fn config(spec: &str) -> Result<Resource, crate::integrations::TranslateError> {
    let doc = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n{spec}"
    );
    parse_v3(&doc).map(|mut r| r.remove(0))
}

#[test]
fn session_fields_are_read() {
    let p = peer(
        "  peerIP: 192.0.2.1\n  asNumber: 65001\n  keepaliveTime: 10s\n  maxRestartTime: 2m\n  \
         numAllowedLocalASNumbers: 2\n  nextHopMode: Self\n  ttlSecurity: 1\n  sourceAddress: None\n  \
         reversePeering: Auto\n  reachableBy: 192.0.2.254\n",
    )
    .unwrap();
    assert_eq!(p.as_number, Some(AsNumber(65001)));
    assert_eq!(p.keepalive_time, Some(10));
    assert_eq!(p.max_restart_time, Some(120));
    assert_eq!(p.num_allowed_local_as_numbers, Some(2));
    assert_eq!(p.next_hop_mode, Some(NextHopMode::SelfAddress));
    assert_eq!(p.ttl_security, Some(1));
    assert_eq!(p.source_address, Some(SourceAddress::None));
    assert_eq!(p.reachable_by, Some("192.0.2.254".parse().unwrap()));
    let s =
        peer("  peerSelector: route-reflector == 'true'\n  keepOriginalNextHop: true\n").unwrap();
    assert!(s.peer_selector.is_some() && s.peer_ip.is_none());
    assert_eq!(s.keep_original_next_hop, Some(true));
    match config("  nodeMeshMaxRestartTime: 90s\n  logSeverityScreen: Info\n  bindMode: None\n")
        .unwrap()
    {
        Resource::BgpConfiguration(c) => assert_eq!(c.node_mesh_max_restart_time, Some(90)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    for (spec, field) in [
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  ttlSecurity: 255\n",
            "ttlSecurity",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  keepaliveTime: 90s\n",
            "keepaliveTime",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  keepaliveTime: 0s\n",
            "keepaliveTime",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  keepaliveTime: ten\n",
            "spec.keepaliveTime",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  nextHopMode: Sometimes\n",
            "spec.nextHopMode",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  numAllowedLocalASNumbers: 11\n",
            "numAllowedLocalASNumbers",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  maxRestartTime: 2h\n",
            "maxRestartTime",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  sourceAddress: Elsewhere\n",
            "spec.sourceAddress",
        ),
        ("  peerIP: 192.0.2.1\n", "asNumber"),
        ("  peerSelector: all()\n  asNumber: 1\n", "asNumber"),
        (
            "  peerSelector: all()\n  peerIP: 192.0.2.1\n  asNumber: 1\n",
            "peerSelector",
        ),
        ("  asNumber: 1\n", "peerIP"),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  reachableBy: 'fd00::1'\n",
            "reachableBy",
        ),
        (
            "  peerSelector: all()\n  reachableBy: 192.0.2.254\n",
            "reachableBy",
        ),
    ] {
        let e = peer(spec).unwrap_err();
        assert!(e.field.ends_with(field), "{spec}: {e}");
    }
}

#[test]
fn unsupported_calico_fields_are_refused_by_name() {
    for (spec, field) in [
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  localASNumber: 2\n",
            "spec.localASNumber",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  reversePeering: Manual\n",
            "spec.reversePeering",
        ),
        (
            "  localWorkloadSelector: all()\n  asNumber: 1\n",
            "spec.localWorkloadSelector",
        ),
        (
            "  peerIP: 192.0.2.1\n  asNumber: 1\n  password: {secretKeyRef: {name: s, key: k}}\n",
            "spec.password",
        ),
    ] {
        let e = peer(spec).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(
            e.to_string().contains("not supported") || field == "spec.password",
            "{e}"
        );
    }
    for (spec, field) in [
        ("  bindMode: NodeIP\n", "spec.bindMode"),
        ("  logSeverityScreen: Debug\n", "spec.logSeverityScreen"),
        ("  ignoredInterfaces: [eth1]\n", "spec.ignoredInterfaces"),
        (
            "  nodeMeshPassword: {secretKeyRef: {name: s, key: k}}\n",
            "spec.nodeMeshPassword",
        ),
        (
            "  localWorkloadPeeringIPV4: 169.254.0.1\n",
            "spec.localWorkloadPeeringIPV4",
        ),
        (
            "  programClusterRoutes: Disabled\n",
            "spec.programClusterRoutes",
        ),
        (
            "  ipv4NormalRoutePriority: 10\n",
            "spec.ipv4NormalRoutePriority",
        ),
        (
            "  serviceClusterIPs: [{cidr: 10.96.0.0/12}]\n",
            "spec.serviceClusterIPs",
        ),
        (
            "  serviceLoadBalancerAggregation: Disabled\n",
            "spec.serviceLoadBalancerAggregation",
        ),
    ] {
        let e = config(spec).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}
