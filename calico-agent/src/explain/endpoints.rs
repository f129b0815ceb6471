//! The workload endpoints on this host, with their state and the policies that apply.

use calico_core::agent::{AgentStatus, EndpointState};
use calico_core::calc::effective;
use calico_core::eval::applicable_policies;
use calico_core::model::Model;

use super::types::{EndpointInfo, EndpointList};

/// A state in words, and its error.
pub fn state_words(state: Option<&EndpointState>) -> (String, Option<String>) {
    let (s, e) = match state {
        Some(EndpointState::Pending) | None => ("pending", None),
        Some(EndpointState::WaitingForInterface) => ("waiting for interface", None),
        Some(EndpointState::Programmed) => ("programmed", None),
        Some(EndpointState::Error(e)) => ("error", Some(e.clone())),
        Some(_) => ("unknown", None),
    };
    (s.to_string(), e)
}

/// The endpoints of `node` in `model`, with their state from `status`.
pub fn endpoint_list(model: &Model, node: &str, status: &AgentStatus) -> EndpointList {
    let endpoints = model
        .workload_endpoints
        .values()
        .filter(|ep| ep.node == node)
        .map(|ep| {
            let (state, error) = state_words(status.endpoints.get(&ep.id).map(|s| &s.state));
            let applicable = applicable_policies(model, ep);
            EndpointInfo {
                name: ep.id.to_string(),
                workload: ep.id.workload.clone(),
                namespace: ep.namespace.clone(),
                interface: ep.interface_name.clone(),
                addresses: ep
                    .ip_networks
                    .iter()
                    .map(|n| n.addr().to_string())
                    .collect(),
                labels: effective::workload_labels(model, ep),
                profiles: ep.profiles.clone(),
                state,
                error,
                ingress_policies: applicable.ingress,
                egress_policies: applicable.egress,
            }
        })
        .collect();
    EndpointList {
        node: node.to_string(),
        in_sync: status.in_sync,
        endpoints,
    }
}
