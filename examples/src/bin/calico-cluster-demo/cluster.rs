//! The real cluster: namespaces, fabric planes, workloads with listeners, one
//! `calico-agent` per host; connectivity measured with real TCP connects.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_netns::fixtures::{veth, Netns};

use crate::datastore::{Etcd, Store};
use crate::interrupt::interrupted;
use crate::scenario::*;

pub struct Cluster {
    agents: Vec<Child>,
    workloads: Vec<Netns>,
    pub hosts: Vec<Netns>,
    /// Dropped before the fabric namespace it runs in.
    pub etcd: Option<Etcd>,
    _fabric: Netns,
    pub dir: PathBuf,
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

pub fn step(msg: &str) {
    println!("• {msg}");
}

/// The `--bgp` value each host's agent gets.
pub fn bgp_of(host: &str, choice: &str) -> &'static str {
    match (choice, host) {
        ("native", _) => "native",
        ("bird", _) => "bird",
        (_, "host-b") => "bird",
        _ => "native",
    }
}

/// How the demo names a host's BGP implementation.
pub fn bgp_label(host: &str, choice: &str) -> &'static str {
    match bgp_of(host, choice) {
        "native" => "native speaker",
        _ => "BIRD 2",
    }
}

/// The fabric namespace and its two planes (bridges with the gateway addresses).
fn fabric() -> Result<Netns, String> {
    let e = |e: calico_netns::fixtures::NetnsError| e.to_string();
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
    Ok(fabric)
}

/// In etcd mode: etcd started in the fabric and the cluster with policy v1 written to it.
fn start_etcd(fabric: &Netns, store: Store) -> Result<Option<Etcd>, String> {
    if store != Store::Etcd {
        return Ok(None);
    }
    let etcd = Etcd::start(fabric)?;
    step(&format!(
        "etcd on {} in the fabric; the demo (the orchestrator) writes the cluster and policy v1 \
         to it through the datastore API",
        etcd.endpoint()
    ));
    let rev = etcd.write(&format!("{}---{POLICY_V1}", cluster_yaml()))?;
    println!("  (written at etcd revision {rev})");
    Ok(Some(etcd))
}

/// Host `host` (number `i`): its namespace, plugged into both planes, default route via
/// the fabric.
fn host_namespace(fabric: &Netns, host: &str, i: u8) -> Result<Netns, String> {
    let e = |e: calico_netns::fixtures::NetnsError| e.to_string();
    let ns = Netns::create(host).map_err(e)?;
    for plane in [1, 2] {
        let (inner, outer) = (format!("p{plane}"), format!("{host}-p{plane}"));
        veth(&ns, &inner, fabric, &outer).map_err(e)?;
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
    Ok(ns)
}

/// Which vRouter ACL backend the agents use (`--dataplane`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataplane {
    /// nftables (the default), with flow logs on.
    Nft,
    /// eBPF programs (`calico-ebpf`), which have no flow logs yet.
    Bpf,
}

impl Dataplane {
    /// The agent's arguments for this dataplane.
    fn agent_args(self) -> &'static [&'static str] {
        match self {
            Dataplane::Nft => &["--flow-logs", "--flow-log-interval-secs", "1"],
            // The kernel's route lookup helper the programs call needs a GPL-compatible
            // license; the operator chooses it (see calico-ebpf's README).
            Dataplane::Bpf => &["--dataplane", "bpf", "--bpf-license", "GPL"],
        }
    }

    /// How the demo names it.
    pub fn label(self) -> &'static str {
        match self {
            Dataplane::Nft => "nftables",
            Dataplane::Bpf => "eBPF",
        }
    }
}

pub fn build(
    agent_bin: &Path,
    bgp: &str,
    store: Store,
    dataplane: Dataplane,
) -> Result<Cluster, String> {
    let e = |e: calico_netns::fixtures::NetnsError| e.to_string();
    let dir = std::env::temp_dir().join(format!("calico-demo-{}", std::process::id()));
    let fabric = fabric()?;
    let etcd = start_etcd(&fabric, store)?;
    let mut hosts = Vec::new();
    let mut workloads = Vec::new();
    let mut listeners = Vec::new();
    let mut agents = Vec::new();
    for (host, i) in HOSTS {
        interrupted()?;
        let host_bgp = bgp_of(host, bgp);
        step(&format!(
            "{host}: namespace, two fabric links, two workloads, BGP: {}, ACLs: {}",
            bgp_label(host, bgp),
            dataplane.label()
        ));
        let ns = host_namespace(&fabric, host, i)?;
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
        let log =
            std::fs::File::create(host_dir_with_log(&host_dir)?).map_err(|err| err.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(agent_bin)
            .args(["--node", host, "--bgp", host_bgp, "--resync-secs", "10"])
            .args(dataplane.agent_args())
            .args(datastore_args(&host_dir, i, etcd.as_ref())?)
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
        etcd,
        _fabric: fabric,
        dir,
        _listeners: listeners,
    })
}

/// Makes the host's directory; the path of its agent's log.
fn host_dir_with_log(host_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(host_dir).map_err(|err| err.to_string())?;
    Ok(host_dir.join("agent.log"))
}

/// The agent's datastore options: etcd's endpoint (and host `i`'s address), or a resource directory written with
/// the cluster and policy v1.
fn datastore_args(host_dir: &Path, i: u8, etcd: Option<&Etcd>) -> Result<Vec<String>, String> {
    if let Some(etcd) = etcd {
        // The host registers its own BGP address in its Node, as calico/node does.
        return Ok(vec![
            "--datastore".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            etcd.endpoint(),
            "--node-ipv4".into(),
            format!("10.1.0.{i}"),
        ]);
    }
    let resources = host_dir.join("resources");
    let err = |err: std::io::Error| format!("{}: {err}", resources.display());
    std::fs::create_dir_all(&resources).map_err(err)?;
    std::fs::write(resources.join("cluster.yaml"), cluster_yaml()).map_err(err)?;
    std::fs::write(resources.join("policy.yaml"), POLICY_V1).map_err(err)?;
    Ok(vec![
        "--datastore".into(),
        "dir".into(),
        "--resources".into(),
        resources.display().to_string(),
    ])
}

pub fn measure(c: &Cluster) -> Matrix {
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

/// Measures until the matrix equals the prediction (the agents converge), or the deadline;
/// says so while it waits.
pub fn converge(
    c: &Cluster,
    want: &Matrix,
    deadline: Duration,
) -> Result<(Matrix, Duration), String> {
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

/// Shows two hosts' routes to another's block, once they have both planes' next hops:
/// connectivity converges on the first plane's session, the second may come a moment
/// later (waited for up to 10 s, then shown as it is).
pub fn ecmp_routes(c: &Cluster, bgp: &str) {
    for (from, to) in [(0, 2), (1, 0)] {
        let (host, block) = (HOSTS[from].0, format!("10.65.{}.0/26", HOSTS[to].1));
        let show = || {
            c.hosts[from]
                .run(&["ip", "route", "show", "root", &block])
                .unwrap_or_default()
        };
        let start = Instant::now();
        let mut out = show();
        while out.matches("nexthop via").count() < 2 && start.elapsed() < Duration::from_secs(10) {
            if interrupted().is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
            out = show();
        }
        println!(
            "\n{host}'s routes within {}'s block {block} (learned by BGP over both planes, {} to {}):",
            HOSTS[to].0,
            bgp_label(HOSTS[to].0, bgp),
            bgp_label(host, bgp),
        );
        for line in out.lines() {
            println!("    {line}");
        }
    }
}
