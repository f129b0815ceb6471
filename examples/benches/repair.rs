//! Drift repair on the real kernel: how long the agent takes to put back what someone else
//! changed, now that it listens to the kernel's events, against the periodic resync it
//! otherwise waits for. Needs root: `cargo bench -p calico-examples --bench repair`.
//!
//! In a namespace of its own, an in-process agent (`LinuxFib` + `LinuxAcl`, resync once an
//! hour) programs 5 workloads; then, 20 times each:
//!
//! * `nft delete table inet calico`, timed from just before the command starts until the
//!   table reads back as programmed (polled every 1 ms through a second `LinuxAcl`);
//! * `ip route del <workload>/32`, timed until the route reads back (a second `LinuxFib`).
//!
//! The time includes running the command itself (its own row shows how long that takes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_core::agent::{Agent, Timing};
use calico_core::dataplane::FibBackend;
use calico_core::model::parse_resources;
use calico_linux::acl::LinuxAcl;
use calico_linux::fib::{FibConfig, LinuxFib};
use calico_netns::fixtures::Netns;

const RUNS: usize = 20;
const WORKLOADS: usize = 5;

fn resources(node: &str) -> String {
    let mut y = String::from(
        "kind: Profile\nname: kns.ns0\ningress: [{action: Allow}]\negress: [{action: Allow}]\n",
    );
    for i in 0..WORKLOADS {
        y += &format!(
            "---\nkind: WorkloadEndpoint\norchestrator: k8s\nworkload: w{i}\nendpoint: eth0\n\
             namespace: ns0\nnode: {node}\ninterfaceName: calirep{i}\n\
             ipNetworks: [10.69.0.{}/32]\nlabels: {{app: w{i}}}\nprofiles: [kns.ns0]\n",
            10 + i
        );
    }
    y
}

/// Times `damage` (a command run in `host`) until `repaired` holds, polled every 1 ms; also
/// how long the command alone took.
fn time_repair(
    host: &Netns,
    damage: &[&str],
    mut repaired: impl FnMut() -> bool,
) -> (Duration, Duration) {
    let t0 = Instant::now();
    host.run(damage).unwrap();
    let command = t0.elapsed();
    while !repaired() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not repaired within 10 s: {damage:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (t0.elapsed(), command)
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("repair bench: skipped: needs root");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _context = rt.enter();
    let host = Netns::create("repair-host").unwrap();
    let workloads: Vec<Netns> = (0..WORKLOADS)
        .map(|i| {
            calico_netns::fixtures::workload(
                &host,
                &format!("calirep{i}"),
                &[&format!("10.69.0.{}", 10 + i)],
            )
            .unwrap()
        })
        .collect();
    let fib = LinuxFib::in_netns(host.path(), FibConfig::default()).unwrap();
    let acl = LinuxAcl::in_netns(host.path().as_ref(), "calico").unwrap();
    let timing = Timing {
        resync_interval: Duration::from_secs(3600),
        ..Timing::default()
    };
    let agent = Agent::builder()
        .node("h1")
        .fib(Arc::new(fib))
        .acl(Arc::new(acl))
        .timing(timing)
        .start()
        .unwrap();
    let h = agent.handle();
    rt.block_on(async {
        h.snapshot(parse_resources(&resources("h1")).unwrap())
            .await
            .unwrap();
        h.flush().await;
    });
    // Observers: their own sockets, in the same namespace.
    let acl_view = LinuxAcl::in_netns(host.path().as_ref(), "calico").unwrap();
    let fib_view = LinuxFib::in_netns(host.path(), FibConfig::default()).unwrap();
    let table = acl_view.dump_blocking().unwrap();
    assert!(!table.chains.is_empty(), "the table is programmed");
    let routes = rt.block_on(fib_view.dump()).unwrap();
    assert_eq!(routes.len(), WORKLOADS, "the routes are programmed");

    let (mut table_back, mut nft_alone) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (took, command) =
            time_repair(&host, &["nft", "delete", "table", "inet", "calico"], || {
                acl_view.dump_blocking().is_ok_and(|r| r == table)
            });
        table_back.push(took);
        nft_alone.push(command);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut route_back, mut ip_alone) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let dst = format!("10.69.0.{}/32", 10 + run % WORKLOADS);
        let (took, command) = time_repair(&host, &["ip", "route", "del", &dst], || {
            rt.block_on(fib_view.dump())
                .is_ok_and(|r| r.iter().any(|route| route.dst.to_string() == dst))
        });
        route_back.push(took);
        ip_alone.push(command);
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = h.metrics();
    rt.block_on(agent.shutdown());
    drop(workloads);

    let baseline = Timing::default().resync_interval.as_secs_f64() * 1e3;
    println!();
    println!(
        "| drift (resync off: 1 h) | runs | median | min | max | baseline: periodic resync (default interval) |"
    );
    println!("|---|---|---|---|---|---|");
    for (what, v, is_repair) in [
        ("`nft delete table` → table back", table_back, true),
        ("… of which running `nft delete table`", nft_alone, false),
        ("`ip route del` → route back", route_back, true),
        ("… of which running `ip route del`", ip_alone, false),
    ] {
        let n = v.len();
        let (median, min, max) = stats(v);
        let base = if is_repair {
            format!("up to {baseline:.0} ms (mean {:.0} ms)", baseline / 2.0)
        } else {
            String::new()
        };
        println!("| {what} | {n} | {median:.1} ms | {min:.1} ms | {max:.1} ms | {base} |");
    }
    println!(
        "\nagent: {} drift passes, {} items repaired, {} resyncs",
        metrics.drift_passes_total, metrics.drift_repairs_total, metrics.resyncs_total
    );
}
