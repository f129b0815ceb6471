//! Calico's service-account policy on Kubernetes objects, through the whole chain on the
//! simulated network: ServiceAccounts become `ksa.` profiles, pods carry their account, and
//! a `projectcalico.org/v3` GlobalNetworkPolicy matches sources by account name and labels
//! (`serviceAccounts`) and picks its endpoints by account (`serviceAccountSelector`). The
//! compiled rules decide, as they do on a real host.

use calico_core::eval::Packet;
use calico_core::integrations::calico_v3::parse_v3;
use calico_core::integrations::kubernetes::{
    namespace_profile, pod_endpoint, service_account_profile, Namespace, Pod, ServiceAccount,
};
use calico_core::model::{Resource, Update};
use calico_mock::MockNetwork;
use serde_json::json;

/// The database accepts TCP 5432 from accounts named `api` labelled `tier: backend`;
/// it is picked by its own account's label `role: db`.
const POLICY: &str = r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: db-from-api}
spec:
  serviceAccountSelector: role == 'db'
  ingress:
    - action: Allow
      protocol: TCP
      source: {serviceAccounts: {names: [api], selector: "tier == 'backend'"}}
      destination: {ports: [5432]}
"#;

fn network() -> MockNetwork {
    let mut net = MockNetwork::new();
    net.add_host("h1", "192.0.2.1".parse().unwrap());
    let mut resources = Vec::new();
    for ns in ["prod", "dev"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        resources.push(Resource::Profile(namespace_profile(&ns)));
    }
    for (ns, name, labels) in [
        ("prod", "api", json!({"tier": "backend"})),
        ("prod", "db", json!({"role": "db"})),
        ("dev", "api", json!({"tier": "frontend"})),
    ] {
        let sa: ServiceAccount = serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": ns, "labels": labels}}),
        )
        .unwrap();
        resources.push(Resource::Profile(service_account_profile(&sa)));
    }
    for (ns, name, account, ip) in [
        ("prod", "api", Some("api"), "10.65.0.1"),
        ("prod", "db", Some("db"), "10.65.0.2"),
        ("prod", "batch", None, "10.65.0.3"),
        ("dev", "api", Some("api"), "10.65.0.4"),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": "h1", "serviceAccountName": account},
            "status": {"podIP": ip}
        }))
        .unwrap();
        resources.push(Resource::WorkloadEndpoint(
            pod_endpoint(&pod).unwrap().unwrap(),
        ));
    }
    resources.extend(parse_v3(POLICY).unwrap());
    for r in resources {
        net.apply(Update::Upsert(r)).unwrap();
    }
    net
}

fn delivered(net: &MockNetwork, src: &str, dst: &str, port: u16) -> bool {
    let p = Packet::tcp(src.parse().unwrap(), 40000, dst.parse().unwrap(), port);
    net.send(&p).unwrap().delivered
}

#[test]
fn service_account_policy_on_kubernetes_objects() {
    let net = network();
    let (api, db, batch, dev_api) = ("10.65.0.1", "10.65.0.2", "10.65.0.3", "10.65.0.4");
    assert!(
        delivered(&net, api, db, 5432),
        "prod/api (api, tier backend) to the db"
    );
    assert!(!delivered(&net, api, db, 22), "only port 5432");
    assert!(
        !delivered(&net, batch, db, 5432),
        "a pod without an account"
    );
    assert!(
        !delivered(&net, dev_api, db, 5432),
        "account named api, but labelled tier frontend"
    );
    // The policy picks the db only (by its account's label): others keep their namespace
    // profile's allow-all.
    assert!(
        delivered(&net, dev_api, batch, 22),
        "batch has no account: not selected"
    );
}
