use super::*;
use crate::datastore::memory::MemoryStore;
use crate::datastore::status::EndpointReport;
use crate::integrations::neutron::{SecurityGroupRule, SG_LABEL_PREFIX};
use crate::model::{Node, WorkloadEndpointId};

const PORT_ID: &str = "1f2e3d4c-5b6a-4789-9abc-def012345678";

fn port(host: Option<&str>) -> Port {
    Port {
        id: PORT_ID.into(),
        mac_address: Some("fa:16:3e:00:00:01".into()),
        fixed_ips: vec![crate::integrations::neutron::FixedIp {
            subnet_id: None,
            ip_address: "10.65.0.5".into(),
        }],
        host_id: host.map(String::from),
        device_owner: Some("compute:nova".into()),
        device_id: Some("vm-1".into()),
        security_groups: vec!["sg1".into()],
    }
}

fn id() -> WorkloadEndpointId {
    WorkloadEndpointId {
        orchestrator: "openstack".into(),
        workload: "vm-1".into(),
        endpoint: PORT_ID.into(),
    }
}

fn driver(store: &MemoryStore) -> NeutronDriver {
    NeutronDriver::new(Arc::new(store.clone()), Arc::new(store.clone()))
}

/// The workload endpoints the store holds, from a fresh follower's snapshot.
async fn stored_endpoints(store: &MemoryStore) -> Vec<crate::model::WorkloadEndpoint> {
    use crate::datastore::{ResourceSource, SourceEvent};
    match store.source().next().await.unwrap() {
        SourceEvent::Snapshot(s) => s
            .resources
            .into_iter()
            .filter_map(|r| match r {
                Resource::WorkloadEndpoint(ep) => Some(ep),
                _ => None,
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bound_port_is_written_in_the_openstack_namespace_and_moves_with_its_host() {
    let store = MemoryStore::new();
    let d = driver(&store);
    assert!(!d.port_updated(&port(None)).await.unwrap());
    assert!(stored_endpoints(&store).await.is_empty());

    assert!(d.port_updated(&port(Some("compute-1"))).await.unwrap());
    let eps = stored_endpoints(&store).await;
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(eps[0].node, "compute-1");
    assert!(eps[0].labels.contains_key(&format!("{SG_LABEL_PREFIX}sg1")));

    d.port_updated(&port(Some("compute-2"))).await.unwrap();
    let eps = stored_endpoints(&store).await;
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].node, "compute-2");

    // Unbound again: the endpoint goes.
    assert!(!d.port_updated(&port(None)).await.unwrap());
    assert!(stored_endpoints(&store).await.is_empty());
    assert!(!d.port_deleted(PORT_ID).await.unwrap());

    d.port_updated(&port(Some("compute-1"))).await.unwrap();
    assert!(d.port_deleted(PORT_ID).await.unwrap());
    assert!(stored_endpoints(&store).await.is_empty());
}

#[tokio::test]
async fn port_status_follows_the_hosts_reports() {
    let store = MemoryStore::new();
    let d = driver(&store);
    let p = port(Some("compute-1"));
    d.port_updated(&p).await.unwrap();
    assert_eq!(d.port_status(&port(None)).await.unwrap(), PortStatus::Down);
    let PortStatus::Error(why) = d.port_status(&p).await.unwrap() else {
        panic!("a host without agent reads as an error");
    };
    assert!(why.contains("compute-1"), "{why}");

    let node = Node {
        name: "compute-1".into(),
        labels: Default::default(),
        bgp: None,
    };
    store.register_node(&node).await.unwrap();
    assert_eq!(d.port_status(&p).await.unwrap(), PortStatus::Build);
    store
        .report_endpoint("compute-1", &id(), &EndpointReport::down())
        .await
        .unwrap();
    assert_eq!(d.port_status(&p).await.unwrap(), PortStatus::Down);
    store
        .report_endpoint("compute-1", &id(), &EndpointReport::up())
        .await
        .unwrap();
    assert_eq!(d.port_status(&p).await.unwrap(), PortStatus::Active);
    store
        .report_endpoint("compute-1", &id(), &EndpointReport::error("tap missing"))
        .await
        .unwrap();
    assert_eq!(
        d.port_status(&p).await.unwrap(),
        PortStatus::Error("tap missing".into())
    );
    store.expire_host("compute-1");
    assert!(matches!(
        d.port_status(&p).await.unwrap(),
        PortStatus::Error(_)
    ));
}

#[tokio::test]
async fn security_groups_are_written_and_deleted_and_errors_name_the_object() {
    let store = MemoryStore::new();
    let d = driver(&store);
    let sg = SecurityGroup {
        id: "sg1".into(),
        name: Some("web".into()),
        security_group_rules: vec![SecurityGroupRule {
            id: None,
            direction: "ingress".into(),
            ethertype: Some("IPv4".into()),
            protocol: Some(serde_json::json!("tcp")),
            port_range_min: Some(80),
            port_range_max: Some(80),
            remote_ip_prefix: None,
            remote_group_id: None,
        }],
    };
    d.security_group_updated(&sg).await.unwrap();
    let key = store
        .key_of(&Resource::Profile(Profile {
            name: profile_name("sg1"),
            ..Profile::default()
        }))
        .unwrap();
    assert!(store.get(&key).await.unwrap().is_some());
    assert!(d.security_group_deleted("sg1").await.unwrap());
    assert!(!d.security_group_deleted("sg1").await.unwrap());

    let mut bad = port(Some("compute-1"));
    bad.fixed_ips[0].ip_address = "nonsense".into();
    let e = d.port_updated(&bad).await.unwrap_err();
    assert!(e.to_string().contains("fixed_ips[0]"), "{e}");
    store.set_available(false);
    let e = d.port_updated(&port(Some("compute-1"))).await.unwrap_err();
    assert!(matches!(e, DriverError::Datastore(_)), "{e}");
}
