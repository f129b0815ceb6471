//! What flow logs cost, on against off in the same run (issue 20). Needs root and iperf3.
//!
//! ```sh
//! sudo cargo bench -p calico-agent --bench flow_log_overhead
//! ```
//!
//! * **ACL programming**: the ACL bench's full program (250 local endpoints × 2,000
//!   policies, 10,000 remote endpoints) into a fresh namespace, compiled with flow logs off
//!   and on, runs alternating; `nft -f` of the same rulesets beside it; and one endpoint
//!   added to that host, incrementally (40 each, the two hosts taking turns).
//! * **Packet rate**: two workloads of one host, `calico-agent` programming them (with
//!   `--flow-logs` or without, restarted between runs), iperf3 from one to the other: TCP
//!   throughput, and one-way UDP in 64-byte datagrams as fast as the sender can (packets
//!   received per second). The agent's CPU time during the run is printed too.
//! * **Memory under a flood of distinct flows**: one UDP datagram to each of 60,000 ports
//!   (every one a new allowed connection, so logged): the agent's resident memory before and
//!   after, and its peak, with the default `--flow-log-max-flows`.
//!
//! `FLOW_BENCH_ROUNDS` (5) and `FLOW_BENCH_ADDS` (40) set how many runs and endpoint adds
//! each mode gets. Each row gives the median and the spread (min–max) of its runs, and the
//! ratio of the medians (on / off; for rates, off / on, so above 1 is a loss either way).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use calico_core::compile::{compile, CompileConfig, Compiler, FlowLogConfig};
use calico_core::dataplane::diff;
use calico_core::dataplane::ir::Ruleset;
use calico_core::model::{Resource, Update};
use calico_core::scale::Scale;
use calico_linux::acl::{nft_script, LinuxAcl};
use calico_netns::fixtures::Netns;
use support::{endpoints_yaml, http_get, Host};

/// Runs of each measurement, per mode: `FLOW_BENCH_ROUNDS`, 5 by default.
fn rounds() -> usize {
    env_count("FLOW_BENCH_ROUNDS", 5)
}

/// A count from the environment variable `name`, `default` when unset or unreadable.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

const IPERF_SECS: u32 = 3;

/// Median, min and max of `v`.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// One table row: off and on as median (min–max), and the ratio of medians as a loss
/// factor (`higher_is_better` flips it for rates).
fn row(what: &str, unit: &str, off: Vec<f64>, on: Vec<f64>, higher_is_better: bool) {
    let (off, on) = (spread(off), spread(on));
    let ratio = if higher_is_better {
        off.0 / on.0
    } else {
        on.0 / off.0
    };
    println!(
        "| {what:<38} | {:>9.2} ({:.2}–{:.2}) | {:>9.2} ({:.2}–{:.2}) | {unit:<8} | {ratio:.3} |",
        off.0, off.1, off.2, on.0, on.1, on.2
    );
}

/// Milliseconds to program the ruleset compiled with flow logs off and on: `[ours, nft -f]`,
/// each `[off, on]`.
fn acl_programming() -> [[Vec<f64>; 2]; 2] {
    let scale = Scale::default();
    let model = scale.model();
    let rulesets: Vec<Ruleset> = [None, Some(FlowLogConfig::default())]
        .into_iter()
        .map(|flow_logs| {
            let config = CompileConfig {
                flow_logs,
                ..CompileConfig::new("h1")
            };
            compile(&config, &model)
        })
        .collect();
    for (r, label) in rulesets.iter().zip(["off", "on"]) {
        let rules: usize = r.chains.values().map(|c| c.rules.len()).sum();
        println!(
            "flow logs {label}: {} chains, {rules} rules",
            r.chains.len()
        );
    }
    let scripts: Vec<std::path::PathBuf> = rulesets
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path =
                std::env::temp_dir().join(format!("calico-flbench-{}-{i}.nft", std::process::id()));
            std::fs::write(&path, nft_script(r, "calico")).unwrap();
            path
        })
        .collect();
    let mut samples: [[Vec<f64>; 2]; 2] = Default::default();
    for round in 0..rounds() {
        for i in turns(round) {
            let ruleset = &rulesets[i];
            let changes = diff(&Ruleset::default(), ruleset);
            let ns = Netns::create("bench-flacl").unwrap();
            let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
            let t = Instant::now();
            acl.apply_blocking(&changes).unwrap();
            samples[0][i].push(t.elapsed().as_secs_f64() * 1e3);

            let ns = Netns::create("bench-flnft").unwrap();
            let t = Instant::now();
            ns.run(&["nft", "-f", scripts[i].to_str().unwrap()])
                .unwrap();
            samples[1][i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    for path in scripts {
        if std::env::var_os("FLOW_BENCH_KEEP_SCRIPTS").is_some() {
            println!("kept {}", path.display());
        } else {
            let _ = std::fs::remove_file(path);
        }
    }
    samples
}

/// The order the two modes take in round `n`: off first in even rounds, on first in odd
/// ones. Measured in a fixed order, the second of two identical hosts ran ~2 % faster (a
/// host's add right after the other's finds the kernel's caches warm), which flattered
/// whichever mode came second.
fn turns(n: usize) -> [usize; 2] {
    if n.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// Endpoint adds per mode: `FLOW_BENCH_ADDS`, 40 by default.
fn adds() -> usize {
    env_count("FLOW_BENCH_ADDS", 40)
}

/// Milliseconds to add one endpoint to the programmed ACL benchmark host (compile the update
/// incrementally, apply its change set), `[off, on]`, [`adds`] samples each. The two hosts
/// (flow logs off and on) exist side by side and take turns, endpoint by endpoint, so that
/// a change in the machine's load falls on both alike ([`turns`]).
fn endpoint_adds() -> [Vec<f64>; 2] {
    let scale = Scale::default();
    let mut hosts = [None, Some(FlowLogConfig::default())].map(|flow_logs| {
        let config = CompileConfig {
            flow_logs,
            ..CompileConfig::new("h1")
        };
        let store = scale.model();
        let mut compiler = Compiler::from_model(config, &store);
        let ns = Netns::create("bench-fladd").unwrap();
        let acl = LinuxAcl::in_netns(ns.path().as_ref(), "calico").unwrap();
        acl.apply_blocking(&diff(&Ruleset::default(), compiler.ruleset()))
            .unwrap();
        compiler.take_changes();
        (store, compiler, ns, acl)
    });
    let mut samples: [Vec<f64>; 2] = Default::default();
    for n in 0..adds() {
        for i in turns(n) {
            let (store, compiler, _ns, acl) = &mut hosts[i];
            // A new endpoint, numbered after the model's, on this host.
            let mut ep = scale.endpoint(scale.local + scale.remote + n);
            ep.node = "h1".into();
            let t = Instant::now();
            let applied = store.apply_valid(Update::Upsert(Resource::WorkloadEndpoint(ep)));
            compiler.apply(store, &applied);
            acl.apply_blocking(&compiler.take_changes()).unwrap();
            samples[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    samples
}

/// The agent's user + system CPU time so far, in seconds (`/proc/PID/stat`).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).zip(f.get(12)).map_or(0.0, |(u, s)| {
        u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)
    });
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Starts the agent (flow logs on or off) and waits until both workloads are programmed.
fn start(host: &mut Host, flow_logs: bool) -> u32 {
    host.signal_agent(libc::SIGTERM);
    let mut args = vec!["--no-bgp"];
    if flow_logs {
        args.push("--flow-logs");
    }
    host.start_agent(&args);
    host.wait_programmed(2, Duration::from_secs(60));
    host.agent.as_ref().unwrap().id()
}

/// One iperf3 run from workload 0 to workload 1's `ip`; its JSON report.
fn iperf(host: &Host, ip: &str, udp: bool) -> serde_json::Value {
    let server = Command::new("ip")
        .args(["netns", "exec", host.workloads[1].0.name()])
        .args(["iperf3", "-s", "-1", "-B", ip])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 (Debian package iperf3; `make deps` installs it)");
    std::thread::sleep(Duration::from_millis(300));
    let secs = IPERF_SECS.to_string();
    let mut args = vec!["iperf3", "-J", "-c", ip, "-t", &secs];
    if udp {
        args.extend(["-u", "-b", "0", "-l", "64"]);
    }
    let out = host.workloads[0].0.output(&args).unwrap();
    let mut server = server;
    let _ = server.wait();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Per-mode samples: TCP Gbit/s, UDP kpps received, agent CPU seconds per run.
#[derive(Default)]
struct Rates {
    tcp_gbps: Vec<f64>,
    udp_kpps: Vec<f64>,
    agent_cpu: Vec<f64>,
}

fn packet_rate(host: &mut Host, ip: &str) -> [Rates; 2] {
    let mut rates = [Rates::default(), Rates::default()];
    for _ in 0..rounds() {
        for (mode, flow_logs) in [false, true].into_iter().enumerate() {
            let pid = start(host, flow_logs);
            let cpu = cpu_secs(pid);
            let tcp = iperf(host, ip, false);
            let udp = iperf(host, ip, true);
            let r = &mut rates[mode];
            r.agent_cpu.push(cpu_secs(pid) - cpu);
            let bps = tcp["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .expect("iperf3 TCP report");
            r.tcp_gbps.push(bps / 1e9);
            let sum = &udp["end"]["sum"];
            let received = sum["packets"].as_f64().unwrap_or(f64::NAN)
                - sum["lost_packets"].as_f64().unwrap_or(f64::NAN);
            let secs = sum["seconds"].as_f64().unwrap_or(f64::NAN);
            r.udp_kpps.push(received / secs / 1e3);
        }
    }
    rates
}

/// One datagram from workload 0 to each of `ports` ports of `ip`: the agent's memory
/// before, after and at its peak, and `/status`'s flow-log section.
fn distinct_flow_flood(host: &mut Host, ip: &str, ports: u16) {
    let pid = start(host, true);
    std::thread::sleep(Duration::from_secs(2));
    let (before, _) = memory_mib(pid);
    let ip: std::net::IpAddr = ip.parse().unwrap();
    let t = Instant::now();
    host.workloads[0]
        .0
        .enter(move || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for port in 1..=ports {
                let _ = sock.send_to(b"x", (ip, port));
            }
        })
        .unwrap();
    let sent = t.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let (after, peak) = memory_mib(pid);
    let status = http_get(host, "/status");
    let flow_logs = status
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(b).ok())
        .map(|s| s["flow_logs"].to_string())
        .unwrap_or_default();
    println!(
        "\n{ports} distinct flows sent in {:.2} s: agent RSS {before:.1} MiB before, {after:.1} MiB after, peak {peak:.1} MiB\n/status flow_logs: {flow_logs}",
        sent.as_secs_f64()
    );
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("flow_log_overhead bench: skipped: needs root (namespaces, nftables)");
        return;
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!("flow_log_overhead bench: needs iperf3 (Debian package iperf3; `make deps`)");
        std::process::exit(1);
    }
    let [[acl_off, acl_on], [nft_off, nft_on]] = acl_programming();
    let [add_off, add_on] = endpoint_adds();

    if std::env::var_os("FLOW_BENCH_ACL_ONLY").is_some() {
        for (what, off, on) in [
            ("ours", acl_off, acl_on),
            ("nft -f", nft_off, nft_on),
            ("add", add_off, add_on),
        ] {
            println!("{what}: off {:?} ms, on {:?} ms", spread(off), spread(on));
        }
        return;
    }
    let wls = [("califo0", "10.72.0.10"), ("califo1", "10.72.0.11")];
    let mut host = Host::new("flo-bench", None, "192.168.82.1", &wls);
    host.write("all.yaml", &endpoints_yaml("flo-bench", &wls));
    let [off, on] = packet_rate(&mut host, wls[1].1);

    let (rounds, adds) = (rounds(), adds());
    println!("\nmedian (min–max) of {rounds} runs each ({adds} endpoint adds), alternating; ratio = loss factor (1.05 = 5 % worse with flow logs)");
    println!("| what                                   | flow logs off           | flow logs on            | unit     | ratio |");
    println!("|----------------------------------------|-------------------------|-------------------------|----------|-------|");
    row(
        "ACL program 250 eps x 2,000 policies",
        "ms",
        acl_off,
        acl_on,
        false,
    );
    row(
        "the same with nft -f (baseline)",
        "ms",
        nft_off,
        nft_on,
        false,
    );
    row(
        "add 1 endpoint to that host (ACLs)",
        "ms",
        add_off,
        add_on,
        false,
    );
    row(
        "iperf3 TCP, workload to workload",
        "Gbit/s",
        off.tcp_gbps,
        on.tcp_gbps,
        true,
    );
    row(
        "iperf3 UDP 64 B one-way, received",
        "kpps",
        off.udp_kpps,
        on.udp_kpps,
        true,
    );
    row(
        "agent CPU during both iperf3 runs",
        "s",
        off.agent_cpu,
        on.agent_cpu,
        false,
    );
    distinct_flow_flood(&mut host, wls[1].1, 60_000);
}
