//! End to end on one host: Neutron writes a port through the driver, a follower feeds the
//! agent, the host's status reporter reports, and the driver reads the port's status back.

use super::*;
use crate::datastore::follow::Follower;
use crate::datastore::memory::MemoryStore;
use crate::datastore::status::{StatusReporter, StatusStore};
use crate::integrations::neutron::{FixedIp, Port};
use crate::integrations::neutron_driver::{NeutronDriver, PortStatus};
use crate::model::Node;

const PORT_ID: &str = "1f2e3d4c-5b6a-4789-9abc-def012345678";

async fn follow(f: &mut Follower<crate::datastore::memory::MemorySource>, h: &AgentHandle) {
    tokio::time::timeout(Duration::from_secs(5), f.step())
        .await
        .expect("the follower waited 5 s for an event")
        .unwrap();
    h.flush().await;
}

/// Waits until the agent says the endpoint is programmed (or 5 s pass).
async fn programmed(h: &AgentHandle, id: &WorkloadEndpointId) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if h.status()
            .endpoints
            .get(id)
            .is_some_and(|e| e.state == EndpointState::Programmed)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_neutron_port_turns_active_once_its_host_programmed_it() {
    let tap = format!("tap{}", &PORT_ID[..11]);
    let fib = fib_with_interfaces(&[tap.as_str()]);
    let agent = start(&fib);
    let h = agent.handle();
    let store = MemoryStore::new();
    let host = Node {
        name: "h1".into(),
        labels: Default::default(),
        bgp: None,
    };
    store.register_node(&host).await.unwrap();
    let mut reporter = StatusReporter::new(store.clone(), "h1");
    let driver = NeutronDriver::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let port = Port {
        id: PORT_ID.into(),
        mac_address: Some("fa:16:3e:00:00:01".into()),
        fixed_ips: vec![FixedIp {
            subnet_id: None,
            ip_address: "10.65.0.5".into(),
        }],
        host_id: Some("h1".into()),
        device_owner: Some("compute:nova".into()),
        device_id: Some("vm-1".into()),
        security_groups: vec![],
    };
    driver.port_updated(&port).await.unwrap();
    assert_eq!(driver.port_status(&port).await.unwrap(), PortStatus::Build);

    let (mut f, _) = Follower::new(store.source(), h.clone());
    follow(&mut f, &h).await;
    let id = WorkloadEndpointId {
        orchestrator: "openstack".into(),
        workload: "vm-1".into(),
        endpoint: PORT_ID.into(),
    };
    assert!(programmed(&h, &id).await, "{:?}", h.status().endpoints);
    assert!(fib
        .0
        .lock()
        .unwrap()
        .routes
        .contains_key(&net("10.65.0.5/32")));
    assert_eq!(reporter.report(&h.status()).await.unwrap(), 1);
    assert_eq!(driver.port_status(&port).await.unwrap(), PortStatus::Active);
    assert_eq!(
        reporter.report(&h.status()).await.unwrap(),
        0,
        "an unchanged report was rewritten"
    );

    // The port goes: the agent drops the endpoint, the reporter withdraws its report.
    assert!(driver.port_deleted(PORT_ID).await.unwrap());
    follow(&mut f, &h).await;
    assert_eq!(reporter.report(&h.status()).await.unwrap(), 1);
    assert_eq!(store.endpoint_status("h1", &id).await.unwrap(), None);
    agent.shutdown().await;
}
