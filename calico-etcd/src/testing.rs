//! A real etcd for tests (feature `fixtures`): its own data directory and loopback ports,
//! stopped, paused, killed and restarted at the test's command, removed when dropped.
//!
//! Tests that need etcd call [`EtcdServer::start_or_skip`]: without the `etcd` binary the
//! test says that it skipped, unless `CALICO_PRIVILEGED_TESTS=1` (CI, where `make test`
//! installed Debian's `etcd-server`), which turns the missing binary into a failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary used: `$CALICO_ETCD_BIN`, else `etcd` on the `PATH`.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("CALICO_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

/// Whether [`etcd_binary`] runs (`etcd --version` succeeds).
pub fn etcd_available() -> bool {
    Command::new(etcd_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One etcd member on loopback, or in a network namespace.
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client: SocketAddr,
    peer: SocketAddr,
    extra: Vec<String>,
    /// The network namespace it runs in (`ip netns exec`), if not this one.
    netns: Option<String>,
    /// Where `/health` is asked: the client port, or a plain-http metrics port under TLS.
    health: SocketAddr,
    tls: bool,
}

impl EtcdServer {
    /// Whether `test` can use etcd: `false` after saying why it skips (see the module
    /// documentation); panics if etcd is required and missing. Starts nothing.
    pub fn usable_or_skip(test: &str) -> bool {
        if etcd_available() {
            return true;
        }
        let required = std::env::var("CALICO_PRIVILEGED_TESTS").as_deref() == Ok("1");
        assert!(
            !required,
            "{test}: etcd is required (CALICO_PRIVILEGED_TESTS=1) but {} cannot run: \
             install Debian's etcd-server (make deps does)",
            etcd_binary().display()
        );
        eprintln!("{test}: SKIPPED: no etcd binary (install etcd-server to run it)");
        false
    }

    /// Starts etcd, or returns `None` after saying why the test skips (see
    /// [`EtcdServer::usable_or_skip`]); panics if etcd is required and missing or does not
    /// start.
    pub fn start_or_skip(test: &str) -> Option<EtcdServer> {
        EtcdServer::usable_or_skip(test)
            .then(|| EtcdServer::start(&[]).unwrap_or_else(|e| panic!("{test}: {e}")))
    }

    /// Starts etcd with `extra` command-line options and waits until it is healthy.
    pub fn start(extra: &[&str]) -> Result<EtcdServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let client = free_port()?;
        let mut server = EtcdServer {
            child: None,
            dir,
            client,
            peer: free_port()?,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns: None,
            health: client,
            tls: false,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts etcd inside the network namespace `netns` (by name, as `ip netns` knows it),
    /// listening on `ip` port 2379 (peers on 2380), and waits until it is healthy. Reach it
    /// from a thread that entered the namespace (`calico_netns::enter`).
    pub fn start_in_netns(netns: &str, ip: std::net::IpAddr) -> Result<EtcdServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let mut server = EtcdServer {
            child: None,
            dir,
            client: SocketAddr::new(ip, 2379),
            peer: SocketAddr::new(ip, 2380),
            extra: Vec::new(),
            netns: Some(netns.to_string()),
            health: SocketAddr::new(ip, 2379),
            tls: false,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts etcd serving clients over TLS only (`https://`), with the server certificate
    /// `cert`/`key`, requiring client certificates signed by `ca`. Health is checked on a
    /// plain-http metrics port.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Result<EtcdServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let metrics = free_port()?;
        let extra = vec![
            format!("--cert-file={}", cert.display()),
            format!("--key-file={}", key.display()),
            format!("--trusted-ca-file={}", ca.display()),
            "--client-cert-auth".to_string(),
            format!("--listen-metrics-urls=http://{metrics}"),
        ];
        let mut server = EtcdServer {
            child: None,
            dir,
            client: free_port()?,
            peer: free_port()?,
            extra,
            netns: None,
            health: metrics,
            tls: true,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The client URL, e.g. `http://127.0.0.1:40123` (`https://` for [`EtcdServer::start_tls`]).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.client)
    }

    /// The member's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Freezes the process (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal(libc_signal::SIGSTOP);
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc_signal::SIGCONT);
    }

    /// Kills the process (SIGKILL) and reaps it; the data directory stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the member again on the same ports and data directory.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-s", sig, &pid.to_string()])
                .status();
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let client = self.endpoint();
        let peer = format!("http://{}", self.peer);
        let log = std::fs::File::create(self.dir.path().join("etcd.log"))
            .map_err(|e| format!("etcd log: {e}"))?;
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(etcd_binary());
                c
            }
            None => Command::new(etcd_binary()),
        };
        // `ip netns exec` execs etcd: the child's pid is etcd's.
        let child = command
            .arg("--name=calico-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=calico-test={peer}"))
            .arg("--log-level=warn")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", etcd_binary().display()))?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(20))
    }

    fn wait_healthy(&mut self, within: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "etcd exited at start ({status}): {}",
                        self.log_tail()
                    ));
                }
            }
            if healthy(self.health, self.netns.as_deref()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "etcd not healthy within {} s: {}",
            within.as_secs(),
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// Signal names for `kill -s` (no libc dependency for two numbers).
mod libc_signal {
    pub const SIGSTOP: &str = "STOP";
    pub const SIGCONT: &str = "CONT";
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Whether etcd's `/health` answers `"health":"true"` (asked from inside `netns`, if any).
fn healthy(client: SocketAddr, netns: Option<&str>) -> bool {
    if let Some(ns) = netns {
        let script = format!(
            "exec 3<>/dev/tcp/{}/{} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 1 cat <&3",
            client.ip(),
            client.port()
        );
        return Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c", &script])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""));
    }
    let Ok(mut s) = TcpStream::connect_timeout(&client, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

/// Runs `work` with a client connected to `endpoint`, on a current-thread runtime of its
/// own, and returns its result. For tests on a thread that entered a network namespace
/// (`calico_netns::enter`), where an etcd inside that namespace is reachable; panics when
/// the client cannot connect, as a fixture does.
pub fn with_client<T, F: std::future::Future<Output = T>>(
    endpoint: String,
    work: impl FnOnce(etcd_client::Client) -> F,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the etcd client");
    rt.block_on(async move {
        let client = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .unwrap_or_else(|e| panic!("etcd client for {endpoint}: {e}"));
        work(client).await
    })
}
