//! The host side: an agent's endpoint states, reported through a [`StatusStore`].

use std::collections::BTreeMap;

use super::{EndpointReport, StatusStore};
use crate::agent::{AgentHandle, AgentStatus, EndpointState as Programming};
use crate::datastore::DatastoreError;
use crate::model::WorkloadEndpointId;

/// Reports the agent's local endpoints as Felix does: `up` once programmed, `down` while
/// the interface is missing, `error` with the reason when programming failed; an endpoint
/// not programmed yet is not reported, one the agent dropped is cleared. Only changes are
/// written.
#[derive(Debug)]
pub struct StatusReporter<S> {
    store: S,
    node: String,
    reported: BTreeMap<WorkloadEndpointId, EndpointReport>,
}

/// What the host reports for a programming state; `None`: nothing yet.
fn report_for(state: &Programming) -> Option<EndpointReport> {
    match state {
        Programming::Programmed => Some(EndpointReport::up()),
        Programming::WaitingForInterface => Some(EndpointReport::down()),
        Programming::Error(reason) => Some(EndpointReport::error(reason.clone())),
        _ => None,
    }
}

impl<S: StatusStore> StatusReporter<S> {
    /// A reporter for host `node`, which has reported nothing yet.
    pub fn new(store: S, node: impl Into<String>) -> Self {
        StatusReporter {
            store,
            node: node.into(),
            reported: BTreeMap::new(),
        }
    }

    /// The store reported to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Writes what changed since the last call; returns the number of writes. On an error
    /// the reports not written are tried again next time.
    pub async fn report(&mut self, status: &AgentStatus) -> Result<usize, DatastoreError> {
        let mut writes = 0;
        let gone: Vec<WorkloadEndpointId> = self
            .reported
            .keys()
            .filter(|id| {
                status
                    .endpoints
                    .get(*id)
                    .and_then(|e| report_for(&e.state))
                    .is_none()
            })
            .cloned()
            .collect();
        for id in gone {
            self.store.clear_endpoint(&self.node, &id).await?;
            self.reported.remove(&id);
            writes += 1;
        }
        for (id, endpoint) in &status.endpoints {
            let Some(report) = report_for(&endpoint.state) else {
                continue;
            };
            if self.reported.get(id) != Some(&report) {
                self.store.report_endpoint(&self.node, id, &report).await?;
                self.reported.insert(id.clone(), report);
                writes += 1;
            }
        }
        Ok(writes)
    }

    /// Reports on every change of the agent's status until the agent stops; a failed write
    /// is logged and retried at the next change.
    pub async fn run(mut self, mut handle: AgentHandle) {
        loop {
            let status = handle.status();
            if let Err(e) = self.report(&status).await {
                tracing::warn!(node = %self.node, error = %e, "endpoint status not reported");
            }
            if handle.status_changed().await.is_err() {
                return;
            }
        }
    }
}
