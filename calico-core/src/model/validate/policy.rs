//! Validation of policies and profiles: their names, tier, order, types, host-endpoint
//! kinds and rules.

use std::collections::BTreeSet;

use super::Check;
use crate::model::error::{Reason, ValidationError};
use crate::model::policy::{Policy, PolicyType, Profile, StagedAction, STAGED_PREFIX};
use crate::model::resource::ResourceKind;

fn policy_name(p: &Policy) -> String {
    match &p.namespace {
        Some(ns) => format!("{ns}/{}", p.name),
        None => p.name.clone(),
    }
}

impl Policy {
    /// Checks the policy against Calico's rules and limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::Policy, policy_name(self));
        self.validate_staged(&c)?;
        c.name("name", self.user_name())?;
        if let Some(ns) = &self.namespace {
            c.name("namespace", ns)?;
        }
        crate::model::tier::tier_name(&c, "tier", &self.tier)?;
        if let Some(order) = self.order {
            if !order.is_finite() {
                return Err(c.invalid("order", format!("{order} is not a finite number")));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.types.iter().enumerate() {
            if !seen.insert(t) {
                return Err(c.err(format!("types[{i}]"), Reason::Duplicate(format!("{t:?}"))));
            }
        }
        if !self.types.is_empty() {
            if !self.egress.is_empty() && !self.types.contains(&PolicyType::Egress) {
                return Err(c.err("egress", Reason::Requires("types to include Egress".into())));
            }
            if !self.ingress.is_empty() && !self.types.contains(&PolicyType::Ingress) {
                return Err(c.err(
                    "ingress",
                    Reason::Requires("types to include Ingress".into()),
                ));
            }
        }
        self.validate_host_flags(&c)?;
        c.rules("ingress", &self.ingress)?;
        c.rules("egress", &self.egress)
    }

    /// A staged policy's name carries [`STAGED_PREFIX`] and an enforced one's does not; a
    /// staged policy judges workload endpoints only (no `preDNAT` or `doNotTrack`), and a
    /// staged deletion has no rules.
    fn validate_staged(&self, c: &Check) -> Result<(), ValidationError> {
        let prefixed = self.name.starts_with(STAGED_PREFIX);
        let Some(action) = self.staged_action else {
            if prefixed {
                return Err(c.err(
                    "name",
                    Reason::Requires(format!(
                        "stagedAction: a name starting with {STAGED_PREFIX:?} is a staged policy's"
                    )),
                ));
            }
            return Ok(());
        };
        if !prefixed {
            return Err(c.invalid(
                "name",
                format!("a staged policy's name starts with {STAGED_PREFIX:?}"),
            ));
        }
        for (field, set) in [
            ("preDNAT", self.pre_dnat),
            ("doNotTrack", self.do_not_track),
        ] {
            if set {
                return Err(c.invalid(
                    field,
                    "not supported in a staged policy: staged policies are evaluated for \
                     workload endpoints only",
                ));
            }
        }
        if action == StagedAction::Delete && !(self.ingress.is_empty() && self.egress.is_empty()) {
            return Err(c.invalid(
                "stagedAction",
                "a staged Delete has no rules (it stands for deleting the policy)",
            ));
        }
        Ok(())
    }

    /// Calico's rules for `preDNAT`, `doNotTrack` and `applyOnForward`: both kinds are
    /// global, exclusive and need `applyOnForward`; pre-DNAT policy governs ingress only.
    fn validate_host_flags(&self, c: &Check) -> Result<(), ValidationError> {
        if self.do_not_track {
            if self.pre_dnat {
                return Err(c.invalid(
                    "doNotTrack",
                    "a policy cannot be both untracked (doNotTrack) and pre-DNAT",
                ));
            }
            if self.namespace.is_some() {
                return Err(c.invalid(
                    "doNotTrack",
                    "only a GlobalNetworkPolicy can be untracked (it applies to host endpoints)",
                ));
            }
            if !self.apply_on_forward {
                return Err(c.err(
                    "doNotTrack",
                    Reason::Requires("applyOnForward: true".into()),
                ));
            }
        }
        if !self.pre_dnat {
            return Ok(());
        }
        if self.namespace.is_some() {
            return Err(c.invalid(
                "preDNAT",
                "only a GlobalNetworkPolicy can be pre-DNAT (it applies to host endpoints)",
            ));
        }
        if !self.apply_on_forward {
            return Err(c.err("preDNAT", Reason::Requires("applyOnForward: true".into())));
        }
        if !self.egress.is_empty() || self.types.contains(&PolicyType::Egress) {
            return Err(c.invalid(
                "egress",
                "a pre-DNAT policy governs ingress only: no egress rules, no Egress type",
            ));
        }
        Ok(())
    }
}

impl Profile {
    /// Checks the profile against Calico's rules and limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let c = Check::new(ResourceKind::Profile, self.name.clone());
        c.non_empty("name", &self.name)?;
        c.labels("labelsToApply", &self.labels_to_apply)?;
        c.rules("ingress", &self.ingress)?;
        c.rules("egress", &self.egress)
    }
}
