//! ADD and DEL latency of `calico-rs-cni` (Calico IPAM in etcd, WorkloadEndpoint written)
//! against the reference `bridge` + `host-local` plugins (/usr/lib/cni), same machine, same
//! run: 100 containers' networks set up in parallel (one process per container, started
//! at once, as a runtime starting 100 pods would), then torn down in parallel; several
//! rounds, the two plugins alternating. Each plugin runs through `nsenter --net` into the
//! bench's host namespace, so both pay the same process start-up.
//!
//! `cargo bench -p calico-examples --bench cni` (root, etcd installed).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use calico_etcd::testing::EtcdServer;
use calico_netns::fixtures::{veth, Netns};
use serde_json::{json, Value};

const N: usize = 100;
const ROUNDS: usize = 3;

struct Plugin {
    label: &'static str,
    binary: String,
    conf: Value,
}

/// Runs `command` for every container at once; each invocation's latency.
fn parallel(
    host: &Netns,
    plugin: &Plugin,
    command: &str,
    containers: &[Netns],
    round: usize,
) -> Vec<Duration> {
    let barrier = Barrier::new(containers.len());
    let stdin = plugin.conf.to_string();
    std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (barrier, stdin) = (&barrier, &stdin);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let mut child = Command::new("nsenter")
                        .arg(format!("--net={}", host.path()))
                        .arg(&plugin.binary)
                        .env("CNI_COMMAND", command)
                        .env("CNI_CONTAINERID", format!("bench{round}x{i:04}"))
                        .env("CNI_NETNS", c.path())
                        .env("CNI_IFNAME", "eth0")
                        .env("CNI_PATH", "/usr/lib/cni")
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("spawn the plugin");
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(stdin.as_bytes())
                        .unwrap();
                    let out = child.wait_with_output().unwrap();
                    let took = start.elapsed();
                    assert!(
                        out.status.success(),
                        "{} {command} failed: {}{}",
                        plugin.label,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    took
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

struct Stats {
    median: Duration,
    p99: Duration,
    round_medians: (Duration, Duration),
}

fn stats(rounds: &[Vec<Duration>]) -> Stats {
    let mut all: Vec<Duration> = rounds.iter().flatten().copied().collect();
    all.sort();
    let medians: Vec<Duration> = rounds
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.sort();
            quantile(&r, 0.5)
        })
        .collect();
    Stats {
        median: quantile(&all, 0.5),
        p99: quantile(&all, 0.99),
        round_medians: (
            *medians.iter().min().unwrap(),
            *medians.iter().max().unwrap(),
        ),
    }
}

/// A host namespace wired to a fabric namespace running etcd, with the bench's IP pool.
fn namespaces_and_etcd() -> (Netns, Netns, EtcdServer) {
    let fabric = Netns::create("bfab").unwrap();
    let host = Netns::create("bhost").unwrap();
    veth(&host, "up0", &fabric, "etcd0").unwrap();
    host.run(&["ip", "addr", "add", "10.82.0.1/24", "dev", "up0"])
        .unwrap();
    fabric
        .run(&["ip", "addr", "add", "10.82.0.254/24", "dev", "etcd0"])
        .unwrap();
    host.run(&["ip", "route", "add", "default", "dev", "up0"])
        .unwrap();
    let etcd = EtcdServer::start_in_netns(fabric.name(), "10.82.0.254".parse().unwrap()).unwrap();
    let ep = etcd.endpoint();
    let pool = json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "bench"}, "spec": {"cidr": "10.80.0.0/16", "blockSize": 26}});
    host.enter(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut c = etcd_client::Client::connect([ep], None).await.unwrap();
            c.put(
                "/calico/resources/v3/projectcalico.org/ippools/bench",
                pool.to_string(),
                None,
            )
            .await
            .unwrap();
        })
    })
    .unwrap();
    (fabric, host, etcd)
}

/// Prints the table: per plugin and command, median, p99, the spread of the round medians
/// and the wall time of a round; then the ratios.
fn report(plugins: &[Plugin; 2], samples: &[[Vec<Vec<Duration>>; 2]], walls: &[[Duration; 2]; 2]) {
    println!("\nCNI ADD/DEL latency: {N} containers in parallel, {ROUNDS} rounds ({} samples per cell), ms", N * ROUNDS);
    println!(
        "{:<20} {:<4} {:>8} {:>8} {:>22} {:>16}",
        "plugin", "op", "median", "p99", "round medians min..max", "wall per round"
    );
    let mut table = [[None, None], [None, None]];
    for (p, plugin) in plugins.iter().enumerate() {
        for (op, name) in ["ADD", "DEL"].iter().enumerate() {
            let s = stats(&samples[p][op]);
            println!(
                "{:<20} {:<4} {:>8.1} {:>8.1} {:>11.1} .. {:<8.1} {:>16.1}",
                plugin.label,
                name,
                ms(s.median),
                ms(s.p99),
                ms(s.round_medians.0),
                ms(s.round_medians.1),
                ms(walls[p][op]) / ROUNDS as f64
            );
            table[p][op] = Some(s);
        }
    }
    for (op, name) in ["ADD", "DEL"].iter().enumerate() {
        let (a, b) = (
            table[0][op].as_ref().unwrap(),
            table[1][op].as_ref().unwrap(),
        );
        println!(
            "{:<20} {:<4} {:>7.2}x {:>7.2}x",
            "ratio calico/ref",
            name,
            ms(a.median) / ms(b.median),
            ms(a.p99) / ms(b.p99)
        );
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !calico_etcd::testing::etcd_available() {
        eprintln!("cni bench: SKIPPED: needs root and etcd");
        return;
    }
    let (_fabric, host, etcd) = namespaces_and_etcd();
    let endpoint = etcd.endpoint();
    let data = tempfile::tempdir().unwrap();
    let plugins = [
        Plugin {
            label: "calico-rs-cni",
            binary: env!("CARGO_BIN_EXE_calico-rs-cni").to_string(),
            conf: json!({"cniVersion": "1.0.0", "name": "bench", "type": "calico-rs-cni",
                "nodename": "bench-host", "etcd_endpoints": endpoint, "ipam": {"type": "calico-ipam"}}),
        },
        Plugin {
            label: "bridge+host-local",
            binary: "/usr/lib/cni/bridge".to_string(),
            conf: json!({"cniVersion": "1.0.0", "name": "benchref", "type": "bridge",
                "bridge": "benchbr0", "isGateway": true,
                "ipam": {"type": "host-local", "subnet": "10.81.0.0/16", "dataDir": data.path()}}),
        },
    ];
    let containers: Vec<Netns> = (0..N).map(|_| Netns::create("bc").unwrap()).collect();
    let mut samples: Vec<[Vec<Vec<Duration>>; 2]> =
        vec![[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut walls = [[Duration::ZERO; 2]; 2];
    for round in 0..ROUNDS {
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for p in order {
            for (op, command) in ["ADD", "DEL"].iter().enumerate() {
                let start = Instant::now();
                let lat = parallel(&host, &plugins[p], command, &containers, round);
                walls[p][op] += start.elapsed();
                samples[p][op].push(lat);
            }
        }
    }
    report(&plugins, &samples, &walls);
    let _ = host.run(&["ip", "link", "del", "benchbr0"]);
}
