use proptest::prelude::*;

use super::*;
use crate::arbitrary;
use crate::dataplane::{diff, validate, Change};
use std::collections::BTreeSet;

use crate::dataplane::ir::{Hook, Set, SetElement};
use crate::model::{parse_resources, PolicyType, Resource, ResourceKey, Update};

fn config() -> CompileConfig {
    CompileConfig::new(arbitrary::NODES[0])
}

/// [`config`] with floating IPs in effect (the random models' endpoints have some), and
/// flow logs when `logs` (they bring staged policies' chains).
fn config_with(logs: bool) -> CompileConfig {
    CompileConfig {
        floating_ips: true,
        flow_logs: logs.then(super::FlowLogConfig::default),
        ..config()
    }
}

const SMALL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-a
ipNetworks: [10.0.0.1/32]
labels: {app: web}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: b
endpoint: eth0
namespace: shop
node: h2
interfaceName: cali-b
ipNetworks: [10.0.0.2/32, "fd00::2/128"]
labels: {app: db}
---
kind: Profile
name: kns.shop
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Policy
name: web
namespace: shop
selector: app == 'web'
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'db', nets: [10.0.0.0/24, 10.0.0.0/16]}
    destination: {ports: [80, 443, http]}
"#;

fn small() -> Model {
    Model::from_resources(parse_resources(SMALL).unwrap()).unwrap()
}

#[test]
fn layout_dispatches_local_interfaces_only() {
    let r = compile(&config(), &small());
    validate::check(&r).unwrap();
    assert_eq!(r.maps[FROM_WORKLOAD_MAP].elements.len(), 1);
    assert!(r.maps[TO_WORKLOAD_MAP].elements.contains_key("cali-a"));
    let fwd = &r.chains[FORWARD_CHAIN];
    assert_eq!(fwd.base.unwrap().hook, Hook::Forward);
    // The policy: one chain, three IR rules (ports 80 and 443 split, the named port), IPv4
    // only because of the IPv4 nets; the nets are merged into one interval.
    let pol = &r.chains[&policy_chain(&(Some("shop".into()), "web".into()), PolicyType::Ingress)];
    assert_eq!(pol.rules.len(), 3, "{pol:#?}");
    let net_sets: Vec<&Set> = r
        .sets
        .iter()
        .filter(|(n, _)| n.starts_with("net4-"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(net_sets.len(), 1);
    assert_eq!(
        net_sets[0].elements.iter().collect::<Vec<_>>(),
        vec![&SetElement::Net("10.0.0.0/16".parse().unwrap())]
    );
    // The selector set holds the remote db endpoint's IPv4 address.
    let sel = r
        .sets
        .iter()
        .find(|(n, _)| n.starts_with("sel4-"))
        .map(|(_, s)| s)
        .unwrap();
    assert_eq!(
        sel.elements.iter().collect::<Vec<_>>(),
        vec![&SetElement::Net("10.0.0.2/32".parse().unwrap())]
    );
    assert!(!r
        .chains
        .contains_key(&endpoint_chain("cali-b", PolicyType::Ingress)));
}

#[test]
fn compiling_twice_or_in_another_order_gives_identical_ir() {
    let model = small();
    let a = compile(&config(), &model);
    let b = compile(&config(), &model);
    assert_eq!(a, b);
    let mut c = Compiler::new(config());
    let mut m = Model::new();
    let mut resources: Vec<Resource> = parse_resources(SMALL).unwrap();
    resources.reverse();
    for r in resources {
        feed(&mut m, &mut c, Update::Upsert(r));
    }
    assert_eq!(c.ruleset(), &a);
}

#[test]
fn a_label_change_touches_only_the_sets_it_enters_or_leaves() {
    let mut m = small();
    let mut c = Compiler::from_model(config(), &m);
    c.take_changes();
    let mut b = small()
        .workload_endpoints
        .values()
        .find(|e| e.node == "h2")
        .unwrap()
        .clone();
    b.labels.insert("app".into(), "cache".into());
    feed(
        &mut m,
        &mut c,
        Update::Upsert(Resource::WorkloadEndpoint(b)),
    );
    let changes = c.take_changes();
    assert_eq!(
        changes.changes,
        vec![Change::DelElements {
            set: c
                .ruleset()
                .sets
                .keys()
                .find(|n| n.starts_with("sel4-"))
                .unwrap()
                .clone(),
            elements: vec![SetElement::Net("10.0.0.2/32".parse().unwrap())],
        }]
    );
}

#[test]
fn removing_everything_leaves_only_the_base() {
    let empty = Compiler::new(config()).ruleset().clone();
    let mut m = small();
    let mut c = Compiler::from_model(config(), &m);
    for r in parse_resources(SMALL).unwrap() {
        feed(&mut m, &mut c, Update::Remove(r.key()));
    }
    assert_eq!(c.ruleset(), &empty);
}

/// Updates that turn model `a` into model `b`.
pub(super) fn updates(a: &Model, b: &Model) -> Vec<Update> {
    let resources = |m: &Model| -> Vec<Resource> {
        m.workload_endpoints
            .values()
            .cloned()
            .map(Resource::WorkloadEndpoint)
            .chain(m.policies.values().cloned().map(Resource::Policy))
            .chain(m.profiles.values().cloned().map(Resource::Profile))
            .chain(m.network_sets.values().cloned().map(Resource::NetworkSet))
            .chain(m.tiers.values().cloned().map(Resource::Tier))
            .chain(
                m.host_endpoints
                    .values()
                    .cloned()
                    .map(Resource::HostEndpoint),
            )
            .collect()
    };
    let new = resources(b);
    let new_keys: BTreeSet<ResourceKey> = new.iter().map(Resource::key).collect();
    let mut out: Vec<Update> = resources(a)
        .into_iter()
        .filter(|r| !new_keys.contains(&r.key()))
        .map(|r| Update::Remove(r.key()))
        .collect();
    out.extend(new.into_iter().map(Update::Upsert));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn compiled_ir_keeps_its_invariants(model in arbitrary::model(), logs in any::<bool>()) {
        let r = compile(&config_with(logs), &model);
        if let Err(e) = validate::check(&r) {
            return Err(TestCaseError::fail(format!("{e}\n{r:#?}")));
        }
    }

    #[test]
    fn applying_the_diff_of_a_to_b_on_a_gives_b(a in arbitrary::model(), b in arbitrary::model()) {
        let (ra, rb) = (compile(&config_with(false), &a), compile(&config_with(true), &b));
        let mut state = ra.clone();
        diff(&ra, &rb).apply_to(&mut state).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&state, &rb);
        prop_assert!(diff(&rb, &rb).is_empty());
    }

    /// With flow logs (`logs`) too, which bring staged policies' chains.
    #[test]
    fn incremental_compilation_equals_full(
        a in arbitrary::model(),
        b in arbitrary::model(),
        logs in any::<bool>(),
        addrs_a in arbitrary::interface_addresses(),
        addrs_b in arbitrary::interface_addresses(),
        addrs_at in 0usize..8,
    ) {
        // The agent's snapshot path (`from_model`), then its update path, the interfaces'
        // addresses changing somewhere in between.
        let mut m = a.clone();
        let mut c = Compiler::from_model(config_with(logs), &m);
        c.set_interface_addresses(&m, addrs_a);
        let mut dataplane = Ruleset::default();
        c.take_changes().apply_to(&mut dataplane).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&dataplane, c.ruleset());
        let updates = updates(&a, &b);
        let at = addrs_at.min(updates.len());
        for (i, u) in updates.into_iter().enumerate() {
            if i == at {
                c.set_interface_addresses(&m, addrs_b.clone());
            }
            feed(&mut m, &mut c, u);
            // Apply change sets one update at a time, as the agent may.
            c.take_changes().apply_to(&mut dataplane).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        c.set_interface_addresses(&m, addrs_b.clone());
        c.take_changes().apply_to(&mut dataplane).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut full = Compiler::from_model(config_with(logs), &b);
        full.set_interface_addresses(&b, addrs_b);
        prop_assert_eq!(c.ruleset(), full.ruleset());
        prop_assert_eq!(&dataplane, full.ruleset());
    }
}
