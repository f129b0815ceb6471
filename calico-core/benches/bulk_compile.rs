//! The rule compiler fed a bulk change (issue 15): 10,000 global policies added to a host
//! with 50 local and 1,000 remote endpoints, then removed, compared with compiling the
//! result as a snapshot. Run with `cargo bench -p calico-core --bench bulk_compile`.
//!
//! Paths, each timed 3 times (median, min, max) and weighed with `ChangeSet::weight`:
//!
//! * `snapshot`: `Compiler::from_model` of the base plus the policies, and its whole
//!   ruleset as a change set (what a fresh agent programs);
//! * `add, one group`: the policies applied as one group (`Compiler::apply_updates`) to a
//!   compiler holding the base, one `take_changes` at the end (what `AgentHandle::apply`
//!   does);
//! * `remove, one group`: the same for removing them again;
//! * `add, pass each N`: groups of N, `take_changes` after each (an engine reconciling
//!   small passes), for a few N.
//!
//! The ratio column divides by the snapshot's median time (and weight).

use std::time::{Duration, Instant};

use calico_core::compile::{CompileConfig, Compiler};
use calico_core::dataplane::{diff, ir::Ruleset};
use calico_core::model::{Model, Resource, ResourceKey, Update};
use calico_core::scale::Scale;

const SCALE: Scale = Scale {
    local: 50,
    remote: 1_000,
    policies: 0,
    apps: 100,
    namespaces: 20,
};
const POLICIES: usize = 10_000;
const RUNS: usize = 3;

fn adds() -> Vec<Update> {
    (0..POLICIES)
        .map(|k| Update::Upsert(Resource::Policy(SCALE.global_policy(k, 80))))
        .collect()
}

fn removes() -> Vec<Update> {
    (0..POLICIES)
        .map(|k| {
            Update::Remove(ResourceKey::Policy {
                namespace: None,
                name: format!("gpol{k}"),
            })
        })
        .collect()
}

/// Feeds `updates` to a compiler at `model` in groups of `pass`, taking the changes after each;
/// returns the time and the total weight of the change sets.
fn feed(
    model: &mut Model,
    compiler: &mut Compiler,
    updates: &[Update],
    pass: usize,
) -> (Duration, usize) {
    let t = Instant::now();
    let mut weight = 0;
    for group in updates.chunks(pass) {
        compiler.apply_updates(model, group.iter().cloned());
        weight += compiler.take_changes().weight();
    }
    (t.elapsed(), weight)
}

struct Row {
    path: String,
    times: Vec<Duration>,
    weight: usize,
}

fn main() {
    let config = CompileConfig::new("h1");
    let base = SCALE.model();
    let mut full = base.clone();
    for u in adds() {
        full.apply_valid(u);
    }
    let mut rows = Vec::new();

    let mut snap = Row {
        path: "snapshot".into(),
        times: vec![],
        weight: 0,
    };
    for _ in 0..RUNS {
        let t = Instant::now();
        let c = Compiler::from_model(config.clone(), &full);
        let w = diff(&Ruleset::default(), c.ruleset()).weight();
        snap.times.push(t.elapsed());
        snap.weight = w;
    }
    rows.push(snap);

    let (add, remove) = (adds(), removes());
    let mut add_row = Row {
        path: "add, one group".into(),
        times: vec![],
        weight: 0,
    };
    let mut remove_row = Row {
        path: "remove, one group".into(),
        times: vec![],
        weight: 0,
    };
    for _ in 0..RUNS {
        let mut model = base.clone();
        let mut c = Compiler::from_model(config.clone(), &model);
        c.take_changes();
        let (t, w) = feed(&mut model, &mut c, &add, POLICIES);
        add_row.times.push(t);
        add_row.weight = w;
        let (t, w) = feed(&mut model, &mut c, &remove, POLICIES);
        remove_row.times.push(t);
        remove_row.weight = w;
    }
    rows.push(add_row);
    rows.push(remove_row);

    for pass in [1000, 100] {
        let mut row = Row {
            path: format!("add, pass each {pass}"),
            times: vec![],
            weight: 0,
        };
        for _ in 0..RUNS {
            let mut model = base.clone();
            let mut c = Compiler::from_model(config.clone(), &model);
            c.take_changes();
            let (t, w) = feed(&mut model, &mut c, &add, pass);
            row.times.push(t);
            row.weight = w;
        }
        rows.push(row);
    }

    println!(
        "bulk compile: {POLICIES} global policies, {} local + {} remote endpoints, {RUNS} runs",
        SCALE.local, SCALE.remote
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>8} {:>10} {:>8}",
        "path", "median ms", "min ms", "max ms", "ratio", "weight", "w ratio"
    );
    let snap_median = median(&rows[0].times);
    let snap_weight = rows[0].weight.max(1);
    for r in &rows {
        let m = median(&r.times);
        println!(
            "{:<22} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>10} {:>8.2}",
            r.path,
            ms(m),
            ms(*r.times.iter().min().expect("runs")),
            ms(*r.times.iter().max().expect("runs")),
            m.as_secs_f64() / snap_median.as_secs_f64(),
            r.weight,
            r.weight as f64 / snap_weight as f64
        );
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
