//! Network sets: a rule selector matches an address when it belongs to a selected endpoint
//! or falls in a network of a selected network set (Calico's NetworkSet/GlobalNetworkSet:
//! "it includes the CIDRs from any network sets that match the selector"); namespaced sets
//! carry their namespace (and its `pcns.` labels), so namespaced policies see only their own.

use super::*;

/// A global set, a `shop` set, an `other` set with the same labels, an IPv6 set.
const SETS: &str = r#"
---
kind: NetworkSet
name: partners
labels: {role: partner}
nets: [198.51.100.0/24, 203.0.113.7]
---
kind: NetworkSet
name: shop-db
namespace: shop
labels: {role: db}
nets: [192.0.2.128/25]
---
kind: NetworkSet
name: other-db
namespace: other
labels: {role: db}
nets: [192.0.2.0/25]
---
kind: NetworkSet
name: partners-v6
labels: {role: partner}
nets: ["2001:db8:1::/48"]
"#;

/// A global policy on the lonely VM with one ingress rule.
fn lone_in(rule: &str) -> String {
    format!(
        "{SETS}{}",
        policy(
            "",
            "lone-in",
            "",
            "role == 'lonely'",
            &format!("ingress: [{rule}]")
        )
    )
}

#[test]
fn a_selector_matches_addresses_in_a_selected_global_set() {
    let p = lone_in("{action: Allow, source: {selector: \"role == 'partner'\"}}");
    let by = || By::Policy("lone-in", 0);
    run(
        "inside a CIDR of the set",
        &p,
        Flow(tcp("198.51.100.9", "lone", 80)),
        A,
        by(),
    );
    run(
        "a bare address of the set",
        &p,
        Flow(tcp("203.0.113.7", "lone", 80)),
        A,
        by(),
    );
    run(
        "next to the bare address",
        &p,
        Flow(tcp("203.0.113.8", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "outside every selected set",
        &p,
        Flow(tcp("192.0.2.200", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
    let v6 = Packet::tcp(ip("2001:db8:1::5"), 40000, "fd00::9".parse().unwrap(), 80);
    let v6_lone = format!(
        "{p}---\nkind: WorkloadEndpoint\norchestrator: openstack\nworkload: vm6\nendpoint: tap0\nnode: h1\ninterfaceName: tap-6\nipNetworks: ['fd00::9/128']\nlabels: {{role: lonely}}\n"
    );
    run("IPv6 networks of a set", &v6_lone, Flow(v6), A, by());
}

#[test]
fn a_set_not_selected_does_not_match() {
    let p = lone_in("{action: Allow, source: {selector: \"role == 'nobody'\"}}");
    run(
        "labels not matching",
        &p,
        Flow(tcp("198.51.100.9", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn not_selector_excludes_addresses_of_selected_sets() {
    let p = lone_in("{action: Allow, source: {notSelector: \"role == 'partner'\"}}");
    run(
        "in the set: excluded",
        &p,
        Flow(tcp("198.51.100.9", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
    run(
        "outside the set: allowed",
        &p,
        Flow(tcp("192.0.2.200", "lone", 80)),
        A,
        By::Policy("lone-in", 0),
    );
}

#[test]
fn destination_selectors_match_sets_too() {
    let p = format!(
        "{SETS}{}",
        policy(
            "shop",
            "fe-out",
            "",
            "app == 'frontend'",
            "egress: [{action: Deny, destination: {selector: \"role == 'db'\"}}]"
        )
    );
    run(
        "egress to the shop set",
        &p,
        Egress("fe1", tcp("fe1", "192.0.2.130", 5432)),
        D,
        By::Policy("shop/fe-out", 0),
    );
    run(
        "egress to the other namespace's set: not selected, end of policies",
        &p,
        Egress("fe1", tcp("fe1", "192.0.2.10", 5432)),
        D,
        By::EndOfPolicies,
    );
}

#[test]
fn namespaced_policies_see_only_their_namespace_sets() {
    let p = format!(
        "{SETS}{}",
        be_in("{action: Allow, source: {selector: \"role == 'db'\"}}")
    );
    let by = || By::Policy("shop/be", 0);
    run(
        "shop set",
        &p,
        Ingress("be1", tcp("192.0.2.130", "be1", 80)),
        A,
        by(),
    );
    run(
        "other namespace's set with the same labels",
        &p,
        Ingress("be1", tcp("192.0.2.10", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let partner = format!(
        "{SETS}{}",
        be_in("{action: Allow, source: {selector: \"role == 'partner'\"}}")
    );
    run(
        "a global set is not in the policy's namespace",
        &partner,
        Ingress("be1", tcp("198.51.100.9", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let global = format!(
        "{SETS}{}",
        be_in("{action: Allow, source: {namespaceSelector: global(), selector: \"role == 'partner'\"}}")
    );
    run(
        "namespaceSelector global() reaches global sets",
        &global,
        Ingress("be1", tcp("198.51.100.9", "be1", 80)),
        A,
        by(),
    );
}

#[test]
fn namespaced_sets_carry_their_namespace_labels() {
    let p = lone_in("{action: Allow, source: {namespaceSelector: \"team == 'shop'\"}}");
    run(
        "the shop set inherits pcns.team from kns.shop",
        &p,
        Flow(tcp("192.0.2.130", "lone", 80)),
        A,
        By::Policy("lone-in", 0),
    );
    run(
        "the other set does not",
        &p,
        Flow(tcp("192.0.2.10", "lone", 80)),
        D,
        By::EndOfPolicies,
    );
    let ns =
        lone_in("{action: Allow, source: {selector: \"projectcalico.org/namespace == 'other'\"}}");
    run(
        "the implicit namespace label",
        &ns,
        Flow(tcp("192.0.2.10", "lone", 80)),
        A,
        By::Policy("lone-in", 0),
    );
}

#[test]
fn endpoints_and_sets_are_selected_together() {
    let p = format!(
        "{SETS}{}\n---\nkind: NetworkSet\nname: fe-too\nnamespace: shop\nlabels: {{app: frontend}}\nnets: [192.0.2.100/32]\n",
        be_in("{action: Allow, source: {selector: \"app == 'frontend'\"}}")
    );
    let by = || By::Policy("shop/be", 0);
    run("the endpoint", &p, Flow(tcp("fe1", "be1", 80)), A, by());
    run(
        "the set",
        &p,
        Ingress("be1", tcp("192.0.2.100", "be1", 80)),
        A,
        by(),
    );
}
