//! Typed resources, using Calico v3 field names (camelCase) on the wire.
//!
//! Every resource has a `validate()` method returning a [`ValidationError`] that names the
//! resource, the field and the reason. Limits follow Calico's own, so an orchestrator gets the
//! same answers from us as from `calicoctl`.

mod bgp;
mod bgp_filter;
mod bgp_session;
mod endpoint;
mod error;
mod file;
mod network_set;
mod notes;
mod policy;
mod pool;
mod resource;
mod rule;
mod store;
mod tier;
mod validate;

pub use validate::{
    MAX_ICMP_TYPE, MAX_INTERFACE_NAME, MAX_LABEL_VALUE, MAX_NAME, MAX_NETS, MAX_PORTS,
    MAX_RULES_PER_DIRECTION,
};

pub use crate::dataplane::AsNumber;
pub use crate::labels::{
    Labels, LABEL_NAMESPACE, LABEL_ORCHESTRATOR, LABEL_SERVICE_ACCOUNT, NAMESPACE_LABEL_PREFIX,
    SERVICE_ACCOUNT_LABEL_PREFIX,
};
pub use bgp::{BgpConfiguration, BgpPeer, Node, NodeBgp, SourceAddress};
pub use bgp_filter::{
    communities_for, evaluate, interface_matches, resolve_community, BgpFilter, BgpFilterRule,
    Community, CommunityDef, CommunityRules, Direction, FilterAction, FilterSource, MatchOperator,
    PrefixAdvertisement, PrefixLength, RouteFacts,
};
pub use endpoint::{HostEndpoint, MacAddr, NamedPort, WorkloadEndpoint, WorkloadEndpointId};
pub use error::{clip, Reason, ResourceRef, ValidationError};
pub use file::{load_file, parse_resources, FileError};
pub use network_set::{parse_cidr_or_address, NetworkSet, NetworkSetKey};
pub use notes::HOST_ENDPOINT_NOT_ENFORCED;
pub use policy::{policy_order, Policy, PolicyType, Profile, StagedAction, STAGED_PREFIX};
pub use pool::{BlockAffinity, IpPool};
pub use resource::{Resource, ResourceKey, ResourceKind, Update};
pub use rule::{
    Action, EntityRule, IcmpMatch, IpVersion, PortSpec, Protocol, Rule, RuleMetadata,
    ServiceAccountMatch, RULE_NAME_ANNOTATION,
};
pub use store::{Applied, Model, PolicyKey};
pub use tier::{
    builtin_tier, tier_order, Tier, TierAction, ADMIN_NETWORK_POLICY_TIER, ADMIN_TIER_ORDER,
    BASELINE_ADMIN_NETWORK_POLICY_TIER, BASELINE_TIER_ORDER, DEFAULT_TIER, DEFAULT_TIER_ORDER,
    KUBE_ADMIN_TIER, KUBE_BASELINE_TIER, MAX_TIER_NAME,
};
