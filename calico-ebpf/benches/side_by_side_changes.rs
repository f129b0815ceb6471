//! The two ACL backends side by side, in one run, on the changes an agent makes (issue 21).
//! Needs root; run with `cargo bench -p calico-ebpf --bench side_by_side_changes`.
//!
//! A host of N local endpoints (the benchmarks' `Scale`: 10,000 remote endpoints, 2,000
//! policies; a veth interface per local endpoint) is programmed by `LinuxAcl` (nftables)
//! into one namespace and by `EbpfBackend` into another. The incremental compiler then
//! compiles each change once, and the same change set is applied to both backends, which
//! take turns going first:
//!
//! * **endpoint add**: a new local endpoint whose policies are programmed already (its
//!   interface made beforehand in both namespaces, not timed);
//! * **policy edit**: one policy's port changes, so every local endpoint it selects (N / 100
//!   of them) is re-programmed;
//! * **set member change**: a remote endpoint is added, which changes set members only.
//!
//! Prints the first apply, then the median and spread (min–max) of [`ROUNDS`] applies of
//! each change per backend, and the ratio of the medians (eBPF / nftables; below 1 the eBPF
//! backend is faster). `SIDE_LOCAL=100,1000` chooses the sizes (default 1000).

use std::time::{Duration, Instant};

use calico_core::compile::{CompileConfig, Compiler};
use calico_core::dataplane::ir::Ruleset;
use calico_core::dataplane::{diff, AclBackend, ChangeSet};
use calico_core::model::{Model, Resource, Update};
use calico_core::scale::Scale;
use calico_ebpf::backend::{EbpfBackend, EbpfConfig};
use calico_linux::acl::LinuxAcl;
use calico_netns::fixtures::Netns;

/// Applies of each change per backend.
const ROUNDS: usize = 20;

/// The backends' names, in the order of [`Hosts::backends`].
const NAMES: [&str; 2] = ["nftables", "eBPF"];

/// The two programmed hosts and the one compiler whose change sets both receive.
struct Hosts {
    namespaces: [Netns; 2],
    backends: [Box<dyn AclBackend>; 2],
    store: Model,
    compiler: Compiler,
    runtime: tokio::runtime::Runtime,
    scale: Scale,
    /// The next endpoint index nobody has (local or remote).
    next: usize,
}

impl Hosts {
    /// Both hosts with `local` endpoints' interfaces made; nothing programmed yet.
    fn new(local: usize) -> Hosts {
        let scale = Scale {
            local,
            ..Scale::default()
        };
        let namespaces = [
            Netns::create("side-nft").unwrap(),
            Netns::create("side-bpf").unwrap(),
        ];
        let names: Vec<String> = (0..local)
            .map(|i| scale.endpoint(i).interface_name)
            .collect();
        for ns in &namespaces {
            veths(ns, &names);
        }
        let nft = LinuxAcl::in_netns(namespaces[0].path().as_ref(), "calico").unwrap();
        let bpf = EbpfBackend::new(EbpfConfig {
            netns: Some(namespaces[1].path().into()),
            host_interfaces: vec![],
            set_capacity: 100_000,
            license: c"GPL".into(),
            blocks: calico_ebpf::tc::Blocks::DEFAULT,
        })
        .unwrap();
        let store = scale.model();
        let compiler = Compiler::from_model(CompileConfig::new("h1"), &store);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Hosts {
            namespaces,
            backends: [Box::new(nft), Box::new(bpf)],
            store,
            compiler,
            runtime,
            scale,
            next: scale.local + scale.remote,
        }
    }

    /// The first apply of the whole ruleset, per backend.
    fn first_apply(&mut self) -> [Duration; 2] {
        let all = diff(&Ruleset::default(), self.compiler.ruleset());
        self.compiler.take_changes();
        let mut took = [Duration::ZERO; 2];
        for (i, b) in self.backends.iter().enumerate() {
            let t = Instant::now();
            self.runtime.block_on(b.apply(&all)).unwrap();
            took[i] = t.elapsed();
        }
        took
    }

    /// Compiles `update` and applies its change set to both backends, `first` going first;
    /// the time of each apply.
    fn change(&mut self, update: Update, first: usize) -> [Duration; 2] {
        let applied = self.store.apply_valid(update);
        self.compiler.apply(&self.store, &applied);
        let changes: ChangeSet = self.compiler.take_changes();
        let mut took = [Duration::ZERO; 2];
        for i in [first, 1 - first] {
            let t = Instant::now();
            self.runtime
                .block_on(self.backends[i].apply(&changes))
                .unwrap();
            took[i] = t.elapsed();
        }
        took
    }

    /// A new endpoint, local (its interface made in both namespaces first) or remote.
    fn endpoint(&mut self, local: bool) -> Update {
        let mut ep = self.scale.endpoint(self.next);
        self.next += 1;
        if local {
            ep.node = "h1".into();
            for ns in &self.namespaces {
                veths(ns, std::slice::from_ref(&ep.interface_name));
            }
        }
        Update::Upsert(Resource::WorkloadEndpoint(ep))
    }
}

/// Makes a veth pair per name in `ns` (the named end up), in one `ip -batch`.
fn veths(ns: &Netns, names: &[String]) {
    let batch = std::env::temp_dir().join(format!("side-changes-{}.ip", std::process::id()));
    let text: String = names
        .iter()
        .map(|n| {
            format!(
                "link add {n} type veth peer name p{}\nlink set {n} up\n",
                &n[4..]
            )
        })
        .collect();
    std::fs::write(&batch, text).unwrap();
    ns.run(&["ip", "-batch", batch.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_file(&batch);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, min and max of `v` in milliseconds.
fn spread(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

/// One table row: per backend the median (min–max), then eBPF / nftables.
fn row(what: &str, samples: [Vec<Duration>; 2]) {
    let [nft, bpf] = samples.map(spread);
    println!(
        "| {what:<22} | {:>9.3} ({:.3}–{:.3}) | {:>9.3} ({:.3}–{:.3}) | {:.2}× |",
        nft.0,
        nft.1,
        nft.2,
        bpf.0,
        bpf.1,
        bpf.2,
        bpf.0 / nft.0
    );
}

/// [`ROUNDS`] of one kind of change: the samples per backend.
fn rounds(
    hosts: &mut Hosts,
    mut update: impl FnMut(&mut Hosts, usize) -> Update,
) -> [Vec<Duration>; 2] {
    let mut samples: [Vec<Duration>; 2] = Default::default();
    for r in 0..ROUNDS {
        let u = update(hosts, r);
        let took = hosts.change(u, r % 2);
        for (s, t) in samples.iter_mut().zip(took) {
            s.push(t);
        }
    }
    samples
}

fn size(local: usize) {
    let mut hosts = Hosts::new(local);
    let first = hosts.first_apply();
    println!();
    println!(
        "{local} local endpoints (10,000 remote, 2,000 policies): first apply nftables {:.1} ms, eBPF {:.1} ms",
        ms(first[0]),
        ms(first[1])
    );
    println!(
        "| change, ms             | {:<26} | {:<26} | eBPF / nft |",
        NAMES[0], NAMES[1]
    );
    println!("|---|---|---|---|");
    let adds = rounds(&mut hosts, |h, _| h.endpoint(true));
    row("endpoint add", adds);
    let edits = rounds(&mut hosts, |h, r| {
        Update::Upsert(Resource::Policy(h.scale.policy(r, 8_000 + r as u16)))
    });
    row("policy edit", edits);
    let members = rounds(&mut hosts, |h, _| h.endpoint(false));
    row("set member change", members);
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "side_by_side_changes bench: skipped: needs root (nftables, BPF programs and maps)"
        );
        return;
    }
    raise_file_limit();
    let sizes = std::env::var("SIDE_LOCAL").unwrap_or_else(|_| "1000".into());
    for local in sizes.split(',').filter_map(|n| n.trim().parse().ok()) {
        size(local);
    }
}

/// Raises the open-file limit: the eBPF backend holds a descriptor per attached program.
fn raise_file_limit() {
    let files = libc::rlimit {
        rlim_cur: 1 << 20,
        rlim_max: 1 << 20,
    };
    // SAFETY: a valid rlimit; failing leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &files) } != 0 {
        println!("(could not raise the open file limit)");
    }
}
