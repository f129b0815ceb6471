//! The reference evaluator as a specification: a table of cases derived from Calico's
//! documented policy semantics (ordering, Pass, default deny, profiles, namespaces, every
//! match field), each stating the verdict and the rule (or default) that must decide it.

use std::net::IpAddr;

use super::*;
use crate::model::{parse_resources, Action};

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
    EndOfPolicies,
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
        (None, Some(TraceStep::EndOfPolicies)) => format!("{:?}", By::EndOfPolicies),
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

#[test]
fn without_policy_profiles_decide_and_no_profile_means_deny() {
    run(
        "profile allows within namespace",
        "",
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Profile("kns.shop", 0),
    );
    run(
        "no policy, no profile: ingress denied",
        "",
        Flow(tcp("fe1", "lone", 80)),
        D,
        By::NoPolicyOrProfile,
    );
    run(
        "no policy, no profile: egress denied",
        "",
        Flow(tcp("lone", "fe1", 80)),
        D,
        By::NoPolicyOrProfile,
    );
    run(
        "profiles in order: empty one falls through",
        "",
        Flow(tcp("fe1", "mp1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
    run(
        "first profile denies",
        "",
        Flow(tcp("fe1", "cl1", 22)),
        D,
        By::Profile("closed", 0),
    );
    run(
        "first profile's rule does not match",
        "",
        Flow(tcp("fe1", "cl1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
    run(
        "missing profile is skipped",
        "",
        Flow(tcp("fe1", "gh1", 80)),
        D,
        By::EndOfProfiles,
    );
    run(
        "pass in a profile goes to the next profile",
        "",
        Flow(tcp("fe1", "ps1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
}

#[test]
fn a_policy_isolates_the_endpoints_it_selects() {
    let p = be_in("{action: Allow, protocol: TCP, source: {selector: \"app == 'frontend'\"}, destination: {ports: [8080]}}");
    run(
        "allowed port from frontend",
        &p,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "other port",
        &p,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::EndOfPolicies,
    );
    run(
        "other source",
        &p,
        Flow(tcp("db1", "be1", 8080)),
        D,
        By::EndOfPolicies,
    );
    run(
        "selector scoped to the policy's namespace",
        &p,
        Flow(tcp("ot1", "be1", 8080)),
        D,
        By::EndOfPolicies,
    );
    run(
        "unselected endpoint unaffected",
        &p,
        Flow(tcp("fe1", "db1", 8080)),
        A,
        By::Profile("kns.shop", 0),
    );
    run(
        "ingress-only policy leaves egress to profiles",
        &p,
        Flow(tcp("be1", "fe1", 8080)),
        A,
        By::Profile("kns.shop", 0),
    );
}

#[test]
fn named_ports_resolve_against_the_destination_endpoints() {
    let http = be_in("{action: Allow, protocol: TCP, destination: {ports: [http]}}");
    run(
        "named port",
        &http,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "named port, other number",
        &http,
        Flow(tcp("fe1", "be1", 8081)),
        D,
        By::EndOfPolicies,
    );
    let udp_http = be_in("{action: Allow, protocol: UDP, destination: {ports: [http]}}");
    run(
        "named port of another protocol",
        &udp_http,
        Flow(udp("fe1", "be1", 8080)),
        D,
        By::EndOfPolicies,
    );
    let dns = be_in("{action: Allow, protocol: UDP, destination: {ports: [dns]}}");
    run(
        "UDP named port",
        &dns,
        Flow(udp("fe1", "be1", 53)),
        A,
        By::Policy("shop/be", 0),
    );
    let sctp_p = be_in("{action: Allow, protocol: SCTP, destination: {ports: [diameter]}}");
    run(
        "SCTP named port",
        &sctp_p,
        Flow(sctp("fe1", "be1", 3868)),
        A,
        By::Policy("shop/be", 0),
    );
    let not_named = be_in("{action: Allow, protocol: TCP, destination: {notPorts: [http]}}");
    run(
        "named notPort excludes",
        &not_named,
        Flow(tcp("fe1", "be1", 8080)),
        D,
        By::EndOfPolicies,
    );
    run(
        "named notPort, other port",
        &not_named,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let sel_named = be_in(
        "{action: Allow, protocol: TCP, destination: {selector: \"app == 'db'\", ports: [http]}}",
    );
    run(
        "named port of endpoints the side's selector picks",
        &sel_named,
        Flow(tcp("fe1", "be1", 8080)),
        D,
        By::EndOfPolicies,
    );
    // A side without selector fields is not limited to the policy's namespace, for named
    // ports too (Felix resolves them against all() then).
    let out_http = policy(
        "other",
        "out",
        "",
        "app == 'frontend'",
        "egress: [{action: Allow, protocol: TCP, destination: {ports: [http]}}]",
    );
    run(
        "named port without selector reaches other namespaces",
        &out_http,
        Egress("ot1", tcp("ot1", "be1", 8080)),
        A,
        By::Policy("other/out", 0),
    );
    run(
        "named port without selector, other number",
        &out_http,
        Egress("ot1", tcp("ot1", "be1", 8081)),
        D,
        By::EndOfPolicies,
    );
    let out_http_sel = policy(
        "other",
        "out",
        "",
        "app == 'frontend'",
        "egress: [{action: Allow, protocol: TCP, destination: {selector: \"app == 'backend'\", ports: [http]}}]",
    );
    run(
        "named port with a selector stays in the policy's namespace",
        &out_http_sel,
        Egress("ot1", tcp("ot1", "be1", 8080)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn policies_apply_in_order_with_unset_last_and_ties_by_name() {
    let deny_first = policy(
        "shop",
        "a",
        "10",
        "app == 'backend'",
        "ingress: [{action: Deny, protocol: TCP}]",
    ) + &policy(
        "shop",
        "b",
        "20",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    );
    run(
        "lower order first",
        &deny_first,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("shop/a", 0),
    );
    let allow_first = policy(
        "shop",
        "a",
        "30",
        "app == 'backend'",
        "ingress: [{action: Deny, protocol: TCP}]",
    ) + &policy(
        "shop",
        "b",
        "20",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    );
    run(
        "order, not name",
        &allow_first,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/b", 0),
    );
    let unset = policy(
        "shop",
        "a",
        "",
        "app == 'backend'",
        "ingress: [{action: Deny}]",
    ) + &policy(
        "shop",
        "b",
        "1000",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    );
    run(
        "unset order is last",
        &unset,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/b", 0),
    );
    let ties = policy(
        "shop",
        "deny-x",
        "5",
        "app == 'backend'",
        "ingress: [{action: Deny}]",
    ) + &policy(
        "shop",
        "allow-x",
        "5",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    );
    run(
        "ties by name",
        &ties,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/allow-x", 0),
    );
    let fallthrough = policy(
        "shop",
        "a",
        "1",
        "app == 'backend'",
        "ingress: [{action: Allow, protocol: UDP}]",
    ) + &policy(
        "shop",
        "b",
        "2",
        "app == 'backend'",
        "ingress: [{action: Allow, protocol: TCP}]",
    );
    run(
        "unmatched policy hands over",
        &fallthrough,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/b", 0),
    );
    let global_first = policy(
        "",
        "g",
        "1",
        "app == 'backend'",
        "ingress: [{action: Deny}]",
    ) + &policy(
        "shop",
        "n",
        "2",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    );
    run(
        "global and namespaced interleave by order",
        &global_first,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("g", 0),
    );
}

#[test]
fn pass_skips_to_profiles() {
    let gate = policy(
        "shop",
        "gate",
        "1",
        "app == 'backend'",
        "ingress: [{action: Pass}]",
    ) + &policy(
        "shop",
        "deny-all",
        "2",
        "app == 'backend'",
        "ingress: [{action: Deny}]",
    );
    run(
        "pass skips later policies",
        &gate,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
    let lonely = policy(
        "",
        "gate",
        "1",
        "role == 'lonely'",
        "ingress: [{action: Pass}]",
    );
    run(
        "pass with no profile denies",
        &lonely,
        Flow(tcp("fe1", "lone", 80)),
        D,
        By::EndOfProfiles,
    );
    let unmatched = policy(
        "shop",
        "gate",
        "1",
        "app == 'backend'",
        "ingress: [{action: Pass, protocol: UDP}]",
    ) + &policy(
        "shop",
        "deny-all",
        "2",
        "app == 'backend'",
        "ingress: [{action: Deny}]",
    );
    run(
        "unmatched pass does nothing",
        &unmatched,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("shop/deny-all", 0),
    );
    let egress_pass = policy(
        "shop",
        "out",
        "1",
        "app == 'frontend'",
        "egress: [{action: Pass}]",
    );
    run(
        "pass on egress",
        &egress_pass,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
}

#[test]
fn log_records_and_continues() {
    let p = be_in("{action: Log}, {action: Allow, protocol: TCP}");
    run(
        "log then allow",
        &p,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 1),
    );
    let model = Model::from_resources(parse_resources(&format!("{BASE}{p}")).unwrap()).unwrap();
    let e = evaluate_flow(&model, &tcp("fe1", "be1", 80)).unwrap();
    assert!(
        e.trace.iter().any(|s| matches!(
            s,
            TraceStep::Rule {
                index: 0,
                action: Action::Log,
                ..
            }
        )),
        "{e}"
    );
    let only_log = be_in("{action: Log}");
    run(
        "log only: end of policies",
        &only_log,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn policy_types_and_default_deny() {
    let deny_all = policy("shop", "iso", "", "app == 'backend'", "types: [Ingress]");
    run(
        "deny-all ingress idiom",
        &deny_all,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let deny_egress = policy("shop", "iso", "", "app == 'backend'", "types: [Egress]");
    run(
        "deny-all egress idiom",
        &deny_egress,
        Flow(tcp("be1", "fe1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "egress-only policy leaves ingress to profiles",
        &deny_egress,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
    let inferred_egress = policy("shop", "out", "", "app == 'frontend'", "egress: [{action: Allow, protocol: TCP, destination: {selector: \"app == 'backend'\", ports: [8080]}}]");
    run(
        "inferred egress type: allowed",
        &inferred_egress,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Profile("kns.shop", 0),
    );
    run(
        "inferred egress type: denied",
        &inferred_egress,
        Flow(tcp("fe1", "db1", 8080)),
        D,
        By::EndOfPolicies,
    );
    run(
        "egress to a non-endpoint address",
        &inferred_egress,
        Flow(tcp("fe1", "198.51.100.1", 443)),
        D,
        By::EndOfPolicies,
    );
    let egress_nets = policy(
        "shop",
        "out",
        "",
        "app == 'frontend'",
        "egress: [{action: Allow, destination: {nets: [198.51.100.0/24]}}]",
    );
    run(
        "egress to a network",
        &egress_nets,
        Flow(tcp("fe1", "198.51.100.7", 443)),
        A,
        By::Policy("shop/out", 0),
    );
    run(
        "inferred egress-only: ingress to profiles",
        &egress_nets,
        Flow(tcp("be1", "fe1", 80)),
        A,
        By::Profile("kns.shop", 0),
    );
}

#[test]
fn nets_and_not_nets() {
    let p = be_in("{action: Allow, source: {nets: [10.0.0.0/30]}}");
    run(
        "source in net",
        &p,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "source outside net",
        &p,
        Flow(tcp("ot1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let except = be_in("{action: Allow, source: {nets: [10.0.0.0/24], notNets: [10.0.0.3/32]}}");
    run(
        "notNets excludes",
        &except,
        Flow(tcp("db1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "notNets leaves the rest",
        &except,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let any = be_in("{action: Allow, source: {nets: [192.0.2.0/24, 10.0.1.0/24]}}");
    run(
        "nets are ORed",
        &any,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let dst = be_in("{action: Allow, destination: {nets: [10.0.0.2/32]}}");
    run(
        "destination nets",
        &dst,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let not_dst = be_in("{action: Allow, destination: {notNets: [10.0.0.2/32]}}");
    run(
        "destination notNets",
        &not_dst,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let v6 = be_in("{action: Allow, source: {nets: [\"fd00::/64\"]}}");
    run(
        "IPv6 nets",
        &v6,
        Flow(tcp("fe1v6", "be1v6", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "IPv6 nets do not match IPv4",
        &v6,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn selectors_not_selectors_and_namespaces() {
    let not_db = be_in("{action: Allow, source: {notSelector: \"app == 'db'\"}}");
    run(
        "notSelector excludes",
        &not_db,
        Flow(tcp("db1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "notSelector allows others",
        &not_db,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    // Calico limits a side to the policy's namespace as soon as any selector field is used,
    // notSelector included (libcalico-go getEndpointSelector).
    run(
        "notSelector of a namespaced policy: other namespaces do not match",
        &not_db,
        Flow(tcp("ot1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "notSelector of a namespaced policy: non-endpoint addresses do not match",
        &not_db,
        Ingress("be1", tcp("198.51.100.9", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let lone_not = policy(
        "",
        "lone-in",
        "",
        "role == 'lonely'",
        "ingress: [{action: Allow, source: {notSelector: \"role == 'x'\"}}]",
    );
    run(
        "notSelector matches non-endpoint addresses",
        &lone_not,
        Flow(tcp("198.51.100.9", "lone", 80)),
        A,
        By::Policy("lone-in", 0),
    );
    let lone_sel = policy(
        "",
        "lone-in",
        "",
        "role == 'lonely'",
        "ingress: [{action: Allow, source: {selector: all()}}]",
    );
    run(
        "selector never matches a non-endpoint address",
        &lone_sel,
        Flow(tcp("198.51.100.9", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
    let global = policy(
        "",
        "g",
        "",
        "app == 'backend'",
        "ingress: [{action: Allow, source: {selector: \"app == 'frontend'\"}}]",
    );
    run(
        "global policy selectors see every namespace",
        &global,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    let ns_sel = be_in("{action: Allow, source: {namespaceSelector: \"team == 'other'\", selector: \"app == 'frontend'\"}}");
    run(
        "namespaceSelector picks the namespace",
        &ns_sel,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "namespaceSelector excludes own namespace",
        &ns_sel,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns_only = be_in("{action: Allow, source: {namespaceSelector: \"team == 'other'\"}}");
    run(
        "namespaceSelector alone",
        &ns_only,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let ns_all = be_in("{action: Allow, source: {namespaceSelector: all()}}");
    run(
        "namespaceSelector all()",
        &ns_all,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    // all() means every namespace: namespaced endpoints only.
    run(
        "namespaceSelector all() leaves out host endpoints",
        &ns_all,
        Ingress("be1", tcp("hep", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "namespaceSelector all() leaves out non-namespaced workloads",
        &ns_all,
        Ingress("be1", tcp("lone", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns_global = be_in("{action: Allow, source: {namespaceSelector: global()}}");
    run(
        "namespaceSelector global() picks non-namespaced endpoints",
        &ns_global,
        Ingress("be1", tcp("lone", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "namespaceSelector global() leaves out namespaced ones",
        &ns_global,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns_label = policy("", "g", "", "app == 'backend'", "ingress: [{action: Allow, source: {selector: \"projectcalico.org/namespace == 'other'\"}}]");
    run(
        "implicit namespace label",
        &ns_label,
        Flow(tcp("ot1", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    let orch = policy("", "g", "", "app == 'backend'", "ingress: [{action: Allow, source: {selector: \"projectcalico.org/orchestrator == 'openstack'\"}}]");
    run(
        "implicit orchestrator label",
        &orch,
        Ingress("be1", tcp("lone", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    run(
        "implicit orchestrator label, no match",
        &orch,
        Ingress("be1", tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let inherited = policy(
        "",
        "g",
        "",
        "app == 'backend'",
        "ingress: [{action: Allow, source: {selector: \"pcns.env == 'prod'\"}}]",
    );
    run(
        "labels inherited from profiles",
        &inherited,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("g", 0),
    );
    run(
        "labels inherited from profiles, absent",
        &inherited,
        Flow(tcp("ot1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let own_wins = policy("", "t", "", "tier == 'api'", "ingress: [{action: Deny}]");
    run(
        "own label wins over profile label",
        &own_wins,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("t", 0),
    );
    let profile_tier = policy(
        "",
        "t",
        "",
        "tier == 'profile-tier'",
        "ingress: [{action: Deny}]",
    );
    run(
        "profile label applies where no own label",
        &profile_tier,
        Flow(tcp("be1", "fe1", 80)),
        D,
        By::Policy("t", 0),
    );
    let ns_all_deny = policy("shop", "deny", "", "all()", "ingress: [{action: Deny}]");
    run(
        "namespaced policy does not reach other namespaces",
        &ns_all_deny,
        Flow(tcp("fe1", "ot1", 80)),
        A,
        By::Profile("kns.other", 0),
    );
    run(
        "namespaced policy all() in its namespace",
        &ns_all_deny,
        Flow(tcp("ot1", "fe1", 80)),
        D,
        By::Policy("shop/deny", 0),
    );
    let has_sel = be_in("{action: Allow, source: {selector: \"has(app) && app not in {'db'}\"}}");
    run(
        "has() and not in",
        &has_sel,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "has() and not in, excluded",
        &has_sel,
        Flow(tcp("db1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn host_endpoints() {
    let ssh = policy(
        "",
        "ssh",
        "",
        "role == 'host'",
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]",
    );
    run(
        "host endpoint allowed",
        &ssh,
        HostIngress("h1-eth0", tcp("fe1", "hep", 22)),
        A,
        By::Policy("ssh", 0),
    );
    run(
        "host endpoint default deny",
        &ssh,
        HostIngress("h1-eth0", tcp("fe1", "hep", 23)),
        D,
        By::EndOfPolicies,
    );
    let ns = policy("shop", "all", "", "all()", "ingress: [{action: Allow}]");
    run(
        "namespaced policies skip host endpoints",
        &ns,
        HostIngress("h1-eth0", tcp("fe1", "hep", 22)),
        D,
        By::NoPolicyOrProfile,
    );
}

#[test]
fn protocols() {
    let udp_only = be_in("{action: Allow, protocol: UDP}");
    run(
        "protocol mismatch",
        &udp_only,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "protocol match",
        &udp_only,
        Flow(udp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let gre = be_in("{action: Allow, protocol: 47}");
    run(
        "protocol by number",
        &gre,
        Flow(proto(47, "fe1", "be1")),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "protocol by number, other",
        &gre,
        Flow(proto(50, "fe1", "be1")),
        D,
        By::EndOfPolicies,
    );
    let not_tcp = be_in("{action: Allow, notProtocol: TCP}");
    run(
        "notProtocol lets others through",
        &not_tcp,
        Flow(udp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "notProtocol excludes",
        &not_tcp,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn icmp_types_and_codes() {
    let echo = be_in("{action: Allow, protocol: ICMP, icmp: {type: 8}}");
    run(
        "ICMP type",
        &echo,
        Flow(icmp("fe1", "be1", 8, 0)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ICMP other type",
        &echo,
        Flow(icmp("fe1", "be1", 0, 0)),
        D,
        By::EndOfPolicies,
    );
    let unreach = be_in("{action: Allow, protocol: ICMP, icmp: {type: 3, code: 4}}");
    run(
        "ICMP type and code",
        &unreach,
        Flow(icmp("fe1", "be1", 3, 4)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ICMP other code",
        &unreach,
        Flow(icmp("fe1", "be1", 3, 1)),
        D,
        By::EndOfPolicies,
    );
    let not_echo = be_in("{action: Allow, protocol: ICMP, notICMP: {type: 8}}");
    run(
        "notICMP lets others through",
        &not_echo,
        Flow(icmp("fe1", "be1", 0, 0)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "notICMP excludes",
        &not_echo,
        Flow(icmp("fe1", "be1", 8, 0)),
        D,
        By::EndOfPolicies,
    );
    let v6 = be_in("{action: Allow, protocol: ICMPv6, ipVersion: 6, icmp: {type: 128}}");
    run(
        "ICMPv6 echo",
        &v6,
        Flow(icmp6("fe1v6", "be1v6", 128, 0)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ICMP rule vs ICMPv6 packet",
        &echo,
        Flow(icmp6("fe1v6", "be1v6", 128, 0)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn ip_versions() {
    let v6 = be_in("{action: Allow, ipVersion: 6}");
    run(
        "ipVersion 6 match",
        &v6,
        Flow(tcp("fe1v6", "be1v6", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "ipVersion 6 vs IPv4",
        &v6,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let v4 = be_in("{action: Allow, ipVersion: 4, source: {nets: [10.0.0.0/8]}}");
    run(
        "ipVersion 4 with nets",
        &v4,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
}

#[test]
fn ports_ranges_and_negations() {
    let range = be_in("{action: Allow, protocol: TCP, destination: {ports: [\"8000:8100\"]}}");
    run(
        "in range",
        &range,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "range end is inclusive",
        &range,
        Flow(tcp("fe1", "be1", 8100)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "above range",
        &range,
        Flow(tcp("fe1", "be1", 8101)),
        D,
        By::EndOfPolicies,
    );
    let list =
        be_in("{action: Allow, protocol: TCP, destination: {ports: [80, 443, \"8000:8100\"]}}");
    run(
        "port lists are ORed",
        &list,
        Flow(tcp("fe1", "be1", 443)),
        A,
        By::Policy("shop/be", 0),
    );
    let not22 = be_in("{action: Allow, protocol: TCP, destination: {notPorts: [22]}}");
    run(
        "notPorts lets others through",
        &not22,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "notPorts excludes",
        &not22,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::EndOfPolicies,
    );
    let sport = be_in("{action: Allow, protocol: TCP, source: {ports: [40000]}}");
    run(
        "source port",
        &sport,
        Flow(tcp_from("fe1", 40000, "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "source port mismatch",
        &sport,
        Flow(tcp_from("fe1", 40001, "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let both =
        be_in("{action: Allow, protocol: TCP, destination: {ports: [\"1:1024\"], notPorts: [22]}}");
    run(
        "ports minus notPorts",
        &both,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::EndOfPolicies,
    );
    run(
        "ports minus notPorts, allowed",
        &both,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    let udp_ports = be_in("{action: Allow, protocol: UDP, destination: {ports: [53]}}");
    run(
        "port match needs the protocol",
        &udp_ports,
        Flow(tcp("fe1", "be1", 53)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn bad_requests_are_typed_errors() {
    let model = Model::from_resources(parse_resources(BASE).unwrap()).unwrap();
    let missing = EndpointRef::Host("nope".into());
    assert_eq!(
        evaluate(&model, &missing, Direction::Ingress, &tcp("fe1", "be1", 80)),
        Err(EvalError::UnknownEndpoint(missing))
    );
    let be1 = model
        .workload_endpoints
        .keys()
        .find(|id| id.workload == "shop.be1")
        .unwrap()
        .clone();
    assert!(matches!(
        evaluate(
            &model,
            &EndpointRef::Workload(be1),
            Direction::Ingress,
            &tcp("be1", "fe1", 80)
        ),
        Err(EvalError::NotEndpointAddress { .. })
    ));
    assert!(matches!(
        evaluate_flow(&model, &tcp("192.0.2.1", "192.0.2.2", 80)),
        Err(EvalError::NoEndpoint { .. })
    ));
}

#[test]
fn applicable_policies_are_listed_in_order() {
    let extra = policy(
        "shop",
        "b",
        "20",
        "app == 'backend'",
        "ingress: [{action: Allow}]",
    ) + &policy(
        "",
        "a",
        "10",
        "all()",
        "ingress: [{action: Allow}]\negress: [{action: Allow}]",
    ) + &policy("other", "c", "1", "all()", "ingress: [{action: Allow}]");
    let model = Model::from_resources(parse_resources(&format!("{BASE}{extra}")).unwrap()).unwrap();
    let be1 = model
        .workload_endpoints
        .values()
        .find(|e| e.id.workload == "shop.be1")
        .unwrap();
    let a = applicable_policies(&model, be1);
    assert_eq!(a.ingress, vec!["a".to_string(), "shop/b".to_string()]);
    assert_eq!(a.egress, vec!["a".to_string()]);
}

#[test]
fn the_trace_reads_as_an_explanation() {
    let gate = policy(
        "shop",
        "gate",
        "1",
        "app == 'backend'",
        "ingress: [{action: Log}, {action: Pass}]",
    );
    let model = Model::from_resources(parse_resources(&format!("{BASE}{gate}")).unwrap()).unwrap();
    let id = |w: &str| {
        model
            .workload_endpoints
            .values()
            .find(|e| e.id.workload == w)
            .unwrap()
            .id
            .to_string()
    };
    let e = evaluate_flow(&model, &tcp("fe1", "be1", 80)).unwrap();
    let want = format!(
        "Egress of {}:\n  profile kns.shop: rule 0 matched: Allow\n\
         Ingress of {}:\n  policy shop/gate: rule 0 matched: Log (recorded; evaluation goes on)\n  \
         policy shop/gate: rule 1 matched: Pass (remaining policies skipped; on to the profiles)\n  \
         profile kns.shop: rule 0 matched: Allow\nverdict: ALLOW",
        id("shop.fe1"),
        id("shop.be1")
    );
    assert_eq!(e.to_string(), want);

    let e = evaluate_flow(&model, &tcp("fe1", "ps1", 80)).unwrap();
    assert!(
        e.to_string()
            .contains("profile passer: rule 0 matched: Pass (on to the next profile)"),
        "{e}"
    );
    let e = evaluate_flow(&model, &tcp("fe1", "lone", 80)).unwrap();
    assert!(
        e.to_string()
            .ends_with("  no policy applies and the endpoint has no profile: Deny\nverdict: DENY"),
        "{e}"
    );
}
