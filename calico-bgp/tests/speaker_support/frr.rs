//! An FRR daemon set (zebra, bfdd, bgpd) inside a test namespace, with its own
//! configuration, pid files and vty sockets in a temporary directory: the host's FRR, if
//! any, is never touched. The daemons run as FRR's `frr` user (its vty group lets `vtysh`
//! in) and are killed when the guard drops.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use calico_netns::fixtures::Netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The daemons started, in order (bgpd and bfdd register with zebra).
const DAEMONS: [&str; 3] = ["zebra", "bfdd", "bgpd"];

pub struct Frr {
    pub dir: PathBuf,
}

impl Frr {
    /// Starts FRR in `ns` with `conf` as its integrated configuration (`frr.conf`).
    pub fn start(ns: &Netns, conf: &str) -> Frr {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("calico-bgp-frr-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("frr.conf"), conf).unwrap();
        let frr = Frr { dir };
        let chown = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(&frr.dir)
            .status();
        assert!(
            chown.is_ok_and(|s| s.success()),
            "FRR's user frr exists (make deps installs frr)"
        );
        let (conf, zserv, vty) = (frr.path("frr.conf"), frr.path("zserv.api"), frr.path(""));
        for d in DAEMONS {
            let (bin, pid) = (format!("/usr/lib/frr/{d}"), frr.path(&format!("{d}.pid")));
            let args = [
                &bin, "-d", "-u", "frr", "-g", "frr", "-f", &conf, "-i", &pid, "-z", &zserv,
            ];
            let mut command: Vec<&str> = args.to_vec();
            command.extend(["--vty_socket", &vty, "-P", "0"]);
            ns.run(&command)
                .unwrap_or_else(|e| panic!("FRR's {d} failed to start: {e}"));
        }
        frr
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Runs a `vtysh` command and returns its output.
    pub fn cli(&self, command: &str) -> String {
        let out = Command::new("vtysh")
            .args(["--vty_socket", &self.path(""), "-c", command])
            .output()
            .expect("vtysh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `check` holds for the output of `command`.
    pub fn wait(&self, secs: u64, command: &str, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.cli(command);
            if check(&out) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: `{command}` says:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for d in DAEMONS.iter().rev() {
            if let Ok(pid) = std::fs::read_to_string(self.path(&format!("{d}.pid"))) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
