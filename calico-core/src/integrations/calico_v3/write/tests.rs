use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use serde_json::json;

use super::super::parse_v3;
use super::*;
use crate::dataplane::NextHopMode;
use crate::model::{AsNumber, BlockAffinity, NodeBgp, SourceAddress, WorkloadEndpointId};
use crate::selector::Selector;

/// `to_v3`, then the reader on its JSON text: must give back exactly `r`.
fn round_trip(r: &Resource) -> Result<(), TestCaseError> {
    let v3 = to_v3(r).map_err(|e| TestCaseError::fail(format!("to_v3: {e}")))?;
    let text = serde_json::to_string(&v3.value).unwrap();
    let back = parse_v3(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    prop_assert_eq!(back, vec![r.clone()], "{}", text);
    Ok(())
}

/// The arbitrary model's resources, with a namespace on every workload endpoint (a v3
/// endpoint always has one; the writer refuses one without, tested below).
fn model_resources(m: crate::model::Model) -> Vec<Resource> {
    let eps = m.workload_endpoints.into_values().map(|mut ep| {
        ep.namespace.get_or_insert_with(|| "default".into());
        Resource::WorkloadEndpoint(ep)
    });
    eps.chain(m.policies.into_values().map(Resource::Policy))
        .chain(m.profiles.into_values().map(Resource::Profile))
        .collect()
}

/// Host endpoints, pools, BGP settings and nodes, which the arbitrary model lacks.
fn other_kinds() -> impl Strategy<Value = Vec<Resource>> {
    let labels = prop::collection::btree_map("[a-z]{1,3}", "[a-z0-9]{0,3}", 0..3);
    let asn = prop::option::of((1u32..).prop_map(AsNumber));
    let v4 = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
    let v6 = any::<[u8; 16]>().prop_map(Ipv6Addr::from);
    let node = (
        labels.clone(),
        prop::option::of((
            prop::option::of(v4.clone()),
            prop::option::of(v6),
            asn.clone(),
            prop::option::of(v4.clone()),
        )),
    )
        .prop_map(|(labels, bgp)| {
            Resource::Node(Node {
                name: "node-1".into(),
                labels,
                bgp: bgp.map(|(a4, a6, asn, rr)| NodeBgp {
                    ipv4_address: a4,
                    ipv6_address: a6,
                    as_number: asn,
                    route_reflector_cluster_id: rr,
                }),
            })
        });
    let hep = (labels, prop::option::of("eth[0-9]|\\*"), any::<bool>()).prop_map(
        |(labels, interface_name, ips)| {
            Resource::HostEndpoint(HostEndpoint {
                name: "h1-eth0".into(),
                node: "h1".into(),
                interface_name: interface_name.or((!ips).then(|| "eth0".into())),
                expected_ips: if ips {
                    vec![IpAddr::from([10, 0, 0, 1]), "fd00::1".parse().unwrap()]
                } else {
                    vec![]
                },
                labels,
                profiles: vec!["p1".into()],
                ports: vec![NamedPort {
                    name: "ssh".into(),
                    protocol: crate::model::Protocol::TCP,
                    port: 22,
                }],
            })
        },
    );
    let pool = (prop::option::of(24u8..=32), any::<bool>()).prop_map(|(block_size, disabled)| {
        Resource::IpPool(IpPool {
            name: "pool-1".into(),
            cidr: "10.65.0.0/16".parse().unwrap(),
            block_size,
            disabled,
        })
    });
    let conf = (
        asn,
        prop::option::of(any::<bool>()),
        prop::option::of(1u16..),
        prop::option::of(0u16..=4095),
    )
        .prop_map(|(as_number, mesh, listen_port, restart)| {
            Resource::BgpConfiguration(BgpConfiguration {
                name: "default".into(),
                as_number,
                node_to_node_mesh_enabled: mesh,
                listen_port,
                communities: Vec::new(),
                prefix_advertisements: Vec::new(),
                node_mesh_max_restart_time: restart,
                node_mesh_password: None,
            })
        });
    let session = (
        prop::option::of(1u16..90),
        prop::option::of(0u16..=4095),
        prop::option::of(0u32..=10),
        prop::option::of(prop::sample::select(vec![
            NextHopMode::Auto,
            NextHopMode::SelfAddress,
            NextHopMode::Keep,
        ])),
        prop::option::of(any::<bool>()),
        prop::option::of(1u16..=254),
        prop::option::of(prop::sample::select(vec![
            SourceAddress::UseNodeIP,
            SourceAddress::None,
        ])),
    );
    let peer = (0u8..4, v4, 1u32.., session).prop_map(|(which, ip, asn, session)| {
        let (keepalive, restart, allow, mode, keep, ttl, source) = session;
        let by_selector = which == 3;
        Resource::BgpPeer(BgpPeer {
            name: "tor".into(),
            node: (which == 1).then(|| "h1".into()),
            node_selector: (which == 2).then(|| Selector::parse("rack == 'a'").unwrap()),
            peer_ip: (!by_selector).then_some(IpAddr::V4(ip)),
            as_number: (!by_selector).then_some(AsNumber(asn)),
            peer_selector: by_selector.then(|| Box::new(Selector::parse("role == 'rr'").unwrap())),
            password: None,
            hold_time: None,
            bfd: None,
            add_path: None,
            filters: if which == 2 {
                vec!["f".into()]
            } else {
                Vec::new()
            },
            keepalive_time: keepalive,
            max_restart_time: restart,
            num_allowed_local_as_numbers: allow,
            next_hop_mode: mode,
            keep_original_next_hop: keep,
            ttl_security: ttl,
            source_address: source,
            reachable_by: (!by_selector && which == 0)
                .then_some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254))),
        })
    });
    (node, hep, pool, conf, peer).prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn model_resources_round_trip(model in crate::arbitrary::model()) {
        for r in model_resources(model) {
            round_trip(&r)?;
        }
    }

    #[test]
    fn other_kinds_round_trip(resources in other_kinds()) {
        for r in resources {
            // Only valid resources count: the reader validates what it reads.
            if r.validate().is_ok() {
                round_trip(&r)?;
            }
        }
    }
}

fn wep(node: &str, orch: &str, workload: &str, endpoint: &str) -> WorkloadEndpoint {
    WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: orch.into(),
            workload: workload.into(),
            endpoint: endpoint.into(),
        },
        namespace: Some("default".into()),
        node: node.into(),
        interface_name: "cali0ef24ba".into(),
        mac: Some("ca:fe:1d:52:bb:e9".parse().unwrap()),
        ip_networks: vec!["192.168.0.0/32".parse().unwrap()],
        labels: [("app".to_string(), "frontend".to_string())].into(),
        profiles: vec!["profile1".into()],
        ports: vec![
            NamedPort {
                name: "some-port".into(),
                protocol: crate::model::Protocol::TCP,
                port: 1234,
            },
            NamedPort {
                name: "another-port".into(),
                protocol: crate::model::Protocol::UDP,
                port: 5432,
            },
        ],
        allow_spoofed_source_prefixes: vec![],
        ip_nats: vec![],
    }
}

/// The sample of Calico's WorkloadEndpoint reference page (docs.tigera.io), without the
/// fields the model does not hold (`containerID`, the `projectcalico.org/*` labels Calico
/// derives), and with the `hostPort`/`hostIP` Go writes on every port.
#[test]
fn golden_workload_endpoint_from_calico_docs() {
    let ep = wep("node1", "k8s", "my-nginx-b1337a", "eth0");
    let v3 = to_v3(&Resource::WorkloadEndpoint(ep)).unwrap();
    assert_eq!(v3.name, "node1-k8s-my--nginx--b1337a-eth0");
    assert_eq!(v3.namespace.as_deref(), Some("default"));
    let expected = json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpoint",
        "metadata": {
            "name": "node1-k8s-my--nginx--b1337a-eth0",
            "namespace": "default",
            "labels": {"app": "frontend"}
        },
        "spec": {
            "node": "node1",
            "orchestrator": "k8s",
            "endpoint": "eth0",
            "pod": "my-nginx-b1337a",
            "interfaceName": "cali0ef24ba",
            "mac": "ca:fe:1d:52:bb:e9",
            "ipNetworks": ["192.168.0.0/32"],
            "profiles": ["profile1"],
            "ports": [
                {"name": "some-port", "port": 1234, "protocol": "TCP", "hostPort": 0, "hostIP": ""},
                {"name": "another-port", "port": 5432, "protocol": "UDP", "hostPort": 0, "hostIP": ""}
            ]
        }
    });
    assert_eq!(v3.value, expected);
}

/// networking-calico's names: `<host>-openstack-<device_id>-<port_id>`, dashes doubled.
#[test]
fn openstack_endpoint_name_doubles_dashes_in_every_part() {
    let mut ep = wep(
        "compute-1",
        "openstack",
        "9a1b-22",
        "1f2e3d4c-5b6a-4789-9abc-def012345678",
    );
    ep.namespace = Some("openstack".into());
    let v3 = to_v3(&Resource::WorkloadEndpoint(ep)).unwrap();
    assert_eq!(
        v3.name,
        "compute--1-openstack-9a1b--22-1f2e3d4c--5b6a--4789--9abc--def012345678"
    );
    assert_eq!(v3.value["spec"]["workload"], "9a1b-22");
    assert!(v3.value["spec"].get("pod").is_none());
}

/// The NetworkPolicy sample of Calico's reference page, as calicoctl writes it (selectors
/// as strings, `source: {}` kept, the order without a fraction).
#[test]
fn golden_network_policy_from_calico_docs() {
    let yaml = r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-6379
  namespace: production
spec:
  selector: role == 'database'
  types:
  - Ingress
  - Egress
  ingress:
  - action: Allow
    metadata:
      annotations:
        from: frontend
        to: database
    protocol: TCP
    source:
      selector: role == 'frontend'
    destination:
      ports:
      - 6379
  egress:
  - action: Allow
"#;
    let r = parse_v3(yaml).unwrap().remove(0);
    let v3 = to_v3(&r).unwrap();
    let expected = json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-tcp-6379", "namespace": "production"},
        "spec": {
            "selector": "role == \"database\"",
            "types": ["Ingress", "Egress"],
            "ingress": [{
                "action": "Allow",
                "metadata": {"annotations": {"from": "frontend", "to": "database"}},
                "protocol": "TCP",
                "source": {"selector": "role == \"frontend\""},
                "destination": {"ports": [6379]}
            }],
            "egress": [{"action": "Allow", "source": {}, "destination": {}}]
        }
    });
    assert_eq!(v3.value, expected);
    let mut p = match r {
        Resource::Policy(p) => p,
        _ => unreachable!(),
    };
    p.order = Some(100.0);
    let v3 = to_v3(&Resource::Policy(p.clone())).unwrap();
    assert_eq!(v3.value["spec"]["order"], json!(100));
    p.order = Some(2.5);
    let v3 = to_v3(&Resource::Policy(p)).unwrap();
    assert_eq!(v3.value["spec"]["order"], json!(2.5));
}

/// Calico's Node and IPPool as calico/node and calicoctl write them: CIDR-form BGP
/// addresses, explicit no-encapsulation pool.
#[test]
fn golden_node_and_pool() {
    let node = Resource::Node(Node {
        name: "node-hostname".into(),
        labels: Labels::new(),
        bgp: Some(NodeBgp {
            ipv4_address: Some(Ipv4Addr::new(10, 244, 0, 1)),
            ipv6_address: Some("2001:db8:85a3::8a2e:370:7334".parse().unwrap()),
            as_number: Some(AsNumber(64512)),
            route_reflector_cluster_id: None,
        }),
    });
    assert_eq!(
        to_v3(&node).unwrap().value,
        json!({
            "apiVersion": "projectcalico.org/v3",
            "kind": "Node",
            "metadata": {"name": "node-hostname"},
            "spec": {"bgp": {
                "asNumber": 64512,
                "ipv4Address": "10.244.0.1/32",
                "ipv6Address": "2001:db8:85a3::8a2e:370:7334/128"
            }}
        })
    );
    let pool = Resource::IpPool(IpPool {
        name: "my.ippool-1".into(),
        cidr: "10.1.0.0/16".parse().unwrap(),
        block_size: Some(24),
        disabled: false,
    });
    assert_eq!(
        to_v3(&pool).unwrap().value["spec"],
        json!({"cidr": "10.1.0.0/16", "blockSize": 24, "ipipMode": "Never",
               "vxlanMode": "Never", "nodeSelector": "all()"})
    );
}

#[test]
fn unencodable_resources_are_refused_with_the_reason() {
    let block = Resource::BlockAffinity(BlockAffinity {
        cidr: "10.65.0.0/26".parse().unwrap(),
        node: "h1".into(),
    });
    let e = to_v3(&block).unwrap_err();
    assert!(e.to_string().contains("IPAM"), "{e}");

    let mut ep = wep("h1", "openstack", "vm", "port");
    ep.namespace = None;
    let e = to_v3(&Resource::WorkloadEndpoint(ep.clone())).unwrap_err();
    assert_eq!(e.field, "metadata.namespace", "{e}");

    ep.namespace = Some("openstack".into());
    ep.id.workload = "vm-".into();
    let e = to_v3(&Resource::WorkloadEndpoint(ep)).unwrap_err();
    assert_eq!(e.field, "spec.workload", "{e}");

    let peer = BgpPeer {
        name: "tor".into(),
        node: None,
        node_selector: None,
        peer_ip: Some(IpAddr::from([192, 0, 2, 1])),
        as_number: Some(AsNumber(65000)),
        password: Some("secret".into()),
        ..BgpPeer::default()
    };
    let e = to_v3(&Resource::BgpPeer(peer.clone())).unwrap_err();
    assert_eq!(e.field, "spec.password", "{e}");
    let e = to_v3(&Resource::BgpPeer(BgpPeer {
        password: None,
        hold_time: Some(30),
        ..peer.clone()
    }))
    .unwrap_err();
    assert_eq!(e.field, "spec.holdTime", "{e}");
    let e = to_v3(&Resource::BgpPeer(BgpPeer {
        password: None,
        bfd: Some(default_bfd()),
        ..peer.clone()
    }))
    .unwrap_err();
    assert_eq!(e.field, "spec.bfd", "{e}");
    let e = to_v3(&Resource::BgpPeer(BgpPeer {
        password: None,
        add_path: Some(crate::dataplane::AddPathConfig::default()),
        ..peer
    }))
    .unwrap_err();
    assert_eq!(e.field, "spec.addPath", "{e}");
}

fn default_bfd() -> crate::dataplane::BfdConfig {
    crate::dataplane::BfdConfig::default()
}

/// The reader takes back the `hostPort: 0` / `hostIP: ""` Go writes on endpoint ports, and
/// refuses a real host port with the reason.
#[test]
fn reader_accepts_default_host_port_and_refuses_a_real_one() {
    let yaml = |host_port: u16| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
             metadata: {{name: n-k8s-p-eth0, namespace: default}}\n\
             spec: {{orchestrator: k8s, pod: p, endpoint: eth0, node: n, interfaceName: cali1,\n\
             ipNetworks: [10.0.0.1/32], ports: [{{name: http, port: 80, protocol: TCP,\n\
             hostPort: {host_port}, hostIP: ''}}]}}"
        )
    };
    assert_eq!(parse_v3(&yaml(0)).unwrap().len(), 1);
    let e = parse_v3(&yaml(8080)).unwrap_err();
    assert!(e.field.ends_with("hostPort"), "{e}");
}
