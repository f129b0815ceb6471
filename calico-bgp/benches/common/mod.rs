//! Pieces the BGP benches share: settings from the environment, a process's resident
//! memory, and a BIRD 2 daemon run as the baseline.

use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use calico_netns::fixtures::Netns;

#[path = "../../tests/speaker_support/sockets.rs"]
mod sockets;
pub use sockets::sockets_in;

/// `name` from the environment as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of process `pid` in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs this bench binary again inside `ns` with the argument `role` and environment
/// `env`, and waits for it to print `ready`. Returns the child (whose pid is the process
/// itself: `ip netns exec` execs it) and the rest of its output.
pub fn spawn_self(
    ns: &Netns,
    role: &str,
    env: &[(&str, String)],
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(std::env::current_exe().unwrap())
        .arg(role)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    (child, lines)
}

/// A BIRD 2 daemon started in a namespace with a given configuration.
pub struct BenchBird {
    dir: PathBuf,
    ctl: String,
    /// The daemon's process id.
    pub pid: u32,
}

impl BenchBird {
    /// Writes `conf` into a fresh directory named after `tag`, starts `bird` with it in `ns`
    /// and waits up to `pid_wait` for its pid file (written after it forks).
    pub fn start(ns: &Netns, tag: &str, conf: &str, pid_wait: Duration) -> BenchBird {
        let dir = std::env::temp_dir().join(format!("calico-bgp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf_path = dir.join("bird.conf");
        let ctl = dir.join("bird.ctl").display().to_string();
        let pidfile = dir.join("bird.pid");
        std::fs::write(&conf_path, conf).unwrap();
        ns.run(&[
            "bird",
            "-c",
            &conf_path.display().to_string(),
            "-s",
            &ctl,
            "-P",
            &pidfile.display().to_string(),
        ])
        .unwrap();
        let tries = pid_wait.as_millis() / 10;
        let pid: u32 = (0..tries)
            .find_map(|_| {
                let pid = std::fs::read_to_string(&pidfile)
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
                if pid.is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                pid
            })
            .expect("BIRD wrote its pid file");
        BenchBird { dir, ctl, pid }
    }

    /// Runs a `birdc` command and returns its output.
    pub fn birdc(&self, command: &str) -> String {
        let out = Command::new("birdc")
            .args(["-s", &self.ctl])
            .args(command.split_whitespace())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's name and version, as `birdc show status` gives it.
    pub fn version(&self) -> String {
        self.birdc("show status")
            .lines()
            .next()
            .unwrap_or("BIRD")
            .replace(" ready.", "")
    }

    /// Stops the daemon, waits (up to 2 s) until it is gone and removes its files.
    pub fn stop(self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        for _ in 0..100 {
            if !std::path::Path::new(&format!("/proc/{}", self.pid)).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
