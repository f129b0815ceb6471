//! Drift reported by a backend is repaired at once, without waiting for the resync; a
//! permanent error is retried with back-off.

use tokio::sync::watch;

use super::*;
use crate::dataplane::{AclBackend, ChangeSet, Ruleset};

/// An ACL backend holding its table in memory, with a drift signal.
#[derive(Clone)]
struct DriftingAcl {
    table: Arc<Mutex<Ruleset>>,
    applies: Arc<Mutex<usize>>,
    drift: watch::Sender<u64>,
}

impl DriftingAcl {
    fn new() -> DriftingAcl {
        DriftingAcl {
            table: Arc::default(),
            applies: Arc::default(),
            drift: watch::channel(0).0,
        }
    }

    /// Someone else deletes the table, and the backend says so.
    fn delete_table_by_hand(&self) {
        *self.table.lock().unwrap() = Ruleset::default();
        self.drift.send_modify(|n| *n += 1);
    }
}

#[async_trait]
impl AclBackend for DriftingAcl {
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        *self.applies.lock().unwrap() += 1;
        changes
            .apply_to(&mut self.table.lock().unwrap())
            .map_err(|e| BackendError::Dataplane {
                op: "apply".into(),
                reason: e.to_string(),
            })
    }
    async fn dump(&self) -> Result<Ruleset, BackendError> {
        Ok(self.table.lock().unwrap().clone())
    }
    fn drift(&self) -> Option<watch::Receiver<u64>> {
        Some(self.drift.subscribe())
    }
}

/// A FIB with interface `cali-a` and a drift signal; its sender.
fn drifting_fib() -> (RecordingFib, watch::Sender<u64>) {
    let fib = fib_with_interfaces(&["cali-a"]);
    let (tx, _) = watch::channel(0);
    fib.0.lock().unwrap().drift = Some(tx.clone());
    (fib, tx)
}

/// Waits (at most 5 s, far below the hour-long resync interval) until `done`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 5 s"));
}

#[tokio::test]
async fn a_route_deleted_by_hand_is_back_as_soon_as_the_fib_reports_drift() {
    let (fib, drift) = drifting_fib();
    let (agent, h) = with_one_endpoint(&fib).await;
    assert!(fib
        .0
        .lock()
        .unwrap()
        .routes
        .contains_key(&net("10.0.0.1/32")));

    fib.0.lock().unwrap().routes.clear();
    drift.send_modify(|n| *n += 1);
    eventually("route repaired", || {
        fib.0
            .lock()
            .unwrap()
            .routes
            .contains_key(&net("10.0.0.1/32"))
    })
    .await;
    eventually("repair counted", || h.metrics().drift_repairs_total == 1).await;
    assert_eq!(h.metrics().resyncs_total, 0, "repaired without a resync");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_table_deleted_by_hand_is_back_as_soon_as_the_acl_backend_reports_drift() {
    let fib = fib_with_interfaces(&["cali-a"]);
    let acl = DriftingAcl::new();
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .acl(Arc::new(acl.clone()))
        .timing(fast_timing())
        .start()
        .unwrap();
    let h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    let programmed = acl.table.lock().unwrap().clone();
    assert_ne!(programmed, Ruleset::default());

    acl.delete_table_by_hand();
    eventually("table repaired", || {
        *acl.table.lock().unwrap() == programmed
    })
    .await;
    assert_eq!(h.metrics().resyncs_total, 0, "repaired without a resync");
    agent.shutdown().await;
}

#[tokio::test]
async fn drift_with_nothing_to_repair_writes_nothing() {
    let (fib, drift) = drifting_fib();
    let (agent, h) = with_one_endpoint(&fib).await;
    let applies = fib.0.lock().unwrap().applies;

    drift.send_modify(|n| *n += 1);
    eventually("drift pass run", || h.metrics().drift_passes_total == 1).await;
    h.flush().await;
    assert_eq!(fib.0.lock().unwrap().applies, applies);
    assert_eq!(h.metrics().drift_repairs_total, 0);
    // No pass of its own making follows (no feedback loop).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.metrics().drift_passes_total, 1);
    agent.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_drift_signals_is_repaired_in_one_pass() {
    let (fib, drift) = drifting_fib();
    let (agent, h) = with_one_endpoint(&fib).await;
    fib.0.lock().unwrap().routes.clear();
    for _ in 0..50 {
        drift.send_modify(|n| *n += 1);
    }
    eventually("route repaired", || {
        fib.0
            .lock()
            .unwrap()
            .routes
            .contains_key(&net("10.0.0.1/32"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.metrics().drift_passes_total, 1);
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_interface_error_is_retried_with_back_off() {
    let fib = fib_with_interfaces(&["cali-a"]);
    fib.0.lock().unwrap().broken.insert("cali-a".into());
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib.clone()))
        .timing(Timing {
            resync_interval: Duration::from_secs(3600),
            ..Timing::default()
        })
        .start()
        .unwrap();
    let h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    assert!(h
        .status()
        .endpoints
        .values()
        .all(|e| matches!(&e.state, EndpointState::Error(e) if e.contains("broken by test"))));

    // A minute of (virtual) time: every 100 ms would be 600 attempts; doubling from 100 ms
    // up to 30 s is 10 (0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 12.7, 25.5, 51.1 s after the first).
    tokio::time::sleep(Duration::from_secs(60)).await;
    let calls = fib.0.lock().unwrap().configure_calls;
    assert!((5..=12).contains(&calls), "{calls} attempts in a minute");

    // Repaired: the next retry configures it, and the back-off starts again from scratch.
    fib.0.lock().unwrap().broken.clear();
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(h
        .status()
        .endpoints
        .values()
        .all(|e| e.state == EndpointState::Programmed));
    agent.shutdown().await;
}

#[tokio::test]
async fn fib_drift_configures_again_only_the_interfaces_whose_route_went() {
    let (fib, drift) = drifting_fib();
    fib.0.lock().unwrap().interfaces.insert("cali-b".into());
    let agent = start(&fib);
    let h = agent.handle();
    h.snapshot(vec![
        endpoint("a", "h1", "cali-a", "10.0.0.1/32"),
        endpoint("b", "h1", "cali-b", "10.0.0.2/32"),
    ])
    .await
    .unwrap();
    h.flush().await;
    assert_eq!(fib.0.lock().unwrap().configure_calls, 2);

    // cali-a deleted and created again: its route went with it.
    fib.0.lock().unwrap().routes.remove(&net("10.0.0.1/32"));
    drift.send_modify(|n| *n += 1);
    eventually("route repaired", || {
        fib.0
            .lock()
            .unwrap()
            .routes
            .contains_key(&net("10.0.0.1/32"))
    })
    .await;
    assert_eq!(
        fib.0.lock().unwrap().configure_calls,
        3,
        "cali-a configured again, cali-b left alone"
    );
    agent.shutdown().await;
}

/// An agent on `fib` programmed with one endpoint (`cali-a`, 10.0.0.1/32).
async fn with_one_endpoint(fib: &RecordingFib) -> (Agent, AgentHandle) {
    let agent = start(fib);
    let h = agent.handle();
    h.snapshot(vec![endpoint("a", "h1", "cali-a", "10.0.0.1/32")])
        .await
        .unwrap();
    h.flush().await;
    (agent, h)
}
