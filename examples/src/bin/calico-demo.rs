//! `calico-demo`: loads a YAML file of resources, shows which policies and profiles apply to
//! each workload endpoint, and judges a matrix of probes between every pair of workloads with
//! the reference evaluator, printing the trace of the rule that decided.
//!
//! ```sh
//! cargo run -p calico-examples --bin calico-demo -- examples/demo/model.yaml
//! ```
//!
//! A malformed file is reported in one line (file, document, field, reason) and the program
//! exits with status 1.

use std::net::IpAddr;
use std::process::ExitCode;

use calico_core::eval::{evaluate_flow, Packet};
use calico_core::model::{load_file, Model, WorkloadEndpoint};

/// The probes sent between every ordered pair of workloads.
fn probes(src: IpAddr, dst: IpAddr) -> Vec<(&'static str, Packet)> {
    let icmp = if src.is_ipv4() {
        Packet::icmp(src, dst, 8, 0)
    } else {
        Packet::icmpv6(src, dst, 128, 0)
    };
    vec![
        ("ping", icmp),
        ("tcp/8080", Packet::tcp(src, 40000, dst, 8080)),
        ("tcp/5432", Packet::tcp(src, 40000, dst, 5432)),
        ("udp/53", Packet::udp(src, 40000, dst, 53)),
    ]
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: calico-demo <resources.yaml>");
        return ExitCode::from(2);
    };
    let resources = match load_file(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("calico-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let model = match Model::from_resources(resources) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("calico-demo: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_applicability(&model);
    print_matrix(&model);
    ExitCode::SUCCESS
}

fn name(ep: &WorkloadEndpoint) -> String {
    ep.id.workload.clone()
}

fn print_applicability(model: &Model) {
    println!("== Which policies and profiles apply to each workload endpoint");
    for ep in model.workload_endpoints.values() {
        let applying = calico_core::eval::applicable_policies(model, ep);
        println!(
            "{} ({} on {}, {})",
            name(ep),
            ep.interface_name,
            ep.node,
            ep.ip_networks
                .iter()
                .map(|n| n.addr().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (dir, policies) in [("ingress", &applying.ingress), ("egress", &applying.egress)] {
            let list = if policies.is_empty() {
                "(none)".to_string()
            } else {
                policies.join(" → ")
            };
            println!("    {dir:<8} policies: {list}");
        }
        println!(
            "    profiles: {}",
            if ep.profiles.is_empty() {
                "(none)".into()
            } else {
                ep.profiles.join(", ")
            }
        );
    }
    println!();
}

fn print_matrix(model: &Model) {
    println!("== Probes between every pair of workloads (first IPv4 address of each)");
    let eps: Vec<&WorkloadEndpoint> = model.workload_endpoints.values().collect();
    let v4 = |ep: &WorkloadEndpoint| {
        ep.ip_networks
            .iter()
            .map(|n| n.addr())
            .find(|a| a.is_ipv4())
    };
    let mut decided = Vec::new();
    print!("{:<22}", "from \\ to");
    for dst in &eps {
        print!("{:<28}", name(dst));
    }
    println!();
    for src in &eps {
        print!("{:<22}", name(src));
        for dst in &eps {
            let (Some(s), Some(d)) = (v4(src), v4(dst)) else {
                print!("{:<28}", "-");
                continue;
            };
            if src.id == dst.id {
                print!("{:<28}", "-");
                continue;
            }
            let mut allowed = Vec::new();
            for (label, packet) in probes(s, d) {
                match evaluate_flow(model, &packet) {
                    Ok(eval) => {
                        if eval.verdict.is_allow() {
                            allowed.push(label);
                        }
                        if label.starts_with("tcp") {
                            decided.push((name(src), name(dst), label, eval));
                        }
                    }
                    Err(e) => {
                        eprintln!("calico-demo: {e}");
                    }
                }
            }
            let cell = if allowed.is_empty() {
                "denied".to_string()
            } else {
                allowed.join(",")
            };
            print!("{cell:<28}");
        }
        println!();
    }
    println!();
    println!("== Traces of the TCP probes");
    for (src, dst, label, eval) in decided {
        println!("{src} → {dst} {label}: {}", eval.verdict);
        for line in eval.to_string().lines() {
            println!("    {line}");
        }
    }
}
