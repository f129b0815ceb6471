//! Rule compiler benchmarks at the scale of issue #3: 250 local endpoints, 10,000 remote
//! endpoints and 2,000 policies. Run with `cargo bench -p calico-core`.
//!
//! * `full_compile`: the whole model from scratch, as the agent compiles a snapshot it was
//!   handed (`Compiler::from_model`; target: under 100 ms). The compiler's state is freed
//!   outside the timing, as the agent keeps it;
//! * `compile_fn`: the same through `compile(&config, &model)`, which also frees the
//!   compiler's working state before returning the ruleset;
//! * `label_change`: one remote endpoint's label flips, stored in the model and compiled
//!   incrementally (as the agent does: `Model::apply_valid`, `Compiler::apply`), change set
//!   taken (target: under 1 ms, touching only the sets it enters and leaves);
//! * `policy_edit`: one policy's rule edited, applied incrementally (target: under 1 ms);
//! * `endpoint_add`: one local endpoint added to a host with 1,000 (what calico-linux's
//!   `acl` bench then programs), change set taken.
//! * `full_compile_netsets`: `full_compile` with 500 network sets added (each selected by
//!   the rules of its namespace's policies that select its app: 2,500 networks in selector
//!   sets), against `full_compile` of the same run (issue 17: within 1.2×);
//! * `netset_change`: one network set's IPv4 network replaced, applied incrementally,
//!   change set taken (issue 17: under 50 µs; set-element changes only).
//! * `full_compile_tiers_netsets`: `full_compile_netsets` with three tiers holding three
//!   policies in seven (`Scale::model_with_tiers`; issue 17: within 1.2× of the full compile
//!   with 500 network sets of a build without tiers, measured by alternating runs of the two
//!   builds).

use std::time::Duration;

use calico_core::compile::{compile, CompileConfig, Compiler};
use calico_core::model::{Resource, Update};
use calico_core::scale::Scale;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const SCALE: Scale = Scale {
    local: 250,
    remote: 10_000,
    policies: 2_000,
    apps: 100,
    namespaces: 20,
};

fn benches(c: &mut Criterion) {
    let model = SCALE.model();
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
    g.bench_function("full_compile", |b| {
        b.iter_batched(
            || (),
            |()| Compiler::from_model(config.clone(), &model),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("compile_fn", |b| b.iter(|| compile(&config, &model)));
    g.finish();

    network_sets(c, &config);

    let mut store = model.clone();
    let mut compiler = Compiler::from_model(config.clone(), &store);
    compiler.take_changes();
    let mut ep = SCALE.endpoint(SCALE.local + 17);
    let (a, b_) = (ep.labels["app"].clone(), "app-moved".to_string());
    let mut flip = false;
    let mut touched = None;
    c.bench_function("label_change", |b| {
        b.iter(|| {
            flip = !flip;
            ep.labels
                .insert("app".into(), if flip { b_.clone() } else { a.clone() });
            let applied = store.apply_valid(Update::Upsert(Resource::WorkloadEndpoint(ep.clone())));
            compiler.apply(&store, &applied);
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
            let p = SCALE.policy(1234, if edit { 8080 } else { 80 });
            let applied = store.apply_valid(Update::Upsert(Resource::Policy(p)));
            compiler.apply(&store, &applied);
            let changes = compiler.take_changes();
            touched.get_or_insert(changes.len());
            changes
        })
    });
    eprintln!(
        "policy_edit: change set of {} operations",
        touched.unwrap_or(0)
    );

    let big = Scale {
        local: 1000,
        ..SCALE
    };
    let mut store = big.model();
    let mut compiler = Compiler::from_model(config.clone(), &store);
    compiler.take_changes();
    let mut n = 0;
    let mut touched = None;
    c.bench_function("endpoint_add", |b| {
        b.iter(|| {
            // Added, then removed again in the next round, so the host stays at 1,000.
            let mut ep = big.endpoint(big.local + big.remote + n % 2);
            ep.node = "h1".into();
            let update = if n % 4 < 2 {
                Update::Upsert(Resource::WorkloadEndpoint(ep))
            } else {
                Update::Remove(calico_core::model::ResourceKey::WorkloadEndpoint(ep.id))
            };
            n += 1;
            let applied = store.apply_valid(update);
            compiler.apply(&store, &applied);
            let changes = compiler.take_changes();
            touched.get_or_insert(changes.len());
            changes
        })
    });
    eprintln!(
        "endpoint_add: change set of {} operations",
        touched.unwrap_or(0)
    );
}

/// Network sets: the full compile with 500 of them, and one set's network changed.
fn network_sets(c: &mut Criterion, config: &CompileConfig) {
    const SETS: usize = 500;
    let model = SCALE.model_with_network_sets(SETS);
    let mut g = c.benchmark_group("compile");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("full_compile_netsets", |b| {
        b.iter_batched(
            || (),
            |()| Compiler::from_model(config.clone(), &model),
            BatchSize::LargeInput,
        )
    });
    let tiered = SCALE.model_with_tiers(SETS);
    g.bench_function("full_compile_tiers_netsets", |b| {
        b.iter_batched(
            || (),
            |()| Compiler::from_model(config.clone(), &tiered),
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut store = model;
    let mut compiler = Compiler::from_model(config.clone(), &store);
    compiler.take_changes();
    let mut moved = false;
    let mut touched = None;
    c.bench_function("netset_change", |b| {
        b.iter(|| {
            moved = !moved;
            let set = SCALE.network_set(123, moved);
            let applied = store.apply_valid(Update::Upsert(Resource::NetworkSet(set)));
            compiler.apply(&store, &applied);
            let changes = compiler.take_changes();
            touched.get_or_insert(changes.len());
            changes
        })
    });
    eprintln!(
        "netset_change: change set of {} operations",
        touched.unwrap_or(0)
    );
}

criterion_group!(compile_benches, benches);
criterion_main!(compile_benches);
