//! The Kubernetes side of the datastore: pods, namespaces and policies written through
//! a [`ResourceWriter`] as they change, as Calico's Kubernetes controllers and CNI plugin do
//! for an etcd datastore.
//!
//! A pod becomes its workload endpoint (a `hostNetwork` pod none, and one written before is
//! removed); a namespace its `kns.<name>` profile; a service account its
//! `ksa.<namespace>.<name>` profile; a NetworkPolicy its `knp.default.<name>` policy; an
//! AdminNetworkPolicy its `kanp.adminnetworkpolicy.<name>` global policy and the
//! BaselineAdminNetworkPolicy `kbanp.baselineadminnetworkpolicy.default`. Which endpoint
//! key each pod was written under is remembered in memory, so a pod recreated on another
//! node has its old endpoint removed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::kubernetes::{
    cluster_policy_name, namespace_profile, pod_endpoint, service_account_profile,
    translate_admin_policy, translate_baseline_policy, translate_cluster_policy, translate_policy,
};
use super::kubernetes::{
    AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, Namespace, NetworkPolicy,
    Pod, ServiceAccount,
};
use super::{DriverError, TranslateError};
use crate::datastore::ResourceWriter;
use crate::model::{Policy, Profile, Resource};
use crate::selector::Selector;

/// Writes Kubernetes objects' translations; see the module docs.
pub struct KubernetesDriver {
    writer: Arc<dyn ResourceWriter>,
    /// `namespace/pod` → the endpoint key it was last written under.
    written: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for KubernetesDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesDriver").finish_non_exhaustive()
    }
}

impl KubernetesDriver {
    /// A driver writing through `writer`.
    pub fn new(writer: Arc<dyn ResourceWriter>) -> Self {
        KubernetesDriver {
            writer,
            written: Mutex::new(BTreeMap::new()),
        }
    }

    fn written(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the pod's endpoint; removes the one written before if the pod's endpoint key
    /// changed or it is no endpoint now (`hostNetwork`). Returns whether it is an endpoint.
    /// A pod not scheduled or without an address yet is an error naming the field.
    pub async fn pod_updated(&self, pod: &Pod) -> Result<bool, DriverError> {
        let id = pod_id(
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            &pod.metadata.name,
        );
        let endpoint = pod_endpoint(pod)?.map(Resource::WorkloadEndpoint);
        let key = match &endpoint {
            Some(r) => Some(self.writer.key_of(r)?),
            None => None,
        };
        let before = self.written().get(&id).cloned();
        if let (Some(r), Some(k)) = (&endpoint, &key) {
            self.writer.upsert(r).await?;
            self.written().insert(id.clone(), k.clone());
        }
        if let Some(old) = before.filter(|old| Some(old) != key.as_ref()) {
            self.writer.remove(&old).await?;
            if key.is_none() {
                self.written().remove(&id);
            }
        }
        Ok(endpoint.is_some())
    }

    /// Removes the pod's endpoint; returns whether there was one this driver wrote.
    pub async fn pod_deleted(&self, namespace: &str, name: &str) -> Result<bool, DriverError> {
        let id = pod_id(namespace, name);
        let Some(key) = self.written().get(&id).cloned() else {
            return Ok(false);
        };
        let existed = self.writer.remove(&key).await?.is_some();
        self.written().remove(&id);
        Ok(existed)
    }

    /// Writes the namespace's profile.
    pub async fn namespace_updated(&self, ns: &Namespace) -> Result<(), DriverError> {
        self.writer
            .upsert(&Resource::Profile(namespace_profile(ns)))
            .await?;
        Ok(())
    }

    /// Removes the namespace's profile; returns whether it existed.
    pub async fn namespace_deleted(&self, name: &str) -> Result<bool, DriverError> {
        self.remove_profile(format!("kns.{name}")).await
    }

    /// Writes the service account's profile.
    pub async fn service_account_updated(&self, sa: &ServiceAccount) -> Result<(), DriverError> {
        self.writer
            .upsert(&Resource::Profile(service_account_profile(sa)))
            .await?;
        Ok(())
    }

    /// Removes the service account's profile; returns whether it existed.
    pub async fn service_account_deleted(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<bool, DriverError> {
        self.remove_profile(format!("ksa.{namespace}.{name}")).await
    }

    async fn remove_profile(&self, name: String) -> Result<bool, DriverError> {
        let stub = Resource::Profile(Profile {
            name,
            ..Profile::default()
        });
        let key = self.writer.key_of(&stub)?;
        Ok(self.writer.remove(&key).await?.is_some())
    }

    /// Writes the NetworkPolicy's translation.
    pub async fn network_policy_updated(&self, np: &NetworkPolicy) -> Result<(), DriverError> {
        self.writer
            .upsert(&Resource::Policy(translate_policy(np)?))
            .await?;
        Ok(())
    }

    /// Removes the NetworkPolicy's translation; returns whether it existed.
    pub async fn network_policy_deleted(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<bool, DriverError> {
        let name = format!("knp.default.{name}");
        let tier = crate::model::DEFAULT_TIER;
        self.remove_policy(name, Some(namespace), tier).await
    }

    /// Writes the AdminNetworkPolicy's translation.
    pub async fn admin_network_policy_updated(
        &self,
        anp: &AdminNetworkPolicy,
    ) -> Result<(), DriverError> {
        let policy = translate_admin_policy(anp)?;
        self.writer.upsert(&Resource::Policy(policy)).await?;
        Ok(())
    }

    /// Removes the AdminNetworkPolicy's translation; returns whether it existed.
    pub async fn admin_network_policy_deleted(&self, name: &str) -> Result<bool, DriverError> {
        let name = format!("kanp.adminnetworkpolicy.{name}");
        let tier = crate::model::ADMIN_NETWORK_POLICY_TIER;
        self.remove_policy(name, None, tier).await
    }

    /// Writes the BaselineAdminNetworkPolicy's translation.
    pub async fn baseline_admin_network_policy_updated(
        &self,
        banp: &BaselineAdminNetworkPolicy,
    ) -> Result<(), DriverError> {
        let policy = translate_baseline_policy(banp)?;
        self.writer.upsert(&Resource::Policy(policy)).await?;
        Ok(())
    }

    /// Removes the BaselineAdminNetworkPolicy's translation; returns whether it existed.
    pub async fn baseline_admin_network_policy_deleted(&self) -> Result<bool, DriverError> {
        let name = "kbanp.baselineadminnetworkpolicy.default".to_string();
        let tier = crate::model::BASELINE_ADMIN_NETWORK_POLICY_TIER;
        self.remove_policy(name, None, tier).await
    }

    /// Writes the ClusterNetworkPolicy's translation.
    pub async fn cluster_network_policy_updated(
        &self,
        cnp: &ClusterNetworkPolicy,
    ) -> Result<(), DriverError> {
        let policy = translate_cluster_policy(cnp)?;
        self.writer.upsert(&Resource::Policy(policy)).await?;
        Ok(())
    }

    /// Removes the translation of the ClusterNetworkPolicy `name` of `tier` (`Admin` or
    /// `Baseline`, as its last version said); returns whether it existed.
    pub async fn cluster_network_policy_deleted(
        &self,
        tier: &str,
        name: &str,
    ) -> Result<bool, DriverError> {
        let obj = format!("ClusterNetworkPolicy {name}");
        let Some(policy) = cluster_policy_name(tier, name) else {
            let why = format!("{tier:?} is not Admin or Baseline");
            return Err(TranslateError::new(obj, "spec.tier", why).into());
        };
        let calico_tier = match tier {
            "Admin" => crate::model::KUBE_ADMIN_TIER,
            _ => crate::model::KUBE_BASELINE_TIER,
        };
        self.remove_policy(policy, None, calico_tier).await
    }

    async fn remove_policy(
        &self,
        name: String,
        namespace: Option<&str>,
        tier: &str,
    ) -> Result<bool, DriverError> {
        let stub = Resource::Policy(Policy {
            name,
            namespace: namespace.map(str::to_string),
            tier: tier.into(),
            order: None,
            selector: Selector::all(),
            types: vec![],
            ingress: vec![],
            egress: vec![],
            apply_on_forward: false,
            pre_dnat: false,
            do_not_track: false,
            staged_action: None,
        });
        let key = self.writer.key_of(&stub)?;
        Ok(self.writer.remove(&key).await?.is_some())
    }
}

fn pod_id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
mod tests;
