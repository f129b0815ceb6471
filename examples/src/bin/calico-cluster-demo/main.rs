//! `calico-cluster-demo`: the main demo (`make demo`). Three hosts in network namespaces,
//! joined by two fabric planes, each running `calico-agent` (Linux backends) with two
//! workloads. `--bgp mixed` (the default) runs the native BGP speaker on host-a and host-c
//! and BIRD 2 on host-b, so the two implementations peer with each other; `--bgp native`
//! and `--bgp bird` run one kind everywhere. With `--datastore etcd` (the default) a real
//! etcd runs in the fabric namespace, the demo writes the cluster and the policy edit to it
//! as an orchestrator would, the agents follow it, and the demo prints how long the edit
//! took from the write to programmed on every host; `--datastore dir` gives each agent a
//! directory of resource files instead. It prints the connectivity matrix measured with real TCP connects
//! next to the matrix the policy predicts, edits the policy, and shows the matrix change.
//! Everything it creates is removed at the end (also on failure).
//!
//! Without root it says so and runs the same scenario on the simulated network
//! (`calico_mock::MockNetwork`).

mod cluster;
mod datastore;
mod interrupt;
mod scenario;
mod why;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use calico_core::model::{parse_resources, Update};
use calico_mock::MockNetwork;

use cluster::{build, converge, ecmp_routes, step, Cluster, Dataplane};
use datastore::{latency_line, wait_programmed, Store};
use interrupt::{catch_interrupts, INTERRUPTED};
use scenario::*;

// ---------------------------------------------------------------- the real cluster

/// The policy edit: rewritten in every host's directory, or written once to etcd and
/// waited for until every host's agent has programmed it (the latency printed).
fn edit_policy(cluster: &Cluster, v2_text: &str) -> Result<(), String> {
    let Some(etcd) = &cluster.etcd else {
        step(
            "editing the policy: the db now admits backends (policy.yaml rewritten on every host)",
        );
        for (host, _) in HOSTS {
            let path = cluster.dir.join(host).join("resources/policy.yaml");
            std::fs::write(&path, v2_text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(());
    };
    step("editing the policy: the db now admits backends (one write to etcd)");
    let start = Instant::now();
    let rev = etcd.write(POLICY_V2_EXTRA)?;
    let took = wait_programmed(&cluster.hosts, rev, start, Duration::from_secs(30))?;
    println!(
        "policy written to etcd at revision {rev} → programmed on {}",
        latency_line(&took)
    );
    println!("(the time runs from the write's request to each agent's /status showing it)");
    Ok(())
}

fn real(agent_bin: &Path, o: &Options) -> Result<bool, String> {
    let bgp = o.bgp.as_str();
    let tool = agent_bin.with_file_name("calico-rs");
    if !tool.exists() {
        return Err(format!(
            "{} not found: build it: cargo build -p calico-agent --bins",
            tool.display()
        ));
    }
    let cluster = build(agent_bin, bgp, o.store, o.dataplane)?;
    let v1 = model(POLICY_V1);
    let want1 = predicted(&v1);
    step("agents started; waiting for BGP and policy to converge");
    let (m1, took) = converge(&cluster, &want1, Duration::from_secs(90))?;
    println!("(converged in {:.1} s)", took.as_secs_f64());
    print_matrices("policy v1: backends admit frontends", &m1, &want1);
    ecmp_routes(&cluster, bgp);

    let v2_text = format!("{POLICY_V1}{POLICY_V2_EXTRA}");
    edit_policy(&cluster, &v2_text)?;
    let v2 = model(&v2_text);
    let want2 = predicted(&v2);
    let (m2, took) = converge(&cluster, &want2, Duration::from_secs(30))?;
    println!("(applied in {:.1} s)", took.as_secs_f64());
    print_matrices("policy v2: and the db admits backends", &m2, &want2);
    if let Some(etcd) = &cluster.etcd {
        step("status back: what the hosts report through etcd (as the orchestrator's plug-in reads it)");
        for line in etcd.status_back(Duration::from_secs(10))? {
            println!("    {line}");
        }
    }
    why::real(&cluster, &tool)?;
    match o.dataplane {
        Dataplane::Nft => why::flows(&cluster, &tool)?,
        Dataplane::Bpf => {
            step("what was seen? no flow logs on the eBPF dataplane yet (calico-ebpf's README)")
        }
    }
    if m1 != want1 || m2 != want2 {
        for (host, _) in HOSTS {
            let log = std::fs::read_to_string(cluster.dir.join(host).join("agent.log"))
                .unwrap_or_default();
            eprintln!("--- {host} agent log (last lines)");
            for line in log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("{line}");
            }
        }
    }
    step("cleaning up: agents stopped, namespaces and files removed");
    Ok(m1 == want1 && m2 == want2)
}

// ---------------------------------------------------------------- the simulated cluster

fn simulated() -> bool {
    let run = |policy: &str, net: &mut MockNetwork| -> (Matrix, Matrix) {
        let m = model(policy);
        for r in parse_resources(&format!("{}---{policy}", cluster_yaml())).unwrap() {
            net.apply(Update::Upsert(r)).expect("valid");
        }
        net.sync();
        let n = WORKLOADS.len();
        let measured = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| i != j && net.send(&probe(i, j)).map(|d| d.delivered).unwrap_or(false))
                    .collect()
            })
            .collect();
        (measured, predicted(&m))
    };
    let mut net = MockNetwork::new();
    for (host, i) in HOSTS {
        net.add_host(host, format!("10.1.0.{i}").parse().unwrap());
    }
    let (m1, p1) = run(POLICY_V1, &mut net);
    print_matrices("policy v1 (simulated network)", &m1, &p1);
    let (m2, p2) = run(&format!("{POLICY_V1}{POLICY_V2_EXTRA}"), &mut net);
    print_matrices("policy v2 (simulated network)", &m2, &p2);
    why::simulated(&net);
    m1 == p1 && m2 == p2
}

/// `--bgp mixed|native|bird` and `--datastore etcd|dir`, in any order.
/// The demo's command line.
struct Options {
    /// `--bgp`: `mixed` (the default), `native` or `bird`.
    bgp: String,
    /// `--datastore`: `etcd` (the default) or `dir`.
    store: Store,
    /// `--dataplane`: `nft` (the default) or `bpf`.
    dataplane: Dataplane,
}

fn parse_args(args: &[String]) -> Option<Options> {
    let mut o = Options {
        bgp: "mixed".to_string(),
        store: Store::Etcd,
        dataplane: Dataplane::Nft,
    };
    for pair in args.chunks(2) {
        match pair {
            [k, v] if k == "--bgp" && matches!(v.as_str(), "mixed" | "native" | "bird") => {
                o.bgp = v.clone()
            }
            [k, v] if k == "--datastore" && v == "etcd" => o.store = Store::Etcd,
            [k, v] if k == "--datastore" && v == "dir" => o.store = Store::Dir,
            [k, v] if k == "--dataplane" && v == "nft" => o.dataplane = Dataplane::Nft,
            [k, v] if k == "--dataplane" && v == "bpf" => o.dataplane = Dataplane::Bpf,
            _ => return None,
        }
    }
    Some(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(options) = parse_args(&args) else {
        eprintln!("usage: calico-cluster-demo [--bgp mixed|native|bird] [--datastore etcd|dir] [--dataplane nft|bpf]");
        return ExitCode::FAILURE;
    };
    println!("calico-rs demo: 3 hosts, 2 fabric planes, 6 workloads, a policy and its edit");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ok = if root {
        catch_interrupts();
        let agent = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("calico-agent")))
            .filter(|p| p.exists());
        let Some(agent) = agent else {
            eprintln!("calico-cluster-demo: calico-agent not found next to this binary; build it: cargo build -p calico-agent");
            return ExitCode::FAILURE;
        };
        match real(&agent, &options) {
            Ok(ok) => ok,
            Err(e) if !INTERRUPTED.load(Ordering::SeqCst) => {
                eprintln!("calico-cluster-demo: {e}");
                println!("\ndemo FAILED: it could not run to the end (above: why)");
                return ExitCode::FAILURE;
            }
            Err(_) => false,
        }
    } else {
        println!("not root: network namespaces need root, so this runs the same scenario on the simulated network");
        simulated()
    };
    if INTERRUPTED.load(Ordering::SeqCst) {
        println!("\ndemo interrupted: everything it made is removed");
        ExitCode::from(130)
    } else if ok {
        println!("\ndemo OK: every measured matrix equals the policy's prediction");
        ExitCode::SUCCESS
    } else {
        println!("\ndemo FAILED: a measured matrix differs from the prediction");
        ExitCode::FAILURE
    }
}
