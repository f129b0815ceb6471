//! What an orchestrator can read about the agent: per-endpoint programming state, per-peer BGP
//! state, and the last error of each backend.

use std::collections::BTreeMap;

use crate::dataplane::PeerStatus;
use crate::model::WorkloadEndpointId;

/// Programming state of one local workload endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// Known, but nothing is programmed yet (the first snapshot is not complete).
    Pending,
    /// Its host-side interface does not exist yet; programming resumes when it appears.
    WaitingForInterface,
    /// Routes, interface settings and ACLs are in place.
    Programmed,
    /// Programming failed; the agent retries with back-off.
    Error(String),
}

/// Status of one local workload endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Host-side interface.
    pub interface: String,
    /// Programming state.
    pub state: EndpointState,
}

/// Health of one backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendHealth {
    /// The last error, cleared by the next success.
    pub last_error: Option<String>,
    /// Consecutive failures (drives the retry back-off).
    pub consecutive_failures: u32,
}

/// A snapshot of the agent's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// Whether the first complete snapshot has arrived (nothing is programmed before).
    pub in_sync: bool,
    /// Local workload endpoints.
    pub endpoints: BTreeMap<WorkloadEndpointId, EndpointStatus>,
    /// BGP peers.
    pub peers: Vec<PeerStatus>,
    /// The FIB backend.
    pub fib: BackendHealth,
    /// The ACL backend.
    pub acl: BackendHealth,
    /// The BGP backend.
    pub bgp: BackendHealth,
    /// What this host's agent holds but does not enforce, one line each (today: this
    /// node's host endpoints, whose policy is compiled but not attached to the host's
    /// paths).
    pub notes: Vec<String>,
}
