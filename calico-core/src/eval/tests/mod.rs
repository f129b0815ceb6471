//! The reference evaluator as a specification: a table of cases derived from Calico's
//! documented policy semantics (ordering, Pass, default deny, profiles, namespaces, every
//! match field), each stating the verdict and the rule (or default) that must decide it.

use std::net::IpAddr;

use super::*;
use crate::model::{parse_resources, Action, Update};

/// Endpoints and profiles every case starts from.
const BASE: &str = r#"
kind: Profile
name: kns.shop
labelsToApply: {pcns.team: shop, pcns.env: prod, tier: profile-tier}
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Profile
name: kns.other
labelsToApply: {pcns.team: other}
ingress: [{action: Allow}]
egress: [{action: Allow}]
---
kind: Profile
name: quiet
---
kind: Profile
name: closed
ingress: [{action: Deny, protocol: TCP, destination: {ports: [22]}}]
---
kind: Profile
name: passer
ingress: [{action: Pass}]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.fe1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-fe1
ipNetworks: [10.0.0.1/32, "fd00::1/128"]
labels: {app: frontend}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.be1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-be1
ipNetworks: [10.0.0.2/32, "fd00::2/128"]
labels: {app: backend, tier: api}
profiles: [kns.shop]
ports:
  - {name: http, protocol: TCP, port: 8080}
  - {name: dns, protocol: UDP, port: 53}
  - {name: diameter, protocol: SCTP, port: 3868}
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.db1
endpoint: eth0
namespace: shop
node: h2
interfaceName: cali-db1
ipNetworks: [10.0.0.3/32]
labels: {app: db}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.mp1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-mp1
ipNetworks: [10.0.0.4/32]
profiles: [quiet, kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.cl1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-cl1
ipNetworks: [10.0.0.5/32]
profiles: [closed, kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.gh1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-gh1
ipNetworks: [10.0.0.6/32]
profiles: [nonexistent]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.ps1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-ps1
ipNetworks: [10.0.0.7/32]
profiles: [passer, kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: other.ot1
endpoint: eth0
namespace: other
node: h2
interfaceName: cali-ot1
ipNetworks: [10.0.1.1/32]
labels: {app: frontend}
profiles: [kns.other]
---
kind: WorkloadEndpoint
orchestrator: openstack
workload: vm-lone
endpoint: tap0
node: h1
interfaceName: tap-lone
ipNetworks: [10.0.2.1/32]
labels: {role: lonely}
---
kind: HostEndpoint
name: h1-eth0
node: h1
interfaceName: eth0
expectedIPs: [192.0.2.10]
labels: {role: host}
"#;

fn ip(name: &str) -> IpAddr {
    match name {
        "fe1" => "10.0.0.1",
        "be1" => "10.0.0.2",
        "db1" => "10.0.0.3",
        "mp1" => "10.0.0.4",
        "cl1" => "10.0.0.5",
        "gh1" => "10.0.0.6",
        "ps1" => "10.0.0.7",
        "ot1" => "10.0.1.1",
        "lone" => "10.0.2.1",
        "hep" => "192.0.2.10",
        "fe1v6" => "fd00::1",
        "be1v6" => "fd00::2",
        other => other,
    }
    .parse()
    .unwrap_or_else(|_| panic!("no address for {name}"))
}

fn tcp(s: &str, d: &str, dport: u16) -> Packet {
    Packet::tcp(ip(s), 40000, ip(d), dport)
}
fn tcp_from(s: &str, sport: u16, d: &str, dport: u16) -> Packet {
    Packet::tcp(ip(s), sport, ip(d), dport)
}
fn udp(s: &str, d: &str, dport: u16) -> Packet {
    Packet::udp(ip(s), 40000, ip(d), dport)
}
fn sctp(s: &str, d: &str, dport: u16) -> Packet {
    Packet::ported(Protocol::SCTP, ip(s), 40000, ip(d), dport)
}
fn icmp(s: &str, d: &str, t: u8, c: u8) -> Packet {
    Packet::icmp(ip(s), ip(d), t, c)
}
fn icmp6(s: &str, d: &str, t: u8, c: u8) -> Packet {
    Packet::icmpv6(ip(s), ip(d), t, c)
}
fn proto(n: u8, s: &str, d: &str) -> Packet {
    Packet::other(Protocol(n), ip(s), ip(d))
}

use crate::model::Protocol;

/// How a case's packet is judged.
enum Check {
    /// As a flow between workloads (egress of the source, ingress of the destination).
    Flow(Packet),
    /// Ingress to a host endpoint.
    HostIngress(&'static str, Packet),
    /// Ingress to a workload endpoint, by workload name.
    Ingress(&'static str, Packet),
    /// Egress from a workload endpoint, by workload name.
    Egress(&'static str, Packet),
}

/// What must decide the verdict.
#[derive(Debug, PartialEq)]
enum By {
    /// A policy rule (`ns/name` or `name`) at an index.
    Policy(&'static str, usize),
    /// A profile rule at an index.
    Profile(&'static str, usize),
    /// The end of the default tier (its default deny).
    EndOfPolicies,
    /// The end of another tier (its default deny).
    EndOfTier(&'static str),
    EndOfProfiles,
    NoPolicyOrProfile,
}

use Check::*;

const A: Verdict = Verdict::Allow;
const D: Verdict = Verdict::Deny;

fn policy(ns: &str, name: &str, order: &str, selector: &str, body: &str) -> String {
    let ns = if ns.is_empty() {
        String::new()
    } else {
        format!("namespace: {ns}\n")
    };
    let order = if order.is_empty() {
        String::new()
    } else {
        format!("order: {order}\n")
    };
    format!("---\nkind: Policy\nname: {name}\n{ns}{order}selector: \"{selector}\"\n{body}\n")
}

/// A namespaced `shop` policy on the backend with the given ingress rules.
fn be_in(rules: &str) -> String {
    policy(
        "shop",
        "be",
        "",
        "app == 'backend'",
        &format!("ingress: [{rules}]"),
    )
}

fn run(name: &str, extra: &str, check: Check, verdict: Verdict, by: By) {
    let model = Model::from_resources(
        parse_resources(&format!("{BASE}{extra}")).unwrap_or_else(|e| panic!("{name}: {e}")),
    )
    .unwrap();
    let eval = match check {
        Flow(p) => evaluate_flow(&model, &p),
        HostIngress(h, p) => evaluate(&model, &EndpointRef::Host(h.into()), Direction::Ingress, &p),
        Ingress(w, p) => on_workload(&model, w, Direction::Ingress, &p),
        Egress(w, p) => on_workload(&model, w, Direction::Egress, &p),
    }
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(eval.verdict, verdict, "{name}:\n{eval}");
    let got = match (eval.deciding_rule(), eval.trace.last()) {
        (Some((RuleSource::Policy(p), i, _)), _) => format!("{:?}", By::Policy(leak(p), i)),
        (Some((RuleSource::Profile(p), i, _)), _) => format!("{:?}", By::Profile(leak(p), i)),
        (None, Some(TraceStep::EndOfTier(t))) if t == "default" => {
            format!("{:?}", By::EndOfPolicies)
        }
        (None, Some(TraceStep::EndOfTier(t))) => format!("{:?}", By::EndOfTier(leak(t))),
        (None, Some(TraceStep::EndOfProfiles)) => format!("{:?}", By::EndOfProfiles),
        (None, Some(TraceStep::NoPolicyOrProfile)) => format!("{:?}", By::NoPolicyOrProfile),
        (None, other) => format!("unexpected end {other:?}"),
    };
    assert_eq!(got, format!("{by:?}"), "{name}:\n{eval}");
}

/// Evaluates `p` in `direction` on the workload whose name ends with `w`.
fn on_workload(
    model: &Model,
    w: &str,
    direction: Direction,
    p: &Packet,
) -> Result<Evaluation, EvalError> {
    let ep = model
        .workload_endpoints
        .values()
        .find(|e| e.id.workload.ends_with(w))
        .unwrap_or_else(|| panic!("no workload {w}"));
    evaluate(model, &EndpointRef::Workload(ep.id.clone()), direction, p)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

mod api;
mod matching;
mod network_sets;
mod policies;
mod service_accounts;
mod staged;
mod tiers;
