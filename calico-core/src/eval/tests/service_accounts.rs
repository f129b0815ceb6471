//! Kubernetes service accounts, as Calico reads them (libcalico-go's `parseServiceAccounts`
//! and `getEndpointSelector`): a pod carries its account's name in the label
//! `projectcalico.org/serviceaccount` and inherits the account's labels, `pcsa.`-prefixed,
//! from its `ksa.<namespace>.<account>` profile. A rule side's `serviceAccounts` matches by
//! name and by those labels (both when both are given), counts as a selector (so a
//! namespaced policy's side is limited to its namespace), and is ANDed with the side's
//! `selector`.

use super::*;

/// The `api` account in `shop` (labelled `role: api`) and in `other` (unlabelled), each with
/// a pod: `sa1` (10.0.0.8, `app: frontend`) and `sa2` (10.0.1.8).
const ACCOUNTS: &str = r#"
---
kind: Profile
name: ksa.shop.api
labelsToApply: {pcsa.role: api, pcsa.projectcalico.org/name: api}
---
kind: Profile
name: ksa.other.api
labelsToApply: {pcsa.projectcalico.org/name: api}
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: shop.sa1
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-sa1
ipNetworks: [10.0.0.8/32]
labels: {app: frontend, projectcalico.org/serviceaccount: api}
profiles: [kns.shop, ksa.shop.api]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: other.sa2
endpoint: eth0
namespace: other
node: h2
interfaceName: cali-sa2
ipNetworks: [10.0.1.8/32]
labels: {projectcalico.org/serviceaccount: api}
profiles: [kns.other, ksa.other.api]
"#;

fn with_accounts(policy: String) -> String {
    format!("{ACCOUNTS}{policy}")
}

const SA1: &str = "10.0.0.8";
const SA2: &str = "10.0.1.8";

#[test]
fn names_match_the_account_of_the_policy_namespace() {
    let p = with_accounts(be_in(
        "{action: Allow, source: {serviceAccounts: {names: [api, web]}}}",
    ));
    run(
        "a listed account",
        &p,
        Flow(tcp(SA1, "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    run(
        "a pod without an account",
        &p,
        Flow(tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    // The same account name in another namespace: a namespaced policy's side is limited to
    // its namespace, serviceAccounts counting as a selector.
    run(
        "the same name elsewhere",
        &p,
        Flow(tcp(SA2, "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let global = with_accounts(policy(
        "",
        "g",
        "",
        "app == 'backend'",
        "ingress: [{action: Allow, source: {serviceAccounts: {names: [api]}}}]",
    ));
    run(
        "a global policy sees every namespace",
        &global,
        Flow(tcp(SA2, "be1", 80)),
        A,
        By::Policy("g", 0),
    );
}

#[test]
fn the_selector_matches_the_account_labels_and_names_narrow_it() {
    let labels = with_accounts(be_in(
        "{action: Allow, source: {serviceAccounts: {selector: \"role == 'api'\"}}}",
    ));
    run(
        "account labels",
        &labels,
        Flow(tcp(SA1, "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
    // `role` is not a pod label here: the selector reads `pcsa.role` only.
    let pod_label = with_accounts(be_in(
        "{action: Allow, source: {serviceAccounts: {selector: \"app == 'frontend'\"}}}",
    ));
    run(
        "not the pod's labels",
        &pod_label,
        Flow(tcp(SA1, "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let both = with_accounts(be_in(
        "{action: Allow, source: {serviceAccounts: {names: [web], selector: \"role == 'api'\"}}}",
    ));
    run(
        "names and selector must both hold",
        &both,
        Flow(tcp(SA1, "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let and_selector = with_accounts(be_in(
        "{action: Allow, source: {selector: \"app == 'db'\", serviceAccounts: {names: [api]}}}",
    ));
    run(
        "ANDed with the side's selector",
        &and_selector,
        Flow(tcp(SA1, "be1", 80)),
        D,
        By::EndOfPolicies,
    );
    let empty = with_accounts(be_in("{action: Allow, source: {serviceAccounts: {}}}"));
    run(
        "an empty match restricts nothing",
        &empty,
        Ingress("be1", tcp("198.51.100.9", "be1", 80)),
        A,
        By::Policy("shop/be", 0),
    );
}

#[test]
fn destination_accounts_work_the_same() {
    let p = with_accounts(policy(
        "shop",
        "fe-out",
        "",
        "app == 'frontend'",
        "egress: [{action: Allow, destination: {serviceAccounts: {names: [api]}}}]",
    ));
    run(
        "to a listed account",
        &p,
        Egress("fe1", tcp("fe1", SA1, 80)),
        A,
        By::Policy("shop/fe-out", 0),
    );
    run(
        "to another pod",
        &p,
        Egress("fe1", tcp("fe1", "be1", 80)),
        D,
        By::EndOfPolicies,
    );
}
