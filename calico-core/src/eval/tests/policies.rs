//! How policies and profiles decide: isolation, order, Pass, Log, policy types.

use super::*;

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
