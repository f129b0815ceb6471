//! The Neutron side of the datastore: ports and security groups written through a
//! [`ResourceWriter`], and a port's status read from the hosts' reports in a [`StatusStore`],
//! as networking-calico's mechanism driver does.
//!
//! * [`NeutronDriver::port_updated`]: a bound VM port becomes (or replaces) its
//!   `WorkloadEndpoint` in the namespace [`NAMESPACE`]; a port that stops being one (unbound,
//!   no longer a VM port) has its endpoint removed; a port that moved host has the old
//!   host's endpoint removed.
//! * [`NeutronDriver::security_group_updated`]: the group's profile.
//! * [`NeutronDriver::port_status`]: `ACTIVE` once the port's host reported the endpoint up.
//!
//! Which endpoint key each port was written under is remembered in memory, for moves and
//! deletes; a restarted driver deletes a port it did not write in this life only once it
//! sees the port again (networking-calico's periodic resync is not part of this).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::neutron::{port_endpoint, profile_name, security_group_profile, Port, SecurityGroup};
use super::DriverError;
use crate::datastore::status::{EndpointState, StatusStore};
use crate::datastore::ResourceWriter;
use crate::model::{Profile, Resource};

/// The namespace networking-calico puts OpenStack endpoints in when no region is set
/// (`openstack-region-<name>` when one is; see [`NeutronDriver::with_namespace`]).
pub const NAMESPACE: &str = "openstack";

/// A Neutron port's status, as the driver tells Neutron (`ACTIVE`, `DOWN`, `ERROR`, `BUILD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortStatus {
    /// The port's host reported the endpoint up.
    Active,
    /// Not a bound VM port, or its host reported the interface down.
    Down,
    /// The host reported a failure, or no agent reports on the port's host.
    Error(String),
    /// Written, but its host, whose agent is alive, has not reported it yet.
    Build,
}

/// Writes Neutron's ports and security groups, and reads ports' status; see the module docs.
pub struct NeutronDriver {
    writer: Arc<dyn ResourceWriter>,
    status: Arc<dyn StatusStore>,
    namespace: String,
    /// Port id → the endpoint key it was last written under.
    written: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for NeutronDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeutronDriver")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl NeutronDriver {
    /// A driver writing through `writer`, reading status from `status`, endpoints in
    /// [`NAMESPACE`].
    pub fn new(writer: Arc<dyn ResourceWriter>, status: Arc<dyn StatusStore>) -> Self {
        NeutronDriver {
            writer,
            status,
            namespace: NAMESPACE.to_string(),
            written: Mutex::new(BTreeMap::new()),
        }
    }

    /// The same, with endpoints in `namespace` (networking-calico: `openstack-region-<name>`).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    fn written(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The port's endpoint as written, `None` for a port that is no endpoint.
    fn endpoint(&self, port: &Port) -> Result<Option<Resource>, DriverError> {
        Ok(port_endpoint(port)?.map(|mut ep| {
            ep.namespace = Some(self.namespace.clone());
            Resource::WorkloadEndpoint(ep)
        }))
    }

    /// Writes the port's endpoint (created or replaced); removes the one written before if
    /// the port moved or is no longer an endpoint. Returns whether the port is an endpoint.
    pub async fn port_updated(&self, port: &Port) -> Result<bool, DriverError> {
        let endpoint = self.endpoint(port)?;
        let key = match &endpoint {
            Some(r) => Some(self.writer.key_of(r)?),
            None => None,
        };
        let before = self.written().get(&port.id).cloned();
        if let (Some(r), Some(k)) = (&endpoint, &key) {
            self.writer.upsert(r).await?;
            self.written().insert(port.id.clone(), k.clone());
        }
        if let Some(old) = before.filter(|old| Some(old) != key.as_ref()) {
            self.writer.remove(&old).await?;
            if key.is_none() {
                self.written().remove(&port.id);
            }
        }
        Ok(endpoint.is_some())
    }

    /// Removes the port's endpoint; returns whether there was one this driver wrote.
    pub async fn port_deleted(&self, port_id: &str) -> Result<bool, DriverError> {
        let Some(key) = self.written().get(port_id).cloned() else {
            return Ok(false);
        };
        let existed = self.writer.remove(&key).await?.is_some();
        self.written().remove(port_id);
        Ok(existed)
    }

    /// Writes the group's profile.
    pub async fn security_group_updated(&self, sg: &SecurityGroup) -> Result<(), DriverError> {
        let profile = Resource::Profile(security_group_profile(sg)?);
        self.writer.upsert(&profile).await?;
        Ok(())
    }

    /// Removes the group's profile; returns whether it existed.
    pub async fn security_group_deleted(&self, sg_id: &str) -> Result<bool, DriverError> {
        let stub = Resource::Profile(Profile {
            name: profile_name(sg_id),
            ..Profile::default()
        });
        let key = self.writer.key_of(&stub)?;
        Ok(self.writer.remove(&key).await?.is_some())
    }

    /// The port's status from its host's reports: [`PortStatus::Active`] once reported up.
    pub async fn port_status(&self, port: &Port) -> Result<PortStatus, DriverError> {
        let Some(Resource::WorkloadEndpoint(ep)) = self.endpoint(port)? else {
            return Ok(PortStatus::Down);
        };
        let report = self.status.endpoint_status(&ep.node, &ep.id).await?;
        Ok(match report.map(|r| r.state) {
            Some(EndpointState::Up) => PortStatus::Active,
            Some(EndpointState::Down) => PortStatus::Down,
            Some(EndpointState::Error(reason)) => PortStatus::Error(reason),
            None if self.status.host_status(&ep.node).await?.is_some() => PortStatus::Build,
            None => PortStatus::Error(format!(
                "no agent reports on host {}: it is down or not started",
                ep.node
            )),
        })
    }
}

#[cfg(test)]
mod tests;
