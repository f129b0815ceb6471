//! The compiled NAT of floating IPs: the chains Felix renders, only where floating IPs are
//! in effect, kept up to date by endpoint changes.

use super::*;
use crate::dataplane::ir::{ChainType, Hook, Match, Rule, Side, Statement, Verdict};
use crate::dataplane::validate;
use crate::model::{parse_resources, Resource, Update};

const VM: &str = r#"
kind: WorkloadEndpoint
orchestrator: k8s
workload: vm
endpoint: eth0
node: h1
interfaceName: cali-vm
ipNetworks: [10.65.0.2/32, "fd00::2/128"]
ipNATs:
  - {internalIP: 10.65.0.2, externalIP: 172.16.0.5}
  - {internalIP: 10.65.0.2, externalIP: 172.16.0.6}
  - {internalIP: "fd00::2", externalIP: "2001:db8::5"}
"#;

fn vm() -> Resource {
    parse_resources(VM).unwrap().remove(0)
}

fn config(floating_ips: bool) -> CompileConfig {
    CompileConfig {
        floating_ips,
        ..CompileConfig::new("h1")
    }
}

fn addr(side: Side, a: &str) -> Match {
    Match::AddrEq {
        side,
        addr: a.parse().unwrap(),
        negate: false,
    }
}

fn nat_rule(v4: bool, matches: Vec<Match>, st: Statement) -> Rule {
    let mut all = vec![Match::Ipv4(v4)];
    all.extend(matches);
    Rule {
        matches: all,
        statements: vec![st],
        verdict: None,
    }
}

#[test]
fn floating_ips_compile_to_felixs_dnat_and_hairpin_snat_chains() {
    let model = Model::from_resources(vec![vm()]).unwrap();
    let r = compile(&config(true), &model);
    validate::check(&r).unwrap();
    let dnat = |ext: &str, int: &str| {
        let v4 = int.contains('.');
        nat_rule(
            v4,
            vec![addr(Side::Dst, ext)],
            Statement::Dnat(int.parse().unwrap()),
        )
    };
    assert_eq!(
        r.chains[FIP_DNAT_CHAIN].rules,
        [
            dnat("172.16.0.5", "10.65.0.2"),
            dnat("172.16.0.6", "10.65.0.2"),
            dnat("2001:db8::5", "fd00::2"),
        ]
    );
    let snat = |int: &str, ext: &str| {
        let m = vec![addr(Side::Src, int), addr(Side::Dst, int)];
        nat_rule(int.contains('.'), m, Statement::Snat(ext.parse().unwrap()))
    };
    // One hairpin per internal address, from its lowest floating IP.
    assert_eq!(
        r.chains[FIP_SNAT_CHAIN].rules,
        [
            snat("10.65.0.2", "172.16.0.5"),
            snat("fd00::2", "2001:db8::5")
        ]
    );
    for (name, hook, priority, target) in [
        (NAT_PREROUTING_CHAIN, Hook::Prerouting, -100, FIP_DNAT_CHAIN),
        (NAT_OUTPUT_CHAIN, Hook::Output, -100, FIP_DNAT_CHAIN),
        (
            NAT_POSTROUTING_CHAIN,
            Hook::Postrouting,
            100,
            FIP_SNAT_CHAIN,
        ),
    ] {
        let chain = &r.chains[name];
        let base = chain.base.unwrap();
        assert_eq!(
            (base.hook, base.priority, base.kind),
            (hook, priority, ChainType::Nat)
        );
        assert_eq!(
            chain.rules,
            [Rule::new(vec![], Verdict::Jump(target.into()))]
        );
    }
}

#[test]
fn floating_ips_need_the_setting_or_openstack_and_a_local_endpoint() {
    let model = Model::from_resources(vec![vm()]).unwrap();
    let disabled = compile(&config(false), &model);
    assert!(!disabled.chains.contains_key(FIP_DNAT_CHAIN));
    assert!(!disabled.chains.contains_key(NAT_PREROUTING_CHAIN));
    let Resource::WorkloadEndpoint(mut ep) = vm() else {
        unreachable!()
    };
    ep.id.orchestrator = crate::model::ORCHESTRATOR_OPENSTACK.into();
    let openstack = Model::from_resources(vec![Resource::WorkloadEndpoint(ep.clone())]).unwrap();
    assert_eq!(
        compile(&config(false), &openstack).chains[FIP_DNAT_CHAIN]
            .rules
            .len(),
        3
    );
    ep.node = "h2".into();
    let remote = Model::from_resources(vec![Resource::WorkloadEndpoint(ep)]).unwrap();
    assert!(!compile(&config(true), &remote)
        .chains
        .contains_key(FIP_DNAT_CHAIN));
}

#[test]
fn changing_and_removing_ip_nats_updates_the_chains_incrementally() {
    let mut model = Model::new();
    let mut c = Compiler::new(config(true));
    c.take_changes();
    feed(&mut model, &mut c, Update::Upsert(vm()));
    let added = c.take_changes();
    assert!(!added.is_empty());
    let Resource::WorkloadEndpoint(mut ep) = vm() else {
        unreachable!()
    };
    ep.ip_nats.truncate(1);
    feed(
        &mut model,
        &mut c,
        Update::Upsert(Resource::WorkloadEndpoint(ep.clone())),
    );
    assert_eq!(c.ruleset().chains[FIP_DNAT_CHAIN].rules.len(), 1);
    assert_eq!(c.ruleset(), &compile(&config(true), &model));
    ep.ip_nats.clear();
    feed(
        &mut model,
        &mut c,
        Update::Upsert(Resource::WorkloadEndpoint(ep)),
    );
    assert!(!c.ruleset().chains.contains_key(FIP_DNAT_CHAIN));
    assert!(!c.ruleset().chains.contains_key(NAT_POSTROUTING_CHAIN));
    assert_eq!(c.ruleset(), &compile(&config(true), &model));
}

#[test]
fn describe_names_the_nat_rules() {
    let model = Model::from_resources(vec![vm()]).unwrap();
    let r = compile(&config(true), &model);
    let names = describe(&model, "h1", &r);
    let dnat = names.rule(FIP_DNAT_CHAIN, 0).unwrap().to_string();
    assert!(dnat.contains("floating IP"), "{dnat}");
    let snat = names.rule(FIP_SNAT_CHAIN, 0).unwrap().to_string();
    assert!(snat.contains("hairpin"), "{snat}");
    assert!(names.rule(NAT_POSTROUTING_CHAIN, 0).is_some());
}
