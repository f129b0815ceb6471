use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::datastore::{Revision, Stored};
use crate::model::{AsNumber, NodeBgp};

fn node(addr: [u8; 4], asn: Option<u32>) -> Node {
    Node {
        name: "compute-1".into(),
        labels: [(
            "kubernetes.io/hostname".to_string(),
            "compute-1".to_string(),
        )]
        .into(),
        bgp: Some(NodeBgp {
            ipv4_address: Some(Ipv4Addr::from(addr)),
            ipv6_address: None,
            as_number: asn.map(AsNumber),
            route_reflector_cluster_id: None,
        }),
    }
}

fn id(ep: &str) -> WorkloadEndpointId {
    WorkloadEndpointId {
        orchestrator: "openstack".into(),
        workload: "vm-1".into(),
        endpoint: ep.into(),
    }
}

#[test]
fn rfc3339_dates_across_leap_days_and_centuries() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_796_329_500), "2026-12-03T20:25:00Z");
    assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
}

#[test]
fn status_words_are_felixs() {
    for r in [
        EndpointReport::up(),
        EndpointReport::down(),
        EndpointReport::error("x"),
    ] {
        let back = EndpointReport::from_status_word(r.status_word(), Some("x".into()));
        assert_eq!(back, Some(r));
    }
    assert_eq!(EndpointReport::from_status_word("UP", None), None);
    assert_eq!(region_string(None), "no-region");
    assert_eq!(region_string(Some("east")), "region-east");
}

#[tokio::test]
async fn memory_reports_are_read_back_cleared_and_expire_with_their_host() {
    let store = MemoryStore::new();
    store
        .register_node(&node([10, 0, 0, 1], None))
        .await
        .unwrap();
    let host = store.host_status("compute-1").await.unwrap().unwrap();
    assert!(host.first_update);
    store
        .report_endpoint("compute-1", &id("p1"), &EndpointReport::up())
        .await
        .unwrap();
    store
        .report_endpoint("compute-1", &id("p2"), &EndpointReport::error("no tap"))
        .await
        .unwrap();
    store
        .report_endpoint("compute-2", &id("p3"), &EndpointReport::down())
        .await
        .unwrap();
    assert_eq!(
        store.endpoint_status("compute-1", &id("p1")).await.unwrap(),
        Some(EndpointReport::up())
    );
    assert_eq!(
        store.endpoints("compute-1").await.unwrap(),
        vec![
            (id("p1"), EndpointReport::up()),
            (id("p2"), EndpointReport::error("no tap"))
        ]
    );
    store.clear_endpoint("compute-1", &id("p1")).await.unwrap();
    assert_eq!(
        store.endpoint_status("compute-1", &id("p1")).await.unwrap(),
        None
    );

    store.expire_host("compute-1");
    assert_eq!(store.host_status("compute-1").await.unwrap(), None);
    assert!(store.endpoints("compute-1").await.unwrap().is_empty());
    assert_eq!(store.endpoints("compute-2").await.unwrap().len(), 1);

    store.set_available(false);
    let e = store.endpoints("compute-2").await.unwrap_err();
    assert!(matches!(e, DatastoreError::Unavailable { .. }), "{e}");
}

#[tokio::test]
async fn registration_keeps_what_an_operator_set_and_writes_nothing_when_unchanged() {
    let store = MemoryStore::new();
    let first = store
        .register_node(&node([10, 0, 0, 1], None))
        .await
        .unwrap();
    assert_eq!(first, node([10, 0, 0, 1], None));

    // An operator sets the AS, a route-reflector id and a label.
    let mut operator = first.clone();
    operator.labels.insert("rack".into(), "a".into());
    let bgp = operator.bgp.as_mut().unwrap();
    bgp.as_number = Some(AsNumber(65001));
    bgp.route_reflector_cluster_id = Some(Ipv4Addr::new(1, 0, 0, 1));
    store
        .upsert(&Resource::Node(operator.clone()))
        .await
        .unwrap();

    // The host comes back with a new address and no AS of its own.
    let stored = store
        .register_node(&node([10, 0, 0, 9], None))
        .await
        .unwrap();
    let mut expected = operator;
    expected.bgp.as_mut().unwrap().ipv4_address = Some(Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(stored, expected);
    assert!(
        !store
            .host_status("compute-1")
            .await
            .unwrap()
            .unwrap()
            .first_update
    );

    let revision = store.revision();
    store
        .register_node(&node([10, 0, 0, 9], None))
        .await
        .unwrap();
    assert_eq!(
        store.revision(),
        revision,
        "an unchanged node was rewritten"
    );
}

/// A writer over a [`MemoryStore`] whose first update loses a race: an operator's label
/// lands between the registration's read and its write.
struct Racing {
    store: MemoryStore,
    raced: AtomicBool,
}

#[async_trait]
impl ResourceWriter for Racing {
    fn key_of(&self, resource: &Resource) -> Result<String, DatastoreError> {
        self.store.key_of(resource)
    }
    async fn get(&self, key: &str) -> Result<Option<Stored>, DatastoreError> {
        self.store.get(key).await
    }
    async fn create(&self, resource: &Resource) -> Result<Revision, DatastoreError> {
        self.store.create(resource).await
    }
    async fn update(&self, r: &Resource, expected: Revision) -> Result<Revision, DatastoreError> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let key = self.store.key_of(r)?;
            let Some(Stored {
                resource: Resource::Node(mut n),
                ..
            }) = self.store.get(&key).await?
            else {
                panic!("no node");
            };
            n.labels.insert("operator".into(), "yes".into());
            self.store.upsert(&Resource::Node(n)).await?;
        }
        self.store.update(r, expected).await
    }
    async fn delete(&self, key: &str, e: Option<Revision>) -> Result<Revision, DatastoreError> {
        self.store.delete(key, e).await
    }
}

#[tokio::test]
async fn registration_racing_an_operator_keeps_the_operators_change() {
    let store = MemoryStore::new();
    store
        .create(&Resource::Node(node([10, 0, 0, 1], None)))
        .await
        .unwrap();
    let racing = Racing {
        store: store.clone(),
        raced: AtomicBool::new(false),
    };
    let stored = register_node(&racing, &node([10, 0, 0, 2], Some(64512)))
        .await
        .unwrap();
    assert_eq!(
        stored.labels.get("operator").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        stored.bgp.unwrap().ipv4_address,
        Some(Ipv4Addr::new(10, 0, 0, 2))
    );
}

/// A store whose writes fail while `fail` is set.
struct Flaky {
    store: MemoryStore,
    fail: AtomicBool,
}

#[async_trait]
impl StatusStore for Flaky {
    async fn register_node(&self, node: &Node) -> Result<Node, DatastoreError> {
        self.store.register_node(node).await
    }
    async fn report_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
        report: &EndpointReport,
    ) -> Result<(), DatastoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(DatastoreError::Closed);
        }
        self.store.report_endpoint(node, id, report).await
    }
    async fn clear_endpoint(&self, n: &str, id: &WorkloadEndpointId) -> Result<(), DatastoreError> {
        self.store.clear_endpoint(n, id).await
    }
    async fn endpoint_status(
        &self,
        n: &str,
        id: &WorkloadEndpointId,
    ) -> Result<Option<EndpointReport>, DatastoreError> {
        self.store.endpoint_status(n, id).await
    }
    async fn endpoints(
        &self,
        n: &str,
    ) -> Result<Vec<(WorkloadEndpointId, EndpointReport)>, DatastoreError> {
        self.store.endpoints(n).await
    }
    async fn host_status(&self, n: &str) -> Result<Option<HostReport>, DatastoreError> {
        self.store.host_status(n).await
    }
}

#[tokio::test]
async fn the_reporter_maps_programming_states_and_retries_what_failed() {
    use crate::agent::{AgentStatus, EndpointState as P, EndpointStatus};
    let status = |states: &[(&str, P)]| AgentStatus {
        endpoints: states
            .iter()
            .map(|(ep, s)| {
                let st = EndpointStatus {
                    interface: format!("tap{ep}"),
                    state: s.clone(),
                };
                (id(ep), st)
            })
            .collect(),
        ..AgentStatus::default()
    };
    let store = MemoryStore::new();
    let flaky = Flaky {
        store: store.clone(),
        fail: AtomicBool::new(true),
    };
    let mut reporter = StatusReporter::new(flaky, "compute-1");
    let first = status(&[
        ("a", P::Programmed),
        ("b", P::WaitingForInterface),
        ("c", P::Error("no route".into())),
        ("d", P::Pending),
    ]);
    assert!(reporter.report(&first).await.is_err());
    reporter.fail_off();
    assert_eq!(reporter.report(&first).await.unwrap(), 3);
    assert_eq!(
        store.endpoints("compute-1").await.unwrap(),
        vec![
            (id("a"), EndpointReport::up()),
            (id("b"), EndpointReport::down()),
            (id("c"), EndpointReport::error("no route")),
        ]
    );
    // b comes up, c is gone, a turns pending again (not reported: its report is cleared).
    let second = status(&[("a", P::Pending), ("b", P::Programmed)]);
    assert_eq!(reporter.report(&second).await.unwrap(), 3);
    assert_eq!(
        store.endpoints("compute-1").await.unwrap(),
        vec![(id("b"), EndpointReport::up())]
    );
}

impl StatusReporter<Flaky> {
    fn fail_off(&self) {
        self.store().fail.store(false, Ordering::SeqCst);
    }
}
