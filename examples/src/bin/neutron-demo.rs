//! `neutron-demo`: reads Neutron API JSON (ports and security groups, as `openstack port
//! list -f json` / the REST API return them), programs a simulated two-host network with
//! the translated endpoints and profiles, and prints who can reach whom.
//!
//! ```sh
//! cargo run -p calico-examples --bin neutron-demo -- \
//!     examples/data/neutron/ports.json examples/data/neutron/security_groups.json
//! ```

use std::process::ExitCode;

use calico_core::eval::Packet;
use calico_core::integrations::neutron::{
    parse_ports, parse_security_groups, port_endpoint, security_group_profile,
};
use calico_core::model::{Resource, Update};
use calico_mock::MockNetwork;

fn run(ports_path: &str, groups_path: &str) -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let ports = parse_ports(&read(ports_path)?).map_err(|e| format!("{ports_path}: {e}"))?;
    let groups =
        parse_security_groups(&read(groups_path)?).map_err(|e| format!("{groups_path}: {e}"))?;
    let mut resources = Vec::new();
    for g in &groups {
        resources.push(Resource::Profile(
            security_group_profile(g).map_err(|e| e.to_string())?,
        ));
    }
    let mut endpoints = Vec::new();
    for p in &ports {
        match port_endpoint(p).map_err(|e| e.to_string())? {
            Some(ep) => endpoints.push(ep),
            None => println!("skipping port {} (not a bound compute port)", p.id),
        }
    }
    let mut net = MockNetwork::new();
    let mut hosts: Vec<String> = endpoints.iter().map(|e| e.node.clone()).collect();
    hosts.sort();
    hosts.dedup();
    for (i, h) in hosts.iter().enumerate() {
        net.add_host(h, format!("192.0.2.{}", i + 1).parse().unwrap());
    }
    resources.extend(endpoints.iter().cloned().map(Resource::WorkloadEndpoint));
    for r in resources {
        net.apply(Update::Upsert(r)).map_err(|e| e.to_string())?;
    }
    println!("\n{:<12} {:<12} {:<8} result", "from", "to", "probe");
    for src in &endpoints {
        for dst in &endpoints {
            if src.id == dst.id {
                continue;
            }
            let (s, d) = (src.ip_networks[0].addr(), dst.ip_networks[0].addr());
            for (label, p) in [
                ("ping", Packet::icmp(s, d, 8, 0)),
                ("tcp/22", Packet::tcp(s, 40000, d, 22)),
                ("tcp/80", Packet::tcp(s, 40000, d, 80)),
                ("tcp/5432", Packet::tcp(s, 40000, d, 5432)),
            ] {
                let delivery = net.send(&p).map_err(|e| e.to_string())?;
                println!(
                    "{:<12} {:<12} {:<8} {}",
                    src.id.workload,
                    dst.id.workload,
                    label,
                    delivery.to_string().lines().next().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: neutron-demo <ports.json> <security_groups.json>");
        return ExitCode::from(2);
    }
    match run(&args[1], &args[2]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neutron-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
