//! Pieces the BGP benches share: settings from the environment, a process's resident
//! memory, and the baselines: BIRD daemons (Debian's BIRD 2, and BIRD 3 built from the
//! baselines' source) and rustbgpd (built from the baselines' source, [`rustbgpd`]).

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use calico_netns::fixtures::Netns;

#[path = "../../tests/speaker_support/sockets.rs"]
mod sockets;
pub use sockets::sockets_in;

mod rustbgpd;
pub use rustbgpd::{rustbgpd, BenchRustbgpd};

// The reflect and churn benches use it, the feed bench none of it; this module is compiled
// into each bench.
#[allow(dead_code)]
pub mod reflector;

/// The benches' tokio runtime: two worker threads (the machine's cores), timers and I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `name` from the environment as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of process `pid` in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory process `pid` has had, in KiB (0 when it cannot be read).
// The reflect bench reads it; this module is compiled into each bench.
#[allow(dead_code)]
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// A KiB field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time process `pid` has used (user and system, all its threads), in clock ticks (0
/// when it cannot be read).
// The feed and churn benches read it; this module is compiled into each bench.
#[allow(dead_code)]
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses, which may hold spaces): utime and stime are
    // the 12th and 13th fields.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Clock ticks per second, the unit of [`cpu_ticks`].
// The churn bench reads it; this module is compiled into each bench.
#[allow(dead_code)]
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).unwrap_or(100).max(1)
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

/// Which BIRD runs: Debian's BIRD 2 (`bird` on the path) or a BIRD 3 build.
#[derive(Clone, Debug)]
pub enum BirdBuild {
    /// `bird` and `birdc` from the path (Debian 12: BIRD 2.0.12).
    Debian,
    /// BIRD 3 installed under this prefix (`sbin/bird`, `sbin/birdc`).
    Bird3(PathBuf),
}

impl BirdBuild {
    fn programs(&self) -> (String, String) {
        match self {
            BirdBuild::Debian => ("bird".into(), "birdc".into()),
            BirdBuild::Bird3(prefix) => (
                prefix.join("sbin/bird").display().to_string(),
                prefix.join("sbin/birdc").display().to_string(),
            ),
        }
    }

    /// What to put first in a configuration: for BIRD 3, as many worker threads as there
    /// are cores (the baselines' README asks for it; BIRD 3's default is one).
    pub fn preamble(&self) -> String {
        match self {
            BirdBuild::Debian => String::new(),
            BirdBuild::Bird3(_) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                format!("thread group worker {{ threads {cores}; default yes; }}\n")
            }
        }
    }
}

/// The BIRD 3 baseline: `$BIRD3_PREFIX` if set, else `target/baselines/bird3`, built there
/// by the baselines' `build-bird3.sh` when missing. `None`, with the reason printed, when it
/// cannot be had.
pub fn bird3() -> Option<BirdBuild> {
    let prefix = baseline("BIRD3_PREFIX", "bird3", "sbin/bird", "build-bird3.sh")?;
    Some(BirdBuild::Bird3(prefix))
}

/// A baseline installed under `$env` or `baselines/<name>` in the target directory
/// (`$CARGO_TARGET_DIR`, else the workspace's `target`; `program` inside it), built there by
/// `script` from the baselines directory (`$CALICO_BASELINES`, default
/// `../shared/baselines` beside the workspace) when missing.
fn baseline(env: &str, name: &str, program: &str, script: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("baselines").join(name));
    if dir.join(program).exists() {
        return Some(dir);
    }
    let baselines = std::env::var_os("CALICO_BASELINES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/baselines"));
    let script = baselines.join(script);
    if !script.exists() {
        eprintln!(
            "{name} baseline skipped: no {} (set CALICO_BASELINES to the directory holding \
             the baselines' build scripts and sources, or {env} to an installed {name}; \
             with them, `bash $CALICO_BASELINES/{} {}` builds it where the benches look)",
            script.display(),
            script.file_name().unwrap_or_default().to_string_lossy(),
            dir.display()
        );
        return None;
    }
    eprintln!(
        "building {name} into {} (a few minutes, once)",
        dir.display()
    );
    // The rustbgpd script runs cargo and copies from its own `target`: ours must not leak in.
    let built = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .status();
    match built {
        Ok(s) if s.success() && dir.join(program).exists() => Some(dir),
        other => {
            eprintln!(
                "{name} baseline skipped: `bash {} {}` failed: {other:?}",
                script.display(),
                dir.display()
            );
            None
        }
    }
}

/// A BIRD daemon started in a namespace with a given configuration.
pub struct BenchBird {
    dir: PathBuf,
    ctl: String,
    birdc: String,
    /// The daemon's process id.
    pub pid: u32,
}

impl BenchBird {
    /// Writes `conf`, after the build's preamble, into a fresh directory named after `tag`,
    /// starts that BIRD with it in `ns` and waits up to `pid_wait` for its pid file (written
    /// after it forks).
    pub fn start(
        build: &BirdBuild,
        ns: &Netns,
        tag: &str,
        conf: &str,
        pid_wait: Duration,
    ) -> BenchBird {
        let (bird, birdc) = build.programs();
        let dir = std::env::temp_dir().join(format!("calico-bgp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf_path = dir.join("bird.conf");
        let ctl = dir.join("bird.ctl").display().to_string();
        let pidfile = dir.join("bird.pid");
        std::fs::write(&conf_path, format!("{}{conf}", build.preamble())).unwrap();
        ns.run(&[
            &bird,
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
        BenchBird {
            dir,
            ctl,
            birdc,
            pid,
        }
    }

    /// Runs a `birdc` command and returns its output.
    pub fn birdc(&self, command: &str) -> String {
        let out = Command::new(&self.birdc)
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
