//! Any bytes → a model (bytes pick labels, selectors, nets, ports and rule fields from a small
//! vocabulary, so that they interact) → the rule compiler: never panics, the IR keeps its
//! invariants, and compiling incrementally (in input order, then removing half) gives the
//! same IR as compiling from scratch.
#![no_main]

use calico_core::compile::{compile, CompileConfig, Compiler};
use calico_core::dataplane::validate;
use calico_core::model::{
    Action, EntityRule, IcmpMatch, IpVersion, Model, NamedPort, Policy, PolicyType, PortSpec,
    Profile, Protocol, Resource, Rule, ServiceAccountMatch, StagedAction, Tier, TierAction, Update,
    WorkloadEndpoint,
    WorkloadEndpointId,
};
use calico_core::selector::Selector;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.byte() as usize % items.len()].clone()
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

const SELECTORS: [&str; 6] = [
    "all()",
    "app == 'x'",
    "has(tier)",
    "app in {'x', 'y'} && tier != 'z'",
    "!has(app) || tier == 'x'",
    "pcns.team == 'x'",
];
const NETS: [&str; 6] = ["10.0.0.0/24", "10.0.0.0/28", "0.0.0.0/0", "10.0.0.8/29", "fd00::/120", "fd00::8/125"];
const KEYS: [&str; 3] = ["app", "tier", "pcns.team"];
const VALUES: [&str; 3] = ["x", "y", "z"];

fn selector(b: &mut Bytes) -> Option<Selector> {
    if b.byte() % 3 == 0 {
        Some(Selector::parse(b.pick(&SELECTORS)).unwrap())
    } else {
        None
    }
}

fn entity(b: &mut Bytes, ported: bool) -> EntityRule {
    let nets = |b: &mut Bytes| (0..b.byte() % 3).map(|_| b.pick(&NETS).parse().unwrap()).collect();
    let ports = |b: &mut Bytes| -> Vec<PortSpec> {
        (0..b.byte() % 3)
            .map(|_| match b.byte() % 4 {
                0 => PortSpec::single(u16::from(b.byte())),
                1 => PortSpec::Range { min: 10, max: 100 + u16::from(b.byte()) },
                2 => PortSpec::Named("http".into()),
                _ => PortSpec::Named("dns".into()),
            })
            .collect()
    };
    EntityRule {
        nets: nets(b),
        not_nets: nets(b),
        selector: selector(b),
        not_selector: selector(b),
        namespace_selector: selector(b),
        service_accounts: (b.byte() % 4 == 0).then(|| ServiceAccountMatch {
            names: vec!["sa0".into()],
            selector: selector(b),
        }),
        ports: if ported { ports(b) } else { vec![] },
        not_ports: if ported { ports(b) } else { vec![] },
    }
}

fn rule(b: &mut Bytes) -> Rule {
    let mut r = Rule::new(b.pick(&[Action::Allow, Action::Deny, Action::Pass, Action::Log]));
    r.protocol = b.pick(&[None, Some(Protocol::TCP), Some(Protocol::UDP), Some(Protocol::ICMP), Some(Protocol::ICMPV6), Some(Protocol(47))]);
    r.ip_version = b.pick(&[None, Some(IpVersion::V4), Some(IpVersion::V6)]);
    if matches!(r.protocol, Some(Protocol::ICMP | Protocol::ICMPV6)) && b.flag() {
        let m = IcmpMatch { icmp_type: Some(b.byte() % 200), code: if b.flag() { Some(b.byte()) } else { None } };
        if b.flag() { r.icmp = Some(m) } else { r.not_icmp = Some(m) }
    }
    let ported = r.protocol.is_some_and(Protocol::has_ports);
    r.source = entity(b, ported);
    r.destination = entity(b, ported);
    r
}

fn rules(b: &mut Bytes) -> Vec<Rule> {
    (0..b.byte() % 4).map(|_| rule(b)).collect()
}

fn labels(b: &mut Bytes) -> calico_core::model::Labels {
    (0..b.byte() % 3).map(|_| (b.pick(&KEYS).to_string(), b.pick(&VALUES).to_string())).collect()
}

fn resources(b: &mut Bytes) -> Vec<Resource> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while !b.done() && i < 24 {
        i += 1;
        out.push(match b.byte() % 4 {
            0 => {
                let mut nets = vec![format!("10.0.0.{}/32", b.byte() % 16).parse().unwrap()];
                if b.flag() {
                    nets.push(format!("fd00::{:x}/128", b.byte() % 16).parse().unwrap());
                }
                Resource::WorkloadEndpoint(WorkloadEndpoint {
                    id: WorkloadEndpointId { orchestrator: "k8s".into(), workload: format!("w{}", b.byte() % 8), endpoint: "eth0".into() },
                    namespace: b.pick(&[None, Some("a".to_string()), Some("b".to_string())]),
                    node: b.pick(&["h1", "h2"]).into(),
                    interface_name: format!("cali{}", b.byte() % 8),
                    mac: None,
                    ip_networks: nets,
                    labels: labels(b),
                    profiles: (0..b.byte() % 3).map(|_| b.pick(&["p1", "p2", "p3"]).to_string()).collect(),
                    ports: if b.flag() { vec![NamedPort { name: "http".into(), protocol: Protocol::TCP, port: 80 }] } else { vec![] },
                    allow_spoofed_source_prefixes: vec![],
                })
            }
            1 => {
                let staged = b.byte() % 4 == 0;
                Resource::Policy(Policy {
                // Some staged (rendered with flow logs only).
                name: format!("{}pol{}", if staged { "staged:" } else { "" }, b.byte() % 6),
                staged_action: staged.then_some(StagedAction::Set),
                namespace: b.pick(&[None, Some("a".to_string())]),
                tier: b.pick(&["default", "t1", "t2", "adminnetworkpolicy"]).into(),
                order: if b.flag() { Some(f64::from(b.byte() % 4)) } else { None },
                selector: Selector::parse(b.pick(&SELECTORS)).unwrap(),
                types: b.pick(&[vec![], vec![PolicyType::Ingress, PolicyType::Egress]]),
                ingress: rules(b),
                egress: rules(b),
                apply_on_forward: false,
                pre_dnat: false,
                do_not_track: false,
            })
            }
            2 => Resource::Tier(Tier {
                name: b.pick(&["t1", "t2"]).into(),
                order: if b.flag() { Some(f64::from(b.byte() % 3) * 1e6) } else { None },
                default_action: if b.flag() { TierAction::Pass } else { TierAction::Deny },
            }),
            _ => Resource::Profile(Profile {
                name: b.pick(&["p1", "p2", "p3"]).into(),
                labels_to_apply: labels(b),
                ingress: rules(b),
                egress: rules(b),
            }),
        });
    }
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    // Flow logs on or off (staged policies are rendered with them only).
    let config = CompileConfig {
        flow_logs: b.flag().then(calico_core::compile::FlowLogConfig::default),
        ..CompileConfig::new("h1")
    };
    let mut model = Model::new();
    let mut incremental = Compiler::new(config.clone());
    let mut applied = Vec::new();
    for r in resources(&mut b) {
        if r.validate().is_ok() {
            let stored = model.apply_valid(Update::Upsert(r.clone()));
            incremental.apply(&model, &stored);
            applied.push(r);
        }
    }
    let full = compile(&config, &model);
    validate::check(&full).expect("compiled IR keeps its invariants");
    assert_eq!(incremental.ruleset(), &full, "incremental equals full");
    for r in applied.iter().step_by(2) {
        let key = r.key();
        let stored = model.apply_valid(Update::Remove(key));
        incremental.apply(&model, &stored);
    }
    assert_eq!(incremental.ruleset(), &compile(&config, &model), "after removals");
});
