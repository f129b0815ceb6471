//! Staged policies: what they would have denied, had they been enforced.
//!
//! A staged policy (`stagedAction: Set`) is evaluated beside the enforced policies of an
//! endpoint, in its place in tier and policy order, and never changes a verdict: a
//! workload endpoint's, or a host endpoint's on the paths of normal policy (to and from
//! the host) and, when it applies on forward, of forwarded traffic ([`staged_on_path`]; a
//! staged policy is neither pre-DNAT nor untracked). For one endpoint and direction (or
//! host path), walking the tiers as enforcement does:
//!
//! * An enforced policy's `Allow` or `Deny` ends the walk; its `Pass` skips the rest of
//!   its tier, as when enforcing.
//! * A staged policy reached while the staged evaluation is still open judges the packet by
//!   its rules: its first matching `Deny` is a **denial by that rule**; an `Allow` or a
//!   `Deny` closes the staged evaluation (later staged policies, in any tier, no longer
//!   count: with the staged policy in force the packet would have been decided there); a
//!   `Pass` skips the staged policies left in its tier. A staged policy none of whose rules
//!   match hands over, like an enforced one.
//! * A tier that applies only through staged policies (no enforced policy of it selects the
//!   endpoint in this direction) and denies by default: a packet reaching its end with the
//!   staged evaluation open and not passed is a **denial at the end of the tier** by each
//!   staged policy of the tier that applies (with any of them in force, the tier would
//!   apply and drop it). A tier with enforced policies drops such a packet anyway: nothing
//!   is counted there.
//!
//! A staged policy is evaluated as well as, not instead of, the enforced policy of the same
//! name (it is named `staged:<name>`, [`crate::model::STAGED_PREFIX`]); a staged deletion
//! has no rules and is not evaluated. Each endpoint direction, and each host path, is
//! judged on its own. A packet a host's failsafe ports let through reaches no policy of
//! the path, staged or not: nothing is counted.

use std::fmt;

use super::host::{failsafe, tiers_on_path_with};
use super::{run_rules, tiers_with, EndpointView, Outcome, Packet, TraceStep};
use crate::calc::effective;
use crate::compile::{HostConfig, HostPath};
use crate::model::{Model, Policy, PolicyType, Tier, TierAction};

/// Where a staged policy would have denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StagedRule {
    /// The policy's rule with this index (in the direction's list) matched and denies.
    Rule(usize),
    /// No rule of the tier decided and the tier denies by default.
    EndOfTier,
}

/// A packet a staged policy would have denied.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StagedDenial {
    /// The staged policy, as `namespace/staged:name` or `staged:name`.
    pub policy: String,
    /// Its tier.
    pub tier: String,
    /// Its rule that denies, or the end of its tier.
    pub rule: StagedRule,
}

impl fmt::Display for StagedDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            StagedRule::Rule(i) => write!(
                f,
                "  staged policy {} (tier {}): rule {i} would deny (not enforced)",
                self.policy, self.tier
            ),
            StagedRule::EndOfTier => write!(
                f,
                "  staged policy {} (tier {}): end of tier would deny (not enforced)",
                self.policy, self.tier
            ),
        }
    }
}

/// What the staged policies applying to `endpoint` would have denied of `packet` in
/// `direction` (the module's semantics), in the order they were reached.
pub fn staged_denials(
    model: &Model,
    endpoint: &EndpointView,
    direction: PolicyType,
    packet: &Packet,
) -> Vec<StagedDenial> {
    let tiers = tiers_with(model, endpoint, direction, true);
    walk(model, &tiers, direction, packet)
}

/// What the staged policies applying to the host endpoint `endpoint` on `path` would have
/// denied of `packet` (the module's semantics; none on a path a staged policy does not
/// take part in, none for what the failsafe ports of `config` let through).
pub fn staged_on_path(
    model: &Model,
    endpoint: &EndpointView,
    path: HostPath,
    packet: &Packet,
    config: &HostConfig,
) -> Vec<StagedDenial> {
    if path.is_early() || failsafe(path, packet, config).is_some() {
        return Vec::new();
    }
    let tiers = tiers_on_path_with(model, endpoint, path, true);
    walk(model, &tiers, path.direction(), packet)
}

/// The staged denials of `packet` in `direction` through `tiers` (the enforced and staged
/// policies that apply, tier by tier, in order).
fn walk(
    model: &Model,
    tiers: &[(Tier, Vec<&Policy>)],
    direction: PolicyType,
    packet: &Packet,
) -> Vec<StagedDenial> {
    let mut out = Vec::new();
    if !tiers.iter().flat_map(|(_, ps)| ps).any(|p| p.is_staged()) {
        return out;
    }
    let endpoints = effective::selectable_endpoints(model);
    let mut open = true;
    'tiers: for (tier, policies) in tiers {
        let mut staged_passed = false;
        let mut enforced = false;
        for p in policies {
            if !p.is_staged() {
                enforced = true;
                match judge_policy(&endpoints, p, direction, packet).0 {
                    Outcome::Allow | Outcome::Deny => return out,
                    Outcome::Pass => continue 'tiers,
                    Outcome::NoMatch => continue,
                }
            }
            if !open || staged_passed {
                continue;
            }
            match judge_policy(&endpoints, p, direction, packet) {
                (Outcome::Deny, index) => {
                    out.push(denial(p, tier.name.clone(), StagedRule::Rule(index)));
                    open = false;
                }
                (Outcome::Allow, _) => open = false,
                (Outcome::Pass, _) => staged_passed = true,
                (Outcome::NoMatch, _) => {}
            }
        }
        if tier.default_action == TierAction::Deny {
            if enforced {
                return out;
            }
            if open && !staged_passed {
                for p in policies {
                    out.push(denial(p, tier.name.clone(), StagedRule::EndOfTier));
                }
                open = false;
            }
        }
    }
    out
}

fn denial(p: &Policy, tier: String, rule: StagedRule) -> StagedDenial {
    StagedDenial {
        policy: effective::policy_name(p),
        tier,
        rule,
    }
}

/// What `p`'s rules in `direction` decide, with the index of the deciding rule (0 when
/// none decided).
fn judge_policy(
    endpoints: &[effective::SelectableEndpoint],
    p: &Policy,
    direction: PolicyType,
    packet: &Packet,
) -> (Outcome, usize) {
    let mut trace = Vec::new();
    let source = super::RuleSource::Policy(effective::policy_name(p));
    let rules = p.rules(direction);
    let outcome = run_rules(
        endpoints,
        p.namespace.as_deref(),
        rules,
        packet,
        source,
        &mut trace,
    );
    let index = match trace.last() {
        Some(TraceStep::Rule { index, .. }) => *index,
        _ => 0,
    };
    (outcome, index)
}
