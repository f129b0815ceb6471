//! Reference semantics: the model and a packet in, the verdict and a trace of the rule that
//! decided out.
//!
//! This is the specification the rule compiler and every backend are tested against, written
//! for clarity rather than speed. Semantics, as Calico's:
//!
//! * Direction is relative to a *local* endpoint E: **ingress** is a packet arriving at E,
//!   **egress** a packet leaving it.
//! * The policies that apply to E (selector matches E's effective labels; a namespaced policy
//!   only in its own namespace) and govern the direction are grouped by tier
//!   ([`crate::model::Tier`]); the tiers that hold at least one of them are consulted in
//!   [`tier_order`] (`order`, then name), a tier holding none is skipped. In a tier, its
//!   policies are consulted in [`policy_order`]; in each, the first `Allow`, `Deny` or
//!   `Pass` rule that matches decides; `Log` rules record and go on; a policy none of whose
//!   rules match hands over to the next policy of the tier.
//! * `Allow` and `Deny` are final. `Pass` skips the remaining policies of its tier and goes
//!   on with the next tier. When no policy of a tier allowed, denied or passed, the tier's
//!   `defaultAction` applies: `Deny` (the default) denies the packet at the end of the tier,
//!   `Pass` goes on with the next tier.
//! * A policy whose tier does not exist is held: it applies to nothing.
//! * A rule's `selector` (and `notSelector`) matches an address that belongs to an endpoint
//!   it selects *or* falls in a network of a network set it selects (Calico's
//!   `NetworkSet`/`GlobalNetworkSet`); a namespaced set carries its namespace label and its
//!   namespace's `pcns.` labels, so a namespaced policy's rules see only the sets of their
//!   namespace (or, with `namespaceSelector: global()`, the global ones).
//! * A packet sent to a workload's floating IP (`ipNATs`) is judged as sent to the
//!   workload's own (internal) address: destination NAT happens before policy, as in Felix
//!   ([`translate_floating_ip`] gives that packet). A rule about the internal address
//!   applies to it; a rule about the floating IP does not.
//! * After the last tier (every tier that applied passed, or none applied) E's profiles are
//!   consulted in order, the same way (`Pass` in a profile goes to the next profile); if
//!   none decides, the packet is denied. With no applicable policy and no profile, the
//!   packet is denied.
//!
//! ```
//! use calico_core::eval::{evaluate_flow, Packet};
//! use calico_core::model::{parse_resources, Model};
//!
//! let model = Model::from_resources(parse_resources(r#"
//! kind: WorkloadEndpoint
//! orchestrator: k8s
//! workload: a
//! endpoint: eth0
//! node: h1
//! interfaceName: cali-a
//! ipNetworks: [10.0.0.1/32]
//! profiles: [open]
//! ---
//! kind: WorkloadEndpoint
//! orchestrator: k8s
//! workload: b
//! endpoint: eth0
//! node: h1
//! interfaceName: cali-b
//! ipNetworks: [10.0.0.2/32]
//! labels: {app: db}
//! profiles: [open]
//! ---
//! kind: Profile
//! name: open
//! ingress: [{action: Allow}]
//! egress: [{action: Allow}]
//! ---
//! kind: Policy
//! name: db
//! selector: app == 'db'
//! ingress: [{action: Allow, protocol: TCP, destination: {ports: [5432]}}]
//! "#).unwrap()).unwrap();
//!
//! let a = "10.0.0.1".parse().unwrap();
//! let b = "10.0.0.2".parse().unwrap();
//! assert!(evaluate_flow(&model, &Packet::tcp(a, 40000, b, 5432)).unwrap().verdict.is_allow());
//! let denied = evaluate_flow(&model, &Packet::tcp(a, 40000, b, 22)).unwrap();
//! assert!(!denied.verdict.is_allow());
//! assert!(denied.to_string().contains("end of tier default"));
//! ```

mod endpoint_view;
mod floating_ip;
mod host;
mod packet;
mod rule_match;
mod staged;
mod trace;

use std::net::IpAddr;

use crate::calc::effective;
use crate::model::{
    policy_order, tier_order, Model, Policy, PolicyType, Rule, Tier, TierAction, WorkloadEndpointId,
};

pub use endpoint_view::EndpointView;
pub use floating_ip::translate_floating_ip;
pub use host::{
    evaluate_host, host_endpoint_on, tiers_on_path, tiers_on_path_with, HostEvaluation,
};
pub use packet::{Direction, Packet};
pub use staged::{staged_denials, staged_on_path, StagedDenial, StagedRule};
pub use trace::{Evaluation, RuleSource, TraceStep, Verdict};

/// A local endpoint to evaluate against.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointRef {
    /// A workload endpoint, by id.
    Workload(WorkloadEndpointId),
    /// A host endpoint, by name.
    Host(String),
}

/// Why a packet could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The endpoint is not in the model.
    #[error("no endpoint {0:?} in the model")]
    UnknownEndpoint(EndpointRef),
    /// The packet's address on the endpoint's side is not the endpoint's.
    #[error("{address} is not an address of endpoint {endpoint:?} (direction {direction:?})")]
    NotEndpointAddress {
        /// The endpoint.
        endpoint: EndpointRef,
        /// The packet's address on that side.
        address: IpAddr,
        /// The direction evaluated.
        direction: Direction,
    },
    /// Neither address of a flow belongs to a workload endpoint.
    #[error("neither {src} nor {dst} belongs to a workload endpoint")]
    NoEndpoint {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
}

/// The policies applying to an endpoint, by direction, in order (for display).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applicable {
    /// Policies governing ingress, in order, as `namespace/name` or `name`.
    pub ingress: Vec<String>,
    /// Policies governing egress, in order.
    pub egress: Vec<String>,
}

/// The tiers that apply to `endpoint` in `direction`, in order, each with its policies that
/// apply to it and govern `direction`, in order. Held policies (their tier does not exist)
/// are left out.
/// Staged policies are not enforced and are left out ([`staged_denials`] has them).
pub fn tiers_for<'m>(
    model: &'m Model,
    endpoint: &EndpointView,
    direction: PolicyType,
) -> Vec<(Tier, Vec<&'m Policy>)> {
    tiers_with(model, endpoint, direction, false)
}

/// [`tiers_for`], with the staged policies that apply among the others when `staged`.
fn tiers_with<'m>(
    model: &'m Model,
    endpoint: &EndpointView,
    direction: PolicyType,
    staged: bool,
) -> Vec<(Tier, Vec<&'m Policy>)> {
    let mut tiers: Vec<(Tier, Vec<&Policy>)> = Vec::new();
    for p in model.policies.values() {
        if (p.is_staged() && !staged) || !p.governs(direction) || !endpoint.is_selected_by(p) {
            continue;
        }
        match tiers.iter_mut().find(|(t, _)| t.name == p.tier) {
            Some((_, ps)) => ps.push(p),
            None => {
                if let Some(t) = model.tier(&p.tier) {
                    tiers.push((t, vec![p]));
                }
            }
        }
    }
    tiers.sort_by(|a, b| tier_order(&a.0, &b.0));
    for (_, ps) in &mut tiers {
        ps.sort_by(|a, b| policy_order(a, b));
    }
    tiers
}

/// The policies that apply to `endpoint` and govern `direction`, in order (tier by tier).
pub fn policies_for<'m>(
    model: &'m Model,
    endpoint: &EndpointView,
    direction: PolicyType,
) -> Vec<&'m Policy> {
    tiers_for(model, endpoint, direction)
        .into_iter()
        .flat_map(|(_, ps)| ps)
        .collect()
}

/// The policies applying to a workload endpoint, both directions, in order.
pub fn applicable_policies(model: &Model, ep: &crate::model::WorkloadEndpoint) -> Applicable {
    let view = EndpointView::workload(model, ep);
    let names = |d| {
        policies_for(model, &view, d)
            .into_iter()
            .map(effective::policy_name)
            .collect()
    };
    Applicable {
        ingress: names(PolicyType::Ingress),
        egress: names(PolicyType::Egress),
    }
}

/// Judges `packet` travelling in `direction` relative to the local endpoint `endpoint`.
pub fn evaluate(
    model: &Model,
    endpoint: &EndpointRef,
    direction: Direction,
    packet: &Packet,
) -> Result<Evaluation, EvalError> {
    let view = EndpointView::resolve(model, endpoint)
        .ok_or_else(|| EvalError::UnknownEndpoint(endpoint.clone()))?;
    let own = match direction {
        Direction::Ingress => packet.dst,
        Direction::Egress => packet.src,
    };
    // A workload's allowSpoofedSourcePrefixes may be its sources too: judging policy, the
    // evaluator takes the anti-spoofing check as passed (the agent enforces the list only
    // with workload source spoofing allowed).
    let spoofed_ok =
        direction == Direction::Egress && view.spoofable.iter().any(|n| n.contains(&own));
    if view.checks_addresses() && !view.addresses.contains(&own) && !spoofed_ok {
        return Err(EvalError::NotEndpointAddress {
            endpoint: endpoint.clone(),
            address: own,
            direction,
        });
    }
    let mut trace = Vec::new();
    let verdict = judge(model, &view, direction, packet, &mut trace);
    let staged = staged_denials(model, &view, direction.policy_type(), packet);
    Ok(Evaluation {
        verdict,
        trace,
        staged,
    })
}

/// Judges a packet from one workload to another as the network would: the source endpoint's
/// egress policy (if the source is a workload endpoint), then the destination endpoint's
/// ingress policy (if the destination is one). Both must allow.
pub fn evaluate_flow(model: &Model, packet: &Packet) -> Result<Evaluation, EvalError> {
    let owner = |addr: IpAddr| {
        model
            .workload_endpoints
            .values()
            .find(|ep| ep.ip_networks.iter().any(|n| n.addr() == addr))
            .map(|ep| EndpointRef::Workload(ep.id.clone()))
    };
    let (src, dst) = (owner(packet.src), owner(packet.dst));
    if src.is_none() && dst.is_none() {
        return Err(EvalError::NoEndpoint {
            src: packet.src,
            dst: packet.dst,
        });
    }
    let mut trace = Vec::new();
    let mut staged = Vec::new();
    for (ep, direction) in [(src, Direction::Egress), (dst, Direction::Ingress)] {
        let Some(ep) = ep else { continue };
        let mut e = evaluate(model, &ep, direction, packet)?;
        trace.push(TraceStep::Endpoint {
            endpoint: ep,
            direction,
        });
        trace.append(&mut e.trace);
        staged.append(&mut e.staged);
        if e.verdict == Verdict::Deny {
            return Ok(Evaluation {
                verdict: Verdict::Deny,
                trace,
                staged,
            });
        }
    }
    Ok(Evaluation {
        verdict: Verdict::Allow,
        trace,
        staged,
    })
}

/// What a list of rules decided.
enum Outcome {
    Allow,
    Deny,
    Pass,
    NoMatch,
}

fn run_rules(
    endpoints: &[effective::SelectableEndpoint],
    namespace: Option<&str>,
    rules: &[Rule],
    packet: &Packet,
    source: RuleSource,
    trace: &mut Vec<TraceStep>,
) -> Outcome {
    use crate::model::Action;
    for (index, rule) in rules.iter().enumerate() {
        if !rule_match::rule_matches(endpoints, namespace, rule, packet) {
            continue;
        }
        trace.push(TraceStep::Rule {
            source: source.clone(),
            index,
            action: rule.action,
        });
        match rule.action {
            Action::Allow => return Outcome::Allow,
            Action::Deny => return Outcome::Deny,
            Action::Pass => return Outcome::Pass,
            Action::Log => {}
        }
    }
    trace.push(TraceStep::NoRuleMatched { source });
    Outcome::NoMatch
}

fn judge(
    model: &Model,
    ep: &EndpointView,
    direction: Direction,
    packet: &Packet,
    trace: &mut Vec<TraceStep>,
) -> Verdict {
    let ptype = direction.policy_type();
    // Pre-DNAT and untracked policy have paths of their own ([`evaluate_host`]).
    let mut tiers = tiers_for(model, ep, ptype);
    for (_, ps) in &mut tiers {
        ps.retain(|p| !p.pre_dnat && !p.do_not_track);
    }
    tiers.retain(|(_, ps)| !ps.is_empty());
    let endpoints = effective::selectable_endpoints(model);
    for (tier, policies) in &tiers {
        match run_tier(&endpoints, tier, policies, ptype, packet, trace) {
            Outcome::Allow => return Verdict::Allow,
            Outcome::Deny => return Verdict::Deny,
            Outcome::Pass | Outcome::NoMatch => {}
        }
    }
    if ep.profiles.is_empty() && tiers.is_empty() {
        trace.push(TraceStep::NoPolicyOrProfile);
        return Verdict::Deny;
    }
    for name in &ep.profiles {
        let Some(profile) = model.profiles.get(name) else {
            trace.push(TraceStep::MissingProfile(name.clone()));
            continue;
        };
        let source = RuleSource::Profile(name.clone());
        match run_rules(
            &endpoints,
            None,
            profile.rules(ptype),
            packet,
            source,
            trace,
        ) {
            Outcome::Allow => return Verdict::Allow,
            Outcome::Deny => return Verdict::Deny,
            Outcome::Pass | Outcome::NoMatch => {}
        }
    }
    trace.push(TraceStep::EndOfProfiles);
    Verdict::Deny
}

/// Runs one tier's applicable policies (in order): `Allow` or `Deny` when a rule or the
/// tier's default denied, `Pass` when the packet goes on to the next tier.
fn run_tier(
    endpoints: &[effective::SelectableEndpoint],
    tier: &Tier,
    policies: &[&Policy],
    ptype: PolicyType,
    packet: &Packet,
    trace: &mut Vec<TraceStep>,
) -> Outcome {
    for p in policies {
        let source = RuleSource::Policy(effective::policy_name(p));
        let rules = p.rules(ptype);
        match run_rules(
            endpoints,
            p.namespace.as_deref(),
            rules,
            packet,
            source,
            trace,
        ) {
            Outcome::Allow => return Outcome::Allow,
            Outcome::Deny => return Outcome::Deny,
            Outcome::Pass => return Outcome::Pass,
            Outcome::NoMatch => {}
        }
    }
    match tier.default_action {
        TierAction::Deny => {
            trace.push(TraceStep::EndOfTier(tier.name.clone()));
            Outcome::Deny
        }
        TierAction::Pass => {
            trace.push(TraceStep::TierPassed(tier.name.clone()));
            Outcome::Pass
        }
    }
}

#[cfg(test)]
mod tests;
