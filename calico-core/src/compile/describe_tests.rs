use proptest::prelude::*;

use super::describe::*;
use super::rules::{compile_rule, Verdicts};
use super::*;
use crate::arbitrary;
use crate::dataplane::ir::Verdict;
use crate::dataplane::validate;
use crate::model::{parse_resources, PolicyType};

const MODEL: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: a
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-a
ipNetworks: [10.0.0.1/32]
labels: {app: web}
profiles: [kns.shop]
---
kind: WorkloadEndpoint
orchestrator: k8s
workload: b
endpoint: eth0
namespace: shop
node: h1
interfaceName: cali-b
ipNetworks: [10.0.0.2/32, "fd00::2/128"]
labels: {app: db}
profiles: [kns.shop]
---
kind: Profile
name: kns.shop
ingress: [{action: Allow}]
egress: [{action: Allow, metadata: {annotations: {name: out}}}]
---
kind: Policy
name: allow-web
namespace: shop
order: 10
selector: app == 'web'
ingress:
  - {action: Deny, protocol: UDP}
  - action: Allow
    protocol: TCP
    metadata: {annotations: {name: web, owner: team-a}}
    destination: {ports: [80, 443, http]}
---
kind: Policy
name: deny-all
selector: all()
order: 1000
ingress: [{action: Deny}]
"#;

fn model() -> Model {
    Model::from_resources(parse_resources(MODEL).unwrap()).unwrap()
}

fn chain_of(r: &Ruleset, names: &ChainNames, want: &str) -> String {
    r.chains
        .keys()
        .find(|c| names.chain(c).map(|o| o.to_string()).as_deref() == Some(want))
        .unwrap_or_else(|| panic!("no chain named {want}"))
        .clone()
}

#[test]
fn every_chain_of_a_compiled_model_is_named() {
    let model = model();
    let r = compile(&CompileConfig::new("h1"), &model);
    let names = describe(&model, "h1", &r);
    assert_eq!(names.len(), r.chains.len());
    let owners: Vec<String> = r
        .chains
        .keys()
        .map(|c| names.chain(c).unwrap().to_string())
        .collect();
    for want in [
        "policy shop/allow-web ingress",
        "policy deny-all ingress",
        "profile kns.shop egress",
        "endpoint k8s/a/eth0 (cali-a) ingress",
        "endpoint k8s/b/eth0 (cali-b) egress",
        "tier default ingress policies [shop/allow-web, deny-all]",
        "egress profiles [kns.shop]",
        "chain forward",
        "chain eg-allowed",
    ] {
        assert!(
            owners.iter().any(|o| o == want),
            "{want} not in {owners:#?}"
        );
    }
}

#[test]
fn verdicts_name_their_tier() {
    let text = MODEL.to_string()
        + "---\nkind: Tier\nname: security\norder: 10\n---\nkind: Policy\nname: guard\ntier: security\nselector: app == 'db'\ningress: [{action: Allow, protocol: TCP}]\n";
    let model = Model::from_resources(parse_resources(&text).unwrap()).unwrap();
    let r = compile(&flow_config("h1"), &model);
    let names = describe(&model, "h1", &r);
    let pol = chain_of(&r, &names, "policy guard (tier security) ingress");
    assert_eq!(names.tier(&pol), Some("security"));
    // b's ingress: tier security's only policy directly, then its end-of-tier drop, which a
    // flow log reports as the endpoint chain's `end`, named after the tier.
    let ep = chain_of(&r, &names, "endpoint k8s/b/eth0 (cali-b) ingress");
    assert_eq!(names.tier(&ep), Some("security"));
    // a's ingress has only default-tier policies; its egress none: no tier.
    let a_eg = chain_of(&r, &names, "endpoint k8s/a/eth0 (cali-a) egress");
    assert_eq!(names.tier(&a_eg), None);
    let json = serde_json::to_value(names.chain(&pol).unwrap()).unwrap();
    assert_eq!(json["tier"], "security");
}

#[test]
fn policy_rules_name_the_users_rule_and_its_name() {
    let model = model();
    let r = compile(&CompileConfig::new("h1"), &model);
    let names = describe(&model, "h1", &r);
    let chain = chain_of(&r, &names, "policy shop/allow-web ingress");
    // Rule 0 (UDP deny): one IR rule per family; rule 1: per family, ports 80 and 443 (a
    // short list, split) and the named port `http` (three alternatives each).
    let got: Vec<String> = (0..r.chains[&chain].rules.len())
        .map(|i| names.rule(&chain, i).unwrap().to_string())
        .collect();
    let r0 = "policy shop/allow-web ingress rule 0";
    let r1 = r#"policy shop/allow-web ingress rule 1 ("web")"#;
    assert_eq!(got, [r0, r0, r1, r1, r1, r1, r1, r1]);
    assert!(names.rule(&chain, 8).is_none());
    let user = names.user_rule(&chain, 1).unwrap();
    assert_eq!(user.rule_name.as_deref(), Some("web"));
    let json = serde_json::to_value(&user).unwrap();
    assert_eq!(json["owner"]["kind"], "policy");
    assert_eq!(json["owner"]["namespace"], "shop");
    assert_eq!(json["owner"]["tier"], "default");
    assert_eq!(json["rule"], 1);
}

#[test]
fn endpoint_and_list_rules_say_what_they_are_for() {
    let model = model();
    let r = compile(&CompileConfig::new("h1"), &model);
    let names = describe(&model, "h1", &r);
    let chain = chain_of(&r, &names, "endpoint k8s/a/eth0 (cali-a) ingress");
    let last = r.chains[&chain].rules.len() - 1;
    assert_eq!(
        names.rule(&chain, last).unwrap().to_string(),
        "endpoint k8s/a/eth0 (cali-a) ingress: applies the policies of a tier"
    );
    let list = "tier default ingress policies [shop/allow-web, deny-all]";
    let pl = chain_of(&r, &names, list);
    let end = r.chains[&pl].rules.len() - 1;
    assert_eq!(
        names.rule(&pl, end).unwrap().to_string(),
        format!("{list}: no policy of the tier allowed or passed: the tier's default deny (end of tier)")
    );
    assert_eq!(names.tier(&pl), Some("default"));
    assert_eq!(
        names.rule(&chain, 0).unwrap().detail,
        Some("established or related connection")
    );
    let eg = chain_of(&r, &names, "endpoint k8s/a/eth0 (cali-a) egress");
    let spoof = names.rule(&eg, 2).unwrap();
    assert_eq!(
        spoof.detail,
        Some("source address is not the endpoint's (anti-spoofing)")
    );
    let prl = chain_of(&r, &names, "ingress profiles [kns.shop]");
    assert_eq!(
        names.rule(&prl, 1).unwrap().detail,
        Some("no profile allowed: default deny")
    );
}

#[test]
fn a_drifted_policy_chain_names_its_owner_but_no_rule() {
    let model = model();
    let mut r = compile(&CompileConfig::new("h1"), &model);
    let names = describe(&model, "h1", &r);
    let chain = chain_of(&r, &names, "policy deny-all ingress");
    r.chains
        .get_mut(&chain)
        .unwrap()
        .rules
        .push(crate::dataplane::ir::Rule::new(vec![], Verdict::Accept));
    let drifted = describe(&model, "h1", &r);
    let last = drifted.rule(&chain, 2).unwrap();
    assert_eq!(last.to_string(), "policy deny-all ingress");
    assert_eq!(last.rule, None);
}

#[test]
fn the_compiler_describes_its_own_chains() {
    let model = model();
    let compiler = Compiler::from_model(CompileConfig::new("h1"), &model);
    let names = describe(&model, "h1", compiler.ruleset());
    let chain = chain_of(compiler.ruleset(), &names, "policy deny-all ingress");
    let owner = compiler.describe_chain(&model, &chain).unwrap();
    assert_eq!(owner.kind(), "policy");
    assert_eq!(owner.name(), "deny-all");
    assert_eq!(
        compiler.describe_rule(&model, &chain, 1).unwrap().rule,
        Some(0)
    );
    // Another node's compiler has no chains for these endpoints.
    let other = Compiler::from_model(CompileConfig::new("h2"), &model);
    assert!(describe(&model, "h2", other.ruleset())
        .chain(&endpoint_chain("cali-a", PolicyType::Ingress))
        .is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every chain is named, and every IR rule of a policy or profile chain names a user
    /// rule that compiles to an IR rule with the same matches.
    #[test]
    fn every_rule_names_the_user_rule_it_came_from(model in arbitrary::model()) {
        let node = arbitrary::NODES[0];
        let r = compile(&CompileConfig::new(node), &model);
        let names = describe(&model, node, &r);
        let v = Verdicts { allow: (vec![], Verdict::Accept), pass: (vec![], Verdict::Return), log_prefix: String::new() };
        for (name, chain) in &r.chains {
            let owner = names.chain(name);
            prop_assert!(owner.is_some(), "{name} not named");
            for (i, ir) in chain.rules.iter().enumerate() {
                let rr = names.rule(name, i).unwrap();
                let (rules, ns) = match &rr.owner {
                    ChainOwner::Policy { namespace, name: n, direction, .. } => {
                        let p = &model.policies[&(namespace.clone(), n.clone())];
                        (p.rules(*direction).to_vec(), namespace.clone())
                    }
                    ChainOwner::Profile { name: n, direction } => {
                        (model.profiles[n].rules(*direction).to_vec(), None)
                    }
                    _ => continue,
                };
                let user = rr.rule.unwrap();
                let (compiled, _) = compile_rule(&rules[user], ns.as_deref(), &v);
                prop_assert!(compiled.iter().any(|c| c.matches == ir.matches), "{name}#{i} is not from rule {user}");
            }
        }
    }
}

fn flow_config(node: &str) -> CompileConfig {
    CompileConfig {
        flow_logs: Some(FlowLogConfig::default()),
        ..CompileConfig::new(node)
    }
}

/// The rules with flow logs minus their logs: the first-packet log chains, log-only rules
/// dropped, log statements and flow-log references removed.
fn without_flow_logs(mut r: Ruleset) -> Ruleset {
    use crate::dataplane::ir::Statement;
    for name in [
        super::FIRST_PACKET_FORWARD_CHAIN,
        super::FIRST_PACKET_INPUT_CHAIN,
        super::FIRST_PACKET_OUTPUT_CHAIN,
        super::SPOOF_DROP_CHAIN,
    ] {
        assert!(r.chains.remove(name).is_some(), "no {name}");
    }
    for rule in r.chains.values_mut().flat_map(|c| &mut c.rules) {
        if rule.verdict == Some(Verdict::Goto(super::SPOOF_DROP_CHAIN.into())) {
            rule.verdict = Some(Verdict::Drop);
        }
    }
    for chain in r.chains.values_mut() {
        chain.rules.retain(|rule| {
            !(rule.verdict.is_none()
                && rule
                    .statements
                    .iter()
                    .any(|s| matches!(s, Statement::NfLog { .. })))
        });
        for rule in &mut chain.rules {
            rule.statements
                .retain(|s| !matches!(s, Statement::NfLog { .. } | Statement::FlowRef(_)));
        }
    }
    r
}

#[test]
fn flow_logs_name_the_deciding_rule_in_their_prefix() {
    use crate::dataplane::ir::Statement;
    let model = model();
    let r = compile(&flow_config("h1"), &model);
    validate::check(&r).unwrap();
    let names = describe(&model, "h1", &r);
    let mut seen = Vec::new();
    for (name, chain) in &r.chains {
        for rule in &chain.rules {
            for s in &rule.statements {
                let (prefix, rate) = match s {
                    Statement::NfLog { prefix, .. } if prefix.starts_with("F ") => continue,
                    Statement::NfLog { prefix, rate, .. } => (prefix.clone(), *rate),
                    // The user rule's index; its chain completes the reference.
                    Statement::FlowRef(index) => (format!("A {name} {index}"), None),
                    _ => continue,
                };
                {
                    let log: LogRef = prefix.parse().unwrap();
                    assert_eq!(rate.is_some(), log.verdict == LogVerdict::Deny, "{prefix}");
                    let named = match log.rule {
                        LogRule::Rule(i) => names.user_rule(&log.chain, i).unwrap().to_string(),
                        // The shared spoof drop's, as the agent names it: by the interface
                        // the packet came in by.
                        LogRule::Spoof => {
                            assert_eq!(log.chain, super::SPOOF_DROP_CHAIN);
                            let log = log.clone().attributed_to(Some("cali-a"));
                            names.chain(&log.chain).unwrap().to_string()
                        }
                        LogRule::End => names.chain(&log.chain).unwrap().to_string(),
                    };
                    seen.push(format!("{prefix:.1} {named} {:?}", log.rule));
                }
            }
        }
    }
    for want in [
        r#"A policy shop/allow-web ingress rule 1 ("web") Rule(1)"#,
        "D policy shop/allow-web ingress rule 0 Rule(0)",
        "D policy deny-all ingress rule 0 Rule(0)",
        r#"A profile kns.shop egress rule 0 ("out") Rule(0)"#,
        "D endpoint k8s/a/eth0 (cali-a) egress Spoof",
        "D tier default ingress policies [shop/allow-web, deny-all] End",
        "D ingress profiles [kns.shop] End",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} not in {seen:#?}");
    }
    let spoof_logs = seen.iter().filter(|s| s.ends_with(" Spoof")).count();
    assert_eq!(
        spoof_logs, 1,
        "one shared log of spoofed packets: {seen:#?}"
    );
    // The endpoint's anti-spoofing rules go to the shared drop and say so.
    let chain = super::names::endpoint_chain("cali-a", PolicyType::Egress);
    let spoof_rules: Vec<_> = (0..r.chains[&chain].rules.len())
        .filter(|&i| {
            r.chains[&chain].rules[i].verdict == Some(Verdict::Goto(super::SPOOF_DROP_CHAIN.into()))
        })
        .map(|i| names.rule(&chain, i).unwrap().detail)
        .collect();
    assert_eq!(
        spoof_rules,
        [Some("source address is not the endpoint's (anti-spoofing): logged and dropped"); 2]
    );
    let shared = &r.chains[super::SPOOF_DROP_CHAIN].rules;
    assert_eq!(
        names
            .rule(super::SPOOF_DROP_CHAIN, shared.len() - 1)
            .unwrap()
            .detail,
        Some("a workload's source address is not its own (anti-spoofing)")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Flow logs only add logging: without them the IR is the IR compiled with flow logs
    /// off; the result keeps every invariant; every rule is still named after its user rule;
    /// and the incremental compiler agrees with the whole-model one.
    #[test]
    fn flow_logs_only_add_logging(model in arbitrary::model()) {
        let node = arbitrary::NODES[0];
        let on = compile(&flow_config(node), &model);
        let off = compile(&CompileConfig::new(node), &model);
        // Staged policies are rendered with flow logs only (they report through them).
        let mut enforced = model.clone();
        enforced.policies.retain(|_, p| !p.is_staged());
        prop_assert_eq!(&compile(&CompileConfig::new(node), &enforced), &off);
        let on_enforced = compile(&flow_config(node), &enforced);
        prop_assert_eq!(&without_flow_logs(on_enforced), &off);
        if let Err(e) = validate::check(&on) {
            return Err(TestCaseError::fail(format!("{e}")));
        }
        let names = describe(&model, node, &on);
        for (name, chain) in &on.chains {
            for i in 0..chain.rules.len() {
                let rr = names.rule(name, i).unwrap();
                let staged_head = i == 0 && rr.owner.name().contains(crate::model::STAGED_PREFIX);
                if !staged_head && matches!(rr.owner, ChainOwner::Policy { .. } | ChainOwner::Profile { .. }) {
                    prop_assert!(rr.rule.is_some(), "{}#{} has no user rule", name, i);
                }
            }
        }
        let mut incremental = Compiler::new(flow_config(node));
        let mut m = Model::new();
        for u in super::tests::updates(&Model::new(), &model) {
            feed(&mut m, &mut incremental, u);
        }
        prop_assert_eq!(incremental.ruleset(), &on);
    }
}

/// `calico-rs trace` walks the base chains on every forwarded packet: none of their rules
/// may read as drift on a host that has none.
#[test]
fn every_rule_of_the_base_chains_is_named() {
    let model = model();
    for flow_logs in [None, Some(FlowLogConfig::default())] {
        let config = CompileConfig {
            flow_logs,
            ..CompileConfig::new("h1")
        };
        let r = compile(&config, &model);
        let names = describe(&model, "h1", &r);
        for chain in [FORWARD_CHAIN, EGRESS_ALLOWED_CHAIN] {
            for i in 0..r.chains[chain].rules.len() {
                let rule = names.rule(chain, i).unwrap();
                assert!(
                    rule.detail.is_some(),
                    "{chain} rule {i} unnamed: {:?}",
                    r.chains[chain].rules[i]
                );
            }
        }
    }
}
