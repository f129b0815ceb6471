//! Network sets in the compiled IR: their networks join the selector sets that select them,
//! nested networks are covered, and a change of networks is a change of set elements only.

use super::*;
use crate::dataplane::ir::{SetElement, SetKey};
use crate::dataplane::Change;
use crate::model::{parse_resources, NetworkSet, Resource};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
node: h1
interfaceName: cali-a
ipNetworks: [10.0.0.1/32]
labels: {app: web}
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: b
endpoint: eth0
node: h2
interfaceName: cali-b
ipNetworks: [198.51.100.9/32]
labels: {role: partner}
---
kind: Policy
name: web
selector: app == 'web'
ingress: [{action: Allow, source: {selector: role == 'partner'}}]
---
kind: NetworkSet
name: partners
labels: {role: partner}
nets: [198.51.100.0/24, 203.0.113.7, "2001:db8::/48"]
"#;

fn net(s: &str) -> SetElement {
    SetElement::Net(s.parse().unwrap())
}

fn selector_set(c: &Compiler, prefix: &str) -> (String, Vec<SetElement>) {
    let (name, set) = c
        .ruleset()
        .sets
        .iter()
        .find(|(n, _)| n.starts_with(prefix))
        .unwrap();
    (name.clone(), set.elements.iter().copied().collect())
}

fn partners(nets: &[&str]) -> Update {
    Update::Upsert(Resource::NetworkSet(NetworkSet {
        name: "partners".into(),
        namespace: None,
        labels: [("role".to_string(), "partner".to_string())].into(),
        nets: nets
            .iter()
            .map(|n| crate::model::parse_cidr_or_address(n).unwrap())
            .collect(),
    }))
}

#[test]
fn selected_sets_networks_cover_nested_endpoint_addresses() {
    let m = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let c = Compiler::from_model(CompileConfig::new("h1"), &m);
    let (name, v4) = selector_set(&c, "sel4-");
    assert_eq!(c.ruleset().sets[&name].key, SetKey::Ipv4Net);
    // The endpoint's 198.51.100.9 lies inside the set's /24: one element, no overlap.
    assert_eq!(v4, vec![net("198.51.100.0/24"), net("203.0.113.7/32")]);
    assert_eq!(selector_set(&c, "sel6-").1, vec![net("2001:db8::/48")]);
}

#[test]
fn changing_a_sets_networks_changes_set_elements_only() {
    let mut m = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
    let mut c = Compiler::from_model(CompileConfig::new("h1"), &m);
    c.take_changes();
    feed(
        &mut m,
        &mut c,
        partners(&["203.0.113.7", "192.0.2.0/24", "2001:db8::/48"]),
    );
    let (name, _) = selector_set(&c, "sel4-");
    // The /24 leaves, uncovering the endpoint's address inside it; 192.0.2.0/24 enters.
    assert_eq!(
        c.take_changes().changes,
        vec![
            Change::DelElements {
                set: name.clone(),
                elements: vec![net("198.51.100.0/24")],
            },
            Change::AddElements {
                set: name.clone(),
                elements: vec![net("192.0.2.0/24"), net("198.51.100.9/32")],
            },
        ]
    );
    feed(
        &mut m,
        &mut c,
        Update::Remove(crate::model::ResourceKey::NetworkSet {
            namespace: None,
            name: "partners".into(),
        }),
    );
    let changes = c.take_changes().changes;
    assert!(
        changes
            .iter()
            .all(|ch| matches!(ch, Change::DelElements { .. })),
        "{changes:?}"
    );
    assert_eq!(selector_set(&c, "sel4-").1, vec![net("198.51.100.9/32")]);
}
