//! Verdicts and the trace explaining them.

use std::fmt;

use super::packet::Direction;
use super::EndpointRef;
use crate::model::Action;

/// The final verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The packet passes.
    Allow,
    /// The packet is dropped.
    Deny,
}

impl Verdict {
    /// Whether the packet passes.
    pub fn is_allow(self) -> bool {
        self == Verdict::Allow
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "ALLOW",
            Verdict::Deny => "DENY",
        })
    }
}

/// Where a rule comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RuleSource {
    /// A policy, as `namespace/name` or `name`.
    Policy(String),
    /// A profile, by name.
    Profile(String),
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::Policy(n) => write!(f, "policy {n}"),
            RuleSource::Profile(n) => write!(f, "profile {n}"),
        }
    }
}

/// One step of an evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceStep {
    /// Evaluation of an endpoint's policy in a direction begins (flows only).
    Endpoint {
        /// The endpoint.
        endpoint: EndpointRef,
        /// The direction.
        direction: Direction,
    },
    /// A rule matched and its action applied (for `Log`, evaluation went on).
    Rule {
        /// The policy or profile.
        source: RuleSource,
        /// The rule's index in its direction's list.
        index: usize,
        /// The rule's action.
        action: Action,
    },
    /// No rule of the policy or profile decided.
    NoRuleMatched {
        /// The policy or profile.
        source: RuleSource,
    },
    /// A tier's policies governed this direction but none allowed, denied or passed, and
    /// the tier's `defaultAction` is `Deny`: denied at the end of the tier (named).
    EndOfTier(String),
    /// None of a tier's policies decided and the tier's `defaultAction` is `Pass`: on to
    /// the next tier (named).
    TierPassed(String),
    /// No profile decided: denied.
    EndOfProfiles,
    /// An endpoint names a profile that does not exist; it is skipped.
    MissingProfile(String),
    /// No policy applies and the endpoint has no profile: denied.
    NoPolicyOrProfile,
    /// A failsafe port of the host (`tcp:22`): allowed whatever the policy says.
    Failsafe(String),
    /// No `applyOnForward` policy of the host endpoint governs the direction: forwarded
    /// traffic is allowed.
    NoForwardPolicy,
    /// No untracked or pre-DNAT policy decided: on to the next stage.
    NoPreDnatDecision,
    /// `applyOnForward` policies govern the direction, but none allowed: denied.
    EndOfForwardPolicy,
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStep::Endpoint {
                endpoint,
                direction,
            } => {
                let name = match endpoint {
                    EndpointRef::Workload(id) => id.to_string(),
                    EndpointRef::Host(n) => format!("host endpoint {n}"),
                };
                write!(f, "{direction:?} of {name}:")
            }
            TraceStep::Rule {
                source,
                index,
                action,
            } => {
                let effect = match (action, source) {
                    (Action::Allow, _) => "Allow",
                    (Action::Deny, _) => "Deny",
                    (Action::Log, _) => "Log (recorded; evaluation goes on)",
                    (Action::Pass, RuleSource::Policy(_)) => {
                        "Pass (rest of the tier skipped; on to the next tier, then the profiles)"
                    }
                    (Action::Pass, RuleSource::Profile(_)) => "Pass (on to the next profile)",
                };
                write!(f, "  {source}: rule {index} matched: {effect}")
            }
            TraceStep::NoRuleMatched { source } => write!(f, "  {source}: no rule matched"),
            TraceStep::EndOfTier(t) => write!(
                f,
                "  end of tier {t}: no policy allowed or passed it: Deny (the tier's default)"
            ),
            TraceStep::TierPassed(t) => write!(
                f,
                "  end of tier {t}: no policy decided: Pass (the tier's default; on to the next tier)"
            ),
            TraceStep::EndOfProfiles => f.write_str("  end of profiles: nothing allowed it: Deny"),
            TraceStep::MissingProfile(n) => write!(f, "  profile {n} does not exist: skipped"),
            TraceStep::NoPolicyOrProfile => {
                f.write_str("  no policy applies and the endpoint has no profile: Deny")
            }
            TraceStep::Failsafe(port) => {
                write!(f, "  failsafe port {port}: Allow (no policy can close it)")
            }
            TraceStep::NoForwardPolicy => f.write_str(
                "  no applyOnForward policy governs this direction: Allow (forwarded traffic)",
            ),
            TraceStep::EndOfForwardPolicy => f.write_str(
                "  end of the applyOnForward policies: nothing allowed it: Deny (forwarded traffic)",
            ),
            TraceStep::NoPreDnatDecision => {
                f.write_str("  no untracked or pre-DNAT policy decided: on to the next stage")
            }
        }
    }
}

/// A verdict and the steps that led to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdict.
    pub verdict: Verdict,
    /// The steps, in order.
    pub trace: Vec<TraceStep>,
    /// What staged policies would have denied on the way (they are not enforced and do
    /// not change the verdict), in the order they were reached.
    pub staged: Vec<super::StagedDenial>,
}

impl Evaluation {
    /// The rule that decided the verdict, if a rule did (rather than a default).
    pub fn deciding_rule(&self) -> Option<(&RuleSource, usize, Action)> {
        match self.trace.last() {
            Some(TraceStep::Rule {
                source,
                index,
                action,
            }) if *action != Action::Log => Some((source, *index, *action)),
            _ => None,
        }
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.trace {
            writeln!(f, "{step}")?;
        }
        for denial in &self.staged {
            writeln!(f, "{denial}")?;
        }
        write!(f, "verdict: {}", self.verdict)
    }
}
