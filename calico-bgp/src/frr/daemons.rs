//! FRR's daemons as the driver runs them: zebra, bfdd and bgpd, as FRR's user, with their
//! configuration, pid files, vty sockets and zebra's API socket in the driver's directory
//! (never the host's FRR in `/etc/frr` and `/var/run/frr`), and `vtysh` talking to them.

use std::ffi::CString;
use std::path::Path;
use std::process::Stdio;

use calico_core::dataplane::BackendError;
use tokio::process::{Child, Command};

use super::{unavailable, FrrConfig};

/// The daemons, in the order they start (bfdd and bgpd register with zebra).
pub const DAEMONS: [&str; 3] = ["zebra", "bfdd", "bgpd"];

/// The uid and gid of the user the daemons run as.
pub fn user_ids(user: &str) -> Result<(u32, u32), BackendError> {
    let name = CString::new(user).map_err(|_| unavailable(format!("user {user:?}: bad name")))?;
    // SAFETY: getpwnam takes a NUL-terminated name and returns a pointer to static storage or
    // null; the fields are read at once, before any other getpw* call of this thread.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(unavailable(format!(
            "user {user:?} does not exist (Debian's frr package creates it)"
        )));
    }
    // SAFETY: non-null, see above.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Gives `path` to the daemons' user.
pub fn give(config: &FrrConfig, path: &Path) -> Result<(), BackendError> {
    let (uid, gid) = user_ids(&config.user)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| unavailable(format!("cannot chown {}: {e}", path.display())))
}

/// Starts one daemon (`port`: bgpd's listening port).
pub fn start(config: &FrrConfig, daemon: &str, port: u16) -> Result<Child, BackendError> {
    let dir = &config.dir;
    let path = |f: &str| dir.join(f);
    let binary = config.bin_dir.join(daemon);
    let mut c = match &config.netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    // No configuration at start: a daemon reading the integrated file gives up on nodes of
    // other daemons; the driver applies it with vtysh once all three are up, as FRR's own
    // init script does (`vtysh -b`).
    c.args(["-u", &config.user, "-g", &config.user, "-P", "0"])
        .args(["-f", "/dev/null"])
        .arg("-i")
        .arg(path(&format!("{daemon}.pid")))
        .arg("-z")
        .arg(path("zserv.api"))
        .arg("--vty_socket")
        .arg(dir);
    if daemon == "bgpd" {
        // No routes into the kernel: the agent programs what the driver reads back.
        c.arg("--no_kernel").arg("-p").arg(port.to_string());
    }
    let err = std::fs::File::create(path(&format!("{daemon}.err")))
        .map_err(|e| unavailable(format!("cannot create {daemon}.err: {e}")))?;
    c.stdout(Stdio::null())
        .stderr(err)
        .kill_on_drop(config.stop_on_drop)
        .spawn()
        .map_err(|e| unavailable(format!("cannot start {}: {e}", binary.display())))
}

/// The port the bgpd of the driver's directory (its pid file) was started to listen on:
/// the `-p` of its command line, as [`start`] gives it. `None` when there is no such live
/// bgpd or its command line has no port.
pub fn running_bgpd_port(config: &FrrConfig) -> Option<u16> {
    let pid = std::fs::read_to_string(config.dir.join("bgpd.pid")).ok()?;
    let pid: i32 = pid.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    if comm.trim() != "bgpd" {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    port_of_cmdline(&cmdline)
}

/// The value after `-p` in a NUL-separated command line.
fn port_of_cmdline(cmdline: &[u8]) -> Option<u16> {
    let mut args = cmdline.split(|b| *b == 0);
    args.find(|a| *a == b"-p")?;
    std::str::from_utf8(args.next()?).ok()?.parse().ok()
}

/// Stops what is left of an earlier start on the driver's directory (say, zebra and bfdd
/// when bgpd died), so that a new start does not find them in its way: every daemon whose
/// pid file in the directory names a live process of that daemon's name gets SIGTERM, then
/// SIGKILL if still there after a second.
pub async fn stop_leftovers(config: &FrrConfig) {
    let live = |pid: i32, daemon: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == daemon)
    };
    let mut pids = Vec::new();
    for d in DAEMONS {
        let file = config.dir.join(format!("{d}.pid"));
        let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            continue;
        };
        if pid > 0 && live(pid, d) {
            tracing::info!(
                daemon = d,
                pid,
                "stopping what is left of an earlier FRR start"
            );
            // SAFETY: kill(2) on a process our earlier start wrote to our own pid file.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            pids.push((pid, d));
        }
    }
    for d in DAEMONS {
        // Sockets of dead daemons: their absence tells that a new start is not up yet.
        let _ = std::fs::remove_file(config.dir.join(format!("{d}.vty")));
    }
    for _ in 0..10 {
        if pids.iter().all(|(p, d)| !live(*p, d)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (pid, d) in pids.into_iter().filter(|(p, d)| live(*p, d)) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        tracing::warn!(daemon = d, pid, "killed: it did not stop on SIGTERM");
    }
}

/// Runs `vtysh` on the driver's daemons with `args`; its output, or an error with what FRR
/// said.
pub async fn vtysh(config: &FrrConfig, args: &[&str]) -> Result<String, BackendError> {
    let out = Command::new(&config.vtysh)
        .arg("--vty_socket")
        .arg(&config.dir)
        .args(args)
        .output()
        .await
        .map_err(|e| unavailable(format!("cannot run vtysh: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(unavailable(format!(
            "vtysh {}: {} {}",
            args.join(" "),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(text)
}

/// Checks a configuration file with vtysh's dry run (`vtysh -C -f`): FRR's own parser for
/// every daemon's commands. `Err`: what FRR said is wrong.
pub async fn check(config: &FrrConfig, file: &Path) -> Result<Result<(), String>, BackendError> {
    let out = Command::new(&config.vtysh)
        .arg("-C")
        .arg("-f")
        .arg(file)
        .output()
        .await
        .map_err(|e| unavailable(format!("cannot run vtysh: {e}")))?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "{} {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_port_is_read_from_bgpds_command_line() {
        let line = b"/usr/lib/frr/bgpd\0-u\0frr\0--no_kernel\0-p\x001179\0";
        assert_eq!(super::port_of_cmdline(line), Some(1179));
        assert_eq!(super::port_of_cmdline(b"bgpd\0-p\0"), None);
        assert_eq!(super::port_of_cmdline(b"bgpd\0-p\0x\0"), None);
        assert_eq!(super::port_of_cmdline(b"bgpd\0"), None);
    }
}
