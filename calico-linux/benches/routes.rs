//! Programming routes: `LinuxFib` against `ip -batch`, the way an operator's script would
//! do it, both measured in the same run, each in a fresh network namespace.
//!
//! ```text
//! cargo bench -p calico-linux --bench routes            # 10,000 routes, 5 rounds
//! cargo bench -p calico-linux --bench routes -- 100000 3
//! ```
//!
//! Each round programs the same /32 routes (`dev d0 scope link proto 80`, the shape of a
//! workload route) once with `ip -n <ns> -batch <file>` and once with `LinuxFib::apply`, then
//! times `LinuxFib::apply` of the same change set again (every route replaced) and
//! `LinuxFib::dump`. It checks that both namespaces hold all the routes. Needs root; prints
//! a table of medians.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use calico_core::dataplane::{FibBackend, FibChangeSet, Route, RouteTarget};
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::Netns;
use ipnet::{IpNet, Ipv4Net};

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("routes bench skipped: needs root (network namespaces)");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let count: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let routes: Vec<Route> = (0..count)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + i);
            Route {
                dst: IpNet::V4(Ipv4Net::new(addr, 32).expect("/32")),
                target: RouteTarget::Workload {
                    interface: "d0".into(),
                },
            }
        })
        .collect();
    let changes = FibChangeSet {
        remove: vec![],
        upsert: routes.clone(),
    };
    let batch_file =
        std::env::temp_dir().join(format!("calico-routes-{}.batch", std::process::id()));
    {
        let mut file = std::fs::File::create(&batch_file).expect("batch file");
        for route in &routes {
            writeln!(file, "route add {} dev d0 scope link proto 80", route.dst).expect("write");
        }
    }

    let (mut ip, mut add, mut replace, mut dump) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let ns = fresh_namespace();
        let start = Instant::now();
        let out = Command::new("ip")
            .args(["-n", ns.name(), "-batch"])
            .arg(&batch_file)
            .output()
            .expect("run ip");
        ip.push(start.elapsed());
        assert!(
            out.status.success(),
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            agent_routes(&ns),
            count as usize,
            "ip -batch programmed too few"
        );
        drop(ns);

        let ns = fresh_namespace();
        runtime.block_on(async {
            let fib = LinuxFib::in_netns(ns.path(), FibConfig::default()).expect("open FIB");
            let start = Instant::now();
            let report = fib.apply(&changes).await.expect("apply");
            add.push(start.elapsed());
            assert!(report.failed.is_empty(), "{:?}", report.failed.first());

            let start = Instant::now();
            let report = fib.apply(&changes).await.expect("apply");
            replace.push(start.elapsed());
            assert!(report.failed.is_empty(), "{:?}", report.failed.first());

            let start = Instant::now();
            let dumped = fib.dump().await.expect("dump");
            dump.push(start.elapsed());
            assert_eq!(dumped.len(), count as usize, "dump lost routes");
        });
        assert_eq!(
            agent_routes(&ns),
            count as usize,
            "LinuxFib programmed too few"
        );
    }
    let _ = std::fs::remove_file(&batch_file);

    let ip = median(&mut ip);
    let add = median(&mut add);
    println!("{count} routes (/32 dev d0 scope link proto 80), median of {rounds} rounds, fresh namespace each");
    println!("| {:<42} | {:>10} | {:>12} |", "what", "time", "routes/s");
    println!("|{:-<44}|{:->12}|{:->14}|", "", "", "");
    for (what, time) in [
        ("ip -batch (add)", ip),
        ("LinuxFib::apply (add)", add),
        (
            "LinuxFib::apply (same set again: replace)",
            median(&mut replace),
        ),
        ("LinuxFib::dump", median(&mut dump)),
    ] {
        println!(
            "| {what:<42} | {:>7.1} ms | {:>12.0} |",
            time.as_secs_f64() * 1e3,
            f64::from(count) / time.as_secs_f64()
        );
    }
    println!(
        "ratio LinuxFib::apply (add) / ip -batch: {:.2} (target <= 1.0)",
        add.as_secs_f64() / ip.as_secs_f64()
    );
}

/// A namespace with `d0`, an up interface with carrier (a veth whose peer stays inside).
fn fresh_namespace() -> Netns {
    let ns = Netns::create("bench-routes").expect("namespace");
    ns.run(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d0-p",
    ])
    .expect("veth");
    ns.run(&["ip", "link", "set", "d0", "up"]).expect("up");
    ns.run(&["ip", "link", "set", "d0-p", "up"]).expect("up");
    ns
}

fn agent_routes(ns: &Netns) -> usize {
    ns.run(&["ip", "route", "show", "proto", "80"])
        .expect("ip route")
        .lines()
        .count()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
