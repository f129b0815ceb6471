//! Floating IPs: policy sees the packet after destination NAT, so it is written against the
//! workload's own address (Felix: the `nat` table's PREROUTING runs before `filter`).

use super::*;

const VM: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: vm
endpoint: eth0
node: h1
interfaceName: cali-vm
ipNetworks: [10.65.0.2/32]
ipNATs: [{internalIP: 10.65.0.2, externalIP: 172.16.0.5}]
labels: {app: vm}
profiles: [open]
---
kind: Profile
name: open
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Policy
name: vm-in
selector: app == 'vm'
ingress:
  - {action: Deny, protocol: TCP, destination: {nets: [10.65.0.2/32], ports: [22]}}
  - {action: Deny, protocol: TCP, destination: {nets: [172.16.0.5/32], ports: [23]}}
  - {action: Allow}
"#;

#[test]
fn policy_judges_a_floating_ip_packet_by_the_internal_address() {
    let model = Model::from_resources(parse_resources(VM).unwrap()).unwrap();
    let verdict = |dport: u16, enabled: bool| {
        let p = tcp("192.0.2.9", "172.16.0.5", dport);
        let seen = translate_floating_ip(&model, &p, enabled);
        evaluate_flow(&model, &seen).map(|e| e.verdict.is_allow())
    };
    assert_eq!(verdict(80, true), Ok(true));
    // A rule about the internal address applies to the floating IP's traffic...
    assert_eq!(verdict(22, true), Ok(false));
    // ... and one about the floating IP never matches: policy never sees it.
    assert_eq!(verdict(23, true), Ok(true));
    // Not in effect (a Kubernetes endpoint, floating IPs disabled): no endpoint there.
    assert!(matches!(
        verdict(80, false),
        Err(EvalError::NoEndpoint { .. })
    ));
}
