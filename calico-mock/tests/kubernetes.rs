//! Kubernetes NetworkPolicy semantics, as the upstream documentation states them, checked
//! on the simulated network: two hosts, two namespaces, five pods, and a table of cases
//! (policies, source pod, destination pod, protocol/port, whether the packet arrives).

use calico_core::eval::Packet;
use calico_core::integrations::kubernetes::{
    namespace_profile, pod_endpoint, translate_admin_policy, translate_baseline_policy,
    translate_cluster_policy, translate_policy, AdminNetworkPolicy, BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy, Namespace, NetworkPolicy, Pod,
};
use calico_core::model::{Resource, Update};
use calico_mock::MockNetwork;
use serde_json::{json, Value};

/// Pods: (namespace, name, labels, node, ip, named ports).
fn pods() -> Vec<Value> {
    let pod = |ns: &str, name: &str, labels: Value, node: &str, ip: &str, ports: Value| {
        json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"ports": ports}]},
            "status": {"podIP": ip}
        })
    };
    vec![
        pod(
            "prod",
            "web",
            json!({"app": "web"}),
            "h1",
            "10.65.0.10",
            json!([{"name": "http", "containerPort": 8080}]),
        ),
        pod(
            "prod",
            "db",
            json!({"app": "db"}),
            "h2",
            "10.65.1.10",
            json!([]),
        ),
        pod(
            "prod",
            "cache",
            json!({"app": "cache", "role": "backend"}),
            "h1",
            "10.65.0.11",
            json!([]),
        ),
        pod(
            "dev",
            "client",
            json!({"app": "client"}),
            "h1",
            "10.65.0.20",
            json!([]),
        ),
        pod(
            "dev",
            "web",
            json!({"app": "web"}),
            "h2",
            "10.65.1.20",
            json!([]),
        ),
        // A hostNetwork pod (a node agent, say) reports the node's address as its own.
        host_network_pod(),
    ]
}

/// A `hostNetwork: true` pod on h1, labelled like the web pods, with h1's address.
fn host_network_pod() -> Value {
    json!({
        "metadata": {"name": "node-agent", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {"nodeName": "h1", "hostNetwork": true, "containers": [{"ports": []}]},
        "status": {"podIP": "192.0.2.1", "podIPs": [{"ip": "192.0.2.1"}]}
    })
}

fn ip(pod: &str) -> std::net::IpAddr {
    match pod {
        "prod/web" => "10.65.0.10",
        "prod/db" => "10.65.1.10",
        "prod/cache" => "10.65.0.11",
        "dev/client" => "10.65.0.20",
        "dev/web" => "10.65.1.20",
        other => panic!("no pod {other}"),
    }
    .parse()
    .unwrap()
}

fn network(policies: &[Value]) -> MockNetwork {
    network_with(policies, &[], None)
}

/// The network with NetworkPolicies, AdminNetworkPolicies and a BaselineAdminNetworkPolicy.
fn network_with(policies: &[Value], admin: &[Value], baseline: Option<&Value>) -> MockNetwork {
    let mut net = MockNetwork::new();
    net.add_host("h1", "192.0.2.1".parse().unwrap());
    net.add_host("h2", "192.0.2.2".parse().unwrap());
    let mut resources = Vec::new();
    for (name, labels) in [
        // With the name label the API server gives every namespace.
        (
            "prod",
            json!({"team": "a", "env": "prod", "kubernetes.io/metadata.name": "prod"}),
        ),
        (
            "dev",
            json!({"team": "b", "kubernetes.io/metadata.name": "dev"}),
        ),
    ] {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        resources.push(Resource::Profile(namespace_profile(&ns)));
    }
    for p in pods() {
        let pod: Pod = serde_json::from_value(p).unwrap();
        if let Some(ep) = pod_endpoint(&pod).unwrap() {
            resources.push(Resource::WorkloadEndpoint(ep));
        }
    }
    for (i, p) in policies.iter().enumerate() {
        let mut p = p.clone();
        if p["metadata"]["name"].is_null() {
            p["metadata"]["name"] = json!(format!("np{i}"));
        }
        let np: NetworkPolicy = serde_json::from_value(p).unwrap();
        resources.push(Resource::Policy(translate_policy(&np).unwrap()));
    }
    for (i, a) in admin.iter().enumerate() {
        let mut a = a.clone();
        a["metadata"] = json!({"name": format!("anp{i}")});
        let anp: AdminNetworkPolicy = serde_json::from_value(a).unwrap();
        resources.push(Resource::Policy(translate_admin_policy(&anp).unwrap()));
    }
    if let Some(b) = baseline {
        let mut b = b.clone();
        b["metadata"] = json!({"name": "default"});
        let banp: BaselineAdminNetworkPolicy = serde_json::from_value(b).unwrap();
        resources.push(Resource::Policy(translate_baseline_policy(&banp).unwrap()));
    }
    for r in resources {
        net.apply(Update::Upsert(r)).unwrap();
    }
    net
}

fn np(ns: &str, spec: Value) -> Value {
    json!({"metadata": {"namespace": ns}, "spec": spec})
}

fn sel(labels: Value) -> Value {
    json!({"matchLabels": labels})
}

#[test]
fn networkpolicy_semantics_table() {
    let deny_all_prod = np(
        "prod",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let allow_all_prod = np("prod", json!({"podSelector": {}, "ingress": [{}]}));
    let db_from = |from: Value| {
        np(
            "prod",
            json!({"podSelector": sel(json!({"app": "db"})), "ingress": [{"from": from}]}),
        )
    };
    let db_ports = |ports: Value| {
        np(
            "prod",
            json!({"podSelector": sel(json!({"app": "db"})), "ingress": [{"ports": ports}]}),
        )
    };
    let web_ports = |ports: Value| {
        np(
            "prod",
            json!({"podSelector": sel(json!({"app": "web"})), "ingress": [{"ports": ports}]}),
        )
    };
    let client_egress = |egress: Value| {
        np(
            "dev",
            json!({"podSelector": sel(json!({"app": "client"})), "policyTypes": ["Egress"], "egress": egress}),
        )
    };
    let deny_egress_dev = np("dev", json!({"podSelector": {}, "policyTypes": ["Egress"]}));

    type Case<'a> = (&'a str, Vec<Value>, &'a str, &'a str, &'a str, u16, bool);
    let cases: Vec<Case> = vec![
        (
            "no policy: not isolated",
            vec![],
            "dev/client",
            "prod/db",
            "tcp",
            5432,
            true,
        ),
        (
            "deny-all ingress isolates",
            vec![deny_all_prod.clone()],
            "dev/client",
            "prod/db",
            "tcp",
            5432,
            false,
        ),
        (
            "deny-all ingress, same namespace",
            vec![deny_all_prod.clone()],
            "prod/web",
            "prod/db",
            "tcp",
            5432,
            false,
        ),
        (
            "deny-all ingress leaves egress alone",
            vec![deny_all_prod.clone()],
            "prod/db",
            "dev/web",
            "tcp",
            80,
            true,
        ),
        (
            "allow-all ingress",
            vec![allow_all_prod.clone()],
            "dev/client",
            "prod/db",
            "tcp",
            5432,
            true,
        ),
        (
            "allow-all beats deny-all (union)",
            vec![deny_all_prod.clone(), allow_all_prod],
            "dev/client",
            "prod/db",
            "udp",
            53,
            true,
        ),
        (
            "podSelector peer",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            5432,
            true,
        ),
        (
            "podSelector peer, other pod",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}]),
            )],
            "prod/cache",
            "prod/db",
            "tcp",
            5432,
            false,
        ),
        (
            "podSelector peer is own namespace only",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}]),
            )],
            "dev/web",
            "prod/db",
            "tcp",
            5432,
            false,
        ),
        (
            "unselected pod not isolated",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}]),
            )],
            "prod/web",
            "prod/cache",
            "tcp",
            80,
            true,
        ),
        (
            "namespaceSelector peer",
            vec![db_from(
                json!([{"namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "namespaceSelector excludes other namespaces",
            vec![db_from(
                json!([{"namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "pod AND namespace selector",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"})), "namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "dev/web",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "pod AND namespace: wrong pod",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"})), "namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "pod AND namespace: wrong namespace",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"})), "namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "two peers are ORed: first",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}, {"namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "two peers are ORed: second",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}, {"namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "two peers are ORed: neither",
            vec![db_from(
                json!([{"podSelector": sel(json!({"app": "web"}))}, {"namespaceSelector": sel(json!({"team": "b"}))}]),
            )],
            "prod/cache",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "empty namespaceSelector: all namespaces",
            vec![db_from(json!([{"namespaceSelector": {}}]))],
            "dev/web",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "numbered port",
            vec![db_ports(json!([{"protocol": "TCP", "port": 5432}]))],
            "prod/web",
            "prod/db",
            "tcp",
            5432,
            true,
        ),
        (
            "numbered port, other port",
            vec![db_ports(json!([{"protocol": "TCP", "port": 5432}]))],
            "prod/web",
            "prod/db",
            "tcp",
            80,
            false,
        ),
        (
            "numbered port, other protocol",
            vec![db_ports(json!([{"protocol": "TCP", "port": 5432}]))],
            "prod/web",
            "prod/db",
            "udp",
            5432,
            false,
        ),
        (
            "protocol defaults to TCP",
            vec![db_ports(json!([{"port": 5432}]))],
            "prod/web",
            "prod/db",
            "tcp",
            5432,
            true,
        ),
        (
            "protocol without port: all its ports",
            vec![db_ports(json!([{"protocol": "UDP"}]))],
            "prod/web",
            "prod/db",
            "udp",
            9999,
            true,
        ),
        (
            "named port",
            vec![web_ports(json!([{"port": "http"}]))],
            "dev/client",
            "prod/web",
            "tcp",
            8080,
            true,
        ),
        (
            "named port, other number",
            vec![web_ports(json!([{"port": "http"}]))],
            "dev/client",
            "prod/web",
            "tcp",
            80,
            false,
        ),
        (
            "endPort range",
            vec![db_ports(json!([{"port": 5000, "endPort": 5500}]))],
            "prod/web",
            "prod/db",
            "tcp",
            5432,
            true,
        ),
        (
            "endPort range, above",
            vec![db_ports(json!([{"port": 5000, "endPort": 5500}]))],
            "prod/web",
            "prod/db",
            "tcp",
            5600,
            false,
        ),
        (
            "ipBlock",
            vec![db_from(
                json!([{"ipBlock": {"cidr": "10.65.0.0/16", "except": ["10.65.0.20/32"]}}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "ipBlock except",
            vec![db_from(
                json!([{"ipBlock": {"cidr": "10.65.0.0/16", "except": ["10.65.0.20/32"]}}]),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "deny-all egress",
            vec![deny_egress_dev.clone()],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "deny-all egress leaves ingress alone",
            vec![deny_egress_dev],
            "prod/web",
            "dev/client",
            "tcp",
            1,
            true,
        ),
        (
            "egress to ipBlock",
            vec![client_egress(
                json!([{"to": [{"ipBlock": {"cidr": "10.65.1.0/24"}}]}]),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "egress outside ipBlock",
            vec![client_egress(
                json!([{"to": [{"ipBlock": {"cidr": "10.65.1.0/24"}}]}]),
            )],
            "dev/client",
            "prod/web",
            "tcp",
            1,
            false,
        ),
        (
            "egress to pods in any namespace",
            vec![client_egress(
                json!([{"to": [{"podSelector": sel(json!({"app": "db"})), "namespaceSelector": {}}]}]),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "egress to other pods denied",
            vec![client_egress(
                json!([{"to": [{"podSelector": sel(json!({"app": "db"})), "namespaceSelector": {}}]}]),
            )],
            "dev/client",
            "prod/web",
            "tcp",
            1,
            false,
        ),
        (
            "policyTypes inferred from egress rules isolates ingress too",
            vec![np(
                "dev",
                json!({"podSelector": sel(json!({"app": "client"})), "egress": [{}]}),
            )],
            "prod/web",
            "dev/client",
            "tcp",
            1,
            false,
        ),
        (
            "... and its egress rule allows",
            vec![np(
                "dev",
                json!({"podSelector": sel(json!({"app": "client"})), "egress": [{}]}),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        // `policyTypes: []` is defaulted exactly like an absent field (Kubernetes API
        // defaulting: `len(policyTypes) == 0`), not read as "governs nothing".
        (
            "policyTypes [] still isolates ingress",
            vec![np("prod", json!({"podSelector": {}, "policyTypes": []}))],
            "dev/client",
            "prod/db",
            "tcp",
            5432,
            false,
        ),
        (
            "policyTypes [] with egress rules governs egress",
            vec![np(
                "dev",
                json!({"podSelector": sel(json!({"app": "client"})), "policyTypes": [],
                       "egress": [{"to": [{"ipBlock": {"cidr": "10.65.1.0/24"}}]}]}),
            )],
            "dev/client",
            "prod/web",
            "tcp",
            1,
            false,
        ),
        (
            "policyTypes [] with egress rules: the rule allows",
            vec![np(
                "dev",
                json!({"podSelector": sel(json!({"app": "client"})), "policyTypes": [],
                       "egress": [{"to": [{"ipBlock": {"cidr": "10.65.1.0/24"}}]}]}),
            )],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "matchExpressions In",
            vec![db_from(
                json!([{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "cache"]}]}}]),
            )],
            "prod/cache",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "matchExpressions NotIn",
            vec![db_from(
                json!([{"podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "matchExpressions NotIn, other pod",
            vec![db_from(
                json!([{"podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}}]),
            )],
            "prod/cache",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "matchExpressions Exists",
            vec![db_from(
                json!([{"podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}}]),
            )],
            "prod/cache",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "matchExpressions Exists, absent",
            vec![db_from(
                json!([{"podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}}]),
            )],
            "prod/web",
            "prod/db",
            "tcp",
            1,
            false,
        ),
        (
            "two policies: union",
            vec![
                db_from(json!([{"podSelector": sel(json!({"app": "web"}))}])),
                db_from(json!([{"podSelector": sel(json!({"app": "cache"}))}])),
            ],
            "prod/cache",
            "prod/db",
            "tcp",
            1,
            true,
        ),
        (
            "two policies: neither",
            vec![
                db_from(json!([{"podSelector": sel(json!({"app": "web"}))}])),
                db_from(json!([{"podSelector": sel(json!({"app": "cache"}))}])),
            ],
            "dev/client",
            "prod/db",
            "tcp",
            1,
            false,
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, policies, src, dst, proto, port, want) in cases {
        let net = network(&policies);
        let p = match proto {
            "tcp" => Packet::tcp(ip(src), 40000, ip(dst), port),
            _ => Packet::udp(ip(src), 40000, ip(dst), port),
        };
        let d = net.send(&p).unwrap();
        assert_eq!(
            d.delivered, want,
            "{name}: {src} -> {dst} {proto}/{port}: {d}"
        );
    }
}

#[test]
fn bad_objects_name_the_field() {
    let bad = |spec: Value| {
        let mut obj = np("prod", spec);
        obj["metadata"]["name"] = json!("bad");
        let np: NetworkPolicy = serde_json::from_value(obj).unwrap();
        translate_policy(&np).unwrap_err().to_string()
    };
    let e = bad(
        json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]}}),
    );
    assert!(
        e.contains("spec.podSelector.matchExpressions[0].operator"),
        "{e}"
    );
    let e = bad(
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}]}),
    );
    assert!(
        e.contains("spec.ingress[0].from[0].ipBlock.except[0]") && e.contains("not inside"),
        "{e}"
    );
    // Kubernetes: an except must be a strict subset of its cidr (equal is refused).
    for except in ["10.0.0.0/8", "10.0.0.0/7"] {
        let e = bad(
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [except]}}]}]}),
        );
        assert!(
            e.contains("spec.ingress[0].from[0].ipBlock.except[0]") && e.contains("strict subset"),
            "{except}: {e}"
        );
    }
    // A port written as a string is a port name, which must be an IANA_SVC_NAME: "80"
    // (no letter) is refused by the API server, not looked up as a named port.
    for name in ["80", "", "Http", "-http", "ht--tp", "a-very-long-port-name"] {
        let e = bad(json!({"podSelector": {}, "ingress": [{"ports": [{"port": name}]}]}));
        assert!(
            e.contains("spec.ingress[0].ports[0].port") && e.contains("not a valid port name"),
            "{name:?}: {e}"
        );
    }
    let mut ok = np(
        "prod",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http-8080"}]}]}),
    );
    ok["metadata"]["name"] = json!("ok");
    let ok: NetworkPolicy = serde_json::from_value(ok).unwrap();
    translate_policy(&ok).unwrap();
    let e = bad(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}));
    assert!(e.contains("spec.ingress[0].ports[0].endPort"), "{e}");
    let e = bad(json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]}));
    assert!(e.contains("not TCP, UDP or SCTP"), "{e}");
    let e = bad(json!({"podSelector": {}, "policyTypes": ["Sideways"]}));
    assert!(e.contains("spec.policyTypes[0]"), "{e}");
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "x"}})).unwrap();
    assert!(pod_endpoint(&pod)
        .unwrap_err()
        .to_string()
        .contains("not scheduled"));
}

/// Kubernetes/Calico: a `hostNetwork` pod shares the node's network namespace and address,
/// so Calico makes no workload endpoint of it. Turning it into one would give the node's
/// address a route to a veth and let `podSelector`s pick the node's traffic.
#[test]
fn host_network_pods_are_not_workload_endpoints() {
    let pod: Pod = serde_json::from_value(host_network_pod()).unwrap();
    assert_eq!(pod_endpoint(&pod).unwrap(), None);

    // In the simulated cluster (which includes the hostNetwork pod): no endpoint owns the
    // node's address, and a policy admitting `app: web` pods admits the real web pod only.
    let allow_web = np(
        "prod",
        json!({"podSelector": sel(json!({"app": "db"})),
               "ingress": [{"from": [{"podSelector": sel(json!({"app": "web"}))}]}]}),
    );
    let net = network(&[allow_web]);
    let node_ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let owners: Vec<_> = net
        .model()
        .workload_endpoints
        .values()
        .filter(|ep| ep.ip_networks.iter().any(|n| n.addr() == node_ip))
        .map(|ep| ep.id.clone())
        .collect();
    assert!(
        owners.is_empty(),
        "endpoints own the node's address: {owners:?}"
    );
    assert_eq!(net.model().workload_endpoints.len(), 5);
    let d = net
        .send(&Packet::tcp(ip("prod/web"), 40000, ip("prod/db"), 5432))
        .unwrap();
    assert!(d.delivered, "{d}");
}

/// The subject, rules and ports of an AdminNetworkPolicy (priority `priority`).
fn anp(priority: i64, subject: Value, ingress: Value, egress: Value) -> Value {
    json!({"spec": {"priority": priority, "subject": subject, "ingress": ingress, "egress": egress}})
}

fn ns_named(name: &str) -> Value {
    json!({"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": name}}})
}

fn ns_team(team: &str) -> Value {
    json!({"namespaces": {"matchLabels": {"team": team}}})
}

/// AdminNetworkPolicy and BaselineAdminNetworkPolicy semantics, as the network-policy-api
/// documentation states them: admin rules come before NetworkPolicy (`Allow` and `Deny`
/// final, `Pass` to NetworkPolicy), lower priority first, first matching rule of a policy;
/// the baseline only where NetworkPolicy left traffic open.
#[test]
fn admin_network_policy_semantics_table() {
    let prod = ns_team("a");
    let deny_from_dev = |p| {
        anp(
            p,
            prod.clone(),
            json!([{"action": "Deny", "from": [ns_team("b")]}]),
            json!([]),
        )
    };
    let allow_from_dev = |p| {
        anp(
            p,
            prod.clone(),
            json!([{"action": "Allow", "from": [ns_team("b")]}]),
            json!([]),
        )
    };
    let pass_from_dev = |p| {
        anp(
            p,
            prod.clone(),
            json!([{"action": "Pass", "from": [ns_team("b")]}]),
            json!([]),
        )
    };
    let deny_all_prod = np(
        "prod",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let allow_all_prod = np("prod", json!({"podSelector": {}, "ingress": [{}]}));
    let baseline_deny_from_dev =
        json!({"spec": {"subject": prod, "ingress": [{"action": "Deny", "from": [ns_team("b")]}]}});
    let db =
        json!({"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}});
    let web_port = |ports: Value| {
        anp(
            5,
            db.clone(),
            json!([{"action": "Deny", "from": [{"namespaces": {}}], "ports": ports}]),
            json!([]),
        )
    };
    let client = json!({"pods": {"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"app": "client"}}}});

    type Case<'a> = (
        &'a str,
        Vec<Value>,
        Vec<Value>,
        Option<&'a Value>,
        &'a str,
        &'a str,
        u16,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "admin Deny over no NetworkPolicy",
            vec![],
            vec![deny_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Deny beats a NetworkPolicy's allow",
            vec![allow_all_prod.clone()],
            vec![deny_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Deny only for its peers",
            vec![],
            vec![deny_from_dev(10)],
            None,
            "prod/web",
            "prod/db",
            80,
            true,
        ),
        (
            "admin Allow beats a NetworkPolicy's isolation",
            vec![deny_all_prod.clone()],
            vec![allow_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "admin Pass hands over to NetworkPolicy (isolated)",
            vec![deny_all_prod.clone()],
            vec![pass_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Pass hands over to NetworkPolicy (open)",
            vec![allow_all_prod.clone()],
            vec![pass_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "lower priority first: Allow 5 before Deny 10",
            vec![],
            vec![deny_from_dev(10), allow_from_dev(5)],
            None,
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "lower priority first: Deny 5 before Allow 10",
            vec![],
            vec![deny_from_dev(5), allow_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "Pass 1 skips a later Deny",
            vec![],
            vec![pass_from_dev(1), deny_from_dev(10)],
            None,
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "first rule of a policy decides",
            vec![],
            vec![anp(
                10,
                prod.clone(),
                json!([{"action": "Allow", "from": [ns_named("dev")]}, {"action": "Deny", "from": [{"namespaces": {}}]}]),
                json!([]),
            )],
            None,
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "...and the second for the rest",
            vec![],
            vec![anp(
                10,
                prod.clone(),
                json!([{"action": "Allow", "from": [ns_named("dev")]}, {"action": "Deny", "from": [{"namespaces": {}}]}]),
                json!([]),
            )],
            None,
            "prod/web",
            "prod/db",
            80,
            false,
        ),
        (
            "baseline Deny where no NetworkPolicy applies",
            vec![],
            vec![],
            Some(&baseline_deny_from_dev),
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "NetworkPolicy allow beats the baseline",
            vec![allow_all_prod.clone()],
            vec![],
            Some(&baseline_deny_from_dev),
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "admin Pass then baseline Deny",
            vec![],
            vec![pass_from_dev(10)],
            Some(&baseline_deny_from_dev),
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "ports: portNumber matches",
            vec![],
            vec![web_port(
                json!([{"portNumber": {"protocol": "TCP", "port": 80}}]),
            )],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "ports: other port open",
            vec![],
            vec![web_port(
                json!([{"portNumber": {"protocol": "TCP", "port": 80}}]),
            )],
            None,
            "dev/client",
            "prod/db",
            81,
            true,
        ),
        (
            "ports: range",
            vec![],
            vec![web_port(
                json!([{"portRange": {"protocol": "TCP", "start": 70, "end": 90}}]),
            )],
            None,
            "dev/client",
            "prod/db",
            85,
            false,
        ),
        (
            "ports: named port of another pod",
            vec![],
            vec![anp(
                5,
                json!({"namespaces": {}}),
                json!([{"action": "Deny", "from": [{"namespaces": {}}], "ports": [{"namedPort": "http"}]}]),
                json!([]),
            )],
            None,
            "dev/client",
            "prod/web",
            8080,
            false,
        ),
        (
            "ports: named port, other port",
            vec![],
            vec![anp(
                5,
                json!({"namespaces": {}}),
                json!([{"action": "Deny", "from": [{"namespaces": {}}], "ports": [{"namedPort": "http"}]}]),
                json!([]),
            )],
            None,
            "dev/client",
            "prod/web",
            80,
            true,
        ),
        (
            "egress to networks",
            vec![],
            vec![anp(
                5,
                client.clone(),
                json!([]),
                json!([{"action": "Deny", "to": [{"networks": ["10.65.1.0/24"]}]}]),
            )],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "egress to networks, elsewhere",
            vec![],
            vec![anp(
                5,
                client.clone(),
                json!([]),
                json!([{"action": "Deny", "to": [{"networks": ["10.65.1.0/24"]}]}]),
            )],
            None,
            "dev/client",
            "prod/web",
            80,
            true,
        ),
        (
            "egress to pods",
            vec![],
            vec![anp(
                5,
                client.clone(),
                json!([]),
                json!([{"action": "Deny", "to": [db.clone()]}]),
            )],
            None,
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "subject pods: other pods untouched",
            vec![],
            vec![anp(
                5,
                client,
                json!([]),
                json!([{"action": "Deny", "to": [db.clone()]}]),
            )],
            None,
            "dev/web",
            "prod/db",
            80,
            true,
        ),
    ];
    for (name, policies, admin, baseline, src, dst, port, want) in cases {
        let net = network_with(&policies, &admin, baseline);
        let p = Packet::tcp(ip(src), 40000, ip(dst), port);
        let d = net.send(&p).unwrap();
        assert_eq!(d.delivered, want, "{name}: {src} -> {dst} tcp/{port}: {d}");
    }
}

#[test]
fn bad_admin_policies_name_the_field() {
    let bad = |obj: Value| {
        let mut obj = obj;
        obj["metadata"] = json!({"name": "bad"});
        let anp: AdminNetworkPolicy = serde_json::from_value(obj).unwrap();
        translate_admin_policy(&anp).unwrap_err().to_string()
    };
    let all = json!({"namespaces": {}});
    for (obj, field) in [
        (
            anp(1001, all.clone(), json!([]), json!([])),
            "spec.priority",
        ),
        (
            json!({"spec": {"priority": 1, "subject": {}}}),
            "spec.subject",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([{"action": "Drop", "from": [all]}]),
                json!([]),
            ),
            "spec.ingress[0].action",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([{"action": "Deny", "from": []}]),
                json!([]),
            ),
            "spec.ingress[0].from",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([{"action": "Deny", "from": [{"networks": ["10.0.0.0/8"]}]}]),
                json!([]),
            ),
            "spec.ingress[0].from[0].networks",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([]),
                json!([{"action": "Deny", "to": [{"nodes": {}}]}]),
            ),
            "spec.egress[0].to[0].nodes",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([]),
                json!([{"action": "Deny", "to": [{"networks": ["10.0.0.0/33"]}]}]),
            ),
            "spec.egress[0].to[0].networks[0]",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([{"action": "Deny", "from": [all], "ports": [{"portNumber": {"port": 0}}]}]),
                json!([]),
            ),
            "spec.ingress[0].ports[0].port",
        ),
        (
            anp(
                1,
                all.clone(),
                json!([{"action": "Deny", "from": [all], "ports": [{}]}]),
                json!([]),
            ),
            "spec.ingress[0].ports[0]",
        ),
    ] {
        let e = bad(obj);
        assert!(e.contains(field), "{field}: {e}");
    }
    let banp = |name: &str, action: &str| {
        let obj = json!({"metadata": {"name": name}, "spec": {"subject": all, "ingress": [{"action": action, "from": [all]}]}});
        let b: BaselineAdminNetworkPolicy = serde_json::from_value(obj).unwrap();
        translate_baseline_policy(&b).map_err(|e| e.to_string())
    };
    assert!(banp("other", "Deny").unwrap_err().contains("metadata.name"));
    assert!(banp("default", "Pass")
        .unwrap_err()
        .contains("spec.ingress[0].action"));
    assert!(banp("default", "Deny").is_ok());
}

/// A ClusterNetworkPolicy of `tier` (Admin or Baseline) at `priority`.
fn cnp(tier: &str, priority: i64, subject: Value, ingress: Value, egress: Value) -> Value {
    json!({"spec": {"tier": tier, "priority": priority, "subject": subject, "ingress": ingress, "egress": egress}})
}

/// The network with NetworkPolicies and ClusterNetworkPolicies.
fn network_cnp(policies: &[Value], cluster: &[Value]) -> MockNetwork {
    let mut net = network_with(policies, &[], None);
    for (i, c) in cluster.iter().enumerate() {
        let mut c = c.clone();
        c["metadata"] = json!({"name": format!("cnp{i}")});
        let cnp: ClusterNetworkPolicy = serde_json::from_value(c).unwrap();
        let policy = translate_cluster_policy(&cnp).unwrap();
        net.apply(Update::Upsert(Resource::Policy(policy))).unwrap();
    }
    net
}

/// ClusterNetworkPolicy (v1alpha2) semantics, as the network-policy-api documentation
/// states them: the Admin tier before NetworkPolicy (`Accept`/`Deny` final, `Pass` to
/// NetworkPolicy), the Baseline tier after it, lower priority first, the first matching
/// rule of a policy; protocols with port numbers, ranges and named ports; network peers.
#[test]
fn cluster_network_policy_semantics_table() {
    let prod = ns_team("a");
    let from_dev = |action: &str| json!([{"action": action, "from": [ns_team("b")]}]);
    let admin = |p, action: &str| cnp("Admin", p, prod.clone(), from_dev(action), json!([]));
    let baseline = |action: &str| cnp("Baseline", 10, prod.clone(), from_dev(action), json!([]));
    let deny_all_prod = np(
        "prod",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let allow_all_prod = np("prod", json!({"podSelector": {}, "ingress": [{}]}));
    let with_protocols = |protocols: Value| {
        cnp(
            "Admin",
            5,
            prod.clone(),
            json!([{"action": "Deny", "from": [ns_team("b")], "protocols": protocols}]),
            json!([]),
        )
    };
    let client = json!({"pods": {"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"app": "client"}}}});
    let to_networks = cnp(
        "Admin",
        5,
        client,
        json!([]),
        json!([{"action": "Deny", "to": [{"networks": ["10.65.1.0/24"]}]}]),
    );
    type Case<'a> = (&'a str, Vec<Value>, Vec<Value>, &'a str, &'a str, u16, bool);
    let cases: Vec<Case> = vec![
        (
            "admin Deny",
            vec![],
            vec![admin(10, "Deny")],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Deny over a NetworkPolicy's allow",
            vec![allow_all_prod.clone()],
            vec![admin(10, "Deny")],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Accept over a NetworkPolicy's deny",
            vec![deny_all_prod.clone()],
            vec![admin(10, "Accept")],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "admin Pass: NetworkPolicy decides",
            vec![deny_all_prod.clone()],
            vec![admin(10, "Pass"), admin(20, "Accept")],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Pass, no NetworkPolicy: allowed",
            vec![],
            vec![admin(10, "Pass")],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "lower priority first: Accept",
            vec![],
            vec![admin(10, "Accept"), admin(20, "Deny")],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "lower priority first: Deny",
            vec![],
            vec![admin(20, "Accept"), admin(10, "Deny")],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "admin Deny only for its peers",
            vec![],
            vec![admin(10, "Deny")],
            "prod/web",
            "prod/db",
            80,
            true,
        ),
        (
            "baseline Deny",
            vec![],
            vec![baseline("Deny")],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "baseline after NetworkPolicy's allow",
            vec![allow_all_prod],
            vec![baseline("Deny")],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "baseline Accept does not undo NetworkPolicy's deny",
            vec![deny_all_prod],
            vec![baseline("Accept")],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "baseline Pass: allowed by default",
            vec![],
            vec![
                baseline("Pass"),
                cnp("Baseline", 20, prod.clone(), from_dev("Deny"), json!([])),
            ],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "admin before baseline",
            vec![],
            vec![baseline("Deny"), admin(999, "Accept")],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "tcp port",
            vec![],
            vec![with_protocols(
                json!([{"tcp": {"destinationPort": {"number": 80}}}]),
            )],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "tcp port, another",
            vec![],
            vec![with_protocols(
                json!([{"tcp": {"destinationPort": {"number": 80}}}]),
            )],
            "dev/client",
            "prod/db",
            81,
            true,
        ),
        (
            "udp port: not tcp",
            vec![],
            vec![with_protocols(
                json!([{"udp": {"destinationPort": {"number": 80}}}]),
            )],
            "dev/client",
            "prod/db",
            80,
            true,
        ),
        (
            "tcp range",
            vec![],
            vec![with_protocols(
                json!([{"tcp": {"destinationPort": {"range": {"start": 80, "end": 90}}}}]),
            )],
            "dev/client",
            "prod/db",
            85,
            false,
        ),
        (
            "tcp range, outside",
            vec![],
            vec![with_protocols(
                json!([{"tcp": {"destinationPort": {"range": {"start": 80, "end": 90}}}}]),
            )],
            "dev/client",
            "prod/db",
            91,
            true,
        ),
        (
            "named port",
            vec![],
            vec![with_protocols(json!([{"destinationNamedPort": "http"}]))],
            "dev/client",
            "prod/web",
            8080,
            false,
        ),
        (
            "named port, another port",
            vec![],
            vec![with_protocols(json!([{"destinationNamedPort": "http"}]))],
            "dev/client",
            "prod/web",
            80,
            true,
        ),
        (
            "egress to networks",
            vec![],
            vec![to_networks.clone()],
            "dev/client",
            "prod/db",
            80,
            false,
        ),
        (
            "egress to networks, elsewhere",
            vec![],
            vec![to_networks],
            "dev/client",
            "prod/web",
            80,
            true,
        ),
    ];
    for (name, policies, cluster, src, dst, port, want) in cases {
        let net = network_cnp(&policies, &cluster);
        let d = net
            .send(&Packet::tcp(ip(src), 40000, ip(dst), port))
            .unwrap();
        assert_eq!(d.delivered, want, "{name}: {src} -> {dst} tcp/{port}: {d}");
    }
}

#[test]
fn bad_cluster_network_policies_name_the_field() {
    let prod = ns_team("a");
    let rule = |r: Value| cnp("Admin", 5, prod.clone(), json!([r]), json!([]));
    let egress = |r: Value| cnp("Admin", 5, prod.clone(), json!([]), json!([r]));
    let cases = [
        (
            cnp("Middle", 5, prod.clone(), json!([]), json!([])),
            "spec.tier",
            "Admin or Baseline",
        ),
        (
            cnp("Admin", 1001, prod.clone(), json!([]), json!([])),
            "spec.priority",
            "0-1000",
        ),
        (
            rule(json!({"action": "Allow", "from": [ns_team("b")]})),
            "spec.ingress[0].action",
            "Accept, Deny or Pass",
        ),
        (
            egress(json!({"action": "Accept", "to": [{"domainNames": ["example.com"]}]})),
            "spec.egress[0].to[0].domainNames",
            "DNS",
        ),
        (
            egress(json!({"action": "Accept", "to": [{"nodes": {}}]})),
            "spec.egress[0].to[0].nodes",
            "node",
        ),
        (
            egress(
                json!({"action": "Deny", "to": [{"networks": ["10.0.0.0/8"]}], "protocols": [{"destinationNamedPort": "http"}]}),
            ),
            "spec.egress[0].protocols",
            "named",
        ),
        (
            rule(
                json!({"action": "Deny", "from": [ns_team("b")], "protocols": [{"tcp": {"destinationPort": {"range": {"start": 90, "end": 80}}}}]}),
            ),
            "spec.ingress[0].protocols[0].tcp.destinationPort.range",
            "less than",
        ),
        (
            rule(
                json!({"action": "Deny", "from": [ns_team("b")], "protocols": [{"tcp": {"destinationPort": {"number": 0}}}]}),
            ),
            "spec.ingress[0].protocols[0].tcp.destinationPort.number",
            "1-65535",
        ),
        (
            rule(
                json!({"action": "Deny", "from": [ns_team("b")], "protocols": [{"tcp": {}, "udp": {}}]}),
            ),
            "spec.ingress[0].protocols[0]",
            "exactly one",
        ),
        (
            rule(json!({"action": "Deny", "from": []})),
            "spec.ingress[0].from",
            "peers",
        ),
        (
            cnp(
                "Admin",
                5,
                prod.clone(),
                json!(vec![json!({"action": "Deny", "from": [ns_team("b")]}); 26]),
                json!([]),
            ),
            "spec.ingress",
            "at most 25",
        ),
    ];
    for (obj, field, why) in cases {
        let mut obj = obj;
        obj["metadata"] = json!({"name": "bad"});
        let c: ClusterNetworkPolicy = serde_json::from_value(obj.clone()).unwrap();
        let e = translate_cluster_policy(&c).unwrap_err().to_string();
        assert!(
            e.contains(&format!("field {field}:")) && e.contains(why),
            "{obj}\n{e}"
        );
    }
}
