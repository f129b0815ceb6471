//! Rule compiler benchmarks at the scale of issue #3: 250 local endpoints, 10,000 remote
//! endpoints and 2,000 policies. Run with `cargo bench -p calico-core`.
//!
//! * `full_compile`: the whole model from scratch (target: under 100 ms);
//! * `label_change`: one remote endpoint's label flips, applied incrementally, change set
//!   taken (target: under 1 ms, touching only the sets it enters and leaves);
//! * `policy_edit`: one policy's rule edited, applied incrementally (target: under 1 ms).

use std::time::Duration;

use calico_core::compile::{compile, CompileConfig, Compiler};
use calico_core::model::{
    Action, EntityRule, Labels, Model, Policy, PortSpec, Profile, Protocol, Resource, Rule, Update,
    WorkloadEndpoint, WorkloadEndpointId,
};
use calico_core::selector::Selector;
use criterion::{criterion_group, criterion_main, Criterion};

const LOCAL: usize = 250;
const REMOTE: usize = 10_000;
const POLICIES: usize = 2_000;
const APPS: usize = 100;
const NAMESPACES: usize = 20;

fn endpoint(i: usize) -> WorkloadEndpoint {
    let mut labels = Labels::new();
    labels.insert("app".into(), format!("app{}", i % APPS));
    labels.insert("tier".into(), ["web", "api", "db"][i % 3].into());
    WorkloadEndpoint {
        id: WorkloadEndpointId {
            orchestrator: "k8s".into(),
            workload: format!("pod{i}"),
            endpoint: "eth0".into(),
        },
        namespace: Some(format!("ns{}", i % NAMESPACES)),
        node: if i < LOCAL {
            "h1".into()
        } else {
            format!("h{}", 2 + i % 40)
        },
        interface_name: format!("cali{i:011}"),
        mac: None,
        ip_networks: vec![
            format!("10.{}.{}.{}/32", 64 + i / 65536, (i / 256) % 256, i % 256)
                .parse()
                .unwrap(),
        ],
        labels,
        profiles: vec![format!("kns.ns{}", i % NAMESPACES)],
        ports: vec![],
    }
}

fn policy(k: usize, port: u16) -> Policy {
    let ns = k % NAMESPACES;
    let mut from_peers = Rule::new(Action::Allow);
    from_peers.protocol = Some(Protocol::TCP);
    from_peers.source = EntityRule {
        selector: Some(Selector::parse(&format!("app == 'app{}'", (k + 20) % APPS)).unwrap()),
        ..Default::default()
    };
    from_peers.destination.ports = vec![PortSpec::single(port), PortSpec::single(443)];
    let mut from_net = Rule::new(Action::Allow);
    from_net.source.nets = vec![format!("192.168.{}.0/24", k % 256).parse().unwrap()];
    Policy {
        name: format!("pol{k}"),
        namespace: Some(format!("ns{ns}")),
        order: Some((k % 10) as f64),
        selector: Selector::parse(&format!("app == 'app{}'", k % APPS)).unwrap(),
        types: vec![],
        ingress: vec![from_peers, from_net],
        egress: vec![],
    }
}

fn model() -> Model {
    let mut resources: Vec<Resource> = (0..NAMESPACES)
        .map(|n| {
            Resource::Profile(Profile {
                name: format!("kns.ns{n}"),
                labels_to_apply: [("pcns.name".to_string(), format!("ns{n}"))].into(),
                ingress: vec![Rule::new(Action::Allow)],
                egress: vec![Rule::new(Action::Allow)],
            })
        })
        .collect();
    resources.extend((0..LOCAL + REMOTE).map(|i| Resource::WorkloadEndpoint(endpoint(i))));
    resources.extend((0..POLICIES).map(|k| Resource::Policy(policy(k, 80))));
    Model::from_resources(resources).unwrap()
}

fn benches(c: &mut Criterion) {
    let model = model();
    let config = CompileConfig::new("h1");
    let full = compile(&config, &model);
    eprintln!(
        "ruleset: {} chains, {} sets, {} set elements, {} rules",
        full.chains.len(),
        full.sets.len(),
        full.sets.values().map(|s| s.elements.len()).sum::<usize>(),
        full.chains.values().map(|ch| ch.rules.len()).sum::<usize>()
    );

    let mut g = c.benchmark_group("compile");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("full_compile", |b| b.iter(|| compile(&config, &model)));
    g.finish();

    let mut compiler = Compiler::new(config.clone());
    compiler.load(&model);
    compiler.take_changes();
    let mut ep = endpoint(LOCAL + 17);
    let (a, b_) = (ep.labels["app"].clone(), "app-moved".to_string());
    let mut flip = false;
    let mut touched = None;
    c.bench_function("label_change", |b| {
        b.iter(|| {
            flip = !flip;
            ep.labels
                .insert("app".into(), if flip { b_.clone() } else { a.clone() });
            compiler.apply(&Update::Upsert(Resource::WorkloadEndpoint(ep.clone())));
            let changes = compiler.take_changes();
            touched.get_or_insert(changes.len());
            changes
        })
    });
    eprintln!(
        "label_change: change set of {} operations",
        touched.unwrap_or(0)
    );

    let mut edit = false;
    let mut touched = None;
    c.bench_function("policy_edit", |b| {
        b.iter(|| {
            edit = !edit;
            let p = policy(1234, if edit { 8080 } else { 80 });
            compiler.apply(&Update::Upsert(Resource::Policy(p)));
            let changes = compiler.take_changes();
            touched.get_or_insert(changes.len());
            changes
        })
    });
    eprintln!(
        "policy_edit: change set of {} operations",
        touched.unwrap_or(0)
    );
}

criterion_group!(compile_benches, benches);
criterion_main!(compile_benches);
