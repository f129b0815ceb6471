//! Hosts for the daemon's reliability tests: a host namespace with workloads wired as Calico
//! wires them, a resource directory, and `calico-agent` run inside the namespace.

#![allow(dead_code)]

pub mod etcd;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_netns::fixtures::{veth, Netns};

pub struct Host {
    pub name: String,
    /// The uplink's address.
    pub uplink: String,
    pub ns: Netns,
    pub workloads: Vec<(Netns, String)>,
    pub dir: PathBuf,
    pub agent: Option<Child>,
}

impl Host {
    /// A host namespace `name` with an uplink `up0` (address `uplink`/24, default route out
    /// of it) plugged into `fabric`'s bridge `br0` (or into nothing), and one workload per
    /// `(interface, address)`.
    pub fn new(
        name: &str,
        fabric: Option<&Netns>,
        uplink: &str,
        workloads: &[(&str, &str)],
    ) -> Host {
        let ns = Netns::create(name).unwrap();
        match fabric {
            Some(f) => {
                // Named after the uplink's last octet, unique on the fabric.
                let outer = format!("up-{}", uplink.rsplit('.').next().unwrap());
                veth(&ns, "up0", f, &outer).unwrap();
                f.run(&["ip", "link", "set", &outer, "master", "br0"])
                    .unwrap();
            }
            None => {
                ns.run(&[
                    "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p",
                ])
                .unwrap();
                ns.run(&["ip", "link", "set", "up0", "up"]).unwrap();
                ns.run(&["ip", "link", "set", "up0p", "up"]).unwrap();
            }
        }
        ns.run(&["ip", "addr", "add", &format!("{uplink}/24"), "dev", "up0"])
            .unwrap();
        ns.run(&["ip", "route", "add", "default", "dev", "up0"])
            .unwrap();
        let dir =
            std::env::temp_dir().join(format!("calico-rel-{}-{}", ns.name(), std::process::id()));
        std::fs::create_dir_all(dir.join("resources")).unwrap();
        let mut wls = Vec::new();
        for (iface, ip) in workloads {
            let wl = calico_netns::fixtures::workload(&ns, iface, &[ip]).unwrap();
            wls.push((wl, ip.to_string()));
        }
        Host {
            name: name.to_string(),
            uplink: uplink.to_string(),
            ns,
            workloads: wls,
            dir,
            agent: None,
        }
    }

    pub fn write(&self, file: &str, yaml: &str) {
        let tmp = self.dir.join("resources").join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.dir.join("resources").join(file)).unwrap();
    }

    pub fn start_agent(&mut self, extra: &[&str]) {
        let resources = self.dir.join("resources");
        let mut args = vec!["--resources", resources.to_str().unwrap()];
        args.extend(extra);
        self.start_agent_with(&args);
    }

    /// Starts the agent with `args` (and `--node`, `--bird-dir`, `--frr-dir`), whatever its
    /// datastore.
    pub fn start_agent_with(&mut self, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns.name(),
                env!("CARGO_BIN_EXE_calico-agent"),
            ])
            .args(["--node", &self.name])
            .arg("--bird-dir")
            .arg(self.dir.join("bird"))
            .arg("--frr-dir")
            .arg(self.dir.join("frr"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    pub fn signal_agent(&mut self, sig: i32) {
        if let Some(mut a) = self.agent.take() {
            // `ip netns exec` execs the agent, so the child's pid is the agent's.
            // SAFETY: kill(2) on our child.
            unsafe { libc::kill(a.id() as i32, sig) };
            let _ = a.wait();
        }
    }

    /// Waits until the agent's `/api/endpoints` lists `endpoints` endpoints as programmed;
    /// panics with the agent's log after `timeout`.
    pub fn wait_programmed(&self, endpoints: usize, timeout: Duration) {
        let programmed = wait_until(timeout, || {
            http_get(self, "/api/endpoints")
                .matches("\"programmed\"")
                .count()
                == endpoints
        });
        assert!(programmed.is_some(), "{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    pub fn ping(&self, from: usize, to: &str) -> bool {
        self.workloads[from]
            .0
            .output(&["ping", "-c1", "-W1", to])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A TCP listener on `addr` in workload `wl`'s namespace (the socket stays there).
    pub fn listen(&self, wl: usize, addr: std::net::SocketAddr) -> std::net::TcpListener {
        self.workloads[wl]
            .0
            .enter(move || std::net::TcpListener::bind(addr).unwrap())
            .unwrap()
    }

    /// Whether a TCP connect from workload `from` to `to` succeeds within a second.
    pub fn connect(&self, from: usize, to: std::net::SocketAddr) -> bool {
        self.workloads[from]
            .0
            .enter(move || {
                std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok()
            })
            .unwrap()
    }

    pub fn routes(&self) -> String {
        self.ns
            .run(&["ip", "route", "show", "proto", "80"])
            .unwrap_or_default()
    }

    pub fn ruleset(&self) -> String {
        self.ns
            .run(&["nft", "list", "table", "inet", "calico"])
            .unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.signal_agent(libc::SIGKILL);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` on the agent's HTTP server (127.0.0.1:9091) inside the host's namespace: the
/// whole response, status line first; empty if nothing answered.
pub fn http_get(host: &Host, path: &str) -> String {
    use std::io::{Read, Write};
    let path = path.to_string();
    host.ns
        .enter(move || {
            let mut s = std::net::TcpStream::connect("127.0.0.1:9091").ok()?;
            s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Polls `f` until it holds or `timeout` passes; how long it took, or `None`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Workload endpoints `wl<i>` on `node`, interfaces `caliN`, in namespace `ns`, profile open
/// inside the namespace (all allowed), plus a `Node` with a BGP address when given.
pub fn endpoints_yaml(node: &str, workloads: &[(&str, &str)]) -> String {
    let mut y = String::from(
        "kind: Profile\nname: kns.default\ningress: [{action: Allow}]\negress: [{action: Allow}]\n",
    );
    for (i, (iface, ip)) in workloads.iter().enumerate() {
        y += &format!(
            "---\nkind: WorkloadEndpoint\norchestrator: k8s\nworkload: default.{node}-w{i}\n\
             endpoint: eth0\nnamespace: default\nnode: {node}\ninterfaceName: {iface}\n\
             ipNetworks: [{ip}/32]\nlabels: {{app: w{i}}}\nprofiles: [kns.default]\n"
        );
    }
    y
}

/// Resources of two hosts peering with each other over BGP (AS 64512, no full mesh: one
/// `BgpPeer` each way, hold time `hold` s). Each host is `(node name, uplink address,
/// workloads)`; its workloads are described as by [`endpoints_yaml`].
pub fn peered_pair_yaml(
    a: (&str, &str, &[(&str, &str)]),
    b: (&str, &str, &[(&str, &str)]),
    hold: u16,
) -> String {
    let profile = "kind: Profile\nname: kns.default\ningress: [{action: Allow}]\negress: [{action: Allow}]\n---\n";
    let (na, ua, wa) = a;
    let (nb, ub, wb) = b;
    format!(
        "{}---\n{}---\nkind: BgpConfiguration\nname: default\nnodeToNodeMeshEnabled: false\n\
         ---\nkind: Node\nname: {na}\nbgp: {{ipv4Address: {ua}}}\n\
         ---\nkind: Node\nname: {nb}\nbgp: {{ipv4Address: {ub}}}\n\
         ---\nkind: BgpPeer\nname: a-b\nnode: {na}\npeerIP: {ub}\nasNumber: 64512\nholdTime: {hold}\n\
         ---\nkind: BgpPeer\nname: b-a\nnode: {nb}\npeerIP: {ua}\nasNumber: 64512\nholdTime: {hold}\n",
        endpoints_yaml(na, wa),
        endpoints_yaml(nb, wb).replacen(profile, "", 1),
    )
}

/// A fabric namespace (named after `prefix`) with a bridge `br0` hosts plug their uplinks
/// into.
pub fn fabric(prefix: &str) -> Netns {
    let f = Netns::create(prefix).unwrap();
    f.run(&["ip", "link", "add", "br0", "type", "bridge"])
        .unwrap();
    f.run(&["ip", "link", "set", "br0", "up"]).unwrap();
    f
}
