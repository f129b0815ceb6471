//! ACL programming on the real kernel, against `nft -f` of the same ruleset in the same run.
//! Needs root; run with `cargo bench -p calico-linux --bench acl`. Prints a table.
//!
//! * full program: 250 local endpoints × 2,000 policies (10,000 remote endpoints in the
//!   selector sets) into an empty namespace, LinuxAcl against `nft -f` (best of 3 each);
//! * read back: dumping that table into the IR;
//! * add one endpoint to a host with 1,000 programmed endpoints (1,000 workload routes, the
//!   ACLs of 1,000 endpoints × 2,000 policies): compile the update incrementally, apply its
//!   change set, then program its route, as the agent orders them (median of 25). The
//!   endpoint's interface exists beforehand, as the CNI plugin creates it first.

use std::time::{Duration, Instant};

use calico_core::compile::{compile, CompileConfig, Compiler};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::ir::Verdict;
use calico_core::dataplane::{diff, Change, ChangeSet};
use calico_core::dataplane::{FibBackend, FibChangeSet, Route, RouteTarget};
use calico_core::model::{Resource, Update};
use calico_core::scale::Scale;
use calico_linux::acl::{nft_script, LinuxAcl};
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::Netns;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("acl bench: skipped: needs root (it programs nftables in fresh namespaces)");
        return;
    }
    let config = CompileConfig::new("h1");
    let scale = Scale::default();
    let ruleset = compile(&config, &scale.model());
    let changes = diff(&Ruleset::default(), &ruleset);
    let rules: usize = ruleset.chains.values().map(|c| c.rules.len()).sum();
    let elements: usize = ruleset.sets.values().map(|s| s.elements.len()).sum();
    println!(
        "ruleset: {} chains, {rules} rules, {} sets, {elements} set elements, {} maps",
        ruleset.chains.len(),
        ruleset.sets.len(),
        ruleset.maps.len()
    );
    let text = nft_script(&ruleset, "calico");
    let path = std::env::temp_dir().join(format!("calico-bench-{}.nft", std::process::id()));
    std::fs::write(&path, &text).unwrap();

    let (mut ours, mut theirs, mut dump) = (Duration::MAX, Duration::MAX, Duration::MAX);
    // `ACL_BENCH_SKIP_FULL=1` leaves out the full-program rows (e.g. to profile the rest).
    let full_runs = if std::env::var_os("ACL_BENCH_SKIP_FULL").is_some() {
        0
    } else {
        3
    };
    for _ in 0..full_runs {
        let ns = Netns::create("bench-acl").unwrap();
        let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
        let t = Instant::now();
        acl.apply_blocking(&changes).unwrap();
        ours = ours.min(t.elapsed());
        let t = Instant::now();
        let back = acl.dump_blocking().unwrap();
        dump = dump.min(t.elapsed());
        assert_eq!(back, ruleset, "the table must read back as programmed");

        let ns = Netns::create("bench-nft").unwrap();
        let t = Instant::now();
        ns.run(&["nft", "-f", path.to_str().unwrap()]).unwrap();
        theirs = theirs.min(t.elapsed());
    }
    let _ = std::fs::remove_file(&path);

    // One endpoint added to a host that has 1,000.
    let big = Scale {
        local: 1000,
        ..Scale::default()
    };
    let ns = Netns::create("bench-add").unwrap();
    let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fib = runtime
        .block_on(async { LinuxFib::in_netns(ns.path(), FibConfig::default()) })
        .unwrap();
    let workload_route = |ep: &calico_core::model::WorkloadEndpoint, interface: &str| Route {
        dst: ep.ip_networks[0],
        target: RouteTarget::Workload {
            interface: interface.into(),
        },
    };
    // The existing endpoints' routes, on one stand-in interface.
    let link_up = |name: &str, peer: &str| {
        ns.run(&[
            "ip", "link", "add", name, "type", "veth", "peer", "name", peer,
        ])
        .unwrap();
        for l in [name, peer] {
            ns.run(&["ip", "link", "set", l, "up"]).unwrap();
        }
    };
    link_up("d0", "d0-p");
    let existing = FibChangeSet {
        remove: vec![],
        upsert: (0..big.local)
            .map(|i| workload_route(&big.endpoint(i), "d0"))
            .collect(),
    };
    runtime.block_on(fib.apply(&existing)).unwrap();
    let mut store = big.model();
    let mut compiler = Compiler::from_model(config.clone(), &store);
    let initial = diff(&Ruleset::default(), compiler.ruleset());
    compiler.take_changes();
    acl.apply_blocking(&initial).unwrap();
    let mut samples = Vec::new();
    let mut compile_samples = Vec::new();
    let mut route_samples = Vec::new();
    let mut ops = Vec::new();
    for n in 0..25 {
        // A new local endpoint: take a remote endpoint's number and move it to this host.
        let mut ep = big.endpoint(big.local + big.remote + n);
        ep.node = "h1".into();
        link_up(&ep.interface_name, &format!("p{n}"));
        let route = FibChangeSet {
            remove: vec![],
            upsert: vec![workload_route(&ep, &ep.interface_name)],
        };
        let t = Instant::now();
        let applied = store.apply_valid(Update::Upsert(Resource::WorkloadEndpoint(ep)));
        compiler.apply(&store, &applied);
        let changes = compiler.take_changes();
        let compiled = t.elapsed();
        acl.apply_blocking(&changes).unwrap();
        let acl_done = t.elapsed();
        let report = runtime.block_on(fib.apply(&route)).unwrap();
        samples.push(t.elapsed());
        route_samples.push(t.elapsed() - acl_done);
        assert!(report.failed.is_empty(), "route: {:?}", report.failed);
        compile_samples.push(compiled);
        ops.push(changes.len());
    }
    // A remote endpoint's label change: set members only, no chain touched.
    let mut label_samples = Vec::new();
    let mut ep = big.endpoint(big.local + 17);
    let original = ep.labels["app"].clone();
    for n in 0..25 {
        let app = if n % 2 == 0 {
            "app-moved".to_string()
        } else {
            original.clone()
        };
        ep.labels.insert("app".into(), app);
        let t = Instant::now();
        let applied = store.apply_valid(Update::Upsert(Resource::WorkloadEndpoint(ep.clone())));
        compiler.apply(&store, &applied);
        let changes = compiler.take_changes();
        acl.apply_blocking(&changes).unwrap();
        label_samples.push(t.elapsed());
    }
    label_samples.sort();
    // The smallest change that adds a jump: one empty chain and one map element going to
    // it (what the kernel then validates is the whole table).
    let mut jump_samples = Vec::new();
    for n in 0..25 {
        let chain = format!("probe-{n}");
        let add = ChangeSet {
            changes: vec![
                Change::AddChain {
                    name: chain.clone(),
                    base: None,
                },
                Change::AddMapElements {
                    map: calico_core::compile::TO_WORKLOAD_MAP.into(),
                    elements: vec![(format!("probe{n}"), Verdict::Goto(chain.clone()))],
                },
            ],
        };
        let t = Instant::now();
        acl.apply_blocking(&add).unwrap();
        jump_samples.push(t.elapsed());
        let del = ChangeSet {
            changes: vec![
                Change::DelMapElements {
                    map: calico_core::compile::TO_WORKLOAD_MAP.into(),
                    keys: vec![format!("probe{n}")],
                },
                Change::DelChain { name: chain },
            ],
        };
        acl.apply_blocking(&del).unwrap();
    }
    jump_samples.sort();
    // The same transaction without a jump: one map element with a plain verdict. The
    // kernel skips validation, so the difference to the row above is what it costs.
    let mut plain_samples = Vec::new();
    for n in 0..25 {
        let key = format!("plain{n}");
        let add = ChangeSet {
            changes: vec![Change::AddMapElements {
                map: calico_core::compile::TO_WORKLOAD_MAP.into(),
                elements: vec![(key.clone(), Verdict::Drop)],
            }],
        };
        let t = Instant::now();
        acl.apply_blocking(&add).unwrap();
        plain_samples.push(t.elapsed());
        let del = ChangeSet {
            changes: vec![Change::DelMapElements {
                map: calico_core::compile::TO_WORKLOAD_MAP.into(),
                keys: vec![key],
            }],
        };
        acl.apply_blocking(&del).unwrap();
    }
    plain_samples.sort();
    samples.sort();
    compile_samples.sort();
    route_samples.sort();
    let median = samples[samples.len() / 2];
    let compile_median = compile_samples[compile_samples.len() / 2];
    assert_eq!(acl.dump_blocking().unwrap(), *compiler.ruleset());

    println!();
    println!("| what                                   | calico-rs   | baseline      | ratio |");
    println!("|----------------------------------------|-------------|---------------|-------|");
    if full_runs > 0 {
        println!(
            "| program 250 endpoints x 2,000 policies | {:8.1} ms | {:8.1} ms nft -f | {:.2} |",
            ms(ours),
            ms(theirs),
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
        println!(
            "| read the table back into the IR        | {:8.1} ms |               |       |",
            ms(dump)
        );
    }
    println!(
        "| add 1 endpoint to 1,000 (ACLs + route) | {:8.2} ms | (median of {}, {} ops per change set; compile {:.2} ms, route {:.2} ms) | |",
        ms(median),
        samples.len(),
        ops[ops.len() / 2],
        ms(compile_median),
        ms(route_samples[route_samples.len() / 2])
    );
    println!(
        "| one map element + empty chain (a jump) | {:8.2} ms | (median of {}: the kernel validates the table) | |",
        ms(jump_samples[jump_samples.len() / 2]),
        jump_samples.len()
    );
    println!(
        "| one map element, plain verdict (no jump)| {:8.2} ms | (median of {}: nothing to validate) | |",
        ms(plain_samples[plain_samples.len() / 2]),
        plain_samples.len()
    );
    println!(
        "| remote endpoint label change (sets only)| {:8.2} ms | (median of {}) | |",
        ms(label_samples[label_samples.len() / 2]),
        label_samples.len()
    );
}
