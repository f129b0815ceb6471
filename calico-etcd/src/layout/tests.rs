use super::*;
use calico_core::model::{Policy, Profile, WorkloadEndpoint};

const P: &str = "/calico";

#[test]
fn namespaced_and_global_keys_parse() {
    let np = parse_key(
        P,
        "/calico/resources/v3/projectcalico.org/networkpolicies/shop/web",
    )
    .unwrap();
    assert_eq!(
        (np.kind.kind, np.namespace.as_deref(), np.name.as_str()),
        ("NetworkPolicy", Some("shop"), "web")
    );
    let gnp = parse_key(
        P,
        "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.deny",
    )
    .unwrap();
    assert_eq!(
        (gnp.kind.kind, gnp.namespace, gnp.name.as_str()),
        ("GlobalNetworkPolicy", None, "default.deny")
    );
    let other = parse_key(
        "/other/",
        "/other/resources/v3/projectcalico.org/ippools/p1",
    )
    .unwrap();
    assert_eq!(other.kind.kind, "IPPool");
}

#[test]
fn malformed_keys_are_typed_errors() {
    let e = parse_key(
        P,
        "/calico/resources/v3/projectcalico.org/networkpolicies/web",
    )
    .unwrap_err();
    assert!(matches!(e, KeyError::Shape { found: 1, .. }), "{e}");
    let e = parse_key(P, "/calico/resources/v3/projectcalico.org/profiles/a/b").unwrap_err();
    assert!(matches!(e, KeyError::Shape { found: 2, .. }), "{e}");
    let e = parse_key(P, "/calico/resources/v3/projectcalico.org/widgets/a").unwrap_err();
    assert!(matches!(e, KeyError::UnknownKind { .. }), "{e}");
    let e = parse_key(P, "/calico/ipam/v2/host/h1").unwrap_err();
    assert!(matches!(e, KeyError::NotResource { .. }), "{e}");
    let e = parse_key(
        P,
        "/calico/resources/v3/projectcalico.org/workloadendpoints//x",
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            KeyError::Empty {
                segment: "namespace",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("workloadendpoints//x"), "{e}");
}

#[test]
fn keys_round_trip_for_every_supported_kind() {
    for info in KINDS {
        let ns = info.namespaced.then_some("ns1");
        let key = key_for(P, info, ns, "n-1.a");
        let back = parse_key(P, &key).unwrap();
        assert_eq!(
            (back.kind, back.namespace.as_deref(), back.name.as_str()),
            (info, ns, "n-1.a")
        );
    }
}

fn wep(node: &str, orch: &str, workload: &str, endpoint: &str) -> WorkloadEndpoint {
    WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: orch.into(),
            workload: workload.into(),
            endpoint: endpoint.into(),
        },
        namespace: Some("openstack".into()),
        node: node.into(),
        interface_name: "tap1".into(),
        mac: None,
        ip_networks: vec![],
        labels: Default::default(),
        profiles: vec![],
        ports: vec![],
        allow_spoofed_source_prefixes: vec![],
    }
}

#[test]
fn workload_endpoint_names_double_dashes_as_calico_does() {
    // The name networking-calico's tests expect for this endpoint.
    let w = wep(
        "felix-host-1",
        "openstack",
        "instance-1",
        "DEADBEEF-1234-5678",
    );
    let key = key_of(P, &Resource::WorkloadEndpoint(w)).unwrap();
    assert_eq!(key, "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/felix--host--1-openstack-instance--1-DEADBEEF--1234--5678");
    let name = key.rsplit('/').next().unwrap();
    assert_eq!(
        split_workload_endpoint_name(name),
        [
            "felix-host-1",
            "openstack",
            "instance-1",
            "DEADBEEF-1234-5678"
        ]
    );
    // libnetwork repeats the orchestrator in the third part.
    let l = wep("h", "libnetwork", "ignored", "ep");
    assert_eq!(
        workload_endpoint_name(&l.node, &l.id).unwrap(),
        "h-libnetwork-libnetwork-ep"
    );
}

#[test]
fn workload_endpoint_parts_with_edge_dashes_have_no_name() {
    let w = wep("node", "k8s", "-pod", "eth0");
    let e = key_of(P, &Resource::WorkloadEndpoint(w)).unwrap_err();
    assert_eq!(e.field, "spec.workload");
    let w = wep("node-", "k8s", "pod", "eth0");
    assert_eq!(
        key_of(P, &Resource::WorkloadEndpoint(w)).unwrap_err().field,
        "spec.node"
    );
}

fn policy(name: &str, ns: Option<&str>) -> Policy {
    Policy {
        name: name.into(),
        namespace: ns.map(Into::into),
        tier: calico_core::model::DEFAULT_TIER.into(),
        order: None,
        selector: calico_core::selector::Selector::all(),
        types: vec![],
        ingress: vec![],
        egress: vec![],
        apply_on_forward: false,
        pre_dnat: false,
        do_not_track: false,
        staged_action: None,
    }
}

#[test]
fn names_with_a_slash_have_no_key() {
    let p = Resource::Profile(Profile {
        name: "a/b".into(),
        ..Profile::default()
    });
    let e = key_of(P, &p).unwrap_err();
    assert_eq!(e.field, "metadata.name");
    let np = Resource::Policy(policy("web", Some("")));
    assert_eq!(key_of(P, &np).unwrap_err().field, "metadata.namespace");
    let ok = Resource::Policy(policy("web", Some("shop")));
    assert_eq!(
        key_of(P, &ok).unwrap(),
        "/calico/resources/v3/projectcalico.org/networkpolicies/shop/web"
    );
}

#[test]
fn default_tier_policy_names_as_calico_reads_them() {
    // Calico <= 3.29: stored with the tier prefix, no annotation.
    assert_eq!(policy_name("default.web", None, None), "web");
    assert_eq!(policy_name("default.web", Some("default"), None), "web");
    // Calico >= 3.30: plain name and the annotation.
    assert_eq!(policy_name("web", Some("default"), Some("web")), "web");
    // The annotation wins, even over a prefix that is part of the real name.
    assert_eq!(
        policy_name("default.web", None, Some("default.web")),
        "default.web"
    );
    // Another tier keeps its name (calico-rs refuses other tiers later, with the field).
    assert_eq!(policy_name("sec.web", Some("sec"), None), "sec.web");
}
