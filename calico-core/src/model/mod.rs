//! Typed resources, using Calico v3 field names (camelCase) on the wire.
//!
//! Every resource has a `validate()` method returning a [`ValidationError`] that names the
//! resource, the field and the reason. Limits follow Calico's own, so an orchestrator gets the
//! same answers from us as from `calicoctl`.

mod bgp;
mod endpoint;
mod error;
mod labels;
mod policy;
mod pool;
mod resource;
mod rule;
mod store;
mod validate;

pub use bgp::{AsNumber, BgpConfiguration, BgpPeer, Node, NodeBgp};
pub use endpoint::{HostEndpoint, MacAddr, NamedPort, WorkloadEndpoint, WorkloadEndpointId};
pub use error::{Reason, ResourceRef, ValidationError};
pub use labels::{Labels, LABEL_NAMESPACE, LABEL_ORCHESTRATOR};
pub use policy::{Policy, PolicyType, Profile};
pub use pool::IpPool;
pub use resource::{Resource, ResourceKey, ResourceKind, Update};
pub use rule::{Action, EntityRule, IcmpMatch, IpVersion, PortSpec, Protocol, Rule};
pub use store::{Model, PolicyKey};
