//! Values as libcalico-go stores them (Go's JSON: compact, `creationTimestamp`, `uid`, the
//! defaults `calicoctl create` fills in), decoded against their keys.

use super::*;

const P: &str = "/calico";
const R: &str = "/calico/resources/v3/projectcalico.org/";

fn decode(key: &str, value: &str) -> Decoded {
    decode_resource(P, &format!("{R}{key}"), value.as_bytes())
}

fn resource(key: &str, value: &str) -> Resource {
    match decode(key, value) {
        Decoded::Resource(r) => r,
        other => panic!("{key}: {other:?}"),
    }
}

fn refused(key: &str, value: &str) -> String {
    match decode(key, value) {
        Decoded::Refused(why) => why,
        other => panic!("{key}: expected a refusal, got {other:?}"),
    }
}

/// A NetworkPolicy as Calico 3.30+ stores it: plain name, the name annotation, the tier
/// label and `tier`/`types` defaulted.
const NETWORK_POLICY: &str = r#"{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web","namespace":"shop","uid":"3b1d4c1e-4f2a-4a7e-9d1e-0c8f2a6b9e11","creationTimestamp":"2025-06-01T10:00:00Z","labels":{"projectcalico.org/tier":"default"},"annotations":{"projectcalico.org/metadata":"{\"name\":\"allow-web\"}"}},"spec":{"tier":"default","order":100,"selector":"app == 'web'","ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"app == 'client'"},"destination":{"ports":[80,"8000:8080"]}}],"types":["Ingress"]}}"#;

/// A GlobalNetworkPolicy as Calico up to 3.29 stored it: `default.` in key and name, empty
/// `source`/`destination` objects.
const GLOBAL_POLICY_329: &str = r#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.deny-all","uid":"0f6a0a3c-2b9e-4a55-8a0c-5a1f3e0e2d77","creationTimestamp":"2024-01-15T08:30:00Z"},"spec":{"tier":"default","order":1000,"selector":"all()","types":["Ingress","Egress"],"ingress":[{"action":"Deny","source":{},"destination":{}}],"egress":[{"action":"Deny","source":{},"destination":{}}]}}"#;

/// A Kubernetes pod's endpoint as the CNI plug-in stores it (ports carry hostPort/hostIP).
const WORKLOAD_ENDPOINT: &str = r#"{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"node--1-k8s-web--7d4b9-eth0","namespace":"shop","uid":"a1b2c3d4-0000-4000-8000-000000000001","creationTimestamp":"2025-06-01T10:05:00Z","labels":{"app":"web","projectcalico.org/namespace":"shop","projectcalico.org/orchestrator":"k8s","projectcalico.org/serviceaccount":"default"}},"spec":{"orchestrator":"k8s","node":"node-1","containerID":"5f1e2d3c4b5a","pod":"web-7d4b9","endpoint":"eth0","serviceAccountName":"default","ipNetworks":["10.244.1.5/32"],"profiles":["kns.shop","ksa.shop.default"],"interfaceName":"cali12345abcdef","mac":"ee:ee:ee:ee:ee:ee","ports":[{"name":"http","protocol":"TCP","port":8080,"hostPort":0,"hostIP":""}]}}"#;

/// A Node as calico-node stores it (orchRefs, addresses, an empty status).
const NODE: &str = r#"{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node-1","uid":"c0ffee00-1111-4222-8333-444455556666","creationTimestamp":"2025-06-01T09:00:00Z","labels":{"kubernetes.io/hostname":"node-1"}},"spec":{"bgp":{"ipv4Address":"192.168.56.11/24"},"orchRefs":[{"nodeName":"node-1","orchestrator":"k8s"}],"addresses":[{"address":"192.168.56.11/24","type":"CalicoNodeIP"}]},"status":{}}"#;

/// A NetworkSet and a GlobalNetworkSet as Calico stores them.
const NETWORK_SET: &str = r#"{"kind":"NetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"db","namespace":"shop","labels":{"role":"db"}},"spec":{"nets":["198.51.100.0/28","2001:db8::/48"]}}"#;
const GLOBAL_NETWORK_SET: &str = r#"{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners","labels":{"role":"partner"}},"spec":{"nets":["203.0.113.0/24"]}}"#;

/// An IPPool as `calicoctl create` stores it with every default filled in.
const IP_POOL: &str = r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"default-ipv4-ippool","uid":"9e8d7c6b-5a49-4382-9170-605f4e3d2c1b","creationTimestamp":"2025-06-01T09:00:00Z"},"spec":{"cidr":"10.244.0.0/16","vxlanMode":"Never","ipipMode":"Never","blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],"assignmentMode":"Automatic"}}"#;

#[test]
fn calicoctl_values_decode() {
    let Resource::Policy(np) = resource("networkpolicies/shop/allow-web", NETWORK_POLICY) else {
        panic!()
    };
    assert_eq!(
        (np.name.as_str(), np.namespace.as_deref(), np.order),
        ("allow-web", Some("shop"), Some(100.0))
    );
    assert_eq!(np.ingress.len(), 1);
    let Resource::Policy(gnp) =
        resource("globalnetworkpolicies/default.deny-all", GLOBAL_POLICY_329)
    else {
        panic!()
    };
    assert_eq!((gnp.name.as_str(), gnp.namespace), ("deny-all", None));
    let Resource::WorkloadEndpoint(w) = resource(
        "workloadendpoints/shop/node--1-k8s-web--7d4b9-eth0",
        WORKLOAD_ENDPOINT,
    ) else {
        panic!()
    };
    assert_eq!(
        (w.id.workload.as_str(), w.node.as_str(), w.ports.len()),
        ("web-7d4b9", "node-1", 1)
    );
    let Resource::Node(n) = resource("nodes/node-1", NODE) else {
        panic!()
    };
    assert_eq!(
        n.bgp.unwrap().ipv4_address.unwrap().to_string(),
        "192.168.56.11"
    );
    let Resource::NetworkSet(s) = resource("networksets/shop/db", NETWORK_SET) else {
        panic!()
    };
    assert_eq!((s.namespace.as_deref(), s.nets.len()), (Some("shop"), 2));
    let Resource::NetworkSet(g) = resource("globalnetworksets/partners", GLOBAL_NETWORK_SET) else {
        panic!()
    };
    assert_eq!((g.namespace, g.labels["role"].as_str()), (None, "partner"));
    let Resource::IpPool(p) = resource("ippools/default-ipv4-ippool", IP_POOL) else {
        panic!()
    };
    assert_eq!(
        (p.cidr.to_string(), p.block_size),
        ("10.244.0.0/16".to_string(), Some(26))
    );
}

#[test]
fn a_value_that_is_not_json_is_refused_with_the_field() {
    let why = refused("profiles/p1", "{not json");
    assert!(why.starts_with("field (value): not JSON"), "{why}");
}

#[test]
fn a_kind_stored_under_another_plural_is_refused() {
    let why = refused(
        "globalnetworkpolicies/allow-web",
        &NETWORK_POLICY.replace("\"namespace\":\"shop\",", ""),
    );
    assert!(
        why.starts_with("field kind:") && why.contains("globalnetworkpolicies"),
        "{why}"
    );
}

#[test]
fn names_and_namespaces_must_match_the_key() {
    let why = refused("networkpolicies/shop/other", NETWORK_POLICY);
    assert!(why.starts_with("field metadata.name:"), "{why}");
    let why = refused("networkpolicies/bank/allow-web", NETWORK_POLICY);
    assert!(why.starts_with("field metadata.namespace:"), "{why}");
    // The name must also match the endpoint's spec.
    let why = refused(
        "workloadendpoints/shop/node--2-k8s-web--7d4b9-eth0",
        &WORKLOAD_ENDPOINT.replace("node--1-k8s", "node--2-k8s"),
    );
    assert!(
        why.starts_with("field metadata.name:") && why.contains("node--1-k8s-web--7d4b9-eth0"),
        "{why}"
    );
}

#[test]
fn validation_failures_name_the_field() {
    let why = refused(
        "networkpolicies/shop/allow-web",
        &NETWORK_POLICY.replace("app == 'web'", "app == "),
    );
    assert!(why.starts_with("field spec.selector"), "{why}");
    let why = refused(
        "ippools/default-ipv4-ippool",
        &IP_POOL.replace("\"ipipMode\":\"Never\"", "\"ipipMode\":\"Always\""),
    );
    assert!(why.contains("spec.ipipMode"), "{why}");
}

/// A BGPFilter as `calicoctl create` stores it (Calico's documented sample).
const BGP_FILTER: &str = r#"{"kind":"BGPFilter","apiVersion":"projectcalico.org/v3","metadata":{"name":"my-filter","uid":"6d0e5b0a-7c1f-4f7e-9a55-1e2d3c4b5a69","creationTimestamp":"2025-06-01T09:00:00Z"},"spec":{"exportV4":[{"cidr":"77.0.0.0/16","source":"RemotePeers","matchOperator":"In","action":"Accept"},{"interface":"*.calico","action":"Reject"}],"importV4":[{"cidr":"44.0.0.0/16","matchOperator":"NotIn","action":"Reject"}],"importV6":[{"cidr":"5000::/64","prefixLength":{"min":64,"max":96},"matchOperator":"In","action":"Accept"},{"action":"Reject"}]}}"#;

#[test]
fn a_bgp_filter_decodes_under_its_key_and_encodes_back() {
    let r = resource("bgpfilters/my-filter", BGP_FILTER);
    let Resource::BgpFilter(f) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (f.export_v4.len(), f.import_v4.len(), f.import_v6.len()),
        (2, 1, 2)
    );
    assert_eq!(f.export_v4[1].interface.as_deref(), Some("*.calico"));
    let key = crate::layout::key_of(P, &r).unwrap();
    assert_eq!(key, format!("{R}bgpfilters/my-filter"));
    let bad = BGP_FILTER.replace("77.0.0.0/16", "77.0.0.0/33");
    assert!(refused("bgpfilters/my-filter", &bad).contains("exportV4[0].cidr"));
}

#[test]
fn unsupported_kinds_are_ignored_not_refused() {
    let felix = r#"{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{}}"#;
    assert_eq!(
        decode("felixconfigurations/default", felix),
        Decoded::Unsupported("FelixConfiguration".into())
    );
    assert_eq!(
        decode("kubecontrollersconfigurations/default", "garbage"),
        Decoded::Unsupported("KubeControllersConfiguration".into())
    );
    assert_eq!(
        decode("widgets/w1", "{}"),
        Decoded::Unsupported("widgets".into())
    );
    assert_eq!(
        decode_resource(P, "/calico/felix/v2/status", b"x"),
        Decoded::NotOurs
    );
}

#[test]
fn a_malformed_key_of_a_supported_kind_is_refused() {
    let why = refused("networkpolicies/allow-web", NETWORK_POLICY);
    assert!(why.starts_with("field (key):"), "{why}");
}

/// Every encodable resource reads back as itself under the key the layout gives it.
#[test]
fn the_writers_encoding_reads_back_as_the_same_resource() {
    let originals = [
        resource("networkpolicies/shop/allow-web", NETWORK_POLICY),
        resource("globalnetworkpolicies/default.deny-all", GLOBAL_POLICY_329),
        resource(
            "workloadendpoints/shop/node--1-k8s-web--7d4b9-eth0",
            WORKLOAD_ENDPOINT,
        ),
        resource("nodes/node-1", NODE),
        resource("ippools/default-ipv4-ippool", IP_POOL),
    ];
    for original in originals {
        let key = crate::layout::key_of(P, &original).unwrap();
        let value = calico_core::integrations::calico_v3::to_v3(&original)
            .unwrap()
            .value
            .to_string();
        match decode_resource(P, &key, value.as_bytes()) {
            Decoded::Resource(back) => assert_eq!(back, original, "{key}: {value}"),
            other => panic!("{key}: {value}: {other:?}"),
        }
    }
}

#[test]
fn the_other_kinds_encode_and_read_back_too() {
    let yaml = r#"
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.shop}
spec:
  labelsToApply: {pcns.projectcalico.org/name: shop}
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: node-1-eth0, labels: {role: edge}}
spec: {node: node-1, interfaceName: eth0, expectedIPs: [192.168.56.11], ports: [{name: ssh, port: 22, protocol: TCP}]}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false, listenPort: 179}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {nodeSelector: "rack == 'a'", peerIP: 192.168.56.1, asNumber: 64513, filters: [edge]}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: node.node-1}
spec:
  communities: [{name: gold, value: "65001:100"}]
  prefixAdvertisements: [{cidr: 10.244.0.0/16, communities: [gold, "65001:2:3"]}]
"#;
    for original in calico_core::integrations::calico_v3::parse_v3(yaml).unwrap() {
        let key = crate::layout::key_of(P, &original).unwrap();
        let value = calico_core::integrations::calico_v3::to_v3(&original)
            .unwrap()
            .value
            .to_string();
        match decode_resource(P, &key, value.as_bytes()) {
            Decoded::Resource(back) => assert_eq!(back, original, "{key}: {value}"),
            other => panic!("{key}: {value}: {other:?}"),
        }
    }
}

/// A security-group policy in the form networking-calico (Calico's Neutron driver) writes
/// it: no tier, no uid, rules per IP version (its test data's upper-case group id is
/// lower-cased here: calico-rs accepts DNS-style lower-case names only).
const NEUTRON_SG_POLICY: &str = r#"{"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {"namespace": "openstack", "name": "ossg.default.0f1e2d3c-sg"}, "spec": {"egress": [{"action": "Allow", "ipVersion": 4}, {"action": "Allow", "ipVersion": 6}], "ingress": [{"action": "Allow", "ipVersion": 4, "source": {"selector": "has(sg.projectcalico.org/openstack-SGID-default)"}}, {"action": "Allow", "ipVersion": 6, "source": {"selector": "has(sg.projectcalico.org/openstack-SGID-default)"}}], "selector": "has(sg.projectcalico.org/openstack-SGID-default)"}}"#;

#[test]
fn a_neutron_security_group_policy_decodes_under_its_own_name() {
    let Resource::Policy(p) = resource(
        "networkpolicies/openstack/ossg.default.0f1e2d3c-sg",
        NEUTRON_SG_POLICY,
    ) else {
        panic!()
    };
    // Only a leading `default.` is the tier's prefix.
    assert_eq!(p.name, "ossg.default.0f1e2d3c-sg");
    assert_eq!((p.ingress.len(), p.egress.len()), (2, 2));
}

/// A Tier as Calico 3.32 stores it (uid, finalizer), and a GlobalNetworkPolicy of that tier
/// in both name forms: `security.block` (up to 3.31, the tier prefix required) and `block`
/// (3.32).
const TIER: &str = r#"{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security","uid":"6c0d3a52-3f51-4d8e-9d4e-2a7b1c9e0f11","creationTimestamp":"2026-01-10T09:00:00Z","finalizers":["projectcalico.org/tier-controller"]},"spec":{"order":100,"defaultAction":"Deny"}}"#;

#[test]
fn tiers_and_their_policies_are_read() {
    use calico_core::model::{Tier, TierAction};
    let Decoded::Resource(r) = decode("tiers/security", TIER) else {
        panic!("{:?}", decode("tiers/security", TIER))
    };
    let want = Tier {
        name: "security".into(),
        order: Some(100.0),
        default_action: TierAction::Deny,
    };
    assert_eq!(r, Resource::Tier(want));
    assert_eq!(
        crate::layout::key_of(P, &r).unwrap(),
        "/calico/resources/v3/projectcalico.org/tiers/security"
    );
    for name in ["security.block", "block"] {
        let value = format!(
            r#"{{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}","labels":{{"projectcalico.org/tier":"security"}},"annotations":{{"projectcalico.org/metadata":"{{\"name\":\"{name}\"}}"}}}},"spec":{{"tier":"security","order":10,"selector":"all()","types":["Ingress"],"ingress":[{{"action":"Pass"}}]}}}}"#
        );
        let Decoded::Resource(Resource::Policy(p)) =
            decode(&format!("globalnetworkpolicies/{name}"), &value)
        else {
            panic!(
                "{name}: {:?}",
                decode(&format!("globalnetworkpolicies/{name}"), &value)
            )
        };
        assert_eq!((p.name.as_str(), p.tier.as_str()), (name, "security"));
    }
    let bad = TIER.replace("\"Deny\"", "\"Allow\"");
    let why = refused("tiers/security", &bad);
    assert!(why.contains("spec.defaultAction"), "{why}");
}

/// Staged policies as Calico stores them, under their kinds' keys and the user's names.
const STAGED_POLICY: &str = r#"{"kind":"StagedNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web","namespace":"shop","uid":"3b1d4c1e-4f2a-4a7e-9d1e-0c8f2a6b9e12","creationTimestamp":"2025-06-01T10:00:00Z","labels":{"projectcalico.org/tier":"default"},"annotations":{"projectcalico.org/metadata":"{\"name\":\"allow-web\"}"}},"spec":{"stagedAction":"Set","tier":"default","order":100,"selector":"app == 'web'","ingress":[{"action":"Deny","protocol":"TCP","destination":{"ports":[22]}}],"types":["Ingress"]}}"#;
const STAGED_GLOBAL_POLICY: &str = r#"{"kind":"StagedGlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.deny-all","uid":"3b1d4c1e-4f2a-4a7e-9d1e-0c8f2a6b9e13","creationTimestamp":"2025-06-01T10:00:00Z"},"spec":{"stagedAction":"Delete","tier":"default","selector":"all()","types":["Ingress"]}}"#;
const STAGED_KUBERNETES_POLICY: &str = r#"{"kind":"StagedKubernetesNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"db","namespace":"shop","uid":"3b1d4c1e-4f2a-4a7e-9d1e-0c8f2a6b9e14","creationTimestamp":"2025-06-01T10:00:00Z"},"spec":{"stagedAction":"Set","podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress"],"ingress":[{"ports":[{"protocol":"TCP","port":5432}]}]}}"#;

#[test]
fn staged_policies_decode_under_their_kinds_and_write_back() {
    let staged = resource("stagednetworkpolicies/shop/allow-web", STAGED_POLICY);
    let global = resource(
        "stagedglobalnetworkpolicies/default.deny-all",
        STAGED_GLOBAL_POLICY,
    );
    let k8s = resource(
        "stagedkubernetesnetworkpolicies/shop/db",
        STAGED_KUBERNETES_POLICY,
    );
    let names: Vec<String> = [&staged, &global, &k8s]
        .iter()
        .map(|r| match r {
            Resource::Policy(p) => format!("{:?} {} {:?}", p.namespace, p.name, p.staged_action),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "Some(\"shop\") staged:allow-web Some(Set)",
            "None staged:deny-all Some(Delete)",
            "Some(\"shop\") staged:knp.default.db Some(Set)",
        ]
    );
    for original in [staged, global] {
        let key = crate::layout::key_of(P, &original).unwrap();
        assert!(key.contains("/staged"), "{key}");
        let value = calico_core::integrations::calico_v3::to_v3(&original)
            .unwrap()
            .value
            .to_string();
        match decode_resource(P, &key, value.as_bytes()) {
            Decoded::Resource(back) => assert_eq!(back, original, "{key}: {value}"),
            other => panic!("{key}: {value}: {other:?}"),
        }
    }
}
