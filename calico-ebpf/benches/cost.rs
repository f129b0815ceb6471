//! What generated policy programs cost in the kernel. Needs root; run with
//! `cargo bench -p calico-ebpf --bench cost`. Prints a table:
//!
//! * per packet: `BPF_PROG_TEST_RUN`'s mean over many runs of an IPv4 TCP frame that
//!   traverses N linear rules (none matches; the chain's policy accepts), against the
//!   prologue alone (N = 0); the same with the per-interface counters the backend's
//!   programs keep; the same through the dispatcher (its lookup and tail call), against
//!   the program run directly; and one set lookup in a 10,000-member set;
//! * generation and load (the verifier) of N-rule programs, up to the first N the
//!   generator refuses;
//! * a set member change: one map write, and its removal;
//! * the benchmarks' model (`Scale::default()`, 250 local endpoints, 2,000 policies): the
//!   forward program of one local endpoint pair, generated and loaded;
//! * `EbpfBackend` in a namespace with 100 and 1,000 local endpoints (veth interfaces,
//!   `Scale` otherwise): the first apply, then 20 each of endpoint adds (the incremental
//!   compiler's change set applied) whose programs are loaded already, endpoint adds whose
//!   policy has no program yet, and remote endpoint adds (set members only): median and
//!   range of the compile plus apply, of the apply, of the apply less the attaches (the
//!   values and dispatcher entries, the clsact qdisc bound to the shared blocks), of the
//!   attaches, and of the compile; and the process's open file descriptors (qdiscs are
//!   none).
//!
//! Times include the test-run harness's own per-run overhead (a few ns), the same for all.
//! `COST_LOCAL_ENDPOINTS=100,1000,10000` chooses the backend's sizes, `COST_ROUNDS=N` the
//! adds of each kind (default 20; more to profile them), `COST_BACKEND_ONLY=1` skips the
//! rest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use calico_core::compile::{compile, CompileConfig};
use calico_core::dataplane::ir::{
    BaseChain, Chain, ChainType, Hook, Match, Rule, Ruleset, Set, SetElement, SetKey, Side, Verdict,
};
use calico_core::eval::Packet;
use calico_core::scale::Scale;
use calico_ebpf::generate::{
    hook_program, Bindings, Conntrack, Counting, FlowTimeouts, Logs, Options, PieceBudget,
};
use calico_ebpf::program::Loaded;
use calico_ebpf::sets::{Maps, SetIds};
use calico_ebpf::{frame, layout, Error};

const REPEAT: u32 = 200_000;

fn linear(n: usize) -> Ruleset {
    let rules = (0..n)
        .map(|i| {
            Rule::new(
                vec![
                    Match::L4Proto {
                        proto: 6,
                        negate: false,
                    },
                    Match::Port {
                        side: Side::Dst,
                        ranges: vec![(10_000 + i as u16, 10_000 + i as u16)],
                        negate: false,
                    },
                ],
                Verdict::Drop,
            )
        })
        .collect();
    let mut r = Ruleset::default();
    r.chains.insert(
        "fw".into(),
        Chain {
            base: Some(BaseChain::accepting(ChainType::Filter, Hook::Forward, 0)),
            rules,
        },
    );
    r
}

/// Generates and loads the forward program of `r`; generation and load times.
fn load(
    r: &Ruleset,
    maps: &Maps,
    ids: &BTreeMap<String, u32>,
    b: &Bindings,
) -> Result<(Loaded, Duration, Duration), Error> {
    load_counting(r, maps, ids, b, Counting::Off)
}

/// [`load`], the program counting per interface as `counting` says.
fn load_counting(
    r: &Ruleset,
    maps: &Maps,
    ids: &BTreeMap<String, u32>,
    b: &Bindings,
    counting: Counting,
) -> Result<(Loaded, Duration, Duration), Error> {
    let t = Instant::now();
    // One program, as before policies were split (benches/split.rs measures pieces).
    let options = Options {
        logs: Logs::Omit,
        counting,
        pieces: PieceBudget::UNSPLIT,
        ..Options::default()
    };
    let p = hook_program(r, Hook::Forward, b, ids, options)?;
    let generated = t.elapsed();
    let t = Instant::now();
    let l = Loaded::load("cali_bench", &p, maps)?;
    Ok((l, generated, t.elapsed()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `EbpfBackend` on a host of `local` endpoints: first apply, endpoint adds, remote
/// endpoint adds.
fn backend(local: usize) {
    use calico_core::compile::Compiler;
    use calico_core::dataplane::{diff, AclBackend};
    use calico_core::model::{Resource, Update};
    use calico_core::selector::Selector;
    use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
    use calico_netns::fixtures::Netns;

    let scale = Scale {
        local,
        ..Scale::default()
    };
    let ns = Netns::create("ebpf-bench").unwrap();
    let dummies = |names: Vec<String>| {
        let batch = std::env::temp_dir().join(format!("ebpf-bench-{}.ip", std::process::id()));
        let text: String = names
            .iter()
            .map(|n| {
                static PEERS: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let i = PEERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let peer = format!("peer{i}");
                format!("link add {n} type veth peer name {peer}\nlink set {n} up\n")
            })
            .collect();
        std::fs::write(&batch, text).unwrap();
        ns.run(&["ip", "-batch", batch.to_str().unwrap()]).unwrap();
        let _ = std::fs::remove_file(&batch);
    };
    let t = Instant::now();
    dummies(
        (0..local)
            .map(|i| scale.endpoint(i).interface_name)
            .collect(),
    );
    println!(
        "  {local:>5} veth pairs made in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let acl = EbpfBackend::new(EbpfConfig {
        netns: Some(ns.path().into()),
        host_interfaces: vec![],
        set_capacity: 100_000,
        license: c"GPL".into(),
        blocks: calico_ebpf::tc::Blocks::DEFAULT,
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut store = scale.model();
    let mut compiler = Compiler::from_model(CompileConfig::new("h1"), &store);
    let initial = diff(&Ruleset::default(), compiler.ruleset());
    compiler.take_changes();
    let t = Instant::now();
    if let Err(e) = runtime.block_on(acl.apply(&initial)) {
        println!("  {local} endpoints: refused: {e}");
        return;
    }
    let first = t.elapsed();
    drop(initial);
    // The backend's own records: a kernel query per interface would dominate at 10,000.
    let programs = |acl: &EbpfBackend| acl.counters_blocking().unwrap();
    let loaded = programs(&acl);
    println!(
        "  {local:>5} local endpoints: first apply {:>8.1} ms, {} programs loaded for {} interfaces, {} open fds",
        ms(first),
        loaded.loaded,
        loaded.interfaces,
        open_fds()
    );
    // Endpoint indexes past every existing one, stepping by `apps`: endpoint `i` has app
    // `i % apps`, and the policies that apply to it are those of its app.
    let mut next = (scale.local + scale.remote).div_ceil(scale.apps) * scale.apps;
    let mut add = |app: Option<usize>, on_this_host: bool| {
        let mut ep = scale.endpoint(next + app.unwrap_or(0));
        next += scale.apps;
        if app.is_none() {
            // An app of its own, whose policy (added first, not timed: no interface
            // reaches it yet) nothing has loaded a program for.
            let fresh = format!("fresh{next}");
            ep.labels.insert("app".into(), fresh.clone());
            let mut p = scale.policy(0, 20_000 + (next % 40_000) as u16);
            p.name = fresh.clone();
            p.namespace = ep.namespace.clone();
            p.selector = Selector::parse(&format!("app == '{fresh}'")).unwrap();
            let applied = store.apply_valid(Update::Upsert(Resource::Policy(p)));
            compiler.apply(&store, &applied);
            runtime
                .block_on(acl.apply(&compiler.take_changes()))
                .unwrap();
        }
        if on_this_host {
            ep.node = "h1".into();
            dummies(vec![ep.interface_name.clone()]);
        }
        let t = Instant::now();
        let applied = store.apply_valid(Update::Upsert(Resource::WorkloadEndpoint(ep)));
        compiler.apply(&store, &applied);
        let changes = compiler.take_changes();
        let compiled = t.elapsed();
        let attaching = programs(&acl).attaching;
        let t_apply = Instant::now();
        runtime.block_on(acl.apply(&changes)).unwrap();
        let applied = t_apply.elapsed();
        let attach = programs(&acl).attaching - attaching;
        Sample {
            compile: compiled,
            apply: applied,
            attach,
        }
    };
    let rounds = std::env::var("COST_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let shared: Vec<_> = (0..rounds)
        .map(|n| add(Some(n % scale.apps.min(local)), true))
        .collect();
    let after = programs(&acl);
    report("endpoint add, its programs loaded", &shared);
    println!(
        "        program loads during them: {}",
        after.loads - loaded.loads
    );
    let fresh: Vec<_> = (0..rounds).map(|_| add(None, true)).collect();
    report("endpoint add, its policy's program not loaded yet", &fresh);
    println!(
        "        program loads during them: {}",
        programs(&acl).loads - after.loads
    );
    let remote: Vec<_> = (0..rounds).map(|n| add(Some(n), false)).collect();
    report("remote endpoint add (set members only)", &remote);
    println!(
        "        open fds after the adds: {} ({} interfaces)",
        open_fds(),
        programs(&acl).interfaces
    );
}

/// The process's open file descriptors (tc filters are none; TCX links were one each).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// One endpoint add: the compile, the backend's apply, and the part of the apply spent
/// attaching (the values and dispatcher entries, the clsact qdisc).
struct Sample {
    compile: Duration,
    apply: Duration,
    attach: Duration,
}

/// Prints the median and range (min–max) of each part of `samples`.
fn report(what: &str, samples: &[Sample]) {
    let stats = |f: &dyn Fn(&Sample) -> Duration| {
        let mut v: Vec<Duration> = samples.iter().map(f).collect();
        v.sort();
        let (lo, hi) = (v[0], v[v.len() - 1]);
        format!("{:.3} ms ({:.3}–{:.3})", ms(median(v)), ms(lo), ms(hi))
    };
    println!("        {what}, median (min–max) of {}:", samples.len());
    println!(
        "          compile + apply         {}",
        stats(&|s| s.compile + s.apply)
    );
    println!("          apply                   {}", stats(&|s| s.apply));
    println!(
        "          apply less attaches     {}",
        stats(&|s| s.apply - s.attach)
    );
    println!("          attaches                {}", stats(&|s| s.attach));
    println!(
        "          compile                 {}",
        stats(&|s| s.compile)
    );
}

/// What the dispatcher adds to a packet: the same programs run directly and through the
/// dispatcher's lookup and tail call, on a packet at a veth interface (a test run's
/// packet is at the interface its context names, so the dispatcher finds its entry).
fn dispatch_cost(maps: &Maps, f: &[u8], ct: u32) {
    use calico_ebpf::dispatch::Dispatcher;
    use calico_ebpf::sys;
    use calico_ebpf::tc::Direction;
    use calico_netns::fixtures::Netns;
    let ns = Netns::create("ebpf-bench-dispatch").unwrap();
    ns.run(&[
        "ip", "link", "add", "dsp0", "type", "veth", "peer", "name", "dsp1",
    ])
    .unwrap();
    let (none, any) = (BTreeMap::new(), Bindings::default());
    let programs: Vec<(usize, Loaded)> = [0, 10]
        .into_iter()
        .map(|n| (n, load(&linear(n), maps, &none, &any).unwrap().0))
        .collect();
    let rows = ns.enter(|| {
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c"dsp0".as_ptr()) };
        let mut ctx = vec![0u8; layout::skb::SIZE];
        ctx[layout::skb::CB0 as usize..][..4].copy_from_slice(&ct.to_ne_bytes());
        ctx[layout::skb::IFINDEX as usize..][..4].copy_from_slice(&index.to_ne_bytes());
        let mut d = Dispatcher::open([None, None], None, c"GPL").unwrap();
        let time = |fd: &std::os::fd::OwnedFd| {
            sys::prog_test_run(fd, f, &ctx, REPEAT).unwrap().duration_ns
        };
        let mut rows = Vec::new();
        for (n, l) in &programs {
            let slot = d.hold(index).unwrap();
            slot.set(Direction::Ingress, l.fd()).unwrap();
            slot.enable().unwrap();
            rows.push((*n, time(l.fd()), time(d.program(Direction::Ingress))));
        }
        rows
    });
    for (n, direct, via) in rows.unwrap() {
        println!(
            "  {n:>5} rules, dispatched   {via:>8} ns   (run directly: {direct} ns; the dispatcher's lookup and tail call: {} ns)",
            i64::from(via) - i64::from(direct)
        );
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("cost bench: skipped: needs root (BPF programs and maps)");
        return;
    }
    if std::env::var_os("COST_BACKEND_ONLY").is_none() {
        programs();
    }
    backends();
}

/// The program-level figures: per packet, generation and load, set writes, the `Scale`
/// model's forward program.
fn programs() {
    let maps = Maps::create(100_000).expect("create the maps");
    let tcp = Packet::tcp(
        "10.0.0.1".parse().unwrap(),
        40_000,
        "10.0.0.2".parse().unwrap(),
        80,
    );
    let f = frame::build(&tcp).unwrap();
    let none = BTreeMap::new();
    let any = Bindings::default();
    let ct = layout::ct::NEW | layout::ct::UNCONFIRMED;

    println!("per packet (BPF_PROG_TEST_RUN, mean of {REPEAT} runs)");
    let mut base = 0.0;
    for n in [0, 10, 100, 1000] {
        let (l, _, _) = load(&linear(n), &maps, &none, &any).unwrap();
        let ns = f64::from(l.time(&f, ct, REPEAT).unwrap());
        if n == 0 {
            base = ns;
            println!("  prologue only            {ns:>8.0} ns");
        } else {
            let per_rule = (ns - base) / n as f64;
            println!("  {n:>5} linear rules       {ns:>8.0} ns   ({per_rule:.2} ns a rule)");
        }
    }

    // The flow table: the packet's flow recorded by a first run, found (and stamped) by
    // every later one.
    {
        let options = Options {
            logs: Logs::Omit,
            conntrack: Conntrack::Table(FlowTimeouts::DEFAULT),
            ..Options::default()
        };
        let p = hook_program(&linear(0), Hook::Forward, &any, &none, options).unwrap();
        let l = Loaded::load("cali_bench", &p, &maps).unwrap();
        let ns = f64::from(l.time(&f, 0, REPEAT).unwrap());
        println!("  0 rules, flow table       {ns:>8.0} ns   (its flow found)");
    }

    // The per-interface counters: a test run's packet is at `lo` (ifindex 1).
    let rows = maps.counters().add(1).unwrap();
    for n in [0, 10] {
        let (l, _, _) = load_counting(&linear(n), &maps, &none, &any, Counting::Ingress).unwrap();
        let ns = f64::from(l.time(&f, ct, REPEAT).unwrap());
        println!(
            "  {n:>5} rules, counted      {ns:>8.0} ns   (counters at lo: {:?})",
            maps.counters().read(1).unwrap().map(|c| c.ingress.packets)
        );
    }
    drop(rows);

    dispatch_cost(&maps, &f, ct);

    // One rule: the source in a 10,000-member set (misses, so the rule does not apply).
    let mut r = linear(0);
    let set = Set {
        key: SetKey::Ipv4Net,
        elements: (0..10_000u32)
            .map(|i| {
                SetElement::Net(
                    format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
                        .parse()
                        .unwrap(),
                )
            })
            .collect(),
    };
    let mut ids = SetIds::default();
    let id = ids.assign("big").unwrap();
    maps.add_set("big", id, &set).unwrap();
    r.sets.insert("big".into(), set);
    r.chains.get_mut("fw").unwrap().rules.push(Rule::new(
        vec![Match::AddrInSet {
            side: Side::Src,
            set: "big".into(),
            negate: false,
        }],
        Verdict::Drop,
    ));
    let (l, _, _) = load(&r, &maps, ids.ids(), &any).unwrap();
    let ns = f64::from(l.time(&f, ct, REPEAT).unwrap());
    println!(
        "  1 lookup, 10,000-CIDR set {ns:>7.0} ns   ({:.0} ns the lookup)",
        ns - base
    );

    println!("generate + load (verifier), linear rules");
    for n in [10, 100, 1000, 2000, 4000, 8000, 16_000, 32_000] {
        match load(&linear(n), &maps, &none, &any) {
            Ok((l, g, v)) => println!(
                "  {n:>6} rules  {:>7} insns  generate {:>7.2} ms  load {:>8.2} ms",
                l.insns(),
                ms(g),
                ms(v)
            ),
            Err(e) => {
                println!("  {n:>6} rules  refused: {e}");
                break;
            }
        }
    }

    println!("set member change (mean of 10,000)");
    let t = Instant::now();
    for i in 0..10_000u32 {
        let e = SetElement::Addr(std::net::IpAddr::V4((0x0b00_0000 + i).into()));
        maps.add(
            "big",
            id,
            SetKey::Ipv4Net,
            &SetElement::Net(match e {
                SetElement::Addr(a) => ipnet::IpNet::new(a, 32).unwrap(),
                _ => unreachable!(),
            }),
        )
        .unwrap();
    }
    let add = t.elapsed() / 10_000;
    let t = Instant::now();
    for i in 0..10_000u32 {
        let a = std::net::IpAddr::V4((0x0b00_0000 + i).into());
        maps.remove(
            "big",
            id,
            SetKey::Ipv4Net,
            &SetElement::Net(ipnet::IpNet::new(a, 32).unwrap()),
        )
        .unwrap();
    }
    let remove = t.elapsed() / 10_000;
    println!(
        "  add {:.2} µs, remove {:.2} µs",
        add.as_secs_f64() * 1e6,
        remove.as_secs_f64() * 1e6
    );

    println!("the benchmarks' model (Scale::default()): forward program of one endpoint pair");
    let scale = Scale::default();
    let ruleset = compile(&CompileConfig::new("h1"), &scale.model());
    let mut ids = SetIds::default();
    let t = Instant::now();
    for (name, s) in &ruleset.sets {
        let id = ids.assign(name).unwrap();
        maps.add_set(name, id, s).unwrap();
    }
    let elements: usize = ruleset.sets.values().map(|s| s.elements.len()).sum();
    println!(
        "  {} sets, {elements} elements written in {:.1} ms",
        ruleset.sets.len(),
        ms(t.elapsed())
    );
    let pair = Bindings {
        iif: Some(scale.endpoint(0).interface_name),
        oif: Some(scale.endpoint(1).interface_name),
    };
    // The first generation after the compile runs tens of ms longer than the next ones
    // (cold memory); the figure is the warm one, as an agent that generates often sees.
    let warm = hook_program(
        &ruleset,
        Hook::Forward,
        &pair,
        ids.ids(),
        Options {
            logs: Logs::Omit,
            ..Options::default()
        },
    );
    drop(warm);
    match load(&ruleset, &maps, ids.ids(), &pair) {
        Ok((l, g, v)) => println!(
            "  {} insns  generate {:.2} ms  load {:.2} ms",
            l.insns(),
            ms(g),
            ms(v)
        ),
        Err(e) => println!("  refused: {e}"),
    }
}

/// `EbpfBackend` at the sizes `COST_LOCAL_ENDPOINTS` lists (default 100 and 1,000).
fn backends() {
    // The backend holds two link descriptors per interface: 10,000 interfaces need more
    // than a usual limit of 20,000 (root may raise it).
    let files = libc::rlimit {
        rlim_cur: 1 << 20,
        rlim_max: 1 << 20,
    };
    // SAFETY: a valid rlimit; failing leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &files) } != 0 {
        println!("  (could not raise the open file limit)");
    }
    println!("EbpfBackend (Scale, veth interfaces)");
    let sizes = std::env::var("COST_LOCAL_ENDPOINTS").unwrap_or_else(|_| "100,1000".into());
    for local in sizes.split(',').filter_map(|n| n.trim().parse().ok()) {
        backend(local);
    }
}
