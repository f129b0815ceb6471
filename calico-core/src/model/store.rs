//! [`Model`]: the validated desired state, as the orchestrator last described it.

use std::collections::BTreeMap;

use super::bgp::{BgpConfiguration, BgpPeer, Node};
use super::endpoint::{HostEndpoint, WorkloadEndpoint, WorkloadEndpointId};
use super::error::ValidationError;
use super::policy::{Policy, Profile};
use super::pool::{BlockAffinity, IpPool};
use super::resource::{Resource, ResourceKey, Update};

/// Key of a policy: namespace (`None` for a global policy) and name.
pub type PolicyKey = (Option<String>, String);

/// The complete desired state. Every resource in it has passed validation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// Workload endpoints, on every node.
    pub workload_endpoints: BTreeMap<WorkloadEndpointId, WorkloadEndpoint>,
    /// Host endpoints, by name.
    pub host_endpoints: BTreeMap<String, HostEndpoint>,
    /// Policies, by namespace and name.
    pub policies: BTreeMap<PolicyKey, Policy>,
    /// Profiles, by name.
    pub profiles: BTreeMap<String, Profile>,
    /// IP pools, by name.
    pub ip_pools: BTreeMap<String, IpPool>,
    /// Address blocks by block: which node each belongs to.
    pub block_affinities: BTreeMap<ipnet::IpNet, BlockAffinity>,
    /// BGP configurations, by name.
    pub bgp_configurations: BTreeMap<String, BgpConfiguration>,
    /// BGP peers, by name.
    pub bgp_peers: BTreeMap<String, BgpPeer>,
    /// Nodes, by name.
    pub nodes: BTreeMap<String, Node>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a model from resources, validating each; the first invalid one is returned as
    /// the error.
    pub fn from_resources<I: IntoIterator<Item = Resource>>(
        resources: I,
    ) -> Result<Self, ValidationError> {
        let mut model = Model::new();
        for r in resources {
            model.apply(Update::Upsert(r))?;
        }
        Ok(model)
    }

    /// Applies one update. An invalid resource is rejected with the reason and the model is
    /// left unchanged.
    pub fn apply(&mut self, update: Update) -> Result<(), ValidationError> {
        match update {
            Update::Upsert(resource) => {
                resource.validate()?;
                self.insert(resource);
            }
            Update::Remove(key) => self.remove(&key),
        }
        Ok(())
    }

    fn insert(&mut self, resource: Resource) {
        match resource {
            Resource::WorkloadEndpoint(r) => {
                self.workload_endpoints.insert(r.id.clone(), r);
            }
            Resource::HostEndpoint(r) => {
                self.host_endpoints.insert(r.name.clone(), r);
            }
            Resource::Policy(r) => {
                self.policies
                    .insert((r.namespace.clone(), r.name.clone()), r);
            }
            Resource::Profile(r) => {
                self.profiles.insert(r.name.clone(), r);
            }
            Resource::IpPool(r) => {
                self.ip_pools.insert(r.name.clone(), r);
            }
            Resource::BlockAffinity(r) => {
                self.block_affinities.insert(r.cidr, r);
            }
            Resource::BgpConfiguration(r) => {
                self.bgp_configurations.insert(r.name.clone(), r);
            }
            Resource::BgpPeer(r) => {
                self.bgp_peers.insert(r.name.clone(), r);
            }
            Resource::Node(r) => {
                self.nodes.insert(r.name.clone(), r);
            }
        }
    }

    fn remove(&mut self, key: &ResourceKey) {
        match key {
            ResourceKey::WorkloadEndpoint(id) => {
                self.workload_endpoints.remove(id);
            }
            ResourceKey::HostEndpoint(n) => {
                self.host_endpoints.remove(n);
            }
            ResourceKey::Policy { namespace, name } => {
                self.policies.remove(&(namespace.clone(), name.clone()));
            }
            ResourceKey::Profile(n) => {
                self.profiles.remove(n);
            }
            ResourceKey::IpPool(n) => {
                self.ip_pools.remove(n);
            }
            ResourceKey::BlockAffinity(cidr) => {
                self.block_affinities.remove(cidr);
            }
            ResourceKey::BgpConfiguration(n) => {
                self.bgp_configurations.remove(n);
            }
            ResourceKey::BgpPeer(n) => {
                self.bgp_peers.remove(n);
            }
            ResourceKey::Node(n) => {
                self.nodes.remove(n);
            }
        }
    }
}
