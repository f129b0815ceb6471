//! Staged policies (Calico's `StagedNetworkPolicy`, `StagedGlobalNetworkPolicy`): evaluated,
//! never enforced; what each would have denied is reported ([`super::super::staged`]).
//! Calico documents them as a preview of a policy's effect: a staged policy that selects an
//! endpoint would bring its tier's default deny with it, and its own `Deny` rules deny.

use super::*;
use crate::compile::{HostConfig, HostPath};
use crate::eval::{evaluate_host, StagedDenial, StagedRule};

/// A staged global policy `name` (written `staged:<name>`), with a tier line or none.
fn staged(name: &str, order: &str, selector: &str, body: &str) -> String {
    policy(
        "",
        &format!("staged:{name}"),
        order,
        selector,
        &format!("stagedAction: Set\n{body}"),
    )
}

const BACKEND: &str = "app == 'backend'";

fn tier(name: &str, order: &str, default_action: &str) -> String {
    format!("---\nkind: Tier\nname: {name}\norder: {order}\ndefaultAction: {default_action}\n")
}

/// The verdict of `check` on `BASE` + `extra`, and what staged policies would have denied
/// (policy, tier, rule index or `None` for the end of the tier).
fn judge(extra: &str, check: Check) -> (Verdict, Vec<(String, String, Option<usize>)>) {
    let model = Model::from_resources(parse_resources(&format!("{BASE}{extra}")).unwrap()).unwrap();
    let eval = match check {
        Flow(p) => evaluate_flow(&model, &p),
        HostIngress(h, p) => evaluate(&model, &EndpointRef::Host(h.into()), Direction::Ingress, &p),
        Ingress(w, p) => on_workload(&model, w, Direction::Ingress, &p),
        Egress(w, p) => on_workload(&model, w, Direction::Egress, &p),
    }
    .unwrap();
    let staged = eval
        .staged
        .iter()
        .map(|StagedDenial { policy, tier, rule }| {
            let rule = match rule {
                StagedRule::Rule(i) => Some(*i),
                StagedRule::EndOfTier => None,
            };
            (policy.clone(), tier.clone(), rule)
        })
        .collect();
    (eval.verdict, staged)
}

fn denial(policy: &str, tier: &str, rule: Option<usize>) -> (String, String, Option<usize>) {
    (policy.into(), tier.into(), rule)
}

#[test]
fn a_staged_deny_rule_reports_and_changes_nothing() {
    let extra = staged(
        "no-8080",
        "",
        BACKEND,
        "ingress: [{action: Deny, protocol: TCP, destination: {ports: [8080]}}]",
    );
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(
        v, A,
        "the profile still allows: staged policies are not enforced"
    );
    assert_eq!(s, [denial("staged:no-8080", "default", Some(0))]);
    // No rule matched, and no enforced policy brings the tier in: with the staged policy
    // in force the tier would apply, and end in its default deny.
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 22)));
    assert_eq!(v, A);
    assert_eq!(s, [denial("staged:no-8080", "default", None)]);
}

#[test]
fn a_staged_policy_alone_in_its_tier_brings_the_tiers_default_deny() {
    let extra = staged(
        "ssh-only",
        "",
        BACKEND,
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]",
    );
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(v, A);
    assert_eq!(s, [denial("staged:ssh-only", "default", None)]);
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 22)));
    assert_eq!((v, s.len()), (A, 0), "its own Allow");
    // The same in a tier that passes by default: no end-of-tier denial.
    let passing =
        tier("late", "200", "Pass") + &extra.replace("stagedAction", "tier: late\nstagedAction");
    let (_, s) = judge(&passing, Flow(tcp("fe1", "be1", 8080)));
    assert!(s.is_empty(), "{s:?}");
}

#[test]
fn a_tier_with_enforced_policies_denies_anyway_and_counts_nothing_at_its_end() {
    let extra = staged(
        "ssh-only",
        "1",
        BACKEND,
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]",
    ) + &policy(
        "",
        "web",
        "2",
        BACKEND,
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]",
    );
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(
        (v, s.len()),
        (A, 0),
        "the enforced policy after it allows: {s:?}"
    );
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 9090)));
    assert_eq!(
        (v, s.len()),
        (D, 0),
        "denied by the enforced tier's end: {s:?}"
    );
}

#[test]
fn an_enforced_decision_before_a_staged_policy_hides_the_packet_from_it() {
    let extra = policy("", "allow-all", "1", BACKEND, "ingress: [{action: Allow}]")
        + &staged("deny-all", "2", BACKEND, "ingress: [{action: Deny}]");
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!((v, s.len()), (A, 0), "{s:?}");
    // Ordered first, the staged policy sees it.
    let first = extra.replace("order: 2", "order: 0");
    let (v, s) = judge(&first, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(v, A);
    assert_eq!(s, [denial("staged:deny-all", "default", Some(0))]);
}

#[test]
fn a_staged_allow_closes_the_staged_evaluation_in_every_later_tier() {
    let extra = staged(
        "web",
        "1",
        BACKEND,
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]",
    ) + &staged("deny-all", "2", BACKEND, "ingress: [{action: Deny}]")
        + &tier("late", "2000000", "Deny")
        + &staged(
            "late-deny",
            "",
            BACKEND,
            "tier: late\ningress: [{action: Deny}]",
        );
    let (_, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert!(s.is_empty(), "closed by staged:web's Allow: {s:?}");
    let (_, s) = judge(&extra, Flow(tcp("fe1", "be1", 9090)));
    assert_eq!(
        s,
        [denial("staged:deny-all", "default", Some(0))],
        "first denial closes"
    );
}

#[test]
fn a_staged_pass_skips_the_staged_rest_of_its_tier_only() {
    let extra = tier("security", "10", "Deny")
        + &staged("pass-web", "1", BACKEND, "tier: security\ningress: [{action: Pass, protocol: TCP, destination: {ports: [8080]}}]")
        + &staged("deny-all", "2", BACKEND, "tier: security\ningress: [{action: Deny}]")
        + &staged("default-deny", "", BACKEND, "ingress: [{action: Deny, protocol: TCP}]");
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(v, A);
    assert_eq!(
        s,
        [denial("staged:default-deny", "default", Some(0))],
        "passed out of security, no end-of-tier there, denied in the next tier"
    );
    let (_, s) = judge(&extra, Flow(tcp("fe1", "be1", 9090)));
    assert_eq!(s, [denial("staged:deny-all", "security", Some(0))]);
    // Several staged policies at a tier's end: each of them would bring it in.
    let ends = tier("security", "10", "Deny")
        + &staged(
            "a",
            "1",
            BACKEND,
            "tier: security\ningress: [{action: Allow, protocol: UDP}]",
        )
        + &staged(
            "b",
            "2",
            BACKEND,
            "tier: security\ningress: [{action: Allow, protocol: SCTP}]",
        );
    let (_, s) = judge(&ends, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(
        s,
        [
            denial("staged:a", "security", None),
            denial("staged:b", "security", None)
        ]
    );
}

#[test]
fn staged_policies_are_judged_per_endpoint_direction_and_by_scope() {
    // Egress of fe1 and ingress of be1, each on its own.
    let extra = staged(
        "egress-deny",
        "",
        "app == 'frontend'",
        "egress: [{action: Deny}]",
    ) + &staged("ingress-deny", "", BACKEND, "ingress: [{action: Deny}]");
    let (v, s) = judge(&extra, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(v, A);
    assert_eq!(
        s,
        [
            denial("staged:egress-deny", "default", Some(0)),
            denial("staged:ingress-deny", "default", Some(0))
        ]
    );
    // A namespaced staged policy applies in its namespace only.
    let other = policy(
        "other",
        "staged:deny",
        "",
        "all()",
        "stagedAction: Set\ningress: [{action: Deny}]",
    );
    let (_, s) = judge(&other, Flow(tcp("fe1", "be1", 8080)));
    assert!(s.is_empty(), "{s:?}");
    let shop = other.replace("namespace: other", "namespace: shop");
    let (_, s) = judge(&shop, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(s, [denial("shop/staged:deny", "default", Some(0))]);
}

/// [`judge`] for the host endpoint `h1-eth0` on `path` (the default failsafe ports).
fn judge_path(extra: &str, path: HostPath, p: Packet) -> (Option<Verdict>, Vec<StagedDenial>) {
    let model = Model::from_resources(parse_resources(&format!("{BASE}{extra}")).unwrap()).unwrap();
    let e = evaluate_host(&model, "h1-eth0", path, &p, &HostConfig::default()).unwrap();
    (e.verdict, e.staged)
}

#[test]
fn staged_global_policies_preview_host_endpoints_on_their_paths() {
    // Calico: a StagedGlobalNetworkPolicy applies to host endpoints too.
    let host = staged(
        "host",
        "1",
        "role == 'host'",
        "ingress: [{action: Deny, protocol: TCP}]",
    ) + &policy(
        "",
        "host-open",
        "2",
        "role == 'host'",
        "ingress: [{action: Allow}]",
    );
    let to_host = |port| Packet::tcp(ip("fe1"), 40000, "192.0.2.10".parse().unwrap(), port);
    let host_deny = StagedDenial {
        policy: "staged:host".into(),
        tier: "default".into(),
        rule: StagedRule::Rule(0),
    };
    let (v, s) = judge_path(&host, HostPath::In, to_host(8080));
    assert_eq!((v, s), (Some(A), vec![host_deny.clone()]));
    // What the failsafe ports let through reaches no policy, staged or not.
    let (v, s) = judge_path(&host, HostPath::In, to_host(22));
    assert_eq!((v, s.len()), (Some(A), 0), "{s:?}");
    // Not applying on forward, it is not on the forwarded path.
    let (v, s) = judge_path(&host, HostPath::FwdIn, to_host(8080));
    assert_eq!((v, s.len()), (Some(A), 0), "{s:?}");
    // The endpoint as a whole (ingress) sees it as the path to the host does.
    let (_, s) = judge(&host, HostIngress("h1-eth0", to_host(8080)));
    assert_eq!(s, [denial("staged:host", "default", Some(0))]);

    // Applying on forward, alone on the path: the packet is allowed (no forward policy
    // governs it), and the staged policy's rule, or its tier's end, would deny.
    let forward = staged(
        "fwd",
        "",
        "role == 'host'",
        "applyOnForward: true\ningress: [{action: Deny, protocol: UDP}]",
    );
    let through = |p: Packet| Packet {
        dst: ip("be1"),
        ..p
    };
    let (v, s) = judge_path(&forward, HostPath::FwdIn, through(to_host(80)));
    let end = StagedDenial {
        policy: "staged:fwd".into(),
        tier: "default".into(),
        rule: StagedRule::EndOfTier,
    };
    assert_eq!((v, s), (Some(A), vec![end]));
    let udp = Packet::udp(ip("fe1"), 40000, ip("be1"), 53);
    let (v, s) = judge_path(&forward, HostPath::FwdIn, udp.clone());
    assert_eq!(s.first().map(|d| d.rule), Some(StagedRule::Rule(0)));
    assert_eq!(v, Some(A));
    // Pre-DNAT and untracked paths have no staged policies.
    let (_, s) = judge_path(&forward, HostPath::PreDnat, udp);
    assert!(s.is_empty(), "{s:?}");
}

#[test]
fn a_staged_deletion_and_a_staged_twin_of_an_enforced_policy() {
    // A staged Delete has no rules and judges nothing.
    let delete = policy("", "staged:web", "", BACKEND, "stagedAction: Delete");
    let (_, s) = judge(&delete, Flow(tcp("fe1", "be1", 8080)));
    assert!(s.is_empty(), "{s:?}");
    // `staged:web` sits beside the enforced `web`: both are judged.
    let twin = policy(
        "",
        "web",
        "1",
        BACKEND,
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]",
    ) + &staged(
        "web",
        "1",
        BACKEND,
        "ingress: [{action: Deny, protocol: TCP, destination: {ports: [8080]}}]",
    );
    let (v, s) = judge(&twin, Flow(tcp("fe1", "be1", 8080)));
    assert_eq!(v, A);
    // Equal orders: by name, `staged:web` before `web`.
    assert_eq!(s, [denial("staged:web", "default", Some(0))]);
    let after = twin.replace(
        "order: 1\nselector: \"app == 'backend'\"\nstagedAction",
        "order: 2\nselector: \"app == 'backend'\"\nstagedAction",
    );
    let (_, s) = judge(&after, Flow(tcp("fe1", "be1", 8080)));
    assert!(
        s.is_empty(),
        "after it, web's Allow hides the packet: {s:?}"
    );
}

#[test]
fn staged_names_and_fields_are_validated() {
    let bad = |yaml: &str, field: &str| {
        let err = parse_resources(yaml)
            .map_err(|e| e.to_string())
            .and_then(|rs| Model::from_resources(rs).map_err(|e| e.to_string()))
            .expect_err(yaml);
        assert!(err.contains(&format!("field {field}")), "{yaml}: {err}");
    };
    bad("kind: Policy\nname: web\nstagedAction: Set\n", "name");
    bad("kind: Policy\nname: staged:web\n", "name");
    bad(
        "kind: Policy\nname: staged:Web\nstagedAction: Set\n",
        "name",
    );
    bad(
        "kind: Policy\nname: staged:web\nstagedAction: Set\napplyOnForward: true\npreDNAT: true\ningress: [{action: Deny}]\n",
        "preDNAT",
    );
    bad(
        "kind: Policy\nname: staged:web\nstagedAction: Delete\ningress: [{action: Deny}]\n",
        "stagedAction",
    );
}
