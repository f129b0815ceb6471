//! The `WorkloadEndpoint` a container gets: its identity (Kubernetes pod or plain
//! container), labels and profiles, and its write to etcd.

use std::net::IpAddr;

use calico_core::datastore::{DatastoreError, ResourceWriter};
use calico_core::model::{MacAddr, Resource, WorkloadEndpoint, WorkloadEndpointId};
use calico_etcd::EtcdWriter;
use ipnet::IpNet;

use crate::spec::{CniError, Code, NetConf, RuntimeEnv};

/// The label Calico puts the endpoint's namespace in.
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// The label Calico puts the endpoint's orchestrator in.
pub const ORCHESTRATOR_LABEL: &str = "projectcalico.org/orchestrator";

/// Who a container is, as the datastore names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `k8s` for a Kubernetes pod (`K8S_POD_NAMESPACE` and `K8S_POD_NAME` in `CNI_ARGS`),
    /// `cni` otherwise (Calico's orchestrator for plain CNI containers).
    pub orchestrator: String,
    /// The pod's name, or the container id.
    pub workload: String,
    /// The pod's namespace, or the configuration's `namespace` (default `default`).
    pub namespace: String,
    /// The interface (`CNI_IFNAME`).
    pub endpoint: String,
    /// `(namespace, pod)` for a Kubernetes pod.
    pub pod: Option<(String, String)>,
}

impl Identity {
    /// The identity of the container `env` describes on network `conf`.
    pub fn of(conf: &NetConf, env: &RuntimeEnv) -> Identity {
        match (env.arg("K8S_POD_NAMESPACE"), env.arg("K8S_POD_NAME")) {
            (Some(ns), Some(pod)) => Identity {
                orchestrator: "k8s".into(),
                workload: pod.to_string(),
                namespace: ns.to_string(),
                endpoint: env.ifname.clone(),
                pod: Some((ns.to_string(), pod.to_string())),
            },
            _ => Identity {
                orchestrator: "cni".into(),
                workload: env.container_id.clone(),
                namespace: conf.namespace.clone().unwrap_or_else(|| "default".into()),
                endpoint: env.ifname.clone(),
                pod: None,
            },
        }
    }

    /// The host end's name (see [`crate::net::host_veth_name`]).
    pub fn host_ifname(&self, container_id: &str) -> String {
        crate::net::host_veth_name(
            container_id,
            self.pod.as_ref().map(|(n, p)| (n.as_str(), p.as_str())),
        )
    }
}

/// The endpoint for `id` on `node`: the configuration's labels, then the runtime's
/// (`args.cni.labels`), then Calico's namespace and orchestrator labels; the configuration's
/// profiles, or Calico's default (`kns.<namespace>` for a pod, the network's name otherwise).
pub fn build(
    conf: &NetConf,
    id: &Identity,
    node: &str,
    host_ifname: &str,
    mac: Option<MacAddr>,
    addrs: &[IpAddr],
) -> WorkloadEndpoint {
    let mut labels = conf.labels.clone();
    labels.extend(conf.arg_labels().map(|l| (l.key.clone(), l.value.clone())));
    labels.insert(NAMESPACE_LABEL.into(), id.namespace.clone());
    labels.insert(ORCHESTRATOR_LABEL.into(), id.orchestrator.clone());
    let profiles = conf.profiles.clone().unwrap_or_else(|| match id.pod {
        Some(_) => vec![format!("kns.{}", id.namespace)],
        None => vec![conf.name.clone()],
    });
    WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: id.orchestrator.clone(),
            workload: id.workload.clone(),
            endpoint: id.endpoint.clone(),
        },
        namespace: Some(id.namespace.clone()),
        node: node.to_string(),
        interface_name: host_ifname.to_string(),
        mac,
        ip_networks: addrs.iter().map(|a| IpNet::from(*a)).collect(),
        labels,
        profiles,
        ports: Vec::new(),
        allow_spoofed_source_prefixes: vec![],
        ip_nats: vec![],
    }
}

/// A datastore failure as a CNI error: unreachable is [`Code::TryAgainLater`].
pub fn datastore_error(what: &str, e: DatastoreError) -> CniError {
    let code = match e {
        DatastoreError::Unavailable { .. } | DatastoreError::Conflict { .. } => Code::TryAgainLater,
        _ => Code::Datastore,
    };
    CniError::new(code, format!("{what}: {e}"), "")
}

/// Creates or replaces the endpoint.
pub async fn write(writer: &EtcdWriter, wep: &WorkloadEndpoint) -> Result<(), CniError> {
    let resource = Resource::WorkloadEndpoint(wep.clone());
    writer
        .upsert(&resource)
        .await
        .map(|_| ())
        .map_err(|e| datastore_error(&format!("write WorkloadEndpoint {}", wep.id), e))
}

/// The stored endpoint with `wep`'s key, if any.
pub async fn read(
    writer: &EtcdWriter,
    wep: &WorkloadEndpoint,
) -> Result<Option<WorkloadEndpoint>, CniError> {
    let key = key_of(writer, wep)?;
    match writer.get(&key).await {
        Ok(Some(stored)) => match stored.resource {
            Resource::WorkloadEndpoint(w) => Ok(Some(w)),
            _ => Ok(None),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(datastore_error(&format!("read {key}"), e)),
    }
}

/// Deletes the endpoint with `wep`'s key; whether it was there.
pub async fn remove(writer: &EtcdWriter, wep: &WorkloadEndpoint) -> Result<bool, CniError> {
    let key = key_of(writer, wep)?;
    match writer.delete(&key, None).await {
        Ok(_) => Ok(true),
        Err(DatastoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(datastore_error(&format!("delete {key}"), e)),
    }
}

fn key_of(writer: &EtcdWriter, wep: &WorkloadEndpoint) -> Result<String, CniError> {
    writer
        .key_of(&Resource::WorkloadEndpoint(wep.clone()))
        .map_err(|e| {
            CniError::new(
                Code::InvalidConfig,
                format!("WorkloadEndpoint {}: {e}", wep.id),
                "",
            )
        })
}
