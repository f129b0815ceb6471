//! Tiers, as Calico documents them (the `Tier` resource reference and "Get started with
//! policy tiers"): tiers in order, `Pass` to the next tier, each tier's `defaultAction`
//! only when one of its policies applies, profiles after the last tier, Calico's built-in
//! tiers, and policies of a tier that does not exist held.

use super::*;

/// A global policy `name` in `tier` (empty: none written, so `default`).
fn gnp(tier: &str, name: &str, order: &str, selector: &str, body: &str) -> String {
    if tier.is_empty() {
        return policy("", name, order, selector, body);
    }
    policy("", name, order, selector, &format!("tier: {tier}\n{body}"))
}

/// A tier with an order (empty: none) and a default action.
fn tier(name: &str, order: &str, default_action: &str) -> String {
    let order = if order.is_empty() {
        String::new()
    } else {
        format!("order: {order}\n")
    };
    format!("---\nkind: Tier\nname: {name}\n{order}defaultAction: {default_action}\n")
}

const BACKEND: &str = "app == 'backend'";

/// The default tier admits 8080 to the backend.
fn default_allows_8080() -> String {
    gnp(
        "",
        "allow-8080",
        "",
        BACKEND,
        "ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]",
    )
}

#[test]
fn a_tier_ending_in_deny_drops_what_a_later_tier_would_allow() {
    let extra = tier("security", "10", "Deny")
        + &gnp(
            "security",
            "ssh-only",
            "",
            BACKEND,
            "ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]",
        )
        + &default_allows_8080();
    run(
        "no rule of tier security matched: its default Deny",
        &extra,
        Flow(tcp("fe1", "be1", 8080)),
        D,
        By::EndOfTier("security"),
    );
    run(
        "a rule of the first tier allows: final",
        &extra,
        Flow(tcp("fe1", "be1", 22)),
        A,
        By::Policy("ssh-only", 0),
    );
    // Written without a defaultAction, a tier denies (Calico's default).
    let implicit = extra.replace("defaultAction: Deny\n", "");
    run(
        "defaultAction unset is Deny",
        &implicit,
        Flow(tcp("fe1", "be1", 8080)),
        D,
        By::EndOfTier("security"),
    );
}

#[test]
fn pass_skips_the_rest_of_its_tier_and_goes_to_the_next_tier() {
    let extra = tier("security", "10", "Deny")
        + &gnp(
            "security",
            "pass-web",
            "1",
            BACKEND,
            "ingress: [{action: Pass, protocol: TCP, destination: {ports: [8080]}}]",
        )
        + &gnp(
            "security",
            "deny-rest",
            "2",
            BACKEND,
            "ingress: [{action: Deny}]",
        )
        + &default_allows_8080();
    run(
        "Pass in tier security: deny-rest skipped, the default tier allows",
        &extra,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("allow-8080", 0),
    );
    run(
        "no Pass: the next policy of the tier denies",
        &extra,
        Flow(tcp("fe1", "be1", 9090)),
        D,
        By::Policy("deny-rest", 0),
    );
    // Pass in the last tier that applies: the profiles decide.
    let last = tier("security", "10", "Deny")
        + &gnp(
            "security",
            "pass-all",
            "",
            "all()",
            "ingress: [{action: Pass}]",
        );
    run(
        "passed by the last tier: the profile allows",
        &last,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Profile("kns.shop", 0),
    );
    run(
        "passed by the last tier: the first profile denies",
        &last,
        Flow(tcp("fe1", "cl1", 22)),
        D,
        By::Profile("closed", 0),
    );
    run(
        "passed by the last tier, no profile: end of profiles",
        &last,
        Flow(tcp("fe1", "lone", 22)),
        D,
        By::EndOfProfiles,
    );
}

#[test]
fn a_tier_none_of_whose_policies_apply_is_skipped() {
    let not_selecting = tier("security", "10", "Deny")
        + &gnp(
            "security",
            "db-only",
            "",
            "app == 'db'",
            "ingress: [{action: Allow}]",
        )
        + &default_allows_8080();
    run(
        "tier security selects no backend: skipped, no end-of-tier deny",
        &not_selecting,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("allow-8080", 0),
    );
    let egress_only = tier("security", "10", "Deny")
        + &gnp(
            "security",
            "egress-only",
            "",
            BACKEND,
            "types: [Egress]\negress: [{action: Allow}]",
        )
        + &default_allows_8080();
    run(
        "tier security governs only egress of the backend: skipped for ingress",
        &egress_only,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("allow-8080", 0),
    );
    let egress_deny = tier("security", "10", "Deny")
        + &gnp(
            "security",
            "fe-egress",
            "",
            "app == 'frontend'",
            "egress: [{action: Allow, protocol: UDP}]",
        );
    run(
        "the sender's egress tier ends in Deny",
        &egress_deny,
        Flow(tcp("fe1", "be1", 8080)),
        D,
        By::EndOfTier("security"),
    );
}

#[test]
fn a_pass_tier_hands_over_when_no_rule_decided() {
    let extra = tier("platform", "10", "Pass")
        + &gnp(
            "platform",
            "no-ssh",
            "",
            BACKEND,
            "ingress: [{action: Deny, protocol: TCP, destination: {ports: [22]}}]",
        )
        + &default_allows_8080();
    run(
        "no rule of tier platform matched: Pass to the default tier",
        &extra,
        Flow(tcp("fe1", "be1", 8080)),
        A,
        By::Policy("allow-8080", 0),
    );
    run(
        "a Deny rule of the Pass tier is still final",
        &extra,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::Policy("no-ssh", 0),
    );
    run(
        "Pass by default, then the default tier's own default Deny",
        &extra,
        Flow(tcp("fe1", "be1", 9090)),
        D,
        By::EndOfPolicies,
    );
    let alone = tier("platform", "10", "Pass")
        + &gnp(
            "platform",
            "no-ssh",
            "",
            BACKEND,
            "ingress: [{action: Deny, protocol: TCP, destination: {ports: [22]}}]",
        );
    run(
        "Pass by default from the only tier: the profiles decide",
        &alone,
        Flow(tcp("fe1", "be1", 9090)),
        A,
        By::Profile("kns.shop", 0),
    );
}

#[test]
fn tiers_apply_in_order_then_name_unordered_last() {
    let deny = "ingress: [{action: Deny}]";
    let allow = "ingress: [{action: Allow}]";
    let by_name = tier("b", "5", "Deny")
        + &tier("a", "5", "Deny")
        + &gnp("b", "b-allows", "", BACKEND, allow)
        + &gnp("a", "a-denies", "", BACKEND, deny);
    run(
        "equal orders: tier a before tier b",
        &by_name,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("a-denies", 0),
    );
    let unordered = tier("aaa", "", "Deny")
        + &tier("zzz", "100", "Deny")
        + &gnp("aaa", "first-by-name", "", BACKEND, allow)
        + &gnp("zzz", "ordered", "", BACKEND, deny);
    run(
        "a tier without order comes after every ordered one",
        &unordered,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("ordered", 0),
    );
    // Policy order does not cross tiers: order 1 in a later tier comes after order 1000 in
    // an earlier one.
    let across = tier("late", "2000000", "Deny")
        + &gnp("late", "late-allows", "1", BACKEND, allow)
        + &gnp("", "default-denies", "1000", BACKEND, deny);
    run(
        "the default tier (order 1000000) before a tier of order 2000000",
        &across,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("default-denies", 0),
    );
}

#[test]
fn calicos_builtin_tiers_exist_without_being_written() {
    let admin = gnp(
        "adminnetworkpolicy",
        "admin-no-ssh",
        "",
        BACKEND,
        "ingress: [{action: Deny, protocol: TCP, destination: {ports: [22]}}]",
    ) + &gnp(
        "",
        "default-allows",
        "",
        BACKEND,
        "ingress: [{action: Allow}]",
    );
    run(
        "adminnetworkpolicy (order 1000) before the default tier",
        &admin,
        Flow(tcp("fe1", "be1", 22)),
        D,
        By::Policy("admin-no-ssh", 0),
    );
    run(
        "adminnetworkpolicy passes by default",
        &admin,
        Flow(tcp("fe1", "be1", 80)),
        A,
        By::Policy("default-allows", 0),
    );
    let baseline = gnp(
        "baselineadminnetworkpolicy",
        "baseline-denies",
        "",
        BACKEND,
        "ingress: [{action: Deny}]",
    );
    run(
        "baselineadminnetworkpolicy alone decides",
        &baseline,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("baseline-denies", 0),
    );
    let after_default = baseline.clone() + &default_allows_8080();
    run(
        "the default tier ends in Deny before the baseline tier (order 10000000)",
        &after_default,
        Flow(tcp("fe1", "be1", 9090)),
        D,
        By::EndOfPolicies,
    );
    let passing_default = baseline.clone()
        + &gnp(
            "",
            "default-passes",
            "",
            BACKEND,
            "ingress: [{action: Pass}]",
        );
    run(
        "a Pass in the default tier reaches the baseline tier",
        &passing_default,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("baseline-denies", 0),
    );
    let kube_baseline = gnp(
        "kube-baseline",
        "kb-denies",
        "",
        BACKEND,
        "ingress: [{action: Deny}]",
    );
    run(
        "Calico 3.32's kube-baseline tier is known too",
        &kube_baseline,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::Policy("kb-denies", 0),
    );
}

#[test]
fn a_policy_of_a_tier_that_does_not_exist_is_held() {
    let base = Model::from_resources(parse_resources(BASE).unwrap()).unwrap();
    let text = gnp("ghost", "held", "", BACKEND, "ingress: [{action: Deny}]");
    let held = parse_resources(&text).unwrap().pop().unwrap();
    // The validated path refuses it, naming the field, as Calico's API server does.
    let mut refused = base.clone();
    let e = refused.apply(Update::Upsert(held.clone())).unwrap_err();
    assert_eq!(e.field, "tier", "{e}");
    assert!(e.to_string().contains("\"ghost\" does not exist"), "{e}");
    assert_eq!(refused, base);
    // A datastore holding it anyway (the agent's path): held, applying nowhere.
    let mut model = base.clone();
    model.apply_valid(Update::Upsert(held.clone()));
    let names: Vec<&str> = model.held_policies().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["held"]);
    assert!(
        model.notes().iter().any(|n| n.contains("held")),
        "{:?}",
        model.notes()
    );
    let e = evaluate_flow(&model, &tcp("fe1", "be1", 80)).unwrap();
    assert_eq!(e.verdict, A, "{e}");
    // Once its tier exists it applies.
    let t = parse_resources(&tier("ghost", "10", "Deny"))
        .unwrap()
        .pop()
        .unwrap();
    model.apply(Update::Upsert(t)).unwrap();
    assert_eq!(model.held_policies().count(), 0);
    let e = evaluate_flow(&model, &tcp("fe1", "be1", 80)).unwrap();
    assert_eq!(
        e.deciding_rule().map(|r| r.0.to_string()),
        Some("policy held".into())
    );
    // A tier policies still name cannot be removed through the validated path.
    let key = crate::model::ResourceKey::Tier("ghost".into());
    let e = model.apply(Update::Remove(key.clone())).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.resource.kind),
        ("name", crate::model::ResourceKind::Tier)
    );
    assert!(e.to_string().contains("held"), "{e}");
    // Built-in tiers stay whatever happens.
    let default = crate::model::ResourceKey::Tier("default".into());
    model.apply(Update::Remove(default)).unwrap();
    assert!(model.tier("default").is_some());
}

#[test]
fn a_file_may_list_a_tier_after_its_policies() {
    let text =
        gnp("late", "p", "", "all()", "ingress: [{action: Allow}]") + &tier("late", "5", "Pass");
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    assert_eq!(model.policies.len(), 1);
    assert_eq!(model.held_policies().count(), 0);
}
