//! [`Model`]: the validated desired state, as the orchestrator last described it.

use std::collections::BTreeMap;

use super::bgp::{BgpConfiguration, BgpPeer, Node};
use super::bgp_filter::BgpFilter;
use super::endpoint::{HostEndpoint, WorkloadEndpoint, WorkloadEndpointId};
use super::error::ValidationError;
use super::network_set::{NetworkSet, NetworkSetKey};
use super::policy::{Policy, Profile};
use super::pool::{BlockAffinity, IpPool};
use super::resource::{Resource, ResourceKey, ResourceKind, Update};
use super::tier::{builtin_tier, Tier};

/// Key of a policy: namespace (`None` for a global policy) and name.
pub type PolicyKey = (Option<String>, String);

/// What one update did to a [`Model`] ([`Model::apply_valid`]): the key of the resource it
/// touched and the version it replaced or removed, so that a reader of the model (the rule
/// compiler) can tell what changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The resource the update was about.
    pub key: ResourceKey,
    /// Its previous version (`None`: it did not exist).
    pub old: Option<Resource>,
}

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
    /// Network sets (namespaced and global), by namespace and name.
    pub network_sets: BTreeMap<NetworkSetKey, NetworkSet>,
    /// BGP filters, by name.
    pub bgp_filters: BTreeMap<String, BgpFilter>,
    /// Tiers written down, by name (the built-in ones exist without: see [`Model::tier`]).
    pub tiers: BTreeMap<String, Tier>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a model from resources, validating each; the first invalid one is returned as
    /// the error. Tiers are taken first, so that a file may list a tier after its policies.
    pub fn from_resources<I: IntoIterator<Item = Resource>>(
        resources: I,
    ) -> Result<Self, ValidationError> {
        let mut model = Model::new();
        let (tiers, others): (Vec<Resource>, Vec<Resource>) = resources
            .into_iter()
            .partition(|r| matches!(r, Resource::Tier(_)));
        for r in tiers.into_iter().chain(others) {
            model.apply(Update::Upsert(r))?;
        }
        Ok(model)
    }

    /// Applies one update. An invalid resource is rejected with the reason and the model is
    /// left unchanged; so is, as Calico's API server refuses them, a policy naming a tier
    /// that does not exist (field `tier`) and the removal of a tier policies still name.
    pub fn apply(&mut self, update: Update) -> Result<(), ValidationError> {
        match update {
            Update::Upsert(resource) => {
                resource.validate()?;
                if let Resource::Policy(p) = &resource {
                    if self.tier(&p.tier).is_none() {
                        return Err(ValidationError {
                            resource: super::error::ResourceRef {
                                kind: ResourceKind::Policy,
                                name: crate::calc::effective::policy_name(p),
                            },
                            field: "tier".into(),
                            reason: super::error::Reason::Invalid(format!(
                                "tier {:?} does not exist (create the Tier first)",
                                p.tier
                            )),
                        });
                    }
                }
                self.insert(resource);
            }
            Update::Remove(key) => {
                if let ResourceKey::Tier(name) = &key {
                    self.check_tier_unused(name)?;
                }
                self.remove(&key);
            }
        }
        Ok(())
    }

    /// The tier `name`: as written down, else the built-in one of that name.
    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.tiers.get(name).cloned().or_else(|| builtin_tier(name))
    }

    /// Policies naming a tier that does not exist: held, applying nowhere until it does.
    pub fn held_policies(&self) -> impl Iterator<Item = &Policy> + '_ {
        self.policies
            .values()
            .filter(|p| !self.tiers.contains_key(&p.tier) && builtin_tier(&p.tier).is_none())
    }

    /// Refuses removing a written-down tier that policies still name (a built-in tier
    /// stays whatever happens: removing it restores Calico's settings).
    fn check_tier_unused(&self, name: &str) -> Result<(), ValidationError> {
        if builtin_tier(name).is_some() || !self.tiers.contains_key(name) {
            return Ok(());
        }
        let users: Vec<String> = self
            .policies
            .values()
            .filter(|p| p.tier == name)
            .map(crate::calc::effective::policy_name)
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(ValidationError {
            resource: super::error::ResourceRef {
                kind: ResourceKind::Tier,
                name: name.to_string(),
            },
            field: "name".into(),
            reason: super::error::Reason::Invalid(format!(
                "the tier still holds {} policies ({}); remove them first",
                users.len(),
                super::error::clip(&users.join(", "), 200)
            )),
        })
    }

    /// Applies one update whose resource has already passed [`Resource::validate`] (the
    /// agent validates on entry), without validating it again; returns what it replaced.
    pub fn apply_valid(&mut self, update: Update) -> Applied {
        match update {
            Update::Upsert(resource) => {
                let key = resource.key();
                let old = self.insert(resource);
                Applied { key, old }
            }
            Update::Remove(key) => {
                let old = self.remove(&key);
                Applied { key, old }
            }
        }
    }

    /// Stores a resource; returns the version it replaced.
    fn insert(&mut self, resource: Resource) -> Option<Resource> {
        match resource {
            Resource::WorkloadEndpoint(r) => self
                .workload_endpoints
                .insert(r.id.clone(), r)
                .map(Resource::WorkloadEndpoint),
            Resource::HostEndpoint(r) => self
                .host_endpoints
                .insert(r.name.clone(), r)
                .map(Resource::HostEndpoint),
            Resource::Policy(r) => {
                if self.tier(&r.tier).is_none() {
                    super::notes::policy_held(&r);
                }
                self.policies
                    .insert((r.namespace.clone(), r.name.clone()), r)
                    .map(Resource::Policy)
            }
            Resource::Profile(r) => self
                .profiles
                .insert(r.name.clone(), r)
                .map(Resource::Profile),
            Resource::IpPool(r) => self
                .ip_pools
                .insert(r.name.clone(), r)
                .map(Resource::IpPool),
            Resource::BlockAffinity(r) => self
                .block_affinities
                .insert(r.cidr, r)
                .map(Resource::BlockAffinity),
            Resource::BgpConfiguration(r) => self
                .bgp_configurations
                .insert(r.name.clone(), r)
                .map(Resource::BgpConfiguration),
            Resource::BgpPeer(r) => self
                .bgp_peers
                .insert(r.name.clone(), r)
                .map(Resource::BgpPeer),
            Resource::Node(r) => self.nodes.insert(r.name.clone(), r).map(Resource::Node),
            Resource::NetworkSet(r) => self
                .network_sets
                .insert((r.namespace.clone(), r.name.clone()), r)
                .map(Resource::NetworkSet),
            Resource::BgpFilter(r) => self
                .bgp_filters
                .insert(r.name.clone(), r)
                .map(Resource::BgpFilter),
            Resource::Tier(r) => self.tiers.insert(r.name.clone(), r).map(Resource::Tier),
        }
    }

    /// Removes a resource; returns it.
    fn remove(&mut self, key: &ResourceKey) -> Option<Resource> {
        match key {
            ResourceKey::WorkloadEndpoint(id) => self
                .workload_endpoints
                .remove(id)
                .map(Resource::WorkloadEndpoint),
            ResourceKey::HostEndpoint(n) => {
                self.host_endpoints.remove(n).map(Resource::HostEndpoint)
            }
            ResourceKey::Policy { namespace, name } => self
                .policies
                .remove(&(namespace.clone(), name.clone()))
                .map(Resource::Policy),
            ResourceKey::Profile(n) => self.profiles.remove(n).map(Resource::Profile),
            ResourceKey::IpPool(n) => self.ip_pools.remove(n).map(Resource::IpPool),
            ResourceKey::BlockAffinity(cidr) => self
                .block_affinities
                .remove(cidr)
                .map(Resource::BlockAffinity),
            ResourceKey::BgpConfiguration(n) => self
                .bgp_configurations
                .remove(n)
                .map(Resource::BgpConfiguration),
            ResourceKey::BgpPeer(n) => self.bgp_peers.remove(n).map(Resource::BgpPeer),
            ResourceKey::Node(n) => self.nodes.remove(n).map(Resource::Node),
            ResourceKey::NetworkSet { namespace, name } => self
                .network_sets
                .remove(&(namespace.clone(), name.clone()))
                .map(Resource::NetworkSet),
            ResourceKey::BgpFilter(n) => self.bgp_filters.remove(n).map(Resource::BgpFilter),
            ResourceKey::Tier(n) => self.tiers.remove(n).map(Resource::Tier),
        }
    }
}
