//! `projectcalico.org/v3` resources, as `calicoctl` users write them, ↔ calico-rs resources.
//!
//! [`parse_v3`] (module `read`) reads multi-document YAML (and `kind: List`) of
//! NetworkPolicy, GlobalNetworkPolicy (with their `tier`), Tier, NetworkSet, GlobalNetworkSet,
//! Profile, HostEndpoint, IPPool, BGPConfiguration, BGPPeer, BGPFilter, Node and
//! WorkloadEndpoint.
//! Unknown fields are rejected with their path; features calico-rs does not implement (HTTP
//! match, Services in rules, untracked policy, IP-in-IP
//! or VXLAN pools, ...) are rejected with a message saying so, never silently ignored.
//! A `HostEndpoint` without `interfaceName` governs the host's interfaces holding one of
//! its `expectedIPs`, as in Felix.
//!
//! [`to_v3`] (module `write`) is its inverse: one resource → the v3 object `calicoctl` (and
//! the datastore) would hold, with Calico's JSON field names, so that
//! `parse_v3(&serde_json::to_string(&to_v3(r)?.value)?) == [r]`. Resources the reader could
//! not give back (a [`crate::model::BlockAffinity`], a BGP peer's password or hold time, a
//! workload endpoint without a namespace) are refused with the reason.
//!
//! ```
//! use calico_core::integrations::calico_v3::parse_v3;
//!
//! let resources = parse_v3(r#"
//! apiVersion: projectcalico.org/v3
//! kind: NetworkPolicy
//! metadata: {name: allow-web, namespace: shop}
//! spec:
//!   selector: app == 'web'
//!   ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
//! "#).unwrap();
//! assert_eq!(resources.len(), 1);
//!
//! let err = parse_v3(r#"
//! apiVersion: projectcalico.org/v3
//! kind: NetworkPolicy
//! metadata: {name: l7}
//! spec:
//!   ingress: [{action: Allow, http: {methods: [GET]}}]
//! "#).unwrap_err();
//! assert!(err.to_string().contains("spec.ingress[0].http"), "{err}");
//! ```

mod bgp_filter;
#[cfg(test)]
mod bgp_tests;
mod duration;
mod network_set;
mod policy;
mod read;
mod tier;
mod write;

pub(crate) use read::translate_document;
pub use read::{parse_v3, API_VERSION};
pub use write::{to_v3, workload_endpoint_name, V3Object};
