use super::*;
use crate::model::{PortSpec, Protocol};

/// The network-policy-api's own sample: pods of `sensitive-ns` refuse everyone but
/// monitoring, which passes to the namespace's NetworkPolicies.
const SAMPLE: &str = r#"{
  "metadata": {"name": "cluster-wide-deny-example"},
  "spec": {
    "priority": 10,
    "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "sensitive-ns"}}},
    "ingress": [
      {"name": "pass-monitoring", "action": "Pass",
       "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
       "ports": [{"portNumber": {"protocol": "TCP", "port": 9090}}, {"namedPort": "metrics"}]},
      {"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}
    ]
  }
}"#;

#[test]
fn the_apis_sample_becomes_a_policy_of_the_admin_tier() {
    let anp: AdminNetworkPolicy = serde_json::from_str(SAMPLE).unwrap();
    let p = translate_admin_policy(&anp).unwrap();
    assert_eq!(p.name, "kanp.adminnetworkpolicy.cluster-wide-deny-example");
    assert_eq!(
        (p.tier.as_str(), p.order, p.namespace.as_deref()),
        ("adminnetworkpolicy", Some(10.0), None)
    );
    assert_eq!(p.types, [PolicyType::Ingress]);
    let selector = p.selector.to_string();
    assert!(
        selector.contains("pcns.kubernetes.io/metadata.name == \"sensitive-ns\""),
        "{selector}"
    );
    assert!(
        selector.contains("projectcalico.org/orchestrator == \"k8s\""),
        "{selector}"
    );
    // Pass: TCP 9090 and the named port under TCP; the named port under UDP and SCTP.
    let pass: Vec<_> = p
        .ingress
        .iter()
        .filter(|r| r.action == Action::Pass)
        .collect();
    let by_proto = |proto| {
        pass.iter()
            .find(|r| r.protocol == Some(proto))
            .map(|r| &r.destination.ports)
    };
    let named = PortSpec::Named("metrics".into());
    assert_eq!(
        by_proto(Protocol::TCP),
        Some(&vec![
            PortSpec::Range {
                min: 9090,
                max: 9090
            },
            named.clone()
        ])
    );
    assert_eq!(by_proto(Protocol::UDP), Some(&vec![named.clone()]));
    assert_eq!(by_proto(Protocol::SCTP), Some(&vec![named]));
    // Deny from every namespace: last, any port.
    let last = p.ingress.last().unwrap();
    assert_eq!((last.action, last.protocol), (Action::Deny, None));
    assert!(last
        .source
        .namespace_selector
        .as_ref()
        .is_some_and(Selector::is_all));
}

#[test]
fn a_baseline_policy_is_the_one_of_the_baseline_tier() {
    let banp: BaselineAdminNetworkPolicy = serde_json::from_str(
        r#"{"metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}},
            "egress": [{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}]}}"#,
    )
    .unwrap();
    let p = translate_baseline_policy(&banp).unwrap();
    assert_eq!(p.name, "kbanp.baselineadminnetworkpolicy.default");
    assert_eq!(p.tier, "baselineadminnetworkpolicy");
    assert_eq!(p.types, [PolicyType::Egress]);
    assert_eq!(
        p.egress[0].destination.nets,
        ["0.0.0.0/0".parse::<ipnet::IpNet>().unwrap()]
    );
}
