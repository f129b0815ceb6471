//! Who a compiled chain or rule belongs to, as [`super::ChainNames`] names it: a policy, a
//! profile, an endpoint, a shared list, a base chain; and one rule of it.

use std::fmt;

use serde::Serialize;

use super::host_chains::HostPath;
use crate::model::{PolicyType, WorkloadEndpointId, DEFAULT_TIER};

/// What a compiled chain was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ChainOwner {
    /// A fixed chain of the layout (`forward`, `eg-allowed`).
    Base {
        /// The chain's name.
        chain: String,
    },
    /// One direction of a policy.
    #[serde(rename_all = "camelCase")]
    Policy {
        /// The policy's tier.
        tier: String,
        /// Its namespace; `None` for a global policy.
        namespace: Option<String>,
        /// Its name.
        name: String,
        /// The direction of the rules the chain holds.
        direction: PolicyType,
    },
    /// One direction of a profile.
    Profile {
        /// The profile's name.
        name: String,
        /// The direction of the rules the chain holds.
        direction: PolicyType,
    },
    /// One direction of a local workload endpoint.
    Endpoint {
        /// The endpoint (the first of those claiming the interface).
        endpoint: WorkloadEndpointId,
        /// Its interface.
        interface: String,
        /// Traffic arriving at (ingress) or leaving (egress) it.
        direction: PolicyType,
    },
    /// One host endpoint on one of the paths its policy applies to (`hep-*`).
    HostEndpoint {
        /// The host endpoint's name.
        endpoint: String,
        /// Its interface (`*`: all of the host's).
        interface: String,
        /// The path.
        path: HostPath,
    },
    /// The policies of one tier and direction shared by endpoints with the same ones
    /// (`pl-*`), or of one host endpoint's path (`hep-t-*`).
    PolicyList {
        /// Their tier (`?` when no member chain is known).
        tier: String,
        /// The policies (`namespace/name` or `name`), in order; `?` for a chain not known.
        policies: Vec<String>,
        /// Their direction.
        direction: PolicyType,
    },
    /// The profiles of one direction shared by endpoints with the same ones (`prl-*`).
    ProfileList {
        /// The profiles, in order; `?` for a chain not known.
        profiles: Vec<String>,
        /// Their direction.
        direction: PolicyType,
    },
}

impl ChainOwner {
    /// The kind of owner: `base`, `policy`, `profile`, `endpoint` or `list`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainOwner::Base { .. } => "base",
            ChainOwner::Policy { .. } => "policy",
            ChainOwner::Profile { .. } => "profile",
            ChainOwner::Endpoint { .. } | ChainOwner::HostEndpoint { .. } => "endpoint",
            ChainOwner::PolicyList { .. } | ChainOwner::ProfileList { .. } => "list",
        }
    }

    /// The owner's name as the user wrote it: `namespace/name` (or `name`) of a policy, the
    /// profile's name, the endpoint's id, the list's members joined by `, `, a base
    /// chain's name.
    pub fn name(&self) -> String {
        match self {
            ChainOwner::Base { chain } => chain.clone(),
            ChainOwner::Policy {
                namespace, name, ..
            } => match namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.clone(),
            },
            ChainOwner::Profile { name, .. } => name.clone(),
            ChainOwner::Endpoint { endpoint, .. } => endpoint.to_string(),
            ChainOwner::HostEndpoint { endpoint, .. } => endpoint.clone(),
            ChainOwner::PolicyList { policies: l, .. }
            | ChainOwner::ProfileList { profiles: l, .. } => l.join(", "),
        }
    }

    /// The tier of a policy or policy-list chain.
    pub fn tier(&self) -> Option<&str> {
        match self {
            ChainOwner::Policy { tier, .. } | ChainOwner::PolicyList { tier, .. } => Some(tier),
            _ => None,
        }
    }

    /// The direction of the chain, for all but base chains.
    pub fn direction(&self) -> Option<PolicyType> {
        match self {
            ChainOwner::Base { .. } => None,
            ChainOwner::Policy { direction, .. }
            | ChainOwner::Profile { direction, .. }
            | ChainOwner::Endpoint { direction, .. }
            | ChainOwner::PolicyList { direction, .. }
            | ChainOwner::ProfileList { direction, .. } => Some(*direction),
            ChainOwner::HostEndpoint { path, .. } => Some(path.direction()),
        }
    }
}

/// `ingress` or `egress`.
pub(crate) fn direction_word(dir: PolicyType) -> &'static str {
    match dir {
        PolicyType::Ingress => "ingress",
        PolicyType::Egress => "egress",
    }
}

impl fmt::Display for ChainOwner {
    /// `policy shop/allow-web ingress`, `profile kns.shop egress`, `endpoint
    /// k8s/pod-a/eth0 (cali-a) ingress`, `ingress policies [a, shop/b]`, `egress profiles
    /// [kns.shop]`, `chain forward`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainOwner::Base { chain } => write!(f, "chain {chain}"),
            ChainOwner::Policy {
                direction, tier, ..
            } => {
                let dir = direction_word(*direction);
                if tier == DEFAULT_TIER {
                    write!(f, "policy {} {dir}", self.name())
                } else {
                    write!(f, "policy {} (tier {tier}) {dir}", self.name())
                }
            }
            ChainOwner::Profile { name, direction } => {
                write!(f, "profile {name} {}", direction_word(*direction))
            }
            ChainOwner::Endpoint {
                endpoint,
                interface,
                direction,
            } => write!(
                f,
                "endpoint {endpoint} ({interface}) {}",
                direction_word(*direction)
            ),
            ChainOwner::HostEndpoint {
                endpoint,
                interface,
                path,
            } => write!(
                f,
                "host endpoint {endpoint} ({interface}) {}",
                path.describe()
            ),
            ChainOwner::PolicyList {
                direction, tier, ..
            } => {
                write!(
                    f,
                    "tier {tier} {} policies [{}]",
                    direction_word(*direction),
                    self.name()
                )
            }
            ChainOwner::ProfileList { direction, .. } => {
                write!(
                    f,
                    "{} profiles [{}]",
                    direction_word(*direction),
                    self.name()
                )
            }
        }
    }
}

/// One IR rule, named: its chain's owner and, in a policy or profile chain, the user's rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRef {
    /// Whose chain the rule is in.
    pub owner: ChainOwner,
    /// In a policy or profile chain: the index of the user's rule in that direction's list
    /// (0-based, as in `spec.ingress[2]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// The user's rule's own name ([`crate::model::RULE_NAME_ANNOTATION`]), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// In the other chains: what the rule is for (`no policy allowed: default deny`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

impl fmt::Display for RuleRef {
    /// `policy shop/allow-web ingress rule 2 ("web")`, `endpoint k8s/a/eth0 (cali-a)
    /// ingress: no policy allowed: default deny`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.owner)?;
        if let Some(i) = self.rule {
            write!(f, " rule {i}")?;
        }
        if let Some(n) = &self.rule_name {
            write!(f, " ({n:?})")?;
        }
        if let Some(d) = self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}
