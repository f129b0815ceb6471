//! `calico-rs-cni` under a real container runtime: Debian's podman with its CNI backend,
//! containers from a busybox image built here (`podman import`; no registry), two networks
//! naming `calico-rs-cni`, calico-agent programming routes and policy from etcd.
//!
//! Everything lives in namespaces and directories the test makes: podman runs inside a host
//! namespace (`nsenter --net`) with its own `--root`/`--runroot`, config and plugin
//! directories; etcd runs in a fabric namespace; the agent uses its own nft table.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use calico_etcd::testing::EtcdServer;
use calico_netns::fixtures::{privileged, veth, Netns};
use serde_json::{json, Value};

const ETCD_IP: &str = "10.78.0.254";
const HOST_IP: &str = "10.78.0.1";
const NODE: &str = "cni-pm-host";
const RES: &str = "/calico/resources/v3/projectcalico.org";
const IMAGE: &str = "localhost/calico-rs-busybox:test";

struct Podman {
    dir: tempfile::TempDir,
    host: String,
}

impl Podman {
    /// A private podman: storage, run state, CNI configs and plugins under `dir`.
    fn new(host: &Netns, etcd: &str) -> Podman {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["root", "runroot", "cni", "plugins", "rootfs/bin", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_calico-rs-cni"),
            d.join("plugins/calico-rs-cni"),
        )
        .unwrap();
        for (net, role) in [("srv-net", "srv"), ("cli-net", "cli")] {
            let conf = json!({"cniVersion": "1.0.0", "name": net, "plugins": [{
                "type": "calico-rs-cni", "nodename": NODE, "etcd_endpoints": etcd,
                "labels": {"role": role}, "ipam": {"type": "calico-ipam"}}]});
            std::fs::write(d.join(format!("cni/{net}.conflist")), conf.to_string()).unwrap();
        }
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{p}/plugins\", \"/usr/lib/cni\"]\n\
             network_config_dir = \"{p}/cni\"\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\nevents_logfile_path = \"{p}/events.log\"\ntmp_dir = \"{p}/tmp\"\n",
            p = d.display()
        );
        std::fs::write(d.join("containers.conf"), conf).unwrap();
        Podman {
            dir,
            host: host.path(),
        }
    }

    /// `podman <args>` inside the host namespace.
    fn output(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("nsenter")
            .arg(format!("--net={}", self.host))
            .arg("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A busybox image from Debian's static busybox: /bin/busybox and its applets.
    fn import_busybox(&self) {
        let root = self.dir.path().join("rootfs");
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in ["sh", "nc", "sleep", "ip", "true", "cat"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let tar = self.dir.path().join("rootfs.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(ok.success());
        self.run(&["import", tar.to_str().unwrap(), IMAGE]);
    }

    /// Starts a container on `net` running `cmd`.
    fn start(&self, name: &str, net: &str, cmd: &str) {
        self.run(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            IMAGE,
            "sh",
            "-c",
            cmd,
        ]);
    }

    /// Whether `from` connects to `ip:port` within 2 s.
    fn connects(&self, from: &str, ip: &str, port: u16) -> bool {
        let port = port.to_string();
        self.output(&["exec", from, "nc", "-w", "2", ip, &port])
            .status
            .success()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.output(&["rm", "-a", "-f", "-t", "0"]);
        let _ = self.output(&["rmi", "-a", "-f"]);
    }
}

/// Directories podman and libcni create on the host whatever their configuration (the
/// image blob cache, CNI's result cache): removed afterwards if the test created them.
struct HostDirs(Vec<&'static str>);

impl HostDirs {
    fn note() -> HostDirs {
        HostDirs(
            ["/var/lib/containers", "/var/lib/cni"]
                .into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect(),
        )
    }
}

impl Drop for HostDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

struct Agent(Child, PathBuf);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_calico-rs-cni")).with_file_name("calico-agent");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "calico-agent", "--bin", "calico-agent"])
            .status()
            .unwrap();
        assert!(ok.success(), "cannot build calico-agent");
    }
    bin
}

fn start_agent(host: &Netns, etcd: &str, dir: &Path) -> Agent {
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", host.name()])
        .arg(agent_binary())
        .args([
            "--node",
            NODE,
            "--datastore",
            "etcd",
            "--etcd-endpoints",
            etcd,
            "--no-bgp",
        ])
        .args([
            "--http",
            "127.0.0.1:9091",
            "--nft-table",
            "calicocni",
            "--node-ipv4",
            HOST_IP,
        ])
        .arg("--lock-dir")
        .arg(dir.join("lock"))
        .arg("--bird-dir")
        .arg(dir.join("bird"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Agent(child, dir.join("agent.log"))
}

fn etcd_put(host: &Netns, endpoint: &str, entries: Vec<(String, Value)>) {
    etcd(host, endpoint, move |mut c| async move {
        for (k, v) in entries {
            c.put(k, v.to_string(), None).await.unwrap();
        }
    })
}

fn etcd_keys(host: &Netns, endpoint: &str, prefix: &str) -> Vec<(String, Value)> {
    let prefix = prefix.to_string();
    etcd(host, endpoint, move |mut c| async move {
        let r = c
            .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .unwrap();
        r.kvs()
            .iter()
            .map(|kv| {
                let v = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
                (kv.key_str().unwrap().to_string(), v)
            })
            .collect()
    })
}

fn etcd<T: Send, F: std::future::Future<Output = T>>(
    host: &Netns,
    endpoint: &str,
    work: impl FnOnce(etcd_client::Client) -> F + Send,
) -> T {
    let endpoint = endpoint.to_string();
    host.enter(move || calico_etcd::testing::with_client(endpoint, work))
        .unwrap()
}

fn allocated(host: &Netns, endpoint: &str) -> usize {
    etcd_keys(host, endpoint, "/calico/ipam/v2/assignment/")
        .iter()
        .map(|(_, v)| {
            v["allocations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| !a.is_null())
                .count()
        })
        .sum()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

fn tools_or_skip(test: &str) -> bool {
    let have = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = [
        ("podman", "--version"),
        ("runc", "--version"),
        ("/bin/busybox", "true"),
        ("nsenter", "--version"),
    ]
    .into_iter()
    .filter(|(c, a)| !have(c, a))
    .map(|(c, _)| c)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CALICO_PRIVILEGED_TESTS").as_deref() != Ok("1"),
        "{test}: {missing:?} required (CALICO_PRIVILEGED_TESTS=1): install podman runc busybox-static util-linux (make deps does)"
    );
    eprintln!("{test}: SKIPPED: missing {missing:?}");
    false
}

/// A host namespace wired to a fabric namespace running etcd (at `ETCD_IP`).
fn namespaces_and_etcd() -> (Netns, Netns, EtcdServer) {
    let fabric = Netns::create("pmfab").unwrap();
    let host = Netns::create("pmhost").unwrap();
    veth(&host, "up0", &fabric, "etcd0").unwrap();
    host.run(&["ip", "addr", "add", &format!("{HOST_IP}/24"), "dev", "up0"])
        .unwrap();
    fabric
        .run(&[
            "ip",
            "addr",
            "add",
            &format!("{ETCD_IP}/24"),
            "dev",
            "etcd0",
        ])
        .unwrap();
    // Proxy ARP answers for 169.254.1.1 only when the host routes it (a default route).
    host.run(&["ip", "route", "add", "default", "dev", "up0"])
        .unwrap();
    let server = EtcdServer::start_in_netns(fabric.name(), ETCD_IP.parse().unwrap()).unwrap();
    (fabric, host, server)
}

/// The pool, one profile per network (egress open) and the policy admitting cli to srv:8080.
fn write_resources(host: &Netns, ep: &str) {
    let v3 = |kind: &str, name: &str, spec: Value| json!({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name}, "spec": spec});
    let allow_egress = json!({"egress": [{"action": "Allow"}]});
    etcd_put(
        host,
        ep,
        vec![
            (
                format!("{RES}/ippools/pool1"),
                v3(
                    "IPPool",
                    "pool1",
                    json!({"cidr": "10.79.0.0/24", "blockSize": 26}),
                ),
            ),
            (
                format!("{RES}/profiles/srv-net"),
                v3("Profile", "srv-net", allow_egress.clone()),
            ),
            (
                format!("{RES}/profiles/cli-net"),
                v3("Profile", "cli-net", allow_egress),
            ),
            (
                format!("{RES}/globalnetworkpolicies/srv-8080"),
                v3(
                    "GlobalNetworkPolicy",
                    "srv-8080",
                    json!({
            "selector": "role == 'srv'", "types": ["Ingress"],
            "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'cli'"},
                         "destination": {"ports": [8080]}}]}),
                ),
            ),
        ],
    );
}

/// The srv and cli containers' addresses, after checking both come from the host's one block.
fn addresses_from_host_block(host: &Netns, ep: &str) -> (String, String) {
    // Both addresses come from the host's block.
    let weps = etcd_keys(host, ep, &format!("{RES}/workloadendpoints/"));
    assert_eq!(weps.len(), 2, "{weps:?}");
    let ip_of = |role: &str| -> String {
        let w = weps
            .iter()
            .find(|(_, v)| v["metadata"]["labels"]["role"] == role)
            .unwrap();
        w.1["spec"]["ipNetworks"][0]
            .as_str()
            .unwrap()
            .trim_end_matches("/32")
            .to_string()
    };
    let (srv, cli) = (ip_of("srv"), ip_of("cli"));
    let blocks = etcd_keys(
        host,
        ep,
        &format!("/calico/ipam/v2/host/{NODE}/ipv4/block/"),
    );
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    // The host's block (key `…/block/10.79.0.N-26`) holds both addresses.
    let name = blocks[0]
        .0
        .rsplit('/')
        .next()
        .unwrap()
        .replacen('-', "/", 1);
    let block: ipnet::IpNet = name.parse().unwrap();
    assert!(
        "10.79.0.0/24"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&block)
            && block.prefix_len() == 26,
        "{block}"
    );
    for ip in [&srv, &cli] {
        assert!(
            block.contains(&ip.parse::<std::net::IpAddr>().unwrap()),
            "{ip} outside {block}"
        );
    }
    (srv, cli)
}

#[test]
fn podman_containers_get_calico_addresses_and_policy() {
    let test = "podman_containers_get_calico_addresses_and_policy";
    if !privileged(test) || !tools_or_skip(test) || !EtcdServer::usable_or_skip(test) {
        return;
    }
    let _host_dirs = HostDirs::note();
    let (_fabric, host, server) = namespaces_and_etcd();
    let ep = server.endpoint();
    write_resources(&host, &ep);

    let podman = Podman::new(&host, &ep);
    let _agent = start_agent(&host, &ep, podman.dir.path());
    podman.import_busybox();
    podman.start(
        "srv",
        "srv-net",
        "nc -ll -p 8080 -e true & nc -ll -p 9090 -e true & sleep 600",
    );
    podman.start("cli", "cli-net", "sleep 600");

    let (srv, _cli) = addresses_from_host_block(&host, &ep);
    assert_eq!(allocated(&host, &ep), 2);

    // The agent's policy: 8080 from cli goes through, 9090 (listening: see inside) does not.
    let log = |a: &Agent| std::fs::read_to_string(&a.1).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || podman
            .connects("cli", &srv, 8080)),
        "cli never reached srv:8080\n{}",
        log(&_agent)
    );
    assert!(
        podman.connects("srv", "127.0.0.1", 9090),
        "srv listens on 9090"
    );
    assert!(
        !podman.connects("cli", &srv, 9090),
        "policy let cli reach srv:9090"
    );
    let ruleset = host
        .run(&["nft", "list", "table", "inet", "calicocni"])
        .unwrap();
    assert!(ruleset.contains("8080"), "{ruleset}");

    // `podman rm` runs DEL: addresses, endpoints and veths gone.
    podman.run(&["rm", "-f", "-t", "0", "srv", "cli"]);
    assert_eq!(allocated(&host, &ep), 0);
    assert!(etcd_keys(&host, &ep, &format!("{RES}/workloadendpoints/")).is_empty());
    assert!(etcd_keys(&host, &ep, "/calico/ipam/v2/handle/").is_empty());
    let links = host.run(&["ip", "-br", "link"]).unwrap();
    assert!(!links.contains("cali"), "{links}");
}
