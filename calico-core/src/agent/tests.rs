//! Engine behaviour against an in-memory FIB that records every call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;

use super::*;
use crate::dataplane::{BackendError, FibChangeSet, FibReport, PeerState, Route, RouteTarget};
use crate::model::{WorkloadEndpoint, WorkloadEndpointId};

mod drift;
mod follow;
mod forget;
#[cfg(feature = "neutron")]
mod neutron_status;

#[derive(Default)]
struct FibState {
    routes: BTreeMap<IpNet, RouteTarget>,
    interfaces: BTreeSet<String>,
    applies: usize,
    /// Destinations the kernel refuses.
    refuse: BTreeSet<IpNet>,
    /// Interfaces that exist but cannot be configured (a permanent error).
    broken: BTreeSet<String>,
    /// Calls of `configure_interface`.
    configure_calls: usize,
    /// The drift signal handed out, if the test gives the FIB one.
    drift: Option<tokio::sync::watch::Sender<u64>>,
    /// Every route removal asked for, in order.
    removed: Vec<IpNet>,
    /// The interfaces' addresses; `None`: the FIB cannot list them.
    addrs: Option<crate::dataplane::InterfaceAddresses>,
    /// Every `forget_connections` call, with whether a route to each address was still
    /// programmed at the time.
    forgotten: Vec<Vec<(std::net::IpAddr, bool)>>,
    /// Whether `forget_connections` fails.
    forget_fails: bool,
}

#[derive(Default, Clone)]
struct RecordingFib(Arc<Mutex<FibState>>);

#[async_trait]
impl FibBackend for RecordingFib {
    async fn apply(&self, changes: &FibChangeSet) -> Result<FibReport, BackendError> {
        let mut s = self.0.lock().unwrap();
        s.applies += 1;
        let mut report = FibReport::default();
        for dst in &changes.remove {
            s.routes.remove(dst);
            s.removed.push(*dst);
        }
        for r in &changes.upsert {
            if s.refuse.contains(&r.dst) {
                report.failed.push((
                    r.dst,
                    BackendError::Dataplane {
                        op: format!("add route {}", r.dst),
                        reason: "refused by test".into(),
                    },
                ));
            } else {
                s.routes.insert(r.dst, r.target.clone());
            }
        }
        Ok(report)
    }
    async fn dump(&self) -> Result<Vec<Route>, BackendError> {
        let s = self.0.lock().unwrap();
        Ok(s.routes
            .iter()
            .map(|(dst, target)| Route {
                dst: *dst,
                target: target.clone(),
            })
            .collect())
    }
    async fn configure_interface(
        &self,
        interface: &str,
        _: crate::dataplane::InterfaceSettings,
    ) -> Result<(), BackendError> {
        let mut s = self.0.lock().unwrap();
        s.configure_calls += 1;
        if s.broken.contains(interface) {
            Err(BackendError::Dataplane {
                op: format!("configure {interface}"),
                reason: "broken by test".into(),
            })
        } else if s.interfaces.contains(interface) {
            Ok(())
        } else {
            Err(BackendError::MissingInterface(interface.into()))
        }
    }
    async fn interface_addresses(
        &self,
    ) -> Result<crate::dataplane::InterfaceAddresses, BackendError> {
        match &self.0.lock().unwrap().addrs {
            Some(addrs) => Ok(addrs.clone()),
            None => Err(BackendError::Unsupported("test FIB".into())),
        }
    }
    async fn forget_connections(&self, addrs: &[std::net::IpAddr]) -> Result<(), BackendError> {
        let mut s = self.0.lock().unwrap();
        let call = addrs
            .iter()
            .map(|a| (*a, s.routes.contains_key(&IpNet::from(*a))))
            .collect();
        s.forgotten.push(call);
        if s.forget_fails {
            return Err(BackendError::Unavailable("refused by test".into()));
        }
        Ok(())
    }
    fn drift(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.0
            .lock()
            .unwrap()
            .drift
            .as_ref()
            .map(|tx| tx.subscribe())
    }
}

fn endpoint(name: &str, node: &str, iface: &str, ip: &str) -> Resource {
    Resource::WorkloadEndpoint(WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: "k8s".into(),
            workload: name.into(),
            endpoint: "eth0".into(),
        },
        namespace: None,
        node: node.into(),
        interface_name: iface.into(),
        mac: None,
        ip_networks: vec![ip.parse().unwrap()],
        labels: Default::default(),
        profiles: vec![],
        ports: vec![],
        allow_spoofed_source_prefixes: vec![],
        ip_nats: vec![],
    })
}

fn fib_with_interfaces(ifaces: &[&str]) -> RecordingFib {
    let fib = RecordingFib::default();
    fib.0.lock().unwrap().interfaces = ifaces.iter().map(|s| s.to_string()).collect();
    fib
}

fn fast_timing() -> Timing {
    Timing {
        batch_window: Duration::from_millis(1),
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        resync_interval: Duration::from_secs(3600),
        ..Timing::default()
    }
}

fn start(fib: &RecordingFib) -> Agent {
    Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .timing(fast_timing())
        .start()
        .unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[tokio::test]
async fn nothing_is_programmed_before_the_first_snapshot() {
    let fib = fib_with_interfaces(&["cali-a"]);
    let agent = start(&fib);
    let h = agent.handle();
    h.update(Update::Upsert(endpoint("a", "h1", "cali-a", "10.0.0.1/32")))
        .await
        .unwrap();
    h.flush().await;
    assert_eq!(fib.0.lock().unwrap().applies, 0);
    let status = h.status();
    assert!(!status.in_sync);
    assert!(status
        .endpoints
        .values()
        .all(|e| e.state == EndpointState::Pending));

    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    assert_eq!(
        fib.0.lock().unwrap().routes.get(&net("10.0.0.1/32")),
        Some(&RouteTarget::Workload {
            interface: "cali-a".into()
        })
    );
    assert!(h
        .status()
        .endpoints
        .values()
        .all(|e| e.state == EndpointState::Programmed));
    agent.shutdown().await;
}

#[tokio::test]
async fn only_this_nodes_endpoints_are_routed_and_removal_withdraws() {
    let fib = fib_with_interfaces(&["cali-a", "cali-b"]);
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![
        endpoint("a", "h1", "cali-a", "10.0.0.1/32"),
        endpoint("b", "h2", "cali-b", "10.0.0.2/32"),
    ])
    .await
    .unwrap();
    h.flush().await;
    assert_eq!(fib.0.lock().unwrap().routes.len(), 1);
    h.update(Update::Remove(crate::model::ResourceKey::WorkloadEndpoint(
        WorkloadEndpointId {
            orchestrator: "k8s".into(),
            workload: "a".into(),
            endpoint: "eth0".into(),
        },
    )))
    .await
    .unwrap();
    h.flush().await;
    assert!(fib.0.lock().unwrap().routes.is_empty());
    agent.shutdown().await;
}

#[tokio::test]
async fn adopting_a_programmed_host_changes_nothing() {
    let fib = fib_with_interfaces(&["cali-a"]);
    fib.0.lock().unwrap().routes.insert(
        net("10.0.0.1/32"),
        RouteTarget::Workload {
            interface: "cali-a".into(),
        },
    );
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    assert_eq!(
        fib.0.lock().unwrap().applies,
        0,
        "a correct FIB is not touched"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn resync_repairs_a_route_deleted_by_hand() {
    let fib = fib_with_interfaces(&["cali-a", "cali-b"]);
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![
        endpoint("a", "h1", "cali-a", "10.0.0.1/32"),
        endpoint("b", "h1", "cali-b", "10.0.0.2/32"),
    ])
    .await
    .unwrap();
    h.flush().await;
    fib.0.lock().unwrap().routes.remove(&net("10.0.0.2/32"));
    // Without a resync the agent trusts its own record.
    h.flush().await;
    assert_eq!(fib.0.lock().unwrap().routes.len(), 1);
    h.resync().await.unwrap();
    h.flush().await;
    assert_eq!(fib.0.lock().unwrap().routes.len(), 2);
    let m = h.metrics();
    assert_eq!(m.resync_repairs_total, 1);
    assert_eq!(m.resyncs_total, 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_refused_route_is_reported_retried_and_does_not_block_others() {
    let fib = fib_with_interfaces(&["cali-a", "cali-b"]);
    fib.0.lock().unwrap().refuse.insert(net("10.0.0.2/32"));
    let agent = start(&fib);
    let mut h = agent.handle();
    h.snapshot(vec![
        endpoint("a", "h1", "cali-a", "10.0.0.1/32"),
        endpoint("b", "h1", "cali-b", "10.0.0.2/32"),
    ])
    .await
    .unwrap();
    h.flush().await;
    let status = h.status();
    let states: Vec<_> = status.endpoints.values().map(|e| e.state.clone()).collect();
    assert_eq!(states[0], EndpointState::Programmed);
    assert!(matches!(&states[1], EndpointState::Error(e) if e.contains("refused by test")));
    assert!(status.fib.last_error.is_some());
    assert!(fib
        .0
        .lock()
        .unwrap()
        .routes
        .contains_key(&net("10.0.0.1/32")));

    // The kernel starts accepting it: the retry timer programs it without any new update.
    fib.0.lock().unwrap().refuse.clear();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !fib
            .0
            .lock()
            .unwrap()
            .routes
            .contains_key(&net("10.0.0.2/32"))
        {
            h.status_changed().await.unwrap();
        }
    })
    .await
    .expect("retried within 5 s");
    agent.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_waits_for_its_interface_and_is_routed_when_it_appears() {
    let fib = fib_with_interfaces(&[]);
    let agent = start(&fib);
    let mut h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-late", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    assert!(h
        .status()
        .endpoints
        .values()
        .all(|e| e.state == EndpointState::WaitingForInterface));
    assert!(fib.0.lock().unwrap().routes.is_empty());
    fib.0.lock().unwrap().interfaces.insert("cali-late".into());
    tokio::time::timeout(Duration::from_secs(5), async {
        while !h
            .status()
            .endpoints
            .values()
            .all(|e| e.state == EndpointState::Programmed)
        {
            h.status_changed().await.unwrap();
        }
    })
    .await
    .expect("programmed once the interface appeared");
    assert!(fib
        .0
        .lock()
        .unwrap()
        .routes
        .contains_key(&net("10.0.0.1/32")));
    agent.shutdown().await;
}

#[tokio::test]
async fn builder_requires_node_and_fib() {
    assert!(matches!(
        Agent::builder().start(),
        Err(AgentError::Missing("node"))
    ));
    assert!(matches!(
        Agent::builder().node("h1").start(),
        Err(AgentError::Missing("fib"))
    ));
}

/// A BGP backend whose learned routes and peer states the test sets.
struct ScriptedBgp {
    learned: Mutex<Vec<crate::dataplane::LearnedRoute>>,
    peers: Mutex<Vec<crate::dataplane::PeerStatus>>,
    news: tokio::sync::watch::Sender<u64>,
}

impl Default for ScriptedBgp {
    fn default() -> Self {
        ScriptedBgp {
            learned: Mutex::default(),
            peers: Mutex::default(),
            news: tokio::sync::watch::channel(0).0,
        }
    }
}

impl ScriptedBgp {
    fn set(&self, learned: Vec<crate::dataplane::LearnedRoute>, state: PeerState, eor: bool) {
        *self.learned.lock().unwrap() = learned;
        *self.peers.lock().unwrap() = vec![crate::dataplane::PeerStatus {
            address: "192.168.0.2".parse().unwrap(),
            state,
            prefixes_received: 0,
            end_of_rib_received: eor,
            last_error: None,
            counters: Default::default(),
        }];
        self.news.send_modify(|n| *n += 1);
    }
}

#[async_trait]
impl BgpBackend for ScriptedBgp {
    async fn configure(&self, _: &crate::dataplane::BgpSettings) -> Result<(), BackendError> {
        Ok(())
    }
    async fn set_exported_routes(
        &self,
        _: &crate::dataplane::ExportedRoutes,
    ) -> Result<(), BackendError> {
        Ok(())
    }
    async fn learned_routes(&self) -> Result<Vec<crate::dataplane::LearnedRoute>, BackendError> {
        Ok(self.learned.lock().unwrap().clone())
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.news.subscribe()
    }
    async fn peer_status(&self) -> Result<Vec<crate::dataplane::PeerStatus>, BackendError> {
        Ok(self.peers.lock().unwrap().clone())
    }
}

fn via(gw: &str) -> RouteTarget {
    RouteTarget::Via(BTreeSet::from([crate::dataplane::NextHop {
        gateway: gw.parse().unwrap(),
        interface: None,
    }]))
}

/// h1 peers with 192.168.0.2.
fn peered() -> Vec<Resource> {
    crate::model::parse_resources(
        "kind: Node\nname: h1\nbgp: {ipv4Address: 192.168.0.1}\n\
         ---\nkind: BgpConfiguration\nname: default\nnodeToNodeMeshEnabled: false\n\
         ---\nkind: BgpPeer\nname: p\nnode: h1\npeerIP: 192.168.0.2\nasNumber: 64512\n",
    )
    .unwrap()
}

#[tokio::test]
async fn after_a_restart_remote_routes_stay_until_every_peer_sent_its_end_of_rib() {
    let fib = RecordingFib::default();
    // Left by the previous run: two routes to another host's blocks.
    fib.0.lock().unwrap().routes = BTreeMap::from([
        (net("10.65.2.0/26"), via("192.168.0.2")),
        (net("10.65.3.0/26"), via("192.168.0.2")),
    ]);
    let bgp = Arc::new(ScriptedBgp::default());
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .bgp(bgp.clone())
        .timing(fast_timing())
        .keep_remote_routes_until_bgp_converged(Duration::from_secs(60))
        .start()
        .unwrap();
    let handle = agent.handle();
    handle.snapshot(peered()).await.unwrap();
    handle.flush().await;
    let routes = || fib.0.lock().unwrap().routes.clone();
    assert_eq!(routes().len(), 2, "nothing learned yet: both kept");

    // Established, one route back, its End-of-RIB not in yet: both still kept.
    let one = vec![crate::dataplane::LearnedRoute {
        prefix: net("10.65.2.0/26"),
        next_hops: BTreeSet::from(["192.168.0.2".parse().unwrap()]),
    }];
    bgp.set(one.clone(), PeerState::Established, false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.flush().await;
    assert_eq!(routes().len(), 2, "{:?}", routes());

    // End-of-RIB: what the peer did not announce again goes.
    bgp.set(one, PeerState::Established, true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.flush().await;
    assert_eq!(
        routes(),
        BTreeMap::from([(net("10.65.2.0/26"), via("192.168.0.2"))])
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn after_a_restart_remote_routes_go_when_bgp_does_not_converge_in_time() {
    let fib = RecordingFib::default();
    fib.0.lock().unwrap().routes = BTreeMap::from([(net("10.65.2.0/26"), via("192.168.0.2"))]);
    let bgp = Arc::new(ScriptedBgp::default());
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .bgp(bgp.clone())
        .timing(fast_timing())
        .keep_remote_routes_until_bgp_converged(Duration::from_millis(300))
        .start()
        .unwrap();
    let handle = agent.handle();
    handle.snapshot(peered()).await.unwrap();
    handle.flush().await;
    assert_eq!(fib.0.lock().unwrap().routes.len(), 1, "kept at first");
    // The peer never comes up; nothing else happens: the deadline alone removes it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(fib.0.lock().unwrap().routes.is_empty());
    agent.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_validated_whole_and_reconciled_in_one_pass() {
    let ifaces: Vec<String> = (0..50).map(|i| format!("cali{i}")).collect();
    let refs: Vec<&str> = ifaces.iter().map(|s| s.as_str()).collect();
    let fib = fib_with_interfaces(&refs);
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![]).await.unwrap();
    h.flush().await;
    let before = fib.0.lock().unwrap().applies;
    let batch: Vec<Update> = (0..50)
        .map(|i| {
            let ip = format!("10.0.1.{i}/32");
            Update::Upsert(endpoint(&format!("w{i}"), "h1", &ifaces[i], &ip))
        })
        .collect();
    // One invalid member: nothing of the batch is applied.
    let mut bad = batch.clone();
    bad.push(Update::Upsert(endpoint("bad", "h1", "", "10.0.2.1/32")));
    assert!(matches!(h.apply(bad).await, Err(AgentError::Invalid(_))));
    h.flush().await;
    assert!(fib.0.lock().unwrap().routes.is_empty());
    assert_eq!(h.metrics().updates_rejected_total, 1);

    h.apply(batch).await.unwrap();
    h.flush().await;
    let (routes, applies) = {
        let s = fib.0.lock().unwrap();
        (s.routes.len(), s.applies)
    };
    assert_eq!(routes, 50);
    assert_eq!(
        applies - before,
        1,
        "one FIB transaction for the whole batch"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn status_notes_this_nodes_host_endpoints_found_by_address_while_no_interface_holds_one() {
    let fib = fib_with_interfaces(&[]);
    let (drift, _) = tokio::sync::watch::channel(0);
    let address = |ip: &str| {
        let held = BTreeSet::from([ip.parse().unwrap()]);
        Some(BTreeMap::from([("eth0".to_string(), held)]))
    };
    {
        let mut state = fib.0.lock().unwrap();
        state.drift = Some(drift.clone());
        state.addrs = address("192.0.2.99");
    }
    let agent = start(&fib);
    let h = agent.handle();
    let hep = |name: &str, node: &str| {
        Resource::HostEndpoint(crate::model::HostEndpoint {
            name: name.into(),
            node: node.into(),
            interface_name: (name == "h1-eth1").then(|| "eth1".into()),
            expected_ips: vec!["192.0.2.10".parse().unwrap()],
            labels: Default::default(),
            profiles: vec![],
            ports: vec![],
        })
    };
    h.snapshot(vec![
        hep("h1-eth0", "h1"),
        hep("h1-eth1", "h1"),
        hep("h2-eth0", "h2"),
    ])
    .await
    .unwrap();
    h.flush().await;
    let notes = h.status().notes;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("h1-eth0") && notes[0].contains(crate::model::HOST_ENDPOINT_NOT_ENFORCED),
        "{notes:?}"
    );
    // The address arrives on eth0 (the FIB says so by its drift signal): enforced there.
    fib.0.lock().unwrap().addrs = address("192.0.2.10");
    drift.send_modify(|n| *n += 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !h.status().notes.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            h.status().notes
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A FIB that cannot list addresses: said so.
    fib.0.lock().unwrap().addrs = None;
    h.resync().await.unwrap();
    h.flush().await;
    let notes = h.status().notes;
    assert!(
        notes.len() == 1 && notes[0].contains("NOT enforced") && notes[0].contains("test FIB"),
        "{notes:?}"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn the_model_handed_out_holds_every_update_taken() {
    let fib = fib_with_interfaces(&["cali-a"]);
    let agent = start(&fib);
    let h = agent.handle();
    assert!(h.model().await.unwrap().workload_endpoints.is_empty());
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.update(Update::Upsert(endpoint("b", "h2", "cali-b", "10.0.0.2/32")))
        .await
        .unwrap();
    let model = h.model().await.unwrap();
    let names: Vec<_> = model
        .workload_endpoints
        .keys()
        .map(|id| id.workload.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    agent.shutdown().await;
    assert!(matches!(h.model().await, Err(AgentError::Stopped)));
}

/// A compile of `model` for h1 with `config` and the interface addresses `addrs`.
fn compiled_with(
    config: &crate::compile::CompileConfig,
    model: &crate::model::Model,
    addrs: &crate::dataplane::InterfaceAddresses,
) -> crate::dataplane::ir::Ruleset {
    let mut c = crate::compile::Compiler::from_model(config.clone(), model);
    c.set_interface_addresses(model, addrs.clone());
    c.ruleset().clone()
}

/// What `compiled` hands out is what the agent compiled: with its own settings (flow logs
/// here) and the interface addresses it read, which place a host endpoint found by its
/// `expectedIPs` (chains a compile without them lacks); an update taken but not reconciled
/// yet is compiled in.
#[tokio::test]
async fn the_compiled_state_has_the_agents_settings_and_interface_addresses() {
    use crate::compile::{compile, CompileConfig, FlowLogConfig};
    let fib = fib_with_interfaces(&["cali-a"]);
    let held = BTreeSet::from(["192.0.2.10".parse().unwrap()]);
    let addrs = BTreeMap::from([("eth0".to_string(), held)]);
    fib.0.lock().unwrap().addrs = Some(addrs.clone());
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .timing(fast_timing())
        .flow_logs(FlowLogConfig::default())
        .start()
        .unwrap();
    let h = agent.handle();
    let hep = Resource::HostEndpoint(crate::model::HostEndpoint {
        name: "h1-eth0".into(),
        node: "h1".into(),
        interface_name: None,
        expected_ips: vec!["192.0.2.10".parse().unwrap()],
        labels: Default::default(),
        profiles: vec![],
        ports: vec![],
    });
    h.snapshot(vec![hep]).await.unwrap();
    h.flush().await;
    let c = h.compiled().await.unwrap();
    let config = CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new("h1")
    };
    assert_eq!(c.interface_addresses, addrs);
    assert_eq!(*c.ruleset, compiled_with(&config, &c.model, &addrs));
    assert_ne!(*c.ruleset, compile(&config, &c.model), "h1-eth0's chains");
    // Nothing changed since: nothing is copied.
    assert_eq!(h.compiled_since(c.revision).await.unwrap(), None);

    h.update(Update::Upsert(endpoint("a", "h1", "cali-a", "10.0.0.1/32")))
        .await
        .unwrap();
    let changed = h.compiled_since(c.revision).await.unwrap();
    let c = changed.expect("an update taken is a change");
    assert_eq!(c.model.workload_endpoints.len(), 1);
    assert_eq!(*c.ruleset, compiled_with(&config, &c.model, &addrs));
    // The address moves: a change too (the host endpoint follows it).
    h.flush().await;
    let revision = h.compiled().await.unwrap().revision;
    let moved = BTreeMap::from([("eth1".to_string(), addrs["eth0"].clone())]);
    fib.0.lock().unwrap().addrs = Some(moved.clone());
    h.resync().await.unwrap();
    h.flush().await;
    let c = h.compiled_since(revision).await.unwrap();
    let c = c.expect("the addresses moved");
    assert_eq!(c.interface_addresses, moved);
    assert_eq!(*c.ruleset, compiled_with(&config, &c.model, &moved));
    agent.shutdown().await;
    assert!(matches!(h.compiled().await, Err(AgentError::Stopped)));
}
