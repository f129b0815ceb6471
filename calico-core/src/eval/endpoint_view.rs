//! A local endpoint as the evaluator sees it.

use std::net::IpAddr;

use super::EndpointRef;
use crate::calc::effective;
use crate::model::{HostEndpoint, Labels, Model, Policy, StagedAction, WorkloadEndpoint};

/// A local endpoint: effective labels, addresses, profiles, namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    /// Effective labels (own over profiles', plus implicit labels).
    pub labels: Labels,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its profiles, in order.
    pub profiles: Vec<String>,
    /// Namespace of a namespaced workload endpoint.
    pub namespace: Option<String>,
    /// Whether it is a workload endpoint (namespaced policies apply only to those).
    pub is_workload: bool,
    /// Networks it may also send from (a workload's `allowSpoofedSourcePrefixes`).
    pub spoofable: Vec<ipnet::IpNet>,
}

impl EndpointView {
    /// The view of a workload endpoint.
    pub fn workload(model: &Model, ep: &WorkloadEndpoint) -> Self {
        EndpointView {
            labels: effective::workload_labels(model, ep),
            addresses: ep.ip_networks.iter().map(|n| n.addr()).collect(),
            profiles: ep.profiles.clone(),
            namespace: ep.namespace.clone(),
            is_workload: true,
            spoofable: ep.allow_spoofed_source_prefixes.clone(),
        }
    }

    /// The view of a host endpoint.
    pub fn host(model: &Model, ep: &HostEndpoint) -> Self {
        EndpointView {
            labels: effective::host_labels(model, ep),
            addresses: ep.expected_ips.clone(),
            profiles: ep.profiles.clone(),
            namespace: None,
            is_workload: false,
            spoofable: Vec::new(),
        }
    }

    /// Looks an endpoint up in the model.
    pub fn resolve(model: &Model, r: &EndpointRef) -> Option<Self> {
        match r {
            EndpointRef::Workload(id) => model
                .workload_endpoints
                .get(id)
                .map(|ep| Self::workload(model, ep)),
            EndpointRef::Host(name) => model
                .host_endpoints
                .get(name)
                .map(|ep| Self::host(model, ep)),
        }
    }

    /// Whether the packet's address on this endpoint's side must be one of its addresses
    /// (a host endpoint without expected IPs covers whatever its interface carries).
    pub fn checks_addresses(&self) -> bool {
        self.is_workload || !self.addresses.is_empty()
    }

    /// Whether `policy` applies to this endpoint (ignoring direction). Pre-DNAT and
    /// untracked policy apply to host endpoints only; a staged deletion never applies (it
    /// has no rules).
    pub fn is_selected_by(&self, policy: &Policy) -> bool {
        if policy.staged_action == Some(StagedAction::Delete) {
            return false;
        }
        let in_scope = match &policy.namespace {
            Some(ns) => self.is_workload && self.namespace.as_deref() == Some(ns.as_str()),
            None => !(self.is_workload && (policy.pre_dnat || policy.do_not_track)),
        };
        in_scope && policy.selector.matches(&self.labels)
    }
}
