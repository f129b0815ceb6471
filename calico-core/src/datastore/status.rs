//! Status back to the orchestrator: which hosts are alive, which endpoints are up.
//!
//! Calico's agents report through the datastore, and the orchestrator's plug-in reads it:
//! Felix writes its liveness to `/calico/felix/v2/<region>/host/<hostname>/status` (JSON
//! `{"time", "uptime", "first_update"}`, with a TTL, so a dead host's entry expires) and
//! each endpoint's state to `.../host/<hostname>/workload/<orchestrator>/<workload>/endpoint/
//! <endpoint>` (JSON `{"status": "up" | "down" | "error"}`); networking-calico's status
//! watcher turns `up` into the Neutron port status `ACTIVE`, `down` into `DOWN`, `error` (or
//! a deleted entry) into `ERROR`, and a host whose status key expired into a dead agent.
//! [`StatusStore`] is that channel without the key layout: `calico-etcd` implements it in
//! Calico's layout, [`MemoryStore`] for tests.
//!
//! [`StatusReporter`] is the host side: it turns the agent's endpoint states into reports.
//! [`register_node`] is the host's other duty at start-up: its `Node` resource (BGP
//! addresses and AS) is written by compare-and-swap, merged into what an operator may have
//! set ([`merge_node`]).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

mod reporter;

pub use reporter::StatusReporter;

use super::memory::MemoryStore;
use super::{DatastoreError, ResourceWriter};
use crate::model::{Node, Resource, WorkloadEndpointId};

/// The region Felix reports under when no OpenStack region is configured.
pub const NO_REGION: &str = "no-region";

/// The region string Felix and networking-calico use: `region-<name>`, or [`NO_REGION`].
pub fn region_string(openstack_region: Option<&str>) -> String {
    match openstack_region {
        Some(r) if !r.is_empty() => format!("region-{r}"),
        _ => NO_REGION.to_string(),
    }
}

/// What an endpoint's host says about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointState {
    /// Programmed and its interface up: the orchestrator may call it active.
    Up,
    /// Known to the host but its interface is down (or not there yet).
    Down,
    /// The host failed to program it; why.
    Error(String),
}

/// One endpoint's status as its host reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointReport {
    /// The state.
    pub state: EndpointState,
}

impl EndpointReport {
    /// Up.
    pub fn up() -> Self {
        EndpointReport {
            state: EndpointState::Up,
        }
    }

    /// Down.
    pub fn down() -> Self {
        EndpointReport {
            state: EndpointState::Down,
        }
    }

    /// Failed, with the reason.
    pub fn error(reason: impl Into<String>) -> Self {
        EndpointReport {
            state: EndpointState::Error(reason.into()),
        }
    }

    /// The word Felix writes in `{"status": ...}`: `up`, `down` or `error`.
    pub fn status_word(&self) -> &'static str {
        match self.state {
            EndpointState::Up => "up",
            EndpointState::Down => "down",
            EndpointState::Error(_) => "error",
        }
    }

    /// The report for a status word (`reason` for `error`; Felix gives none); `None` for a
    /// word Calico does not write.
    pub fn from_status_word(word: &str, reason: Option<String>) -> Option<Self> {
        Some(match word {
            "up" => Self::up(),
            "down" => Self::down(),
            "error" => Self::error(reason.unwrap_or_default()),
            _ => return None,
        })
    }
}

/// A host's liveness report, as Felix writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostReport {
    /// When it was written, RFC 3339 UTC (`2026-12-03T20:15:00Z`).
    pub time: String,
    /// Seconds since the reporting agent started.
    pub uptime_secs: f64,
    /// Whether this is the agent's first report since it started.
    pub first_update: bool,
}

/// Where hosts report and orchestrators read status.
///
/// Reports are the host's own: a datastore that can expire them (etcd leases) drops a dead
/// host's liveness and endpoint reports by itself.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// Writes `node`'s `Node` resource, merged into the stored one by compare-and-swap (see
    /// [`merge_node`]), and starts reporting the host alive. Returns the node as stored.
    async fn register_node(&self, node: &Node) -> Result<Node, DatastoreError>;

    /// Reports an endpoint of host `node`.
    async fn report_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
        report: &EndpointReport,
    ) -> Result<(), DatastoreError>;

    /// Withdraws an endpoint's report (the endpoint is gone from the host); no error if there
    /// was none.
    async fn clear_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
    ) -> Result<(), DatastoreError>;

    /// The report of one endpoint of host `node`, if any.
    async fn endpoint_status(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
    ) -> Result<Option<EndpointReport>, DatastoreError>;

    /// Every endpoint report of host `node`, ordered by id.
    async fn endpoints(
        &self,
        node: &str,
    ) -> Result<Vec<(WorkloadEndpointId, EndpointReport)>, DatastoreError>;

    /// Host `node`'s liveness report; `None` if it never registered or its report expired.
    async fn host_status(&self, node: &str) -> Result<Option<HostReport>, DatastoreError>;
}

/// `ours` (what a registering host knows about itself) merged into `stored` (what the
/// datastore holds, perhaps set by an operator): `ours`'s labels are set, other labels kept;
/// each BGP field `ours` gives replaces the stored one, each it leaves unset is kept (an
/// operator's AS number or route-reflector cluster id survives a host that does not set
/// them).
pub fn merge_node(stored: &Node, ours: &Node) -> Node {
    let mut merged = stored.clone();
    for (k, v) in &ours.labels {
        merged.labels.insert(k.clone(), v.clone());
    }
    if let Some(b) = &ours.bgp {
        let m = merged.bgp.get_or_insert_with(|| b.clone());
        m.ipv4_address = b.ipv4_address.or(m.ipv4_address);
        m.ipv6_address = b.ipv6_address.or(m.ipv6_address);
        m.as_number = b.as_number.or(m.as_number);
        m.route_reflector_cluster_id = b
            .route_reflector_cluster_id
            .or(m.route_reflector_cluster_id);
    }
    merged
}

/// Writes `node` through `writer` merged into the stored `Node` ([`merge_node`]): a read,
/// then an update at the revision read (a create if absent), again on a race, at most 10
/// times; nothing is written when the merge changes nothing. Returns the node as stored.
pub async fn register_node(
    writer: &(impl ResourceWriter + ?Sized),
    node: &Node,
) -> Result<Node, DatastoreError> {
    let resource = Resource::Node(node.clone());
    let key = writer.key_of(&resource)?;
    let mut last = None;
    for _ in 0..10 {
        let outcome = match writer.get(&key).await? {
            None => writer.create(&resource).await.map(|_| node.clone()),
            Some(stored) => {
                let Resource::Node(current) = &stored.resource else {
                    return Err(DatastoreError::Invalid {
                        key,
                        reason: format!("holds a {}, not a Node", stored.resource.kind()),
                    });
                };
                let merged = merge_node(current, node);
                if &merged == current {
                    return Ok(merged);
                }
                writer
                    .update(&Resource::Node(merged.clone()), stored.revision)
                    .await
                    .map(|_| merged)
            }
        };
        match outcome {
            Err(e @ DatastoreError::Conflict { .. })
            | Err(e @ DatastoreError::AlreadyExists { .. })
            | Err(e @ DatastoreError::NotFound { .. }) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or(DatastoreError::Conflict {
        key,
        expected: 0,
        actual: None,
    }))
}

/// Now as RFC 3339 UTC with seconds, as Felix writes its report's `time`.
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `secs` since the Unix epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras that
    // start on 0000-03-01 (so a leap day is the last day of its year).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The in-memory reports of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct Board {
    hosts: BTreeMap<String, HostReport>,
    endpoints: BTreeMap<(String, WorkloadEndpointId), EndpointReport>,
}

impl MemoryStore {
    /// Drops host `node`'s liveness and endpoint reports, as an expired etcd lease does when
    /// a host dies.
    pub fn expire_host(&self, node: &str) {
        let mut board = self.board();
        board.hosts.remove(node);
        board.endpoints.retain(|(n, _), _| n != node);
    }
}

#[async_trait]
impl StatusStore for MemoryStore {
    async fn register_node(&self, node: &Node) -> Result<Node, DatastoreError> {
        let stored = register_node(self, node).await?;
        let mut board = self.board();
        let first_update = !board.hosts.contains_key(&node.name);
        board.hosts.insert(
            node.name.clone(),
            HostReport {
                time: rfc3339_now(),
                uptime_secs: 0.0,
                first_update,
            },
        );
        Ok(stored)
    }

    async fn report_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
        report: &EndpointReport,
    ) -> Result<(), DatastoreError> {
        self.check_reachable()?;
        self.board()
            .endpoints
            .insert((node.to_string(), id.clone()), report.clone());
        Ok(())
    }

    async fn clear_endpoint(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
    ) -> Result<(), DatastoreError> {
        self.check_reachable()?;
        self.board()
            .endpoints
            .remove(&(node.to_string(), id.clone()));
        Ok(())
    }

    async fn endpoint_status(
        &self,
        node: &str,
        id: &WorkloadEndpointId,
    ) -> Result<Option<EndpointReport>, DatastoreError> {
        self.check_reachable()?;
        let board = self.board();
        Ok(board
            .endpoints
            .get(&(node.to_string(), id.clone()))
            .cloned())
    }

    async fn endpoints(
        &self,
        node: &str,
    ) -> Result<Vec<(WorkloadEndpointId, EndpointReport)>, DatastoreError> {
        self.check_reachable()?;
        let board = self.board();
        Ok(board
            .endpoints
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|((_, id), r)| (id.clone(), r.clone()))
            .collect())
    }

    async fn host_status(&self, node: &str) -> Result<Option<HostReport>, DatastoreError> {
        self.check_reachable()?;
        Ok(self.board().hosts.get(node).cloned())
    }
}

#[cfg(test)]
mod tests;
