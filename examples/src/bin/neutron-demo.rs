//! `neutron-demo`: reads Neutron API JSON (ports and security groups, as `openstack port
//! list -f json` / the REST API return them), programs a simulated two-host network with
//! the translated endpoints and profiles, and prints who can reach whom.
//!
//! ```sh
//! cargo run -p calico-examples --bin neutron-demo -- \
//!     examples/data/neutron/ports.json examples/data/neutron/security_groups.json
//! ```
//!
//! With `--etcd URL` it acts as the Neutron driver of a cluster instead: it writes the
//! ports and security groups into etcd in Calico's layout (through
//! `calico_core::integrations::neutron_driver` and `calico_etcd`), where the agents of the
//! ports' hosts (`calico-agent --datastore etcd`) program them, and prints each port's
//! status as networking-calico would report it to Neutron (ACTIVE once its host's agent
//! reported it up), waiting up to `--wait-secs` (default 10) for the ports to become active.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_core::eval::Packet;
use calico_core::integrations::neutron::{
    parse_ports, parse_security_groups, port_endpoint, security_group_profile, Port, SecurityGroup,
};
use calico_core::integrations::neutron_driver::{NeutronDriver, PortStatus};
use calico_core::model::{Resource, Update};
use calico_mock::MockNetwork;

/// The ports and security groups of the two files.
fn read(ports_path: &str, groups_path: &str) -> Result<(Vec<Port>, Vec<SecurityGroup>), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let ports = parse_ports(&read(ports_path)?).map_err(|e| format!("{ports_path}: {e}"))?;
    let groups =
        parse_security_groups(&read(groups_path)?).map_err(|e| format!("{groups_path}: {e}"))?;
    Ok((ports, groups))
}

fn run(ports_path: &str, groups_path: &str) -> Result<(), String> {
    let (ports, groups) = read(ports_path, groups_path)?;
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

/// Writes the ports and groups into etcd as the Neutron driver, then reports the ports'
/// status until all are active or `wait` has passed.
async fn to_etcd(
    endpoint: String,
    ports: Vec<Port>,
    groups: Vec<SecurityGroup>,
    wait: Duration,
) -> Result<(), String> {
    let config = calico_etcd::EtcdConfig::new([endpoint.clone()]);
    let writer = calico_etcd::EtcdWriter::connect(&config)
        .await
        .map_err(|e| e.to_string())?;
    let status = calico_etcd::EtcdStatus::connect(&[endpoint], Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let driver = NeutronDriver::new(Arc::new(writer), Arc::new(status));
    for g in &groups {
        driver
            .security_group_updated(g)
            .await
            .map_err(|e| e.to_string())?;
        println!("security group {} written", g.id);
    }
    for p in &ports {
        let endpoint = driver.port_updated(p).await.map_err(|e| e.to_string())?;
        println!(
            "port {} {}",
            p.id,
            if endpoint {
                "written"
            } else {
                "skipped (not a bound compute port)"
            }
        );
    }
    let start = Instant::now();
    loop {
        let mut statuses = Vec::new();
        for p in &ports {
            statuses.push(driver.port_status(p).await.map_err(|e| e.to_string())?);
        }
        let done = statuses
            .iter()
            .all(|s| matches!(s, PortStatus::Active | PortStatus::Down));
        if done || start.elapsed() >= wait {
            println!("\n{:<38} {:<10} status", "port", "host");
            for (p, s) in ports.iter().zip(statuses) {
                let host = p.host_id.as_deref().unwrap_or("-");
                println!("{:<38} {host:<10} {s:?}", p.id);
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: neutron-demo [--etcd URL [--wait-secs N]] <ports.json> <security_groups.json>"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| -> Option<String> {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        v
    };
    let etcd = take("--etcd");
    let wait = take("--wait-secs").map(|w| w.parse::<u64>());
    let wait = match wait {
        None => Duration::from_secs(10),
        Some(Ok(w)) => Duration::from_secs(w),
        Some(Err(_)) => return usage(),
    };
    if args.len() != 2 {
        return usage();
    }
    let outcome = match etcd {
        Some(url) => read(&args[0], &args[1]).and_then(|(ports, groups)| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(to_etcd(url, ports, groups, wait))
        }),
        None => run(&args[0], &args[1]),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neutron-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
