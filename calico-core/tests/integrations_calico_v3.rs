//! Reading projectcalico.org/v3 YAML as calicoctl users write it.
#![cfg(feature = "calico-v3")]

use calico_core::eval::{policies_for, EndpointRef, EndpointView};
use calico_core::integrations::calico_v3::parse_v3;
use calico_core::model::{
    load_file, parse_resources, Model, PolicyType, Resource, WorkloadEndpointId,
};

#[test]
fn reads_every_kind_including_lists() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/calico-v3/cluster.yaml"
    ))
    .unwrap();
    let resources = parse_v3(&text).unwrap();
    let kinds: Vec<String> = resources.iter().map(|r| r.kind().to_string()).collect();
    assert_eq!(
        kinds,
        [
            "BgpConfiguration",
            "IpPool",
            "Node",
            "BgpPeer",
            "Profile",
            "WorkloadEndpoint",
            "Policy",
            "Policy",
            "HostEndpoint"
        ]
    );
    let model = Model::from_resources(resources.clone()).unwrap();
    let node = &model.nodes["host-a"];
    assert_eq!(
        node.bgp.as_ref().unwrap().ipv4_address.unwrap().to_string(),
        "192.0.2.11"
    );
    let wep = model.workload_endpoints.values().next().unwrap();
    assert_eq!(wep.id.workload, "web-1");
    assert_eq!(wep.namespace.as_deref(), Some("shop"));
    assert_eq!(wep.ports[0].port, 8080);
    let gnp = resources
        .iter()
        .find_map(|r| match r {
            Resource::Policy(p) if p.namespace.is_none() => Some(p),
            _ => None,
        })
        .unwrap();
    // A GlobalNetworkPolicy's namespaceSelector narrows the endpoints it applies to.
    assert_eq!(gnp.selector.to_string(), r#"pcns.team == "shop""#);
}

/// Calico: a policy-level `namespaceSelector: all()` selects every *namespaced* endpoint
/// (`has(projectcalico.org/namespace)`), exactly as a rule-level one does; host endpoints
/// and endpoints without a namespace are not in any namespace, so it never applies to them.
#[test]
fn policy_namespace_selector_all_means_namespaced_endpoints_only() {
    let resources = parse_v3(
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: every-namespace}
spec:
  namespaceSelector: all()
  types: [Ingress]
  ingress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: host-a-eth0}
spec: {node: host-a, interfaceName: eth0, expectedIPs: [192.0.2.11]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: web, namespace: shop}
spec: {orchestrator: k8s, pod: web-1, endpoint: eth0, node: host-a, interfaceName: cali1, ipNetworks: [10.65.0.2/32]}
"#,
    )
    .unwrap();
    let model = Model::from_resources(resources).unwrap();
    let applying = |r: EndpointRef| -> Vec<String> {
        let view = EndpointView::resolve(&model, &r).unwrap();
        policies_for(&model, &view, PolicyType::Ingress)
            .into_iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert!(applying(EndpointRef::Host("host-a-eth0".into())).is_empty());
    let wep = WorkloadEndpointId {
        orchestrator: "k8s".into(),
        workload: "web-1".into(),
        endpoint: "eth0".into(),
    };
    assert_eq!(applying(EndpointRef::Workload(wep)), ["every-namespace"]);
}

/// `serviceAccountSelector` picks endpoints by their account's `pcsa.` labels. Calico's
/// update processors read `all()` differently by kind: a GlobalNetworkPolicy's means "has a
/// service account", a NetworkPolicy's stays "every endpoint (of the namespace)". Rule-level
/// `serviceAccounts` are kept as written (the evaluator's cases cover their meaning).
#[test]
fn service_account_selectors_as_calico_reads_them() {
    let resources = parse_v3(
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: any-account}
spec:
  serviceAccountSelector: all()
  ingress: [{action: Allow, source: {serviceAccounts: {names: [api], selector: "role == 'x'"}}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: api-accounts, namespace: shop}
spec:
  selector: app == 'web'
  serviceAccountSelector: role == 'api'
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: all-accounts, namespace: shop}
spec:
  serviceAccountSelector: all()
"#,
    )
    .unwrap();
    let selectors: Vec<String> = resources
        .iter()
        .map(|r| match r {
            Resource::Policy(p) => p.selector.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        selectors,
        [
            "has(projectcalico.org/serviceaccount)",
            "app == \"web\" && pcsa.role == \"api\"",
            "all()"
        ]
    );
    let Resource::Policy(p) = &resources[0] else {
        unreachable!()
    };
    let accounts = p.ingress[0].source.service_accounts.as_ref().unwrap();
    assert_eq!(accounts.names, ["api"]);
    assert_eq!(
        accounts.selector.as_ref().unwrap().to_string(),
        "role == \"x\""
    );
    // A name that is no Kubernetes name is refused where it stands.
    let e = err("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [{action: Allow, destination: {serviceAccounts: {names: [Bad_Name]}}}]}");
    assert!(
        e.contains("egress[0].destination.serviceAccounts.names[0]"),
        "{e}"
    );
}

/// The repo's own calicoctl-style example, read as the agent reads its resource
/// directory (`load_file`/`parse_resources`): it used to be refused there, since that
/// reader knew only the native format (`kind: Policy`, no `apiVersion`).
#[test]
fn resource_files_load_the_v3_example() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/calico-v3/cluster.yaml"
    );
    let loaded = load_file(path).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(loaded, parse_v3(&text).unwrap());
    assert_eq!(loaded.len(), 9);
    Model::from_resources(loaded).unwrap();
    // Native and v3 documents may share a file; v3 errors keep their field path.
    let mixed = "kind: Profile\nname: native\n---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: v3}\n";
    assert_eq!(parse_resources(mixed).unwrap().len(), 2);
    let e = parse_resources("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blocksize: 26}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("document 1 (IPPool p)") && e.contains("field spec.blocksize"),
        "{e}"
    );
}

fn err(doc: &str) -> String {
    parse_v3(&format!("apiVersion: projectcalico.org/v3\n{doc}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let e = err("kind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  ingress: [{action: Allow, source: {nett: []}}]\n");
    assert!(e.contains("spec.ingress[0].source.nett"), "{e}");
    let e = err("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blocksize: 26}\n");
    assert!(e.contains("spec.blocksize"), "{e}");
    let e = err("kind: Profile\nmetadata: {name: p, lables: {}}\n");
    assert!(e.contains("metadata.lables"), "{e}");
    let e = err("kind: Profile\nmetadata: {name: p}\nstatus: {}\n");
    assert!(e.contains("unknown top-level field"), "{e}");
}

#[test]
fn unsupported_features_are_rejected_not_ignored() {
    let cases = [
        ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{action: Allow, http: {methods: [GET]}}]}", "spec.ingress[0].http", "application-layer proxy"),
        ("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [{action: Allow, destination: {services: {name: x}}}]}", "spec.egress[0].destination.services", "Services"),
        ("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, ipipMode: Always}", "spec.ipipMode", "IP-in-IP"),
        ("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, vxlanMode: CrossSubnet}", "spec.vxlanMode", "VXLAN"),
        ("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, natOutgoing: true}", "spec.natOutgoing", "outgoing NAT"),
        ("kind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 192.0.2.1, asNumber: 1, password: {secretKeyRef: {name: s, key: k}}}", "spec.password", "secret references"),
        ("kind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 192.0.2.1, asNumber: 1, localASNumber: 2}", "spec.localASNumber", "not supported"),
        ("kind: BGPConfiguration\nmetadata: {name: default}\nspec: {bindMode: NodeIP}", "spec.bindMode", "not supported"),
    ];
    for (doc, field, why) in cases {
        let e = err(doc);
        assert!(
            e.contains(&format!("field {field}:")) && e.contains(why),
            "{doc}\n{e}"
        );
    }
}

#[test]
fn host_endpoint_policy_kinds_read_with_calicos_rules() {
    let doc = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {preDNAT: true, applyOnForward: true, selector: has(host), ingress: [{action: Deny}]}\n";
    let resources = parse_v3(doc).unwrap();
    let calico_core::model::Resource::Policy(p) = &resources[0] else {
        panic!("{resources:?}")
    };
    assert!(p.pre_dnat && p.apply_on_forward);
    // Calico's validation: pre-DNAT needs applyOnForward, governs ingress only, and only
    // a GlobalNetworkPolicy can be pre-DNAT.
    let e = err("kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {preDNAT: true}");
    assert!(e.contains("preDNAT") && e.contains("applyOnForward"), "{e}");
    let e = err("kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}");
    assert!(e.contains("egress") && e.contains("ingress only"), "{e}");
    let e = err("kind: NetworkPolicy\nmetadata: {name: p, namespace: n}\nspec: {preDNAT: true, applyOnForward: true}");
    assert!(
        e.contains("preDNAT") && e.contains("GlobalNetworkPolicy"),
        "{e}"
    );
    // Untracked: global, with applyOnForward, never pre-DNAT too.
    let doc = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: u}\nspec: {doNotTrack: true, applyOnForward: true, ingress: [{action: Allow}], egress: [{action: Allow}]}\n";
    let calico_core::model::Resource::Policy(u) = &parse_v3(doc).unwrap()[0] else {
        panic!()
    };
    assert!(u.do_not_track && !u.pre_dnat);
    let e = err("kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {doNotTrack: true}");
    assert!(
        e.contains("doNotTrack") && e.contains("applyOnForward"),
        "{e}"
    );
    let e = err("kind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: {doNotTrack: true, preDNAT: true, applyOnForward: true}");
    assert!(e.contains("doNotTrack") && e.contains("both"), "{e}");
    let e = err("kind: NetworkPolicy\nmetadata: {name: p, namespace: n}\nspec: {doNotTrack: true, applyOnForward: true}");
    assert!(
        e.contains("doNotTrack") && e.contains("GlobalNetworkPolicy"),
        "{e}"
    );
}

#[test]
fn bad_documents_say_which() {
    let e = parse_v3("apiVersion: v1\nkind: Pod\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("document 1") && e.contains("apiVersion"), "{e}");
    let e = parse_v3("apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: ok}\n---\napiVersion: projectcalico.org/v3\nkind: KubeControllersConfiguration\nmetadata: {name: t}\n").unwrap_err().to_string();
    assert!(
        e.contains("document 2: KubeControllersConfiguration t")
            && e.contains("not a supported kind"),
        "{e}"
    );
    let e = err("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {selector: \"app ==\"}");
    assert!(
        e.contains("spec.selector") && e.contains("expected a quoted string"),
        "{e}"
    );
    let e = err("kind: WorkloadEndpoint\nmetadata: {name: w}\nspec: {orchestrator: k8s, endpoint: eth0, node: n, interfaceName: c1, ipNetworks: [10.0.0.0/24], pod: p}");
    assert!(e.contains("ipNetworks[0]") && e.contains("/32"), "{e}");
}

#[test]
fn allowed_spoofed_source_prefixes_are_read_checked_and_written_back() {
    let doc = "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: w, namespace: n}\nspec: {orchestrator: k8s, pod: p, endpoint: eth0, node: h, interfaceName: cali1, ipNetworks: [10.0.0.1/32], allowSpoofedSourcePrefixes: [10.99.0.0/24, \"fd00:99::/64\"]}\n";
    let resources = parse_v3(doc).unwrap();
    let calico_core::model::Resource::WorkloadEndpoint(ep) = &resources[0] else {
        panic!("{resources:?}")
    };
    let want: Vec<ipnet::IpNet> = vec![
        "10.99.0.0/24".parse().unwrap(),
        "fd00:99::/64".parse().unwrap(),
    ];
    assert_eq!(ep.allow_spoofed_source_prefixes, want);
    let back = calico_core::integrations::calico_v3::to_v3(&resources[0]).unwrap();
    let again = parse_v3(&serde_json::to_string(&back.value).unwrap()).unwrap();
    assert_eq!(again, resources);
    let e = err("kind: WorkloadEndpoint\nmetadata: {name: w}\nspec: {orchestrator: k8s, pod: p, endpoint: eth0, node: n, interfaceName: c1, ipNetworks: [10.0.0.1/32], allowSpoofedSourcePrefixes: [10.99.0.1/24]}");
    assert!(
        e.contains("allowSpoofedSourcePrefixes[0]") && e.contains("10.99.0.0/24"),
        "{e}"
    );
}

/// Calico's staged kinds (the examples of Calico's "Stage, preview impacts, and enforce
/// policy" documentation): read as staged policies named `staged:<name>`, written back as
/// the same kinds.
#[test]
fn staged_policy_kinds_read_and_write_back() {
    use calico_core::integrations::calico_v3::to_v3;
    use calico_core::model::StagedAction;
    let text = r#"
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: security.allow-tcp-6379
spec:
  tier: security
  selector: role == 'database'
  types: [Ingress, Egress]
  ingress:
    - action: Allow
      protocol: TCP
      source: {selector: role == 'frontend'}
      destination: {ports: [6379]}
  egress:
    - action: Allow
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata:
  name: allow-tcp-6379
  namespace: production
spec:
  selector: role == 'database'
  stagedAction: Delete
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
        - podSelector: {matchLabels: {role: frontend}}
      ports:
        - {protocol: TCP, port: 6379}
  egress:
    - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
      ports: [{protocol: TCP, port: 5978}]
"#;
    let resources = parse_v3(text).unwrap();
    let policies: Vec<_> = resources
        .iter()
        .map(|r| match r {
            Resource::Policy(p) => p,
            other => panic!("{other:?}"),
        })
        .collect();
    let names: Vec<(Option<&str>, &str, Option<StagedAction>)> = policies
        .iter()
        .map(|p| (p.namespace.as_deref(), p.name.as_str(), p.staged_action))
        .collect();
    assert_eq!(
        names,
        [
            (
                None,
                "staged:security.allow-tcp-6379",
                Some(StagedAction::Set)
            ),
            (
                Some("production"),
                "staged:allow-tcp-6379",
                Some(StagedAction::Delete)
            ),
            (
                Some("default"),
                "staged:knp.default.test-network-policy",
                Some(StagedAction::Set)
            ),
        ]
    );
    assert_eq!(policies[0].tier, "security");
    assert_eq!(
        policies[2].ingress.len(),
        2,
        "one rule per peer, as the driver"
    );
    // Written back: the staged kinds under the user's names, read again the same.
    for r in &resources[..2] {
        let v3 = to_v3(r).unwrap();
        assert!(v3.kind.starts_with("Staged"), "{}", v3.kind);
        assert!(!v3.name.starts_with("staged:"), "{}", v3.name);
        assert_eq!(parse_v3(&v3.value.to_string()).unwrap(), vec![r.clone()]);
    }
    // Refusals name the field.
    let e = err("kind: NetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Set}\n");
    assert!(e.contains("field spec.stagedAction"), "{e}");
    let e =
        err("kind: StagedGlobalNetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Later}\n");
    assert!(e.contains("field spec.stagedAction"), "{e}");
    let e = err("kind: StagedNetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Delete, ingress: [{action: Allow}]}\n");
    assert!(e.contains("field stagedAction"), "{e}");
    let e = err(
        "kind: StagedKubernetesNetworkPolicy\nmetadata: {name: p}\nspec: {stagedAction: Later}\n",
    );
    assert!(e.contains("field spec.stagedAction"), "{e}");
}
