//! A bulk change fed to a running agent costs about a snapshot of its result (issue 15),
//! on a virtual clock: an ACL backend whose apply takes time in proportion to what it
//! writes (as the kernel's does), fed 5,000 policies as fast as the handle takes them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::compile::{compile, CompileConfig};
use crate::dataplane::ir::Ruleset;
use crate::dataplane::{diff, BackendError, ChangeSet, FibChangeSet, FibReport, Route};
use crate::model::{Model, ResourceKey};
use crate::scale::Scale;

/// Every local endpoint has its own app, hence its own list of hundreds of policies.
const SCALE: Scale = Scale {
    local: 40,
    remote: 100,
    policies: 0,
    apps: 40,
    namespaces: 4,
};
const POLICIES: usize = 5_000;

/// A FIB with every interface.
struct AnyFib;

#[async_trait]
impl FibBackend for AnyFib {
    async fn apply(&self, _: &FibChangeSet) -> Result<FibReport, BackendError> {
        Ok(FibReport::default())
    }
    async fn dump(&self) -> Result<Vec<Route>, BackendError> {
        Ok(vec![])
    }
    async fn configure_interface(
        &self,
        _: &str,
        _: crate::dataplane::InterfaceSettings,
    ) -> Result<(), BackendError> {
        Ok(())
    }
}

#[derive(Default)]
struct Written {
    ruleset: Ruleset,
    /// Weight of every change set applied.
    weights: Vec<usize>,
}

/// An ACL backend taking 1 µs of (virtual) time per rule, element or operation written.
#[derive(Clone, Default)]
struct SlowAcl(Arc<Mutex<Written>>);

#[async_trait]
impl AclBackend for SlowAcl {
    async fn apply(&self, changes: &ChangeSet) -> Result<(), BackendError> {
        tokio::time::sleep(Duration::from_micros(changes.weight() as u64)).await;
        let mut w = self.0.lock().unwrap();
        changes
            .apply_to(&mut w.ruleset)
            .map_err(|e| BackendError::Unsupported(e.to_string()))?;
        w.weights.push(changes.weight());
        Ok(())
    }
    async fn dump(&self) -> Result<Ruleset, BackendError> {
        Ok(self.0.lock().unwrap().ruleset.clone())
    }
}

fn resources(model: &Model) -> Vec<Resource> {
    model
        .workload_endpoints
        .values()
        .cloned()
        .map(Resource::WorkloadEndpoint)
        .chain(model.profiles.values().cloned().map(Resource::Profile))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn updates_fed_one_by_one_cost_about_a_snapshot_of_the_result() {
    let acl = SlowAcl::default();
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(AnyFib))
        .acl(Arc::new(acl.clone()))
        .start()
        .unwrap();
    let h = agent.handle();
    let mut model = SCALE.model();
    h.snapshot(resources(&model)).await.unwrap();
    h.flush().await;
    let base_applies = acl.0.lock().unwrap().weights.len();

    for k in 0..POLICIES {
        let p = SCALE.global_policy(k, 80);
        model.apply_valid(Update::Upsert(Resource::Policy(p.clone())));
        h.update(Update::Upsert(Resource::Policy(p))).await.unwrap();
    }
    h.flush().await;
    let result = compile(&CompileConfig::new("h1"), &model);
    let snapshot = diff(&Ruleset::default(), &result).weight();
    let (fed, passes) = {
        let w = acl.0.lock().unwrap();
        assert_eq!(w.ruleset, result);
        let fed = &w.weights[base_applies..];
        (fed.iter().sum::<usize>(), fed.len())
    };
    // Passes of at most 1,000 updates would each rewrite every policy-list chain: about
    // three snapshots' worth for 5,000 policies.
    assert!(
        fed * 2 <= snapshot * 3,
        "{POLICIES} policies fed one by one wrote {fed} in {passes} passes; a snapshot of \
         the result writes {snapshot}"
    );

    for k in 0..POLICIES {
        let key = ResourceKey::Policy {
            namespace: None,
            name: format!("gpol{k}"),
        };
        model.apply_valid(Update::Remove(key.clone()));
        h.update(Update::Remove(key)).await.unwrap();
    }
    h.flush().await;
    assert_eq!(
        acl.0.lock().unwrap().ruleset,
        compile(&CompileConfig::new("h1"), &model)
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_agent_reconciles_an_update_without_waiting() {
    let acl = SlowAcl::default();
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(AnyFib))
        .acl(Arc::new(acl.clone()))
        .start()
        .unwrap();
    let h = agent.handle();
    h.snapshot(resources(&SCALE.model())).await.unwrap();
    h.flush().await;
    // Long after the last pass: no adaptive wait.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t = tokio::time::Instant::now();
    let p = SCALE.global_policy(0, 80);
    h.update(Update::Upsert(Resource::Policy(p))).await.unwrap();
    h.flush().await;
    let weight = *acl.0.lock().unwrap().weights.last().unwrap();
    // The pass's own (virtual) time, rounded up to the timer's millisecond, and no more.
    assert!(
        t.elapsed() <= Duration::from_micros(weight as u64) + Duration::from_millis(2),
        "{:?} for a change set of weight {weight}",
        t.elapsed()
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn flow_logs_set_on_the_builder_are_in_the_programmed_rules() {
    let flow_logs = crate::compile::FlowLogConfig::default();
    let logged = |model: &Model| {
        let config = CompileConfig {
            flow_logs: Some(flow_logs),
            ..CompileConfig::new("h1")
        };
        compile(&config, model)
    };
    let acl = SlowAcl::default();
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(AnyFib))
        .acl(Arc::new(acl.clone()))
        .flow_logs(flow_logs)
        .start()
        .unwrap();
    let h = agent.handle();
    let mut model = SCALE.model();
    h.snapshot(resources(&model)).await.unwrap();
    h.flush().await;
    assert_ne!(logged(&model), compile(&CompileConfig::new("h1"), &model));
    assert_eq!(acl.0.lock().unwrap().ruleset, logged(&model));
    // And an update compiled incrementally.
    let p = SCALE.global_policy(0, 80);
    model.apply_valid(Update::Upsert(Resource::Policy(p.clone())));
    h.update(Update::Upsert(Resource::Policy(p))).await.unwrap();
    h.flush().await;
    assert_eq!(acl.0.lock().unwrap().ruleset, logged(&model));
    agent.shutdown().await;
}
