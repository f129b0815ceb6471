//! Host endpoints: what Calico's policy says about a packet on each path through the host
//! ([`HostPath`]), with the host settings ([`HostConfig`]: the failsafe ports).
//!
//! * **To or from the host itself** (`In`, `Out`): the failsafe ports are allowed; then
//!   the policies that select the host endpoint, except pre-DNAT ones (tiers as for
//!   workloads), then its profiles; nothing allowed it: denied, also when no policy and no
//!   profile applies (a host endpoint with no policy is closed but for the failsafe ports).
//! * **Forwarded** (`FwdIn`, arriving through the endpoint; `FwdOut`, leaving through it):
//!   only `applyOnForward` policies, no profiles, no failsafe ports; when none governs the
//!   direction the packet is allowed, otherwise what they do not allow is denied.
//! * **Untracked** (`UntrackedIn`, arriving through the endpoint; `UntrackedOut`, sent by
//!   the host through it; before conntrack): as pre-DNAT below, with untracked policy
//!   only; an allow skips pre-DNAT and normal policy (and the packet is not tracked).
//! * **Pre-DNAT** (`PreDnat`, arriving through the endpoint, before DNAT, whatever its
//!   destination): the failsafe ports go on to the normal policy, then pre-DNAT policies
//!   only; allowed or denied
//!   when one decides; otherwise no decision (`None`): no end-of-tier drop (a tier's
//!   `defaultAction: Deny` does not apply), on to the normal policy. An allow skips the normal policy of traffic to the host.
//!
//! Staged policies are judged on the paths of normal and forward policy, never changing
//! the verdict: what they would have denied is [`HostEvaluation::staged`]
//! ([`super::staged_on_path`]).

use std::net::IpAddr;

use super::RuleSource;
use super::{run_rules, run_tier, EndpointRef, EndpointView, EvalError, Outcome, Packet};
use super::{staged_on_path, tiers_with, StagedDenial, TraceStep, Verdict};
use crate::calc::effective;
use crate::compile::{FailsafePort, HostConfig, HostPath};
use crate::dataplane::InterfaceAddresses;
use crate::model::{HostEndpoint, Model, Policy, Tier, TierAction};

/// What a host endpoint's policy decided on one path: `None` when pre-DNAT policy did
/// not decide (the normal policy does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEvaluation {
    /// The verdict, if the path decides.
    pub verdict: Option<Verdict>,
    /// The steps that led to it.
    pub trace: Vec<TraceStep>,
    /// What the staged policies of the path would have denied (not enforced;
    /// [`super::staged_on_path`]).
    pub staged: Vec<StagedDenial>,
}

/// The host endpoint of `node` whose policy applies on its interface `iface`, which holds
/// the addresses `addrs` says, as Felix's endpoint manager decides
/// (`resolveHostEndpoints`): of the endpoints that name `iface`, or name no interface and
/// expect one of its addresses, the first by name (naming the interface gives no
/// precedence); when there is none, the first by name of those naming `*`, except on
/// loopback. A workload's interface (of an endpoint of `node`) has none: its addresses
/// match nothing, and the all-interfaces endpoint leaves it alone.
pub fn host_endpoint_on<'m>(
    model: &'m Model,
    node: &str,
    iface: &str,
    addrs: &InterfaceAddresses,
) -> Option<&'m HostEndpoint> {
    let is_workload = model
        .workload_endpoints
        .values()
        .any(|ep| ep.node == node && ep.interface_name == iface);
    if is_workload {
        return None;
    }
    let held = addrs.get(iface);
    let governs = |ep: &HostEndpoint| match &ep.interface_name {
        Some(name) => name == iface,
        None => held.is_some_and(|h| ep.expected_ips.iter().any(|ip| h.contains(ip))),
    };
    let local = || model.host_endpoints.values().filter(|ep| ep.node == node);
    // The model keeps them by name: the first found is the first by name.
    local().find(|ep| governs(ep)).or_else(|| {
        let all = |ep: &&HostEndpoint| ep.interface_name.as_deref() == Some("*");
        local().find(all).filter(|_| iface != "lo")
    })
}

/// Judges a new connection's `packet` on `path` through the host endpoint `name`.
pub fn evaluate_host(
    model: &Model,
    name: &str,
    path: HostPath,
    packet: &Packet,
    config: &HostConfig,
) -> Result<HostEvaluation, EvalError> {
    let r = EndpointRef::Host(name.to_string());
    let view = EndpointView::resolve(model, &r).ok_or(EvalError::UnknownEndpoint(r))?;
    let mut trace = Vec::new();
    let verdict = judge_host(model, &view, path, packet, config, &mut trace);
    let staged = staged_on_path(model, &view, path, packet, config);
    Ok(HostEvaluation {
        verdict,
        trace,
        staged,
    })
}

/// The tiers that apply to the host endpoint `view` on `path`, in order, each with its
/// policies that take part on the path ([`HostPath::admits`]), in order; tiers left with
/// none are left out.
pub fn tiers_on_path<'m>(
    model: &'m Model,
    view: &EndpointView,
    path: HostPath,
) -> Vec<(Tier, Vec<&'m Policy>)> {
    tiers_on_path_with(model, view, path, false)
}

/// [`tiers_on_path`], with the staged policies that apply among the others when `staged`
/// (the chains compiled with flow logs hold them: [`crate::compile::CompileConfig::flow_logs`]).
pub fn tiers_on_path_with<'m>(
    model: &'m Model,
    view: &EndpointView,
    path: HostPath,
    staged: bool,
) -> Vec<(Tier, Vec<&'m Policy>)> {
    tiers_with(model, view, path.direction(), staged)
        .into_iter()
        .map(|(t, mut ps)| {
            ps.retain(|p| path.admits(p));
            (t, ps)
        })
        .filter(|(_, ps)| !ps.is_empty())
        .collect()
}

/// The failsafe entry that lets `packet` through on `path`, if one does: its protocol and
/// destination port, and the remote end (inbound the source, outbound the destination) in
/// its network when it names one.
pub(super) fn failsafe(path: HostPath, packet: &Packet, config: &HostConfig) -> Option<String> {
    // A failsafe entry's network is the remote end's: the source of what arrives, the
    // destination of what leaves.
    let (ports, remote) = match path {
        HostPath::In | HostPath::PreDnat | HostPath::UntrackedIn => {
            (&config.failsafe_inbound, packet.src)
        }
        HostPath::Out | HostPath::UntrackedOut => (&config.failsafe_outbound, packet.dst),
        HostPath::FwdIn | HostPath::FwdOut => return None,
    };
    let entry = |p: &&FailsafePort, port: Option<u16>, remote: IpAddr| {
        p.protocol == packet.protocol
            && Some(p.port) == port
            && p.net.is_none_or(|net| net.contains(&remote))
    };
    if let Some(p) = ports.iter().find(|p| entry(p, packet.dst_port, remote)) {
        return Some(p.to_string());
    }
    // Before conntrack (untracked policy), the replies of the other way's failsafe
    // connections: their port is the source port.
    let replies = match path {
        HostPath::UntrackedIn => Some((&config.failsafe_outbound, packet.src)),
        HostPath::UntrackedOut => Some((&config.failsafe_inbound, packet.dst)),
        _ => None,
    };
    let (ports, remote) = replies?;
    ports
        .iter()
        .find(|p| entry(p, packet.src_port, remote))
        .map(|p| format!("{p} (a reply)"))
}

fn judge_host(
    model: &Model,
    view: &EndpointView,
    path: HostPath,
    packet: &Packet,
    config: &HostConfig,
    trace: &mut Vec<TraceStep>,
) -> Option<Verdict> {
    if let Some(port) = failsafe(path, packet, config) {
        trace.push(TraceStep::Failsafe(port));
        // Untracked and pre-DNAT policy cannot close a failsafe port, but do not open the
        // rest of the way either: the normal (or forward) policy judges the packet next.
        return (!path.is_early()).then_some(Verdict::Allow);
    }
    let dir = path.direction();
    let tiers = tiers_on_path(model, view, path);
    if tiers.is_empty() {
        match path {
            HostPath::FwdIn | HostPath::FwdOut => {
                trace.push(TraceStep::NoForwardPolicy);
                return Some(Verdict::Allow);
            }
            HostPath::PreDnat | HostPath::UntrackedIn | HostPath::UntrackedOut => {
                trace.push(TraceStep::NoPreDnatDecision);
                return None;
            }
            HostPath::In | HostPath::Out => {}
        }
    }
    let endpoints = effective::selectable_endpoints(model);
    for (tier, policies) in &tiers {
        let mut tier = tier.clone();
        if path.is_early() {
            // Untracked and pre-DNAT policy have no end-of-tier drop: what they do not
            // decide goes on.
            tier.default_action = TierAction::Pass;
        }
        match run_tier(&endpoints, &tier, policies, dir, packet, trace) {
            Outcome::Allow => return Some(Verdict::Allow),
            Outcome::Deny => return Some(Verdict::Deny),
            Outcome::Pass | Outcome::NoMatch => {}
        }
    }
    match path {
        HostPath::PreDnat | HostPath::UntrackedIn | HostPath::UntrackedOut => {
            trace.push(TraceStep::NoPreDnatDecision);
            return None;
        }
        HostPath::FwdIn | HostPath::FwdOut => {
            trace.push(TraceStep::EndOfForwardPolicy);
            return Some(Verdict::Deny);
        }
        HostPath::In | HostPath::Out => {}
    }
    if view.profiles.is_empty() && tiers.is_empty() {
        trace.push(TraceStep::NoPolicyOrProfile);
        return Some(Verdict::Deny);
    }
    for name in &view.profiles {
        let Some(profile) = model.profiles.get(name) else {
            trace.push(TraceStep::MissingProfile(name.clone()));
            continue;
        };
        let source = RuleSource::Profile(name.clone());
        match run_rules(&endpoints, None, profile.rules(dir), packet, source, trace) {
            Outcome::Allow => return Some(Verdict::Allow),
            Outcome::Deny => return Some(Verdict::Deny),
            Outcome::Pass | Outcome::NoMatch => {}
        }
    }
    trace.push(TraceStep::EndOfProfiles);
    Some(Verdict::Deny)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_resources;

    /// Untracked policy denying all TCP on the uplink, both ways.
    const MODEL: &str = r#"
kind: HostEndpoint
name: h1-eth0
node: h1
interfaceName: eth0
labels: {role: uplink}
---
kind: Policy
name: untracked-deny
selector: role == 'uplink'
doNotTrack: true
applyOnForward: true
ingress: [{action: Deny, protocol: TCP}]
egress: [{action: Deny, protocol: TCP}]
"#;

    /// Felix's raw chains: before conntrack, the replies of the failsafe connections (their
    /// port the source port) pass untracked policy too; other replies do not.
    #[test]
    fn untracked_policy_lets_the_failsafe_connections_replies_through() {
        let model = Model::from_resources(parse_resources(MODEL).unwrap()).unwrap();
        let config = HostConfig::default();
        let (host, peer) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let judge = |path, p: &Packet| {
            evaluate_host(&model, "h1-eth0", path, p, &config)
                .unwrap()
                .verdict
        };
        // The BGP peer's SYN-ACK to the host's connection out to tcp:179 (outbound failsafe).
        let reply_in = Packet::tcp(peer, 179, host, 40000);
        assert_eq!(
            judge(HostPath::UntrackedIn, &reply_in),
            None,
            "on to normal policy"
        );
        // The host's SYN-ACK to an SSH connection in (inbound failsafe tcp:22).
        let reply_out = Packet::tcp(host, 22, peer, 40000);
        assert_eq!(judge(HostPath::UntrackedOut, &reply_out), None);
        // Not failsafe replies: denied by the untracked policy.
        let other_in = Packet::tcp(peer, 8080, host, 40000);
        assert_eq!(judge(HostPath::UntrackedIn, &other_in), Some(Verdict::Deny));
        // A reply port is only a reply on the untracked paths: inbound, source port 22 is
        // no failsafe connection (22 is an inbound port).
        let wrong_way = Packet::tcp(peer, 22, host, 40000);
        assert_eq!(
            judge(HostPath::UntrackedIn, &wrong_way),
            Some(Verdict::Deny)
        );
        let e = evaluate_host(&model, "h1-eth0", HostPath::UntrackedIn, &reply_in, &config);
        let trace = e.unwrap().trace;
        assert!(
            matches!(&trace[..], [TraceStep::Failsafe(p)] if p == "tcp:179 (a reply)"),
            "{trace:?}"
        );
    }
}
