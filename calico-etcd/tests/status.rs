//! Status reports on a real etcd: Felix's keys and values, expiry with a dead host, a lost
//! lease replaced, and `Node` registration merged by compare-and-swap.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use calico_core::datastore::status::{EndpointReport, StatusStore};
use calico_core::integrations::calico_v3::parse_v3;
use calico_core::model::{AsNumber, Node, NodeBgp, Resource, WorkloadEndpointId};
use calico_etcd::testing::EtcdServer;
use calico_etcd::{EtcdStatus, EtcdStatusOptions};
use etcd_client::Client;

const NODE_KEY: &str = "/calico/resources/v3/projectcalico.org/nodes/compute-1";
const HOST: &str = "/calico/felix/v2/no-region/host/compute-1";

fn options(ttl: u64) -> EtcdStatusOptions {
    EtcdStatusOptions {
        ttl: Duration::from_secs(ttl),
        ..EtcdStatusOptions::default()
    }
}

fn id(workload: &str, ep: &str) -> WorkloadEndpointId {
    WorkloadEndpointId {
        orchestrator: "openstack".into(),
        workload: workload.into(),
        endpoint: ep.into(),
    }
}

fn node(addr: Ipv4Addr, asn: Option<u32>) -> Node {
    Node {
        name: "compute-1".into(),
        labels: Default::default(),
        bgp: Some(NodeBgp {
            ipv4_address: Some(addr),
            ipv6_address: None,
            as_number: asn.map(AsNumber),
            route_reflector_cluster_id: None,
        }),
    }
}

async fn raw(client: &mut Client, key: &str) -> Option<String> {
    let got = client.get(key, None).await.unwrap();
    got.kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
}

/// Polls until `key` is absent (`true`) or `limit` passes (`false`).
async fn vanishes(client: &mut Client, key: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if raw(client, key).await.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_are_felixs_keys_and_values_and_read_back() {
    let Some(etcd) = EtcdServer::start_or_skip("reports_are_felixs_keys_and_values_and_read_back")
    else {
        return;
    };
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let status = EtcdStatus::connect(&[etcd.endpoint()], options(30))
        .await
        .unwrap();
    status
        .register_node(&node(Ipv4Addr::new(10, 0, 0, 1), Some(64512)))
        .await
        .unwrap();
    let host: serde_json::Value =
        serde_json::from_str(&raw(&mut client, &format!("{HOST}/status")).await.unwrap()).unwrap();
    assert_eq!(host["first_update"], true);
    assert!(host["time"].as_str().unwrap().ends_with('Z'), "{host}");
    assert!(status.host_status("compute-1").await.unwrap().is_some());
    assert!(status.host_status("compute-2").await.unwrap().is_none());

    let vm = id("openstack/vm-1", "p1");
    status
        .report_endpoint("compute-1", &vm, &EndpointReport::up())
        .await
        .unwrap();
    status
        .report_endpoint(
            "compute-1",
            &id("vm-2", "p2"),
            &EndpointReport::error("no tap"),
        )
        .await
        .unwrap();
    let key = format!("{HOST}/workload/openstack/openstack%2fvm-1/endpoint/p1");
    assert_eq!(
        raw(&mut client, &key).await.as_deref(),
        Some(r#"{"status":"up"}"#)
    );
    assert_eq!(
        status.endpoint_status("compute-1", &vm).await.unwrap(),
        Some(EndpointReport::up())
    );
    assert_eq!(
        status.endpoints("compute-1").await.unwrap(),
        vec![
            (vm.clone(), EndpointReport::up()),
            (id("vm-2", "p2"), EndpointReport::error("no tap")),
        ]
    );
    // A value Calico would not write reads as an error, as networking-calico treats it.
    client
        .put(
            format!("{HOST}/workload/openstack/vm-3/endpoint/p3"),
            "garbage",
            None,
        )
        .await
        .unwrap();
    let e = status
        .endpoint_status("compute-1", &id("vm-3", "p3"))
        .await
        .unwrap();
    assert_eq!(e.map(|r| r.status_word()), Some("error"));

    status.clear_endpoint("compute-1", &vm).await.unwrap();
    assert_eq!(
        status.endpoint_status("compute-1", &vm).await.unwrap(),
        None
    );
    status.clear_endpoint("compute-1", &vm).await.unwrap();
    status.close().await.unwrap();
    assert_eq!(raw(&mut client, &format!("{HOST}/status")).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_hosts_reports_expire_and_a_live_hosts_do_not() {
    let Some(etcd) =
        EtcdServer::start_or_skip("a_dead_hosts_reports_expire_and_a_live_hosts_do_not")
    else {
        return;
    };
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let ttl = 3;
    let status = EtcdStatus::connect(&[etcd.endpoint()], options(ttl))
        .await
        .unwrap();
    status
        .register_node(&node(Ipv4Addr::new(10, 0, 0, 1), None))
        .await
        .unwrap();
    let vm = id("vm-1", "p1");
    status
        .report_endpoint("compute-1", &vm, &EndpointReport::up())
        .await
        .unwrap();
    let key = format!("{HOST}/workload/openstack/vm-1/endpoint/p1");

    // Alive for twice the TTL: the keep-alive holds the lease.
    tokio::time::sleep(Duration::from_secs(2 * ttl)).await;
    assert!(
        raw(&mut client, &key).await.is_some(),
        "a live host's report expired"
    );
    let refreshed: serde_json::Value =
        serde_json::from_str(&raw(&mut client, &format!("{HOST}/status")).await.unwrap()).unwrap();
    assert_eq!(
        refreshed["first_update"], false,
        "liveness not refreshed: {refreshed}"
    );

    // Dropped without clean-up, as a host that dies.
    drop(status);
    assert!(raw(&mut client, &key).await.is_some());
    let limit = Duration::from_secs(ttl + 10);
    assert!(
        vanishes(&mut client, &key, limit).await,
        "endpoint report outlived its host"
    );
    assert!(vanishes(&mut client, &format!("{HOST}/status"), limit).await);
    // The Node resource is not the host's report: it stays.
    assert!(raw(&mut client, NODE_KEY).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_is_replaced_and_every_report_written_again() {
    let Some(etcd) =
        EtcdServer::start_or_skip("a_lost_lease_is_replaced_and_every_report_written_again")
    else {
        return;
    };
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let status = EtcdStatus::connect(&[etcd.endpoint()], options(3))
        .await
        .unwrap();
    status
        .register_node(&node(Ipv4Addr::new(10, 0, 0, 1), None))
        .await
        .unwrap();
    status
        .report_endpoint("compute-1", &id("vm-1", "p1"), &EndpointReport::down())
        .await
        .unwrap();
    let key = format!("{HOST}/workload/openstack/vm-1/endpoint/p1");
    let old = status.lease().await;
    client.lease_revoke(old).await.unwrap();
    assert_eq!(raw(&mut client, &key).await, None);

    let start = Instant::now();
    while raw(&mut client, &key).await.is_none() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        raw(&mut client, &key).await.as_deref(),
        Some(r#"{"status":"down"}"#)
    );
    assert_ne!(status.lease().await, old);
    assert!(raw(&mut client, &format!("{HOST}/status")).await.is_some());
    // A report written after the loss goes under the new lease too.
    status
        .report_endpoint("compute-1", &id("vm-1", "p1"), &EndpointReport::up())
        .await
        .unwrap();
    let got = client.get(key.as_str(), None).await.unwrap();
    assert_eq!(got.kvs()[0].lease(), status.lease().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_registration_round_trips_and_keeps_an_operators_fields() {
    let Some(etcd) =
        EtcdServer::start_or_skip("node_registration_round_trips_and_keeps_an_operators_fields")
    else {
        return;
    };
    let mut client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let status = EtcdStatus::connect(&[etcd.endpoint()], options(30))
        .await
        .unwrap();
    let ours = node(Ipv4Addr::new(10, 0, 0, 1), Some(64512));
    assert_eq!(status.register_node(&ours).await.unwrap(), ours);
    let stored = raw(&mut client, NODE_KEY).await.unwrap();
    assert_eq!(
        parse_v3(&stored).unwrap(),
        vec![Resource::Node(ours.clone())]
    );

    // An operator adds a label, a route-reflector id and a field calico-rs does not model,
    // and Calico's node agent wrote the address with its prefix length.
    let mut v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    v["metadata"]["labels"] = serde_json::json!({"rack": "a"});
    v["spec"]["bgp"]["routeReflectorClusterID"] = "1.0.0.1".into();
    v["spec"]["bgp"]["ipv4Address"] = "10.0.0.1/24".into();
    v["spec"]["ipv4VXLANTunnelAddr"] = "10.65.0.1".into();
    client.put(NODE_KEY, v.to_string(), None).await.unwrap();
    let revision = client.get(NODE_KEY, None).await.unwrap().kvs()[0].mod_revision();

    // Registering the same address again changes nothing, so writes nothing.
    status.register_node(&ours).await.unwrap();
    let again = client.get(NODE_KEY, None).await.unwrap();
    assert_eq!(
        again.kvs()[0].mod_revision(),
        revision,
        "an unchanged node was rewritten"
    );

    // A new address and AS: set; the operator's fields kept.
    let moved = node(Ipv4Addr::new(10, 0, 0, 9), Some(64513));
    status.register_node(&moved).await.unwrap();
    let after: serde_json::Value =
        serde_json::from_str(&raw(&mut client, NODE_KEY).await.unwrap()).unwrap();
    assert_eq!(after["metadata"]["labels"]["rack"], "a");
    assert_eq!(after["spec"]["bgp"]["routeReflectorClusterID"], "1.0.0.1");
    assert_eq!(after["spec"]["ipv4VXLANTunnelAddr"], "10.65.0.1");
    assert_eq!(after["spec"]["bgp"]["ipv4Address"], "10.0.0.9/32");
    assert_eq!(after["spec"]["bgp"]["asNumber"], 64513);

    // A value that is not a Node is not overwritten.
    client.put(NODE_KEY, "not json", None).await.unwrap();
    let e = status.register_node(&moved).await.unwrap_err();
    assert!(e.to_string().contains("not overwritten"), "{e}");
    assert_eq!(
        raw(&mut client, NODE_KEY).await.as_deref(),
        Some("not json")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_etcd_is_an_error_within_the_timeout_not_a_hang() {
    let Some(etcd) =
        EtcdServer::start_or_skip("a_dead_etcd_is_an_error_within_the_timeout_not_a_hang")
    else {
        return;
    };
    let status = EtcdStatus::connect(&[etcd.endpoint()], options(30))
        .await
        .unwrap();
    etcd.pause();
    let start = Instant::now();
    let e = status
        .report_endpoint("compute-1", &id("vm-1", "p1"), &EndpointReport::up())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            e,
            calico_core::datastore::DatastoreError::Unavailable { .. }
        ),
        "{e}"
    );
    etcd.resume();
}
