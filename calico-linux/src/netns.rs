//! Network namespaces for tests, examples and benchmarks: create one, run commands and code
//! inside it, and have it removed when the guard drops (also when a test panics).
//!
//! This is the harness every privileged test of calico-rs uses. It shells out to `ip` (from
//! iproute2) for creation and removal, the way an operator would, and uses `setns(2)` on a
//! short-lived thread to open sockets inside a namespace: a socket stays bound to the
//! namespace it was created in, whichever thread later uses it.
//!
//! ```no_run
//! use calico_linux::netns::Netns;
//! let host = Netns::create("host")?;
//! host.run(&["ip", "link", "add", "dummy0", "type", "dummy"])?;
//! let links = host.run(&["ip", "-br", "link"])?;
//! assert!(links.contains("dummy0"));
//! # Ok::<(), calico_linux::netns::NetnsError>(())
//! ```

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A command could not be started (not installed?).
    #[error("cannot run {command:?}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{command:?} exited with {status}: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Entering the namespace failed.
    #[error("cannot enter network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A named network namespace that is deleted (with every process still inside killed) when
/// dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// Creates a namespace named `cr-<prefix>-<pid>-<n>` (unique per process and call) with
    /// its loopback up.
    pub fn create(prefix: &str) -> Result<Netns, NetnsError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("cr-{prefix}-{}-{n}", std::process::id());
        run_command(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's path under `/var/run/netns`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace and returns its full output, whatever its status.
    pub fn output(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        output_of(&full)
    }

    /// Runs a command inside the namespace; its stdout on success, an error naming the
    /// command and its stderr otherwise.
    pub fn run(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run_command(&full)
    }

    /// Runs `f` on a new thread that has entered the namespace, and returns its result.
    /// Sockets `f` opens belong to the namespace for their whole life.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        enter_path(std::path::Path::new(&self.path()), f)
    }
}

/// Runs `f` on a new thread that has entered the network namespace at `path` (e.g.
/// `/var/run/netns/NAME` or `/proc/PID/ns/net`), and returns its result. Sockets `f` opens
/// belong to that namespace for their whole life.
pub fn enter_path<T: Send>(
    path: &std::path::Path,
    f: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| NetnsError::Enter {
        name: name.clone(),
        source,
    })?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns on a valid namespace fd only changes this thread's
                // namespace; the thread ends when `f` returns.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(NetnsError::Enter {
                        name,
                        source: std::io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside (a daemon, a listener), then delete the namespace.
        if let Ok(out) = output_of(&["ip", "netns", "pids", &self.name]) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = output_of(&["kill", "-9", pid]);
            }
        }
        if let Err(e) = run_command(&["ip", "netns", "del", &self.name]) {
            tracing::warn!(namespace = %self.name, error = %e, "cannot remove test namespace");
        }
    }
}

/// Creates a veth pair with one end (`a`) in namespace `a_ns` and the other (`b`) in
/// `b_ns`, both up.
pub fn veth(a_ns: &Netns, a: &str, b_ns: &Netns, b: &str) -> Result<(), NetnsError> {
    a_ns.run(&[
        "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", &b_ns.name,
    ])?;
    a_ns.run(&["ip", "link", "set", a, "up"])?;
    b_ns.run(&["ip", "link", "set", b, "up"])?;
    Ok(())
}

/// Creates a workload namespace attached to `host` by a veth pair (`host_iface` on the host
/// side, `eth0` inside), wired as Calico's CNI plugin wires a workload: each IPv4 address as
/// a /32 on `eth0`, and a default route via 169.254.1.1, which the host answers by proxy
/// ARP. The host side is left as it is: configuring it is the FIB backend's job.
pub fn workload(host: &Netns, host_iface: &str, ipv4: &[&str]) -> Result<Netns, NetnsError> {
    let ns = Netns::create("wl")?;
    veth(host, host_iface, &ns, "eth0")?;
    for ip in ipv4 {
        ns.run(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
    }
    ns.run(&[
        "ip",
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ])?;
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])?;
    Ok(ns)
}

/// Decides whether a privileged test runs. Returns `true` when running as root. Otherwise
/// panics when `CALICO_PRIVILEGED_TESTS=1` (CI, where a skipped kernel test would be a lie),
/// or prints that `test` is skipped and returns `false`.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CALICO_PRIVILEGED_TESTS").as_deref() == Ok("1") {
        panic!(
            "{test}: needs root, and CALICO_PRIVILEGED_TESTS=1 makes privileged tests mandatory"
        );
    }
    eprintln!("{test}: skipped: needs root (set CALICO_PRIVILEGED_TESTS=1 to make this a failure)");
    false
}

fn output_of(args: &[&str]) -> Result<Output, NetnsError> {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: args.join(" "),
            source,
        })
}

fn run_command(args: &[&str]) -> Result<String, NetnsError> {
    let out = output_of(args)?;
    if !out.status.success() {
        return Err(NetnsError::Failed {
            command: args.join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
