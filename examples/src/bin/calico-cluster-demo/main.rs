//! `calico-cluster-demo`: the main demo (`make demo`). Three hosts in network namespaces,
//! joined by two fabric planes, each running `calico-agent` (Linux backends) with two
//! workloads. `--bgp mixed` (the default) runs the native BGP speaker on host-a and host-c
//! and BIRD 2 on host-b, so the two implementations peer with each other; `--bgp native`
//! and `--bgp bird` run one kind everywhere. It prints the connectivity matrix measured with real TCP connects
//! next to the matrix the policy predicts, edits the policy, and shows the matrix change.
//! Everything it creates is removed at the end (also on failure).
//!
//! Without root it says so and runs the same scenario on the simulated network
//! (`calico_mock::MockNetwork`).

mod cluster;
mod interrupt;
mod scenario;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use calico_core::model::{parse_resources, Update};
use calico_mock::MockNetwork;

use cluster::{build, converge, ecmp_routes, step};
use interrupt::{catch_interrupts, INTERRUPTED};
use scenario::*;

// ---------------------------------------------------------------- the real cluster

fn real(agent_bin: &Path, bgp: &str) -> Result<bool, String> {
    let cluster = build(agent_bin, bgp)?;
    let v1 = model(POLICY_V1);
    let want1 = predicted(&v1);
    step("agents started; waiting for BGP and policy to converge");
    let (m1, took) = converge(&cluster, &want1, Duration::from_secs(90))?;
    println!("(converged in {:.1} s)", took.as_secs_f64());
    print_matrices("policy v1: backends admit frontends", &m1, &want1);
    ecmp_routes(&cluster, bgp);

    step("editing the policy: the db now admits backends (policy.yaml rewritten on every host)");
    let v2_text = format!("{POLICY_V1}{POLICY_V2_EXTRA}");
    for (host, _) in HOSTS {
        std::fs::write(
            cluster.dir.join(host).join("resources/policy.yaml"),
            &v2_text,
        )
        .map_err(|e| e.to_string())?;
    }
    let v2 = model(&v2_text);
    let want2 = predicted(&v2);
    let (m2, took) = converge(&cluster, &want2, Duration::from_secs(30))?;
    println!("(applied in {:.1} s)", took.as_secs_f64());
    print_matrices("policy v2: and the db admits backends", &m2, &want2);
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
    m1 == p1 && m2 == p2
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bgp = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => "mixed".to_string(),
        ["--bgp", v @ ("mixed" | "native" | "bird")] => v.to_string(),
        _ => {
            eprintln!("usage: calico-cluster-demo [--bgp mixed|native|bird]");
            return ExitCode::FAILURE;
        }
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
        match real(&agent, &bgp) {
            Ok(ok) => ok,
            Err(e) => {
                eprintln!("calico-cluster-demo: {e}");
                false
            }
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
