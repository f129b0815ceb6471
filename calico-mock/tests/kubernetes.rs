//! Kubernetes NetworkPolicy semantics, as the upstream documentation states them, checked
//! on the simulated network: two hosts, two namespaces, five pods, and a table of cases
//! (policies, source pod, destination pod, protocol/port, whether the packet arrives).

use calico_core::eval::Packet;
use calico_core::integrations::kubernetes::{
    namespace_profile, pod_endpoint, translate_policy, Namespace, NetworkPolicy, Pod,
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
    let mut net = MockNetwork::new();
    net.add_host("h1", "192.0.2.1".parse().unwrap());
    net.add_host("h2", "192.0.2.2".parse().unwrap());
    let mut resources = Vec::new();
    for (name, labels) in [
        ("prod", json!({"team": "a", "env": "prod"})),
        ("dev", json!({"team": "b"})),
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
