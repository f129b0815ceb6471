//! Policies and profiles: ordered lists of rules applied to endpoints.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::rule::Rule;
use crate::labels::Labels;
use crate::selector::Selector;

/// The direction a policy governs, relative to the endpoint it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    /// Traffic arriving at the endpoint.
    Ingress,
    /// Traffic leaving the endpoint.
    Egress,
}

/// A network policy: applies its rules to the endpoints its selector matches.
///
/// A policy with a `namespace` is a Calico `NetworkPolicy`: it applies only to workload
/// endpoints of that namespace, and the selectors in its rules see only that namespace unless
/// a `namespaceSelector` says otherwise. Without a namespace it is a `GlobalNetworkPolicy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Name of the policy, unique within its namespace (or globally).
    pub name: String,
    /// Namespace of a namespaced policy; `None` for a global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The tier the policy is in ([`super::Tier`]; default `default`).
    #[serde(default = "default_tier", skip_serializing_if = "is_default_tier")]
    pub tier: String,
    /// Policies apply in increasing order; unset means after all ordered ones; ties are broken
    /// by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoints the policy applies to.
    #[serde(default = "Selector::all")]
    pub selector: Selector,
    /// Directions the policy governs. When empty it is inferred: `Ingress`, plus `Egress` if
    /// there are egress rules (as Calico does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    /// Rules for traffic arriving at the endpoint.
    #[serde(default)]
    pub ingress: Vec<Rule>,
    /// Rules for traffic leaving the endpoint.
    #[serde(default)]
    pub egress: Vec<Rule>,
    /// Host endpoints: the policy also applies to traffic the host forwards through the
    /// endpoint's interface (to or from a local workload, or between host interfaces), not
    /// only to the host's own traffic. Workload endpoints ignore it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub apply_on_forward: bool,
    /// Host endpoints only: the policy judges traffic arriving through a host endpoint
    /// before any DNAT, whatever its destination (ingress only; needs `applyOnForward`).
    /// Allowing skips the host's normal policy for traffic to the host itself; a packet no
    /// rule decides goes on to normal policy (no end-of-tier drop). Never applies to
    /// workload endpoints.
    #[serde(default, skip_serializing_if = "is_false", rename = "preDNAT")]
    pub pre_dnat: bool,
    /// Host endpoints only: untracked policy, judged before connection tracking (needs
    /// `applyOnForward`). An allowed packet is not tracked (its replies must be allowed by
    /// untracked policy too) and skips pre-DNAT and normal policy; a packet no rule
    /// decides goes on to them. Ingress rules judge packets arriving through the
    /// endpoint, egress rules packets the host sends through it. Never applies to workload
    /// endpoints.
    #[serde(default, skip_serializing_if = "is_false")]
    pub do_not_track: bool,
    /// Set for a staged policy (Calico's `StagedNetworkPolicy`,
    /// `StagedGlobalNetworkPolicy`, `StagedKubernetesNetworkPolicy`): evaluated beside the
    /// enforced policies of workload endpoints, never enforced; what it would deny is
    /// reported ([`crate::eval::StagedDenial`], flow logs). Its `name` starts with
    /// [`STAGED_PREFIX`] (as Felix keys staged policies), so it never replaces the
    /// enforced policy of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_action: Option<StagedAction>,
}

/// The prefix of a staged policy's name: a `StagedNetworkPolicy` `foo` is the policy
/// `staged:foo`, beside the `NetworkPolicy` `foo`.
pub const STAGED_PREFIX: &str = "staged:";

/// What a staged policy would do once committed (Calico's `stagedAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StagedAction {
    /// Create or replace the enforced policy of the same name with this one (its rules are
    /// evaluated and what they would deny is reported).
    Set,
    /// Delete the enforced policy of the same name. Loaded and listed; nothing is evaluated
    /// for it (it has no rules), so a deletion's effect is not previewed.
    Delete,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_tier() -> String {
    super::tier::DEFAULT_TIER.to_string()
}

fn is_default_tier(tier: &str) -> bool {
    tier == super::tier::DEFAULT_TIER
}

impl Policy {
    /// Whether the policy is staged (evaluated, never enforced).
    pub fn is_staged(&self) -> bool {
        self.staged_action.is_some()
    }

    /// The name without the staged prefix: what the user named it.
    pub fn user_name(&self) -> &str {
        if self.is_staged() {
            self.name.strip_prefix(STAGED_PREFIX).unwrap_or(&self.name)
        } else {
            &self.name
        }
    }

    /// The directions the policy governs. When `types` is empty Calico infers them: Egress
    /// alone if there are egress rules but no ingress rules, both if there are both, Ingress
    /// otherwise.
    pub fn effective_types(&self) -> Vec<PolicyType> {
        if !self.types.is_empty() {
            let mut t = self.types.clone();
            t.sort();
            t.dedup();
            return t;
        }
        match (self.ingress.is_empty(), self.egress.is_empty()) {
            (true, false) => vec![PolicyType::Egress],
            (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
            _ => vec![PolicyType::Ingress],
        }
    }

    /// Whether the policy governs `direction`.
    pub fn governs(&self, direction: PolicyType) -> bool {
        self.effective_types().contains(&direction)
    }

    /// The rules for `direction`.
    pub fn rules(&self, direction: PolicyType) -> &[Rule] {
        match direction {
            PolicyType::Ingress => &self.ingress,
            PolicyType::Egress => &self.egress,
        }
    }
}

/// The order policies apply in within their tier: `order` ascending, policies without an order after all
/// others, ties broken by name and then namespace (global first).
pub fn policy_order(a: &Policy, b: &Policy) -> Ordering {
    let key = |p: &Policy| p.order.unwrap_or(f64::INFINITY);
    key(a)
        .total_cmp(&key(b))
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.namespace.cmp(&b.namespace))
}

impl Profile {
    /// The rules for `direction`.
    pub fn rules(&self, direction: PolicyType) -> &[Rule] {
        match direction {
            PolicyType::Ingress => &self.ingress,
            PolicyType::Egress => &self.egress,
        }
    }
}

/// A profile: rules and labels shared by the endpoints that name it; consulted after all
/// policies (or when a policy says `Pass`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// Name of the profile.
    pub name: String,
    /// Labels every endpoint naming this profile inherits (the endpoint's own labels win).
    #[serde(default)]
    pub labels_to_apply: Labels,
    /// Rules for traffic arriving at the endpoint.
    #[serde(default)]
    pub ingress: Vec<Rule>,
    /// Rules for traffic leaving the endpoint.
    #[serde(default)]
    pub egress: Vec<Rule>,
}
