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

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use calico_core::eval::{evaluate_flow, Packet};
use calico_core::model::{parse_resources, Model, Update};
use calico_mock::MockNetwork;
use calico_netns::fixtures::{veth, Netns};

const HOSTS: [(&str, u8); 3] = [("host-a", 1), ("host-b", 2), ("host-c", 3)];

/// (name, host, interface, address, role)
const WORKLOADS: [(&str, &str, &str, &str, &str); 6] = [
    ("frontend-1", "host-a", "cali-fe1", "10.65.1.10", "frontend"),
    ("backend-1", "host-a", "cali-be1", "10.65.1.20", "backend"),
    ("frontend-2", "host-b", "cali-fe2", "10.65.2.10", "frontend"),
    ("backend-2", "host-b", "cali-be2", "10.65.2.20", "backend"),
    ("backend-3", "host-c", "cali-be3", "10.65.3.20", "backend"),
    ("db-1", "host-c", "cali-db1", "10.65.3.30", "db"),
];

const PORT: u16 = 80;

const POLICY_V1: &str = "
kind: Policy
name: backends-from-frontends
namespace: shop
selector: role == 'backend'
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'frontend'}
    destination: {ports: [80]}
";

const POLICY_V2_EXTRA: &str = "
---
kind: Policy
name: db-from-backends
namespace: shop
selector: role == 'db'
types: [Ingress]
ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'backend'}
    destination: {ports: [80]}
";

/// The cluster's resources: nodes with their BGP identity and address block, one peering per other host and
/// fabric plane (so each remote workload is reachable over both planes: ECMP), the
/// namespace profile and the workloads.
fn cluster_yaml() -> String {
    let mut y = String::from(
        "kind: Profile\nname: kns.shop\negress: [{action: Allow}]\n---\n\
         kind: BgpConfiguration\nname: default\nnodeToNodeMeshEnabled: false\nasNumber: 64512\n",
    );
    for (host, i) in HOSTS {
        y += &format!("---\nkind: Node\nname: {host}\nbgp: {{ipv4Address: 10.1.0.{i}}}\n");
        // IPAM gave each host a /26: it advertises the block, not each workload.
        y += &format!("---\nkind: BlockAffinity\ncidr: 10.65.{i}.0/26\nnode: {host}\n");
        for (other, j) in HOSTS.iter().filter(|(h, _)| *h != host) {
            for plane in [1, 2] {
                y += &format!(
                    "---\nkind: BgpPeer\nname: {host}-{other}-plane{plane}\nnode: {host}\n\
                     peerIP: 10.{plane}.0.{j}\nasNumber: 64512\nholdTime: 9\n"
                );
            }
        }
    }
    for (name, host, iface, ip, role) in WORKLOADS {
        y += &format!(
            "---\nkind: WorkloadEndpoint\norchestrator: k8s\nworkload: shop.{name}\n\
             endpoint: eth0\nnamespace: shop\nnode: {host}\ninterfaceName: {iface}\n\
             ipNetworks: [{ip}/32]\nlabels: {{role: {role}}}\nprofiles: [kns.shop]\n"
        );
    }
    y
}

fn model(policy: &str) -> Model {
    let text = format!("{}---{policy}", cluster_yaml());
    Model::from_resources(parse_resources(&text).expect("demo resources parse"))
        .expect("demo resources are valid")
}

type Matrix = Vec<Vec<bool>>;

fn addr(i: usize) -> IpAddr {
    WORKLOADS[i].3.parse().unwrap()
}

fn probe(i: usize, j: usize) -> Packet {
    Packet::tcp(addr(i), 40000, addr(j), PORT)
}

fn predicted(model: &Model) -> Matrix {
    (0..WORKLOADS.len())
        .map(|i| {
            (0..WORKLOADS.len())
                .map(|j| {
                    i != j
                        && evaluate_flow(model, &probe(i, j))
                            .map(|e| e.verdict.is_allow())
                            .unwrap_or(false)
                })
                .collect()
        })
        .collect()
}

fn print_matrices(title: &str, measured: &Matrix, predicted: &Matrix) {
    println!("\n{title}: TCP {PORT} from row to column (✓ connects, · refused by policy)");
    let w = 11;
    let header: String = WORKLOADS.iter().map(|wl| format!("{:>w$}", wl.0)).collect();
    println!("{:<12}{header}   │ predicted by the policy", "measured");
    for i in 0..WORKLOADS.len() {
        let row = |m: &Matrix| -> String {
            (0..WORKLOADS.len())
                .map(|j| {
                    let c = if i == j {
                        "-"
                    } else if m[i][j] {
                        "✓"
                    } else {
                        "·"
                    };
                    format!("{c:>w$}")
                })
                .collect()
        };
        println!(
            "{:<12}{}   │{}",
            WORKLOADS[i].0,
            row(measured),
            row(predicted)
        );
    }
    println!(
        "measured {} predicted",
        if measured == predicted { "==" } else { "!=" }
    );
}

// ---------------------------------------------------------------- the real cluster

struct Cluster {
    agents: Vec<Child>,
    workloads: Vec<Netns>,
    hosts: Vec<Netns>,
    _fabric: Netns,
    dir: PathBuf,
    _listeners: Vec<TcpListener>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in &mut self.agents {
            // SAFETY: kill(2) on a child we spawned.
            unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
        }
        for a in &mut self.agents {
            let _ = a.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The namespaces (and BIRD inside them) go when their guards drop.
    }
}

fn step(msg: &str) {
    println!("• {msg}");
}

/// The `--bgp` value each host's agent gets.
fn bgp_of(host: &str, choice: &str) -> &'static str {
    match (choice, host) {
        ("native", _) => "native",
        ("bird", _) => "bird",
        (_, "host-b") => "bird",
        _ => "native",
    }
}

/// How the demo names a host's BGP implementation.
fn bgp_label(host: &str, choice: &str) -> &'static str {
    match bgp_of(host, choice) {
        "native" => "native speaker",
        _ => "BIRD 2",
    }
}

fn build(agent_bin: &Path, bgp: &str) -> Result<Cluster, String> {
    let e = |e: calico_netns::fixtures::NetnsError| e.to_string();
    let dir = std::env::temp_dir().join(format!("calico-demo-{}", std::process::id()));
    step("fabric: two planes (bridges 10.1.0.0/24 and 10.2.0.0/24)");
    let fabric = Netns::create("demo-fabric").map_err(e)?;
    for plane in [1, 2] {
        let br = format!("plane{plane}");
        fabric
            .run(&["ip", "link", "add", &br, "type", "bridge"])
            .map_err(e)?;
        fabric.run(&["ip", "link", "set", &br, "up"]).map_err(e)?;
        // The planes' gateway, so hosts have the default route proxy ARP needs.
        fabric
            .run(&[
                "ip",
                "addr",
                "add",
                &format!("10.{plane}.0.254/24"),
                "dev",
                &br,
            ])
            .map_err(e)?;
    }
    let mut hosts = Vec::new();
    let mut workloads = Vec::new();
    let mut listeners = Vec::new();
    let mut agents = Vec::new();
    for (host, i) in HOSTS {
        interrupted()?;
        let host_bgp = bgp_of(host, bgp);
        step(&format!(
            "{host}: namespace, two fabric links, two workloads, BGP: {}",
            bgp_label(host, bgp)
        ));
        let ns = Netns::create(host).map_err(e)?;
        for plane in [1, 2] {
            let (inner, outer) = (format!("p{plane}"), format!("{host}-p{plane}"));
            veth(&ns, &inner, &fabric, &outer).map_err(e)?;
            fabric
                .run(&[
                    "ip",
                    "link",
                    "set",
                    &outer,
                    "master",
                    &format!("plane{plane}"),
                ])
                .map_err(e)?;
            ns.run(&[
                "ip",
                "addr",
                "add",
                &format!("10.{plane}.0.{i}/24"),
                "dev",
                &inner,
            ])
            .map_err(e)?;
        }
        ns.run(&["ip", "route", "add", "default", "via", "10.1.0.254"])
            .map_err(e)?;
        for (_, h, iface, ip, _) in WORKLOADS.iter().filter(|w| w.1 == host) {
            let _ = h;
            let wl = calico_netns::fixtures::workload(&ns, iface, &[ip]).map_err(e)?;
            let bind = SocketAddr::new(ip.parse().unwrap(), PORT);
            let l = wl
                .enter(move || TcpListener::bind(bind))
                .map_err(e)?
                .map_err(|err| format!("listen on {bind}: {err}"))?;
            listeners.push(l);
            workloads.push(wl);
        }
        let host_dir = dir.join(host);
        std::fs::create_dir_all(host_dir.join("resources")).map_err(|err| err.to_string())?;
        std::fs::write(host_dir.join("resources/cluster.yaml"), cluster_yaml())
            .map_err(|err| err.to_string())?;
        std::fs::write(host_dir.join("resources/policy.yaml"), POLICY_V1)
            .map_err(|err| err.to_string())?;
        let log =
            std::fs::File::create(host_dir.join("agent.log")).map_err(|err| err.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(agent_bin)
            .args(["--node", host, "--bgp", host_bgp, "--resync-secs", "10"])
            .arg("--resources")
            .arg(host_dir.join("resources"))
            .arg("--bird-dir")
            .arg(host_dir.join("bird"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", agent_bin.display()))?;
        agents.push(child);
        hosts.push(ns);
    }
    Ok(Cluster {
        agents,
        workloads,
        hosts,
        _fabric: fabric,
        dir,
        _listeners: listeners,
    })
}

fn measure(c: &Cluster) -> Matrix {
    let n = WORKLOADS.len();
    std::thread::scope(|s| {
        let handles: Vec<Vec<_>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let ns = &c.workloads[i];
                        s.spawn(move || {
                            i != j
                                && ns
                                    .enter(|| {
                                        TcpStream::connect_timeout(
                                            &SocketAddr::new(addr(j), PORT),
                                            Duration::from_millis(1500),
                                        )
                                        .is_ok()
                                    })
                                    .unwrap_or(false)
                        })
                    })
                    .collect()
            })
            .collect();
        handles
            .into_iter()
            .map(|row| row.into_iter().map(|h| h.join().unwrap_or(false)).collect())
            .collect()
    })
}

/// Set by SIGINT/SIGTERM: the demo stops at the next step and removes what it made.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C (or SIGTERM) ends the demo through its normal clean-up: agents stopped,
/// namespaces (and BIRD in them) and files removed.
fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted: cleaning up".into())
    } else {
        Ok(())
    }
}

/// Measures until the matrix equals the prediction (the agents converge), or the deadline;
/// says so while it waits.
fn converge(c: &Cluster, want: &Matrix, deadline: Duration) -> Result<(Matrix, Duration), String> {
    let start = Instant::now();
    let mut said = Instant::now();
    loop {
        interrupted()?;
        let m = measure(c);
        if &m == want || start.elapsed() > deadline {
            return Ok((m, start.elapsed()));
        }
        if said.elapsed() >= Duration::from_secs(5) {
            println!(
                "  … {:.0} s: not every connection is as the policy predicts yet (BGP sessions \
                 and policy converging); measuring again, for up to {} s",
                start.elapsed().as_secs_f64(),
                deadline.as_secs()
            );
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn ecmp_routes(c: &Cluster, bgp: &str) {
    for (from, to) in [(0, 2), (1, 0)] {
        let (host, block) = (HOSTS[from].0, format!("10.65.{}.0/26", HOSTS[to].1));
        let out = c.hosts[from]
            .run(&["ip", "route", "show", &block])
            .unwrap_or_default();
        println!(
            "\n{host}'s route to {}'s block {block} (learned by BGP over both planes, {} to {}):",
            HOSTS[to].0,
            bgp_label(HOSTS[to].0, bgp),
            bgp_label(host, bgp),
        );
        for line in out.lines() {
            println!("    {line}");
        }
    }
}

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
