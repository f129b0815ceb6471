//! rustbgpd (0.8.0, a BGP daemon in Rust with published reflector figures) run as a
//! baseline: started in a namespace from a TOML configuration, observed through its
//! Prometheus endpoint and its resident memory.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use calico_netns::fixtures::Netns;

/// The rustbgpd baseline: `$RUSTBGPD_DIR` if set, else `target/baselines/rustbgpd`, built
/// there by the baselines' `build-rustbgpd.sh` when missing. `None`, with the reason
/// printed, when it cannot be had.
pub fn rustbgpd() -> Option<PathBuf> {
    super::baseline("RUSTBGPD_DIR", "rustbgpd", "rustbgpd", "build-rustbgpd.sh")
        .map(|dir| dir.join("rustbgpd"))
}

/// A rustbgpd daemon started in a namespace.
pub struct BenchRustbgpd {
    child: Child,
    dir: PathBuf,
    ns_path: String,
    metrics: Option<SocketAddr>,
    /// The daemon's process id (`ip netns exec` execs it).
    pub pid: u32,
}

impl BenchRustbgpd {
    /// Writes a configuration of `global` (the `[global]` table's keys, without
    /// `runtime_state_dir` and telemetry, which this sets) and `rest` (neighbors) into a
    /// fresh directory named after `tag`, and starts `program` with it in `ns`. With
    /// `metrics`, its Prometheus endpoint listens there (an address inside `ns`). It logs
    /// warnings (`$RUSTBGPD_LOG` to change) into `rustbgpd.log` in that directory, which
    /// stays there when the bench fails.
    pub fn start(
        program: &Path,
        ns: &Netns,
        tag: &str,
        (global, rest): (&str, &str),
        metrics: Option<SocketAddr>,
    ) -> BenchRustbgpd {
        let dir = std::env::temp_dir().join(format!("calico-bgp-{tag}-rbd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prometheus = metrics.map_or(String::new(), |a| format!("prometheus_addr = \"{a}\"\n"));
        let conf = format!(
            "[global]\n{global}runtime_state_dir = \"{}\"\n\n[global.telemetry]\n{prometheus}\
             log_format = \"json\"\n\n{rest}",
            dir.display()
        );
        let conf_path = dir.join("rustbgpd.toml");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.join("rustbgpd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(program)
            .arg(&conf_path)
            .env(
                "RUST_LOG",
                std::env::var("RUSTBGPD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id();
        BenchRustbgpd {
            child,
            dir,
            ns_path: ns.path(),
            metrics,
            pid,
        }
    }

    /// The value of the Prometheus sample whose name and labels are `series` (such as
    /// `bgp_rib_loc_prefixes{afi_safi="all"}`); `None` while the endpoint is not up or
    /// has no such sample.
    // The feed bench reads it; this module is compiled into each bench.
    #[allow(dead_code)]
    pub fn metric(&self, series: &str) -> Option<f64> {
        let addr = self.metrics?;
        let body = calico_netns::enter_path(Path::new(&self.ns_path), || http_get(addr))
            .ok()?
            .ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Waits (up to `limit`) until the Prometheus endpoint answers: the daemon has read its
    /// configuration and started.
    pub fn wait_ready(&mut self, limit: Duration) {
        let Some(addr) = self.metrics else { return };
        let path = PathBuf::from(&self.ns_path);
        for _ in 0..limit.as_millis() / 10 {
            self.check_running();
            if matches!(
                calico_netns::enter_path(&path, || http_get(addr)),
                Ok(Ok(_))
            ) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("rustbgpd's metrics endpoint {addr} did not answer within {limit:?}");
    }

    /// Whether the daemon is still running (it exits at once on a configuration it
    /// refuses; its log then says why).
    pub fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(self.dir.join("rustbgpd.log")).unwrap_or_default();
            panic!("rustbgpd exited ({status}):\n{log}");
        }
    }

    /// Stops the daemon, waits until it is gone and removes its files.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for BenchRustbgpd {
    /// A bench that fails does not leave the daemon running (its files stay, for its log).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET /metrics` at `addr`.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string()))
}
